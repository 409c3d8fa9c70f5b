//! The data API end to end, as a game backend and a CRM use it: modes at
//! `/h/{account}/{app}/{mode}/{data}` with API keys, leaderboards under concurrent
//! submissions, exact increments, scopes, schemas, versions, change events, rates and
//! quotas — against the real server (SQLite, or PostgreSQL with
//! `HOOKD_TEST_DATABASE_URL`) and a real receiver.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use common::TestServer;
use common::receiver::Receiver;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ACCOUNT: &str = "test-org";

async fn api(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let resp = server.req(method.clone(), path).json(&body).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn mode(
    server: &TestServer,
    name: &str,
    method: &str,
    operation: &str,
    target: Option<&str>,
    schema: Option<Value>,
) {
    let mut body = json!({"name": name, "method": method, "operation": operation});
    if let Some(t) = target {
        body["target"] = json!(t);
    }
    if let Some(s) = schema {
        body["bodySchema"] = s;
    }
    api(server, Method::POST, "/api/v1/app/game/mode", body).await;
}

async fn key(server: &TestServer, scopes: &[&str], modes: Option<&[&str]>, rate: Option<u32>) -> String {
    let mut body = json!({"name": "test", "scopes": scopes});
    if let Some(m) = modes {
        body["modes"] = json!(m);
    }
    if let Some(r) = rate {
        body["rateLimit"] = json!(r);
    }
    let out = api(server, Method::POST, "/api/v1/app/game/api-key", body).await;
    let key = out["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hkd_"));
    key
}

/// A portal request with the key as a bearer token.
fn portal(server: &TestServer, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    server
        .http()
        .request(method, server.url(&format!("/h/{ACCOUNT}/game/{path}")))
        .bearer_auth(key)
}

