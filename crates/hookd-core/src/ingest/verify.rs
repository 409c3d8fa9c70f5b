//! Judging a received request against its source's preset and options.
//!
//! Every comparison of a secret or a signature is constant-time (`subtle`); lengths
//! are not secret. A signature header may carry several signatures (secret rotation on
//! the sender's side): any one that matches is enough.

use std::net::IpAddr;
use std::str::FromStr as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq as _;

use super::SourceKind;
use super::options::{HmacAlgorithm, HmacEncoding, SourceOptions};
use crate::InvalidValue;

/// A request as it arrived at a source URL.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    pub method: &'a str,
    /// The URL the sender called, as the sender saw it (public base URL + path +
    /// query): Twilio and Square sign it.
    pub url: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Names in lower case, in arrival order.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub client: Option<IpAddr>,
    /// Unix seconds.
    pub now: i64,
}

impl IncomingRequest<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Keep it and forward it.
    Accept,
    /// Keep it as rejected, answer `status` (401, 403 or 405), never forward it.
    Reject { status: u16, reason: String },
    /// A provider's URL check (Slack `url_verification`, Zoom
    /// `endpoint.url_validation`), verified: answer this JSON, keep it, do not forward.
    Challenge { body: String },
}

fn reject(status: u16, reason: impl Into<String>) -> Verdict {
    Verdict::Reject {
        status,
        reason: reason.into(),
    }
}

fn unauthorized(reason: impl Into<String>) -> Verdict {
    reject(401, reason)
}

