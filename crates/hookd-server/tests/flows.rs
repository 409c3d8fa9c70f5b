//! Flows end to end through the API, against the real server (SQLite, or PostgreSQL
//! with `HOOKD_TEST_DATABASE_URL`) and a real receiver: definitions checked with the
//! pointer of the field at fault, manual runs that map a payload to a record and
//! publish a signed event, conditions, validation, the sandbox's limits, delays,
//! cancel and re-run; and a delayed run that outlives a SIGKILL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::process;
use common::receiver::Receiver;
use common::{TestServer, call, ok};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The flow of the first example, run by hand: a paid invoice over 10.00
/// marks its customer active and tells the app's endpoints.
fn invoice_flow() -> Value {
    json!({
        "name": "invoice-paid",
        "description": "A paid invoice activates its customer",
        "trigger": {"type": "manual"},
        "steps": [
            {"name": "big-enough", "type": "condition",
             "filter": {"trigger": {"body": {"data": {"object": {"amount_paid": {"$gte": 1000}}}}}}},
            {"name": "shape", "type": "transform",
             "code": "function handler(input) { const o = input.trigger.body.data.object; return {customer: o.customer, euros: o.amount_paid / 100}; }"},
            {"name": "activate", "type": "document.patch", "app": "shop", "collection": "customers",
             "key": "{{ steps.shape.customer }}",
             "body": {"status": "active", "lastPaid": "{{ steps.shape.euros }}"}},
            {"name": "tell", "type": "message.publish", "app": "shop", "eventType": "customer.activated",
             "payload": {"customer": "{{ steps.shape.customer }}", "document": "{{ steps.activate.document }}"}}
        ]
    })
}

fn invoice(amount: i64) -> Value {
    json!({"body": {"type": "invoice.paid", "data": {"object": {"customer": "cus_42", "amount_paid": amount}}}})
}

