//! The CLI's remote commands as child processes against a test server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TestServer;
use super::process::command;

/// A running remote command (`hookd listen`, `tail`, ...) against a test server,
/// its stderr and stdout collected.
pub struct Cli {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
    pub stdout: Arc<Mutex<String>>,
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn collect(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let into = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut t = into.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

impl Cli {
    pub fn start(server: &TestServer, command_name: &str, args: &[&str]) -> Self {
        Self::start_env(server, command_name, args, &[])
    }

    pub fn start_env(server: &TestServer, command_name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_at(&server.url, &server.token, command_name, args, env)
    }

    /// Against the hookd at `base` with `token` (a server started as a process).
    pub fn start_at(
        base: &str,
        token: &str,
        command_name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .arg(command_name)
            .args(args)
            .env("HOOKD_SERVER", base)
            .env("HOOKD_TOKEN", token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = collect(child.stderr.take().unwrap());
        let stdout = collect(child.stdout.take().unwrap());
        Self {
            child,
            stderr,
            stdout,
        }
    }

    /// Waits until stderr has said `what` `n` times.
    pub async fn wait_said(&self, what: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let said = self.stderr.lock().unwrap().matches(what).count();
            if said >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hookd did not say {what:?}:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM (as Ctrl-C), then the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        self.child.wait().unwrap()
    }

    /// Sends a signal (`-INT`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap();
    }

    /// Waits for the exit (at most 60 s).
    pub async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "did not exit:\n{}",
                self.stderr.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its stdout so far, line by line.
    pub fn lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().lines().map(str::to_owned).collect()
    }
}
