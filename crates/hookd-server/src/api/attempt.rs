//! The attempt log: `/api/v1/app/{app_id}/attempt/...` and one attempt of a message.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use hookd_core::id::{AttemptId, EndpointId, MessageId};
use hookd_store::{AttemptFilter, AttemptTrigger, DeliveryStatus, MessageAttempt, Order};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::message::parse_event_types;
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiQuery;
use crate::pagination::{ListResponse, Pagination};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_by_msg))
        .routes(routes!(list_by_endpoint))
        .routes(routes!(get_attempt))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    #[schema(value_type = String, example = "atmpt_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: AttemptId,
    #[schema(value_type = String)]
    pub msg_id: MessageId,
    #[schema(value_type = String)]
    pub endpoint_id: EndpointId,
    pub url: String,
    /// The start (20 KB) of the receiver's answer, or why there was none.
    pub response: String,
    /// The receiver's HTTP status; 0 when no answer came.
    pub response_status_code: i32,
    pub response_duration_ms: i64,
    /// 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
    pub status: u8,
    pub status_text: &'static str,
    /// 0 scheduled, 1 manual.
    pub trigger_type: u8,
    pub timestamp: DateTime<Utc>,
}

impl From<MessageAttempt> for MessageAttemptOut {
    fn from(a: MessageAttempt) -> Self {
        Self {
            id: a.id,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            url: a.url,
            response: a.response.unwrap_or_default(),
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status: a.status as u8,
            status_text: a.status.text(),
            trigger_type: match a.trigger {
                AttemptTrigger::Scheduled => 0,
                AttemptTrigger::Manual => 1,
            },
            timestamp: a.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptQuery {
    /// 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
    status: Option<i64>,
    /// 0 (no answer), 100, 200, 300, 400 or 500.
    status_code_class: Option<u16>,
    /// Comma-separated event types.
    event_types: Option<String>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    /// Only attempts to this endpoint (listing by message).
    endpoint_id: Option<String>,
}

impl AttemptQuery {
    fn to_filter(&self) -> ApiResult<AttemptFilter> {
        let status = self
            .status
            .map(|s| {
                DeliveryStatus::from_code(s)
                    .ok_or_else(|| ApiError::invalid(&["query", "status"], "status must be 0 to 4"))
            })
            .transpose()?;
        let class = match self.status_code_class {
            None => None,
            Some(c @ (0 | 100 | 200 | 300 | 400 | 500)) => Some(c / 100),
            Some(_) => {
                return Err(ApiError::invalid(
                    &["query", "status_code_class"],
                    "status_code_class must be 0, 100, 200, 300, 400 or 500",
                ));
            }
        };
        Ok(AttemptFilter {
            status,
            status_code_class: class,
            event_types: parse_event_types(self.event_types.as_deref())?,
            before: self.before,
            after: self.after,
            ..Default::default()
        })
    }
}

/// Attempts made for a message, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), Pagination, AttemptQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_msg(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((app_key, msg)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(q): ApiQuery<AttemptQuery>,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let query = page.to_query(Order::Descending)?;
    let app = state.store.get_application(&tenant.org, &app_key).await?;
    let msg = state.store.get_message(&tenant.org, &app.id, &msg).await?;
    let mut filter = q.to_filter()?;
    filter.msg = Some(msg.id);
    if let Some(ep) = &q.endpoint_id {
        filter.endpoint = Some(state.store.get_endpoint(&tenant.org, &app.id, ep).await?.id);
    }
    let page = state
        .store
        .list_attempts(&tenant.org, &app.id, &query, &filter)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |a| a.id.to_string(),
        MessageAttemptOut::from,
    )))
}

/// Attempts made to an endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), Pagination, AttemptQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(q): ApiQuery<AttemptQuery>,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let query = page.to_query(Order::Descending)?;
    let app = state.store.get_application(&tenant.org, &app_key).await?;
    let ep = state.store.get_endpoint(&tenant.org, &app.id, &endpoint).await?;
    let mut filter = q.to_filter()?;
    filter.endpoint = Some(ep.id);
    let page = state
        .store
        .list_attempts(&tenant.org, &app.id, &query, &filter)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |a| a.id.to_string(),
        MessageAttemptOut::from,
    )))
}

/// One attempt of a message.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 200, body = MessageAttemptOut)))]
async fn get_attempt(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((app_key, msg, attempt)): Path<(String, String, String)>,
) -> ApiResult<Json<MessageAttemptOut>> {
    let app = state.store.get_application(&tenant.org, &app_key).await?;
    let msg = state.store.get_message(&tenant.org, &app.id, &msg).await?;
    let attempt: AttemptId = attempt.parse().map_err(|_| ApiError::not_found("attempt"))?;
    Ok(Json(
        state
            .store
            .get_attempt(&tenant.org, &app.id, &msg.id, &attempt)
            .await?
            .into(),
    ))
}
