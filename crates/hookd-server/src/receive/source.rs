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
use hookd_core::id::{IngestLogId, SourceId};
use hookd_core::ingest::{SourceKind, SourceOptions};
use hookd_core::name::SourceUid;
use hookd_store::{IngestLogFilter, IngestRequest, IngestStatus, Order, Source, SourceData};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiJsonOrDefault, ApiQuery, double_option};
use crate::http::pagination::{ListResponse, Pagination};
use crate::http::{Created, check_metadata};
use crate::service::Service;
use crate::service::source::{self, Keep, SourceChange, ingest_url, parse_kind};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_sources, create_source))
        .routes(routes!(get_source, upsert_source, patch_source, delete_source))
        .routes(routes!(rotate_token))
        .routes(routes!(list_log))
        .routes(routes!(get_log_entry))
        .routes(routes!(get_log_raw))
        .routes(routes!(list_log_attempts))
        .routes(routes!(replay_one))
        .routes(routes!(replay_range))
}

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
    /// hookd's own checks and behaviours (see docs/ingest.md), and `verify`: a
    /// hookd-only preset (`{"type": "twilio", "config": {...}}`) with `type`
    /// `generic-webhook`. Absent on PUT: the source keeps its options (the SDKs cannot
    /// send them); `null` removes them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<Option<Value>>,
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
    pub uid: Option<SourceUid>,
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
    /// hookd's options, secrets masked, with `verify` (the preset) for the hookd-only
    /// types answered as `generic-webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub options: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateTokenOut {
    pub ingest_url: String,
}

/// A source as answered. The official SDKs refuse types they do not know, so a
/// hookd-only preset answers as `generic-webhook` with the preset (its type and public
/// config) under `options.verify`.
fn source_out(state: &Service, source: Source) -> ApiResult<SourceOut> {
    let (kind, options) = (&source.data.kind, &source.data.options);
    let mut shown = if *options == SourceOptions::default() {
        None
    } else {
        match serde_json::to_value(options.redacted()) {
            Ok(Value::Object(map)) => Some(map),
            _ => return Err(ApiError::Internal),
        }
    };
    let (type_name, config) = if kind.is_hookd_only() {
        let mut verify = serde_json::Map::new();
        verify.insert("type".into(), kind.type_name().into());
        verify.insert("config".into(), kind.config_out().unwrap_or_else(|| json!({})));
        shown
            .get_or_insert_with(Default::default)
            .insert("verify".into(), Value::Object(verify));
        (GENERIC, None)
    } else {
        (kind.type_name(), kind.config_out())
    };
    Ok(SourceOut {
        ingest_url: ingest_url(state, &source.token),
        id: source.id,
        uid: source.data.uid,
        name: source.data.name,
        created_at: source.created_at,
        updated_at: source.updated_at,
        metadata: source.data.metadata,
        kind: type_name.to_owned(),
        config,
        options: shown.map(Value::Object),
    })
}

fn parse_uid(uid: &str) -> ApiResult<SourceUid> {
    crate::http::parse_field(uid, "uid")
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

/// The `type` the hookd-only presets answer as.
const GENERIC: &str = "generic-webhook";

/// A hookd-only preset given as `options.verify`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Verify {
    #[serde(rename = "type")]
    kind: String,
    config: Option<Value>,
}

/// Takes `verify` out of an `options` object: the options left, and the preset it
/// names, checked to be a hookd-only one.
fn split_verify(options: Option<Value>) -> ApiResult<(Option<Value>, Option<Verify>)> {
    let Some(Value::Object(mut map)) = options else {
        return Ok((options, None));
    };
    let Some(verify) = map.remove("verify") else {
        return Ok((Some(Value::Object(map)), None));
    };
    let verify: Verify = serde_path_to_error::deserialize(verify).map_err(|e| {
        let path = e.path().to_string();
        let mut loc = vec!["body", "options", "verify"];
        if path != "." {
            loc.push(&path);
        }
        ApiError::invalid(&loc, e.inner().to_string())
    })?;
    if !hookd_core::ingest::HOOKD_ONLY_TYPES.contains(&verify.kind.as_str()) {
        return Err(ApiError::invalid(
            &["body", "options", "verify", "type"],
            format!(
                "options.verify names a hookd-only preset ({}); give Svix's types as `type`",
                hookd_core::ingest::HOOKD_ONLY_TYPES.join(", ")
            ),
        ));
    }
    Ok((Some(Value::Object(map)), Some(verify)))
}

/// The preset `type` and `config` name, or `options.verify` with `type`
/// `generic-webhook` (and no config of its own).
fn resolve_kind(kind: &str, config: Option<&Value>, verify: Option<&Verify>) -> ApiResult<SourceKind> {
    let Some(verify) = verify else {
        return parse_kind(kind, config);
    };
    if kind != GENERIC || config.is_some_and(|c| !c.is_null() && *c != json!({})) {
        return Err(ApiError::invalid(
            &["body", "options", "verify"],
            "options.verify goes with type generic-webhook and no config",
        ));
    }
    SourceKind::parse(&verify.kind, verify.config.as_ref()).map_err(|e| {
        let mut loc = vec!["body", "options", "verify"];
        loc.extend(e.loc.iter().map(String::as_str));
        ApiError::invalid(&loc, e.message)
    })
}

