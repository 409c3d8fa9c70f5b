//! Sending one delivery: the signed POST and what came back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hookd_core::network_policy::NetworkPolicy;
use hookd_core::signature::signature_header;
use hookd_store::{AttemptHeaders, ClaimedDelivery};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};

use hookd_sandbox::transform::Method;

use crate::guard::{self, GuardedResolver};
use crate::relay::{Relayed, Relays};
use crate::transform::Outgoing;

/// The delivery HTTP client could not be built.
pub type BuildError = reqwest::Error;

/// How much of a response body is kept in the attempt log.
pub const RESPONSE_KEEP: usize = 20 * 1024;

/// What one attempt produced.
#[derive(Debug, Clone)]
pub struct Sent {
    pub url: String,
    /// The HTTP status, or `None` when no answer came.
    pub status: Option<u16>,
    /// The start of the answer's body, or why there was no answer.
    pub body: String,
    pub retry_after: Option<Duration>,
    pub duration: Duration,
    /// The headers sent (credential values hidden) and answered, for the attempt log.
    pub headers: AttemptHeaders,
}

/// Headers kept per side of an attempt at most, and bytes of each value.
const HEADERS_KEPT: usize = 64;
const HEADER_VALUE_KEPT: usize = 1024;

/// `headers` as the attempt log keeps them: bounded, values that are credentials
/// (a custom `Authorization`, an API key header) hidden.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .take(HEADERS_KEPT)
        .map(|(name, value)| {
            let value = if hookd_core::endpoint_headers::is_sensitive(name.as_str()) {
                "[hidden]".to_owned()
            } else {
                let text = String::from_utf8_lossy(value.as_bytes());
                let mut end = text.len().min(HEADER_VALUE_KEPT);
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text[..end].to_owned()
            };
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// An HTTP client for requests to addresses users chose (deliveries, flows' SMS and
/// http steps): every address a host resolves to is checked against `policy`
/// ([`GuardedResolver`]; an IP literal must be checked by the caller with
/// [`crate::guard::check_literal`]), redirects are never followed, and `timeout`
/// bounds each request.
pub fn guarded_client(
    policy: Arc<NetworkPolicy>,
    timeout: Duration,
    proxy: Option<&str>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder();
    builder = match proxy {
        Some(p) => builder.proxy(reqwest::Proxy::all(p)?),
        // Proxies from the environment would bypass the address checks.
        None => builder.no_proxy(),
    };
    builder
        .dns_resolver(Arc::new(GuardedResolver::new(policy)))
        // A redirect is an answer (3xx, a failure), never followed: following it
        // would send the payload somewhere nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
}

/// The first `limit` bytes of an answer's body; the rest is never read (a hostile
/// server's endless body costs nothing). A body cut short ends what is kept.
pub async fn read_prefix(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    // The status arrived; a body cut short (an error) does not change the verdict.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if kept.len() >= limit {
            break;
        }
    }
    kept
}

#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    https_only: bool,
    user_agent: HeaderValue,
    /// Keep the headers sent and answered in the attempt log.
    record_headers: bool,
}

