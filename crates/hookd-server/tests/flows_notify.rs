//! Flows that tell people: email through a real SMTP server (aiosmtpd, started here,
//! refusing twice before it accepts) and SMS through Twilio's Messages API at a
//! local capture server. Secrets are write-only, sealed with `secret_key`, and never
//! shown. The network guard applies to both.
//!
//! Without Python's `aiosmtpd` the email parts say so and pass; `HOOKD_TEST_NOTIFY=required`
//! (as in CI) makes its absence a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../hookd-notify/tests/common/mod.rs"]
mod notify;

use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{TestServer, call, ok};
use notify::smtp::{SmtpServer, header};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// The shop: an application with a `customers` collection, and the secrets the
/// payment flow names (`smtp-main` for `smtp`, `twilio-main` with `auth_token`);
/// answers the status of the first secret's put.
async fn shop(server: &TestServer, smtp: &SmtpServer, auth_token: &str) -> StatusCode {
    ok(
        server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "Shop", "uid": "shop"}),
    )
    .await;
    ok(
        server,
        Method::POST,
        "/api/v1/app/shop/collection",
        json!({"name": "customers"}),
    )
    .await;
    let (status, _) = call(
        server,
        Method::PUT,
        "/api/v1/flow-secret/smtp-main",
        Some(json!({"value": {"smtpUrl": smtp.url(), "from": "Shop <shop@example.com>"}})),
    )
    .await;
    ok(
        server,
        Method::PUT,
        "/api/v1/flow-secret/twilio-main",
        json!({"value": {"accountSid": "AC123", "authToken": auth_token}}),
    )
    .await;
    status
}

/// The example, run by hand: a paid invoice over the threshold activates its
/// customer, emails them, and texts the admin.
fn payment_flow() -> Value {
    json!({"name": "paid", "trigger": {"type": "manual"}, "steps": [
        {"name": "big", "type": "condition",
         "filter": {"trigger": {"body": {"data": {"object": {"amount_paid": {"$gte": 1000}}}}}}},
        {"name": "activate", "type": "document.patch", "app": "shop", "collection": "customers",
         "key": "{{ trigger.body.data.object.customer }}", "body": {"status": "active"}},
        {"name": "mail", "type": "email", "credentials": "smtp-main",
         "to": ["{{ trigger.body.data.object.customer_email }}"],
         "subject": "Payment of {{ trigger.body.data.object.amount_paid / 100 }} EUR received",
         "text": "Thank you, {{ trigger.body.data.object.customer_name }}.",
         "html": "<p>Thank you, {{ trigger.body.data.object.customer_name }}.</p>"},
        {"name": "text-admin", "type": "sms", "credentials": "twilio-main", "to": "+15550001111",
         "from": "+15550002222", "body": "Paid: {{ trigger.body.data.object.customer }} ({{ steps.activate.document.status }})"}
    ]})
}

fn invoice(amount: i64) -> Value {
    json!({"body": {"type": "invoice.paid", "data": {"object": {
        "customer": "cus_42", "amount_paid": amount,
        "customer_email": "ada@example.com", "customer_name": "Ada <script>"}}}})
}