fn parse_options(options: Option<Value>) -> ApiResult<SourceOptions> {
    let Some(options) = options.filter(|o| !o.is_null()) else {
        return Ok(SourceOptions::default());
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
    Ok(parsed)
}

impl SourcePatch {
    /// Checks every field given, naming the failing one (a config without a type is
    /// checked against the source's type by the service).
    fn parse(self) -> ApiResult<SourceChange> {
        if let Some(name) = &self.name {
            check_name(name)?;
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        let (options, verify) = match self.options {
            Some(options) => {
                let (rest, verify) = split_verify(options)?;
                (Some(rest), verify)
            }
            None => (None, None),
        };
        let (kind, config) = match verify {
            // `options.verify` sets the preset (with `type` generic-webhook, or none).
            Some(v) => {
                let kind = self.kind.as_deref().unwrap_or(GENERIC);
                resolve_kind(kind, self.config.as_ref(), Some(&v))?;
                (Some(v.kind), v.config)
            }
            None => {
                if let Some(kind) = &self.kind {
                    parse_kind(kind, self.config.as_ref())?;
                }
                (self.kind, self.config)
            }
        };
        Ok(SourceChange {
            name: self.name,
            uid: self
                .uid
                .map(|u| u.as_deref().map(parse_uid).transpose())
                .transpose()?,
            metadata: self.metadata,
            kind,
            config,
            options: options.map(parse_options).transpose()?,
        })
    }
}

impl SourceIn {
    /// The source's data, and what a PUT keeps of the source it replaces.
    fn into_data(self) -> ApiResult<(SourceData, Keep)> {
        check_name(&self.name)?;
        let metadata = self.metadata.unwrap_or_default();
        check_metadata(&metadata)?;
        let given = self.options.is_some();
        let (options, verify) = split_verify(self.options.flatten())?;
        let kind = resolve_kind(&self.kind, self.config.as_ref(), verify.as_ref())?;
        // What the SDKs send back after reading a hookd-only source: generic-webhook,
        // no config, no options. That keeps the preset, as it keeps the options.
        let bare_generic = self.kind == GENERIC
            && self
                .config
                .as_ref()
                .is_none_or(|c| c.is_null() || *c == json!({}));
        let keep = Keep {
            options: !given,
            hookd_preset: !given && bare_generic,
        };
        let data = SourceData {
            uid: self.uid.as_deref().map(parse_uid).transpose()?,
            name: self.name,
            kind,
            options: parse_options(options)?,
            metadata,
        };
        Ok((data, keep))
    }
}

/// List the organisation's sources.
#[utoipa::path(get, path = "/ingest/api/v1/source", tag = "Ingest Source", params(Pagination),
    responses((status = 200, body = ListResponse<SourceOut>)))]
async fn list_sources(
    tenant: Tenant,
    State(state): State<Service>,
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
    responses((status = 201, body = SourceOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_source(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<SourceIn>,
) -> ApiResult<Created<SourceOut>> {
    let (data, _) = body.into_data()?;
    let source = source::create(&state, &tenant.org, data).await?;
    Ok(Created::new(source_out(&state, source)?))
}

/// Get a source by id or uid.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 200, body = SourceOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_source(
    tenant: Tenant,
    State(state): State<Service>,
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
    State(state): State<Service>,
    Path(source_id): Path<String>,
    ApiJson(body): ApiJson<SourceIn>,
) -> ApiResult<Created<SourceOut>> {
    let (data, keep) = body.into_data()?;
    let (source, created) = source::replace(&state, &tenant.org, &source_id, data, keep, || {
        parse_uid(&source_id)
    })
    .await?;
    Ok(Created::new_if(created, source_out(&state, source)?))
}

/// Change some fields of a source.
#[utoipa::path(patch, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")), request_body = SourcePatch,
    responses((status = 200, body = SourceOut)))]
async fn patch_source(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source_id): Path<String>,
    ApiJson(patch): ApiJson<SourcePatch>,
) -> ApiResult<Json<SourceOut>> {
    let source = source::change(&state, &tenant.org, &source_id, patch.parse()?).await?;
    Ok(Json(source_out(&state, source)?))
}

/// Delete a source with its destinations and log.
#[utoipa::path(delete, path = "/ingest/api/v1/source/{source_id}", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_source(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source_id): Path<String>,
) -> ApiResult<StatusCode> {
    source::delete(&state, &tenant.org, &source_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Give the source a new URL. The old one keeps working for `ingest_token_grace`
/// (default 24 h), then answers 404.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/token/rotate", tag = "Ingest Source",
    params(("source_id" = String, Path, description = "The source's id or uid")),
    responses((status = 200, body = RotateTokenOut)))]
