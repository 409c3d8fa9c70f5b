//! Slow and abusive clients at the HTTP listener (`crate::http::server`): a head that
//! drips in, a body that drips in, more connections or requests than allowed, heads too
//! large — each gets a clean answer or a closed connection, and health and ordinary
//! traffic keep being answered meanwhile.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes: then `None`).
async fn read_to_close(stream: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

async fn health(server: &TestServer) -> u16 {
    server
        .http()
        .get(server.url("/api/v1/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn list_apps(server: &TestServer) -> reqwest::Response {
    server
        .req(reqwest::Method::GET, "/api/v1/app")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_head_that_drips_in_is_cut_off_at_the_header_timeout() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_HEADER_TIMEOUT", "1s")]).await;
    let mut drippers = Vec::new();
    for _ in 0..50 {
        let mut s = connect(&server).await;
        s.write_all(b"POST /api/v1/app HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        drippers.push(s);
    }
    let started = Instant::now();
    // One header line every 200 ms: never a whole head.
    let drip = async {
        for i in 0..40 {
            for s in &mut drippers {
                let _ = s.write_all(format!("x-drip-{i}: y\r\n").as_bytes()).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let served = async {
        // Health and ordinary calls are answered while the drippers hang on.
        assert_eq!(health(&server).await, 204);
        assert_eq!(list_apps(&server).await.status(), 200);
    };
    tokio::join!(
        async {
            tokio::time::timeout(Duration::from_millis(1500), drip).await.ok();
        },
        served
    );
    for mut s in drippers {
        let said = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert!(said.is_some(), "the dripping connection was kept open");
    }
    assert!(started.elapsed() < Duration::from_secs(8));
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_header_timeout() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_HEADER_TIMEOUT", "1s")]).await;
    let mut s = connect(&server).await;
    s.write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 204"));
    // Then nothing: the connection is closed, not held.
    let said = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(said.as_deref(), Some(""));
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_drips_in_is_answered_408_at_the_body_timeout() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_BODY_TIMEOUT", "1s")]).await;
    for path in ["/api/v1/app", "/ingest/api/v1/source"] {
        let mut s = connect(&server).await;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 200\r\n\r\n",
            server.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let started = Instant::now();
        let dripped = async {
            // One byte every 100 ms: each read makes progress, the whole never comes.
            for _ in 0..100 {
                if s.write_all(b" ").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                if started.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        };
        dripped.await;
        let said = read_to_close(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(said.starts_with("HTTP/1.1 408"), "{path}: {said}");
        assert!(said.contains("\"code\":\"request_timeout\""), "{said}");
        assert!(said.to_ascii_lowercase().contains("connection: close"), "{said}");
    }
    // Nothing was created.
    let apps: serde_json::Value = list_apps(&server).await.json().await.unwrap();
    assert_eq!(apps["data"].as_array().unwrap().len(), 0, "{apps}");
    server.stop().await;
}

#[tokio::test]
async fn a_public_ingest_body_that_drips_in_is_answered_408() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_BODY_TIMEOUT", "1s")]).await;
    let (_, ingest_url) = create_source(
        &server,
        serde_json::json!({"name": "drip", "type": "generic-webhook"}),
    )
    .await;
    let ingest = url::Url::parse(&ingest_url).unwrap();
    let mut s = connect(&server).await;
    s.write_all(
        format!(
            "POST {} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{{",
            ingest.path()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let said = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_answered_503_and_closed() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_MAX_CONNECTIONS", "4")]).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server).await);
    }
    // Let the server accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = connect(&server).await;
    let said = read_to_close(&mut extra, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(said.to_ascii_lowercase().contains("retry-after: 1"), "{said}");
    let body = said.split("\r\n\r\n").nth(1).unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["code"], "unavailable");
    drop(held);
    // Once they are gone, connections are accepted again.
    let status = common::settle(
        || async {
            server
                .http()
                .get(server.url("/api/v1/health"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        },
        |s| *s == 204,
    )
    .await;
    assert_eq!(status, 204);
    server.stop().await;
}

#[tokio::test]
async fn requests_past_the_in_flight_cap_are_answered_503_but_health_is_not() {
    let server = TestServer::start_with(&[("HOOKD_HTTP_MAX_IN_FLIGHT", "2")]).await;
    // Two requests whose bodies never finish hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&server).await;
        let head = format!(
            "POST /api/v1/app HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{",
            server.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        held.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = list_apps(&server).await;
    assert_eq!(resp.status(), 503);
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    assert_eq!(health(&server).await, 204);
    drop(held);
    let status = common::settle(
        || async { list_apps(&server).await.status().as_u16() },
        |s| *s == 200,
    )
    .await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn heads_too_large_or_with_too_many_headers_are_answered_431() {
    let server = TestServer::start_with(&[
        ("HOOKD_HTTP_MAX_HEADERS", "20"),
        ("HOOKD_HTTP_MAX_HEADER_BYTES", "8192"),
    ])
    .await;
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let large = format!("x-big: {}\r\n", "a".repeat(20_000));
    for extra in [many, large] {
        let mut s = connect(&server).await;
        let _ = s
            .write_all(format!("GET /api/v1/health HTTP/1.1\r\nhost: x\r\n{extra}\r\n").as_bytes())
            .await;
        let said = read_to_close(&mut s, Duration::from_secs(5))
            .await
            .expect("closed");
        assert!(said.starts_with("HTTP/1.1 431"), "{said}");
    }
    assert_eq!(health(&server).await, 204);
    server.stop().await;
}

async fn create_source(server: &TestServer, body: serde_json::Value) -> (String, String) {
    let source: serde_json::Value = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        source["id"].as_str().unwrap().to_owned(),
        source["ingestUrl"].as_str().unwrap().to_owned(),
    )
}

/// Posts `n` requests at once to `url`.
async fn burst(server: &TestServer, url: &str, n: usize) -> Vec<reqwest::Response> {
    let sends = (0..n).map(|i| server.http().post(url).body(format!("{{\"n\":{i}}}")).send());
    futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_source_past_its_rate_limit_is_answered_429_and_keeps_nothing_more() {
    let server = TestServer::start_with(&[("HOOKD_INGEST_SOURCE_RATE_LIMIT", "1000")]).await;
    let (limited, limited_url) = create_source(
        &server,
        serde_json::json!({"name": "limited", "type": "generic-webhook", "options": {"rateLimit": 5}}),
    )
    .await;
    let (_, other_url) = create_source(
        &server,
        serde_json::json!({"name": "other", "type": "generic-webhook"}),
    )
    .await;
    let answers = burst(&server, &limited_url, 20).await;
    let accepted = answers.iter().filter(|r| r.status() == 200).count();
    let limited_answers: Vec<_> = answers.iter().filter(|r| r.status() == 429).collect();
    assert!((5..=6).contains(&accepted), "{accepted} accepted");
    assert_eq!(accepted + limited_answers.len(), 20);
    for r in &limited_answers {
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1);
    }
    // Another source has its own budget (the server's default, 1000/s).
    let others = burst(&server, &other_url, 20).await;
    assert!(others.iter().all(|r| r.status() == 200));
    // Only what was accepted is in the log.
    let log: serde_json::Value = server
        .req(
            reqwest::Method::GET,
            &format!("/ingest/api/v1/source/{limited}/log"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["data"].as_array().unwrap().len(), accepted, "{log}");
    // A second later the budget is back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(burst(&server, &limited_url, 1).await[0].status(), 200);
    // The option is checked.
    let resp = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&serde_json::json!({"name": "bad", "type": "generic-webhook", "options": {"rateLimit": 0}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    server.stop().await;
}

/// More writers than the database serves: on PostgreSQL with a pool of two (one slot
/// for batches of new messages), 200 clients writing as fast as they are answered
/// keep the group commit's queue standing (`hookd-store-postgres`'s `group_commit`), so
/// writes are refused early (503 `overloaded`, `Retry-After: 1`) rather than every
/// one waiting its turn; every message answered 202 is stored, none refused is, reads
/// go on meanwhile, and once the load stops a write is accepted again. (SQLite's
/// writer gathers every waiting write into one commit: its signal is checked by the
/// store's writer tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_what_the_database_serves_are_refused_early_and_nothing_is_lost() {
    if hookd_store_postgres::testing::test_database_url().is_none() {
        eprintln!("skipped: runs on PostgreSQL (HOOKD_TEST_DATABASE_URL)");
        return;
    }
    let server = std::sync::Arc::new(
        TestServer::start_with(&[
            ("HOOKD_POSTGRES_POOL_SIZE", "2"),
            ("HOOKD_POSTGRES_ACQUIRE_TIMEOUT", "30s"),
            ("HOOKD_HTTP_ADMISSION_WRITE_WAIT", "5ms"),
        ])
        .await,
    );
    let app = common::ok(
        &server,
        reqwest::Method::POST,
        "/api/v1/app",
        serde_json::json!({"name": "overload"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let until = Instant::now() + Duration::from_secs(3);
    let mut clients = Vec::new();
    for c in 0..200 {
        let (server, app) = (std::sync::Arc::clone(&server), app.clone());
        clients.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (Vec::new(), Vec::new());
            let mut n = 0;
            while Instant::now() < until {
                let event_id = format!("c{c}-{n}");
                n += 1;
                let resp = server
                    .req(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
                    .json(&serde_json::json!({"eventType": "load.test", "eventId": event_id, "payload": {"n": n}}))
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    202 => accepted.push(event_id),
                    503 => {
                        assert_eq!(resp.headers()["retry-after"], "1");
                        let body: serde_json::Value = resp.json().await.unwrap();
                        assert_eq!(body["code"], "overloaded", "{body}");
                        refused.push(event_id);
                    }
                    other => panic!("{other}: {}", resp.text().await.unwrap_or_default()),
                }
            }
            (accepted, refused)
        }));
    }
    // Reads are not refused while writes are.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(list_apps(&server).await.status().as_u16(), 200);
    assert_eq!(health(&server).await, 204);
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for client in clients {
        let (a, r) = client.await.unwrap();
        accepted.extend(a);
        refused.extend(r);
    }
    eprintln!("{} writes accepted, {} refused", accepted.len(), refused.len());
    assert!(
        !refused.is_empty(),
        "no write was refused ({} accepted)",
        accepted.len()
    );
    assert!(!accepted.is_empty(), "every write was refused");
    // Stored: exactly the accepted ones (listed by their event ids).
    let stored = server
        .raw_sql("SELECT event_id FROM message WHERE event_id IS NOT NULL")
        .await;
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    let accepted_set: std::collections::HashSet<String> = accepted.iter().cloned().collect();
    assert_eq!(stored, accepted_set, "{} refused", refused.len());
    // The load gone, the signal lapses and a write goes through.
    tokio::time::sleep(hookd_store::pressure::WINDOW * 3).await;
    common::ok(
        &server,
        reqwest::Method::POST,
        &format!("/api/v1/app/{app}/msg"),
        serde_json::json!({"eventType": "load.test", "payload": {}}),
    )
    .await;
}
