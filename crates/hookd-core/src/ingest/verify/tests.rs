use serde_json::json;

use super::*;
use crate::ingest::SourceOptions;

fn req<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> IncomingRequest<'a> {
    IncomingRequest {
        method: "POST",
        url: "https://hooks.example.com/in/t",
        query: "",
        headers,
        body,
        client: Some("203.0.113.7".parse().unwrap()),
        now: 1_700_000_000,
    }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
        .collect()
}

fn options(v: serde_json::Value) -> SourceOptions {
    let mut o: SourceOptions = serde_json::from_value(v).unwrap();
    o.validate().unwrap();
    o
}

fn status(v: &Verdict) -> u16 {
    match v {
        Verdict::Accept | Verdict::Challenge { .. } => 200,
        Verdict::Reject { status, .. } => *status,
    }
}

/// The example in GitHub's "Validating webhook deliveries" documentation.
#[test]
fn github_documentation_example() {
    let kind = SourceKind::Github {
        secret: Some("It's a Secret to Everybody".into()),
    };
    let headers = h(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(
        check(&kind, &SourceOptions::default(), &req(&headers, b"Hello, World!")),
        Verdict::Accept
    );
    assert_eq!(
        status(&check(
            &kind,
            &SourceOptions::default(),
            &req(&headers, b"Hello, World?")
        )),
        401
    );
}

/// The vector of the Standard Webhooks reference implementation.
#[test]
fn standard_webhooks_reference_vector() {
    let kind = SourceKind::parse(
        "svix",
        Some(&json!({"secret": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"})),
    )
    .unwrap();
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let headers = h(&[
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        (
            "webhook-signature",
            "v1,bm9ldHUjSzJxZXp2eWZzUm1wQ2x2aE16dUdMdFhDNVdnb0tsNlhwWVdQRDhj v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        ),
    ]);
    let mut r = req(&headers, body);
    r.now = 1_649_367_553;
    assert_eq!(check(&kind, &SourceOptions::default(), &r), Verdict::Accept);
}

#[test]
fn a_github_source_without_secret_checks_nothing() {
    let kind = SourceKind::parse("github", Some(&json!({"secret": null}))).unwrap();
    assert_eq!(
        check(&kind, &SourceOptions::default(), &req(&[], b"{}")),
        Verdict::Accept
    );
}

#[test]
fn basic_auth_and_api_keys() {
    let o = options(json!({"basicAuth": {"username": "hook", "password": "pa:ss"}}));
    let good = h(&[(
        "Authorization",
        &format!("Basic {}", STANDARD.encode("hook:pa:ss")),
    )]);
    let bad = h(&[(
        "Authorization",
        &format!("Basic {}", STANDARD.encode("hook:pass")),
    )]);
    assert_eq!(check(&SourceKind::Generic, &o, &req(&good, b"")), Verdict::Accept);
    assert_eq!(status(&check(&SourceKind::Generic, &o, &req(&bad, b""))), 401);
    assert_eq!(status(&check(&SourceKind::Generic, &o, &req(&[], b""))), 401);

    let o = options(json!({"apiKey": {"header": "Authorization", "query": "key", "value": "k-12345678"}}));
    let bearer = h(&[("authorization", "Bearer k-12345678")]);
    assert_eq!(
        check(&SourceKind::Generic, &o, &req(&bearer, b"")),
        Verdict::Accept
    );
    let mut in_query = req(&[], b"");
    in_query.query = "a=1&key=k-12345678";
    assert_eq!(check(&SourceKind::Generic, &o, &in_query), Verdict::Accept);
    in_query.query = "key=k-1234567";
    assert_eq!(status(&check(&SourceKind::Generic, &o, &in_query)), 401);
}

#[test]
fn custom_hmac_in_every_algorithm_and_encoding() {
    let body = b"{\"n\":1}";
    for (algorithm, encoding, mac) in [
        ("sha1", "hex", hex::encode(hmac::<Hmac<Sha1>>(b"k", &[body]))),
        (
            "sha256",
            "base64",
            STANDARD.encode(hmac::<Hmac<Sha256>>(b"k", &[body])),
        ),
        ("sha512", "hex", hex::encode(hmac::<Hmac<Sha512>>(b"k", &[body]))),
    ] {
        let o = options(
            json!({"hmac": {"header": "X-Sig", "algorithm": algorithm, "encoding": encoding, "prefix": "sig=", "secret": "k"}}),
        );
        let good = h(&[("x-sig", &format!("sig={mac}"))]);
        assert_eq!(
            check(&SourceKind::Generic, &o, &req(&good, body)),
            Verdict::Accept,
            "{algorithm}"
        );
        let unprefixed = h(&[("x-sig", &mac)]);
        assert_eq!(
            status(&check(&SourceKind::Generic, &o, &req(&unprefixed, body))),
            401
        );
        assert_eq!(
            status(&check(&SourceKind::Generic, &o, &req(&good, b"{\"n\":2}"))),
            401
        );
    }
}

#[test]
fn networks_and_methods() {
    let o = options(json!({"allowedNetworks": ["203.0.113.0/24"], "allowedMethods": ["post"]}));
    assert_eq!(check(&SourceKind::Generic, &o, &req(&[], b"")), Verdict::Accept);
    let mut r = req(&[], b"");
    r.client = Some("198.51.100.1".parse().unwrap());
    assert_eq!(status(&check(&SourceKind::Generic, &o, &r)), 403);
    // An IPv4 client seen through an IPv6 socket is still that IPv4 address.
    r.client = Some("::ffff:203.0.113.9".parse().unwrap());
    assert_eq!(check(&SourceKind::Generic, &o, &r), Verdict::Accept);
    r.method = "GET";
    assert_eq!(status(&check(&SourceKind::Generic, &o, &r)), 405);
}

#[test]
fn url_checks_are_answered_only_when_signed() {
    let kind = SourceKind::Zoom {
        secret: "zsecret".into(),
    };
    let body = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"}}"#;
    let ts = "1700000000";
    let sig = format!(
        "v0={}",
        hex::encode(hmac::<Hmac<Sha256>>(
            b"zsecret",
            &[b"v0:", ts.as_bytes(), b":", body]
        ))
    );
    let headers = h(&[("x-zm-request-timestamp", ts), ("x-zm-signature", &sig)]);
    let Verdict::Challenge { body: answer } = check(&kind, &SourceOptions::default(), &req(&headers, body))
    else {
        panic!("no challenge answer");
    };
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        answer["encryptedToken"],
        hex::encode(hmac::<Hmac<Sha256>>(b"zsecret", &[b"qgg8vlvZRS6UYooatFL8Aw"]))
    );
    assert_eq!(
        status(&check(&kind, &SourceOptions::default(), &req(&[], body))),
        401
    );

    let kind = SourceKind::Slack {
        secret: "ssecret".into(),
    };
    let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let sig = format!(
        "v0={}",
        hex::encode(hmac::<Hmac<Sha256>>(
            b"ssecret",
            &[b"v0:", ts.as_bytes(), b":", body]
        ))
    );
    let headers = h(&[("x-slack-request-timestamp", ts), ("x-slack-signature", &sig)]);
    assert_eq!(
        check(&kind, &SourceOptions::default(), &req(&headers, body)),
        Verdict::Challenge {
            body: r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#.into()
        }
    );
}

#[test]
fn unsupported_types_and_bad_configs_name_the_field() {
    assert_eq!(SourceKind::parse("hubspot", None).unwrap_err().loc, ["type"]);
    assert_eq!(
        SourceKind::parse("stripe", Some(&json!({}))).unwrap_err().loc,
        ["config", "secret"]
    );
    assert_eq!(
        SourceKind::parse("svix", Some(&json!({"secret": "not base64!"})))
            .unwrap_err()
            .loc,
        ["config", "secret"]
    );
    assert_eq!(
        SourceKind::parse("cron", Some(&json!({"schedule": "every day", "payload": "{}"})))
            .unwrap_err()
            .loc,
        ["config", "schedule"]
    );
    let cron = SourceKind::parse("cron", Some(&json!({"schedule": "*/5 * * * *", "payload": "{}"}))).unwrap();
    assert_eq!(
        SourceKind::parse("cron", Some(&cron.config_json())).unwrap(),
        cron
    );
}

#[test]
fn secrets_never_show() {
    let kind = SourceKind::parse("stripe", Some(&json!({"secret": "whsec_topsecret"}))).unwrap();
    assert!(!format!("{kind:?}").contains("topsecret"));
    assert_eq!(kind.config_out(), Some(json!({})));
}

#[test]
fn cron_next_fire() {
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:02:30Z")
        .unwrap()
        .to_utc();
    let next = next_fire("*/5 * * * *", at).unwrap();
    assert_eq!(next.to_rfc3339(), "2026-01-01T10:05:00+00:00");
}

#[test]
fn schedules_with_seconds_are_accepted() {
    check_schedule("*/5 * * * *").unwrap();
    check_schedule("30 */5 * * * *").unwrap();
    // Six fields: seconds first.
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:02:30Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        next_fire("30 */5 * * * *", at).unwrap().to_rfc3339(),
        "2026-01-01T10:05:30+00:00"
    );
    assert!(check_schedule("* * *").is_err());
}
