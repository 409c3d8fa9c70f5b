//! What an attempt sends: the delivery as stored, or what the endpoint's transformation
//! made of it. Run at every attempt, so a transformation changed or switched off while
//! retries are pending applies to the next one.

use std::collections::BTreeMap;

use hookd_sandbox::Sandbox;
use hookd_sandbox::transform::{self, Method, Request as ReceivedRequest, Webhook};
use hookd_store::ClaimedDelivery;

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub method: Method,
    pub url: url::Url,
    /// What is sent and signed.
    pub body: Vec<u8>,
    /// Sent as `application/json`: a message's payload, or a value a transformation
    /// returned. Otherwise (a forwarded body, or a string a transformation returned)
    /// the received request's content type is passed on.
    pub json: bool,
    /// Headers the transformation added (checked: never one hookd sets itself).
    pub headers: BTreeMap<String, String>,
    /// Whether a transformation produced this.
    pub transformed: bool,
}

/// What the attempt does.
#[derive(Debug)]
pub enum Prepared {
    Send(Outgoing),
    /// The transformation set `cancel`: nothing is sent, the delivery is canceled.
    Cancel,
    /// The transformation failed: the attempt fails with this reason.
    Failed(String),
}

impl Outgoing {
    /// The delivery as stored: a POST of the message's payload (or the forwarded body).
    pub fn plain(d: &ClaimedDelivery) -> Self {
        Self {
            method: Method::Post,
            url: d.endpoint.data.url.as_url().clone(),
            body: body(d),
            json: d.raw.is_none(),
            headers: BTreeMap::new(),
            transformed: false,
        }
    }
}

fn body(d: &ClaimedDelivery) -> Vec<u8> {
    match &d.raw {
        Some(raw) => raw.body.clone(),
        None => d.message.payload.clone().unwrap_or_default().into_bytes(),
    }
}

/// The webhook a transformation of `d` is given.
pub fn webhook(d: &ClaimedDelivery) -> Webhook {
    let data = &d.endpoint.data;
    let variables = data
        .transformation
        .as_ref()
        .and_then(|t| t.variables.clone())
        .unwrap_or_default();
    let (payload, request) = match &d.raw {
        Some(raw) => (
            transform::payload_value(&raw.body),
            Some(ReceivedRequest::new(
                &raw.received.path,
                &raw.received.query,
                raw.received.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
        ),
        None => (
            d.message
                .payload
                .as_deref()
                .map(|p| transform::payload_value(p.as_bytes()))
                .unwrap_or_default(),
            None,
        ),
    };
    Webhook {
        method: Method::Post,
        url: data.url.as_str().to_owned(),
        payload,
        event_type: d.message.event_type.to_string(),
        channels: d
            .message
            .channels
            .iter()
            .flatten()
            .map(|c| c.to_string())
            .collect(),
        headers: BTreeMap::new(),
        cancel: false,
        variables,
        request,
    }
}

/// Runs the endpoint's transformation, if it has one switched on.
pub async fn prepare(sandbox: &Sandbox, d: &ClaimedDelivery) -> Prepared {
    let Some(code) = d
        .endpoint
        .data
        .transformation
        .as_ref()
        .and_then(|t| t.active_code())
    else {
        return Prepared::Send(Outgoing::plain(d));
    };
    // Scoped to the endpoint: its code is kept warm between its attempts.
    match transform::run(sandbox, Some(d.endpoint.id.as_str()), code, &webhook(d)).await {
        Ok(out) if out.cancel => Prepared::Cancel,
        Ok(out) => Prepared::Send(Outgoing {
            method: out.method,
            url: out.url,
            body: out.body,
            // A message's payload is JSON; a returned string stays a JSON string.
            json: out.json || d.raw.is_none(),
            headers: out.headers,
            transformed: true,
        }),
        Err(e) => Prepared::Failed(format!("transformation failed: {e}")),
    }
}
