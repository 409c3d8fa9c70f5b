//! Tenant isolation, for every route of the OpenAPI document: organisation A makes one
//! of everything, then organisation B's token calls every operation with A's ids, and
//! an unrelated token calls every operation. B gets 401/403/404/405/422, never a 2xx or
//! a 5xx on A's objects, and never sees one of A's ids or secrets in any answer; the
//! unrelated token gets 401; A's objects are unchanged afterwards.
//!
//! The routes come from the served document, so a route added later is walked without
//! anyone remembering to. A path parameter the walk has no value for fails the test:
//! add the object to `set_up` and its id to `Ids::value`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::TestServer;
use common::receiver::Receiver;
use reqwest::Method;
use serde_json::{Value, json};

/// A's objects, by the path parameter that names them.
#[derive(Debug, Default)]
struct Ids {
    by_param: BTreeMap<&'static str, String>,
    /// Text that must never appear in an answer to B: ids, secrets, tokens.
    secrets: Vec<String>,
}

impl Ids {
    fn set(&mut self, param: &'static str, value: &str) {
        self.by_param.insert(param, value.to_owned());
        self.secrets.push(value.to_owned());
    }

    /// The value of a path parameter for `path` (some names depend on the route).
    fn value(&self, path: &str, param: &str) -> Option<String> {
        let key: &str = match param {
            "name" if path.contains("/collection/") => "collection",
            "name" if path.contains("/leaderboard/") => "leaderboard",
            "name" if path.contains("/mode/") => "mode",
            "name" if path.contains("/flow-secret/") => "flow_secret",
            "endpoint_id" if path.starts_with("/api/v1/operational-webhook") => "operational_endpoint",
            "endpoint_id" if path.starts_with("/ingest/") => "destination",
            other => other,
        };
        self.by_param.get(key).cloned()
    }
}

async fn ok(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let (status, out) = common::call(server, method.clone(), path, Some(body)).await;
    assert!(status.is_success(), "{method} {path}: {status} {out}");
    out
}

