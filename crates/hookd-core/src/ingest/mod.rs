//! Ingest sources: what a source of a given `type` checks on every request it receives.
//!
//! A source is a preset ([`SourceKind`], the Svix Ingest `type` with its `config`) plus
//! hookd's own [`SourceOptions`] that any source may add (basic auth, API key, custom
//! HMAC, allowed networks and methods, deduplication, the answer to give). Both are
//! plain data here; [`verify::check`] judges a received request against them without
//! any IO, so every preset is unit-tested against its provider's published vectors.

pub mod options;
pub mod verify;

use serde_json::{Map, Value, json};

pub use options::{DedupKey, SourceOptions};
pub use verify::{IncomingRequest, Verdict};

/// The Svix presets whose senders sign with Standard Webhooks (`svix-*` or
/// `webhook-*` headers and a `whsec_` secret).
pub const STANDARD_WEBHOOKS_TYPES: &[&str] = &[
    "svix",
    "standard-webhooks",
    "beehiiv",
    "brex",
    "clerk",
    "guesty",
    "incident-io",
    "lithic",
    "nash",
    "open-ai",
    "pleo",
    "psi-fi",
    "render",
    "replicate",
    "resend",
    "safebase",
    "sardine",
    "stych",
];

/// The types hookd verifies that Svix's API does not name. The official SDKs refuse
/// a source of a type they do not know, so the API answers these as
/// `generic-webhook` with the verifier under `options.verify`.
pub const HOOKD_ONLY_TYPES: &[&str] = &["standard-webhooks", "twilio", "paddle", "linear", "square"];

/// Every `type` hookd accepts, for error messages and docs.
pub fn supported_types() -> Vec<&'static str> {
    let mut all = vec![
        "generic-webhook",
        "cron",
        "github",
        "stripe",
        "shopify",
        "slack",
        "twilio",
        "zoom",
        "paddle",
        "linear",
        "square",
    ];
    all.extend_from_slice(STANDARD_WEBHOOKS_TYPES);
    all
}

/// A source's preset: how its sender signs, with the secret to check it.
///
/// Secrets are kept as given (the strings the provider shows); `Debug` never prints
/// them.
#[derive(Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// No verification of its own (hookd options may still add some).
    Generic,
    /// Emits `payload` on `schedule` as if it had been received.
    Cron(CronSpec),
    /// `X-Hub-Signature-256: sha256=<hex>`; with no secret, nothing is checked.
    Github { secret: Option<String> },
    /// `Stripe-Signature: t=<ts>,v1=<hex>[,v1=...]` over `{t}.{body}`.
    Stripe { secret: String },
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify { secret: String },
    /// `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`.
    Slack { secret: String },
    /// Standard Webhooks / Svix (`type` is one of [`STANDARD_WEBHOOKS_TYPES`]).
    StandardWebhooks { type_name: String, secret: String },
    /// `X-Twilio-Signature`: base64 HMAC-SHA1 of the URL plus the sorted form
    /// parameters (or of the URL alone, with `bodySHA256` in it, for JSON bodies).
    Twilio { auth_token: String },
    /// `x-zm-signature: v0=<hex>` over `v0:{x-zm-request-timestamp}:{body}`.
    Zoom { secret: String },
    /// `Paddle-Signature: ts=<ts>;h1=<hex>` over `{ts}:{body}`.
    Paddle { secret: String },
    /// `Linear-Signature: <hex>` over the body.
    Linear { secret: String },
    /// `x-square-hmacsha256-signature: <base64>` over the notification URL + body.
    Square {
        signature_key: String,
        /// The URL registered at Square; the source's ingest URL when absent.
        notification_url: Option<String>,
    },
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CronSpec {
    /// As given (5 fields, or 6 with seconds first).
    pub schedule: String,
    pub payload: String,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.type_name())
    }
}

/// A refused `config`: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The path below the request body, e.g. `["config", "secret"]`.
    pub loc: Vec<String>,
    pub message: String,
}

impl ConfigError {
    fn at(loc: &[&str], message: impl Into<String>) -> Self {
        Self {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
        }
    }
}

fn config_str(config: &Map<String, Value>, key: &str, required: bool) -> Result<Option<String>, ConfigError> {
    match config.get(key) {
        None | Some(Value::Null) if required => {
            Err(ConfigError::at(&["config", key], format!("`{key}` is required")))
        }
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() && required => Err(ConfigError::at(
            &["config", key],
            format!("`{key}` must not be empty"),
        )),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ConfigError::at(
            &["config", key],
            format!("`{key}` must be a string"),
        )),
    }
}

