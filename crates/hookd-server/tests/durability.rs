//! SIGKILL with deliveries pending and in flight: after a restart everything that was
//! acknowledged (202) is delivered, at least once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::process::{self, Process};
use common::receiver::{Answer, Receiver};

/// hookd on `db` with short retries and a short lease, as node `node-1`.
async fn start(db: &str) -> Process {
    process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", db),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
            ("HOOKD_RETRY_SCHEDULE", "500ms,500ms,500ms,500ms,500ms"),
            ("HOOKD_DELIVERY_TIMEOUT", "2s"),
            ("HOOKD_DELIVERY_LEASE", "3s"),
            ("HOOKD_DELIVERY_ENDPOINT_CONCURRENCY", "4"),
            ("HOOKD_DELIVERY_POLL_INTERVAL", "100ms"),
            ("HOOKD_NODE_ID", "node-1"),
        ],
    )
    .await
}

#[tokio::test]
async fn sigkill_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path()).await;
    let receiver = Receiver::start().await;
    // Slow answers keep deliveries in flight and a backlog pending when the kill comes.
    receiver.answer_always(Answer {
        status: 200,
        delay: Duration::from_millis(300),
        headers: vec![],
        body: None,
    });

    let mut hookd = start(&db.url).await;
    let base = hookd.base.clone();
    let token = process::create_token(&db.url, "durable");
    let http = reqwest::Client::new();
    let app: serde_json::Value = http
        .post(format!("{base}/api/v1/app"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "durable"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    for path in ["/a", "/b"] {
        let resp = http
            .post(format!("{base}/api/v1/app/{app}/endpoint"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"url": format!("{}{path}", receiver.url)}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
    }

    let mut acknowledged = HashSet::new();
    for i in 0..100 {
        let resp = http
            .post(format!("{base}/api/v1/app/{app}/msg"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"eventType": "order.created", "payload": {"i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let msg: serde_json::Value = resp.json().await.unwrap();
        acknowledged.insert(msg["id"].as_str().unwrap().to_owned());
    }
    // Let some deliveries happen and others be in flight, then kill without warning.
    receiver.wait_for("/a", 5, Duration::from_secs(10)).await;
    hookd.kill(); // SIGKILL
    let before_restart = receiver.received().len();
    assert!(
        before_restart < 200,
        "everything was delivered before the kill; the test proves nothing"
    );

    receiver.answer_always(Answer::status(200));
    let _hookd = start(&db.url).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = receiver.received();
        let per_endpoint = |path: &str| -> HashSet<String> {
            got.iter()
                .filter(|r| r.path == path)
                .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
                .collect()
        };
        let (a, b) = (per_endpoint("/a"), per_endpoint("/b"));
        if a == acknowledged && b == acknowledged {
            let duplicates = got.len() - 200;
            eprintln!(
                "all 200 deliveries arrived; {before_restart} before the kill, {duplicates} duplicates"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after restart: /a has {} of 100, /b has {} of 100",
            a.len(),
            b.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
