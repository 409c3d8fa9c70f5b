//! Transformations on sending: set and read through the official SDK, run at each
//! attempt (method, URL, headers and payload rewritten, the signature over the new
//! body), `cancel`, a failing script recorded on the attempt and retried on schedule
//! (a fix reaches the pending retry), checks at save time, and `simulate`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{TestServer, settle, wait_for_attempts};
use reqwest::Method;
use serde_json::{Value, json};
use svix::models::*;

async fn server() -> TestServer {
    TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
        ("HOOKD_RETRY_SCHEDULE", "1s,1s,1s"),
    ])
    .await
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// An application with one endpoint at `receiver`/`path`: (app id, endpoint id).
async fn endpoint(server: &TestServer, receiver: &Receiver, path: &str) -> (String, String) {
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn::new(format!("{}{path}", receiver.url)),
            None,
        )
        .await
        .unwrap();
    (app.id, ep.id)
}

async fn raw_attempts(server: &TestServer, app: &str, msg: &str) -> Vec<Value> {
    let (status, page) = json_of(
        server
            .req(Method::GET, &format!("/api/v1/app/{app}/attempt/msg/{msg}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_transformation_set_through_the_sdk_rewrites_what_is_sent_and_the_receiver_verifies_it() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let (app, ep) = endpoint(&server, &receiver, "/original").await;

    let before = svix
        .endpoint()
        .transformation()
        .get(app.clone(), ep.clone())
        .await
        .unwrap();
    assert_eq!(before.enabled, Some(false));
    assert_eq!(before.code, None);

    let code = format!(
        r#"function handler(webhook) {{
    webhook.method = "PUT";
    webhook.url = "{}/rewritten?type=" + webhook.eventType;
    webhook.headers["X-Shop-Token"] = webhook.variables.token;
    webhook.payload = {{ text: "order " + webhook.payload.id + " paid", channels: webhook.channels }};
    return webhook;
}}"#,
        receiver.url
    );
    let mut patch = EndpointTransformationPatch::new();
    patch.code = js_option::JsOption::Some(code.clone());
    patch.enabled = Some(true);
    patch.variables = js_option::JsOption::Some([("token".to_owned(), "t0k".to_owned())].into());
    svix.endpoint()
        .transformation()
        .patch(app.clone(), ep.clone(), patch)
        .await
        .unwrap();
    let got = svix
        .endpoint()
        .transformation()
        .get(app.clone(), ep.clone())
        .await
        .unwrap();
    assert_eq!(got.code.as_deref(), Some(code.as_str()));
    assert_eq!(got.enabled, Some(true));
    assert_eq!(got.variables.unwrap()["token"], "t0k");
    assert!(got.updated_at.is_some());

    let mut msg = MessageIn::new("order.paid".into(), json!({"id": 42}));
    msg.channels = Some(["eu".to_owned()].into());
    let msg = svix.message().create(app.clone(), msg, None).await.unwrap();
    let got = receiver.wait_for("/rewritten", 1, Duration::from_secs(10)).await;
    assert!(receiver.received_on("/original").is_empty());
    let r = &got[0];
    assert_eq!(r.method, reqwest::Method::PUT);
    assert_eq!(r.query, "type=order.paid");
    assert_eq!(r.headers["x-shop-token"], "t0k");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"text": "order 42 paid", "channels": ["eu"]}));
    // The signature is over the body that was sent.
    let secret = svix
        .endpoint()
        .get_secret(app.clone(), ep.clone())
        .await
        .unwrap()
        .key;
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, r.headers[name].clone());
    }
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .unwrap();

    wait_for_attempts(&svix, &app, &msg.id, 1).await;
    let attempts = raw_attempts(&server, &app, &msg.id).await;
    assert_eq!(attempts[0]["transformed"], json!(true), "{attempts:?}");
    assert_eq!(attempts[0]["status"], json!(0));
    assert!(
        attempts[0]["url"]
            .as_str()
            .unwrap()
            .ends_with("/rewritten?type=order.paid")
    );

    // Switched off: the next message goes as it is.
    let mut off = EndpointTransformationPatch::new();
    off.enabled = Some(false);
    svix.endpoint()
        .transformation()
        .patch(app.clone(), ep.clone(), off)
        .await
        .unwrap();
    svix.message()
        .create(
            app.clone(),
            MessageIn::new("order.paid".into(), json!({"id": 43})),
            None,
        )
        .await
        .unwrap();
    let plain = receiver.wait_for("/original", 1, Duration::from_secs(10)).await;
    assert_eq!(plain[0].method, reqwest::Method::POST);
    assert_eq!(
        serde_json::from_slice::<Value>(&plain[0].body).unwrap(),
        json!({"id": 43})
    );
    let kept = svix
        .endpoint()
        .transformation()
        .get(app.clone(), ep.clone())
        .await
        .unwrap();
    assert_eq!(
        kept.code.as_deref(),
        Some(code.as_str()),
        "switching off keeps the code"
    );
}

