//! The embedded database's filesystem fills up or turns read-only under a running
//! server: writes answer 503 with `Retry-After` (never 500) and commit nothing they
//! answered 503 for, reads keep working, and once space (or write access) returns,
//! writes succeed again without a restart.
//!
//! The faults are real: the database lives on a small tmpfs mounted for the test
//! (filled with a file, remounted read-only). Mounting needs root, as CI runs; without
//! it the tests say so and do nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;

use common::TestServer;
use serde_json::{Value, json};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Self { dir })
        } else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root, as in CI)");
            None
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, mode: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

async fn start(dir: &Path) -> TestServer {
    TestServer::start_sqlite_at(&dir.join("hookd.db"), &[("HOOKD_DELIVERY_ENABLED", "false")]).await
}

async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = server
        .req(reqwest::Method::POST, path)
        .json(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

/// Fills the filesystem with one file, then frees `keep` bytes of it.
fn fill(dir: &Path, keep: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
    let _ = file.sync_all();
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(keep)).unwrap();
    path
}

/// Posts messages until `refusals` are refused; the ids of those accepted.
async fn post_until_refused(server: &TestServer, app: &str, refusals: usize) -> Vec<String> {
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..2_000 {
        let payload = json!({"n": i, "pad": "x".repeat(4_000)});
        let (status, retry, body) = post(
            server,
            &format!("/api/v1/app/{app}/msg"),
            &json!({"eventType": "fill", "payload": payload}),
        )
        .await;
        match status {
            202 => accepted.push(body["id"].as_str().unwrap().to_owned()),
            503 => {
                assert!(retry.is_some_and(|r| r.parse::<u64>().unwrap() >= 1));
                assert_eq!(body["code"], "unavailable", "{body}");
                refused += 1;
                if refused == refusals {
                    return accepted;
                }
            }
            other => panic!("a full disk was answered {other}: {body}"),
        }
    }
    panic!("the disk never filled up ({} accepted)", accepted.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_commits_nothing_and_recovers_without_a_restart() {
    let Some(fs) = Tmpfs::mount("12m") else { return };
    let server = start(fs.path()).await;
    let (status, _, app) = post(&server, "/api/v1/app", &json!({"name": "full"})).await;
    assert_eq!(status, 201, "{app}");
    let app = app["id"].as_str().unwrap().to_owned();
    let filler = fill(fs.path(), 256 * 1024);
    let accepted = post_until_refused(&server, &app, 5).await;
    // Reads keep working; every acknowledged message is there, and none refused.
    let mut stored = server.message_ids(&app).await;
    stored.sort();
    let mut expected = accepted.clone();
    expected.sort();
    assert_eq!(
        stored, expected,
        "stored messages are exactly the acknowledged ones"
    );
    // Space returns: writes succeed again, same process.
    std::fs::remove_file(filler).unwrap();
    let (status, _, body) = post(
        &server,
        &format!("/api/v1/app/{app}/msg"),
        &json!({"eventType": "after", "payload": {"ok": true}}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(server.message_ids(&app).await.len(), accepted.len() + 1);
    server.stop().await;
}

/// `hookd serve` with `database_url` (and `secret_key`, if given): its exit code and the
/// last line it said.
fn serve_fails_with(database_url: &str, secret_key: Option<&str>) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.arg("serve")
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_DATABASE_URL", database_url)
        .env("HOOKD_POSTGRES_CONNECT_TIMEOUT", "2s");
    if let Some(key) = secret_key {
        cmd.env("HOOKD_SECRET_KEY", key);
    }
    let out = cmd.output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    (
        out.status.code(),
        said.lines().last().unwrap_or_default().to_owned(),
    )
}

fn serve_fails(database_url: &str) -> (Option<i32>, String) {
    serve_fails_with(database_url, None)
}

#[test]
fn a_read_only_database_stops_start_up_saying_so() {
    let Some(fs) = Tmpfs::mount("16m") else { return };
    let url = format!("sqlite://{}/hookd.db", fs.path().display());
    // The database made by a process that has ended (no file left open).
    let made = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["token", "create"])
        .env("HOOKD_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    fs.remount("ro");
    let (code, said) = serve_fails(&url);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("hookd.db cannot be written"), "{said}");
    // A data directory that cannot be made, on the same read-only filesystem.
    let (code, said) = serve_fails(&format!("sqlite://{}/sub/hookd.db", fs.path().display()));
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("cannot create the data directory"), "{said}");
    assert!(said.contains("Read-only file system"), "{said}");
    fs.remount("rw");
}

#[test]
fn a_missing_directory_or_an_unreachable_postgresql_stops_start_up_saying_so() {
    let (code, said) = serve_fails("sqlite:///proc/no-such-dir/hookd.db");
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("cannot create the data directory /proc/no-such-dir"),
        "{said}"
    );
    // PostgreSQL with no secret_key: the nodes must share one, so none is made up.
    let (code, said) = serve_fails("postgres://postgres@127.0.0.1:1/test");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("a PostgreSQL database needs secret_key"), "{said}");
    // Nothing listens on port 1.
    let (code, said) = serve_fails_with(
        "postgres://postgres@127.0.0.1:1/test",
        Some(common::TEST_SECRET_KEY),
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{said}"
    );
    assert!(said.contains("Connection refused"), "{said}");
}
