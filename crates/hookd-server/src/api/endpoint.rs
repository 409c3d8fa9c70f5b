//! `/api/v1/app/{app_id}/endpoint`: an application's endpoints, their custom headers,
//! signing secret and its rotation.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use hookd_core::endpoint_headers;
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::id::{ApplicationId, EndpointId};
use hookd_core::name::{ChannelName, EventTypeName, Uid};
use hookd_core::secret::EndpointSecret;
use hookd_dispatch::events::{self, OperationalEvent};
use hookd_store::{Endpoint, EndpointData, Order, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{Created, check_metadata, parse_field, upsert};
use crate::auth::Tenant;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiJsonOrDefault, ApiQuery, double_option};
use crate::pagination::{ListResponse, Pagination};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(
            get_endpoint,
            update_endpoint,
            patch_endpoint,
            delete_endpoint
        ))
        .routes(routes!(get_headers, set_headers, patch_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
}

const MAX_CHANNELS: usize = 10;
const MAX_DESCRIPTION: usize = 4_096;
const DEFAULT_GRACE_SECONDS: u32 = 86_400;
const MAX_GRACE_SECONDS: u32 = 7 * 86_400;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    #[schema(example = "https://example.com/webhook/")]
    pub url: String,
    pub description: Option<String>,
    /// Maximum messages per second to send to this endpoint.
    #[schema(minimum = 1)]
    pub throttle_rate: Option<u16>,
    pub uid: Option<String>,
    pub disabled: Option<bool>,
    /// Only these event types are delivered (`filterTypes` is accepted too).
    #[serde(alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    /// Only messages on one of these channels are delivered.
    pub channels: Option<Vec<String>>,
    /// `whsec_` + base64; generated when absent.
    pub secret: Option<String>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub headers: Option<BTreeMap<String, String>>,
}

