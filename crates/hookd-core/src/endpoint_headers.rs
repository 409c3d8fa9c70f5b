//! Custom headers an endpoint asks to receive with every webhook.
//!
//! Names hookd sets itself (signature, content and hop-by-hop headers) are refused, so
//! a custom header can never forge or break a signature. Values of headers that carry
//! credentials are never returned by the API: their names are listed as `sensitive`.

use std::collections::BTreeMap;

use crate::InvalidValue;

/// Headers that hookd sets on every delivery or that HTTP reserves.
const RESERVED: &[&str] = &[
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "host",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "webhook-id",
    "webhook-signature",
    "webhook-timestamp",
];

/// Header name prefixes reserved for hookd and the Svix wire format.
const RESERVED_PREFIXES: &[&str] = &["svix-", "webhook-", "hookd-", "x-hookd-"];

/// Headers whose values are credentials.
const SENSITIVE: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
];

pub const MAX_HEADERS: usize = 50;
const MAX_VALUE_LEN: usize = 8_192;

/// Checks one custom header; returns the name as given (case is kept for display,
/// comparisons are case-insensitive).
pub fn validate(name: &str, value: &str) -> Result<(), InvalidValue> {
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(InvalidValue::new(format!("{name:?} is not a valid header name")));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED.contains(&lower.as_str()) || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
        return Err(InvalidValue::new(format!(
            "the header {name:?} is set by hookd and cannot be overridden"
        )));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(InvalidValue::new(format!(
            "the value of {name:?} must be at most {MAX_VALUE_LEN} bytes"
        )));
    }
    if !value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err(InvalidValue::new(format!(
            "the value of {name:?} may contain only visible ASCII characters, spaces and tabs"
        )));
    }
    Ok(())
}

/// Validates a whole set, including its size.
pub fn validate_all(headers: &BTreeMap<String, String>) -> Result<(), (String, InvalidValue)> {
    if headers.len() > MAX_HEADERS {
        return Err((
            String::new(),
            InvalidValue::new(format!("at most {MAX_HEADERS} custom headers are allowed")),
        ));
    }
    for (name, value) in headers {
        validate(name, value).map_err(|e| (name.clone(), e))?;
    }
    Ok(())
}

pub fn is_sensitive(name: &str) -> bool {
    SENSITIVE.contains(&name.to_ascii_lowercase().as_str())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert!(validate("X-Example", "123").is_ok());
        assert!(validate("Authorization", "Bearer abc").is_ok());
        assert!(validate("webhook-signature", "v1,x").is_err());
        assert!(validate("Svix-Id", "x").is_err());
        assert!(validate("Content-Type", "text/plain").is_err());
        assert!(validate("bad name", "x").is_err());
        assert!(validate("X-Ok", "line\r\nInjected: yes").is_err());
        assert!(is_sensitive("AUTHORIZATION"));
        assert!(!is_sensitive("X-Example"));
    }

    proptest! {
        #[test]
        fn accepted_headers_are_valid_for_http(name in "\\PC{0,20}", value in "\\PC{0,40}") {
            if validate(&name, &value).is_ok() {
                prop_assert!(!name.is_empty());
                prop_assert!(!value.contains('\r') && !value.contains('\n'));
            }
        }
    }
}
