//! `/ingest/api/v1/source`: ingest sources (the Svix Ingest API) with hookd's
//! `options`, their URL tokens, the log of what they received, and replay.
//!
//! A source's secrets (its `config` and the secret parts of `options`) are write-only:
//! answers show `config` as the Svix `...ConfigOut` objects do (empty) and `options`
//! with secrets masked.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hookd_core::id::{EndpointId, IngestLogId, SourceId};
use hookd_core::ingest::{SourceKind, SourceOptions};
use hookd_core::name::Uid;
use hookd_store::{
    ForwardedRequest, IngestLogFilter, IngestRequest, IngestStatus, ListQuery, NewMessage, Order, Source,
    SourceData, StoreError,
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Created, check_metadata, upsert};
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiJsonOrDefault, ApiQuery, double_option};
use crate::pagination::{ListResponse, Pagination};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, upsert_source, patch_source, delete_source))
        .routes(routes!(rotate_token))
        .routes(routes!(list_log))
        .routes(routes!(get_log_entry))
        .routes(routes!(get_log_raw))
        .routes(routes!(replay_one))
        .routes(routes!(replay_range))
}

/// Most log entries replayed by one `POST .../replay` call.
const MAX_REPLAY: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceIn {
    pub name: String,
    /// `^(?!src_)[a-zA-Z0-9_-]+$`, at most 60 characters.
    pub uid: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// The preset: `generic-webhook`, `github`, `stripe`, `shopify`, `slack`, `svix`
    /// (and the other Standard Webhooks senders), `twilio`, `zoom`, `paddle`,
    /// `linear`, `square`, `cron`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The preset's settings, e.g. `{"secret": "..."}`.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// hookd's own checks and behaviours (see docs/ingest.md).
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcePatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// With `config`: changes the preset (e.g. a new provider secret).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Replaces the options; `null` removes them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<Option<Value>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceOut {
    #[schema(value_type = String, example = "src_2yZwUhtgs5Ai8T9yRQJXA")]
    pub id: SourceId,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub name: String,
    /// Where the sender posts: `HOOKD_PUBLIC_URL` + `/in/{token}`.
    pub ingest_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<SourceOptions>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateTokenOut {
    pub ingest_url: String,
}

/// The kind and options a stored source was created with.
pub fn source_spec(source: &Source) -> ApiResult<(SourceKind, SourceOptions)> {
    let kind = SourceKind::parse(&source.data.kind, Some(&source.data.config)).map_err(|e| {
        tracing::error!(source = %source.id, error = ?e, "a stored source has an unreadable config");
        ApiError::Internal
    })?;
    let options = match &source.data.options {
        Value::Null => SourceOptions::default(),
        v => serde_json::from_value(v.clone()).map_err(|e| {
            tracing::error!(source = %source.id, error = %e, "a stored source has unreadable options");
            ApiError::Internal
        })?,
    };
    Ok((kind, options))
}

pub fn ingest_url(state: &AppState, token: &str) -> String {
    format!("{}/in/{token}", state.config.public_url())
}

fn source_out(state: &AppState, source: Source) -> ApiResult<SourceOut> {
    let (kind, options) = source_spec(&source)?;
    Ok(SourceOut {
        ingest_url: ingest_url(state, &source.token),
        id: source.id,
        uid: source.data.uid,
        name: source.data.name,
        created_at: source.created_at,
        updated_at: source.updated_at,
        metadata: source.data.metadata,
        kind: source.data.kind,
        config: kind.config_out(),
        options: (options != SourceOptions::default()).then(|| options.redacted()),
    })
}

/// A new URL token: 24 random bytes, URL-safe base64.
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn parse_uid(uid: &str) -> ApiResult<Uid> {
    let bad = |m: &str| ApiError::invalid(&["body", "uid"], m);
    if uid.len() > 60 {
        return Err(bad("the uid must be at most 60 characters"));
    }
    if uid.starts_with("src_") {
        return Err(bad("the uid must not start with `src_` (ids do)"));
    }
    if uid.is_empty()
        || !uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad("the uid may hold letters, digits, `-` and `_`"));
    }
    crate::api::parse_field(uid, "uid")
}

fn check_name(name: &str) -> ApiResult<()> {
    if !(2..=256).contains(&name.chars().count()) {
        return Err(ApiError::invalid(
            &["body", "name"],
            "the name must be 2 to 256 characters",
        ));
    }
    Ok(())
}

