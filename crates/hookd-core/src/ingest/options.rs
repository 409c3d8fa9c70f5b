//! hookd's own checks and behaviours that any source may add to its preset, given
//! as the `options` object of a source.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// Longest deduplication window (30 days).
pub const MAX_DEDUP_WINDOW_SECONDS: u32 = 30 * 86_400;
pub const DEFAULT_DEDUP_WINDOW_SECONDS: u32 = 86_400;
/// Timestamp tolerance of presets that sign one, when the source does not set it.
pub const DEFAULT_TOLERANCE_SECONDS: u32 = 300;
const MAX_RESPONSE_BODY: usize = 4_096;

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<CustomHmac>,
    /// Only requests from these networks (CIDRs) are accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Vec<IpNet>>,
    /// Only these methods are accepted (upper case); every method when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<Dedup>,
    /// The answer to an accepted request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseSpec>,
    /// How far a signed timestamp may be from now (presets that sign one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance_seconds: Option<u32>,
    /// A payload filter (`crate::filter`, on the request's body, headers, query and
    /// path): a verified request that does not match is kept as `filtered`, answered
    /// like an accepted one, and forwarded nowhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<crate::filter::RequestFilter>,
    /// Requests per second this source accepts on each node (a burst of one second's
    /// worth); past it a request is answered 429 with `Retry-After` and not kept.
    /// Absent: the server's `ingest_source_rate_limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
}

/// The largest per-source rate a source may set.
pub const MAX_SOURCE_RATE_LIMIT: u32 = 1_000_000;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// An API key the sender puts in a header or a query parameter.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKey {
    /// Header name (e.g. `X-API-Key`); `Authorization: Bearer <key>` is accepted when
    /// the header is `Authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Query parameter name (e.g. `key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    Hex,
    Base64,
}

/// An HMAC of the raw body in a header, for senders without a preset.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomHmac {
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: HmacEncoding,
    /// Text before the signature in the header, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: String,
    pub secret: String,
}

/// Where a request's deduplication key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dedup {
    /// A header (e.g. `X-GitHub-Delivery`, `webhook-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// A JSON pointer into the body (e.g. `/id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointer: Option<String>,
    /// The SHA-256 of the body.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_hash: bool,
    /// How long a key is remembered (default one day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_seconds: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DedupKey {
    Header(String),
    JsonPointer(String),
    BodyHash,
}

impl Dedup {
    pub fn key(&self) -> DedupKey {
        match (&self.header, &self.json_pointer) {
            (Some(h), _) => DedupKey::Header(h.to_ascii_lowercase()),
            (None, Some(p)) => DedupKey::JsonPointer(p.clone()),
            (None, None) => DedupKey::BodyHash,
        }
    }

