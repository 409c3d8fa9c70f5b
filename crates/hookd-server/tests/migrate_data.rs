//! `hookd migrate-data`: a server's SQLite database copied into PostgreSQL, then served
//! from there — every listing answers the same, the old tokens and source URLs work, and
//! new messages are delivered. Runs when `HOOKD_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::process::{self, Process};
use common::receiver::{Answer, Receiver};
use serde_json::{Value, json};

const PUBLIC_URL: &str = "https://hooks.example.com";

async fn serve(db: &str) -> Process {
    process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", db),
            ("HOOKD_PUBLIC_URL", PUBLIC_URL),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ],
    )
    .await
}

async fn call(method: reqwest::Method, url: String, token: &str, body: Option<Value>) -> Value {
    let mut req = reqwest::Client::new()
        .request(method, url.clone())
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap_or(Value::Null)
}

/// Everything the API shows of the application and the source, for comparison.
async fn snapshot(base: &str, token: &str, app: &str, source: &str) -> Vec<Value> {
    let get = |path: String| call(reqwest::Method::GET, format!("{base}{path}"), token, None);
    let endpoints = get(format!("/api/v1/app/{app}/endpoint")).await;
    let mut all = vec![
        get("/api/v1/app".into()).await,
        get("/api/v1/event-type?include_archived=true".into()).await,
        endpoints.clone(),
        get(format!("/api/v1/app/{app}/msg?with_content=true")).await,
        get("/ingest/api/v1/source".into()).await,
        get(format!("/ingest/api/v1/source/{source}/log")).await,
        get(format!("/ingest/api/v1/source/{source}/endpoint")).await,
        get(format!("/api/v1/app/{app}/collection")).await,
        get(format!("/api/v1/app/{app}/collection/players/document")).await,
        get(format!("/api/v1/app/{app}/leaderboard/points/top")).await,
        get(format!("/api/v1/app/{app}/api-key")).await,
    ];
    for ep in endpoints["data"].as_array().unwrap() {
        let id = ep["id"].as_str().unwrap();
        all.push(get(format!("/api/v1/app/{app}/attempt/endpoint/{id}")).await);
        all.push(get(format!("/api/v1/app/{app}/endpoint/{id}/secret")).await);
        all.push(get(format!("/api/v1/app/{app}/endpoint/{id}/stats")).await);
        all.push(get(format!("/api/v1/app/{app}/endpoint/{id}/transformation")).await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_data_moves_to_postgres() {
    let Some(base_url) = hookd_store_postgres::testing::test_database_url() else {
        return;
    };
    let schema = hookd_store_postgres::testing::TestSchema::create(&base_url)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("hookd.db").display());
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(200));

    // A day of work on SQLite.
    let hookd = serve(&sqlite).await;
    let base = hookd.base.clone();
    let token = process::create_token(&sqlite, "moving");
    let post =
        |path: &str, body: Value| call(reqwest::Method::POST, format!("{base}{path}"), &token, Some(body));
    post(
        "/api/v1/event-type",
        json!({"name": "order.created", "description": "An order"}),
    )
    .await;
    let app = post(
        "/api/v1/app",
        json!({"name": "Shop", "uid": "shop", "metadata": {"tier": "gold"}}),
    )
    .await;
    let app = app["id"].as_str().unwrap().to_owned();
    let all = post(
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": format!("{}/all", receiver.url), "headers": {"x-tenant": "t1"}}),
    )
    .await;
    // A transformation moves with its endpoint, and its attempts stay marked.
    call(
        reqwest::Method::PATCH,
        format!(
            "{base}/api/v1/app/{app}/endpoint/{}/transformation",
            all["id"].as_str().unwrap()
        ),
        &token,
        Some(
            json!({"code": "function handler(w) { w.payload.moved = true; return w }",
                    "enabled": true, "variables": {"k": "v"}}),
        ),
    )
    .await;
    post(
        &format!("/api/v1/app/{app}/endpoint"),
        json!({"url": format!("{}/orders", receiver.url), "filterTypes": ["order.created"], "channels": ["eu"]}),
    )
    .await;
    for i in 0..5 {
        post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.created", "payload": {"i": i}, "channels": ["eu"], "eventId": format!("evt-{i}")}),
        )
        .await;
    }
    let source = post(
        "/ingest/api/v1/source",
        json!({"name": "Hooks", "type": "generic-webhook"}),
    )
    .await;
    let source_id = source["id"].as_str().unwrap().to_owned();
    let ingest_url = source["ingestUrl"].as_str().unwrap().replace(PUBLIC_URL, &base);
    post(
        &format!("/ingest/api/v1/source/{source_id}/endpoint"),
        json!({"url": format!("{}/forwarded", receiver.url)}),
    )
    .await;
    let sent = reqwest::Client::new()
        .post(&ingest_url)
        .body("raw \x01 bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    receiver.wait_for("/all", 5, Duration::from_secs(10)).await;
    receiver.wait_for("/orders", 5, Duration::from_secs(10)).await;
    receiver.wait_for("/forwarded", 1, Duration::from_secs(10)).await;
    // The data API's tables: a collection with a document, a board with a score, a key.
    let post =
        |path: String, body: Value| call(reqwest::Method::POST, format!("{base}{path}"), &token, Some(body));
    post(
        format!("/api/v1/app/{app}/collection"),
        json!({"name": "players"}),
    )
    .await;
    call(
        reqwest::Method::PUT,
        format!("{base}/api/v1/app/{app}/collection/players/document/ada"),
        &token,
        Some(json!({"coins": 7, "badges": ["first"]})),
    )
    .await;
    post(
        format!("/api/v1/app/{app}/leaderboard"),
        json!({"name": "points", "reset": "daily"}),
    )
    .await;
    post(
        format!("/api/v1/app/{app}/leaderboard/points/score/ada"),
        json!({"score": 42}),
    )
    .await;
    post(
        format!("/api/v1/app/{app}/api-key"),
        json!({"name": "k", "scopes": ["read"]}),
    )
    .await;
    // Let the last attempts be recorded, then stop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = snapshot(&base, &token, &app, &source_id).await;
    drop(hookd);

    // The copy.
    let migrate = |to: &str| {
        process::command()
            .args(["migrate-data", "--from", &sqlite, "--to", to])
            .output()
            .unwrap()
    };
    let out = migrate(schema.url());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Five messages plus the one forwarding the received request.
    assert!(stdout.contains("message: 6 rows"), "{stdout}");
    assert!(stdout.contains("delivery: 11 rows"), "{stdout}");
    assert!(stdout.contains("ingest_request: 1 rows"), "{stdout}");
    for table in [
        "data_definition: 2 rows",
        "document: 1 rows",
        "score: 1 rows",
        "api_key: 1 rows",
    ] {
        assert!(stdout.contains(table), "{table}: {stdout}");
    }
    // Never over existing data.
    let again = migrate(schema.url());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));

    // Served from PostgreSQL: the same answers, the same token and source URL.
    let pg = serve(schema.url()).await;
    let base = pg.base.clone();
    let after = snapshot(&base, &token, &app, &source_id).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    let ingest_url = ingest_url.replace(&ingest_url[..ingest_url.find("/in/").unwrap()], &base);
    let sent = reqwest::Client::new()
        .post(&ingest_url)
        .body("after the move")
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 200);
    call(
        reqwest::Method::POST,
        format!("{base}/api/v1/app/shop/msg"),
        &token,
        Some(json!({"eventType": "order.created", "payload": {"i": 5}, "channels": ["eu"]})),
    )
    .await;
    receiver.wait_for("/all", 6, Duration::from_secs(10)).await;
    receiver.wait_for("/orders", 6, Duration::from_secs(10)).await;
    let forwarded = receiver.wait_for("/forwarded", 2, Duration::from_secs(10)).await;
    assert_eq!(&forwarded[1].body[..], b"after the move");
}