async fn status_and_json(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// The game: app, collections, leaderboard, modes; returns a read-write key.
async fn set_up_game(server: &TestServer, receiver: &Receiver) -> String {
    api(
        server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "Game", "uid": "game"}),
    )
    .await;
    api(
        server,
        Method::POST,
        "/api/v1/app/game/endpoint",
        json!({"url": format!("{}/events", receiver.url)}),
    )
    .await;
    api(
        server,
        Method::POST,
        "/api/v1/app/game/leaderboard",
        json!({"name": "points", "policy": "best"}),
    )
    .await;
    api(
        server,
        Method::POST,
        "/api/v1/app/game/collection",
        json!({"name": "players", "schema": {
            "type": "object",
            "properties": {"coins": {"type": "integer"}, "level": {"type": "integer", "minimum": 1}}
        }}),
    )
    .await;
    api(
        server,
        Method::POST,
        "/api/v1/app/game/collection",
        json!({"name": "contacts", "publishEvents": true}),
    )
    .await;
    api(
        server,
        Method::POST,
        "/api/v1/app/game/collection",
        json!({"name": "inbox"}),
    )
    .await;
    let score_schema = json!({
        "type": "object", "required": ["score"],
        "properties": {"score": {"type": "integer", "minimum": 0}}
    });
    mode(
        server,
        "score",
        "POST",
        "leaderboard.submit",
        Some("points"),
        Some(score_schema),
    )
    .await;
    mode(server, "top", "GET", "leaderboard.top", Some("points"), None).await;
    mode(server, "rank", "GET", "leaderboard.rank", Some("points"), None).await;
    mode(server, "profile", "GET", "document.get", Some("players"), None).await;
    mode(
        server,
        "profile",
        "PATCH",
        "document.patch",
        Some("players"),
        None,
    )
    .await;
    mode(
        server,
        "wallet",
        "POST",
        "document.increment",
        Some("players"),
        None,
    )
    .await;
    mode(server, "contact", "GET", "document.get", Some("contacts"), None).await;
    mode(server, "contact", "PUT", "document.put", Some("contacts"), None).await;
    mode(server, "event", "POST", "message.publish", None, None).await;
    mode(server, "capture", "POST", "capture", Some("inbox"), None).await;
    key(server, &["read", "write"], None, Some(100_000)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_game_backend_end_to_end() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    let game = set_up_game(&server, &receiver).await;

    // Many players submit scores at once; the best of each counts.
    let players = 40;
    let mut best: HashMap<String, i64> = HashMap::new();
    let mut submissions = Vec::new();
    for p in 0..players {
        for round in 0..4i64 {
            let score = (p * 37 + round * 101) % 997;
            let player = format!("player-{p}");
            let e = best.entry(player.clone()).or_insert(score);
            *e = (*e).max(score);
            submissions.push((player, score));
        }
    }
    let tasks: Vec<_> = submissions
        .into_iter()
        .map(|(player, score)| {
            let req = portal(&server, Method::POST, &format!("score/{player}"), &game)
                .json(&json!({"score": score}));
            tokio::spawn(async move { status_and_json(req).await })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut expected: Vec<(String, i64)> = best.into_iter().collect();
    // Best first; equal scores by who reached them first — compare scores only.
    expected.sort_by_key(|e| std::cmp::Reverse(e.1));
    let (status, top) = status_and_json(portal(&server, Method::GET, "top?limit=10", &game)).await;
    assert_eq!(status, StatusCode::OK, "{top}");
    let top = top["data"].as_array().unwrap().clone();
    assert_eq!(top.len(), 10);
    let top_scores: Vec<i64> = top.iter().map(|e| e["score"].as_i64().unwrap()).collect();
    let want: Vec<i64> = expected.iter().take(10).map(|e| e.1).collect();
    assert_eq!(top_scores, want);
    for (i, entry) in top.iter().enumerate() {
        assert_eq!(entry["rank"], json!(i + 1));
    }
    // A player's rank and neighbours agree with the top list.
    let fifth = top[4]["player"].as_str().unwrap();
    let (status, around) = status_and_json(portal(
        &server,
        Method::GET,
        &format!("rank/{fifth}?neighbours=2"),
        &game,
    ))
    .await;
    assert_eq!(status, StatusCode::OK, "{around}");
    assert_eq!(around["data"].as_array().unwrap().as_slice(), &top[2..7]);
    // A worse score changes nothing.
    let (_, r) = status_and_json(
        portal(&server, Method::POST, &format!("score/{fifth}"), &game).json(&json!({"score": 0})),
    )
    .await;
    assert_eq!(r["changed"], false);
    assert_eq!(r["rank"], 5);

    // Increments stay exact under concurrency.
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let req = portal(&server, Method::POST, "wallet/player-1", &game).json(&json!({"coins": 3}));
            tokio::spawn(async move { status_and_json(req).await })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert!(status.is_success(), "{status} {body}");
    }
    let resp = portal(&server, Method::GET, "profile/player-1", &game)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["etag"], "\"60\"");
    let profile: Value = resp.json().await.unwrap();
    assert_eq!(profile["data"]["coins"], 180);
    assert_eq!(profile["version"], 60);

    // Optimistic concurrency: a stale If-Match is refused, the current one applies.
    let (status, body) = status_and_json(
        portal(&server, Method::PATCH, "profile/player-1", &game)
            .header("if-match", "\"59\"")
            .json(&json!({"level": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    assert_eq!(body["code"], "precondition_failed");
    let (status, body) = status_and_json(
        portal(&server, Method::PATCH, "profile/player-1", &game)
            .header("if-match", "\"60\"")
            .json(&json!({"level": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"], json!({"coins": 180, "level": 2}));

    // Schema-invalid bodies: the mode's schema, then the collection's.
    let (status, body) =
        status_and_json(portal(&server, Method::POST, "score/player-1", &game).json(&json!({"score": -5})))
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "validation");
    let (status, body) =
        status_and_json(portal(&server, Method::POST, "score/player-1", &game).json(&json!({"points": 5})))
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) =
        status_and_json(portal(&server, Method::PATCH, "profile/player-1", &game).json(&json!({"level": 0})))
            .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = status_and_json(
        portal(&server, Method::POST, "score/player-1", &game)
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A CRM reads contacts with a read-only key limited to that mode.
    let (status, _) = status_and_json(
        portal(&server, Method::PUT, "contact/c-1", &game)
            .json(&json!({"email": "ada@example.com", "status": "lead"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let crm = key(&server, &["read"], Some(&["contact"]), None).await;
    let (status, contact) = status_and_json(portal(&server, Method::GET, "contact/c-1", &crm)).await;
    assert_eq!(status, StatusCode::OK, "{contact}");
    assert_eq!(contact["data"]["status"], "lead");
    // ... the same with the key in X-API-Key and in ?key=.
    let resp = server
        .http()
        .get(server.url(&format!("/h/{ACCOUNT}/game/contact/c-1")))
        .header("x-api-key", &crm)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = server
        .http()
        .get(server.url(&format!("/h/{ACCOUNT}/game/contact/c-1?key={crm}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A write with the read-only key is refused, and so is another mode.
    let (status, body) =
        status_and_json(portal(&server, Method::PUT, "contact/c-1", &crm).json(&json!({"status": "won"})))
            .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    let (status, _) = status_and_json(portal(&server, Method::GET, "top", &crm)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, contact) = status_and_json(portal(&server, Method::GET, "contact/c-1", &crm)).await;
    assert_eq!(
        contact["data"]["status"], "lead",
        "the refused write changed nothing"
    );

    // Wrong, missing, malformed and revoked keys.
    let mut wrong = game.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == '0' { '1' } else { '0' });
    for bad in [wrong.as_str(), "hkd_nope", "hk_not_a_data_key"] {
        let (status, body) = status_and_json(portal(&server, Method::GET, "top", bad)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
        assert_eq!(body["code"], "authentication_failed");
    }
    let resp = server
        .http()
        .get(server.url(&format!("/h/{ACCOUNT}/game/top")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // The key of one application does not open another account's URL.
    let (status, _) = status_and_json(
        server
            .http()
            .get(server.url("/h/someone-else/game/top"))
            .bearer_auth(&game),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = status_and_json(portal(&server, Method::GET, "nosuchmode/x", &game)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let crm_id = {
        let keys = api(&server, Method::GET, "/api/v1/app/game/api-key", Value::Null).await;
        let listed = keys["data"].as_array().unwrap();
        assert!(
            listed.iter().all(|k| k.get("key").is_none()),
            "secrets are never listed"
        );
        listed.iter().find(|k| k["scopes"] == json!(["read"])).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let resp = server
        .req(Method::DELETE, &format!("/api/v1/app/game/api-key/{crm_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let (status, _) = status_and_json(portal(&server, Method::GET, "contact/c-1", &crm)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked keys are refused at once on this node"
    );

    // Change events: the contacts collection publishes; the receiver gets them signed.
    portal(&server, Method::PUT, "contact/c-1", &game)
        .json(&json!({"email": "ada@example.com", "status": "won"}))
        .send()
        .await
        .unwrap();
    // A published event from the game.
    let (status, published) = status_and_json(
        portal(&server, Method::POST, "event/player.levelup", &game)
            .json(&json!({"player": "player-1", "level": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{published}");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let events = loop {
        let got: Vec<Value> = receiver
            .received()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        if got.len() >= 3 || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut kinds: Vec<String> = events
        .iter()
        .map(|e| {
            if e.get("collection").is_some() {
                format!("{}:{}", e["collection"], e["version"])
            } else {
                format!("event:{}", e["level"])
            }
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["\"contacts\":1", "\"contacts\":2", "event:2"]);
    for r in receiver.received() {
        assert!(r.headers.contains_key("webhook-signature"));
    }

    // Capture keeps the raw request, without the key.
    let raw = b"\x00raw \xff bytes";
    let resp = server
        .http()
        .post(server.url(&format!("/h/{ACCOUNT}/game/capture?key={game}&source=shop")))
        .header("x-shop", "1")
        .body(raw.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let captured: Value = resp.json().await.unwrap();
    let doc = api(
        &server,
        Method::GET,
        &format!(
            "/api/v1/app/game/collection/inbox/document/{}",
            captured["key"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    let data = &doc["data"];
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(data["bodyBase64"].as_str().unwrap())
            .unwrap(),
        raw
    );
    assert_eq!(data["method"], "POST");
    assert_eq!(data["query"], json!([["source", "shop"]]));
    assert_eq!(data["headers"]["x-shop"], "1");
    assert!(!data.to_string().contains(&game), "the key is never stored");

    // Usage is counted per account and day: reads cost 1, writes 2.
    let usage = api(&server, Method::GET, "/api/v1/usage", Value::Null).await;
    let today = &usage["data"][0];
    let (reads, writes, credits) = (
        today["reads"].as_u64().unwrap(),
        today["writes"].as_u64().unwrap(),
        today["credits"].as_u64().unwrap(),
    );
    // Writes: 160 submissions, 1 worse score, 60 increments, 1 patch, 2 contact puts,
    // 1 publish, 1 capture; reads: top, rank, profile, 4 CRM reads, the capture read.
    // Refused requests cost nothing.
    assert_eq!((reads, writes), (8, 226), "{usage}");
    assert_eq!(credits, reads + 2 * writes);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_and_key_rates_answer_429() {
    let server = TestServer::start_with(&[
        ("HOOKD_DATA_DAILY_CREDIT_QUOTA", "10"),
        ("HOOKD_DATA_WRITE_CREDITS", "2"),
        ("HOOKD_DATA_READ_CREDITS", "1"),
    ])
    .await;
    let receiver = Receiver::start().await;
    let game = set_up_game(&server, &receiver).await;
    // A key's own rate: two per second, the third at once is refused with
    // Retry-After (the reads find nothing: a failed operation costs no credits).
    let slow = key(&server, &["read"], None, Some(2)).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..3 {
        let resp = portal(&server, Method::GET, "profile/p1", &slow)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = resp.headers().get("retry-after").cloned();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
        }
    }
    assert_eq!(statuses[2], 429, "{statuses:?}");
    assert_eq!(retry_after.unwrap(), "1");
    for i in 0..5 {
        let (status, body) = status_and_json(
            portal(&server, Method::POST, &format!("score/p{i}"), &game).json(&json!({"score": i})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let resp = portal(&server, Method::POST, "score/p9", &game)
        .json(&json!({"score": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "quota_exceeded");
    let (status, _) = status_and_json(portal(&server, Method::GET, "top", &game)).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "a read past the quota is refused too"
    );
    let (_, top) = status_and_json(server.req(Method::GET, "/api/v1/app/game/leaderboard/points/top")).await;
    assert_eq!(
        top["code"], "quota_exceeded",
        "the management API spends the same credits"
    );
    let usage = api(&server, Method::GET, "/api/v1/usage", Value::Null).await;
    assert_eq!(usage["data"][0]["writes"], 5, "{usage}");
    assert_eq!(usage["data"][0]["credits"], 10);
    assert_eq!(usage["dailyCreditQuota"], 10);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_api_validates_and_answers_errors() {
    let server = TestServer::start().await;
    api(
        &server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "Game", "uid": "game"}),
    )
    .await;
    let cases = [
        (
            Method::POST,
            "/api/v1/app/game/collection",
            json!({"name": "bad name"}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/collection",
            json!({"name": "c", "schema": {"type": 5}}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/leaderboard",
            json!({"name": "b", "policy": "max"}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/mode",
            json!({"name": "m", "method": "GET", "operation": "document.get", "target": "missing"}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/mode",
            json!({"name": "m", "method": "TRACE", "operation": "capture"}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/mode",
            json!({"name": "m", "method": "GET", "operation": "nuke"}),
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/game/api-key",
            json!({"name": "k", "scopes": ["admin"]}),
            422,
        ),
        (
            Method::GET,
            "/api/v1/app/game/leaderboard/none/top?period=2026%2F11",
            Value::Null,
            422,
        ),
        (
            Method::POST,
            "/api/v1/app/nope/collection",
            json!({"name": "c"}),
            404,
        ),
        (
            Method::GET,
            "/api/v1/app/game/collection/none/document/x",
            Value::Null,
            404,
        ),
    ];
    for (method, path, body, want) in cases {
        let resp = server.req(method.clone(), path).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        let out: Value = resp.json().await.unwrap();
        assert_eq!(status, want, "{method} {path} {body}: {out}");
        assert!(out["code"].is_string() && !out["detail"].is_null(), "{out}");
    }
    // Documents through the management API: put, conditional put, list by prefix and field.
    api(
        &server,
        Method::POST,
        "/api/v1/app/game/collection",
        json!({"name": "c"}),
    )
    .await;
    // Collections and modes list by name, in pages.
    api(
        &server,
        Method::POST,
        "/api/v1/app/game/collection",
        json!({"name": "b"}),
    )
    .await;
    for (name, method) in [("m", "GET"), ("m", "PATCH"), ("a", "GET")] {
        let body = json!({"name": name, "method": method, "operation": "document.get", "target": "c"});
        api(&server, Method::POST, "/api/v1/app/game/mode", body).await;
    }
    let page = api(
        &server,
        Method::GET,
        "/api/v1/app/game/collection?limit=1",
        Value::Null,
    )
    .await;
    assert_eq!(page["data"][0]["name"], "b");
    let next = api(
        &server,
        Method::GET,
        &format!(
            "/api/v1/app/game/collection?limit=1&iterator={}",
            page["iterator"].as_str().unwrap()
        ),
        Value::Null,
    )
    .await;
    assert_eq!(next["data"][0]["name"], "c");
    assert_eq!(next["done"], true);
    let modes = api(&server, Method::GET, "/api/v1/app/game/mode", Value::Null).await;
    let listed: Vec<String> = modes["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m["name"].as_str().unwrap(),
                m["method"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(listed, ["a GET", "m GET", "m PATCH"]);
    let patched = api(
        &server,
        Method::PATCH,
        "/api/v1/app/game/mode/m/get",
        json!({"description": "read one", "target": "b"}),
    )
    .await;
    assert_eq!(
        (patched["description"].as_str(), patched["target"].as_str()),
        (Some("read one"), Some("b"))
    );
    let resp = server
        .req(Method::PATCH, "/api/v1/app/game/mode/m/GET")
        .json(&json!({"target": "missing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    for (k, team) in [("a1", "red"), ("a2", "blue"), ("b1", "red")] {
        let resp = server
            .req(
                Method::PUT,
                &format!("/api/v1/app/game/collection/c/document/{k}"),
            )
            .json(&json!({"team": team}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
    }
    let resp = server
        .req(Method::PUT, "/api/v1/app/game/collection/c/document/a1")
        .header("if-match", "\"7\"")
        .json(&json!({"team": "green"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
    let list = api(
        &server,
        Method::GET,
        "/api/v1/app/game/collection/c/document?prefix=a&team=red",
        Value::Null,
    )
    .await;
    let keys: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a1"]);
    let resp = server
        .req(Method::PUT, "/api/v1/app/game/collection/c/document/a1")
        .json(&json!(["not", "an", "object"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    server.stop().await;
}
