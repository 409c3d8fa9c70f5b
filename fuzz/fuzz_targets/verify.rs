//! Every verification preset (GitHub, Stripe, Shopify, Slack, Twilio's form-signed
//! requests, Zoom, Paddle, Linear, Square, Standard Webhooks and its providers) judging
//! arbitrary requests: headers, body, query and URL from the input, the secret too.
//! A verdict is all it may give: no panic, whatever arrives.
//!
//! Input: a byte choosing the preset, then `secret \0 url \0 query \0 headers \0 body`,
//! headers as `name: value` lines.
#![no_main]

use base64::Engine as _;
use hookd_core::ingest::options::SourceOptions;
use hookd_core::ingest::verify::{IncomingRequest, check};
use hookd_core::ingest::{STANDARD_WEBHOOKS_TYPES, SourceKind, supported_types};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let types = supported_types();
    let type_name = types[usize::from(pick) % types.len()];
    let mut parts = rest.splitn(5, |b| *b == 0);
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    // Standard Webhooks secrets are base64 keys: make one from the bytes given.
    let secret = if STANDARD_WEBHOOKS_TYPES.contains(&type_name) {
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret.as_bytes())
        )
    } else {
        secret
    };
    let config = serde_json::json!({
        "secret": secret,
        "schedule": "*/5 * * * *",
        "payload": "{}",
        "notificationUrl": url,
    });
    let Ok(kind) = SourceKind::parse(type_name, Some(&config)) else {
        return;
    };
    let headers = hookd_fuzz::headers(&head);
    let req = IncomingRequest {
        method: "POST",
        url: &url,
        query: &query,
        headers: &headers,
        body,
        client: None,
        now: 1_700_000_000,
    };
    let _ = check(&kind, &SourceOptions::default(), &req);
});