fn parse_kind(kind: &str, config: Option<&Value>) -> ApiResult<SourceKind> {
    SourceKind::parse(kind, config).map_err(|e| {
        let mut loc = vec!["body"];
        loc.extend(e.loc.iter().map(String::as_str));
        ApiError::invalid(&loc, e.message)
    })
}

fn parse_options(options: Option<Value>) -> ApiResult<Value> {
    let Some(options) = options.filter(|o| !o.is_null()) else {
        return Ok(Value::Null);
    };
    let mut parsed: SourceOptions = serde_path_to_error::deserialize(options).map_err(|e| {
        let path = e.path().to_string();
        let mut loc = vec!["body", "options"];
        if path != "." {
            loc.push(&path);
        }
        ApiError::invalid(&loc, e.inner().to_string())
    })?;
    parsed
        .validate()
        .map_err(|(field, e)| ApiError::invalid(&["body", "options", &field], e.message))?;
    Ok(serde_json::to_value(&parsed).unwrap_or(Value::Null))
}

impl SourceIn {
    fn into_data(self) -> ApiResult<SourceData> {
        check_name(&self.name)?;
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let kind = parse_kind(&self.kind, self.config.as_ref())?;
        Ok(SourceData {
            uid: self.uid.as_deref().map(parse_uid).transpose()?,
            name: self.name,
            kind: kind.type_name().to_owned(),
            config: kind.config_json(),
            options: parse_options(self.options)?,
            metadata,
        })
    }
}

/// List the organisation's sources.
#[utoipa::path(get, path = "/ingest/api/v1/source", tag = "Ingest Source", params(Pagination),
    responses((status = 200, body = ListResponse<SourceOut>)))]
async fn list_sources(
    tenant: Tenant,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<SourceOut>>> {
    let page = state
        .store
        .list_sources(&tenant.org, &page.to_query(Order::Ascending)?)
        .await?;
    let iterator = page.items.last().map(|s| s.id.to_string());
    let prev_iterator = page.items.first().map(|s| format!("-{}", s.id));
    let data = page
        .items
        .into_iter()
        .map(|s| source_out(&state, s))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ListResponse {
        data,
        iterator,
        prev_iterator,
        done: !page.has_more,
    }))
}

/// Create a source; its `ingestUrl` is where the sender posts.
#[utoipa::path(post, path = "/ingest/api/v1/source", tag = "Ingest Source", request_body = SourceIn,
    responses((status = 201, body = SourceOut), (status = 409, body = crate::error::HttpErrorOut),
        (status = 422, body = crate::error::ValidationErrorOut)))]
async fn create_source(
    tenant: Tenant,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SourceIn>,
) -> ApiResult<Created<SourceOut>> {
    let data = body.into_data()?;
    let source = state.store.create_source(&tenant.org, data, new_token()).await?;
    state.wake_cron();
    Ok(Created::new(source_out(&state, source)?))
}

/// Get a source by id or uid.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 200, body = SourceOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_source(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
) -> ApiResult<Json<SourceOut>> {
    let source = state.store.get_source(&tenant.org, &source_id).await?;
    Ok(Json(source_out(&state, source)?))
}

/// Create or replace a source (a uid-shaped key names a new one).
#[utoipa::path(put, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")), request_body = SourceIn,
    responses((status = 200, body = SourceOut), (status = 201, body = SourceOut)))]
async fn upsert_source(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    ApiJson(body): ApiJson<SourceIn>,
) -> ApiResult<Created<SourceOut>> {
    let data = body.into_data()?;
    let store = &state.store;
    let org = &tenant.org;
    let mut create_data = data.clone();
    if create_data.uid.is_none() && !SourceId::is_valid(&source_id) {
        create_data.uid = Some(parse_uid(&source_id)?);
    }
    let (source, created) = upsert(
        || {
            let d = data.clone();
            store.update_source(
                org,
                &source_id,
                Box::new(move |cur: &mut SourceData| {
                    let uid = d.uid.clone().or_else(|| cur.uid.take());
                    *cur = SourceData { uid, ..d };
                    Ok(())
                }),
            )
        },
        || async {
            if SourceId::is_valid(&source_id) {
                return Err(StoreError::NotFound("source"));
            }
            store.create_source(org, create_data, new_token()).await
        },
    )
    .await?;
    state.wake_cron();
    Ok(Created::new_if(created, source_out(&state, source)?))
}

