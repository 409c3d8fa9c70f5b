//! SMS: hookd's request to Twilio's Messages API compared with the one the official
//! `twilio` Python library makes for the same message, both sent to one capture
//! server here. Without the library these tests say so and pass; `.ci/run` installs
//! it and sets HOOKD_TEST_NOTIFY=required, which makes its absence a failure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use hookd_notify::SendError;
use hookd_notify::sms::{Sender, Sms, Twilio, TwilioAccount};

/// What the capture server saw of one request.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    method: String,
    path: String,
    authorization: String,
    content_type: String,
    form: Vec<(String, String)>,
}

#[derive(Clone, Default)]
struct Capture {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Status to answer (201 unless set).
    answer: Arc<Mutex<Option<(StatusCode, &'static str)>>>,
}

async fn capture(
    State(c): State<Capture>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    form.sort();
    c.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        authorization: header("authorization"),
        content_type: header("content-type"),
        form,
    });
    let (status, body) = c.answer.lock().unwrap().unwrap_or((
        StatusCode::CREATED,
        r#"{"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "account_sid": "AC0123456789abcdef0123456789abcdef", "to": "+15558675310", "body": "x", "num_segments": "1", "direction": "outbound-api", "date_created": "Thu, 03 Dec 2026 10:00:00 +0000", "uri": "/x.json"}"#,
    ));
    (status, [("content-type", "application/json")], body)
}

async fn start() -> (String, Capture) {
    let c = Capture::default();
    let app = axum::Router::new().fallback(capture).with_state(c.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), c)
}

fn twilio_library() -> bool {
    common::python_has("twilio", "SMS against Twilio's library")
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "tok-secret-0123";

/// Sends the same SMS with the `twilio` library, to `base`.
fn send_with_library(base: &str, to: &str, sender: &Sender, body: &str) {
    let sender = match sender {
        Sender::From(n) => format!("from_={n:?}"),
        Sender::MessagingService(s) => format!("messaging_service_sid={s:?}"),
    };
    let script = format!(
        "from twilio.rest import Client\n\
         c = Client({SID:?}, {TOKEN:?})\n\
         c.api.base_url = {base:?}\n\
         m = c.messages.create(to={to:?}, {sender}, body={body:?})\n\
         assert m.sid.startswith('SM'), m.sid\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// Two workers: the capture server serves while the library's process is waited for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hookds_request_is_the_one_twilios_library_makes() {
    if !twilio_library() {
        return;
    }
    let (base, capture) = start().await;
    let twilio = Twilio::new(&base).unwrap();
    let account = TwilioAccount {
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
    };
    let client = reqwest::Client::new();
    for (to, sender, body) in [
        (
            "+15558675310",
            Sender::From("+15017122661".into()),
            "Invoice in_1 paid: 12.50 € — merci & thanks",
        ),
        (
            "+15558675310",
            Sender::MessagingService("MG9752274e9e519418a7406176694466fa".into()),
            "line one\nline two",
        ),
    ] {
        let sms = Sms {
            to: to.into(),
            sender: sender.clone(),
            body: body.into(),
        };
        let sent = twilio.send(&client, &account, &sms).await.unwrap();
        assert_eq!(sent.sid, "SM0123456789abcdef0123456789abcdef");
        assert_eq!(sent.status, "queued");
        send_with_library(&base, to, &sender, body);
        let seen = capture.seen.lock().unwrap().clone();
        let (ours, theirs) = (&seen[seen.len() - 2], &seen[seen.len() - 1]);
        assert_eq!(ours.method, theirs.method);
        assert_eq!(ours.path, theirs.path);
        assert_eq!(ours.path, format!("/2010-04-01/Accounts/{SID}/Messages.json"));
        assert_eq!(
            ours.authorization, theirs.authorization,
            "HTTP Basic with the SID and token"
        );
        assert!(
            ours.content_type.starts_with("application/x-www-form-urlencoded"),
            "{}",
            ours.content_type
        );
        assert!(
            theirs
                .content_type
                .starts_with("application/x-www-form-urlencoded")
        );
        assert_eq!(ours.form, theirs.form, "the same form fields");
    }
}

#[tokio::test]
async fn twilios_refusals_and_outages_are_told_apart() {
    let (base, capture) = start().await;
    let twilio = Twilio::new(&base).unwrap();
    let account = TwilioAccount {
        account_sid: SID.into(),
        auth_token: TOKEN.into(),
    };
    let sms = Sms {
        to: "+1555".into(),
        sender: Sender::From("+1666".into()),
        body: "hi".into(),
    };
    let client = reqwest::Client::new();
    *capture.answer.lock().unwrap() = Some((
        StatusCode::BAD_REQUEST,
        r#"{"code": 21211, "message": "The 'To' number +1555 is not a valid phone number.", "status": 400}"#,
    ));
    let e = twilio.send(&client, &account, &sms).await.unwrap_err();
    assert!(
        matches!(&e, SendError::Refused(m) if m.contains("21211") && m.contains("not a valid phone number")),
        "{e:?}"
    );
    for status in [StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE] {
        *capture.answer.lock().unwrap() = Some((status, r#"{"message": "slow down"}"#));
        assert!(
            twilio
                .send(&client, &account, &sms)
                .await
                .unwrap_err()
                .is_transient(),
            "{status}"
        );
    }
    // Nobody listening: worth another try.
    let gone = Twilio::new("http://127.0.0.1:9").unwrap();
    assert!(
        gone.send(&client, &account, &sms)
            .await
            .unwrap_err()
            .is_transient()
    );
    // Refused before anything is sent.
    let bad_sid = TwilioAccount {
        account_sid: "../../admin".into(),
        auth_token: TOKEN.into(),
    };
    let before = capture.seen.lock().unwrap().len();
    assert!(matches!(
        twilio.send(&client, &bad_sid, &sms).await,
        Err(SendError::Invalid(_))
    ));
    let long = Sms {
        body: "x".repeat(1_601),
        ..sms.clone()
    };
    assert!(matches!(
        twilio.send(&client, &account, &long).await,
        Err(SendError::Invalid(_))
    ));
    assert_eq!(capture.seen.lock().unwrap().len(), before);
    assert!(!format!("{account:?}").contains(TOKEN));
    assert!(Twilio::new("ftp://api.twilio.com").is_err());
    assert!(Twilio::new("https://user:pw@api.twilio.com").is_err());
}
