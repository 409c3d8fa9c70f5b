//! Email against a real SMTP server: `tests/smtp/server.py` (aiosmtpd), started here,
//! writes what it accepts to a directory that the tests read back.
//!
//! Without Python's `aiosmtpd` these tests say so and pass (a fresh machine needs no
//! services for `cargo test`); `HOOKD_TEST_NOTIFY=required` (as in CI) makes its absence
//! a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use hookd_notify::SendError;
use hookd_notify::email::{Email, Mailer, Security};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct SmtpServer {
    port: u16,
    dir: tempfile::TempDir,
    _child: Child,
}

impl SmtpServer {
    /// Starts the server; it refuses the first `refuse` messages with a 451. `None`
    /// when aiosmtpd is not installed and not required.
    async fn start(refuse: u32) -> Option<Self> {
        if !common::python_has("aiosmtpd", "email against an SMTP server") {
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

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// The messages accepted so far, as received after DATA.
    fn received(&self) -> Vec<String> {
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

    fn envelope(&self, n: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{n}.json"))).unwrap()
    }
}

fn email(id: &str) -> Email {
    Email {
        to: vec!["Ada Lovelace <ada@example.com>".into()],
        cc: vec!["billing@example.com".into()],
        subject: "Payment of 12.50 EUR received — thank you".into(),
        text: Some("Your invoice in_1 is paid.".into()),
        html: Some("<p>Your invoice <b>in_1</b> is paid.</p>".into()),
        message_id: id.into(),
    }
}

fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server_with_its_recipients_subject_and_both_bodies() {
    let Some(server) = SmtpServer::start(0).await else {
        return;
    };
    let mailer = Mailer::new(
        &server.url(),
        "hookd <flows@hookd.example>",
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(mailer.security(), Security::Plain);
    mailer.send(&email("run_1.mail")).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(header(m, "From"), Some("hookd <flows@hookd.example>"));
    assert_eq!(header(m, "To"), Some("\"Ada Lovelace\" <ada@example.com>"));
    assert_eq!(header(m, "Cc"), Some("billing@example.com"));
    assert_eq!(header(m, "Message-ID"), Some("<run_1.mail@hookd.example>"));
    // A non-ASCII subject is encoded (RFC 2047), not sent raw.
    let subject = header(m, "Subject").unwrap();
    assert_eq!(
        subject,
        "Payment of 12.50 EUR received =?utf-8?b?4oCU?= thank you"
    );
    assert!(m.contains("multipart/alternative"), "{m}");
    assert!(m.contains("Your invoice in_1 is paid."));
    assert!(m.contains("<p>Your invoice <b>in_1</b> is paid.</p>"));
    let envelope = server.envelope(1);
    assert!(
        envelope.contains("\"from\": \"flows@hookd.example\""),
        "{envelope}"
    );
    assert!(envelope.contains("ada@example.com") && envelope.contains("billing@example.com"));
}

#[tokio::test]
async fn a_server_that_refuses_twice_gets_the_same_message_id_when_it_accepts() {
    let Some(server) = SmtpServer::start(2).await else {
        return;
    };
    let mailer = Mailer::new(&server.url(), "flows@hookd.example", Duration::from_secs(10)).unwrap();
    let mail = email("run_2.mail");
    for _ in 0..2 {
        let e = mailer.send(&mail).await.unwrap_err();
        assert!(e.is_transient(), "a 451 is worth another try: {e}");
        assert!(e.to_string().contains("451"), "{e}");
    }
    mailer.send(&mail).await.unwrap();
    let got = server.received();
    assert_eq!(got.len(), 1, "one message, once accepted");
    assert_eq!(header(&got[0], "Message-ID"), Some("<run_2.mail@hookd.example>"));
}

#[tokio::test]
async fn starttls_is_required_unless_the_url_says_otherwise() {
    // The test server offers no STARTTLS: a plain smtp:// URL refuses to send in clear.
    let Some(server) = SmtpServer::start(0).await else {
        return;
    };
    let url = format!("smtp://user:s3cr%40t@127.0.0.1:{}", server.port);
    let mailer = Mailer::new(&url, "flows@hookd.example", Duration::from_secs(10)).unwrap();
    assert_eq!(mailer.security(), Security::StartTls);
    let e = mailer.send(&email("run_3.mail")).await.unwrap_err();
    assert!(!e.to_string().contains("s3cr"), "no password in errors: {e}");
    assert!(server.received().is_empty(), "nothing went out in clear");
    // Credentials are never shown.
    let shown = format!("{mailer:?}");
    assert!(!shown.contains("s3cr") && !shown.contains("user"), "{shown}");
}

#[tokio::test]
async fn bad_settings_and_addresses_are_refused_before_anything_is_sent() {
    let timeout = Duration::from_secs(1);
    for (url, why) in [
        ("http://mail.example.com", "smtp://"),
        ("smtp://", "host"),
        ("smtp://mail.example.com?tls=maybe", "tls is"),
        ("smtps://mail.example.com?tls=none", "always TLS"),
        ("smtp://mail.example.com?user=x", "query parameter"),
    ] {
        let e = Mailer::new(url, "flows@hookd.example", timeout).unwrap_err();
        assert!(e.to_string().contains(why), "{url}: {e}");
    }
    let e = Mailer::new("smtp://u:p@mail.example.com", "not an address", timeout).unwrap_err();
    assert!(e.to_string().contains("smtp_from"), "{e}");
    assert!(!e.to_string().contains(":p@"), "{e}");
    let mailer = Mailer::new("smtps://mail.example.com", "flows@hookd.example", timeout).unwrap();
    assert_eq!(mailer.security(), Security::Implicit);
    let mut bad = email("x");
    bad.to = vec!["not an address".into()];
    assert!(matches!(mailer.send(&bad).await, Err(SendError::Invalid(_))));
    bad.to = vec![];
    assert!(matches!(mailer.send(&bad).await, Err(SendError::Invalid(_))));
}