/// Judges `req` against the source's options, then its preset.
pub fn check(kind: &SourceKind, options: &SourceOptions, req: &IncomingRequest<'_>) -> Verdict {
    if let Some(methods) = &options.allowed_methods
        && !methods.iter().any(|m| m.eq_ignore_ascii_case(req.method))
    {
        return reject(
            405,
            format!("method {} is not allowed by this source", req.method),
        );
    }
    if let Some(nets) = &options.allowed_networks {
        let allowed = req.client.is_some_and(|ip| {
            let ip = ip.to_canonical();
            nets.iter().any(|n| n.contains(&ip))
        });
        if !allowed {
            return reject(403, "the client address is not in the source's allowed networks");
        }
    }
    if let Some(basic) = &options.basic_auth {
        let expected = format!("{}:{}", basic.username, basic.password);
        let given = req
            .header("authorization")
            .and_then(|v| strip_prefix_ci(v.trim(), "basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok());
        if !given.is_some_and(|g| ct_eq(&g, expected.as_bytes())) {
            return unauthorized("basic auth missing or wrong");
        }
    }
    if let Some(key) = &options.api_key {
        let from_header = key.header.as_deref().and_then(|h| {
            let v = req.header(h)?.trim();
            Some(if h.eq_ignore_ascii_case("authorization") {
                strip_prefix_ci(v, "bearer ").unwrap_or(v).trim().to_owned()
            } else {
                v.to_owned()
            })
        });
        let given = from_header.or_else(|| key.query.as_deref().and_then(|q| req.query_param(q)));
        if !given.is_some_and(|g| ct_eq(g.as_bytes(), key.value.as_bytes())) {
            return unauthorized("API key missing or wrong");
        }
    }
    if let Some(h) = &options.hmac {
        let Some(value) = req.header(&h.header) else {
            return unauthorized(format!("missing {} header", h.header));
        };
        let Some(given) = value.trim().strip_prefix(h.prefix.as_str()) else {
            return unauthorized(format!("{} does not start with `{}`", h.header, h.prefix));
        };
        let mac = match h.algorithm {
            HmacAlgorithm::Sha1 => hmac::<Hmac<Sha1>>(h.secret.as_bytes(), &[req.body]),
            HmacAlgorithm::Sha256 => hmac::<Hmac<Sha256>>(h.secret.as_bytes(), &[req.body]),
            HmacAlgorithm::Sha512 => hmac::<Hmac<Sha512>>(h.secret.as_bytes(), &[req.body]),
        };
        let ok = match h.encoding {
            HmacEncoding::Hex => hex_eq(given, &mac),
            HmacEncoding::Base64 => b64_eq(given, &mac),
        };
        if !ok {
            return unauthorized(format!("{} signature does not match", h.header));
        }
    }
    preset(kind, options.tolerance(), req)
}

fn preset(kind: &SourceKind, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let verdict = match kind {
        SourceKind::Generic | SourceKind::Cron(_) | SourceKind::Github { secret: None } => Verdict::Accept,
        SourceKind::Github { secret: Some(s) } => github(s, req),
        SourceKind::Stripe { secret } => stripe(secret, tolerance, req),
        SourceKind::Shopify { secret } => {
            let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[req.body]);
            match req.header("x-shopify-hmac-sha256") {
                None => unauthorized("missing X-Shopify-Hmac-Sha256 header"),
                Some(v) if b64_eq(v.trim(), &mac) => Verdict::Accept,
                Some(_) => unauthorized("X-Shopify-Hmac-Sha256 does not match"),
            }
        }
        SourceKind::Slack { secret } => slack(secret, tolerance, req),
        SourceKind::StandardWebhooks { secret, .. } => standard_webhooks(secret, tolerance, req),
        SourceKind::Twilio { auth_token } => twilio(auth_token, req),
        SourceKind::Zoom { secret } => zoom(secret, tolerance, req),
        SourceKind::Paddle { secret } => paddle(secret, tolerance, req),
        SourceKind::Linear { secret } => linear(secret, tolerance, req),
        SourceKind::Square {
            signature_key,
            notification_url,
        } => {
            let url = notification_url.as_deref().unwrap_or(req.url);
            let mac = hmac::<Hmac<Sha256>>(signature_key.as_bytes(), &[url.as_bytes(), req.body]);
            match req.header("x-square-hmacsha256-signature") {
                None => unauthorized("missing x-square-hmacsha256-signature header"),
                Some(v) if b64_eq(v.trim(), &mac) => Verdict::Accept,
                Some(_) => unauthorized("x-square-hmacsha256-signature does not match"),
            }
        }
    };
    if verdict != Verdict::Accept {
        return verdict;
    }
    challenge(kind, req).unwrap_or(Verdict::Accept)
}

/// The answer a provider's URL check expects, once the request is verified.
fn challenge(kind: &SourceKind, req: &IncomingRequest<'_>) -> Option<Verdict> {
    let (SourceKind::Slack { .. } | SourceKind::Zoom { .. }) = kind else {
        return None;
    };
    let body: Value = serde_json::from_slice(req.body).ok()?;
    match kind {
        SourceKind::Slack { .. } if body.get("type")? == "url_verification" => {
            let challenge = body.get("challenge")?.as_str()?;
            Some(Verdict::Challenge {
                body: json!({ "challenge": challenge }).to_string(),
            })
        }
        SourceKind::Zoom { secret } if body.get("event")? == "endpoint.url_validation" => {
            let plain = body.pointer("/payload/plainToken")?.as_str()?;
            let encrypted = hex::encode(hmac::<Hmac<Sha256>>(secret.as_bytes(), &[plain.as_bytes()]));
            Some(Verdict::Challenge {
                body: json!({ "plainToken": plain, "encryptedToken": encrypted }).to_string(),
            })
        }
        _ => None,
    }
}

fn github(secret: &str, req: &IncomingRequest<'_>) -> Verdict {
    let Some(v) = req.header("x-hub-signature-256") else {
        return unauthorized("missing X-Hub-Signature-256 header");
    };
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[req.body]);
    match v.trim().strip_prefix("sha256=") {
        Some(sig) if hex_eq(sig, &mac) => Verdict::Accept,
        _ => unauthorized("X-Hub-Signature-256 does not match"),
    }
}