/// One of everything in organisation A.
async fn set_up(server: &TestServer, receiver: &Receiver) -> Ids {
    let mut ids = Ids::default();
    let app = ok(
        server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "A's app", "uid": "a-app"}),
    )
    .await;
    let app_id = app["id"].as_str().unwrap().to_owned();
    ids.set("app_id", &app_id);
    ok(
        server,
        Method::POST,
        "/api/v1/event-type",
        json!({"name": "a.created", "description": "A's"}),
    )
    .await;
    ids.by_param.insert("event_type_name", "a.created".into());
    let ep = ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/endpoint"),
        json!({"url": format!("{}/a", receiver.url), "uid": "a-endpoint"}),
    )
    .await;
    let ep_id = ep["id"].as_str().unwrap().to_owned();
    ids.set("endpoint_id", &ep_id);
    let secret = ok(
        server,
        Method::GET,
        &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret"),
        Value::Null,
    )
    .await;
    ids.secrets.push(secret["key"].as_str().unwrap().to_owned());
    let msg = ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/msg"),
        json!({"eventType": "a.created", "payload": {"secret-payload": "a-private-payload"}}),
    )
    .await;
    let msg_id = msg["id"].as_str().unwrap().to_owned();
    ids.set("msg_id", &msg_id);
    ids.secrets.push("a-private-payload".into());
    receiver.wait_for("/a", 1, Duration::from_secs(10)).await;
    let attempts = common::settle(
        || async {
            ok(
                server,
                Method::GET,
                &format!("/api/v1/app/{app_id}/attempt/msg/{msg_id}"),
                Value::Null,
            )
            .await
        },
        |a| a["data"].as_array().is_some_and(|d| !d.is_empty()),
    )
    .await;
    ids.set("attempt_id", attempts["data"][0]["id"].as_str().unwrap());
    let task = ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/endpoint/{ep_id}/recover"),
        json!({"since": "2020-01-01T00:00:00Z"}),
    )
    .await;
    ids.set("task_id", task["id"].as_str().unwrap());
    // The data API: a collection with a document, a leaderboard with a score, a mode,
    // an API key.
    ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/collection"),
        json!({"name": "things"}),
    )
    .await;
    ids.by_param.insert("collection", "things".into());
    ok(
        server,
        Method::PUT,
        &format!("/api/v1/app/{app_id}/collection/things/document/doc-1"),
        json!({"a-private-field": 1}),
    )
    .await;
    ids.by_param.insert("key", "doc-1".into());
    ids.secrets.push("a-private-field".into());
    ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/leaderboard"),
        json!({"name": "points", "policy": "best"}),
    )
    .await;
    ids.by_param.insert("leaderboard", "points".into());
    ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/mode"),
        json!({"name": "score", "method": "POST", "operation": "leaderboard.submit", "target": "points"}),
    )
    .await;
    ids.by_param.insert("mode", "score".into());
    ids.by_param.insert("method", "POST".into());
    ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/leaderboard/points/score/player-a"),
        json!({"score": 10}),
    )
    .await;
    ids.by_param.insert("player", "player-a".into());
    let key = ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app_id}/api-key"),
        json!({"name": "k", "scopes": ["read"]}),
    )
    .await;
    ids.set("key_id", key["id"].as_str().unwrap());
    ids.secrets.push(key["key"].as_str().unwrap().to_owned());
    // Flows: a flow, a run of it, a secret.
    let flow = ok(
        server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "a-flow", "trigger": {"type": "manual"},
               "steps": [{"name": "shape", "type": "transform", "code": "function handler(i) { return {x: 1}; }"}]}),
    )
    .await;
    let flow_id = flow["id"].as_str().unwrap().to_owned();
    ids.set("flow_id", &flow_id);
    let run = ok(
        server,
        Method::POST,
        &format!("/api/v1/flow/{flow_id}/run"),
        json!({"input": {}}),
    )
    .await;
    ids.set("run_id", run["id"].as_str().unwrap());
    ok(
        server,
        Method::PUT,
        "/api/v1/flow-secret/a-secret",
        json!({"value": {"password": "a-flow-secret-value"}}),
    )
    .await;
    ids.by_param.insert("flow_secret", "a-secret".into());
    ids.secrets.push("a-flow-secret-value".into());
    // An operational webhook endpoint.
    let op = ok(
        server,
        Method::POST,
        "/api/v1/operational-webhook/endpoint",
        json!({"url": format!("{}/op", receiver.url)}),
    )
    .await;
    ids.set("operational_endpoint", op["id"].as_str().unwrap());
    // A source with a destination and a logged request.
    let source = ok(
        server,
        Method::POST,
        "/ingest/api/v1/source",
        json!({"name": "a-source", "type": "generic-webhook"}),
    )
    .await;
    let source_id = source["id"].as_str().unwrap().to_owned();
    ids.set("source_id", &source_id);
    let ingest_url = source["ingestUrl"].as_str().unwrap().to_owned();
    ids.secrets
        .push(ingest_url.rsplit('/').next().unwrap().to_owned());
    let dest = ok(
        server,
        Method::POST,
        &format!("/ingest/api/v1/source/{source_id}/endpoint"),
        json!({"url": format!("{}/dest", receiver.url)}),
    )
    .await;
    ids.set("destination", dest["id"].as_str().unwrap());
    let sent = server
        .http()
        .post(&ingest_url)
        .body("{\"a-ingest\":true}")
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success());
    let log = ok(
        server,
        Method::GET,
        &format!("/ingest/api/v1/source/{source_id}/log"),
        Value::Null,
    )
    .await;
    ids.set("log_id", log["data"][0]["id"].as_str().unwrap());
    ids
}

/// A body that passes validation for the route, so B's call reaches the lookup of A's
/// object (a 422 would prove nothing). A new route whose body this does not know fails
/// the walk with a 422: add its body here.
fn body_for(method: &Method, path: &str) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    let since = json!({"since": "2020-01-01T00:00:00Z"});
    let last = path.rsplit('/').next().unwrap_or_default();
    let body = match (method.as_str(), last) {
        (_, "msg") => json!({"eventType": "a.created", "payload": {}}),
        (_, "endpoint" | "{endpoint_id}") => {
            json!({"url": "https://example.com/b", "description": "B was here"})
        }
        (_, "{player}") => json!({"score": 99}),
        (_, "{key}") => json!({"b": 1}),
        (_, "increment") => json!({"field": "b", "by": 1}),
        (_, "headers") => json!({"headers": {"x-b": "1"}}),
        (_, "api-key") => json!({"name": "k", "scopes": ["read"]}),
        (_, "bulk-replay" | "recover" | "replay-missing" | "replay") => since,
        (_, "test") => json!({"eventType": "a.created", "payload": {}}),
        (_, "send-example") => json!({"eventType": "a.created"}),
        ("PATCH", "transformation") => json!({"enabled": false}),
        (_, "simulate") => {
            json!({"code": "function handler(w) { return w }", "eventType": "a.created", "payload": {}})
        }
        (_, "mode") => {
            json!({"name": "b-mode", "method": "POST", "operation": "leaderboard.submit", "target": "points"})
        }
        ("PATCH", "{name}" | "{method}") => json!({"description": "B was here"}),
        (_, "rerun" | "cancel" | "expire-all" | "rotate" | "reset" | "expunge-all-contents") => json!({}),
        (_, "run") => json!({"input": {}}),
        (_, "{source_id}") => json!({"name": "b-source", "type": "generic-webhook"}),
        _ if path.starts_with("/api/v1/flow-secret/") => json!({"value": {"b": 1}}),
        _ => json!({"name": "b-name", "description": "B was here"}),
    };
    Some(body)
}

