//! `hookd listen`, the real binary, against a real server: a source's requests reach a
//! local receiver byte for byte and the local answer is the destination's attempt; a
//! CLI killed and started again receives what arrived meanwhile, once; an
//! application's session signs with its endpoint's secret (checked with
//! `standardwebhooks`); with two nodes, the session's deliveries all go through the
//! node it is connected to; errors a person can act on, with their exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use common::cli::Cli;
use common::process::command;
use common::receiver::{Answer, Receiver};
use hmac::{Hmac, Mac as _};
use hookd_store::{AttemptFilter, DeliveryStatus, ListQuery, Order};
use serde_json::{Value, json};

async fn create_source(server: &TestServer, uid: &str, kind: &str, config: Value) -> Value {
    let r = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&json!({"name": uid, "uid": uid, "type": kind, "config": config}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// The attempts of an application (newest first, at most 100) that `filter` lets through.
async fn attempts_of(
    store: &std::sync::Arc<dyn hookd_store::Store>,
    org: &hookd_core::id::OrgId,
    app: &hookd_core::id::ApplicationId,
    filter: &AttemptFilter,
) -> Vec<hookd_store::MessageAttempt> {
    let query = ListQuery {
        limit: 100,
        cursor: None,
        order: Order::Descending,
    };
    store.list_attempts(org, app, &query, filter).await.unwrap().items
}

/// A `Stripe-Signature` header as Stripe makes it: `t=..,v1=hex(HMAC(secret, "t.body"))`.
fn stripe_signature(secret: &str, body: &[u8]) -> String {
    let t = chrono::Utc::now().timestamp();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_request_reaches_the_local_target_byte_for_byte_and_its_answer_is_the_attempt() {
    let server = TestServer::start().await;
    let secret = "whsec_listen_stripe";
    let source = create_source(&server, "stripe", "stripe", json!({"secret": secret})).await;
    let ingest_url = source["ingestUrl"].as_str().unwrap().to_owned();
    let local = Receiver::start().await;
    local.answer_always(Answer {
        body: Some("local says ok".into()),
        ..Answer::status(201)
    });
    let forward_to = format!("{}/hooks", local.url);
    let listener = Cli::start(
        &server,
        "listen",
        &[
            "--source",
            "stripe",
            "--forward-to",
            &forward_to,
            "--session",
            "t1",
        ],
    );
    listener.wait_said("connected", 1).await;

    // Bytes a JSON parser would normalise: spacing, escapes, a non-ASCII character.
    let body = "{\"id\": \"evt_1\",  \"type\":\"charge.succeeded\", \"amount\" : 1.50, \"name\":\"Zo\u{eb}\\u00e9\"}\n";
    let signature = stripe_signature(secret, body.as_bytes());
    let r = reqwest::Client::new()
        .post(format!("{ingest_url}/events/charge?x=1&y=two"))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", &signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let got = local
        .wait_for("/hooks/events/charge", 1, Duration::from_secs(20))
        .await;
    let got = &got[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.body.as_ref(), body.as_bytes(), "byte for byte");
    assert_eq!(got.query, "x=1&y=two");
    assert_eq!(got.headers["stripe-signature"], signature.as_str());
    assert_eq!(got.headers["content-type"], "application/json; charset=utf-8");
    assert!(
        got.headers.contains_key("webhook-signature"),
        "signed by hookd too"
    );

    // The local answer is the destination's attempt in the source's log.
    let store = server.running.as_ref().unwrap().store();
    let org = store.find_org("test-org").await.unwrap().unwrap();
    let src = store.get_source(&org.id, "stripe").await.unwrap();
    let log = store
        .list_ingest_log(&org.id, &src.id, &ListQuery::default(), &Default::default())
        .await
        .unwrap();
    let msg = log.items[0].msg_id.clone().expect("forwarded");
    let only_msg = AttemptFilter {
        msg: Some(msg),
        ..Default::default()
    };
    let attempts = common::settle(
        || attempts_of(store, &org.id, &src.app_id, &only_msg),
        |a: &Vec<hookd_store::MessageAttempt>| !a.is_empty(),
    )
    .await;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].response_status_code, 201);
    assert_eq!(attempts[0].status, DeliveryStatus::Success);
    assert_eq!(attempts[0].response.as_deref(), Some("local says ok"));
    assert_eq!(attempts[0].url, format!("{forward_to}/events/charge?x=1&y=two"));
    assert!(
        listener
            .stdout
            .lock()
            .unwrap()
            .contains("POST /events/charge?x=1&y=two → 201 Created"),
        "one line per request: {}",
        listener.stdout.lock().unwrap()
    );

    // Ctrl-C ends the session: its endpoint is gone.
    let mut listener = listener;
    assert!(listener.stop().success());
    let endpoints = store
        .list_endpoints(&org.id, &src.app_id, &ListQuery::default())
        .await
        .unwrap();
    assert!(
        endpoints.items.iter().all(|e| !e.data.url.is_listener()),
        "the session's endpoint is deleted"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_gets_what_arrived_meanwhile_once_after_it_reconnects() {
    let server = TestServer::start().await;
    let source = create_source(&server, "plain", "generic-webhook", json!({})).await;
    let ingest_url = source["ingestUrl"].as_str().unwrap().to_owned();
    let local = Receiver::start().await;
    let forward_to = local.url.clone();
    let args = [
        "--source",
        "plain",
        "--forward-to",
        &forward_to,
        "--session",
        "sleepy",
    ];
    let mut first = Cli::start(&server, "listen", &args);
    first.wait_said("connected", 1).await;
    let http = reqwest::Client::new();
    let post = |i: usize| {
        http.post(format!("{ingest_url}/n{i}"))
            .body(format!("{{\"n\":{i}}}"))
            .send()
    };
    for i in 0..5 {
        assert_eq!(post(i).await.unwrap().status(), 200);
    }
    local.wait_for_total(5, Duration::from_secs(20)).await;
    // Answered too (a request forwarded but not yet answered is sent again: at least
    // once), before the kill.
    let store = server.running.as_ref().unwrap().store();
    let org = store.find_org("test-org").await.unwrap().unwrap().id;
    let app = store.get_source(&org, "plain").await.unwrap().app_id;
    let succeeded = AttemptFilter {
        status: Some(DeliveryStatus::Success),
        ..Default::default()
    };
    common::settle(
        || attempts_of(store, &org, &app, &succeeded),
        |a: &Vec<hookd_store::MessageAttempt>| a.len() >= 5,
    )
    .await;

    // SIGKILL: no goodbye, the session stays.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    for i in 5..25 {
        assert_eq!(post(i).await.unwrap().status(), 200);
    }
    // Nothing can reach the laptop now; the requests wait (their attempts fail).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(local.count(), 5);

    let second = Cli::start(&server, "listen", &args);
    second.wait_said("connected", 1).await;
    local.wait_for_total(25, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut paths: Vec<String> = local.received().into_iter().map(|r| r.path).collect();
    paths.sort();
    let mut expected: Vec<String> = (0..25).map(|i| format!("/n{i}")).collect();
    expected.sort();
    assert_eq!(paths, expected, "each request once, none lost");
    drop(second);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_session_is_signed_with_its_endpoints_secret() {
    let server = TestServer::start().await;
    let app = server
        .req(reqwest::Method::POST, "/api/v1/app")
        .json(&json!({"name": "Shop", "uid": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), 201);
    for name in ["order.created", "order.paid"] {
        let r = server
            .req(reqwest::Method::POST, "/api/v1/event-type")
            .json(&json!({"name": name, "description": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let local = Receiver::start().await;
    let listener = Cli::start(
        &server,
        "listen",
        &[
            "--app",
            "shop",
            "--event-types",
            "order.paid",
            "--forward-to",
            &format!("{}/webhooks", local.url),
            "--session",
            "app-test",
            "--json",
        ],
    );
    listener.wait_said("connected", 1).await;
    let secret = {
        let said = listener.stderr.lock().unwrap().clone();
        said.split_whitespace()
            .find(|w| w.starts_with("whsec_"))
            .expect("the secret is shown")
            .to_owned()
    };
    for (kind, n) in [("order.created", 1), ("order.paid", 2)] {
        let r = server
            .req(reqwest::Method::POST, "/api/v1/app/shop/msg")
            .json(&json!({"eventType": kind, "payload": {"n": n}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let got = local.wait_for("/webhooks", 1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(local.count(), 1, "only the event types asked for");
    let got = &got[0];
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    let headers = common::http_headers(&got.headers);
    let payload: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(payload, json!({"n": 2}));
    wh.verify(&got.body, &headers)
        .expect("verifies with the session's secret");
    let line = listener
        .stdout
        .lock()
        .unwrap()
        .lines()
        .next()
        .map(str::to_owned)
        .unwrap_or_default();
    let line: Value = serde_json::from_str(&line).expect("--json prints JSON lines");
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "POST");
    drop(listener);
    server.stop().await;
}

/// Two nodes on one PostgreSQL database, a session connected to one of them: every
/// message, posted to either node, is relayed through the session's node on its first
/// attempt. Before, the other node's engine claimed about half of them and failed
/// each ("no `hookd listen` session is connected to this node") until a retry landed
/// on the right node. Runs on PostgreSQL (one SQLite database has one node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_nodes_every_delivery_goes_through_the_sessions_node() {
    if hookd_store_postgres::testing::test_database_url().is_none() {
        eprintln!("note: two nodes were NOT tested (HOOKD_TEST_DATABASE_URL is not set)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path()).await;
    let node = |name: &'static str| {
        [
            ("HOOKD_DATABASE_URL", db.url.clone()),
            ("HOOKD_NODE_ID", name.to_owned()),
            ("HOOKD_DELIVERY_POLL_INTERVAL", "100ms".to_owned()),
            // A failed attempt would wait past the test's patience.
            ("HOOKD_RETRY_SCHEDULE", "60s".to_owned()),
        ]
    };
    let start = |name: &'static str| {
        let settings = node(name);
        async move {
            let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
            common::process::serve(&[], &settings).await
        }
    };
    let a = start("node-a").await;
    let b = start("node-b").await;
    let token = common::process::create_token(&db.url, "acme");
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/api/v1/app", b.base))
        .bearer_auth(&token)
        .json(&json!({"name": "Shop", "uid": "shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let local = Receiver::start().await;
    let listener = Cli::start_at(
        &a.base,
        &token,
        "listen",
        &[
            "--app",
            "shop",
            "--forward-to",
            &format!("{}/hooks", local.url),
            "--session",
            "two-nodes",
        ],
        &[],
    );
    listener.wait_said("connected", 1).await;
    const MESSAGES: usize = 40;
    for i in 0..MESSAGES {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let posted = http
            .post(format!("{base}/api/v1/app/shop/msg"))
            .bearer_auth(&token)
            .json(&json!({"eventType": "order.paid", "payload": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(posted.status(), 202);
    }
    local.wait_for("/hooks", MESSAGES, Duration::from_secs(20)).await;
    let attempts = db
        .raw_sql("SELECT status || ' ' || count(*) FROM attempt GROUP BY status")
        .await;
    assert_eq!(
        attempts,
        vec![format!("0 {MESSAGES}")],
        "every attempt succeeded, once"
    );
    drop(listener);
}

/// Runs `hookd listen` to its end and returns (exit code, stderr).
fn listen_fails(env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut cmd = command();
    cmd.arg("listen").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_get_one_line_saying_what_to_do_and_their_exit_code() {
    let server = TestServer::start().await;
    let forward = ["--forward-to", "http://127.0.0.1:9/hooks"];
    let args = |extra: &[&'static str]| -> Vec<&str> {
        let mut a: Vec<&str> = extra.to_vec();
        a.extend_from_slice(&forward);
        a
    };
    // Nothing listening there.
    let dead = format!("http://127.0.0.1:{}", common::process::free_port());
    let (code, said) = listen_fails(
        &[("HOOKD_TOKEN", "hk_x")],
        &[&["--server", dead.as_str()][..], &args(&["--source", "s"])].concat(),
    );
    assert_eq!(code, 3, "{said}");
    assert!(said.contains("cannot reach the hookd server"), "{said}");
    // A bad token.
    let (code, said) = listen_fails(
        &[("HOOKD_SERVER", &server.url), ("HOOKD_TOKEN", "hk_not_a_token")],
        &args(&["--source", "s"]),
    );
    assert_eq!(code, 4, "{said}");
    assert!(said.contains("refused the token"), "{said}");
    // An unknown source.
    let (code, said) = listen_fails(
        &[("HOOKD_SERVER", &server.url), ("HOOKD_TOKEN", &server.token)],
        &args(&["--source", "nope"]),
    );
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("source \"nope\""), "{said}");
    // No token anywhere.
    let (code, said) = listen_fails(&[("HOOKD_SERVER", &server.url)], &args(&["--source", "s"]));
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("hookd token create"), "{said}");
    // A profile file supplies both.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("hookd")).unwrap();
    std::fs::write(
        dir.path().join("hookd/cli.toml"),
        format!(
            "[work]\nserver = \"{}\"\ntoken = \"{}\"\n",
            server.url, server.token
        ),
    )
    .unwrap();
    let config_home = dir.path().to_str().unwrap();
    let (code, said) = listen_fails(
        &[("XDG_CONFIG_HOME", config_home), ("HOOKD_PROFILE", "work")],
        &args(&["--source", "nope"]),
    );
    assert_eq!(code, 5, "the profile's server and token were used: {said}");
    let (code, said) = listen_fails(
        &[("XDG_CONFIG_HOME", config_home)],
        &args(&["--profile", "missing", "--source", "nope"]),
    );
    assert_eq!(code, 2, "{said}");
    assert!(said.contains("no profile [missing]"), "{said}");
    server.stop().await;
}

#[test]
fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = command().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("listen") && text.contains("forward-to"),
            "{shell}: {text}"
        );
    }
    let out = command().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH hookd"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let out = command()
        .args(["man", "--dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("hookd-listen.1").is_file());
}

/// `hookd man | grep -q ...` and `hookd completions bash | head`: the reader closes the
/// pipe before hookd writes; that is success, never a panic or a failure exit.
#[test]
fn generated_text_into_a_closed_pipe_is_not_a_failure() {
    for args in [&["man"][..], &["completions", "bash"][..]] {
        let mut child = command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {said}", out.status);
        assert!(said.is_empty(), "{args:?}: {said}");
    }
}