/// The body of `PUT .../endpoint/{endpoint_id}`: every field but the secret and the
/// custom headers, which keep their values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointUpsertIn {
    pub url: String,
    pub description: Option<String>,
    pub throttle_rate: Option<u16>,
    pub uid: Option<String>,
    pub disabled: Option<bool>,
    #[serde(alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    /// `null` or 0 removes the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u16>)]
    pub throttle_rate: Option<Option<u16>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes", deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Option<Vec<String>>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    #[schema(value_type = String, example = "ep_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: EndpointId,
    pub metadata: BTreeMap<String, String>,
    #[schema(value_type = String)]
    pub url: EndpointUrl,
    pub description: String,
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub disabled: bool,
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<BTreeSet<EventTypeName>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<BTreeSet<ChannelName>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        let d = e.data;
        Self {
            id: e.id,
            metadata: d.metadata,
            url: d.url,
            description: d.description,
            throttle_rate: d.throttle_rate,
            uid: d.uid,
            disabled: d.disabled,
            event_types: d.event_types,
            channels: d.channels,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHeadersPatchIn {
    /// Headers to set; a `null` value removes the header.
    #[schema(value_type = Object)]
    pub headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub delete_headers: Vec<String>,
}

/// Custom headers; the values of credential headers are withheld and their names
/// listed in `sensitive`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointHeadersOut {
    pub headers: BTreeMap<String, String>,
    pub sensitive: BTreeSet<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointSecretOut {
    /// The signing secret, `whsec_` + base64.
    pub key: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    /// The new secret; generated when absent.
    pub key: Option<String>,
    /// How long the old secret keeps signing, 0 to 604800 s (default 86400).
    pub grace_period_seconds: Option<u32>,
}

// ---------------------------------------------------------------------------------
// Validation: raw bodies into store data.

fn check_description(d: &str) -> ApiResult<()> {
    if d.len() > MAX_DESCRIPTION {
        return Err(ApiError::invalid(
            &["body", "description"],
            format!("the description must be at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// An empty list means "no filter", like an absent one.
fn parse_event_types(list: Option<Vec<String>>) -> ApiResult<Option<BTreeSet<EventTypeName>>> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    list.iter()
        .map(|n| parse_field(n, "eventTypes"))
        .collect::<ApiResult<_>>()
        .map(Some)
}

fn parse_channels(list: Option<Vec<String>>) -> ApiResult<Option<BTreeSet<ChannelName>>> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if list.len() > MAX_CHANNELS {
        return Err(ApiError::invalid(
            &["body", "channels"],
            format!("at most {MAX_CHANNELS} channels"),
        ));
    }
    list.iter()
        .map(|c| parse_field(c, "channels"))
        .collect::<ApiResult<_>>()
        .map(Some)
}

fn check_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    endpoint_headers::validate_all(headers).map_err(|(name, e)| {
        let mut loc = vec!["body", "headers"];
        if !name.is_empty() {
            loc.push(&name);
        }
        ApiError::invalid(&loc, e.message)
    })
}

/// Refuses event-type filters naming event types the organisation does not have (for
/// operational endpoints: that hookd does not send).
async fn check_event_types_exist(
    state: &AppState,
    tenant: &Tenant,
    app: &AppRef,
    types: &Option<BTreeSet<EventTypeName>>,
) -> ApiResult<()> {
    let Some(types) = types else { return Ok(()) };
    let names: Vec<EventTypeName> = types.iter().cloned().collect();
    let missing = match app {
        AppRef::Source(_) => {
            return Err(ApiError::invalid(
                &["body", "eventTypes"],
                "an ingest destination receives every accepted request; it has no event-type filter",
            ));
        }
        AppRef::Operational => names
            .into_iter()
            .filter(|n| !events::EVENT_TYPES.contains(&n.as_str()))
            .collect(),
        AppRef::Key(_) => state.store.missing_event_types(&tenant.org, &names).await?,
    };
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = missing.iter().map(|n| n.as_str()).collect();
    Err(ApiError::invalid(
        &["body", "eventTypes"],
        format!("no such event type: {}", list.join(", ")),
    ))
}

/// Ingest destinations receive every accepted request: no channel filter.
fn check_channels_allowed(app: &AppRef, channels: &Option<BTreeSet<ChannelName>>) -> ApiResult<()> {
    if matches!(app, AppRef::Source(_)) && channels.is_some() {
        return Err(ApiError::invalid(
            &["body", "channels"],
            "an ingest destination receives every accepted request; it has no channel filter",
        ));
    }
    Ok(())
}

/// The fields shared by create and replace.
struct EndpointFields {
    url: EndpointUrl,
    description: String,
    throttle_rate: Option<u16>,
    uid: Option<Uid>,
    disabled: bool,
    event_types: Option<BTreeSet<EventTypeName>>,
    channels: Option<BTreeSet<ChannelName>>,
    metadata: BTreeMap<String, String>,
}

#[allow(clippy::too_many_arguments)]
fn parse_fields(
    url: &str,
    description: Option<String>,
    throttle_rate: Option<u16>,
    uid: Option<String>,
    disabled: Option<bool>,
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    metadata: Option<BTreeMap<String, String>>,
) -> ApiResult<EndpointFields> {
    let description = description.unwrap_or_default();
    check_description(&description)?;
    if throttle_rate == Some(0) {
        return Err(ApiError::invalid(
            &["body", "throttleRate"],
            "throttleRate must be at least 1",
        ));
    }
    let metadata = metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    Ok(EndpointFields {
        url: parse_field(url, "url")?,
        description,
        throttle_rate,
        uid: uid.as_deref().map(|u| parse_field(u, "uid")).transpose()?,
        disabled: disabled.unwrap_or(false),
        event_types: parse_event_types(event_types)?,
        channels: parse_channels(channels)?,
        metadata,
    })
}

impl EndpointFields {
    fn apply(self, d: &mut EndpointData) {
        d.url = self.url;
        d.description = self.description;
        d.throttle_rate = self.throttle_rate;
        d.uid = self.uid;
        d.disabled = self.disabled;
        d.event_types = self.event_types;
        d.channels = self.channels;
        d.metadata = self.metadata;
    }

    fn into_data(self, secret: EndpointSecret, headers: BTreeMap<String, String>) -> EndpointData {
        EndpointData {
            uid: self.uid,
            url: self.url,
            description: self.description,
            disabled: self.disabled,
            event_types: self.event_types,
            channels: self.channels,
            throttle_rate: self.throttle_rate,
            metadata: self.metadata,
            headers,
            secret,
            previous_secrets: Vec::new(),
        }
    }
}

/// Which application a path means: `{app_id}` (id or uid); on the
/// `/operational-webhook` routes, the organisation's operational application; on the
/// `/ingest/api/v1/source/{source_id}/endpoint` routes, the source's hidden one.
#[derive(Debug, Clone)]
pub enum AppRef {
    Key(String),
    Operational,
    Source(String),
}

impl<S: Send + Sync> FromRequestParts<S> for AppRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest {
                    code: "bad_path",
                    detail: e.to_string(),
                })?;
        Ok(match (params.get("app_id"), params.get("source_id")) {
            (Some(key), _) => Self::Key(key.clone()),
            (None, Some(source)) => Self::Source(source.clone()),
            (None, None) => Self::Operational,
        })
    }
}