fn required(config: &Map<String, Value>, key: &str) -> Result<String, ConfigError> {
    config_str(config, key, true).map(Option::unwrap_or_default)
}

impl SourceKind {
    /// Reads a `type` and its `config` as the API receives them.
    pub fn parse(type_name: &str, config: Option<&Value>) -> Result<Self, ConfigError> {
        let empty = Map::new();
        let config = match config {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ConfigError::at(&["config"], "`config` must be an object")),
        };
        Ok(match type_name {
            "generic-webhook" => Self::Generic,
            "cron" => {
                let schedule = required(config, "schedule")?;
                verify::check_schedule(&schedule)
                    .map_err(|e| ConfigError::at(&["config", "schedule"], e.message))?;
                Self::Cron(CronSpec {
                    schedule,
                    payload: required(config, "payload")?,
                    content_type: config_str(config, "contentType", false)?,
                })
            }
            "github" => Self::Github {
                secret: config_str(config, "secret", false)?.filter(|s| !s.is_empty()),
            },
            "stripe" => Self::Stripe {
                secret: required(config, "secret")?,
            },
            "shopify" => Self::Shopify {
                secret: required(config, "secret")?,
            },
            "slack" => Self::Slack {
                secret: required(config, "secret")?,
            },
            "twilio" => Self::Twilio {
                auth_token: config_str(config, "authToken", false)?
                    .or(config_str(config, "secret", false)?)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ConfigError::at(&["config", "authToken"], "`authToken` is required"))?,
            },
            "zoom" => Self::Zoom {
                secret: required(config, "secret")?,
            },
            "paddle" => Self::Paddle {
                secret: required(config, "secret")?,
            },
            "linear" => Self::Linear {
                secret: required(config, "secret")?,
            },
            "square" => Self::Square {
                signature_key: config_str(config, "signatureKey", false)?
                    .or(config_str(config, "secret", false)?)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        ConfigError::at(&["config", "signatureKey"], "`signatureKey` is required")
                    })?,
                notification_url: config_str(config, "notificationUrl", false)?,
            },
            t if STANDARD_WEBHOOKS_TYPES.contains(&t) => {
                let secret = required(config, "secret")?;
                verify::standard_webhooks_key(&secret)
                    .map_err(|e| ConfigError::at(&["config", "secret"], e.message))?;
                Self::StandardWebhooks {
                    type_name: t.to_owned(),
                    secret,
                }
            }
            other => {
                return Err(ConfigError::at(
                    &["type"],
                    format!(
                        "hookd does not support the source type `{other}`; supported: {}",
                        supported_types().join(", ")
                    ),
                ));
            }
        })
    }

    /// Whether the type is one of [`HOOKD_ONLY_TYPES`].
    pub fn is_hookd_only(&self) -> bool {
        HOOKD_ONLY_TYPES.contains(&self.type_name())
    }

    pub fn type_name(&self) -> &str {
        match self {
            Self::Generic => "generic-webhook",
            Self::Cron(_) => "cron",
            Self::Github { .. } => "github",
            Self::Stripe { .. } => "stripe",
            Self::Shopify { .. } => "shopify",
            Self::Slack { .. } => "slack",
            Self::StandardWebhooks { type_name, .. } => type_name,
            Self::Twilio { .. } => "twilio",
            Self::Zoom { .. } => "zoom",
            Self::Paddle { .. } => "paddle",
            Self::Linear { .. } => "linear",
            Self::Square { .. } => "square",
        }
    }

    /// The `config` to store, secrets included; [`SourceKind::parse`] reads it back.
    pub fn config_json(&self) -> Value {
        match self {
            Self::Generic => Value::Null,
            Self::Cron(c) => {
                json!({"schedule": c.schedule, "payload": c.payload, "contentType": c.content_type})
            }
            Self::Github { secret } => json!({ "secret": secret }),
            Self::Stripe { secret }
            | Self::Shopify { secret }
            | Self::Slack { secret }
            | Self::StandardWebhooks { secret, .. }
            | Self::Zoom { secret }
            | Self::Paddle { secret }
            | Self::Linear { secret } => json!({ "secret": secret }),
            Self::Twilio { auth_token } => json!({ "authToken": auth_token }),
            Self::Square {
                signature_key,
                notification_url,
            } => json!({"signatureKey": signature_key, "notificationUrl": notification_url}),
        }
    }

    /// The `config` shown in API answers: secrets are write-only (the Svix
    /// `...ConfigOut` objects are empty); a cron source shows its schedule.
    pub fn config_out(&self) -> Option<Value> {
        match self {
            Self::Generic => None,
            Self::Cron(c) => {
                Some(json!({"schedule": c.schedule, "payload": c.payload, "contentType": c.content_type}))
            }
            Self::Square {
                notification_url: Some(u),
                ..
            } => Some(json!({ "notificationUrl": u })),
            _ => Some(json!({})),
        }
    }
}