    pub fn window_seconds(&self) -> u32 {
        self.window_seconds.unwrap_or(DEFAULT_DEDUP_WINDOW_SECONDS)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResponseSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl fmt::Debug for SourceOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceOptions")
            .field("basic_auth", &self.basic_auth.is_some())
            .field("api_key", &self.api_key.is_some())
            .field("hmac", &self.hmac.is_some())
            .field("allowed_networks", &self.allowed_networks)
            .field("allowed_methods", &self.allowed_methods)
            .field("dedup", &self.dedup)
            .field("response", &self.response)
            .field("tolerance_seconds", &self.tolerance_seconds)
            .field("filter", &self.filter.as_ref().map(|f| f.0.document()))
            .finish()
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("header", &self.header)
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CustomHmac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomHmac")
            .field("header", &self.header)
            .field("algorithm", &self.algorithm)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

fn invalid(field: &str, message: impl fmt::Display) -> (String, InvalidValue) {
    (field.to_owned(), InvalidValue::new(message))
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl SourceOptions {
    /// Checks what serde cannot; the error names the field below `options`.
    pub fn validate(&mut self) -> Result<(), (String, InvalidValue)> {
        if let Some(b) = &self.basic_auth
            && (b.username.is_empty() || b.username.contains(':') || b.password.is_empty())
        {
            return Err(invalid(
                "basicAuth",
                "username (without `:`) and password must not be empty",
            ));
        }
        if let Some(k) = &self.api_key {
            if k.header.is_none() && k.query.is_none() {
                return Err(invalid("apiKey", "set `header` or `query` (or both)"));
            }
            if k.header.as_deref().is_some_and(|h| !is_token(h)) {
                return Err(invalid("apiKey.header", "not a valid header name"));
            }
            if k.value.len() < 8 {
                return Err(invalid("apiKey.value", "the key must be at least 8 characters"));
            }
        }
        if let Some(h) = &self.hmac {
            if !is_token(&h.header) {
                return Err(invalid("hmac.header", "not a valid header name"));
            }
            if h.secret.is_empty() {
                return Err(invalid("hmac.secret", "must not be empty"));
            }
        }
        if let Some(methods) = &mut self.allowed_methods {
            if methods.is_empty() {
                return Err(invalid(
                    "allowedMethods",
                    "list at least one method, or leave it out",
                ));
            }
            for m in methods.iter_mut() {
                if !is_token(m) {
                    return Err(invalid("allowedMethods", format!("`{m}` is not an HTTP method")));
                }
                *m = m.to_ascii_uppercase();
            }
        }
        if self.allowed_networks.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "allowedNetworks",
                "list at least one network, or leave it out",
            ));
        }
        if let Some(d) = &self.dedup {
            let set = usize::from(d.header.is_some())
                + usize::from(d.json_pointer.is_some())
                + usize::from(d.body_hash);
            if set != 1 {
                return Err(invalid(
                    "dedup",
                    "set exactly one of `header`, `jsonPointer`, `bodyHash`",
                ));
            }
            if d.header.as_deref().is_some_and(|h| !is_token(h)) {
                return Err(invalid("dedup.header", "not a valid header name"));
            }
            if d.json_pointer.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Err(invalid(
                    "dedup.jsonPointer",
                    "a JSON pointer starts with `/`, e.g. `/id`",
                ));
            }
            if d.window_seconds
                .is_some_and(|w| w == 0 || w > MAX_DEDUP_WINDOW_SECONDS)
            {
                return Err(invalid(
                    "dedup.windowSeconds",
                    format!("between 1 and {MAX_DEDUP_WINDOW_SECONDS}"),
                ));
            }
        }
        if let Some(r) = &self.response {
            if r.status.is_some_and(|s| !(200..=299).contains(&s)) {
                return Err(invalid(
                    "response.status",
                    "the answer to an accepted request must be a 2xx",
                ));
            }
            if r.body.as_ref().is_some_and(|b| b.len() > MAX_RESPONSE_BODY) {
                return Err(invalid(
                    "response.body",
                    format!("at most {MAX_RESPONSE_BODY} bytes"),
                ));
            }
            if r.content_type
                .as_deref()
                .is_some_and(|c| c.is_empty() || c.contains(['\r', '\n']))
            {
                return Err(invalid("response.contentType", "not a valid content type"));
            }
        }
        if self
            .rate_limit
            .is_some_and(|r| !(1..=MAX_SOURCE_RATE_LIMIT).contains(&r))
        {
            return Err(invalid(
                "rateLimit",
                format!("requests per second, between 1 and {MAX_SOURCE_RATE_LIMIT}"),
            ));
        }
        if self.tolerance_seconds.is_some_and(|t| t == 0 || t > 86_400) {
            return Err(invalid("toleranceSeconds", "between 1 and 86400"));
        }
        Ok(())
    }

    pub fn tolerance(&self) -> i64 {
        i64::from(self.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS))
    }

    /// The options as API answers show them: secrets replaced by `"********"`.
    pub fn redacted(&self) -> Self {
        const HIDDEN: &str = "********";
        let mut out = self.clone();
        if let Some(b) = &mut out.basic_auth {
            b.password = HIDDEN.into();
        }
        if let Some(k) = &mut out.api_key {
            k.value = HIDDEN.into();
        }
        if let Some(h) = &mut out.hmac {
            h.secret = HIDDEN.into();
        }
        out
    }

    /// Header names that carry credentials for this source: never forwarded.
    pub fn credential_headers(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Some(h) = self.api_key.as_ref().and_then(|k| k.header.as_ref()) {
            names.push(h.to_ascii_lowercase());
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_and_bad_values_are_refused() {
        assert!(serde_json::from_str::<SourceOptions>(r#"{"basicauth": {}}"#).is_err());
        let mut o: SourceOptions =
            serde_json::from_str(r#"{"dedup": {"header": "X-Id", "bodyHash": true}}"#).unwrap();
        assert_eq!(o.validate().unwrap_err().0, "dedup");
        let mut o: SourceOptions = serde_json::from_str(r#"{"response": {"status": 500}}"#).unwrap();
        assert_eq!(o.validate().unwrap_err().0, "response.status");
        let mut o: SourceOptions = serde_json::from_str(r#"{"allowedMethods": ["post", "put"]}"#).unwrap();
        o.validate().unwrap();
        assert_eq!(o.allowed_methods.unwrap(), ["POST", "PUT"]);
    }

    #[test]
    fn redaction_hides_every_secret() {
        let o: SourceOptions = serde_json::from_str(
            r#"{"basicAuth": {"username": "u", "password": "pw-123"},
                "apiKey": {"header": "X-Key", "value": "key-12345678"},
                "hmac": {"header": "X-Sig", "algorithm": "sha256", "encoding": "hex", "secret": "s3cr3t"}}"#,
        )
        .unwrap();
        let shown = serde_json::to_string(&o.redacted()).unwrap();
        for secret in ["pw-123", "key-12345678", "s3cr3t"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(!format!("{o:?}").contains("pw-123"));
    }
}