#[tokio::test]
async fn a_transformation_that_cancels_records_a_canceled_attempt_and_sends_nothing() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let (app, ep) = endpoint(&server, &receiver, "/hook").await;
    let res = server
        .req(Method::PATCH, &format!("/api/v1/app/{app}/endpoint/{ep}/transformation"))
        .json(&json!({"code": "function handler(w) { w.cancel = w.payload.test === true; return w }", "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let skipped = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("order.paid".into(), json!({"test": true})),
            None,
        )
        .await
        .unwrap();
    let sent = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("order.paid".into(), json!({"test": false})),
            None,
        )
        .await
        .unwrap();
    receiver.wait_for("/hook", 1, Duration::from_secs(10)).await;
    // The SDK asks for expanded statuses (status 4) unless told otherwise.
    let attempts = wait_for_attempts(&svix, &app, &skipped.id, 1).await;
    assert_eq!(attempts[0].status, MessageStatus::Canceled);
    assert!(
        attempts[0]
            .response
            .contains("canceled by the endpoint's transformation")
    );
    // expanded_statuses=false (and a plain request, which defaults to it): a canceled
    // attempt answers as a success, as Svix answers clients that know no status 4.
    let narrow = svix
        .message_attempt()
        .list_by_msg(
            app.clone(),
            skipped.id.clone(),
            Some(svix::api::MessageAttemptListByMsgOptions {
                expanded_statuses: Some(false),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(narrow[0].status, MessageStatus::Success);
    let plain = server
        .req(
            Method::GET,
            &format!("/api/v1/app/{app}/attempt/msg/{}", skipped.id),
        )
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(plain["data"][0]["status"], 0);
    assert_eq!(plain["data"][0]["statusText"], "success");
    let status = settle(
        || async {
            svix.message_attempt()
                .list_attempted_destinations(app.clone(), skipped.id.clone(), None)
                .await
                .unwrap()
                .data[0]
                .status
        },
        |s| *s == MessageStatus::Canceled,
    )
    .await;
    assert_eq!(status, MessageStatus::Canceled);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.count(), 1, "the canceled message is never retried");
    assert_eq!(
        wait_for_attempts(&svix, &app, &sent.id, 1).await[0].status,
        MessageStatus::Success
    );
}

#[tokio::test]
async fn a_failing_transformation_fails_the_attempt_with_its_error_and_a_fix_reaches_the_pending_retry() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let (app, ep) = endpoint(&server, &receiver, "/hook").await;
    let set = |code: &'static str| {
        server
            .req(
                Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/{ep}/transformation"),
            )
            .json(&json!({"code": code, "enabled": true}))
            .send()
    };
    assert_eq!(
        set("function handler(w) {\n  return w.payload.missing.deeper;\n}")
            .await
            .unwrap()
            .status(),
        204
    );
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("order.paid".into(), json!({"id": 1})),
            None,
        )
        .await
        .unwrap();
    let attempts = wait_for_attempts(&svix, &app, &msg.id, 1).await;
    let failed = &attempts[0];
    assert_eq!(failed.status, MessageStatus::Fail);
    assert_eq!(failed.response_status_code, 0);
    assert!(
        failed.response.starts_with("transformation failed: TypeError")
            && failed.response.contains("(line 2, column"),
        "{}",
        failed.response
    );
    // An endless loop is stopped at the time limit, and recorded the same way.
    assert_eq!(
        set("function handler(w) { while (true) {} }")
            .await
            .unwrap()
            .status(),
        204
    );
    let attempts = wait_for_attempts(&svix, &app, &msg.id, 2).await;
    assert!(
        attempts[0].response.contains("ran longer than 50ms"),
        "{}",
        attempts[0].response
    );
    assert_eq!(receiver.count(), 0);
    // The fix applies to the retry already scheduled.
    assert_eq!(
        set("function handler(w) { w.payload.fixed = true; return w }")
            .await
            .unwrap()
            .status(),
        204
    );
    let got = receiver.wait_for("/hook", 1, Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&got[0].body).unwrap(),
        json!({"id": 1, "fixed": true})
    );
    let attempts = wait_for_attempts(&svix, &app, &msg.id, 3).await;
    assert_eq!(attempts[0].status, MessageStatus::Success);
    let ep_now = svix.endpoint().get(app.clone(), ep.clone()).await.unwrap();
    assert!(
        !ep_now.disabled.unwrap_or(false),
        "script errors alone did not disable the endpoint"
    );
}