#[tokio::test]
async fn a_payment_updates_the_record_emails_the_customer_through_refusals_and_texts_the_admin() {
    let Some(smtp) = SmtpServer::start(2).await else {
        return;
    };
    let twilio = Receiver::start().await;
    twilio.answer_always(Answer {
        status: 201,
        delay: Duration::ZERO,
        headers: vec![("content-type", "application/json".into())],
        body: Some(json!({"sid": "SM123", "status": "queued"}).to_string()),
    });
    let server = TestServer::start_with(&[
        ("HOOKD_SECRET_KEY", KEY),
        ("HOOKD_TWILIO_BASE_URL", &twilio.url),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", "200ms,200ms,200ms"),
    ])
    .await;
    let status = shop(&server, &smtp, "tw-secret-token").await;
    assert_eq!(status, StatusCode::CREATED);
    // Write-only: listed by name, never shown.
    let (_, listed) = call(&server, Method::GET, "/api/v1/flow-secret", None).await;
    let text = listed.to_string();
    assert_eq!(listed["data"][0]["name"], "smtp-main", "{listed}");
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert!(
        !text.contains("tw-secret-token") && !text.contains("hks1"),
        "{text}"
    );

    ok(&server, Method::POST, "/api/v1/flow", payment_flow()).await;
    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/paid/run",
        json!({"input": invoice(2500)}),
    )
    .await;
    let id = run["id"].as_str().unwrap().to_owned();
    let done = common::ended_run(&server, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let mail = &done["steps"][2];
    assert_eq!(mail["attempts"], 3, "refused twice, then accepted: {mail}");
    assert_eq!(mail["output"]["messageId"], format!("{id}.2"));

    // One email arrived, as the templates say, the name escaped in the HTML part.
    let got = smtp.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(header(m, "To"), Some("ada@example.com"));
    assert_eq!(header(m, "From"), Some("Shop <shop@example.com>"));
    assert_eq!(header(m, "Subject"), Some("Payment of 25.0 EUR received"));
    assert_eq!(
        header(m, "Message-ID"),
        Some(format!("<{id}.2@example.com>").as_str())
    );
    assert!(m.contains("Thank you, Ada <script>."), "{m}");
    assert!(m.contains("&lt;script&gt;"), "the HTML part escapes values: {m}");

    // The SMS, as Twilio's API takes it.
    let sms = twilio
        .wait_for(
            "/2010-04-01/Accounts/AC123/Messages.json",
            1,
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(sms[0].method, Method::POST);
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(&sms[0].body).unwrap();
    assert_eq!(
        form,
        [
            ("To".to_owned(), "+15550001111".to_owned()),
            ("From".to_owned(), "+15550002222".to_owned()),
            ("Body".to_owned(), "Paid: cus_42 (active)".to_owned()),
        ]
    );
    let auth = sms[0].headers["authorization"].to_str().unwrap();
    use base64::Engine as _;
    assert_eq!(
        auth,
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AC123:tw-secret-token")
        )
    );
    assert_eq!(done["steps"][3]["output"]["sid"], "SM123");
    // No secret anywhere in the run log.
    let (_, log) = call(&server, Method::GET, "/api/v1/flow-run", None).await;
    let log = log.to_string();
    assert!(
        !log.contains("tw-secret-token") && !log.contains(&smtp.url()),
        "{log}"
    );

    // Under the threshold: no email, no SMS.
    let small = ok(
        &server,
        Method::POST,
        "/api/v1/flow/paid/run",
        json!({"input": invoice(500)}),
    )
    .await;
    assert_eq!(small["status"], "stopped");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(twilio.count(), 1);

    // A step whose secret is gone fails, naming it.
    let (status, _) = call(&server, Method::DELETE, "/api/v1/flow-secret/twilio-main", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let failed = ok(
        &server,
        Method::POST,
        "/api/v1/flow/paid/run",
        json!({"input": invoice(5000)}),
    )
    .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("no secret \"twilio-main\""),
        "{failed}"
    );
    server.stop().await;
}

