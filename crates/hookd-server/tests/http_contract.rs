//! The API as raw HTTP: authentication, tenant isolation, bad input, error bodies,
//! trailing slashes and the generated OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn json_of(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = resp.text().await.unwrap();
    assert_eq!(
        ct.as_deref(),
        Some("application/json"),
        "status {status}, body {body:?}"
    );
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}")),
    )
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body.get("detail").is_some(), "{body}");
}

#[tokio::test]
async fn every_api_route_requires_a_valid_token() {
    let server = TestServer::start().await;
    let http = server.http();
    let routes = [
        (Method::GET, "/api/v1/app"),
        (Method::POST, "/api/v1/app"),
        (Method::GET, "/api/v1/app/x"),
        (Method::PUT, "/api/v1/app/x"),
        (Method::PATCH, "/api/v1/app/x"),
        (Method::DELETE, "/api/v1/app/x"),
        (Method::GET, "/api/v1/event-type"),
        (Method::POST, "/api/v1/event-type"),
        (Method::GET, "/api/v1/event-type/a.b"),
        (Method::GET, "/api/v1/app/x/endpoint"),
        (Method::POST, "/api/v1/app/x/endpoint"),
        (Method::GET, "/api/v1/app/x/endpoint/y"),
        (Method::GET, "/api/v1/app/x/endpoint/y/headers"),
        (Method::GET, "/api/v1/app/x/endpoint/y/secret"),
        (Method::POST, "/api/v1/app/x/endpoint/y/secret/rotate"),
        (Method::POST, "/api/v1/app/x/endpoint/y/recover"),
        (Method::POST, "/api/v1/app/x/endpoint/y/send-example"),
        (Method::GET, "/api/v1/app/x/endpoint/y/stats"),
        (Method::GET, "/api/v1/app/x/endpoint/y/msg"),
        (Method::POST, "/api/v1/app/x/msg"),
        (Method::GET, "/api/v1/app/x/msg"),
        (Method::GET, "/api/v1/app/x/msg/m"),
        (Method::DELETE, "/api/v1/app/x/msg/m/content"),
        (Method::GET, "/api/v1/app/x/msg/m/endpoint"),
        (Method::POST, "/api/v1/app/x/msg/m/endpoint/y/resend"),
        (Method::GET, "/api/v1/app/x/attempt/msg/m"),
        (Method::GET, "/api/v1/app/x/attempt/endpoint/y"),
        (Method::GET, "/api/v1/app/x/msg/m/attempt/a"),
        (Method::GET, "/api/v1/operational-webhook/endpoint"),
        (Method::POST, "/api/v1/operational-webhook/endpoint"),
        (Method::GET, "/api/v1/operational-webhook/endpoint/y/secret"),
    ];
    let revoked = {
        let token = server.token_for("test-org").await;
        let store = server.running.as_ref().unwrap().store();
        let org = store.find_org("test-org").await.unwrap().unwrap();
        let id = hookd_core::api_token::ApiToken::parse(&token).unwrap().id;
        store.revoke_token(&org.id, &id).await.unwrap();
        token
    };
    let mut tampered = server.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'a' { 'b' } else { 'a' });
    let bad_headers: Vec<Option<String>> = vec![
        None,
        Some("Bearer".into()),
        Some("Basic dXNlcjpwYXNz".into()),
        Some("Bearer not-a-token".into()),
        Some(format!("Bearer {tampered}")),
        Some(format!("Bearer {revoked}")),
    ];
    for (method, path) in &routes {
        for auth in &bad_headers {
            let mut req = http.request(method.clone(), server.url(path)).json(&json!({}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let (status, body) = json_of(req.send().await.unwrap()).await;
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "authentication_failed");
        }
    }
    // Health needs no token.
    let resp = http.get(server.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    server.stop().await;
}

#[tokio::test]
async fn one_organisation_never_sees_another_ones_objects() {
    let server = TestServer::start().await;
    let mine = server.svix();
    let other_token = server.token_for("other-org").await;
    let theirs = server.svix_with(&other_token);

    let app = mine
        .application()
        .create(
            svix::models::ApplicationIn {
                uid: Some("private".into()),
                ..svix::models::ApplicationIn::new("Mine".into())
            },
            None,
        )
        .await
        .unwrap();
    let ep = mine
        .endpoint()
        .create(
            app.id.clone(),
            svix::models::EndpointIn::new("https://example.com".into()),
            None,
        )
        .await
        .unwrap();
    mine.event_type()
        .create(
            svix::models::EventTypeIn::new("mine.only".into(), "x".into()),
            None,
        )
        .await
        .unwrap();

    for key in [app.id.as_str(), "private"] {
        let code = |e: svix::error::Error| common::status_of(&e);
        assert_eq!(code(theirs.application().get(key.into()).await.unwrap_err()), 404);
        assert_eq!(
            code(
                theirs
                    .application()
                    .patch(key.into(), svix::models::ApplicationPatch::new())
                    .await
                    .unwrap_err()
            ),
            404
        );
        assert_eq!(
            code(theirs.application().delete(key.into()).await.unwrap_err()),
            404
        );
        assert_eq!(
            code(
                theirs
                    .endpoint()
                    .get(key.into(), ep.id.clone())
                    .await
                    .unwrap_err()
            ),
            404
        );
        assert_eq!(
            code(
                theirs
                    .endpoint()
                    .get_secret(key.into(), ep.id.clone())
                    .await
                    .unwrap_err()
            ),
            404
        );
        assert_eq!(
            code(
                theirs
                    .endpoint()
                    .delete(key.into(), ep.id.clone())
                    .await
                    .unwrap_err()
            ),
            404
        );
        assert_eq!(
            code(theirs.endpoint().list(key.into(), None).await.unwrap_err()),
            404
        );
    }
    assert!(theirs.application().list(None).await.unwrap().data.is_empty());
    assert!(theirs.event_type().list(None).await.unwrap().data.is_empty());
    assert_eq!(
        common::status_of(&theirs.event_type().get("mine.only".into()).await.unwrap_err()),
        404
    );
    // The other organisation may use the same uid for its own application.
    theirs
        .application()
        .create(
            svix::models::ApplicationIn {
                uid: Some("private".into()),
                ..svix::models::ApplicationIn::new("Theirs".into())
            },
            None,
        )
        .await
        .unwrap();
    // And mine is untouched.
    assert_eq!(
        mine.application().get("private".into()).await.unwrap().name,
        "Mine"
    );
    mine.endpoint().get(app.id.clone(), ep.id.clone()).await.unwrap();
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = TestServer::start().await;
    let post = |path: &str, body: &'static str| {
        server
            .req(Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    };

    let (s, b) = json_of(post("/api/v1/app", r#"{"name": "#).send().await.unwrap()).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");
    let (s, b) = json_of(post("/api/v1/app", r#"{"name": "x"} {"#).send().await.unwrap()).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_json");

    let (s, b) = json_of(post("/api/v1/app", r#"{"name": 42}"#).send().await.unwrap()).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "name"]));
    let (s, b) = json_of(post("/api/v1/app", r#"{}"#).send().await.unwrap()).await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(b["detail"][0]["loc"], json!(["body", "name"]));
    let (s, b) = json_of(
        post("/api/v1/app", r#"{"name": "x", "throttleRate": -1}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["body", "throttleRate"]), "{s} {b}");
    let (_, b) = json_of(
        post("/api/v1/app", r#"{"name": "x", "uid": "has space"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["body", "uid"]));
    let (_, b) = json_of(
        post("/api/v1/app", r#"{"name": "x", "metadata": {"k": 1}}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["body", "metadata", "k"]));
    let (_, b) = json_of(
        post("/api/v1/event-type", r#"{"name": "a.b"}"#)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["body", "description"]));

    let resp = server
        .req(Method::POST, "/api/v1/app")
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(resp).await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    // Oversize bodies: 413, nothing stored.
    let big = format!(r#"{{"name": "{}"}}"#, "a".repeat(2 * 1024 * 1024));
    let resp = server
        .req(Method::POST, "/api/v1/app")
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(resp).await;
    assert_error(s, &b, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    // Query parameters are checked too.
    let (s, b) = json_of(
        server
            .req(Method::GET, "/api/v1/app?limit=0")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert_eq!(b["detail"][0]["loc"], json!(["query", "limit"]));
    let (_, b) = json_of(
        server
            .req(Method::GET, "/api/v1/app?limit=abc")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["query", "limit"]));
    let (_, b) = json_of(
        server
            .req(Method::GET, "/api/v1/app?order=sideways")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["detail"][0]["loc"], json!(["query", "order"]));

    // Unknown ids, routes and methods.
    let (s, b) = json_of(
        server
            .req(Method::GET, "/api/v1/app/app_2aaaaaaaaaaaaaaaaaaaaaaaaaa")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = json_of(
        server
            .req(Method::GET, "/api/v1/no/such/route")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = json_of(
        server
            .req(Method::PATCH, "/api/v1/event-type")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");

    // None of the refused requests created anything.
    let (s, b) = json_of(server.req(Method::GET, "/api/v1/app").send().await.unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["data"], json!([]));
    let (_, b) = json_of(
        server
            .req(Method::GET, "/api/v1/event-type")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b["data"], json!([]));
    server.stop().await;
}

#[tokio::test]
async fn paths_answer_with_and_without_a_trailing_slash() {
    let server = TestServer::start().await;
    let (s, created) = json_of(
        server
            .req(Method::POST, "/api/v1/app/")
            .json(&json!({"name": "slash", "uid": "s"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    for path in ["/api/v1/app/s", "/api/v1/app/s/"] {
        let (s, b) = json_of(server.req(Method::GET, path).send().await.unwrap()).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(b["id"], created["id"]);
    }
    for path in ["/api/v1/health", "/api/v1/health/"] {
        assert_eq!(
            server.http().get(server.url(path)).send().await.unwrap().status(),
            StatusCode::NO_CONTENT
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_implemented_api() {
    let server = TestServer::start().await;
    let (s, doc) = json_of(
        server
            .http()
            .get(server.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/app", "post"),
        ("/api/v1/app/{app_id}", "patch"),
        ("/api/v1/event-type/{event_type_name}", "delete"),
        ("/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", "patch"),
        (
            "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
            "post",
        ),
        ("/api/v1/health", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ApplicationIn",
        "ApplicationOut",
        "EndpointIn",
        "EndpointOut",
        "EventTypeOut",
        "HttpErrorOut",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    // Every path in the document is one the server routes (not a 404 "no such route").
    for path in paths.keys() {
        let concrete = path
            .replace("{app_id}", "a")
            .replace("{endpoint_id}", "e")
            .replace("{event_type_name}", "x");
        let resp = server.req(Method::GET, &concrete).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(body["detail"] != "no such route", "{path}: {status}");
    }
    server.stop().await;
}

#[tokio::test]
async fn patch_without_fields_changes_nothing_and_concurrent_patches_all_land() {
    let server = TestServer::start().await;
    let (_, app) = json_of(
        server
            .req(Method::POST, "/api/v1/app")
            .json(&json!({"name": "c", "metadata": {"a": "1"}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = app["id"].as_str().unwrap().to_owned();
    let (s, same) = json_of(
        server
            .req(Method::PATCH, &format!("/api/v1/app/{id}"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(same["metadata"], app["metadata"]);
    assert_eq!(same["name"], "c");

    // Twenty concurrent endpoint creations with distinct uids all succeed.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let req = server
            .req(Method::POST, &format!("/api/v1/app/{id}/endpoint"))
            .json(&json!({"url": "https://example.com", "uid": format!("ep-{i}")}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    let (_, list) = json_of(
        server
            .req(Method::GET, &format!("/api/v1/app/{id}/endpoint?limit=250"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 20);
    server.stop().await;
}

#[tokio::test]
async fn a_database_that_cannot_be_written_answers_503_with_retry_after_and_keeps_nothing() {
    // SQLite whatever the suite runs on: another process holding its write lock is a
    // fault hookd can neither wait out (past the busy timeout) nor handle.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("locked.db");
    let url = format!("sqlite://{}", path.display());
    let server = TestServer::start_with(&[("HOOKD_DATABASE_URL", url.as_str())]).await;
    let lock = rusqlite::Connection::open(&path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let resp = server
        .req(Method::POST, "/api/v1/app")
        .json(&json!({"name": "while locked", "uid": "locked"}))
        .send()
        .await
        .unwrap();
    let retry_after = resp.headers().get("retry-after").cloned();
    let (status, body) = json_of(resp).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(retry_after.unwrap(), "5");

    lock.execute_batch("ROLLBACK").unwrap();
    let (status, _) = json_of(
        server
            .req(Method::GET, "/api/v1/app/locked")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the refused write left nothing");
    let (status, body) = json_of(
        server
            .req(Method::POST, "/api/v1/app")
            .json(&json!({"name": "after", "uid": "locked"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the same call succeeds once the lock is gone: {body}"
    );
}
