//! JSON merge patch (RFC 7386, documents' PATCH): any target and patch, and the RFC's
//! properties: applying a patch twice changes nothing more, and the result never holds
//! a null the patch set.
//!
//! Input: `target JSON \0 patch JSON`.
#![no_main]

use hookd_core::data::merge_patch;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(target), Some(patch)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(mut target), Ok(patch)) = (
        serde_json::from_slice::<Value>(target),
        serde_json::from_slice::<Value>(patch),
    ) else {
        return;
    };
    merge_patch(&mut target, &patch);
    let once = target.clone();
    merge_patch(&mut target, &patch);
    assert_eq!(once, target, "a merge patch is idempotent");
    if let (Value::Object(patch), Value::Object(result)) = (&patch, &once) {
        for (key, value) in patch {
            if value.is_null() {
                assert!(!result.contains_key(key), "null removes {key}");
            }
        }
    }
});