/// Routes where B acting by name acts on B's own namespace (a PUT by name creates B's
/// own object), so a 2xx is not A's object.
fn own_namespace(method: &Method, path: &str) -> bool {
    *method == Method::PUT
        && (path == "/api/v1/event-type/{event_type_name}" || path == "/api/v1/flow-secret/{name}")
}

/// The document's operations: (method, path template, whether it needs a token).
async fn operations(server: &TestServer) -> Vec<(Method, String, bool)> {
    let doc: Value = server
        .http()
        .get(server.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if !matches!(
                method,
                Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE
            ) {
                continue;
            }
            let public = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty())));
            ops.push((method, path.clone(), !public));
        }
    }
    ops
}

fn fill(path: &str, ids: &Ids) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        let param = &rest[start + 1..end];
        let value = ids
            .value(path, param)
            .unwrap_or_else(|| panic!("no value of A's for `{param}` in {path}: add it to set_up"));
        out.push_str(&rest[..start]);
        out.push_str(&value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A's objects as A sees them, to compare after B's walk.
async fn snapshot(server: &TestServer, ids: &Ids) -> Vec<Value> {
    let app = &ids.by_param["app_id"];
    let mut paths = vec![
        format!("/api/v1/app/{app}"),
        format!("/api/v1/app/{app}/endpoint/{}", ids.by_param["endpoint_id"]),
        format!(
            "/api/v1/app/{app}/endpoint/{}/headers",
            ids.by_param["endpoint_id"]
        ),
        format!(
            "/api/v1/app/{app}/endpoint/{}/secret",
            ids.by_param["endpoint_id"]
        ),
        format!("/api/v1/app/{app}/msg/{}", ids.by_param["msg_id"]),
        format!("/api/v1/app/{app}/collection/things/document/doc-1"),
        format!("/api/v1/app/{app}/leaderboard/points/top"),
        format!("/api/v1/app/{app}/mode"),
        format!("/api/v1/app/{app}/api-key"),
        "/api/v1/event-type/a.created".into(),
        format!("/api/v1/flow/{}", ids.by_param["flow_id"]),
        "/api/v1/flow-secret".into(),
        format!(
            "/api/v1/operational-webhook/endpoint/{}",
            ids.by_param["operational_endpoint"]
        ),
        format!("/ingest/api/v1/source/{}", ids.by_param["source_id"]),
        format!(
            "/ingest/api/v1/source/{}/endpoint/{}",
            ids.by_param["source_id"], ids.by_param["destination"]
        ),
    ];
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let (status, body) = common::call(server, Method::GET, &p, None).await;
        assert!(status.is_success(), "A's own {p}: {status} {body}");
        out.push(json!({"path": p, "body": body}));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_organisation_reaches_none_of_a_s_objects_on_any_route() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_SECRET_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ])
    .await;
    let ids = set_up(&server, &receiver).await;
    let before = snapshot(&server, &ids).await;
    let b_token = server.token_for("organisation-b").await;
    let bogus = "hk_00000000000000000000000000_not-a-real-token";
    let ops = operations(&server).await;
    assert!(ops.len() > 100, "the document lists {} operations", ops.len());
    let mut walked = BTreeMap::<u16, usize>::new();
    for (method, template, needs_token) in &ops {
        let path = fill(template, &ids);
        let with_ids = template.contains('{');
        for (who, token) in [("B", b_token.as_str()), ("a stranger", bogus)] {
            let mut req = server
                .http()
                .request(method.clone(), server.url(&path))
                .bearer_auth(token)
                .timeout(Duration::from_secs(20));
            if let Some(body) = body_for(method, template) {
                req = req.json(&body);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let said = format!("{who}: {method} {template} -> {status} {text}");
            assert!(status < 500, "{said}");
            for secret in &ids.secrets {
                assert!(!text.contains(secret.as_str()), "A's `{secret}` shown to {said}");
            }
            if who == "a stranger" {
                if *needs_token {
                    assert_eq!(status, 401, "{said}");
                }
                continue;
            }
            *walked.entry(status).or_default() += 1;
            if with_ids && !own_namespace(method, template) {
                assert!(matches!(status, 401 | 403 | 404), "B reached A's object: {said}");
            }
        }
    }
    eprintln!("B's answers over {} operations: {walked:?}", ops.len());
    // Most calls named an object B cannot see: 404.
    assert!(
        walked.get(&404).copied().unwrap_or(0) > ops.len() / 2,
        "{walked:?}"
    );
    // Nothing B did changed A's objects.
    let after = snapshot(&server, &ids).await;
    assert_eq!(before, after);
    server.stop().await;
}
