//! Sending again: one message to one endpoint (`resend`), everything that failed since
//! a time (`recover`), and an example event (`send-example`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::TaskId;
use hookd_core::name::EventTypeName;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiJson;
use crate::http::parse_field;
use crate::send::message::MessageOut;
use crate::service::{Service, jobs, message};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(resend))
        .routes(routes!(recover))
        .routes(routes!(send_example))
}

/// Send a message to an endpoint again now (a manual attempt, whatever the endpoint's
/// filters and the message's past attempts).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 202, description = "queued")))]
async fn resend(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, msg, endpoint)): Path<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let msg = state.store.get_message(&tenant.org, &app, &msg).await?.id;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?.id;
    message::resend(&state, &tenant.org, &app, &msg, &ep).await?;
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverIn {
    /// Requeue failed deliveries of messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now).
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOut {
    #[schema(value_type = String)]
    pub id: TaskId,
    /// `running`: the requeueing continues in the background.
    pub status: &'static str,
    pub task: &'static str,
    pub updated_at: DateTime<Utc>,
}

/// Requeue every delivery to this endpoint that failed (exhausted its retries), of
/// messages created since `since`. Runs in the background; answers at once.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = RecoverIn,
    responses((status = 202, body = RecoverOut)))]
async fn recover(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    if body.until.is_some_and(|u| u <= body.since) {
        return Err(ApiError::invalid(&["body", "until"], "until must be after since"));
    }
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?.id;
    let task = jobs::recover(&state, &tenant.org, &app, &ep, body.since, body.until).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RecoverOut {
            id: task,
            status: "running",
            task: "endpoint.recover",
            updated_at: Utc::now(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
    /// Which of the schema's `examples` to send (default the first).
    #[serde(default)]
    pub example_index: usize,
    /// A payload to send instead of the schema's example.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Box<serde_json::value::RawValue>>,
}

/// Send an example of an event type to this endpoint only.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EventExampleIn,
    responses((status = 202, body = MessageOut)))]
async fn send_example(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EventExampleIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let event_type: EventTypeName = parse_field(&body.event_type, "eventType")?;
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?.id;
    let payload = body.payload.map(|p| p.get().to_owned());
    let msg = message::send_example(
        &state,
        &tenant.org,
        &app,
        &ep,
        event_type,
        body.example_index,
        payload,
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(MessageOut::new(msg, true))))
}
