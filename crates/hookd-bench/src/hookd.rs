//! The processes of a run: a release `hookd` on a fresh database, the receiver
//! (`hookd-bench receiver`), and what `/proc` says of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookd_store_postgres::testing::TestSchema;
use hyper::Method;

use crate::Error;
use crate::load;

/// The `hookd` binary to measure: `--hookd PATH`, or the release build beside this
/// harness (built first, so a run never measures a stale binary).
pub fn binary(given: Option<PathBuf>) -> Result<PathBuf, Error> {
    if let Some(path) = given {
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe.parent().ok_or("the harness has no directory")?;
    let target = profile_dir
        .parent()
        .ok_or("the harness is not in a target directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release hookd (cargo build --release -p hookd-server)...");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--locked",
            "-p",
            "hookd-server",
            "--bin",
            "hookd",
        ])
        .env("CARGO_TARGET_DIR", target)
        .status()?;
    if !status.success() {
        return Err("building the release hookd failed".into());
    }
    Ok(target.join("release").join("hookd"))
}

/// The `secret_key` of servers on PostgreSQL (a fresh schema per run; nothing real is
/// sealed with it).
const BENCH_SECRET_KEY: &str = "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZiE=";

/// A fresh, empty database for one run, removed afterwards.
#[derive(Debug)]
pub enum Database {
    Sqlite { dir: PathBuf, url: String },
    Postgres(TestSchema),
}

impl Database {
    /// `base`: `None` for SQLite (a new file under `dir`), or a PostgreSQL URL in which
    /// a new schema is made.
    pub async fn fresh(base: Option<&str>, dir: &Path) -> Result<Self, Error> {
        match base {
            Some(url) => Ok(Self::Postgres(TestSchema::create(url).await?)),
            None => {
                let dir = dir.join(format!("run-{}-{}", std::process::id(), crate::unix_micros()));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("hookd.db").display());
                Ok(Self::Sqlite { dir, url })
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::Sqlite { url, .. } => url,
            Self::Postgres(schema) => schema.url(),
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Self::Sqlite { dir, .. } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A child process, killed when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then wait (SIGKILL after `grace`).
    pub fn stop(mut self, grace: Duration) -> Result<(), Error> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("the process did not stop on SIGTERM".into())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `hookd ARGS` with only `settings` in its environment, its output thrown away.
fn hookd_command(bin: &Path, db: &Database, settings: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKD_LOG", "warn")
        .env("HOOKD_DATABASE_URL", db.url());
    // PostgreSQL needs the key that seals secrets from the configuration (SQLite makes
    // a key file beside the database).
    if let Database::Postgres(_) = db {
        cmd.env("HOOKD_SECRET_KEY", BENCH_SECRET_KEY);
    }
    for (k, v) in settings {
        cmd.env(k, v);
    }
    cmd
}

/// A new API token of the organisation `bench`, made with the CLI.
pub fn token(bin: &Path, db: &Database) -> Result<String, Error> {
    let out = hookd_command(bin, db, &[])
        .args(["token", "create", "--org", "bench"])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "hookd token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let token = stdout.lines().last().unwrap_or_default().trim().to_owned();
    if token.is_empty() {
        return Err("hookd token create printed no token".into());
    }
    Ok(token)
}

/// `hookd serve ARGS` on `listen` with the receiver's loopback network allowed;
/// answers once `/api/v1/health/` does.
pub async fn serve(
    bin: &Path,
    db: &Database,
    listen: SocketAddr,
    args: &[&str],
    settings: &[(String, String)],
) -> Result<Proc, Error> {
    let mut cmd = hookd_command(bin, db, settings);
    cmd.arg("serve")
        .args(args)
        .env("HOOKD_LISTEN", listen.to_string())
        .env("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")
        .stdout(Stdio::null());
    let proc = Proc { child: cmd.spawn()? };
    wait_healthy(listen).await?;
    Ok(proc)
}

/// `hookd listen` following `source` of the server at `server`, replaying to
/// `forward_to`; answers once its session is connected (its stderr is kept in `log`).
pub async fn listen(
    bin: &Path,
    server: SocketAddr,
    token: &str,
    source: &str,
    forward_to: &str,
    log: &Path,
) -> Result<Proc, Error> {
    let stderr = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOOKD_SERVER", format!("http://{server}"))
        .env("HOOKD_TOKEN", token)
        .args([
            "listen",
            "--source",
            source,
            "--forward-to",
            forward_to,
            "--session",
            "bench",
        ])
        .args(["--concurrency", "128"])
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?;
    let proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        if said.contains("connected") {
            return Ok(proc);
        }
        if Instant::now() > deadline {
            return Err(format!("hookd listen did not connect: {said}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `hookd-bench receiver` on `listen`; answers once it accepts connections.
pub async fn receiver(listen: SocketAddr) -> Result<Proc, Error> {
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["receiver", "--listen", &listen.to_string()])
        .stdout(Stdio::null())
        .spawn()?;
    let proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        if Instant::now() > deadline {
            return Err("the receiver did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(proc)
}

async fn wait_healthy(addr: SocketAddr) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok((200..=299, _)) = load::call(addr, Method::GET, "/api/v1/health/", None, None).await {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("hookd at {addr} did not become healthy").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU time (user + system) and memory of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds used so far.
    pub cpu_s: f64,
    /// Resident set now, MiB.
    pub rss_mib: f64,
    /// The highest resident set so far (VmHWM), MiB.
    pub peak_rss_mib: f64,
}

/// Linux reports `/proc/PID/stat` times in USER_HZ, 100 on every Linux ABI hookd
/// runs on.
const TICKS_PER_SECOND: f64 = 100.0;

pub fn usage(pid: u32) -> Result<Usage, Error> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let tick =
        |i: usize| -> Result<f64, Error> { Ok(fields.get(i).ok_or("short /proc stat")?.parse::<f64>()?) };
    let cpu_s = (tick(11)? + tick(12)?) / TICKS_PER_SECOND;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok(Usage {
        cpu_s,
        rss_mib: kib("VmRSS:") / 1024.0,
        peak_rss_mib: kib("VmHWM:") / 1024.0,
    })
}
