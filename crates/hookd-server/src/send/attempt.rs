//! The attempt log: `/api/v1/app/{app_id}/attempt/...` and one attempt of a message.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::ApplicationId;
use hookd_core::id::{AttemptId, EndpointId, MessageId};
use std::collections::{HashMap, HashSet};

use hookd_core::id::OrgId;
use hookd_store::{
    AttemptFilter, AttemptTrigger, DeliveryState, DeliveryStatus, EndpointStats, Message, MessageAttempt,
    Order, Page,
};

use crate::send::message::MessageOut;
use crate::service::endpoint::EndpointOut;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::ApiQuery;
use crate::http::pagination::{ListResponse, Pagination};
use crate::send::message::{message_filter, parse_channel, parse_event_types, parse_tag};
use crate::service::{Service, message};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_by_msg))
        .routes(routes!(list_by_endpoint))
        .routes(routes!(get_attempt))
        .routes(routes!(expunge_attempt_content))
        .routes(routes!(list_destinations))
        .routes(routes!(list_endpoint_messages))
        .routes(routes!(endpoint_stats))
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
    /// hookd: the endpoint's transformation ran first (what was sent is its result);
    /// absent when none ran.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub transformed: bool,
    /// The message (without its payload), when asked for with `with_msg=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<MessageOut>,
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
            transformed: a.transformed,
            msg: None,
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
    /// Only attempts of messages on this channel.
    channel: Option<String>,
    /// Only attempts of messages carrying this tag.
    tag: Option<String>,
    /// Include each attempt's recorded response (default true); `false` answers it as
    /// `""`.
    with_content: Option<bool>,
    /// Include each attempt's message, without its payload, as `msg` (default false).
    #[serde(default)]
    with_msg: bool,
    /// Answer attempts a transformation canceled with status 4 (canceled); without it
    /// they answer 0 (success), as Svix does for older clients.
    #[serde(default)]
    expanded_statuses: bool,
}

/// The `status` query parameter: 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
fn parse_status(status: Option<i64>) -> ApiResult<Option<DeliveryStatus>> {
    status
        .map(|s| {
            DeliveryStatus::from_code(s)
                .ok_or_else(|| ApiError::invalid(&["query", "status"], "status must be 0 to 4"))
        })
        .transpose()
}

impl AttemptQuery {
    fn to_filter(&self) -> ApiResult<AttemptFilter> {
        let status = parse_status(self.status)?;
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
            channel: parse_channel(self.channel.as_deref())?,
            tag: parse_tag(self.tag.as_deref())?,
            before: self.before,
            after: self.after,
            ..Default::default()
        })
    }

    /// A page of attempts as answered: responses kept or blanked, canceled statuses
    /// expanded or not, each attempt's message added when asked for (one read for
    /// the page).
    async fn answer(
        &self,
        state: &Service,
        org: &OrgId,
        app: &ApplicationId,
        page: Page<MessageAttempt>,
    ) -> ApiResult<ListResponse<MessageAttemptOut>> {
        let messages: HashMap<MessageId, Message> = if self.with_msg {
            let ids: Vec<MessageId> = page
                .items
                .iter()
                .map(|a| a.msg_id.clone())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            state
                .store
                .get_messages(org, app, &ids)
                .await?
                .into_iter()
                .map(|m| (m.id.clone(), m))
                .collect()
        } else {
            HashMap::new()
        };
        let with_content = self.with_content.unwrap_or(true);
        Ok(ListResponse::from_page(
            page,
            |a| a.id.to_string(),
            |a| {
                let mut out = MessageAttemptOut::from(a);
                if !with_content {
                    out.response = String::new();
                }
                if !self.expanded_statuses && out.status == DeliveryStatus::Canceled as u8 {
                    out.status = DeliveryStatus::Success as u8;
                    out.status_text = DeliveryStatus::Success.text();
                }
                out.msg = messages
                    .get(&out.msg_id)
                    .map(|m| MessageOut::new(m.clone(), false));
                out
            },
        ))
    }
}

/// Attempts made for a message, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), Pagination, AttemptQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_msg(
    tenant: Tenant,
    State(state): State<Service>,
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
    Ok(Json(q.answer(&state, &tenant.org, &app.id, page).await?))
}

/// Attempts made to an endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), Pagination, AttemptQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_by_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
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
    Ok(Json(q.answer(&state, &tenant.org, &app.id, page).await?))
}

