//! What reads a received request once its bytes are in (`/in/{token}`, after the size
//! limit and verification): the body taken as JSON or kept as text, the query string
//! and headers as filter values, the input a flow's run sees, a dedup key by header,
//! JSON pointer or body hash, and the headers forwarded. Arbitrary path, query,
//! headers and body: values, never a panic; matching and explaining agree; a flow's
//! input always serialises.
//!
//! Input: `path \0 query \0 headers \0 body`, headers as `name: value` lines.
#![no_main]

use std::sync::OnceLock;

use hookd_core::filter::{Filter, FilterTarget, RequestValues};
use hookd_core::ingest::options::SourceOptions;
use hookd_core::ingest::{dedup_key, forward_headers};
use libfuzzer_sys::fuzz_target;

/// Filters over every part of a request, as sources use them.
const FILTERS: &[&str] = &[
    r#"{"body": {"type": {"$startsWith": "invoice."}}}"#,
    r#"{"body": {"data": {"object": {"amount": {"$gte": 1000}}}}}"#,
    r#"{"query": {"tag": {"$in": ["a", "b"]}}, "path": {"$endsWith": "/7"}}"#,
    r#"{"headers": {"x-event": {"$regex": "^order\\."}}}"#,
    r#"{"$or": [{"body": {"id": {"$exist": true}}}, {"body": {"$eq": "text"}}]}"#,
];

/// Dedup and forwarding options: each way a key is taken.
const OPTIONS: &[&str] = &[
    r#"{"dedup": {"jsonPointer": "/id"}}"#,
    r#"{"dedup": {"jsonPointer": "/data/0/id"}, "basicAuth": {"username": "u", "password": "p"}}"#,
    r#"{"dedup": {"header": "x-delivery"}}"#,
    r#"{"dedup": {"bodyHash": true}}"#,
];

fn filters() -> &'static [Filter] {
    static FILTERS_PARSED: OnceLock<Vec<Filter>> = OnceLock::new();
    FILTERS_PARSED.get_or_init(|| {
        FILTERS
            .iter()
            .map(|f| {
                let document = serde_json::from_str(f).expect("a filter of the target");
                Filter::parse(&document, FilterTarget::Received).expect("a valid filter")
            })
            .collect()
    })
}

fn options() -> &'static [SourceOptions] {
    static OPTIONS_PARSED: OnceLock<Vec<SourceOptions>> = OnceLock::new();
    OPTIONS_PARSED.get_or_init(|| {
        OPTIONS
            .iter()
            .map(|o| {
                let mut options: SourceOptions = serde_json::from_str(o).expect("options of the target");
                options.validate().expect("valid options");
                options
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let head = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let headers = hookd_fuzz::headers(&head);
    let values = RequestValues::new(
        &path,
        &query,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        body,
    );
    for filter in filters() {
        let matched = filter.matches(&values.subject());
        assert_eq!(matched, filter.explain(&values.subject()).is_ok());
    }
    for options in options() {
        let _ = dedup_key(options, &headers, body);
        let _ = forward_headers(&headers, options);
    }
    let input = values.into_json(body);
    serde_json::to_vec(&input).expect("a flow's input serialises");
});