/// The `{endpoint_id}` of the path (id or uid).
#[derive(Debug, Clone)]
pub struct EndpointKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for EndpointKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::BadRequest {
                    code: "bad_path",
                    detail: e.to_string(),
                })?;
        params
            .get("endpoint_id")
            .cloned()
            .map(Self)
            .ok_or_else(|| ApiError::NotFound("no such route".into()))
    }
}

/// An application as the endpoint routes need it.
#[derive(Debug)]
struct ResolvedApp {
    id: ApplicationId,
    uid: Option<Uid>,
    /// Hidden (operational or ingest): its endpoint changes raise no `endpoint.*`
    /// events.
    hidden: bool,
}

async fn resolve_app(state: &AppState, tenant: &Tenant, app: &AppRef) -> ApiResult<ResolvedApp> {
    Ok(match app {
        AppRef::Key(key) => {
            let a = state.store.get_application(&tenant.org, key).await?;
            ResolvedApp {
                id: a.id,
                uid: a.data.uid,
                hidden: false,
            }
        }
        AppRef::Operational => ResolvedApp {
            id: state.store.operational_app(&tenant.org).await?,
            uid: None,
            hidden: true,
        },
        AppRef::Source(key) => ResolvedApp {
            id: state.store.get_source(&tenant.org, key).await?.app_id,
            uid: None,
            hidden: true,
        },
    })
}

/// Resolves the application of the path, scoped to the caller.
async fn app_id(state: &AppState, tenant: &Tenant, app: &AppRef) -> ApiResult<ApplicationId> {
    Ok(resolve_app(state, tenant, app).await?.id)
}

/// Sends an `endpoint.*` operational webhook (not for operational endpoints).
async fn endpoint_event(
    state: &AppState,
    tenant: &Tenant,
    app: &ResolvedApp,
    kind: &'static str,
    ep: &Endpoint,
) {
    if app.hidden {
        return;
    }
    let event = OperationalEvent::endpoint(kind, &app.id, app.uid.as_ref(), &ep.id, ep.data.uid.as_ref());
    crate::api::emit_event(state, &tenant.org, event).await;
}

/// The endpoint `endpoint` (id or uid) of the application `app` (id or uid).
async fn find_endpoint(
    state: &AppState,
    tenant: &Tenant,
    app: &AppRef,
    endpoint: &str,
) -> ApiResult<Endpoint> {
    let app = app_id(state, tenant, app).await?;
    Ok(state.store.get_endpoint(&tenant.org, &app, endpoint).await?)
}

/// Applies `change` to the endpoint inside the store's transaction.
async fn change_endpoint(
    state: &AppState,
    tenant: &Tenant,
    app: &AppRef,
    endpoint: &str,
    change: hookd_store::Mutation<EndpointData>,
) -> ApiResult<Endpoint> {
    let app = app_id(state, tenant, app).await?;
    Ok(state
        .store
        .update_endpoint(&tenant.org, &app, endpoint, change)
        .await?)
}

// ---------------------------------------------------------------------------------
// Handlers.

/// List an application's endpoints.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path), Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
pub(crate) async fn list_endpoints(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let app = app_id(&state, &tenant, &app).await?;
    let page = state.store.list_endpoints(&tenant.org, &app, &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path)), request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = 409, body = crate::error::HttpErrorOut),
        (status = 422, body = crate::error::ValidationErrorOut)))]
pub(crate) async fn create_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    ApiJson(body): ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    let fields = parse_fields(
        &body.url,
        body.description,
        body.throttle_rate,
        body.uid,
        body.disabled,
        body.event_types,
        body.channels,
        body.metadata,
    )?;
    let secret = match body.secret.as_deref() {
        Some(s) => parse_field(s, "secret")?,
        None => EndpointSecret::generate(),
    };
    let headers = body.headers.unwrap_or_default();
    check_headers(&headers)?;
    check_event_types_exist(&state, &tenant, &app, &fields.event_types).await?;
    check_channels_allowed(&app, &fields.channels)?;
    let resolved = resolve_app(&state, &tenant, &app).await?;
    let ep = state
        .store
        .create_endpoint(&tenant.org, &resolved.id, fields.into_data(secret, headers))
        .await?;
    endpoint_event(&state, &tenant, &resolved, "endpoint.created", &ep).await;
    Ok(Created::new(ep.into()))
}

/// Get an endpoint by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointOut), (status = 404, body = crate::error::HttpErrorOut)))]
pub(crate) async fn get_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
) -> ApiResult<Json<EndpointOut>> {
    let app = app_id(&state, &tenant, &app).await?;
    Ok(Json(
        state
            .store
            .get_endpoint(&tenant.org, &app, &endpoint)
            .await?
            .into(),
    ))
}