/// Change some fields of a source.
#[utoipa::path(patch, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")), request_body = SourcePatch,
    responses((status = 200, body = SourceOut)))]
async fn patch_source(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    ApiJson(patch): ApiJson<SourcePatch>,
) -> ApiResult<Json<SourceOut>> {
    if let Some(name) = &patch.name {
        check_name(name)?;
    }
    if let Some(m) = &patch.metadata {
        check_metadata(m)?;
    }
    let uid = match patch.uid {
        Some(Some(u)) => Some(Some(parse_uid(&u)?)),
        Some(None) => Some(None),
        None => None,
    };
    let current = state.store.get_source(&tenant.org, &source_id).await?;
    // A new config without a type keeps the type; a new type needs its config.
    let kind = match (&patch.kind, &patch.config) {
        (None, None) => None,
        (kind, config) => {
            let kind = kind.as_deref().unwrap_or(&current.data.kind);
            Some(parse_kind(kind, config.as_ref())?)
        }
    };
    let options = patch.options.map(parse_options).transpose()?;
    let source = state
        .store
        .update_source(
            &tenant.org,
            current.id.as_str(),
            Box::new(move |d| {
                if let Some(name) = patch.name {
                    d.name = name;
                }
                if let Some(uid) = uid {
                    d.uid = uid;
                }
                if let Some(m) = patch.metadata {
                    d.metadata = m;
                }
                if let Some(kind) = kind {
                    d.kind = kind.type_name().to_owned();
                    d.config = kind.config_json();
                }
                if let Some(options) = options {
                    d.options = options;
                }
                Ok(())
            }),
        )
        .await?;
    state.wake_cron();
    Ok(Json(source_out(&state, source)?))
}

/// Delete a source with its destinations and log.
#[utoipa::path(delete, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 204), (status = 404, body = crate::error::HttpErrorOut)))]
async fn delete_source(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_source(&tenant.org, &source_id).await?;
    state.wake_cron();
    Ok(StatusCode::NO_CONTENT)
}

/// Give the source a new URL. The old one keeps working for `ingest_token_grace`
/// (default 24 h), then answers 404.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/token/rotate", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 200, body = RotateTokenOut)))]
async fn rotate_token(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
) -> ApiResult<Json<RotateTokenOut>> {
    let grace = crate::config::span(state.config.ingest_token_grace);
    let source = state
        .store
        .rotate_source_token(&tenant.org, &source_id, new_token(), Utc::now() + grace)
        .await?;
    Ok(Json(RotateTokenOut {
        ingest_url: ingest_url(&state, &source.token),
    }))
}

// ---------------------------------------------------------------------------------
// The log.

