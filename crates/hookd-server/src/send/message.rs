//! `/api/v1/app/{app_id}/msg`: sending messages, and reading them back.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, MessageId};
use hookd_core::name::{ChannelName, EventTypeName, MAX_TAGS, Tag, Uid};
use hookd_store::{Message, MessageFilter, Order};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::http::parse_field;
use crate::send::application::ApplicationIn;
use crate::service::{Service, application, message};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, create_message))
        .routes(routes!(get_message))
        .routes(routes!(expunge_message_content))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn {
    #[schema(example = "invoice.paid")]
    pub event_type: String,
    /// The JSON object to deliver, exactly as given.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    /// Your id for this event; a second message with the same one is refused (409).
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// Creates the application when the path names none.
    pub application: Option<ApplicationIn>,
    /// Days to keep the payload (1 to 90, default 90).
    pub payload_retention_period: Option<i64>,
    /// Hours to keep the payload (instead of days).
    pub payload_retention_hours: Option<i64>,
    /// `{"rawPayload": "..."}` delivers that string as the body, byte for byte, instead
    /// of `payload`.
    #[schema(value_type = Option<Object>)]
    pub transformations_params: Option<serde_json::Value>,
    /// Deliver at this time instead of now: at most 30 days ahead and before the
    /// payload's retention ends; a time up to 5 minutes past means now.
    pub deliver_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    #[schema(value_type = String, example = "msg_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: MessageId,
    #[schema(value_type = String)]
    pub event_type: EventTypeName,
    #[schema(value_type = Option<String>)]
    pub event_id: Option<Uid>,
    /// The payload; `{}` once expunged or when not asked for.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<BTreeSet<ChannelName>>,
    pub tags: Option<BTreeSet<String>>,
    pub timestamp: DateTime<Utc>,
    /// When the message's deliveries were scheduled for (`deliverAt`), if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_at: Option<DateTime<Utc>>,
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".into()).unwrap_or_else(|_| unreachable!())
}

impl MessageOut {
    pub fn new(m: Message, with_content: bool) -> Self {
        let payload = m
            .payload
            .filter(|_| with_content)
            .and_then(|p| RawValue::from_string(p).ok())
            .unwrap_or_else(empty_object);
        Self {
            id: m.id,
            event_type: m.event_type,
            event_id: m.event_id,
            payload,
            channels: m.channels,
            tags: (!m.tags.is_empty()).then_some(m.tags),
            timestamp: m.created_at,
            deliver_at: m.deliver_at,
        }
    }
}

fn retention(body: &MessageIn) -> ApiResult<chrono::Duration> {
    match (body.payload_retention_period, body.payload_retention_hours) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            &["body", "payloadRetentionHours"],
            "give payloadRetentionPeriod or payloadRetentionHours, not both",
        )),
        (Some(days), None) if !(1..=90).contains(&days) => Err(ApiError::invalid(
            &["body", "payloadRetentionPeriod"],
            "the retention period must be 1 to 90 days",
        )),
        (Some(days), None) => Ok(chrono::Duration::days(days)),
        (None, Some(hours)) if !(1..=90 * 24).contains(&hours) => Err(ApiError::invalid(
            &["body", "payloadRetentionHours"],
            "the retention must be 1 to 2160 hours",
        )),
        (None, Some(hours)) => Ok(chrono::Duration::hours(hours)),
        (None, None) => Ok(chrono::Duration::days(message::DEFAULT_RETENTION_DAYS)),
    }
}

/// How far in the past a `deliverAt` may be (clocks differ): it means now.
const DELIVER_AT_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// How far ahead a message may be scheduled.
pub const DELIVER_AT_MAX_AHEAD: chrono::Duration = chrono::Duration::days(30);

