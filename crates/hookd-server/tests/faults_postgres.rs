//! PostgreSQL restarted under load (the machine's own cluster, `pg_ctlcluster ...
//! restart`, once fast and once immediate, a crash): calls answer 503 with
//! `Retry-After` while it is down, never 500; every message acknowledged is stored;
//! hookd reconnects by itself.
//!
//! Runs when the tests run on PostgreSQL (`HOOKD_TEST_DATABASE_URL`) and the cluster
//! can be restarted from here (`pg_ctlcluster`, as root in CI); alone in its test
//! binary, since it takes the database away from everything else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::{Value, json};

/// The `pg_ctlcluster` version and name of the cluster on `port`.
fn cluster_on(port: u16) -> Option<(String, String)> {
    let out = Command::new("pg_lsclusters").arg("-h").output().ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() >= 3 && f[2] == port.to_string()).then(|| (f[0].to_owned(), f[1].to_owned()))
    })
}

fn restart(cluster: &(String, String), mode: &str) {
    let status = Command::new("pg_ctlcluster")
        .args([&cluster.0, &cluster.1, "restart", "-m", mode])
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster restart -m {mode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_is_503s_only_and_loses_nothing() {
    let Some(base) = hookd_store_postgres::testing::test_database_url() else {
        eprintln!("skipped: runs on PostgreSQL (HOOKD_TEST_DATABASE_URL)");
        return;
    };
    let port = url::Url::parse(&base).unwrap().port().unwrap_or(5432);
    let Some(cluster) = cluster_on(port) else {
        eprintln!("skipped: no cluster on port {port} that pg_ctlcluster can restart");
        return;
    };
    let server = Arc::new(TestServer::start_with(&[("HOOKD_POSTGRES_ACQUIRE_TIMEOUT", "2s")]).await);
    let app: Value = server
        .req(reqwest::Method::POST, "/api/v1/app")
        .json(&json!({"name": "restart"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, usize>::new()));
    let accepted = Arc::new(Mutex::new(Vec::<String>::new()));
    let until = Instant::now() + Duration::from_secs(14);
    let mut workers = Vec::new();
    for k in 0..6 {
        let (server, app, statuses, accepted) = (
            Arc::clone(&server),
            app.clone(),
            Arc::clone(&statuses),
            Arc::clone(&accepted),
        );
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while Instant::now() < until {
                let resp = server
                    .req(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
                    .json(&json!({"eventType": "load", "payload": {"k": k, "i": i}}))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                if status == 503 {
                    assert!(resp.headers().contains_key("retry-after"));
                }
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                assert!(status == 202 || status == 503, "{status}: {body}");
                if status == 202 {
                    accepted
                        .lock()
                        .unwrap()
                        .push(body["id"].as_str().unwrap().to_owned());
                }
                let list = server
                    .req(reqwest::Method::GET, &format!("/api/v1/app/{app}/msg?limit=5"))
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                assert!(list == 200 || list == 503, "a list answered {list}");
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cluster_fast = cluster.clone();
    tokio::task::spawn_blocking(move || restart(&cluster_fast, "fast"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::spawn_blocking(move || restart(&cluster, "immediate"))
        .await
        .unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let statuses = statuses.lock().unwrap().clone();
    eprintln!("answers while PostgreSQL restarted: {statuses:?}");
    assert!(
        statuses.get(&503).is_some_and(|n| *n > 0),
        "the restarts were seen: {statuses:?}"
    );
    // hookd reconnected by itself: a call now succeeds.
    let after = common::settle(
        || async {
            server
                .req(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
                .json(&json!({"eventType": "after", "payload": {}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        },
        |s| *s == 202,
    )
    .await;
    assert_eq!(after, 202);
    // Every acknowledged message is stored.
    let stored: std::collections::HashSet<String> = server.message_ids(&app).await.into_iter().collect();
    let accepted = accepted.lock().unwrap().clone();
    let missing: Vec<_> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged messages lost: {missing:?}",
        missing.len()
    );
    Arc::into_inner(server).unwrap().stop().await;
}