/// One received request. The Svix fields (`status_code`, `error_text`, `headers`,
/// `payload`, ...) plus hookd's: what became of it, the request line, the client, the
/// message that forwarded it, and the exact body in base64.
#[derive(Debug, Serialize, ToSchema)]
pub struct IngestLogOut {
    #[schema(value_type = String, example = "log2yZwUhtgs5Ai8T9yRQJXA")]
    pub id: IngestLogId,
    #[schema(value_type = String)]
    pub source_id: SourceId,
    /// What hookd answered.
    pub status_code: u16,
    /// Why it was rejected (or a note); empty when accepted.
    pub error_text: String,
    /// The received headers; repeated ones joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The body as text (invalid UTF-8 replaced); `payload_base64` has the exact bytes.
    pub payload: String,
    pub payload_base64: String,
    /// `accepted`, `rejected` or `duplicate`.
    pub status: &'static str,
    pub method: String,
    /// The path after the source URL (`/` for the URL itself).
    pub path: String,
    pub query: String,
    pub client_addr: Option<String>,
    /// The message that forwards it to the destinations.
    #[schema(value_type = Option<String>)]
    pub msg_id: Option<hookd_core::id::MessageId>,
    #[schema(value_type = Option<String>)]
    pub duplicate_of: Option<IngestLogId>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<IngestRequest> for IngestLogOut {
    fn from(r: IngestRequest) -> Self {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in r.headers {
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        Self {
            id: r.id,
            source_id: r.source_id,
            status_code: r.response_status,
            error_text: r.reason.unwrap_or_default(),
            headers,
            payload: String::from_utf8_lossy(&r.body).into_owned(),
            payload_base64: base64::engine::general_purpose::STANDARD.encode(&r.body),
            status: r.status.text(),
            method: r.method,
            path: r.path,
            query: r.query,
            client_addr: r.client_addr,
            msg_id: r.msg_id,
            duplicate_of: r.duplicate_of,
            created_at: r.received_at,
            updated_at: r.received_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// `accepted`, `rejected` or `duplicate`.
    status: Option<String>,
    /// Only requests received before this time.
    before: Option<DateTime<Utc>>,
    /// Only requests received after this time.
    after: Option<DateTime<Utc>>,
}

fn parse_status(s: &str) -> ApiResult<IngestStatus> {
    [
        IngestStatus::Accepted,
        IngestStatus::Rejected,
        IngestStatus::Duplicate,
    ]
    .into_iter()
    .find(|st| st.text() == s)
    .ok_or_else(|| ApiError::invalid(&["query", "status"], "one of accepted, rejected, duplicate"))
}

/// The requests a source received, newest first.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/log", tag = "Ingest Source",
    params(("source_id" = String, Path), Pagination, LogFilter),
    responses((status = 200, body = ListResponse<IngestLogOut>)))]
async fn list_log(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(filter): ApiQuery<LogFilter>,
) -> ApiResult<Json<ListResponse<IngestLogOut>>> {
    let source = state.store.get_source(&tenant.org, &source_id).await?;
    let filter = IngestLogFilter {
        status: filter.status.as_deref().map(parse_status).transpose()?,
        before: filter.before,
        after: filter.after,
    };
    let page = state
        .store
        .list_ingest_log(
            &tenant.org,
            &source.id,
            &page.to_query(Order::Descending)?,
            &filter,
        )
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |r| r.id.to_string(),
        IngestLogOut::from,
    )))
}

async fn log_entry(
    state: &AppState,
    tenant: &Tenant,
    source_id: &str,
    log_id: &str,
) -> ApiResult<(Source, IngestRequest)> {
    let source = state.store.get_source(&tenant.org, source_id).await?;
    let id: IngestLogId = log_id
        .parse()
        .map_err(|_| ApiError::not_found("ingest log entry"))?;
    let entry = state
        .store
        .get_ingest_request(&tenant.org, &source.id, &id)
        .await?;
    Ok((source, entry))
}

/// One received request, in full.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/log/{log_id}", tag = "Ingest Source",
    params(("source_id" = String, Path), ("log_id" = String, Path)),
    responses((status = 200, body = IngestLogOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_log_entry(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((source_id, log_id)): Path<(String, String)>,
) -> ApiResult<Json<IngestLogOut>> {
    let (_, entry) = log_entry(&state, &tenant, &source_id, &log_id).await?;
    Ok(Json(entry.into()))
}

/// The exact body of a received request, with its original content type.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/log/{log_id}/raw", tag = "Ingest Source",
    params(("source_id" = String, Path), ("log_id" = String, Path)),
    responses((status = 200, description = "the body as received")))]