/// Headers never passed on to destinations: connection-level ones, credentials, and
/// the Standard Webhooks headers hookd signs the forwarded request with itself.
const NOT_FORWARDED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "expect",
    "authorization",
    "cookie",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
];

/// The received headers a destination gets: all of them (the provider's own
/// `X-GitHub-Event`, `Stripe-Signature`, `Content-Type`, ...), in arrival order, but
/// for [`NOT_FORWARDED`] ones and the source's API-key header.
pub fn forward_headers(headers: &[(String, String)], options: &SourceOptions) -> Vec<(String, String)> {
    let credentials = options.credential_headers();
    headers
        .iter()
        .filter(|(name, _)| !NOT_FORWARDED.contains(&name.as_str()) && !credentials.contains(name))
        .cloned()
        .collect()
}

/// What a source's URL token is found by: its SHA-256, in hex. The database keeps
/// this (and the token only sealed), so a copy of it opens no source's URL.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// The deduplication key of a request, when the source deduplicates and the request
/// has one (a request without the header or pointer is never a duplicate).
pub fn dedup_key(options: &SourceOptions, headers: &[(String, String)], body: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    let dedup = options.dedup.as_ref()?;
    match dedup.key() {
        DedupKey::Header(name) => headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty()),
        DedupKey::JsonPointer(pointer) => {
            let body: Value = serde_json::from_slice(body).ok()?;
            match body.pointer(&pointer)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        }
        DedupKey::BodyHash => Some(hex::encode(sha2::Sha256::digest(body))),
    }
    .map(|key| {
        // Bounded, whatever the sender put in its header.
        if key.len() > 200 {
            hex::encode(sha2::Sha256::digest(key.as_bytes()))
        } else {
            key
        }
    })
}

#[cfg(test)]
mod forward_tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn provider_headers_pass_credentials_do_not() {
        let options: SourceOptions =
            serde_json::from_value(json!({"apiKey": {"header": "X-Key", "value": "k-12345678"}})).unwrap();
        let kept = forward_headers(
            &h(&[
                ("content-type", "application/json"),
                ("x-github-event", "push"),
                ("authorization", "Basic abc"),
                ("x-key", "k-12345678"),
                ("webhook-signature", "v1,x"),
                ("host", "hooks.example.com"),
            ]),
            &options,
        );
        assert_eq!(
            kept,
            h(&[("content-type", "application/json"), ("x-github-event", "push")])
        );
    }

    #[test]
    fn dedup_keys_from_header_pointer_and_hash() {
        let by = |v: Value| -> SourceOptions { serde_json::from_value(json!({ "dedup": v })).unwrap() };
        let headers = h(&[("x-github-delivery", "d-1")]);
        let body = br#"{"id": "evt_9", "n": 7}"#;
        assert_eq!(
            dedup_key(&by(json!({"header": "X-GitHub-Delivery"})), &headers, body).as_deref(),
            Some("d-1")
        );
        assert_eq!(
            dedup_key(&by(json!({"jsonPointer": "/id"})), &headers, body).as_deref(),
            Some("evt_9")
        );
        assert_eq!(
            dedup_key(&by(json!({"jsonPointer": "/n"})), &headers, body).as_deref(),
            Some("7")
        );
        assert_eq!(
            dedup_key(&by(json!({"jsonPointer": "/missing"})), &headers, body),
            None
        );
        assert_eq!(
            dedup_key(&by(json!({"bodyHash": true})), &headers, body)
                .unwrap()
                .len(),
            64
        );
        assert_eq!(dedup_key(&SourceOptions::default(), &headers, body), None);
    }
}
