//! The filter language: an arbitrary document parsed for each target, and what parses
//! matched (and explained) against a request built from the rest of the input.
//!
//! Input: `filter JSON \0 body`.
#![no_main]

use hookd_core::filter::{Filter, FilterTarget, RequestValues};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(parts.next().unwrap_or_default()) else {
        return;
    };
    let body = parts.next().unwrap_or_default();
    let values = RequestValues::new(
        "/orders/7",
        "status=paid&tag=a&tag=b",
        [("content-type", "application/json"), ("x-event", "order.paid")],
        body,
    );
    for target in [FilterTarget::Received, FilterTarget::Sent, FilterTarget::Flow] {
        if let Ok(filter) = Filter::parse(&document, target) {
            let matched = filter.matches(&values.subject());
            // Explaining agrees with matching.
            assert_eq!(matched, filter.explain(&values.subject()).is_ok());
        }
    }
});
