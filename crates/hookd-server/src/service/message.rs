//! Messages: the one way a new message is made and committed — by the API, a resend
//! or send-example, an ingest replay, a data change or a mode's `message.publish` —
//! and the wake-up of the delivery engine that follows its commit; resend; and the
//! removal of a payload or of an attempt's recorded response.

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, MessageId, OrgId};
use hookd_core::name::EventTypeName;
use hookd_store::{Message, NewMessage};

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// How long a message's payload is kept when the sender does not say (days).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;

/// Until when a message made now keeps its payload by default.
pub fn default_retain_until() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::days(DEFAULT_RETENTION_DAYS)
}

/// A new message of `event_type` with `payload` (a JSON object's text), kept for the
/// default retention, with no event id, channels or tags, for every endpoint that
/// accepts it. Callers set what differs.
pub fn new_message(event_type: EventTypeName, payload: String) -> NewMessage {
    NewMessage {
        event_type,
        event_id: None,
        channels: None,
        tags: Default::default(),
        payload,
        retain_until: default_retain_until(),
        only_endpoint: None,
        forward: None,
        flow_runs: Default::default(),
        deliver_at: None,
    }
}

/// Commits a message with one delivery per endpoint that accepts it, then wakes the
/// delivery engine; answers the message and how many deliveries it made.
pub async fn create(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    message: NewMessage,
) -> ApiResult<(Message, usize)> {
    let (msg, deliveries) = state.store.create_message(org, app, message).await?;
    if deliveries > 0 {
        state.wake_dispatcher();
    }
    Ok((msg, deliveries))
}

/// [`create`] for a message a sender sent (the API's `POST .../msg`, a mode's
/// `message.publish`): counted in `hookd_messages_accepted`, and committed with the
/// runs of the flows listening to the application's messages (`message.created`).
pub async fn accept(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    message: NewMessage,
) -> ApiResult<(Message, usize)> {
    accept_in_chain(state, org, app, message, 0).await
}

/// [`accept`] for a message that a flow run `depth` levels deep publishes: the runs
/// it starts are one level deeper (flows that set each other off stop at the limit).
pub async fn accept_in_chain(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    mut message: NewMessage,
    depth: u32,
) -> ApiResult<(Message, usize)> {
    message.flow_runs =
        crate::service::flow::triggers::message_runs(state, org, app, &message, depth).await?;
    let starts_runs = !message.flow_runs.is_none();
    let created = create(state, org, app, message).await?;
    state.metrics.server.messages_accepted.inc();
    if starts_runs {
        crate::service::flow::wake(state);
    }
    Ok(created)
}

/// Sends message `msg` to endpoint `endpoint` again now (a manual attempt).
pub async fn resend(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
    endpoint: &EndpointId,
) -> ApiResult<()> {
    state.store.resend(org, app, msg, endpoint).await?;
    state.wake_dispatcher();
    Ok(())
}

/// Removes the payload of message `msg`; its deliveries not yet made are canceled.
pub async fn expunge_payload(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
) -> ApiResult<()> {
    Ok(state.store.expunge_message_payload(org, app, msg).await?)
}

/// Removes the recorded response of `attempt` of message `msg`.
pub async fn expunge_attempt(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
    attempt: &AttemptId,
) -> ApiResult<()> {
    Ok(state
        .store
        .expunge_attempt_response(org, app, msg, attempt)
        .await?)
}

/// The id of the application `key` (id or uid) names, remembered for a moment (see
/// `cache`): the message path reads it on every send.
pub async fn app_id(state: &Service, org: &OrgId, key: &str) -> ApiResult<ApplicationId> {
    let cache_key = (org.clone(), key.to_owned());
    if let Some(id) = state.lookups.apps.get(&cache_key) {
        return Ok(id);
    }
    let app = state.store.get_application(org, key).await?;
    state.lookups.apps.put(cache_key, app.id.clone());
    Ok(app.id)
}

/// The example payload of an event type: `examples[i]` of its newest schema version,
/// or a minimal object naming the type when the schema has none.
pub fn example_payload(
    schemas: Option<&serde_json::Value>,
    event_type: &EventTypeName,
    index: usize,
) -> String {
    let newest = schemas.and_then(|s| s.as_object()).and_then(|versions| {
        versions
            .iter()
            .max_by_key(|(version, _)| version.parse::<u64>().unwrap_or(0))
            .map(|(_, schema)| schema)
    });
    let examples = newest.and_then(|s| s.get("examples")).and_then(|e| e.as_array());
    let example = examples
        .and_then(|list| list.get(index).or_else(|| list.first()))
        .filter(|e| e.is_object())
        .cloned();
    example
        .unwrap_or_else(|| serde_json::json!({"eventType": event_type.as_str(), "example": true}))
        .to_string()
}

/// Sends an example of `event_type` to the endpoint `endpoint` only: `payload` (a JSON
/// object) or the type's schema example `example_index`.
pub async fn send_example(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &hookd_core::id::EndpointId,
    event_type: EventTypeName,
    example_index: usize,
    payload: Option<String>,
) -> ApiResult<Message> {
    let schemas = state
        .store
        .get_event_type(org, event_type.as_str())
        .await?
        .data
        .schemas;
    let payload = match payload {
        Some(p) if p.trim_start().starts_with('{') => p,
        Some(_) => {
            return Err(ApiError::invalid(
                &["body", "payload"],
                "the payload must be a JSON object",
            ));
        }
        None => example_payload(schemas.as_ref(), &event_type, example_index),
    };
    let mut example = new_message(event_type, payload);
    example.only_endpoint = Some(endpoint.clone());
    let (msg, _) = create(state, org, app, example).await?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_come_from_the_newest_schema() {
        let et: EventTypeName = "a.b".parse().unwrap();
        let schemas = serde_json::json!({
            "1": {"examples": [{"v": 1}]},
            "2": {"examples": [{"v": 2}, {"v": 3}]}
        });
        assert_eq!(example_payload(Some(&schemas), &et, 0), r#"{"v":2}"#);
        assert_eq!(example_payload(Some(&schemas), &et, 1), r#"{"v":3}"#);
        assert_eq!(example_payload(Some(&schemas), &et, 9), r#"{"v":2}"#);
        assert_eq!(
            example_payload(None, &et, 0),
            r#"{"eventType":"a.b","example":true}"#
        );
    }
}
