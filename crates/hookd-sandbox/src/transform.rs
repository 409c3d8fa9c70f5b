//! The transformation contract: `function handler(webhook) { ...; return webhook }`.
//!
//! The handler gets a [`Webhook`] as a plain object and returns one; what it returns is
//! read back by [`Outgoing::from_result`], which checks every field, so a script can
//! never produce a request hookd would not otherwise send (a bad URL, a method outside
//! POST/PUT/PATCH, a header hookd sets itself).
//!
//! `payload` is the JSON body as a value; a received body that is not JSON arrives as
//! a string. A returned object, array, number or boolean is sent as JSON; a returned
//! string is sent as it is (so a form-encoded body can be rewritten as text).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::{Sandbox, ScriptError};

/// The function the code must declare.
pub const ENTRY: &str = "handler";

/// What the handler gets.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `POST` unless a transformation changes it.
    pub method: Method,
    pub url: String,
    pub payload: Value,
    pub event_type: String,
    pub channels: Vec<String>,
    /// Extra headers to send; empty on the way in.
    pub headers: BTreeMap<String, String>,
    /// Set to true to send nothing (the attempt is recorded as canceled).
    pub cancel: bool,
    /// The transformation's own settings (`variables` on the API).
    pub variables: BTreeMap<String, String>,
    /// For a received request forwarded to a destination: the request as it came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
}

/// A received request as a transformation sees it.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Header names lower-cased; repeated headers joined as `hookd_core::headers::joined`.
    pub headers: Value,
    /// The query string's parameters.
    pub query: Value,
    /// The path after the source's receiving URL.
    pub path: String,
}

impl Request {
    pub fn new<'h>(path: &str, query: &str, headers: impl IntoIterator<Item = (&'h str, &'h str)>) -> Self {
        Self {
            headers: hookd_core::filter::headers_value(headers),
            query: hookd_core::filter::query_value(query),
            path: path.to_owned(),
        }
    }
}

/// The body as the handler sees it: JSON as a value, anything else as text.
pub fn payload_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// What to send, as the handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub method: Method,
    pub url: url::Url,
    /// The body bytes to send (and sign).
    pub body: Vec<u8>,
    /// Whether `body` is JSON the handler returned as a value (not a string sent as
    /// it is): it is then sent as `application/json`.
    pub json: bool,
    pub headers: BTreeMap<String, String>,
    pub cancel: bool,
}

impl Outgoing {
    /// Reads the handler's result, refusing anything that is not a webhook.
    pub fn from_result(out: Value) -> Result<Self, ScriptError> {
        let bad = |why: String| ScriptError::BadResult(why);
        let Value::Object(mut o) = out else {
            return Err(bad("handler must return the webhook object".into()));
        };
        let method = match o.remove("method") {
            None | Some(Value::Null) => Method::Post,
            Some(Value::String(m)) => match m.as_str() {
                "POST" => Method::Post,
                "PUT" => Method::Put,
                "PATCH" => Method::Patch,
                other => {
                    return Err(bad(format!(
                        "webhook.method must be POST, PUT or PATCH, not {other:?}"
                    )));
                }
            },
            Some(_) => return Err(bad("webhook.method must be a string".into())),
        };
        let url = match o.remove("url") {
            Some(Value::String(u)) => {
                let parsed: hookd_core::endpoint_url::EndpointUrl =
                    u.parse().map_err(|e| bad(format!("webhook.url: {e}")))?;
                parsed.as_url().clone()
            }
            _ => return Err(bad("webhook.url must be a string".into())),
        };
        let (body, json) = match o.remove("payload") {
            None => return Err(bad("webhook.payload is missing".into())),
            Some(Value::String(s)) => (s.into_bytes(), false),
            Some(v) => (serde_json::to_vec(&v).map_err(|e| bad(e.to_string()))?, true),
        };
        let mut headers = BTreeMap::new();
        match o.remove("headers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(h)) => {
                for (name, value) in h {
                    let Value::String(value) = value else {
                        return Err(bad(format!("webhook.headers.{name} must be a string")));
                    };
                    hookd_core::endpoint_headers::validate(&name, &value)
                        .map_err(|e| bad(format!("webhook.headers: {e}")))?;
                    headers.insert(name, value);
                }
                if headers.len() > hookd_core::endpoint_headers::MAX_HEADERS {
                    return Err(bad(format!(
                        "webhook.headers may hold at most {} headers",
                        hookd_core::endpoint_headers::MAX_HEADERS
                    )));
                }
            }
            Some(_) => return Err(bad("webhook.headers must be an object".into())),
        }
        let cancel = match o.remove("cancel") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(bad("webhook.cancel must be true or false".into())),
        };
        Ok(Self {
            method,
            url,
            body,
            json,
            headers,
            cancel,
        })
    }
}