async fn get_log_raw(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((source_id, log_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (_, entry) = log_entry(&state, &tenant, &source_id, &log_id).await?;
    let content_type = entry
        .headers
        .iter()
        .find(|(n, _)| n == "content-type")
        .and_then(|(_, v)| HeaderValue::from_str(v).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok(([(header::CONTENT_TYPE, content_type)], entry.body).into_response())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayIn {
    /// Only to this destination (id or uid); every enabled one when absent.
    pub endpoint_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayRangeIn {
    /// Requests received at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now).
    pub until: Option<DateTime<Utc>>,
    pub endpoint_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayOut {
    /// The new messages forwarding the requests again.
    #[schema(value_type = Vec<String>)]
    pub msg_ids: Vec<hookd_core::id::MessageId>,
    /// Deliveries created.
    pub deliveries: usize,
    /// False when more than the per-call limit matched: call again with `since` set to
    /// `nextSince`.
    pub done: bool,
    pub next_since: Option<DateTime<Utc>>,
}

/// Forwards one logged request again, as a new message (new `webhook-id`, same body
/// and headers). `spec` is the source's, read once per replay call.
async fn replay_entry(
    state: &AppState,
    tenant: &Tenant,
    source: &Source,
    (kind, options): &(SourceKind, SourceOptions),
    entry: &IngestRequest,
    only: Option<&EndpointId>,
) -> ApiResult<(hookd_core::id::MessageId, usize)> {
    let message = NewMessage {
        event_type: crate::ingest::event_type(kind),
        event_id: None,
        channels: None,
        tags: Default::default(),
        payload: String::new(),
        retain_until: crate::ingest::retain_until(state.config.ingest_retention, Utc::now()),
        only_endpoint: only.cloned(),
        forward: Some(ForwardedRequest {
            log_id: entry.id.clone(),
            headers: hookd_core::ingest::forward_headers(&entry.headers, options),
        }),
    };
    let (msg, n) = state
        .store
        .create_message(&tenant.org, &source.app_id, message)
        .await?;
    Ok((msg.id, n))
}

async fn replay_target(
    state: &AppState,
    tenant: &Tenant,
    source: &Source,
    key: Option<&str>,
) -> ApiResult<Option<EndpointId>> {
    Ok(match key {
        Some(key) => Some(
            state
                .store
                .get_endpoint(&tenant.org, &source.app_id, key)
                .await?
                .id,
        ),
        None => None,
    })
}

/// Forward one logged request again to one or every destination.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/log/{log_id}/replay", tag = "Ingest Source",
    params(("source_id" = String, Path), ("log_id" = String, Path)), request_body = ReplayIn,
    responses((status = 202, body = ReplayOut), (status = 409, body = crate::error::HttpErrorOut)))]
async fn replay_one(
    tenant: Tenant,
    State(state): State<AppState>,
    Path((source_id, log_id)): Path<(String, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ReplayIn>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let (source, entry) = log_entry(&state, &tenant, &source_id, &log_id).await?;
    if entry.status == IngestStatus::Rejected {
        return Err(ApiError::Conflict("a rejected request is never forwarded".into()));
    }
    let only = replay_target(&state, &tenant, &source, body.endpoint_id.as_deref()).await?;
    let spec = source_spec(&source)?;
    let (msg_id, deliveries) = replay_entry(&state, &tenant, &source, &spec, &entry, only.as_ref()).await?;
    state.wake_dispatcher();
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayOut {
            msg_ids: vec![msg_id],
            deliveries,
            done: true,
            next_since: None,
        }),
    ))
}

/// Forward again every accepted request received in a time range (oldest first, at
/// most 10,000 per call).
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/replay", tag = "Ingest Source",
    params(("source_id" = String, Path)), request_body = ReplayRangeIn,
    responses((status = 202, body = ReplayOut)))]
async fn replay_range(
    tenant: Tenant,
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    ApiJson(body): ApiJson<ReplayRangeIn>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let source = state.store.get_source(&tenant.org, &source_id).await?;
    let only = replay_target(&state, &tenant, &source, body.endpoint_id.as_deref()).await?;
    let spec = source_spec(&source)?;
    let filter = IngestLogFilter {
        status: Some(IngestStatus::Accepted),
        before: Some(body.until.unwrap_or_else(Utc::now)),
        after: Some(body.since - chrono::Duration::milliseconds(1)),
    };
    let mut out = ReplayOut {
        msg_ids: Vec::new(),
        deliveries: 0,
        done: true,
        next_since: None,
    };
    let mut query = ListQuery {
        limit: 250,
        cursor: None,
        order: Order::Ascending,
    };
    loop {
        let page = state
            .store
            .list_ingest_log(&tenant.org, &source.id, &query, &filter)
            .await?;
        for entry in &page.items {
            if out.msg_ids.len() >= MAX_REPLAY {
                out.done = false;
                out.next_since = Some(entry.received_at);
                break;
            }
            let (msg, n) = replay_entry(&state, &tenant, &source, &spec, entry, only.as_ref()).await?;
            out.msg_ids.push(msg);
            out.deliveries += n;
        }
        if !out.done || !page.has_more {
            break;
        }
        query.cursor = page.items.last().map(|e| hookd_store::Cursor {
            key: e.id.to_string(),
            backward: false,
        });
    }
    if out.deliveries > 0 {
        state.wake_dispatcher();
    }
    Ok((StatusCode::ACCEPTED, Json(out)))
}