async fn rotate_token(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source_id): Path<String>,
) -> ApiResult<Json<RotateTokenOut>> {
    let source = source::rotate_token(&state, &tenant.org, &source_id).await?;
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
    /// `accepted`, `rejected`, `duplicate` or `filtered`.
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
        let headers = hookd_core::headers::joined(r.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
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
    /// `accepted`, `rejected`, `duplicate` or `filtered`.
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
        IngestStatus::Filtered,
    ]
    .into_iter()
    .find(|st| st.text() == s)
    .ok_or_else(|| {
        ApiError::invalid(
            &["query", "status"],
            "one of accepted, rejected, duplicate, filtered",
        )
    })
}

/// The requests a source received, newest first.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/log", tag = "Ingest Source",
    params(("source_id" = String, Path), Pagination, LogFilter),
    responses((status = 200, body = ListResponse<IngestLogOut>)))]
async fn list_log(
    tenant: Tenant,
    State(state): State<Service>,
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
    state: &Service,
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
    responses((status = 200, body = IngestLogOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_log_entry(
    tenant: Tenant,
    State(state): State<Service>,
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
    State(state): State<Service>,
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

/// One attempt to forward a received request to a destination (hookd's own).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ForwardAttemptOut {
    #[schema(value_type = String)]
    pub id: hookd_core::id::AttemptId,
    /// The destination (a `hookd listen` session's is one too).
    #[schema(value_type = String)]
    pub endpoint_id: hookd_core::id::EndpointId,
    pub url: String,
    /// 0 when no answer came.
    pub response_status_code: i32,
    /// The first bytes of the answer, or why there was none.
    pub response: String,
    pub response_duration_ms: i64,
    /// `success` or `fail` (`canceled` by a transformation).
    pub status: &'static str,
    pub timestamp: DateTime<Utc>,
}

/// What became of a received request's forward: every attempt at every destination,
/// newest first (hookd's own route; `hookd tail` shows them).
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/log/{log_id}/attempt", tag = "Ingest Source",
    params(("source_id" = String, Path), ("log_id" = String, Path)),
    responses((status = 200, body = Vec<ForwardAttemptOut>), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn list_log_attempts(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source_id, log_id)): Path<(String, String)>,
) -> ApiResult<Json<Vec<ForwardAttemptOut>>> {
    let (source, entry) = log_entry(&state, &tenant, &source_id, &log_id).await?;
    let attempts = source::forward_attempts(&state, &tenant.org, &source, &entry).await?;
    Ok(Json(
        attempts
            .into_iter()
            .map(|a| ForwardAttemptOut {
                id: a.id,
                endpoint_id: a.endpoint_id,
                url: a.url,
                response_status_code: a.response_status_code,
                response: a.response.unwrap_or_default(),
                response_duration_ms: a.response_duration_ms,
                status: match a.status {
                    hookd_store::DeliveryStatus::Success => "success",
                    hookd_store::DeliveryStatus::Canceled => "canceled",
                    _ => "fail",
                },
                timestamp: a.created_at,
            })
            .collect(),
    ))
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

/// Forward one logged request again to one or every destination.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/log/{log_id}/replay", tag = "Ingest Source",
    params(("source_id" = String, Path), ("log_id" = String, Path)), request_body = Option<ReplayIn>,
    responses((status = 202, body = ReplayOut), (status = 409, body = crate::http::error::HttpErrorOut)))]
async fn replay_one(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source_id, log_id)): Path<(String, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<ReplayIn>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let (source, entry) = log_entry(&state, &tenant, &source_id, &log_id).await?;
    let replayed =
        source::replay_one(&state, &tenant.org, &source, &entry, body.endpoint_id.as_deref()).await?;
    Ok((StatusCode::ACCEPTED, Json(replayed.into())))
}

/// Forward again every accepted request received in a time range (oldest first, at
/// most 10,000 per call).
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/replay", tag = "Ingest Source",
    params(("source_id" = String, Path)), request_body = ReplayRangeIn,
    responses((status = 202, body = ReplayOut)))]
async fn replay_range(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source_id): Path<String>,
    ApiJson(body): ApiJson<ReplayRangeIn>,
) -> ApiResult<(StatusCode, Json<ReplayOut>)> {
    let replayed = source::replay_range(
        &state,
        &tenant.org,
        &source_id,
        body.since,
        body.until,
        body.endpoint_id.as_deref(),
    )
    .await?;
    Ok((StatusCode::ACCEPTED, Json(replayed.into())))
}

impl From<source::Replayed> for ReplayOut {
    fn from(r: source::Replayed) -> Self {
        Self {
            msg_ids: r.msg_ids,
            deliveries: r.deliveries,
            done: r.done,
            next_since: r.next_since,
        }
    }
}
