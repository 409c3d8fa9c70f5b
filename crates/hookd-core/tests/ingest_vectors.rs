//! Requests signed by the providers' own libraries (see `tests/ingest/vectors.py` and
//! `vectors.mjs`, which wrote `data/*.json`) are accepted by their preset; tampered,
//! wrongly signed, stale and unsigned variants are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hookd_core::ingest::{IncomingRequest, SourceKind, SourceOptions, Verdict, verify};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Vector {
    name: String,
    library: String,
    #[serde(rename = "type")]
    type_name: String,
    config: Value,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    now: i64,
    timestamped: bool,
}

fn vectors() -> Vec<Vector> {
    let mut all: Vec<Vector> = serde_json::from_str(include_str!("data/ingest_vectors_pypi.json")).unwrap();
    all.extend(serde_json::from_str::<Vec<Vector>>(include_str!("data/ingest_vectors_npm.json")).unwrap());
    all
}

fn judge(v: &Vector, config: &Value, headers: &[(String, String)], body: &[u8], now: i64) -> Verdict {
    let kind = SourceKind::parse(&v.type_name, Some(config)).unwrap();
    let query = v.url.split_once('?').map_or("", |(_, q)| q);
    verify::check(
        &kind,
        &SourceOptions::default(),
        &IncomingRequest {
            method: "POST",
            url: &v.url,
            query,
            headers,
            body,
            client: None,
            now,
        },
    )
}

fn refused(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Reject { status: 401, .. })
}

#[test]
fn every_preset_has_a_vector_from_outside() {
    let names: Vec<String> = vectors().iter().map(|v| v.type_name.clone()).collect();
    for preset in [
        "github",
        "stripe",
        "shopify",
        "slack",
        "svix",
        "standard-webhooks",
        "twilio",
        "zoom",
        "paddle",
        "linear",
        "square",
    ] {
        assert!(names.iter().any(|n| n == preset), "no vector for {preset}");
    }
}

#[test]
fn signed_requests_are_accepted() {
    for v in vectors() {
        let verdict = judge(&v, &v.config, &v.headers, v.body.as_bytes(), v.now);
        assert_eq!(verdict, Verdict::Accept, "{} ({})", v.name, v.library);
    }
}

#[test]
fn a_tampered_body_is_refused() {
    for v in vectors() {
        let mut body = v.body.clone().into_bytes();
        let at = body.len() / 2;
        body[at] ^= 0x01;
        assert!(
            refused(&judge(&v, &v.config, &v.headers, &body, v.now)),
            "{}",
            v.name
        );
        // One byte more is tampering too.
        let mut longer = v.body.clone().into_bytes();
        longer.push(b' ');
        assert!(
            refused(&judge(&v, &v.config, &v.headers, &longer, v.now)),
            "{}",
            v.name
        );
    }
}

#[test]
fn a_wrong_secret_is_refused() {
    for v in vectors() {
        let mut config = v.config.clone();
        for key in ["secret", "authToken", "signatureKey"] {
            if let Some(s) = config.get_mut(key) {
                let wrong = if v.type_name.contains("webhooks")
                    || ["svix", "clerk"].contains(&v.type_name.as_str())
                {
                    "whsec_dGhpcyBpcyB0aGUgd3Jvbmcgc2VjcmV0IQ==".to_owned()
                } else {
                    format!("{}x", s.as_str().unwrap())
                };
                *s = Value::String(wrong);
            }
        }
        assert!(
            refused(&judge(&v, &config, &v.headers, v.body.as_bytes(), v.now)),
            "{}",
            v.name
        );
    }
}

#[test]
fn a_stale_timestamp_is_refused() {
    for v in vectors().into_iter().filter(|v| v.timestamped) {
        for skew in [-301, 301, 86_400] {
            let verdict = judge(&v, &v.config, &v.headers, v.body.as_bytes(), v.now + skew);
            assert!(refused(&verdict), "{} at {skew:+} s: {verdict:?}", v.name);
        }
        // Inside the tolerance is fine.
        let verdict = judge(&v, &v.config, &v.headers, v.body.as_bytes(), v.now + 299);
        assert_eq!(verdict, Verdict::Accept, "{}", v.name);
    }
}

#[test]
fn missing_signature_headers_are_refused() {
    for v in vectors() {
        // Drop every header but the content type and the provider's informational ones.
        let kept: Vec<(String, String)> = v
            .headers
            .iter()
            .filter(|(n, _)| n == "content-type" || n.starts_with("x-github-event") || n == "x-shopify-topic")
            .cloned()
            .collect();
        assert!(
            refused(&judge(&v, &v.config, &kept, v.body.as_bytes(), v.now)),
            "{}",
            v.name
        );
    }
}
