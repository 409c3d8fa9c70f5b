//! `hookd backup` while a server takes messages, then `hookd restore` into a new
//! database: every message acknowledged before the backup started is in it. A restore
//! over a database a server is using is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;

use common::TestServer;
use serde_json::{Value, json};

async fn start(db: &Path) -> TestServer {
    TestServer::start_sqlite_at(db, &[("HOOKD_DELIVERY_ENABLED", "false")]).await
}

fn hookd(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .env("HOOKD_DATABASE_URL", format!("sqlite://{}", db.display()))
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_message_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("live/hookd.db");
    let server = start(&db).await;
    let client = reqwest::Client::new();
    let app: Value = server
        .req(reqwest::Method::POST, "/api/v1/app")
        .json(&json!({"name": "backed up", "uid": "backed-up"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    // Posters run before, during and after the backup.
    let acked = Arc::new(Mutex::new(Vec::<(Instant, String)>::new()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut posters = Vec::new();
    for k in 0..4 {
        let (client, url, token, app) = (
            client.clone(),
            server.url.clone(),
            server.token.clone(),
            app.clone(),
        );
        let (acked, running) = (Arc::clone(&acked), Arc::clone(&running));
        posters.push(tokio::spawn(async move {
            let mut i = 0;
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let resp = client
                    .post(format!("{url}/api/v1/app/{app}/msg"))
                    .bearer_auth(&token)
                    .json(&json!({"eventType": "t", "payload": {"k": k, "i": i, "pad": "p".repeat(2000)}}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 202);
                let body: Value = resp.json().await.unwrap();
                let id = body["id"].as_str().unwrap().to_owned();
                acked.lock().unwrap().push((Instant::now(), id));
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let backup_file = dir.path().join("hookd-backup.db");
    let started = Instant::now();
    let (db2, file2) = (db.clone(), backup_file.clone());
    let out = tokio::task::spawn_blocking(move || hookd(&db2, &["backup", "--to", file2.to_str().unwrap()]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("backed up"), "{said}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    for p in posters {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let before: Vec<&String> = acked
        .iter()
        .filter(|(at, _)| *at < started)
        .map(|(_, id)| id)
        .collect();
    assert!(
        before.len() > 20,
        "only {} messages before the backup",
        before.len()
    );
    assert!(acked.len() > before.len(), "the posts went on during the backup");
    // A backup never overwrites a file.
    let again = hookd(&db, &["backup", "--to", backup_file.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    // Restoring over the database the server is using is refused.
    let refused = hookd(&db, &["restore", "--from", backup_file.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("is in use"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.stop().await;
    // Restored into a new place, a server finds every message acknowledged before.
    let restored_db = dir.path().join("restored/hookd.db");
    let out = hookd(
        &restored_db,
        &["restore", "--from", backup_file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The secrets in it are sealed under the live database's key, which the backup
    // does not hold: without it the restored database does not open; with the key
    // file put back beside it, it does.
    let keyless = hookd(&restored_db, &["migrate"]);
    assert_eq!(keyless.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&keyless.stderr).contains("does not open this database's secrets"),
        "{}",
        String::from_utf8_lossy(&keyless.stderr)
    );
    std::fs::copy(
        dir.path().join("live/hookd.db.key"),
        dir.path().join("restored/hookd.db.key"),
    )
    .unwrap();
    let restored = start(&restored_db).await;
    let stored: std::collections::HashSet<String> = restored.message_ids(&app).await.into_iter().collect();
    let missing: Vec<_> = before.iter().filter(|id| !stored.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} missing",
        missing.len(),
        before.len()
    );
    // Nothing that was never acknowledged.
    let all: std::collections::HashSet<&String> = acked.iter().map(|(_, id)| id).collect();
    assert!(stored.iter().all(|id| all.contains(id)));
    restored.stop().await;
}

#[test]
fn a_file_that_is_not_a_hookd_backup_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let db = dir.path().join("hookd.db");
    let out = hookd(&db, &["restore", "--from", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not a usable hookd backup"), "{said}");
    assert!(!db.exists(), "nothing was written");
}