/// Create or replace an endpoint (its secret and custom headers are kept).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointUpsertIn,
    responses((status = 200, body = EndpointOut), (status = 201, body = EndpointOut)))]
pub(crate) async fn update_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
    ApiJson(body): ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    let mut fields = parse_fields(
        &body.url,
        body.description,
        body.throttle_rate,
        body.uid,
        body.disabled,
        body.event_types,
        body.channels,
        body.metadata,
    )?;
    check_event_types_exist(&state, &tenant, &app, &fields.event_types).await?;
    check_channels_allowed(&app, &fields.channels)?;
    let resolved = resolve_app(&state, &tenant, &app).await?;
    let app = resolved.id.clone();
    let replace = |f: EndpointFields| {
        state.store.update_endpoint(
            &tenant.org,
            &app,
            &endpoint,
            Box::new(move |d| {
                let keep_uid = f.uid.is_none();
                let uid = d.uid.take();
                f.apply(d);
                if keep_uid {
                    d.uid = uid;
                }
                Ok(())
            }),
        )
    };
    if fields.uid.is_none() && !EndpointId::is_valid(&endpoint) {
        fields.uid =
            Some(endpoint.parse().map_err(|e: hookd_core::InvalidValue| {
                ApiError::invalid(&["path", "endpoint_id"], e.message)
            })?);
    }
    let clone_fields = |f: &EndpointFields| EndpointFields {
        url: f.url.clone(),
        description: f.description.clone(),
        throttle_rate: f.throttle_rate,
        uid: f.uid.clone(),
        disabled: f.disabled,
        event_types: f.event_types.clone(),
        channels: f.channels.clone(),
        metadata: f.metadata.clone(),
    };
    let (ep, created) = upsert(
        || replace(clone_fields(&fields)),
        || async {
            if EndpointId::is_valid(&endpoint) {
                return Err(StoreError::NotFound("endpoint"));
            }
            let data = clone_fields(&fields).into_data(EndpointSecret::generate(), BTreeMap::new());
            state.store.create_endpoint(&tenant.org, &app, data).await
        },
    )
    .await?;
    let kind = if created {
        "endpoint.created"
    } else {
        "endpoint.updated"
    };
    endpoint_event(&state, &tenant, &resolved, kind, &ep).await;
    Ok(Created::new_if(created, ep.into()))
}

/// Change some fields of an endpoint.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut)))]
async fn patch_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
    ApiJson(patch): ApiJson<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let url: Option<EndpointUrl> = patch.url.as_deref().map(|u| parse_field(u, "url")).transpose()?;
    if let Some(d) = &patch.description {
        check_description(d)?;
    }
    if let Some(m) = &patch.metadata {
        check_metadata(m)?;
    }
    let uid: Option<Option<Uid>> = match patch.uid {
        Some(Some(u)) => Some(Some(parse_field(&u, "uid")?)),
        Some(None) => Some(None),
        None => None,
    };
    let event_types = patch.event_types.map(parse_event_types).transpose()?;
    if let Some(types) = &event_types {
        check_event_types_exist(&state, &tenant, &app, types).await?;
    }
    let channels = patch.channels.map(parse_channels).transpose()?;
    if let Some(c) = &channels {
        check_channels_allowed(&app, c)?;
    }
    let resolved = resolve_app(&state, &tenant, &app).await?;
    let was_disabled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = std::sync::Arc::clone(&was_disabled);
    let (description, disabled, throttle_rate, metadata) = (
        patch.description,
        patch.disabled,
        patch.throttle_rate,
        patch.metadata,
    );
    let ep = state
        .store
        .update_endpoint(
            &tenant.org,
            &resolved.id,
            &endpoint,
            Box::new(move |d| {
                seen.store(d.disabled, std::sync::atomic::Ordering::Relaxed);
                if let Some(v) = url {
                    d.url = v;
                }
                if let Some(v) = description {
                    d.description = v;
                }
                if let Some(v) = throttle_rate {
                    d.throttle_rate = v.filter(|r| *r > 0);
                }
                if let Some(v) = uid {
                    d.uid = v;
                }
                if let Some(v) = disabled {
                    d.disabled = v;
                }
                if let Some(v) = event_types {
                    d.event_types = v;
                }
                if let Some(v) = channels {
                    d.channels = v;
                }
                if let Some(v) = metadata {
                    d.metadata = v;
                }
                Ok(())
            }),
        )
        .await?;
    endpoint_event(&state, &tenant, &resolved, "endpoint.updated", &ep).await;
    match (
        was_disabled.load(std::sync::atomic::Ordering::Relaxed),
        ep.data.disabled,
    ) {
        (false, true) => endpoint_event(&state, &tenant, &resolved, "endpoint.disabled", &ep).await,
        (true, false) => endpoint_event(&state, &tenant, &resolved, "endpoint.enabled", &ep).await,
        _ => {}
    }
    Ok(Json(ep.into()))
}