#[tokio::test]
async fn bad_code_and_bad_settings_are_refused_when_saved() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, ep) = endpoint(&server, &receiver, "/hook").await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/transformation");
    let patch = |body: Value| server.req(Method::PATCH, &path).json(&body).send();
    let (status, err) = json_of(
        patch(json!({"code": "function handler(w) {\n  return w +;\n}"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "code"]));
    assert!(
        err["detail"][0]["msg"].as_str().unwrap().contains("SyntaxError"),
        "{err}"
    );
    let (status, err) = json_of(patch(json!({"enabled": true})).await.unwrap()).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "enabled"]));
    let (status, _) = json_of(patch(json!({"code": "short"})).await.unwrap()).await;
    assert_eq!(status, 422);
    let huge = format!("function handler(w) {{ return w }} // {}", "x".repeat(51_200));
    let (status, _) = json_of(patch(json!({"code": huge})).await.unwrap()).await;
    assert_eq!(status, 422);
    let (status, _) = json_of(
        patch(json!({"code": "function handler(w) { return w }", "runtime": "v8"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422, "an unknown field is refused, not ignored");
    // Top-level code is not run at save time: only parsed.
    let (status, _) = json_of(
        patch(json!({"code": "while (true) {}\nfunction handler(w) { return w }"}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = json_of(
        server
            .req(
                Method::GET,
                &format!("/api/v1/app/{app}/endpoint/ep_nope/transformation"),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn simulate_answers_what_would_be_sent_or_the_scripts_error() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, ep) = endpoint(&server, &receiver, "/hook").await;
    let path = format!("/api/v1/app/{app}/endpoint/{ep}/transformation/simulate");
    let (status, out) = json_of(
        server
            .req(Method::POST, &path)
            .json(&json!({
                "code": "function handler(w) { w.method = 'PATCH'; w.url += '/' + w.channels[0]; w.payload.n *= 2; return w }",
                "eventType": "order.paid", "payload": {"n": 21}, "channels": ["eu"]
            }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["method"], "PATCH");
    assert_eq!(out["url"], format!("{}/hook/eu", receiver.url));
    assert_eq!(
        serde_json::from_str::<Value>(out["payload"].as_str().unwrap()).unwrap(),
        json!({"n": 42})
    );
    assert_eq!(out["cancel"], false);
    let (status, err) = json_of(
        server
            .req(Method::POST, &path)
            .json(&json!({"code": "function handler(w) { throw new Error('nope') }", "eventType": "a", "payload": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["code"], "transformation_failed");
    assert!(
        err["detail"]
            .as_str()
            .unwrap()
            .starts_with("Error: nope (line 1, column"),
        "{err}"
    );
    let (status, err) = json_of(
        server
            .req(Method::POST, &path)
            .json(&json!({"code": "function handler(w) { w.url = 'ftp://x'; return w }", "eventType": "a", "payload": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        err["detail"].as_str().unwrap().starts_with("webhook.url"),
        "{err}"
    );
    assert_eq!(receiver.count(), 0, "simulating sends nothing");
}

#[tokio::test]
async fn a_url_a_transformation_points_at_a_guarded_address_is_refused_like_any_other() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let (app, ep) = endpoint(&server, &receiver, "/hook").await;
    // Cloud metadata and a private network: the delivery guard (only 127.0.0.0/8 is
    // allowed in these tests) checks the URL the script chose.
    for target in [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/internal",
    ] {
        let code = format!("function handler(w) {{ w.url = {target:?}; return w }}");
        let res = server
            .req(
                Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/{ep}/transformation"),
            )
            .json(&json!({"code": code, "enabled": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
        let msg = svix
            .message()
            .create(
                app.clone(),
                MessageIn::new("order.paid".into(), json!({"to": target})),
                None,
            )
            .await
            .unwrap();
        let attempts = wait_for_attempts(&svix, &app, &msg.id, 1).await;
        assert_eq!(attempts[0].status, MessageStatus::Fail);
        assert_eq!(attempts[0].response_status_code, 0);
        assert!(
            attempts[0].url.starts_with(target.trim_end_matches('/')),
            "{}",
            attempts[0].url
        );
        assert!(
            attempts[0].response.contains("refused"),
            "{target}: {}",
            attempts[0].response
        );
    }
    assert_eq!(receiver.count(), 0);
}
