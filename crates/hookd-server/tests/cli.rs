//! The `hookd` binary as an operator uses it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{self, Process, free_port, last_line, wait_healthy};

fn hookd(dir: &std::path::Path) -> Command {
    let mut cmd = process::command();
    cmd.current_dir(dir);
    cmd
}

#[tokio::test]
async fn serve_with_defaults_then_tokens_from_the_cli_work_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    // Only the listen address is set: the database is the embedded default, created
    // under ./hookd-data.
    let server = Process {
        child: hookd(dir.path())
            .args(["serve"])
            .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        base: base.clone(),
    };
    wait_healthy(&base).await;
    assert!(dir.path().join("hookd-data/hookd.db").exists());

    // A token made by the CLI while the server runs, on the same database.
    let out = hookd(dir.path())
        .args(["token", "create", "--org", "acme", "--name", "ci"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = last_line(&out.stdout);
    assert!(token.starts_with("hk_"), "{token:?}");

    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}/api/v1/app"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "From the CLI"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // Listing shows it; revoking shuts it out.
    let out = hookd(dir.path())
        .args(["token", "list", "--org", "acme"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("\tci\t") && listing.contains("active"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "secrets are never listed");
    let token_id = listing.split('\t').next().unwrap().to_owned();
    let out = hookd(dir.path())
        .args(["token", "revoke", "--org", "acme", &token_id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A running server trusts a token record it looked up for one second
    // (hookd_server::service::cache::TRUST): the revocation holds within that.
    let revoked_at = Instant::now();
    loop {
        let resp = client
            .get(format!("{base}/api/v1/app"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if resp.status() == 401 {
            break;
        }
        assert_eq!(resp.status(), 200);
        assert!(
            revoked_at.elapsed() < hookd_server::service::cache::TRUST + Duration::from_millis(500),
            "the revoked token still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // SIGTERM stops it cleanly.
    let mut server = server;
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "hookd did not exit on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn invalid_settings_stop_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value) in [
        ("HOOKD_LISTEN", "nowhere"),
        ("HOOKD_RETRY_SCHEDULE", "5s,whenever"),
        ("HOOKD_DATABASE_URL", "mysql://localhost/x"),
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "10.0.0.0/99"),
    ] {
        let out = hookd(dir.path()).arg("serve").env(key, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{key}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let setting = key.trim_start_matches("HOOKD_").to_ascii_lowercase();
        assert!(stderr.contains(&setting), "{key}: {stderr}");
    }
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "listen = 8071\n").unwrap();
    let out = hookd(dir.path())
        .arg("serve")
        .env("HOOKD_CONFIG", &file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen"));
}

#[test]
fn config_print_shows_the_effective_settings_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "sqlite_readers = 2\n").unwrap();
    let out = hookd(dir.path())
        .args(["config", "print"])
        .env("HOOKD_CONFIG", &file)
        .env("HOOKD_LISTEN", "0.0.0.0:9999")
        .env("HOOKD_PUBLIC_URL", "https://user:hunter2@hooks.example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!printed.contains("hunter2"), "{printed}");
    let shown: toml::Table = printed.parse().unwrap();
    assert_eq!(shown["listen"].as_str(), Some("0.0.0.0:9999"));
    assert_eq!(shown["sqlite_readers"].as_integer(), Some(2));
    assert_eq!(shown["retry_schedule"].as_str(), Some("5s,5m,30m,2h,5h,10h,10h"));

    let defaults = hookd(dir.path())
        .args(["config", "print", "--defaults"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&defaults.stdout);
    assert!(text.contains("# hookd configuration"), "{text}");
}

#[test]
fn migrate_creates_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookd(dir.path())
        .arg("migrate")
        .env("HOOKD_DATABASE_URL", "sqlite://data/x.db")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("data/x.db").exists());
}

#[test]
fn prune_deletes_old_messages() {
    let dir = tempfile::tempdir().unwrap();
    let out = hookd(dir.path())
        .args(["prune", "--older-than", "30d"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("deleted 0 messages older than 30days"), "{said}");
    let bad = hookd(dir.path())
        .args(["prune", "--older-than", "soon"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_from_the_cli() {
    use hookd_core::api_token::ApiKey;
    use hookd_store::{ApplicationData, ApplicationStore as _, OrgStore as _};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let url = format!("sqlite://{}", path.display());
    let key = hookd_core::sealed::SealingKey::generate();
    {
        let keyring = hookd_store::sealing::Keyring::new(key.clone(), Vec::new());
        let store =
            hookd_store_sqlite::SqliteStore::open(hookd_store_sqlite::SqliteOptions::new(&path, keyring))
                .await
                .unwrap();
        let org = store.ensure_org("acme").await.unwrap();
        let data = ApplicationData {
            uid: Some("game".parse().unwrap()),
            name: "Game".into(),
            throttle_rate: None,
            metadata: Default::default(),
        };
        store.create_application(&org.id, data).await.unwrap();
    }
    let run = |args: &[&str]| {
        hookd(dir.path())
            .args(args)
            .env("HOOKD_DATABASE_URL", &url)
            .env("HOOKD_SECRET_KEY", key.to_base64())
            .output()
            .unwrap()
    };
    let out = run(&[
        "api-key", "create", "--org", "acme", "--app", "game", "--name", "crm", "--scope", "read", "--mode",
        "contact",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = last_line(&out.stdout);
    let key = ApiKey::parse(&shown).expect("the last line is the key");
    let out = run(&["api-key", "list", "--org", "acme", "--app", "game"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains(key.id.as_str()) && listed.contains("\tread\tactive"),
        "{listed}"
    );
    assert!(!listed.contains(&shown), "the secret is never listed");
    // Bad input is refused with a message naming it.
    let out = run(&[
        "api-key", "create", "--org", "acme", "--app", "game", "--scope", "admin",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin"));
    let out = run(&[
        "api-key",
        "revoke",
        "--org",
        "acme",
        "--app",
        "game",
        key.id.as_str(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["api-key", "list", "--org", "acme", "--app", "game"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let out = run(&[
        "api-key",
        "revoke",
        "--org",
        "acme",
        "--app",
        "game",
        key.id.as_str(),
    ]);
    assert!(!out.status.success(), "revoking twice is an error");
}
