//! A real SMTP server for tests: `tests/smtp/server.py` (aiosmtpd) at the top of the
//! repository, started by the test; it writes what it accepts to a directory the test
//! reads back. Shared by hookd-notify's tests and hookd-server's flow tests (which
//! include this file by path).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct SmtpServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    _child: Child,
}

impl SmtpServer {
    /// Starts the server; it refuses the first `refuse` messages with a 451. `None`
    /// when aiosmtpd is not installed and not required.
    pub async fn start(refuse: u32) -> Option<Self> {
        Self::start_with(refuse, Duration::ZERO).await
    }

    /// [`SmtpServer::start`] that keeps each message at once but answers it only
    /// after `delay`.
    pub async fn start_with(refuse: u32, delay: Duration) -> Option<Self> {
        if !super::python_has("aiosmtpd", "email against an SMTP server") {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/smtp/server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args([
                "--port",
                &port.to_string(),
                "--refuse",
                &refuse.to_string(),
                "--delay",
                &delay.as_secs_f64().to_string(),
                "--dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs tests/smtp/server.py (pip install aiosmtpd)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server started")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("ready"), "is aiosmtpd installed?");
        Some(Self {
            port,
            dir,
            _child: child,
        })
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The messages accepted so far, as received after DATA.
    pub fn received(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    pub fn envelope(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{n}.json"))).unwrap()
    }
}

/// The value of header `name` in a received message, if it has it.
pub fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}