fn stripe(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let Some(header) = req.header("stripe-signature") else {
        return unauthorized("missing Stripe-Signature header");
    };
    let mut ts = None;
    let mut sigs = Vec::new();
    for item in header.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => ts = t.parse::<i64>().ok(),
            Some(("v1", s)) => sigs.push(s),
            _ => {}
        }
    }
    let Some(ts) = ts else {
        return unauthorized("Stripe-Signature has no timestamp");
    };
    if let Some(v) = stale(ts, req.now, tolerance) {
        return v;
    }
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[ts.to_string().as_bytes(), b".", req.body]);
    if sigs.iter().any(|s| hex_eq(s, &mac)) {
        Verdict::Accept
    } else {
        unauthorized("no v1 signature in Stripe-Signature matches")
    }
}

fn slack(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let (Some(ts), Some(sig)) = (
        req.header("x-slack-request-timestamp"),
        req.header("x-slack-signature"),
    ) else {
        return unauthorized("missing X-Slack-Request-Timestamp or X-Slack-Signature header");
    };
    let Ok(t) = ts.trim().parse::<i64>() else {
        return unauthorized("X-Slack-Request-Timestamp is not a number");
    };
    if let Some(v) = stale(t, req.now, tolerance) {
        return v;
    }
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[b"v0:", ts.trim().as_bytes(), b":", req.body]);
    match sig.trim().strip_prefix("v0=") {
        Some(s) if hex_eq(s, &mac) => Verdict::Accept,
        _ => unauthorized("X-Slack-Signature does not match"),
    }
}

/// The key of a Standard Webhooks secret (`whsec_` + base64, the prefix optional).
pub fn standard_webhooks_key(secret: &str) -> Result<Vec<u8>, InvalidValue> {
    let body = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD
        .decode(body)
        .ok()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| InvalidValue::new("a Standard Webhooks secret is `whsec_` followed by base64"))
}

fn standard_webhooks(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let found = ["webhook", "svix"].iter().find_map(|p| {
        Some((
            req.header(&format!("{p}-id"))?,
            req.header(&format!("{p}-timestamp"))?,
            req.header(&format!("{p}-signature"))?,
        ))
    });
    let Some((id, ts, sigs)) = found else {
        return unauthorized("missing webhook-id, webhook-timestamp or webhook-signature header");
    };
    let Ok(t) = ts.trim().parse::<i64>() else {
        return unauthorized("webhook-timestamp is not a number");
    };
    if let Some(v) = stale(t, req.now, tolerance) {
        return v;
    }
    let Ok(key) = standard_webhooks_key(secret) else {
        return unauthorized("the source's secret is not a valid Standard Webhooks secret");
    };
    let mac = hmac::<Hmac<Sha256>>(&key, &[id.as_bytes(), b".", ts.trim().as_bytes(), b".", req.body]);
    let matched = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|s| b64_eq(s, &mac));
    if matched {
        Verdict::Accept
    } else {
        unauthorized("no v1 signature in webhook-signature matches")
    }
}

fn twilio(auth_token: &str, req: &IncomingRequest<'_>) -> Verdict {
    let Some(sig) = req.header("x-twilio-signature") else {
        return unauthorized("missing X-Twilio-Signature header");
    };
    let is_form = req.header("content-type").is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
    });
    let mut data = req.url.as_bytes().to_vec();
    if is_form {
        // Twilio's libraries sort by name, then value, and use each pair once.
        let params: std::collections::BTreeSet<(String, String)> =
            url::form_urlencoded::parse(req.body).into_owned().collect();
        for (k, v) in params {
            data.extend_from_slice(k.as_bytes());
            data.extend_from_slice(v.as_bytes());
        }
    } else {
        // JSON (and other) bodies: Twilio signs the URL, which carries the body's hash.
        let Some(expected) = req.query_param("bodySHA256") else {
            return unauthorized("a non-form Twilio request must carry bodySHA256 in its URL");
        };
        if !hex_eq(&expected, &Sha256::digest(req.body)) {
            return unauthorized("bodySHA256 does not match the body");
        }
    }
    let mac = hmac::<Hmac<Sha1>>(auth_token.as_bytes(), &[&data]);
    if b64_eq(sig.trim(), &mac) {
        Verdict::Accept
    } else {
        unauthorized("X-Twilio-Signature does not match")
    }
}

