//! What both UIs show of the send side, shaped for templates: endpoint forms into the
//! service's inputs, and a message's attempts and destinations. Templates hold no
//! logic beyond loops and conditionals, so the formatting happens here.

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, MessageId, OrgId};
use hookd_store::{AttemptFilter, DeliveryState, Endpoint, ListQuery, MessageAttempt, Order};
use serde::Deserialize;

use crate::http::error::ApiResult;
use crate::service::Service;
use crate::service::endpoint::{EndpointIn, EndpointPatch};

/// The endpoint form of both UIs.
#[derive(Debug, Deserialize)]
pub struct EndpointForm {
    pub url: String,
    #[serde(default)]
    pub description: String,
    /// Event type names separated by commas or spaces; empty: every type.
    #[serde(default)]
    pub event_types: String,
}

impl EndpointForm {
    fn event_types(&self) -> Option<Vec<String>> {
        let list: Vec<String> = self
            .event_types
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        (!list.is_empty()).then_some(list)
    }

    pub fn into_new(self) -> EndpointIn {
        EndpointIn {
            event_types: self.event_types(),
            url: self.url.trim().to_owned(),
            description: Some(self.description),
            throttle_rate: None,
            uid: None,
            disabled: None,
            channels: None,
            secret: None,
            metadata: None,
            headers: None,
            filter: None,
        }
    }

    pub fn into_patch(self) -> EndpointPatch {
        EndpointPatch {
            event_types: Some(self.event_types()),
            url: Some(self.url.trim().to_owned()),
            description: Some(self.description),
            ..EndpointPatch::default()
        }
    }
}

/// An endpoint's event types as the form shows them.
pub fn event_types_text(ep: &Endpoint) -> String {
    ep.data
        .event_types
        .as_ref()
        .map(|set| set.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}

/// One attempt as a row.
#[derive(Debug)]
pub struct AttemptRow {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub response_status: i32,
    pub duration_ms: i64,
    pub response: String,
    pub at: String,
    pub trigger: &'static str,
    /// The headers sent (credential values hidden) and answered; empty for attempts
    /// recorded before hookd kept them.
    pub request_headers: Vec<(String, String)>,
    pub response_headers: Vec<(String, String)>,
}

pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn status_class(status: &str) -> &'static str {
    match status {
        "success" | "accepted" => "ok",
        "fail" | "rejected" => "bad",
        _ => "warn",
    }
}

impl From<MessageAttempt> for AttemptRow {
    fn from(a: MessageAttempt) -> Self {
        let status = a.status.text();
        let headers = a.headers.unwrap_or_default();
        Self {
            request_headers: headers.request,
            response_headers: headers.response,
            id: a.id.to_string(),
            msg_id: a.msg_id.to_string(),
            endpoint_id: a.endpoint_id.to_string(),
            url: a.url,
            status,
            status_class: status_class(status),
            response_status: a.response_status_code,
            duration_ms: a.response_duration_ms,
            response: a.response.unwrap_or_default(),
            at: time(a.created_at),
            trigger: match a.trigger {
                hookd_store::AttemptTrigger::Scheduled => "scheduled",
                hookd_store::AttemptTrigger::Manual => "manual",
            },
        }
    }
}

/// Where a message goes: each endpoint and its delivery's state.
#[derive(Debug)]
pub struct DestinationRow {
    pub endpoint_id: String,
    pub url: String,
    pub status: &'static str,
    pub status_class: &'static str,
    pub next_attempt: String,
}

/// What became of a message: its destinations and attempts, as
/// `shared/attempts.html` shows them (included in a page, or alone for the refresh).
#[derive(Debug)]
pub struct Delivery {
    pub attempts: Vec<AttemptRow>,
    pub destinations: Vec<DestinationRow>,
    /// The message's path, which `/resend` and `/attempts` follow.
    pub base: String,
    pub can_resend: bool,
    pub csrf: String,
}

/// [`Delivery`] alone: the fragment a message page reloads every few seconds.
#[derive(askama::Template)]
#[template(path = "shared/attempts.html")]
pub struct DeliveryFragment {
    pub delivery: Delivery,
}

/// A message's [`Delivery`]: `base` its page's path, `can_resend` whether the session
/// may resend, `csrf` its token.
pub async fn delivery(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
    base: String,
    can_resend: bool,
    csrf: &str,
) -> ApiResult<Delivery> {
    let (attempts, destinations) = message_delivery(state, org, app, msg).await?;
    Ok(Delivery {
        attempts,
        destinations,
        base,
        can_resend,
        csrf: csrf.to_owned(),
    })
}

/// The attempts of a message (newest first) and its destinations.
async fn message_delivery(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
) -> ApiResult<(Vec<AttemptRow>, Vec<DestinationRow>)> {
    let query = ListQuery {
        limit: 100,
        cursor: None,
        order: Order::Descending,
    };
    let filter = AttemptFilter {
        msg: Some(msg.clone()),
        ..AttemptFilter::default()
    };
    let attempts = state.store.list_attempts(org, app, &query, &filter).await?;
    let destinations = state
        .store
        .list_message_destinations(org, app, msg, &query)
        .await?;
    let destinations = destinations
        .items
        .into_iter()
        .map(|(ep, DeliveryState { status, next_attempt })| DestinationRow {
            endpoint_id: ep.id.to_string(),
            url: ep.data.url.to_string(),
            status: status.text(),
            status_class: status_class(status.text()),
            next_attempt: next_attempt.map(time).unwrap_or_default(),
        })
        .collect();
    Ok((
        attempts.items.into_iter().map(AttemptRow::from).collect(),
        destinations,
    ))
}

/// A JSON text pretty-printed, or as it is when it does not parse.
pub fn pretty_json(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_owned())
}
