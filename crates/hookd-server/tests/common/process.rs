//! The real `hookd` binary as a child process: started on a free port, waited for,
//! killed (SIGKILL) when dropped.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const HOOKD: &str = env!("CARGO_BIN_EXE_hookd");

/// A running `hookd`, killed and reaped on drop.
pub struct Process {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `hookd` with a clean environment (only `PATH` and `HOOKD_LOG=warn`; when the tests
/// run on PostgreSQL, also the tests' `secret_key`, which PostgreSQL needs).
pub fn command() -> Command {
    let mut cmd = Command::new(HOOKD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKD_LOG", "warn");
    if hookd_store_postgres::testing::test_database_url().is_some() {
        cmd.env("HOOKD_SECRET_KEY", super::TEST_SECRET_KEY);
    }
    cmd
}

/// `hookd serve ARGS` on a free port with `settings` (`HOOKD_*` pairs); returns once
/// it is healthy.
pub async fn serve(args: &[&str], settings: &[(&str, &str)]) -> Process {
    let port = free_port();
    let mut cmd = command();
    cmd.arg("serve")
        .args(args)
        .env("HOOKD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null());
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let process = Process {
        child: cmd.spawn().unwrap(),
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_healthy(&process.base).await;
    process
}

pub async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/api/v1/health/")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "hookd at {base} did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last line of a command's output (where `token create` prints the token).
pub fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// A new API token of `org` in the database `db`, made with the CLI.
pub fn create_token(db: &str, org: &str) -> String {
    let out = command()
        .args(["token", "create", "--org", org])
        .env("HOOKD_DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    last_line(&out.stdout)
}

/// Flow run `id` of the hookd at `base` once it has ended (neither running nor
/// waiting), polled with `token`; fails the test past `within`.
pub async fn ended_run(base: &str, token: &str, id: &str, within: Duration) -> serde_json::Value {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + within;
    loop {
        let r: serde_json::Value = http
            .get(format!("{base}/api/v1/flow-run/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if r["status"] != "running" && r["status"] != "waiting" {
            return r;
        }
        assert!(Instant::now() < deadline, "the run did not resume: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