/// Runs a transformation on one webhook (counted in the sandbox's metrics). `scope`
/// is whose code it is (see [`Sandbox::call`]).
pub async fn run(
    sandbox: &Sandbox,
    scope: Option<&str>,
    code: &str,
    webhook: &Webhook,
) -> Result<Outgoing, ScriptError> {
    let started = std::time::Instant::now();
    let result = async {
        // Straight to JSON text: no intermediate value on the delivery path.
        let out = sandbox.call(scope, code, ENTRY, webhook).await?;
        Outgoing::from_result(out)
    }
    .await;
    let outcome = match &result {
        Ok(out) if out.cancel => "canceled",
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    sandbox.metrics().record(outcome, started.elapsed().as_secs_f64());
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::Limits;

    fn webhook() -> Webhook {
        Webhook {
            method: Method::Post,
            url: "https://example.com/hook".into(),
            payload: json!({"id": 1, "type": "invoice.paid"}),
            event_type: "invoice.paid".into(),
            channels: vec!["eu".into()],
            headers: BTreeMap::new(),
            cancel: false,
            variables: BTreeMap::from([("token".into(), "t0k".into())]),
            request: None,
        }
    }

    #[tokio::test]
    async fn a_transformation_rewrites_method_url_headers_and_payload() {
        let sb = Sandbox::start(Limits::default(), 1).unwrap();
        let code = r#"function handler(webhook) {
            webhook.method = "PUT";
            webhook.url = webhook.url + "/" + webhook.eventType + "?c=" + webhook.channels[0];
            webhook.headers["X-Token"] = webhook.variables.token;
            webhook.payload = { text: "paid " + webhook.payload.id };
            return webhook;
        }"#;
        let out = run(&sb, None, code, &webhook()).await.unwrap();
        assert_eq!(out.method, Method::Put);
        assert_eq!(out.url.as_str(), "https://example.com/hook/invoice.paid?c=eu");
        assert_eq!(out.headers, BTreeMap::from([("X-Token".into(), "t0k".into())]));
        assert_eq!(out.body, br#"{"text":"paid 1"}"#);
        assert!(!out.cancel);
        let out = run(
            &sb,
            None,
            "function handler(w) { w.cancel = true; return w }",
            &webhook(),
        )
        .await
        .unwrap();
        assert!(out.cancel);
        let out = run(
            &sb,
            None,
            "function handler(w) { w.payload = 'a=1&b=2'; return w }",
            &webhook(),
        )
        .await
        .unwrap();
        assert_eq!(out.body, b"a=1&b=2", "a string payload is sent as it is");
    }

    #[test]
    fn a_result_that_is_not_a_webhook_is_refused_with_the_field_named() {
        let base = || json!({"method": "POST", "url": "https://example.com/", "payload": {}});
        let refused = |patch: Value| {
            let mut v = base();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            Outgoing::from_result(v).unwrap_err().to_string()
        };
        assert!(refused(json!({"method": "GET"})).contains("webhook.method"));
        assert!(refused(json!({"url": "ftp://x"})).contains("webhook.url"));
        assert!(refused(json!({"url": 5})).contains("webhook.url"));
        assert!(refused(json!({"headers": {"webhook-signature": "v1,forged"}})).contains("set by hookd"));
        assert!(refused(json!({"headers": {"x-a": 1}})).contains("webhook.headers.x-a"));
        assert!(refused(json!({"cancel": "yes"})).contains("webhook.cancel"));
        let mut missing = base();
        missing.as_object_mut().unwrap().remove("payload");
        assert!(
            Outgoing::from_result(missing)
                .unwrap_err()
                .to_string()
                .contains("payload")
        );
        assert!(Outgoing::from_result(json!([1])).is_err());
        assert!(Outgoing::from_result(base()).is_ok());
    }

    #[test]
    fn a_body_that_is_not_json_is_seen_as_text() {
        assert_eq!(payload_value(br#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(payload_value(b"a=1&b=2"), json!("a=1&b=2"));
    }
}