fn zoom(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let (Some(ts), Some(sig)) = (req.header("x-zm-request-timestamp"), req.header("x-zm-signature")) else {
        return unauthorized("missing x-zm-request-timestamp or x-zm-signature header");
    };
    let Ok(t) = ts.trim().parse::<i64>() else {
        return unauthorized("x-zm-request-timestamp is not a number");
    };
    if let Some(v) = stale(t, req.now, tolerance) {
        return v;
    }
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[b"v0:", ts.trim().as_bytes(), b":", req.body]);
    match sig.trim().strip_prefix("v0=") {
        Some(s) if hex_eq(s, &mac) => Verdict::Accept,
        _ => unauthorized("x-zm-signature does not match"),
    }
}

fn paddle(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let Some(header) = req.header("paddle-signature") else {
        return unauthorized("missing Paddle-Signature header");
    };
    let mut ts = None;
    let mut sigs = Vec::new();
    for item in header.split(';') {
        match item.trim().split_once('=') {
            Some(("ts", t)) => ts = Some(t),
            Some(("h1", s)) => sigs.push(s),
            _ => {}
        }
    }
    let Some(t) = ts.and_then(|t| t.parse::<i64>().ok().map(|n| (t, n))) else {
        return unauthorized("Paddle-Signature has no timestamp");
    };
    if let Some(v) = stale(t.1, req.now, tolerance) {
        return v;
    }
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[t.0.as_bytes(), b":", req.body]);
    if sigs.iter().any(|s| hex_eq(s, &mac)) {
        Verdict::Accept
    } else {
        unauthorized("no h1 signature in Paddle-Signature matches")
    }
}

fn linear(secret: &str, tolerance: i64, req: &IncomingRequest<'_>) -> Verdict {
    let Some(sig) = req.header("linear-signature") else {
        return unauthorized("missing Linear-Signature header");
    };
    let mac = hmac::<Hmac<Sha256>>(secret.as_bytes(), &[req.body]);
    if !hex_eq(sig.trim(), &mac) {
        return unauthorized("Linear-Signature does not match");
    }
    // Linear puts the send time (ms) in the signed body, for replay protection.
    let sent_ms = serde_json::from_slice::<Value>(req.body)
        .ok()
        .and_then(|b| b.get("webhookTimestamp")?.as_i64());
    match sent_ms {
        Some(ms) => stale(ms.div_euclid(1000), req.now, tolerance).unwrap_or(Verdict::Accept),
        None => Verdict::Accept,
    }
}

/// A rejection when `ts` is further than `tolerance` seconds from `now`.
fn stale(ts: i64, now: i64, tolerance: i64) -> Option<Verdict> {
    (now.abs_diff(ts) > tolerance.unsigned_abs())
        .then(|| unauthorized(format!("timestamp {ts} is outside the {tolerance} s tolerance")))
}

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut mac = <M as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn hex_eq(given: &str, expected: &[u8]) -> bool {
    hex::decode(given.trim()).is_ok_and(|g| ct_eq(&g, expected))
}

fn b64_eq(given: &str, expected: &[u8]) -> bool {
    STANDARD.decode(given.trim()).is_ok_and(|g| ct_eq(&g, expected))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

/// Checks a cron schedule (5 fields, or 6 with seconds first).
pub fn check_schedule(schedule: &str) -> Result<(), InvalidValue> {
    parse_schedule(schedule).map(|_| ())
}

fn parse_schedule(schedule: &str) -> Result<croner::Cron, InvalidValue> {
    croner::Cron::from_str(schedule.trim())
        .map_err(|e| InvalidValue::new(format!("not a cron schedule: {e}")))
}

/// The first time after `after` that `schedule` fires.
pub fn next_fire(
    schedule: &str,
    after: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    parse_schedule(schedule)
        .ok()?
        .find_next_occurrence(&after, false)
        .ok()
}

#[cfg(test)]
mod tests;
