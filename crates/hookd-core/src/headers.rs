//! Received headers as one map: the one rule for a header sent more than once (its
//! values joined by `", "`, as HTTP allows), used by the request log's view and by the
//! filters' `headers` scope alike.

use std::collections::BTreeMap;

/// The headers by lowered name, repeated ones joined by `", "` in arrival order.
pub fn joined<'h>(headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> BTreeMap<String, String> {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        map.entry(name.to_ascii_lowercase())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(value);
            })
            .or_insert_with(|| value.to_owned());
    }
    map
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_headers_are_joined_in_order() {
        let got = super::joined([("Accept", "a"), ("x-b", "1"), ("accept", "b")]);
        assert_eq!(got.get("accept").map(String::as_str), Some("a, b"));
        assert_eq!(got.get("x-b").map(String::as_str), Some("1"));
        assert_eq!(got.len(), 2);
    }
}