impl Sender {
    pub fn new(
        policy: NetworkPolicy,
        timeout: Duration,
        https_only: bool,
        proxy: Option<&str>,
        record_headers: bool,
    ) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = guarded_client(Arc::clone(&policy), timeout, proxy)?;
        let user_agent = HeaderValue::from_str(&format!("hookd/{}", env!("CARGO_PKG_VERSION")))
            .unwrap_or_else(|_| HeaderValue::from_static("hookd"));
        Ok(Self {
            client,
            policy,
            https_only,
            user_agent,
            record_headers,
        })
    }

    /// The headers of a delivery, signed with every secret still valid at `now`.
    ///
    /// A forwarded received request passes on the headers chosen when it was received
    /// (its content type among them, unless `out` is JSON); the endpoint's custom
    /// headers override those, a transformation's override those, and the signature
    /// headers of `out.body` override everything.
    pub fn headers(d: &ClaimedDelivery, now: DateTime<Utc>, out: &Outgoing) -> HeaderMap {
        let (body, extra) = (&out.body, &out.headers);
        let mut headers = HeaderMap::new();
        let forwarded = d.raw.as_ref().map(|r| r.headers.as_slice()).unwrap_or_default();
        for (name, value) in forwarded {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(n, v);
            }
        }
        if out.json {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (name, value) in d.endpoint.data.headers.iter().chain(extra) {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        let id = d.message.id.as_str();
        let ts = now.timestamp();
        let secrets = std::iter::once(&d.endpoint.data.secret).chain(
            d.endpoint
                .data
                .previous_secrets
                .iter()
                .filter(|p| p.expires_at > now)
                .map(|p| &p.secret),
        );
        let signature = signature_header(secrets, id, ts, body);
        for (name, value) in [("webhook", id.to_owned()), ("svix", id.to_owned())]
            .into_iter()
            .flat_map(|(prefix, id)| {
                [
                    (format!("{prefix}-id"), id),
                    (format!("{prefix}-timestamp"), ts.to_string()),
                    (format!("{prefix}-signature"), signature.clone()),
                ]
            })
        {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(n, v);
            }
        }
        headers
    }

    /// Sends `out` for the delivery `d`.
    pub async fn send(&self, d: &ClaimedDelivery, out: Outgoing, now: DateTime<Utc>) -> Sent {
        let mut headers = Self::headers(d, now, &out);
        let Outgoing {
            method, url, body, ..
        } = out;
        let started = Instant::now();
        headers.insert(USER_AGENT, self.user_agent.clone());
        let sent_headers = if self.record_headers {
            kept_headers(&headers)
        } else {
            Vec::new()
        };
        let failed = |why: String| Sent {
            url: url.to_string(),
            status: None,
            body: why,
            retry_after: None,
            duration: started.elapsed(),
            headers: AttemptHeaders {
                request: sent_headers.clone(),
                response: Vec::new(),
            },
        };
        if self.https_only && url.scheme() != "https" {
            return failed("refused: delivery_https_only is set and the endpoint URL is not https".into());
        }
        if let Err(refused) = guard::check_literal(&self.policy, &url) {
            return failed(refused.to_string());
        }
        let method = match method {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let result = self
            .client
            .request(method, url.clone())
            .headers(headers)
            .body(body)
            .send()
            .await;
        let mut response = match result {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let answered = if self.record_headers {
            kept_headers(response.headers())
        } else {
            Vec::new()
        };
        let kept = read_prefix(&mut response, RESPONSE_KEEP).await;
        Sent {
            url: url.to_string(),
            status: Some(status),
            body: String::from_utf8_lossy(&kept).into_owned(),
            retry_after,
            duration: started.elapsed(),
            headers: AttemptHeaders {
                request: sent_headers,
                response: answered,
            },
        }
    }
}

impl Sender {
    /// Hands `out` for the delivery `d` to its `hookd listen` session (the endpoint's
    /// URL is a listen URL) instead of sending it: the same signed headers, the
    /// received request's method, path and query for a forward, and the session's
    /// answer as the attempt's.
    pub async fn relay(
        &self,
        relays: &Relays,
        d: &ClaimedDelivery,
        out: Outgoing,
        now: DateTime<Utc>,
        timeout: Duration,
    ) -> Sent {
        let mut headers = Self::headers(d, now, &out);
        headers.insert(USER_AGENT, self.user_agent.clone());
        let sent_headers = if self.record_headers {
            kept_headers(&headers)
        } else {
            Vec::new()
        };
        let (method, path, query) = match &d.raw {
            Some(raw) if !raw.received.method.is_empty() => (
                raw.received.method.clone(),
                raw.received.path.clone(),
                raw.received.query.clone(),
            ),
            _ => (out.method.as_str().to_owned(), String::new(), String::new()),
        };
        let request = Relayed {
            id: 0,
            msg_id: d.message.id.clone(),
            attempt: d.attempts,
            method,
            path,
            query,
            headers: headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: out.body,
        };
        let started = Instant::now();
        let answered = relays.relay(&d.endpoint.id, request, timeout).await;
        let duration = started.elapsed();
        let session_url = d.endpoint.data.url.to_string();
        match answered {
            Ok(answer) => {
                let mut body = answer.body;
                let mut end = body.len().min(RESPONSE_KEEP);
                while !body.is_char_boundary(end) {
                    end -= 1;
                }
                body.truncate(end);
                let mut response: Vec<(String, String)> = answer.headers;
                response.truncate(HEADERS_KEPT);
                Sent {
                    url: answer
                        .url
                        .filter(|u| !u.is_empty() && u.len() <= 2048)
                        .unwrap_or(session_url),
                    status: answer.status,
                    body,
                    retry_after: None,
                    duration,
                    headers: AttemptHeaders {
                        request: sent_headers,
                        response: if self.record_headers { response } else { Vec::new() },
                    },
                }
            }
            Err(why) => Sent {
                url: session_url,
                status: None,
                body: why.to_string(),
                retry_after: None,
                duration,
                headers: AttemptHeaders {
                    request: sent_headers,
                    response: Vec::new(),
                },
            },
        }
    }
}

/// A readable reason for a request that got no answer.
fn describe(e: &reqwest::Error) -> String {
    if let Some(refused) = guard::refusal_in(e) {
        return refused;
    }
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut chain = vec![e.to_string()];
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        chain.push(c.to_string());
        cur = c.source();
    }
    format!("{kind}: {}", chain.join(": "))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now)
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_headers_hide_credentials_and_are_bounded() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer s3cret"));
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        let long = "é".repeat(HEADER_VALUE_KEPT);
        h.insert("x-long", HeaderValue::from_str(&long).unwrap());
        for i in 0..100 {
            h.insert(
                reqwest::header::HeaderName::from_bytes(format!("x-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        let kept = kept_headers(&h);
        assert_eq!(kept.len(), HEADERS_KEPT);
        let get = |n: &str| kept.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("authorization").as_deref(), Some("[hidden]"));
        assert_eq!(get("webhook-id").as_deref(), Some("msg_1"));
        let cut = get("x-long").unwrap();
        assert!(cut.len() <= HEADER_VALUE_KEPT && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