async fn shop(server: &TestServer, receiver: &Receiver) -> String {
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
        json!({"name": "customers", "schema": {"type": "object", "properties": {"status": {"enum": ["active", "lapsed"]}}}}),
    )
    .await;
    let ep = ok(
        server,
        Method::POST,
        "/api/v1/app/shop/endpoint",
        json!({"url": format!("{}/events", receiver.url)}),
    )
    .await;
    ep["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_manual_run_maps_a_payload_to_a_record_and_publishes_a_signed_event() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    let ep = shop(&server, &receiver).await;
    let flow = ok(&server, Method::POST, "/api/v1/flow", invoice_flow()).await;
    assert_eq!(flow["name"], "invoice-paid");
    assert_eq!(flow["steps"].as_array().unwrap().len(), 4);

    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/invoice-paid/run",
        json!({"input": invoice(2500)}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let steps = run["steps"].as_array().unwrap();
    let names: Vec<_> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["big-enough", "shape", "activate", "tell"]);
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "succeeded" && s["attempts"] == 1),
        "{run}"
    );
    assert_eq!(steps[1]["output"], json!({"customer": "cus_42", "euros": 25}));
    // Each step's input: what it acted on, rendered (none for a step that decides).
    assert_eq!(steps[0].get("input"), None, "{run}");
    assert_eq!(
        steps[2]["input"],
        json!({"op": "patch", "app": "shop", "collection": "customers", "key": "cus_42",
               "body": {"status": "active", "lastPaid": 25}})
    );
    assert_eq!(steps[3]["input"]["eventType"], "customer.activated");
    assert_eq!(steps[2]["output"]["created"], true);
    assert_eq!(
        steps[2]["output"]["document"],
        json!({"status": "active", "lastPaid": 25})
    );

    // The record, as the data API reads it.
    let doc = ok(
        &server,
        Method::GET,
        "/api/v1/app/shop/collection/customers/document/cus_42",
        Value::Null,
    )
    .await;
    assert_eq!(doc["data"], json!({"status": "active", "lastPaid": 25}), "{doc}");

    // The event, signed as every message, its eventId the step's idempotency key.
    let got = receiver.wait_for("/events", 1, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"customer": "cus_42", "document": {"status": "active", "lastPaid": 25}})
    );
    let secret = server
        .svix()
        .endpoint()
        .get_secret("shop".into(), ep)
        .await
        .unwrap()
        .key;
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &common::http_headers(&got[0].headers))
        .expect("the published event verifies");
    let msg_id = steps[3]["output"]["messageId"].as_str().unwrap();
    let msg = ok(
        &server,
        Method::GET,
        &format!("/api/v1/app/shop/msg/{msg_id}"),
        Value::Null,
    )
    .await;
    assert_eq!(msg["eventType"], "customer.activated");
    assert_eq!(msg["eventId"], format!("{}.3", run["id"].as_str().unwrap()));

    // Under the threshold: the condition stops the run and nothing else runs.
    let small = ok(
        &server,
        Method::POST,
        "/api/v1/flow/invoice-paid/run",
        json!({"input": invoice(500)}),
    )
    .await;
    assert_eq!(small["status"], "stopped", "{small}");
    assert_eq!(small["steps"].as_array().unwrap().len(), 1);
    assert_eq!(small["steps"][0]["status"], "stopped");

    // The run log: newest first, filtered by flow and status.
    let (_, all) = call(&server, Method::GET, "/api/v1/flow-run?flow=invoice-paid", None).await;
    let ids: Vec<_> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [small["id"].clone(), run["id"].clone()]);
    let (_, stopped) = call(&server, Method::GET, "/api/v1/flow-run?status=stopped", None).await;
    assert_eq!(stopped["data"].as_array().unwrap().len(), 1);
    let created = small["createdAt"].as_str().unwrap();
    let encoded: String = url::form_urlencoded::byte_serialize(created.as_bytes()).collect();
    let (_, before) = call(
        &server,
        Method::GET,
        &format!("/api/v1/flow-run?before={encoded}"),
        None,
    )
    .await;
    let ids: Vec<_> = before["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids, [run["id"].clone()], "only the run started before the second");
    let (_, after) = call(
        &server,
        Method::GET,
        &format!("/api/v1/flow-run?after={encoded}"),
        None,
    )
    .await;
    assert!(after["data"].as_array().unwrap().is_empty(), "{after}");
    let (status, _) = call(&server, Method::GET, "/api/v1/flow-run?status=bogus", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, one) = call(
        &server,
        Method::GET,
        &format!("/api/v1/flow-run/{}", run["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(one["status"], "succeeded");
    assert_eq!(one["trigger"], invoice(2500));

    // Another organisation sees neither the flow nor its runs.
    let other = server.token_for("other-org").await;
    let resp = server
        .http()
        .get(server.url(&format!("/api/v1/flow-run/{}", run["id"].as_str().unwrap())))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = server
        .http()
        .get(server.url("/api/v1/flow/invoice-paid"))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn definitions_are_checked_and_mistakes_are_refused_at_their_field() {
    let server = TestServer::start().await;
    let refused = |body: Value, loc: Value| {
        let server = &server;
        async move {
            let (status, out) = call(server, Method::POST, "/api/v1/flow", Some(body.clone())).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {out}");
            assert_eq!(out["detail"][0]["loc"], loc, "{out}");
            out["detail"][0]["msg"].as_str().unwrap().to_owned()
        }
    };
    let manual = json!({"type": "manual"});
    // A template that does not parse, named by its pointer.
    refused(
        json!({"name": "f", "trigger": manual, "steps": [
            {"name": "a", "type": "condition", "filter": {"trigger": {"x": 1}}},
            {"name": "b", "type": "document.put", "app": "a", "collection": "c", "key": "{{ oops", "body": {}}
        ]}),
        json!(["body", "steps", "1", "key"]),
    )
    .await;
    // A response on a flow no mode runs, and a trigger naming what does not exist.
    refused(
        json!({"name": "f", "trigger": {"type": "message.created", "app": "nope"}, "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
        json!(["body", "trigger", "app"]),
    )
    .await;
    refused(
        json!({"name": "f", "trigger": manual, "response": {"status": 200}, "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
        json!(["body", "response"]),
    )
    .await;
    refused(
        json!({"name": "f", "trigger": manual, "steps": []}),
        json!(["body", "steps"]),
    )
    .await;
    refused(
        json!({"name": "f", "trigger": manual, "steps": [{"name": "x", "type": "teleport"}]}),
        json!(["body", "steps", "0"]),
    )
    .await;
    let (status, _) = call(&server, Method::POST, "/api/v1/flow", Some(json!([1, 2]))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // CRUD: by id or name; names are unique; PATCH merges; PUT replaces.
    let delay = json!({"name": "d", "type": "delay", "duration": "1h"});
    let created = ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "later", "trigger": manual, "steps": [delay]}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("flow_"), "{id}");
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(json!({"name": "later", "trigger": manual, "steps": [delay]})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let by_id = ok(&server, Method::GET, &format!("/api/v1/flow/{id}"), Value::Null).await;
    assert_eq!(by_id["name"], "later");
    let patched = ok(
        &server,
        Method::PATCH,
        "/api/v1/flow/later",
        json!({"enabled": false, "description": "waits"}),
    )
    .await;
    assert_eq!(
        (patched["enabled"].clone(), patched["description"].clone()),
        (json!(false), json!("waits"))
    );
    assert_eq!(patched["steps"], json!([delay]));
    let (status, out) = call(&server, Method::POST, "/api/v1/flow/later/run", Some(json!({}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "a disabled flow is not run: {out}");
    // A patch that breaks the definition is refused and changes nothing.
    let (status, _) = call(
        &server,
        Method::PATCH,
        "/api/v1/flow/later",
        Some(json!({"steps": []})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let replaced = ok(
        &server,
        Method::PUT,
        &format!("/api/v1/flow/{id}"),
        json!({"name": "sooner", "trigger": manual, "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
    )
    .await;
    assert_eq!(
        (replaced["name"].clone(), replaced["enabled"].clone()),
        (json!("sooner"), json!(true))
    );
    assert_eq!(replaced["description"], Value::Null);
    let (_, list) = call(&server, Method::GET, "/api/v1/flow", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Deleting a flow deletes its runs.
    let run = ok(&server, Method::POST, "/api/v1/flow/sooner/run", json!({})).await;
    assert_eq!(run["status"], "waiting", "{run}");
    let (status, _) = call(&server, Method::DELETE, "/api/v1/flow/sooner", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/api/v1/flow-run/{}", run["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&server, Method::GET, "/api/v1/flow/sooner", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&server, Method::GET, "/api/v1/flow-run/not-an-id", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}

#[tokio::test]
async fn validation_failures_and_hostile_code_end_the_run_with_the_error_recorded() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    // Failed runs are reported to the organisation's operational endpoints.
    let ops = Receiver::start().await;
    ok(
        &server,
        Method::POST,
        "/api/v1/operational-webhook/endpoint",
        json!({"url": format!("{}/ops", ops.url), "filterTypes": ["flow.run.failed"]}),
    )
    .await;
    let manual = json!({"type": "manual"});
    // docs/flows.md's second example.
    ok(
        &server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "Site", "uid": "site"}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/app/site/collection",
        json!({"name": "signups"}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "form", "trigger": manual, "steps": [
            {"name": "check", "type": "validate", "schema": {"type": "object", "required": ["email"],
                "properties": {"email": {"type": "string"}, "age": {"type": "integer", "minimum": 18}}}},
            {"name": "keep", "type": "document.put", "app": "site", "collection": "signups",
             "key": "{{ run.id }}", "body": "{{ trigger.body }}"}
        ]}),
    )
    .await;
    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/form/run",
        json!({"input": {"body": {"age": 12}}}),
    )
    .await;
    assert_eq!(run["status"], "invalid", "{run}");
    let errors = run["steps"][0]["output"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "one error per failing rule: {errors:?}");
    assert_eq!(
        run["steps"].as_array().unwrap().len(),
        1,
        "nothing runs after a failed validation"
    );
    let (_, kept) = call(
        &server,
        Method::GET,
        "/api/v1/app/site/collection/signups/document",
        None,
    )
    .await;
    assert_eq!(
        kept["data"].as_array().unwrap().len(),
        0,
        "nothing is kept: {kept}"
    );
    let good = ok(
        &server,
        Method::POST,
        "/api/v1/flow/form/run",
        json!({"input": {"body": {"email": "a@example.com", "age": 30}}}),
    )
    .await;
    assert_eq!(good["status"], "succeeded", "{good}");
    let doc = ok(
        &server,
        Method::GET,
        &format!(
            "/api/v1/app/site/collection/signups/document/{}",
            good["id"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    assert_eq!(doc["data"], json!({"email": "a@example.com", "age": 30}));

    // A transform that never ends, and one that throws: each run fails with the
    // sandbox's message, and the next run of another flow is unaffected.
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "spin", "trigger": manual, "steps": [
            {"name": "forever", "type": "transform", "code": "function handler(i) { while (true) {} }"}]}),
    )
    .await;
    let spun = ok(&server, Method::POST, "/api/v1/flow/spin/run", json!({})).await;
    let reported = ops.wait_for("/ops", 1, Duration::from_secs(10)).await;
    let event: Value = serde_json::from_slice(&reported[0].body).unwrap();
    assert_eq!(event["type"], "flow.run.failed", "{event}");
    assert_eq!(event["data"]["runId"], spun["id"]);
    assert_eq!(event["data"]["flowName"], "spin");
    assert_eq!(event["data"]["step"], "forever");
    assert!(
        event["data"]["error"].as_str().unwrap().contains("stopped"),
        "{event}"
    );
    assert_eq!(spun["status"], "failed", "{spun}");
    assert!(spun["error"].as_str().unwrap().contains("stopped"), "{spun}");
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "throws", "trigger": manual, "steps": [
            {"name": "boom", "type": "transform", "code": "function handler(i) { throw new Error('no ' + i.trigger.what); }"}]}),
    )
    .await;
    let thrown = ok(
        &server,
        Method::POST,
        "/api/v1/flow/throws/run",
        json!({"input": {"what": "way"}}),
    )
    .await;
    assert_eq!(thrown["status"], "failed");
    assert!(
        thrown["steps"][0]["error"].as_str().unwrap().contains("no way"),
        "{thrown}"
    );
    // A template that runs away is stopped by its fuel; a missing value is an error.
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "loops", "trigger": manual, "steps": [
            {"name": "w", "type": "document.put", "app": "none", "collection": "c",
             "key": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "body": {}},
        ]}),
    )
    .await;
    let looped = ok(&server, Method::POST, "/api/v1/flow/loops/run", json!({})).await;
    assert_eq!(looped["status"], "failed", "{looped}");
    assert!(
        looped["error"].as_str().unwrap().starts_with("w: key:"),
        "{looped}"
    );
    // A document step into an application that does not exist fails, named.
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "nowhere", "trigger": manual, "steps": [
            {"name": "w", "type": "document.put", "app": "none", "collection": "c", "key": "k", "body": {}}]}),
    )
    .await;
    let nowhere = ok(&server, Method::POST, "/api/v1/flow/nowhere/run", json!({})).await;
    assert_eq!(nowhere["status"], "failed");
    assert!(
        nowhere["error"]
            .as_str()
            .unwrap()
            .contains("application \"none\" not found"),
        "{nowhere}"
    );
    let good = ok(
        &server,
        Method::POST,
        "/api/v1/flow/form/run",
        json!({"input": {"body": {"email": "b@example.com"}}}),
    )
    .await;
    assert_eq!(good["status"], "succeeded");
    server.stop().await;
}

#[tokio::test]
async fn a_waiting_run_is_canceled_and_a_failed_run_is_run_again_from_its_step() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    shop(&server, &receiver).await;
    let manual = json!({"type": "manual"});
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "slow", "trigger": manual, "steps": [
            {"name": "wait", "type": "delay", "duration": "1h"},
            {"name": "write", "type": "document.put", "app": "shop", "collection": "customers", "key": "never", "body": {}}]}),
    )
    .await;
    let run = ok(&server, Method::POST, "/api/v1/flow/slow/run", json!({})).await;
    assert_eq!(run["status"], "waiting");
    assert!(run["wakeAt"].is_string(), "{run}");
    let id = run["id"].as_str().unwrap();
    let canceled = ok(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(canceled["status"], "canceled");
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/cancel"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "an ended run is not canceled twice");

    // A write the collection's schema refuses fails the step; once the flow is
    // fixed, the run is run again from that step and the earlier steps are kept.
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "lapse", "trigger": manual, "steps": [
            {"name": "who", "type": "transform", "code": "function handler(i) { return {id: 'cus_7'}; }"},
            {"name": "write", "type": "document.put", "app": "shop", "collection": "customers",
             "key": "{{ steps.who.id }}", "body": {"status": "gone"}}]}),
    )
    .await;
    let failed = ok(&server, Method::POST, "/api/v1/flow/lapse/run", json!({})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["steps"][1]["status"], "failed");
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/v1/app/shop/collection/customers/document/cus_7",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a refused write writes nothing");
    let id = failed["id"].as_str().unwrap();
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/rerun"),
        Some(json!({"fromStep": "nope"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    ok(
        &server,
        Method::PATCH,
        "/api/v1/flow/lapse",
        json!({"steps": [
            {"name": "who", "type": "transform", "code": "function handler(i) { throw new Error('must not run again'); }"},
            {"name": "write", "type": "document.put", "app": "shop", "collection": "customers",
             "key": "{{ steps.who.id }}", "body": {"status": "lapsed"}}]}),
    )
    .await;
    let again = ok(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/rerun"),
        json!({"fromStep": "write"}),
    )
    .await;
    assert_eq!(again["id"], failed["id"]);
    let done = common::ended_run(&server, id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["steps"][0], failed["steps"][0],
        "the first step is not run again"
    );
    let doc = ok(
        &server,
        Method::GET,
        "/api/v1/app/shop/collection/customers/document/cus_7",
        Value::Null,
    )
    .await;
    assert_eq!(doc["data"], json!({"status": "lapsed"}));
    let (status, _) = call(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/rerun"),
        Some(json!({})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an ended run may be run again from the start"
    );
    server.stop().await;
}

/// hookd as a process on `db`, with a short lease.
async fn start(db: &str) -> process::Process {
    process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", db),
            ("HOOKD_DELIVERY_TIMEOUT", "1s"),
            ("HOOKD_DELIVERY_LEASE", "2s"),
            ("HOOKD_NODE_ID", "node-1"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_delay_outlives_a_sigkill_and_its_next_step_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path()).await;
    let mut hookd = start(&db.url).await;
    let base = hookd.base.clone();
    let token = process::create_token(&db.url, "durable");
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    post("/api/v1/app", json!({"name": "a", "uid": "a"}))
        .await
        .unwrap();
    post("/api/v1/app/a/collection", json!({"name": "hits"}))
        .await
        .unwrap();
    let resp = post(
        "/api/v1/flow",
        json!({"name": "later", "trigger": {"type": "manual"}, "steps": [
            {"name": "wait", "type": "delay", "duration": "2s"},
            {"name": "count", "type": "document.increment", "app": "a", "collection": "hits", "key": "k", "by": {"n": 1}}]}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let run: Value = post("/api/v1/flow/later/run", json!({}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(run["status"], "waiting", "{run}");
    let id = run["id"].as_str().unwrap().to_owned();
    hookd.kill();

    let hookd = start(&db.url).await;
    let base = hookd.base.clone();
    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(&token).send();
    let done = process::ended_run(&base, &token, &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let doc: Value = get("/api/v1/app/a/collection/hits/document/k".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["data"], json!({"n": 1}), "the step after the delay ran once");
    drop(hookd);
}

#[tokio::test]
async fn a_publish_step_tried_again_finds_its_message_and_a_rerun_publishes_anew() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    shop(&server, &receiver).await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "notify", "trigger": {"type": "manual"}, "steps": [
            {"name": "wait", "type": "delay", "duration": "1s"},
            {"name": "tell", "type": "message.publish", "app": "shop", "eventType": "order.shipped",
             "payload": {"order": "{{ trigger.order }}"}, "channels": ["orders"]}]}),
    )
    .await;
    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/notify/run",
        json!({"input": {"order": 7}}),
    )
    .await;
    assert_eq!(run["status"], "waiting");
    let id = run["id"].as_str().unwrap().to_owned();
    // What a crash leaves behind: the message of step 1 committed, the step not.
    let made = ok(
        &server,
        Method::POST,
        "/api/v1/app/shop/msg",
        json!({"eventType": "order.shipped", "eventId": format!("{id}.1"), "payload": {"order": 7}}),
    )
    .await;
    let done = common::ended_run(&server, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["steps"][1]["output"]["messageId"], made["id"],
        "the step found its message"
    );
    receiver.wait_for("/events", 1, Duration::from_secs(10)).await;
    let (_, msgs) = call(&server, Method::GET, "/api/v1/app/shop/msg", None).await;
    assert_eq!(
        msgs["data"].as_array().unwrap().len(),
        1,
        "no second message: {msgs}"
    );

    // A deliberate re-run publishes again, under a new event id.
    ok(
        &server,
        Method::POST,
        &format!("/api/v1/flow-run/{id}/rerun"),
        json!({"fromStep": "tell"}),
    )
    .await;
    let again = common::ended_run(&server, &id).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    assert_eq!(again["steps"][1]["output"]["eventId"], format!("{id}.1.r1"));
    assert_ne!(again["steps"][1]["output"]["messageId"], made["id"]);
    let got = receiver.wait_for("/events", 2, Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&got[1].body).unwrap(),
        json!({"order": 7})
    );
    server.stop().await;
}

#[tokio::test]
async fn an_http_step_is_signed_keyed_retried_and_guarded() {
    let server = TestServer::start_with(&[
        ("HOOKD_SECRET_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", "200ms,200ms"),
    ])
    .await;
    let receiver = Receiver::start().await;
    receiver.script([common::receiver::Answer::status(503)]);
    receiver.answer_always(common::receiver::Answer {
        status: 200,
        delay: Duration::ZERO,
        headers: vec![("content-type", "application/json".into())],
        body: Some(json!({"accepted": true}).to_string()),
    });
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    ok(
        &server,
        Method::PUT,
        "/api/v1/flow-secret/partner",
        json!({"value": {"secret": secret}}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "notify-partner", "trigger": {"type": "manual"}, "steps": [
            {"name": "call", "type": "http", "method": "PUT", "url": format!("{}/orders/{{{{ trigger.id }}}}", receiver.url),
             "headers": {"x-order": "{{ trigger.id }}", "Authorization": "Bearer partner-token-1"},
             "body": {"order": "{{ trigger.id }}", "total": "{{ trigger.total }}"},
             "signWith": "partner"},
            {"name": "keep", "type": "transform", "code": "function handler(i) { return i.steps.call.body; }"}]}),
    )
    .await;
    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/notify-partner/run",
        json!({"input": {"id": "o-9", "total": 12}}),
    )
    .await;
    let id = run["id"].as_str().unwrap().to_owned();
    let done = common::ended_run(&server, &id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["attempts"], 2, "a 503 is tried again: {done}");
    assert_eq!(
        done["steps"][0]["output"],
        json!({"status": 200, "body": {"accepted": true}})
    );
    assert_eq!(done["steps"][1]["output"], json!({"accepted": true}));
    // The step's input is in the run log, its authorization hidden.
    let input = &done["steps"][0]["input"];
    assert_eq!(input["method"], "PUT");
    assert_eq!(
        input["headers"],
        json!({"x-order": "o-9", "Authorization": "[hidden]"})
    );
    assert_eq!(input["body"], json!({"order": "o-9", "total": 12}));
    assert!(!done.to_string().contains("partner-token-1"), "{done}");
    let got = receiver.received_on("/orders/o-9");
    assert_eq!(got.len(), 2);
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(second.method, Method::PUT);
    assert_eq!(
        serde_json::from_slice::<Value>(&second.body).unwrap(),
        json!({"order": "o-9", "total": 12})
    );
    assert_eq!(second.headers["x-order"], "o-9");
    assert_eq!(second.headers["authorization"], "Bearer partner-token-1");
    assert_eq!(second.headers["idempotency-key"], format!("{id}.0"));
    assert_eq!(
        first.headers["idempotency-key"], second.headers["idempotency-key"],
        "every try carries the same key"
    );
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&second.body, &common::http_headers(&second.headers))
        .expect("the partner verifies the signature");

    // A server that answers an endless body: the first 64 KiB are kept, no more.
    receiver.script([common::receiver::Answer {
        status: 200,
        delay: Duration::ZERO,
        headers: vec![],
        body: Some("x".repeat(4 * 1024 * 1024)),
    }]);
    let big = ok(
        &server,
        Method::POST,
        "/api/v1/flow-run/{id}/rerun".replace("{id}", &id).as_str(),
        json!({}),
    )
    .await;
    assert_eq!(big["id"], done["id"]);
    let again = common::ended_run(&server, &id).await;
    assert_eq!(again["status"], "succeeded", "{}", again["error"]);
    let kept = again["steps"][0]["output"]["body"].as_str().unwrap();
    assert_eq!(kept.len(), 64 * 1024);
    server.stop().await;

    // Without the loopback allowance the same step is refused by the guard, once.
    let server = TestServer::start().await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "inside", "trigger": {"type": "manual"}, "steps": [
            {"name": "call", "type": "http", "url": format!("{}/x", receiver.url)}]}),
    )
    .await;
    let run = ok(&server, Method::POST, "/api/v1/flow/inside/run", json!({})).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap().contains("network policy"), "{run}");
    assert_eq!(receiver.received_on("/x").len(), 0);
    server.stop().await;
}