/// One attempt of a message.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 200, body = MessageAttemptOut)))]
async fn get_attempt(
    tenant: Tenant,
    State(state): State<Service>,
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

/// Resolves the application and message of the path, scoped to the caller.
async fn app_and_msg(
    state: &Service,
    tenant: &Tenant,
    app: &str,
    msg: &str,
) -> ApiResult<(ApplicationId, MessageId)> {
    let app = state.store.get_application(&tenant.org, app).await?.id;
    let msg = state.store.get_message(&tenant.org, &app, msg).await?.id;
    Ok((app, msg))
}

/// Remove an attempt's recorded response.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 204)))]
async fn expunge_attempt_content(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, msg, attempt)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (app, msg) = app_and_msg(&state, &tenant, &app_key, &msg).await?;
    let attempt: AttemptId = attempt.parse().map_err(|_| ApiError::not_found("attempt"))?;
    message::expunge_attempt(&state, &tenant.org, &app, &msg, &attempt).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint a message goes to, with where its delivery stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    pub status: u8,
    pub status_text: &'static str,
    pub next_attempt: Option<DateTime<Utc>>,
}

/// A message sent to an endpoint, with where its delivery stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut {
    #[serde(flatten)]
    pub message: MessageOut,
    pub status: u8,
    pub status_text: &'static str,
    pub next_attempt: Option<DateTime<Utc>>,
}

fn status_parts(s: DeliveryState) -> (u8, &'static str, Option<DateTime<Utc>>) {
    (s.status as u8, s.status.text(), s.next_attempt)
}

/// The endpoints a message was sent (or is being sent) to.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), Pagination),
    responses((status = 200, body = ListResponse<MessageEndpointOut>)))]
async fn list_destinations(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, msg)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<MessageEndpointOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let (app, msg) = app_and_msg(&state, &tenant, &app_key, &msg).await?;
    let page = state
        .store
        .list_message_destinations(&tenant.org, &app, &msg, &query)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |(e, _)| e.id.to_string(),
        |(e, s)| {
            let (status, status_text, next_attempt) = status_parts(s);
            MessageEndpointOut {
                endpoint: e.into(),
                status,
                status_text,
                next_attempt,
            }
        },
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointMessagesQuery {
    /// Only deliveries with this status (0 success, 1 pending, 2 fail, 4 canceled).
    status: Option<i64>,
    channel: Option<String>,
    /// Only messages carrying this tag.
    tag: Option<String>,
    /// Comma-separated event types.
    event_types: Option<String>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    /// Include payloads (default true).
    with_content: Option<bool>,
}

/// The messages sent (or being sent) to an endpoint, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg", tag = "Message Attempt",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), Pagination, EndpointMessagesQuery),
    responses((status = 200, body = ListResponse<EndpointMessageOut>)))]
async fn list_endpoint_messages(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(q): ApiQuery<EndpointMessagesQuery>,
) -> ApiResult<Json<ListResponse<EndpointMessageOut>>> {
    let query = page.to_query(Order::Descending)?;
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?.id;
    let status = parse_status(q.status)?;
    let filter = message_filter(
        q.event_types.as_deref(),
        q.channel.as_deref(),
        q.tag.as_deref(),
        q.before,
        q.after,
    )?;
    let with = q.with_content.unwrap_or(true);
    let page = state
        .store
        .list_endpoint_messages(&tenant.org, &app, &ep, &query, &filter, status)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |(m, _)| m.id.to_string(),
        |(m, s)| {
            let (status, status_text, next_attempt) = status_parts(s);
            EndpointMessageOut {
                message: MessageOut::new(m, with),
                status,
                status_text,
                next_attempt,
            }
        },
    )))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count messages created at or after this time.
    since: Option<DateTime<Utc>>,
    /// Count messages created before this time.
    until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointStatsOut {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

impl From<EndpointStats> for EndpointStatsOut {
    fn from(s: EndpointStats) -> Self {
        Self {
            success: s.success,
            pending: s.pending,
            sending: s.sending,
            fail: s.fail,
            canceled: s.canceled,
        }
    }
}

/// Deliveries to an endpoint by status.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), StatsQuery),
    responses((status = 200, body = EndpointStatsOut)))]
async fn endpoint_stats(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<EndpointStatsOut>> {
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?.id;
    Ok(Json(
        state
            .store
            .endpoint_stats(&tenant.org, &app, &ep, q.since, q.until)
            .await?
            .into(),
    ))
}
