//! What the fuzz targets share: reading a request's parts out of the fuzzer's bytes.

/// `name: value` lines as headers (names in lower case, as hookd keeps them).
pub fn headers(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect()
}