/// The second example: a web form posted to a mode is validated, then
/// emailed to the team; a form that fails the schema answers 422 and sends nothing.
#[tokio::test]
async fn a_form_posted_to_a_mode_is_validated_then_emailed_and_an_invalid_one_sends_nothing() {
    let Some(smtp) = SmtpServer::start(0).await else {
        return;
    };
    let server = TestServer::start_with(&[
        ("HOOKD_SECRET_KEY", KEY),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
    ])
    .await;
    assert_eq!(shop(&server, &smtp, "unused").await, StatusCode::CREATED);
    ok(
        &server,
        Method::POST,
        "/api/v1/app/shop/mode",
        json!({"name": "contact", "method": "POST", "operation": "flow.run"}),
    )
    .await;
    let key = ok(
        &server,
        Method::POST,
        "/api/v1/app/shop/api-key",
        json!({"name": "site", "scopes": ["write"], "modes": ["contact"]}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "contact-form",
        "trigger": {"type": "mode", "app": "shop", "mode": "contact"},
        "response": {"status": 200, "body": {"sent": "{{ steps.mail.messageId }}"}},
        "steps": [
          {"name": "check", "type": "validate", "schema": {
             "type": "object", "required": ["email", "message"],
             "properties": {"email": {"type": "string", "pattern": "^[^@\\s]+@[^@\\s]+$"},
                            "message": {"type": "string", "minLength": 5}}}},
          {"name": "mail", "type": "email", "credentials": "smtp-main", "to": ["team@example.com"],
           "subject": "Contact from {{ trigger.body.email }}",
           "text": "{{ trigger.body.message }}",
           "html": "<p>{{ trigger.body.message }}</p>"}
        ]}),
    )
    .await;
    let post = |form: &[(&str, &str)]| {
        let req = server
            .http()
            .post(server.url("/h/test-org/shop/contact"))
            .bearer_auth(&key)
            .form(form);
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, out) = post(&[("email", "not-an-address"), ("message", "hi")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["detail"].as_array().unwrap().len(), 2, "{out}");
    assert!(smtp.received().is_empty(), "an invalid form sends nothing");

    let (status, out) = post(&[("email", "ada@example.com"), ("message", "Hello <b>there</b>")]).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let sent = out["sent"].as_str().unwrap();
    let got = smtp.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(header(&got[0], "To"), Some("team@example.com"));
    assert_eq!(header(&got[0], "Subject"), Some("Contact from ada@example.com"));
    assert_eq!(
        header(&got[0], "Message-ID"),
        Some(format!("<{sent}@example.com>").as_str())
    );
    assert!(
        got[0].contains("<p>Hello &lt;b&gt;there&lt;"),
        "the form is escaped in HTML: {}",
        got[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn secrets_are_sealed_under_a_key_file_by_default_and_the_network_guard_stops_an_internal_smtp_host() {
    // No secret_key on the embedded database: a key file is made beside it, readable
    // by its owner only, and secrets are sealed under it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hookd.db");
    let server = TestServer::start_sqlite_at(&db, &[]).await;
    let (status, out) = call(
        &server,
        Method::PUT,
        "/api/v1/flow-secret/smtp",
        Some(json!({"value": {"smtpUrl": "smtp://127.0.0.1:1", "from": "a@example.com"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    server.stop().await;
    let key_file = dir.path().join("hookd.db.key");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A key, but no allowance for loopback: an SMTP server on 127.0.0.1 is refused
    // before any connection, and the run fails with the reason.
    let server = TestServer::start_with(&[("HOOKD_SECRET_KEY", KEY)]).await;
    let (status, _) = call(
        &server,
        Method::PUT,
        "/api/v1/flow-secret/smtp",
        Some(json!({"value": "not an object"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    ok(
        &server,
        Method::PUT,
        "/api/v1/flow-secret/smtp",
        json!({"value": {"smtpUrl": "smtp://127.0.0.1:2525?tls=none", "from": "a@example.com"}}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "mail", "trigger": {"type": "manual"}, "steps": [
            {"name": "m", "type": "email", "credentials": "smtp", "to": ["b@example.com"], "subject": "s", "text": "t"}]}),
    )
    .await;
    let run = ok(&server, Method::POST, "/api/v1/flow/mail/run", json!({})).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("refused by the delivery network policy"),
        "{run}"
    );
    assert_eq!(run["steps"][0]["attempts"], 1, "a refusal is not retried");
    server.stop().await;
}

/// The Stripe-Signature header the official `stripe` library makes for `body`.
fn stripe_signature(body: &str, secret: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import stripe, sys, time; print(stripe.WebhookSignature.generate_signature_header(sys.argv[1], sys.argv[2], timestamp=int(time.time())))",
            body,
            secret,
        ])
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn a_stripe_invoice_received_on_a_source_runs_the_flow_once() {
    if !notify::python_has("stripe", "a flow triggered by a Stripe request") {
        return;
    }
    let Some(smtp) = SmtpServer::start(0).await else {
        return;
    };
    let twilio = Receiver::start().await;
    twilio.answer_always(Answer {
        status: 201,
        delay: Duration::ZERO,
        headers: vec![("content-type", "application/json".into())],
        body: Some(json!({"sid": "SM9", "status": "queued"}).to_string()),
    });
    let server = TestServer::start_with(&[
        ("HOOKD_SECRET_KEY", KEY),
        ("HOOKD_TWILIO_BASE_URL", &twilio.url),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
    ])
    .await;
    assert_eq!(shop(&server, &smtp, "tok").await, StatusCode::CREATED);
    let secret = "whsec_stripe_flow_test";
    let source = ok(
        &server,
        Method::POST,
        "/ingest/api/v1/source",
        json!({"name": "Stripe", "uid": "stripe-main", "type": "stripe", "config": {"secret": secret},
               "options": {"dedup": {"jsonPointer": "/id"}}}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap().to_owned();
    let mut flow = payment_flow();
    flow["trigger"] = json!({"type": "source.request", "source": "stripe-main"});
    ok(&server, Method::POST, "/api/v1/flow", flow).await;
    let (status, out) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(
            json!({"name": "nowhere", "trigger": {"type": "source.request", "source": "nope"},
                    "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "trigger", "source"]));

    let send = |event: Value| {
        let body = event.to_string();
        let signature = stripe_signature(&body, secret);
        let http = server.http();
        let url = url.clone();
        async move {
            http.post(url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let mut paid = invoice(2500)["body"].clone();
    paid["id"] = json!("evt_1");
    assert_eq!(send(paid.clone()).await, StatusCode::OK);
    let runs = common::settle(
        || async {
            call(&server, Method::GET, "/api/v1/flow-run?flow=paid", None)
                .await
                .1
        },
        |r: &Value| {
            r["data"]
                .as_array()
                .is_some_and(|d| !d.is_empty() && d[0]["status"] != "running")
        },
    )
    .await;
    let run = &runs["data"][0];
    assert_eq!(run["status"], "succeeded", "{runs}");
    assert_eq!(run["trigger"]["body"]["id"], "evt_1");
    assert_eq!(run["trigger"]["headers"]["content-type"], "application/json");
    // The run names the logged request it came from.
    let request_id = run["trigger"]["requestId"].as_str().unwrap();
    let logged = ok(
        &server,
        Method::GET,
        &format!("/ingest/api/v1/source/stripe-main/log/{request_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(logged["id"], request_id, "{logged}");
    let doc = ok(
        &server,
        Method::GET,
        "/api/v1/app/shop/collection/customers/document/cus_42",
        Value::Null,
    )
    .await;
    assert_eq!(doc["data"], json!({"status": "active"}));
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(twilio.count(), 1);

    // Stripe's redelivery of the same event is a duplicate: it starts no run.
    assert_eq!(send(paid.clone()).await, StatusCode::OK);
    // A badly signed request and an invoice under the threshold: no run, and a run
    // that stops after its first step.
    let forged = paid.to_string();
    let resp = server
        .http()
        .post(&url)
        .header("stripe-signature", "t=1,v1=00")
        .body(forged)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST.max(resp.status()),
        "refused"
    );
    assert!(resp.status().is_client_error());
    let mut small = invoice(500)["body"].clone();
    small["id"] = json!("evt_2");
    assert_eq!(send(small).await, StatusCode::OK);
    let runs = common::settle(
        || async {
            call(&server, Method::GET, "/api/v1/flow-run?flow=paid", None)
                .await
                .1
        },
        |r: &Value| {
            r["data"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d[0]["status"] != "running")
        },
    )
    .await;
    assert_eq!(
        runs["data"].as_array().unwrap().len(),
        2,
        "the redelivery and the forged request ran nothing: {runs}"
    );
    assert_eq!(runs["data"][0]["status"], "stopped");
    assert_eq!(runs["data"][0]["steps"].as_array().unwrap().len(), 1);
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(twilio.count(), 1);
    server.stop().await;
}

/// A SIGKILL while the SMTP server holds an email (it has kept it, but hookd never
/// got its 250): after the restart the run resumes at the email step and sends it
/// again with the same Message-ID, so the receiving side sees one duplicate at most
/// and can drop it; the record written before was applied once, the one after once.
#[tokio::test]
async fn a_sigkill_during_an_email_resends_it_once_with_its_message_id_and_writes_once() {
    let Some(smtp) = SmtpServer::start_with(0, Duration::from_secs(3)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path()).await;
    // No secret_key: the server and the CLI beside it share the database's key (its
    // key file on SQLite, the tests' key on PostgreSQL).
    let settings = [
        ("HOOKD_DATABASE_URL", db.url.as_str()),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_TIMEOUT", "8s"),
        ("HOOKD_DELIVERY_LEASE", "10s"),
        ("HOOKD_NODE_ID", "node-1"),
    ];
    let mut hookd = common::process::serve(&[], &settings).await;
    let token = common::process::create_token(&db.url, "mail");
    let http = reqwest::Client::new();
    let send = |method: Method, base: &str, path: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send()
    };
    let base = hookd.base.clone();
    for (path, body) in [
        ("/api/v1/app", json!({"name": "Shop", "uid": "shop"})),
        ("/api/v1/app/shop/collection", json!({"name": "customers"})),
        (
            "/api/v1/flow",
            json!({"name": "paid", "trigger": {"type": "manual"}, "steps": [
                {"name": "count", "type": "document.increment", "app": "shop", "collection": "customers",
                 "key": "cus_1", "by": {"payments": 1}},
                {"name": "mail", "type": "email", "credentials": "smtp-main", "to": ["ada@example.com"],
                 "subject": "Payment received", "text": "Thank you."},
                {"name": "done", "type": "document.patch", "app": "shop", "collection": "customers",
                 "key": "cus_1", "body": {"mailed": "{{ steps.mail.messageId }}"}}]}),
        ),
    ] {
        let resp = send(Method::POST, &base, path, Some(body)).await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
    }
    let resp = send(
        Method::PUT,
        &base,
        "/api/v1/flow-secret/smtp-main",
        Some(json!({"value": {"smtpUrl": smtp.url(), "from": "Shop <shop@example.com>"}})),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    // The run is carried out by the request; the email is kept, then hookd dies
    // before the SMTP server's 250 comes.
    let inline = tokio::spawn(send(
        Method::POST,
        &base,
        "/api/v1/flow/paid/run",
        Some(json!({})),
    ));
    common::settle(|| async { smtp.received().len() }, |n| *n >= 1).await;
    assert_eq!(smtp.received().len(), 1);
    hookd.kill();
    assert!(inline.await.unwrap().is_err(), "the request died with hookd");

    let hookd = common::process::serve(&[], &settings).await;
    let base = hookd.base.clone();
    let runs: Value = send(Method::GET, &base, "/api/v1/flow-run?flow=paid", None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = runs["data"][0]["id"].as_str().unwrap().to_owned();
    let done = common::process::ended_run(&base, &token, &id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let got = smtp.received();
    assert_eq!(got.len(), 2, "sent again once after the crash: {got:?}");
    let key = format!("<{id}.1@example.com>");
    assert!(
        got.iter().all(|m| header(m, "Message-ID") == Some(key.as_str())),
        "both with the step's Message-ID {key}: {got:?}"
    );
    let doc: Value = send(
        Method::GET,
        &base,
        "/api/v1/app/shop/collection/customers/document/cus_1",
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        doc["data"],
        json!({"payments": 1, "mailed": format!("{id}.1")}),
        "the record before the email once, the one after it once"
    );
    drop(hookd);
}
