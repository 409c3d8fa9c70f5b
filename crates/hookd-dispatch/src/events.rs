//! Operational webhooks: hookd's own events, sent to the organisation's operational
//! endpoints by the same engine (they are messages to the organisation's hidden
//! operational application).

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, MessageId, OrgId};
use hookd_core::name::Uid;
use hookd_store::{NewMessage, Store, StoreResult};
use serde_json::json;

/// Every event type an operational endpoint can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "endpoint.created",
    "endpoint.updated",
    "endpoint.deleted",
    "endpoint.disabled",
    "endpoint.enabled",
    "message.attempt.failing",
    "message.attempt.exhausted",
    "message.attempt.recovered",
    "app.created",
    "app.updated",
    "app.deleted",
    "flow.run.failed",
];

/// Failed attempts of one delivery after which `message.attempt.failing` is sent.
pub const FAILING_AFTER: u32 = 4;

/// One event. `kind` is one of [`EVENT_TYPES`].
#[derive(Debug, Clone)]
pub struct OperationalEvent {
    pub kind: &'static str,
    pub data: serde_json::Value,
}

impl OperationalEvent {
    pub fn endpoint(
        kind: &'static str,
        app: &ApplicationId,
        app_uid: Option<&Uid>,
        ep: &EndpointId,
        ep_uid: Option<&Uid>,
    ) -> Self {
        Self {
            kind,
            data: json!({
                "appId": app.as_str(),
                "appUid": app_uid.map(Uid::as_str),
                "endpointId": ep.as_str(),
                "endpointUid": ep_uid.map(Uid::as_str),
            }),
        }
    }

    pub fn app(kind: &'static str, app: &ApplicationId, app_uid: Option<&Uid>) -> Self {
        Self {
            kind,
            data: json!({"appId": app.as_str(), "appUid": app_uid.map(Uid::as_str)}),
        }
    }

    /// A flow's run that ended as failed (its step's retries spent, or a failure that
    /// is not retried).
    pub fn flow_run_failed(flow: &str, flow_name: &str, run: &str, step: Option<&str>, error: &str) -> Self {
        Self {
            kind: "flow.run.failed",
            data: json!({"flowId": flow, "flowName": flow_name, "runId": run, "step": step, "error": error}),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn attempt(
        kind: &'static str,
        app: &ApplicationId,
        app_uid: Option<&Uid>,
        msg: &MessageId,
        msg_event_id: Option<&Uid>,
        ep: &EndpointId,
        attempt: &AttemptId,
        at: DateTime<Utc>,
        response_status_code: i32,
    ) -> Self {
        Self {
            kind,
            data: json!({
                "appId": app.as_str(),
                "appUid": app_uid.map(Uid::as_str),
                "msgId": msg.as_str(),
                "msgEventId": msg_event_id.map(Uid::as_str),
                "endpointId": ep.as_str(),
                "lastAttempt": {
                    "id": attempt.as_str(),
                    "timestamp": at,
                    "responseStatusCode": response_status_code,
                },
            }),
        }
    }
}

/// Queues `event` for the organisation's operational endpoints. Returns whether any
/// endpoint will get it.
pub async fn emit(store: &dyn Store, org: &OrgId, event: OperationalEvent) -> StoreResult<bool> {
    let app = store.operational_app(org).await?;
    let one = hookd_store::ListQuery {
        limit: 1,
        ..Default::default()
    };
    if store.list_endpoints(org, &app, &one).await?.items.is_empty() {
        // Nobody listens: keep nothing.
        return Ok(false);
    }
    let now = Utc::now();
    let payload = json!({"type": event.kind, "timestamp": now, "data": event.data}).to_string();
    let message = NewMessage {
        event_type: event
            .kind
            .parse()
            .map_err(|e: hookd_core::InvalidValue| hookd_store::StoreError::rejected("type", e.message))?,
        event_id: None,
        channels: None,
        tags: Default::default(),
        payload,
        retain_until: now + chrono::Duration::days(30),
        only_endpoint: None,
        forward: None,
        flow_runs: Default::default(),
        deliver_at: None,
    };
    let (_, deliveries) = store.create_message(org, &app, message).await?;
    Ok(deliveries > 0)
}