/// Delete an endpoint.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 204)))]
pub(crate) async fn delete_endpoint(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
) -> ApiResult<StatusCode> {
    let resolved = resolve_app(&state, &tenant, &app).await?;
    let ep = state
        .store
        .get_endpoint(&tenant.org, &resolved.id, &endpoint)
        .await?;
    state
        .store
        .delete_endpoint(&tenant.org, &resolved.id, ep.id.as_str())
        .await?;
    endpoint_event(&state, &tenant, &resolved, "endpoint.deleted", &ep).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the custom headers sent with every webhook.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
pub(crate) async fn get_headers(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let ep = find_endpoint(&state, &tenant, &app, &endpoint).await?;
    let (sensitive, shown): (BTreeMap<_, _>, BTreeMap<_, _>) = ep
        .data
        .headers
        .into_iter()
        .partition(|(name, _)| endpoint_headers::is_sensitive(name));
    Ok(Json(EndpointHeadersOut {
        headers: shown,
        sensitive: sensitive.into_keys().collect(),
    }))
}

/// Replace the custom headers.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersIn,
    responses((status = 204)))]
pub(crate) async fn set_headers(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
    ApiJson(body): ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    check_headers(&body.headers)?;
    change_endpoint(
        &state,
        &tenant,
        &app,
        &endpoint,
        Box::new(move |d| {
            d.headers = body.headers;
            Ok(())
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set or remove some custom headers.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersPatchIn,
    responses((status = 204)))]
async fn patch_headers(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
    ApiJson(body): ApiJson<EndpointHeadersPatchIn>,
) -> ApiResult<StatusCode> {
    let set: BTreeMap<String, String> = body
        .headers
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    // Only the headers being set are checked here; the size of the merged set is
    // checked on the current state, inside the store's transaction.
    for (name, value) in &set {
        endpoint_headers::validate(name, value)
            .map_err(|e| ApiError::invalid(&["body", "headers", name], e.message))?;
    }
    let remove: Vec<String> = body
        .headers
        .iter()
        .filter(|(_, v)| v.is_none())
        .map(|(k, _)| k.clone())
        .chain(body.delete_headers)
        .collect();
    change_endpoint(
        &state,
        &tenant,
        &app,
        &endpoint,
        Box::new(move |d| {
            for name in remove.iter().chain(set.keys()) {
                d.headers.retain(|k, _| !k.eq_ignore_ascii_case(name));
            }
            d.headers.extend(set);
            if d.headers.len() > endpoint_headers::MAX_HEADERS {
                return Err(StoreError::rejected(
                    "headers",
                    format!(
                        "at most {} custom headers are allowed",
                        endpoint_headers::MAX_HEADERS
                    ),
                ));
            }
            Ok(())
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
pub(crate) async fn get_secret(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
) -> ApiResult<Json<EndpointSecretOut>> {
    let ep = find_endpoint(&state, &tenant, &app, &endpoint).await?;
    Ok(Json(EndpointSecretOut {
        key: ep.data.secret.expose(),
    }))
}

/// Rotate the signing secret. The old secret keeps signing (next to the new one) for
/// the grace period. Answers 200 with the new secret (the Svix spec says 204; the
/// official SDKs parse a body, and both work with this).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut)))]
pub(crate) async fn rotate_secret(
    tenant: Tenant,
    State(state): State<AppState>,
    app: AppRef,
    EndpointKey(endpoint): EndpointKey,
    ApiJsonOrDefault(body): ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<Json<EndpointSecretOut>> {
    let grace = body.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(
            &["body", "gracePeriodSeconds"],
            format!("the grace period must be 0 to {MAX_GRACE_SECONDS} seconds"),
        ));
    }
    let new: EndpointSecret = match body.key.as_deref() {
        Some(k) => parse_field(k, "key")?,
        None => EndpointSecret::generate(),
    };
    let key = new.expose();
    change_endpoint(
        &state,
        &tenant,
        &app,
        &endpoint,
        Box::new(move |d| {
            d.rotate_secret(new, Utc::now(), chrono::Duration::seconds(i64::from(grace)));
            Ok(())
        }),
    )
    .await?;
    Ok(Json(EndpointSecretOut { key }))
}