/// A checked `deliverAt`: `None` for "now" (absent, or within the skew in the past).
fn deliver_at(
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    retain_until: DateTime<Utc>,
) -> ApiResult<Option<DateTime<Utc>>> {
    let Some(at) = at else { return Ok(None) };
    let loc = &["body", "deliverAt"];
    if at < now - DELIVER_AT_SKEW {
        return Err(ApiError::invalid(loc, "deliverAt is in the past"));
    }
    if at > now + DELIVER_AT_MAX_AHEAD {
        return Err(ApiError::invalid(loc, "deliverAt may be at most 30 days ahead"));
    }
    if at >= retain_until {
        return Err(ApiError::invalid(
            loc,
            "deliverAt is after the payload's retention ends; keep the payload longer",
        ));
    }
    Ok((at > now).then_some(at))
}

fn parse_tags(tags: Option<Vec<String>>) -> ApiResult<BTreeSet<String>> {
    let tags = tags.unwrap_or_default();
    if tags.len() > MAX_TAGS {
        return Err(ApiError::invalid(
            &["body", "tags"],
            format!("at most {MAX_TAGS} tags"),
        ));
    }
    tags.iter()
        .map(|t| parse_field::<Tag>(t, "tags").map(String::from))
        .collect()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WithContent {
    /// Include the payload in the answer (default true).
    #[serde(default = "yes")]
    with_content: bool,
}

fn yes() -> bool {
    true
}

/// Send a message: it is stored, and every endpoint of the application that accepts
/// it gets a delivery, in one transaction. Answers 202 once that is committed.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = String, Path), WithContent), request_body = MessageIn,
    responses((status = 202, body = MessageOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_message(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_key): Path<String>,
    ApiQuery(q): ApiQuery<WithContent>,
    ApiJson(body): ApiJson<MessageIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let event_type: EventTypeName = parse_field(&body.event_type, "eventType")?;
    if !body.payload.get().trim_start().starts_with('{') {
        return Err(ApiError::invalid(
            &["body", "payload"],
            "the payload must be a JSON object",
        ));
    }
    let event_id: Option<Uid> = body
        .event_id
        .as_deref()
        .map(|e| parse_field(e, "eventId"))
        .transpose()?;
    let channels = hookd_core::name::channel_set(body.channels.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::invalid(&["body", "channels"], e.message))?;
    let retain = retention(&body)?;
    let raw = match body
        .transformations_params
        .as_ref()
        .and_then(|t| t.get("rawPayload"))
    {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(raw)) => Some(raw.clone()),
        Some(_) => {
            return Err(ApiError::invalid(
                &["body", "transformationsParams", "rawPayload"],
                "rawPayload must be a string",
            ));
        }
    };
    let tags = parse_tags(body.tags.clone())?;
    let now = Utc::now();
    let retain_until = now + retain;
    let deliver_at = deliver_at(body.deliver_at, now, retain_until)?;
    let app = resolve_or_create_app(&state, &tenant, &app_key, body.application).await?;
    let mut message = message::new_message(event_type, raw.unwrap_or_else(|| body.payload.get().to_owned()));
    message.event_id = event_id;
    message.channels = channels;
    message.tags = tags;
    message.retain_until = retain_until;
    message.deliver_at = deliver_at;
    let (msg, _) = message::accept(&state, &tenant.org, &app, message).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageOut::new(msg, q.with_content))))
}

