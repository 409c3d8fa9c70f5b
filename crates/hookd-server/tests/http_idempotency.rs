//! `Idempotency-Key`: one effect per key, the first answer replayed, duplicates wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

async fn post(server: &TestServer, token: &str, path: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let resp = server
        .http()
        .post(server.url(path))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let replayed = resp.headers().get("idempotent-replayed").is_some();
    (status, resp.json().await.unwrap(), replayed)
}

async fn message_count(server: &TestServer, app: &str) -> usize {
    let list: Value = server
        .req(Method::GET, &format!("/api/v1/app/{app}/msg?limit=250"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn the_same_key_gets_the_first_answer_and_one_effect() {
    let server = TestServer::start().await;
    let (_, app, _) = post(
        &server,
        &server.token,
        "/api/v1/app",
        "k-app",
        &json!({"name": "idem"}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "a.b", "payload": {"x": 1}});

    let (s1, first, replayed1) = post(&server, &server.token, &path, "key-1", &body).await;
    let (s2, second, replayed2) = post(&server, &server.token, &path, "key-1", &body).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first, second);
    assert!(!replayed1 && replayed2);
    assert_eq!(message_count(&server, &app).await, 1);

    // Reusing the key for another request is refused.
    let (s, err, _) = post(
        &server,
        &server.token,
        &path,
        "key-1",
        &json!({"eventType": "a.b", "payload": {"x": 2}}),
    )
    .await;
    assert_eq!(s, 409, "{err}");
    assert_eq!(err["code"], "conflict");

    // Error answers are kept too (the request was judged), but a new key runs anew.
    let (s, _, _) = post(
        &server,
        &server.token,
        &path,
        "key-bad",
        &json!({"eventType": "bad type!", "payload": {}}),
    )
    .await;
    assert_eq!(s, 422);
    let (s, _, replayed) = post(
        &server,
        &server.token,
        &path,
        "key-bad",
        &json!({"eventType": "bad type!", "payload": {}}),
    )
    .await;
    assert_eq!((s, replayed), (422, true));

    // Keys belong to a token: another token's same key is another request.
    let other = server.token_for("test-org").await;
    let (s, third, _) = post(&server, &other, &path, "key-1", &body).await;
    assert_eq!(s, 202);
    assert_ne!(third["id"], first["id"]);
    assert_eq!(message_count(&server, &app).await, 2);
    server.stop().await;
}

#[tokio::test]
async fn concurrent_duplicates_wait_for_the_first() {
    let server = TestServer::start().await;
    let (_, app, _) = post(
        &server,
        &server.token,
        "/api/v1/app",
        "k-app",
        &json!({"name": "race"}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    let url = server.url(&format!("/api/v1/app/{app}/msg"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let req = server
            .http()
            .post(&url)
            .bearer_auth(&server.token)
            .header("idempotency-key", "same-key")
            .json(&json!({"eventType": "a.b", "payload": {}}));
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["id"].clone(),
            )
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert_eq!(status, 202);
        ids.insert(id.to_string());
    }
    assert_eq!(ids.len(), 1, "every duplicate got the first answer");
    assert_eq!(message_count(&server, &app).await, 1);
    server.stop().await;
}

#[tokio::test]
async fn the_sdk_retry_key_makes_creation_safe_to_repeat() {
    // The official SDK sends an idempotency-key on every POST; creating an app twice
    // with the same explicit key returns the same application.
    let server = TestServer::start().await;
    let svix = server.svix();
    let opts = || {
        Some(svix::api::ApplicationCreateOptions {
            idempotency_key: Some("create-shop".into()),
        })
    };
    let a = svix
        .application()
        .create(svix::models::ApplicationIn::new("Shop".into()), opts())
        .await
        .unwrap();
    let b = svix
        .application()
        .create(svix::models::ApplicationIn::new("Shop".into()), opts())
        .await
        .unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(svix.application().list(None).await.unwrap().data.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn an_answer_too_large_to_keep_is_still_answered_and_the_key_released() {
    let server = TestServer::start_with(&[("HOOKD_API_MAX_BODY_BYTES", "4194304")]).await;
    let (_, app, _) = post(
        &server,
        &server.token,
        "/api/v1/app",
        "k-big-app",
        &json!({"name": "big"}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/app/{app}/msg");
    // The answer echoes the payload: over the 1 MiB an idempotent answer is kept up to.
    let blob = "x".repeat(1_200_000);
    let body = json!({"eventType": "a.b", "payload": {"blob": blob}});
    let (s1, first, replayed1) = post(&server, &server.token, &path, "big-1", &body).await;
    assert_eq!(s1, 202, "committed, so answered: {first}");
    assert!(!replayed1);
    assert_eq!(first["payload"]["blob"].as_str().map(str::len), Some(1_200_000));
    assert_eq!(message_count(&server, &app).await, 1);
    // The key was released rather than kept without its answer: a retry runs again.
    let (s2, _, replayed2) = post(&server, &server.token, &path, "big-1", &body).await;
    assert_eq!((s2, replayed2), (202, false));
    assert_eq!(message_count(&server, &app).await, 2);
}
