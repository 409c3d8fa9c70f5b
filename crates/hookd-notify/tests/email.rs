//! Email against a real SMTP server: `tests/smtp/server.py` (aiosmtpd), started here,
//! writes what it accepts to a directory that the tests read back.
//!
//! Without Python's `aiosmtpd` these tests say so and pass (a fresh machine needs no
//! services for `cargo test`); `HOOKD_TEST_NOTIFY=required` (as in CI) makes its absence
//! a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::smtp::{SmtpServer, header};

use std::time::Duration;

use hookd_notify::SendError;
use hookd_notify::email::{Email, Mailer, Security};

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