/// The application of the path; created from `application` when it does not exist.
pub(crate) async fn resolve_or_create_app(
    state: &Service,
    tenant: &Tenant,
    key: &str,
    inline: Option<ApplicationIn>,
) -> ApiResult<ApplicationId> {
    match message::app_id(state, &tenant.org, key).await {
        Err(ApiError::NotFound(_)) => {
            let Some(inline) = inline else {
                return Err(ApiError::not_found("application"));
            };
            let mut data = inline.into_data()?;
            if data.uid.is_none() && !ApplicationId::is_valid(key) {
                data.uid = Some(parse_field(key, "application.uid")?);
            }
            match application::create(state, &tenant.org, data, false).await {
                Ok((app, _)) => Ok(app.id),
                // Created concurrently by another request: use it.
                Err(ApiError::Conflict(_)) => message::app_id(state, &tenant.org, key).await,
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListMessagesFilter {
    /// Only messages on this channel.
    channel: Option<String>,
    /// Only messages carrying this tag.
    tag: Option<String>,
    /// Only messages of these event types (comma-separated, or the parameter repeated).
    event_types: Option<String>,
    /// Only messages created before this time.
    before: Option<DateTime<Utc>>,
    /// Only messages created after this time.
    after: Option<DateTime<Utc>>,
    /// Include payloads (default true).
    #[serde(default = "yes")]
    with_content: bool,
}

/// A message filter from query parameters, each checked and named when invalid.
pub fn message_filter(
    event_types: Option<&str>,
    channel: Option<&str>,
    tag: Option<&str>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
) -> ApiResult<MessageFilter> {
    Ok(MessageFilter {
        event_types: parse_event_types(event_types)?,
        channel: parse_channel(channel)?,
        tag: parse_tag(tag)?,
        before,
        after,
    })
}

/// A list of event-type names from a body, each checked; `None` or empty: no filter.
pub fn parse_event_types_list(
    names: Option<&[String]>,
    loc: &[&str],
) -> ApiResult<Option<Vec<EventTypeName>>> {
    let Some(names) = names.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    names
        .iter()
        .map(|t| {
            t.parse()
                .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(loc, e.message))
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

/// The `channel` query parameter, checked.
pub fn parse_channel(channel: Option<&str>) -> ApiResult<Option<ChannelName>> {
    channel
        .map(|c| {
            c.parse()
                .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["query", "channel"], e.message))
        })
        .transpose()
}

/// The `tag` query parameter, checked as a message's tags are.
pub fn parse_tag(tag: Option<&str>) -> ApiResult<Option<String>> {
    tag.map(|t| {
        t.parse::<Tag>()
            .map(String::from)
            .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["query", "tag"], e.message))
    })
    .transpose()
}

/// Parses `event_types=a,b` (and repeated `event_types=` parameters, joined).
pub fn parse_event_types(raw: Option<&str>) -> ApiResult<Option<Vec<EventTypeName>>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    raw.split(',')
        .map(|t| {
            t.trim().parse().map_err(|e: hookd_core::InvalidValue| {
                ApiError::invalid(&["query", "event_types"], e.message)
            })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(Some)
}

/// List an application's messages, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = String, Path), Pagination, ListMessagesFilter),
    responses((status = 200, body = ListResponse<MessageOut>)))]
async fn list_messages(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_key): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(filter): ApiQuery<ListMessagesFilter>,
) -> ApiResult<Json<ListResponse<MessageOut>>> {
    let query = page.to_query(Order::Descending)?;
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let store_filter = message_filter(
        filter.event_types.as_deref(),
        filter.channel.as_deref(),
        filter.tag.as_deref(),
        filter.before,
        filter.after,
    )?;
    let page = state
        .store
        .list_messages(&tenant.org, &app, &query, &store_filter)
        .await?;
    let with = filter.with_content;
    Ok(Json(ListResponse::from_page(
        page,
        |m| m.id.to_string(),
        |m| MessageOut::new(m, with),
    )))
}

/// Get a message by id or event id.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}", tag = "Message",
    params(("app_id" = String, Path), ("msg_id" = String, Path), WithContent),
    responses((status = 200, body = MessageOut)))]
async fn get_message(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, msg)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<WithContent>,
) -> ApiResult<Json<MessageOut>> {
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let m = state.store.get_message(&tenant.org, &app, &msg).await?;
    Ok(Json(MessageOut::new(m, q.with_content)))
}

/// Delete a message's payload (the message and its attempt log stay); deliveries not
/// yet made are canceled.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/content", tag = "Message",
    params(("app_id" = String, Path), ("msg_id" = String, Path)), responses((status = 204)))]
async fn expunge_message_content(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, msg)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = state.store.get_application(&tenant.org, &app_key).await?.id;
    let m = state.store.get_message(&tenant.org, &app, &msg).await?;
    message::expunge_payload(&state, &tenant.org, &app, &m.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
