//! A source's `options` as the API receives them (JSON): parsed and validated, then
//! used to judge, dedup and forward an arbitrary request (basic auth, API keys, custom
//! HMAC, networks, dedup keys by header or JSON pointer, response templates).
//!
//! Input: `options JSON \0 headers \0 body`.
#![no_main]

use hookd_core::ingest::options::SourceOptions;
use hookd_core::ingest::verify::{IncomingRequest, check};
use hookd_core::ingest::{SourceKind, dedup_key, forward_headers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let Ok(mut options) = serde_json::from_slice::<SourceOptions>(parts.next().unwrap_or_default()) else {
        return;
    };
    if options.validate().is_err() {
        return;
    }
    let head = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let headers = hookd_fuzz::headers(&head);
    let req = IncomingRequest {
        method: "POST",
        url: "https://hooks.example.com/in/tok",
        query: "a=1",
        headers: &headers,
        body,
        client: "203.0.113.7".parse().ok(),
        now: 1_700_000_000,
    };
    let _ = check(&SourceKind::Generic, &options, &req);
    let _ = dedup_key(&options, &headers, body);
    let _ = forward_headers(&headers, &options);
    let _ = options.redacted();
});
