//! Endpoints — of an application, of the organisation's operational application
//! (operational webhooks) and of a source's hidden application (ingest destinations):
//! their wire types, validation, and every change with the `endpoint.*` event it
//! raises. The three kinds are served by three surfaces; which application a route
//! means is its own explicit [`AppRef`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hookd_core::endpoint_headers;
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::filter::{Filter, FilterTarget, FilterText};
use hookd_core::id::{ApplicationId, EndpointId, OrgId};
use hookd_core::name::{ChannelName, EventTypeName, Uid};
use hookd_core::secret::EndpointSecret;
use hookd_core::throttle::ThrottleRate;
use hookd_dispatch::events::{EVENT_TYPES, OperationalEvent};
use hookd_store::{Endpoint, EndpointData, ListQuery, Page, StoreError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::double_option;
use crate::http::{check_metadata, parse_field, parse_throttle_rate, patch_throttle_rate};
use crate::service::{Service, events, upsert};

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
    /// hookd: a payload filter (docs/filters.md); only messages it matches are sent.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
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
    /// hookd: a payload filter (docs/filters.md); absent keeps the endpoint's (the
    /// official SDKs cannot send it), `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<serde_json::Value>>,
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
    /// hookd: a payload filter (docs/filters.md); `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<serde_json::Value>>,
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
    /// hookd: the payload filter, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
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
            throttle_rate: d.throttle_rate.map(ThrottleRate::get),
            uid: d.uid,
            disabled: d.disabled,
            event_types: d.event_types,
            channels: d.channels,
            filter: d.filter.map(|f| f.document()),
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
    hookd_core::name::channel_set(&list.unwrap_or_default())
        .map_err(|e| ApiError::invalid(&["body", "channels"], e.message))
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
    state: &Service,
    org: &OrgId,
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
            .filter(|n| !EVENT_TYPES.contains(&n.as_str()))
            .collect(),
        AppRef::Key(_) => state.store.missing_event_types(org, &names).await?,
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

/// What an endpoint's filter is matched against: a destination's, the request a
/// source received; any other's, the message sent.
fn filter_target(app: &AppRef) -> FilterTarget {
    match app {
        AppRef::Source(_) => FilterTarget::Received,
        AppRef::Key(_) | AppRef::Operational => FilterTarget::Sent,
    }
}

/// A filter document checked for `target` (`null` is none); the 422 names the bad
/// part by its path under `filter`.
fn parse_filter(doc: Option<serde_json::Value>, target: FilterTarget) -> ApiResult<Option<FilterText>> {
    let Some(doc) = doc.filter(|d| !d.is_null()) else {
        return Ok(None);
    };
    FilterText::new(&doc, target)
        .map(Some)
        .map_err(|e| filter_error(&["body", "filter"], e))
}

/// A refused filter as a 422 located at `at` plus the pointer of its bad part.
fn filter_error(at: &[&str], e: hookd_core::filter::FilterError) -> ApiError {
    let parts: Vec<String> = e
        .pointer
        .split('/')
        .skip(1)
        .map(|p| p.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut loc: Vec<&str> = at.to_vec();
    loc.extend(parts.iter().map(String::as_str));
    ApiError::invalid(&loc, e.message)
}

/// The fields shared by create and replace.
#[derive(Clone)]
struct EndpointFields {
    url: EndpointUrl,
    description: String,
    throttle_rate: Option<ThrottleRate>,
    uid: Option<Uid>,
    disabled: bool,
    event_types: Option<BTreeSet<EventTypeName>>,
    channels: Option<BTreeSet<ChannelName>>,
    metadata: BTreeMap<String, String>,
    filter: Option<FilterText>,
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
    filter: (Option<serde_json::Value>, FilterTarget),
) -> ApiResult<EndpointFields> {
    let description = description.unwrap_or_default();
    check_description(&description)?;
    let throttle_rate = parse_throttle_rate(throttle_rate)?;
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
        filter: parse_filter(filter.0, filter.1)?,
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
        d.filter = self.filter;
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
            filter: self.filter,
            transformation: None,
        }
    }
}

/// Which application a route means: an application by id or uid, the organisation's
/// operational application, or a source's (by id or uid) hidden one. Each route says
/// which; nothing is inferred from the path.
#[derive(Debug, Clone)]
pub enum AppRef {
    Key(String),
    Operational,
    Source(String),
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

async fn resolve_app(state: &Service, org: &OrgId, app: &AppRef) -> ApiResult<ResolvedApp> {
    Ok(match app {
        AppRef::Key(key) => {
            let a = state.store.get_application(org, key).await?;
            ResolvedApp {
                id: a.id,
                uid: a.data.uid,
                hidden: false,
            }
        }
        AppRef::Operational => ResolvedApp {
            id: state.store.operational_app(org).await?,
            uid: None,
            hidden: true,
        },
        AppRef::Source(key) => ResolvedApp {
            id: state.store.get_source(org, key).await?.app_id,
            uid: None,
            hidden: true,
        },
    })
}

/// Sends an `endpoint.*` operational webhook (not for hidden applications' endpoints).
async fn endpoint_event(state: &Service, org: &OrgId, app: &ResolvedApp, kind: &'static str, ep: &Endpoint) {
    if app.hidden {
        return;
    }
    let event = OperationalEvent::endpoint(kind, &app.id, app.uid.as_ref(), &ep.id, ep.data.uid.as_ref());
    events::emit(state, org, event).await;
}

/// Applies `change` to the endpoint inside the store's transaction.
async fn change_endpoint(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    change: hookd_store::Mutation<EndpointData>,
) -> ApiResult<Endpoint> {
    let app = resolve_app(state, org, app).await?.id;
    Ok(state
        .store
        .update_endpoint(org, &app, endpoint, change)
        .await?
        .after)
}

/// A checked PATCH of an endpoint: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct EndpointChange {
    url: Option<EndpointUrl>,
    description: Option<String>,
    throttle_rate: Option<Option<ThrottleRate>>,
    uid: Option<Option<Uid>>,
    disabled: Option<bool>,
    event_types: Option<Option<BTreeSet<EventTypeName>>>,
    channels: Option<Option<BTreeSet<ChannelName>>>,
    metadata: Option<BTreeMap<String, String>>,
    filter: Option<Option<FilterText>>,
}

impl EndpointPatch {
    /// Checks every field given, naming the failing one; a filter for `target`.
    fn parse(self, target: FilterTarget) -> ApiResult<EndpointChange> {
        if let Some(d) = &self.description {
            check_description(d)?;
        }
        if let Some(m) = &self.metadata {
            check_metadata(m)?;
        }
        Ok(EndpointChange {
            url: self.url.as_deref().map(|u| parse_field(u, "url")).transpose()?,
            description: self.description,
            throttle_rate: patch_throttle_rate(self.throttle_rate),
            uid: self
                .uid
                .map(|u| u.map(|u| parse_field(&u, "uid")).transpose())
                .transpose()?,
            disabled: self.disabled,
            event_types: self.event_types.map(parse_event_types).transpose()?,
            channels: self.channels.map(parse_channels).transpose()?,
            metadata: self.metadata,
            filter: self.filter.map(|f| parse_filter(f, target)).transpose()?,
        })
    }
}

impl EndpointChange {
    fn apply(self, d: &mut EndpointData) {
        if let Some(v) = self.url {
            d.url = v;
        }
        if let Some(v) = self.description {
            d.description = v;
        }
        if let Some(v) = self.throttle_rate {
            d.throttle_rate = v;
        }
        if let Some(v) = self.uid {
            d.uid = v;
        }
        if let Some(v) = self.disabled {
            d.disabled = v;
        }
        if let Some(v) = self.event_types {
            d.event_types = v;
        }
        if let Some(v) = self.channels {
            d.channels = v;
        }
        if let Some(v) = self.metadata {
            d.metadata = v;
        }
        if let Some(v) = self.filter {
            d.filter = v;
        }
    }
}

// ---------------------------------------------------------------------------------
// Commands.

/// The temporary endpoint of the `hookd listen` session `session` in `app` (uid
/// `listen-{session}`, URL `hookd-listen://{session}`): made when missing, its
/// event-type filter set to `event_types` when it exists. Raises no operational
/// events (it is a developer's tap, not a customer's endpoint). 409 when the uid
/// belongs to an endpoint that is not a listen session.
pub(crate) async fn listen_endpoint(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    session: &str,
    event_types: Option<Vec<String>>,
) -> ApiResult<Endpoint> {
    let url =
        EndpointUrl::listener(session).map_err(|e| ApiError::invalid(&["body", "session"], e.message))?;
    let uid: Uid = format!("listen-{}", session.to_ascii_lowercase())
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["body", "session"], e.message))?;
    let event_types = parse_event_types(event_types)?;
    check_event_types_exist(state, org, app, &event_types).await?;
    let resolved = resolve_app(state, org, app).await?;
    match state.store.get_endpoint(org, &resolved.id, uid.as_str()).await {
        Ok(ep) if !ep.data.url.is_listener() => Err(ApiError::Conflict(format!(
            "the endpoint {uid} is not a `hookd listen` session; choose another --session"
        ))),
        Ok(ep) => {
            let updated = state
                .store
                .update_endpoint(
                    org,
                    &resolved.id,
                    ep.id.as_str(),
                    Box::new(move |d| {
                        d.event_types = event_types;
                        d.disabled = false;
                        Ok(())
                    }),
                )
                .await?;
            Ok(updated.after)
        }
        Err(StoreError::NotFound(_)) => {
            let data = EndpointData {
                uid: Some(uid),
                url,
                description: format!("hookd listen session {session}"),
                disabled: false,
                event_types,
                channels: None,
                throttle_rate: None,
                metadata: BTreeMap::new(),
                headers: BTreeMap::new(),
                secret: EndpointSecret::generate(),
                previous_secrets: Vec::new(),
                filter: None,
                transformation: None,
            };
            Ok(state.store.create_endpoint(org, &resolved.id, data).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A page of the endpoints of `app`.
pub async fn list(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    query: &ListQuery,
) -> ApiResult<Page<Endpoint>> {
    let app = resolve_app(state, org, app).await?.id;
    Ok(state.store.list_endpoints(org, &app, query).await?)
}

/// The endpoint `endpoint` (id or uid) of `app`.
pub async fn get(state: &Service, org: &OrgId, app: &AppRef, endpoint: &str) -> ApiResult<Endpoint> {
    let app = resolve_app(state, org, app).await?.id;
    Ok(state.store.get_endpoint(org, &app, endpoint).await?)
}

/// Creates an endpoint; its secret is generated unless given.
pub async fn create(state: &Service, org: &OrgId, app: &AppRef, body: EndpointIn) -> ApiResult<Endpoint> {
    let fields = parse_fields(
        &body.url,
        body.description,
        body.throttle_rate,
        body.uid,
        body.disabled,
        body.event_types,
        body.channels,
        body.metadata,
        (body.filter, filter_target(app)),
    )?;
    let secret = match body.secret.as_deref() {
        Some(s) => parse_field(s, "secret")?,
        None => EndpointSecret::generate(),
    };
    let headers = body.headers.unwrap_or_default();
    check_headers(&headers)?;
    check_event_types_exist(state, org, app, &fields.event_types).await?;
    check_channels_allowed(app, &fields.channels)?;
    let resolved = resolve_app(state, org, app).await?;
    let ep = state
        .store
        .create_endpoint(org, &resolved.id, fields.into_data(secret, headers))
        .await?;
    endpoint_event(state, org, &resolved, "endpoint.created", &ep).await;
    Ok(ep)
}

/// Creates or replaces the endpoint `endpoint` (its secret and custom headers are
/// kept, and its filter unless the body names one); `true` when it was created.
pub async fn replace(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: EndpointUpsertIn,
) -> ApiResult<(Endpoint, bool)> {
    let mut fields = parse_fields(
        &body.url,
        body.description,
        body.throttle_rate,
        body.uid,
        body.disabled,
        body.event_types,
        body.channels,
        body.metadata,
        (body.filter.clone().flatten(), filter_target(app)),
    )?;
    let keep_filter = body.filter.is_none();
    check_event_types_exist(state, org, app, &fields.event_types).await?;
    check_channels_allowed(app, &fields.channels)?;
    let resolved = resolve_app(state, org, app).await?;
    let app_id = resolved.id.clone();
    let replace = |f: EndpointFields| async {
        let updated = state
            .store
            .update_endpoint(
                org,
                &app_id,
                endpoint,
                Box::new(move |d| {
                    let keep_uid = f.uid.is_none();
                    let uid = d.uid.take();
                    let filter = d.filter.take();
                    f.apply(d);
                    if keep_uid {
                        d.uid = uid;
                    }
                    if keep_filter {
                        d.filter = filter;
                    }
                    Ok(())
                }),
            )
            .await?;
        Ok(updated.after)
    };
    if fields.uid.is_none() && !EndpointId::is_valid(endpoint) {
        fields.uid =
            Some(endpoint.parse().map_err(|e: hookd_core::InvalidValue| {
                ApiError::invalid(&["path", "endpoint_id"], e.message)
            })?);
    }
    let (ep, created) = upsert(
        || replace(fields.clone()),
        || async {
            if EndpointId::is_valid(endpoint) {
                return Err(StoreError::NotFound("endpoint"));
            }
            let data = fields
                .clone()
                .into_data(EndpointSecret::generate(), BTreeMap::new());
            state.store.create_endpoint(org, &app_id, data).await
        },
    )
    .await?;
    let kind = if created {
        "endpoint.created"
    } else {
        "endpoint.updated"
    };
    endpoint_event(state, org, &resolved, kind, &ep).await;
    Ok((ep, created))
}

/// Changes some fields of an endpoint: `endpoint.updated`, and `endpoint.disabled` /
/// `endpoint.enabled` when the change flipped it.
pub async fn change(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    patch: EndpointPatch,
) -> ApiResult<Endpoint> {
    let change = patch.parse(filter_target(app))?;
    if let Some(types) = &change.event_types {
        check_event_types_exist(state, org, app, types).await?;
    }
    if let Some(c) = &change.channels {
        check_channels_allowed(app, c)?;
    }
    let resolved = resolve_app(state, org, app).await?;
    let updated = state
        .store
        .update_endpoint(
            org,
            &resolved.id,
            endpoint,
            Box::new(move |d| {
                change.apply(d);
                Ok(())
            }),
        )
        .await?;
    let ep = updated.after;
    endpoint_event(state, org, &resolved, "endpoint.updated", &ep).await;
    match (updated.before.data.disabled, ep.data.disabled) {
        (false, true) => endpoint_event(state, org, &resolved, "endpoint.disabled", &ep).await,
        (true, false) => endpoint_event(state, org, &resolved, "endpoint.enabled", &ep).await,
        _ => {}
    }
    Ok(ep)
}

/// Applies `change` to an endpoint (a change of one part, such as its transformation)
/// and raises `endpoint.updated`.
pub(crate) async fn update_with(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    change: hookd_store::Mutation<EndpointData>,
) -> ApiResult<Endpoint> {
    let resolved = resolve_app(state, org, app).await?;
    let updated = state
        .store
        .update_endpoint(org, &resolved.id, endpoint, change)
        .await?;
    endpoint_event(state, org, &resolved, "endpoint.updated", &updated.after).await;
    Ok(updated.after)
}

/// A sample's channels (none when absent), checked as an endpoint's are.
pub(crate) fn parse_channel_list(list: Option<Vec<String>>) -> ApiResult<BTreeSet<ChannelName>> {
    parse_channels(list).map(Option::unwrap_or_default)
}

/// Deletes an endpoint.
pub async fn delete(state: &Service, org: &OrgId, app: &AppRef, endpoint: &str) -> ApiResult<()> {
    let resolved = resolve_app(state, org, app).await?;
    let ep = state.store.delete_endpoint(org, &resolved.id, endpoint).await?;
    endpoint_event(state, org, &resolved, "endpoint.deleted", &ep).await;
    Ok(())
}

/// The body of `POST .../endpoint/{endpoint_id}/filter/test`: a sample message (or,
/// for a destination, a received request) and, optionally, a filter to try instead of
/// the endpoint's own.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterTestIn {
    /// The filter to try; absent: the endpoint's saved one.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// The message's payload (a destination: the request's JSON body).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
    /// A sent message's event type.
    pub event_type: Option<String>,
    /// A sent message's channels.
    pub channels: Option<Vec<String>>,
    /// A received request's headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// A received request's query string, e.g. `shop=acme&topic=orders`.
    pub query: Option<String>,
    /// A received request's path after the receiving URL.
    pub path: Option<String>,
}

/// Whether the sample matched and, if not, the first clause that did not hold.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FilterTestOut {
    pub matched: bool,
    /// The JSON pointer, in the filter, of the clause that failed.
    pub pointer: Option<String>,
    /// What that clause asked for.
    pub expected: Option<String>,
    /// The value it found (absent when the field was missing).
    #[schema(value_type = Option<Object>)]
    pub found: Option<serde_json::Value>,
}

/// Matches a sample against the endpoint's filter, or the one given: 422 for a bad
/// filter or sample, 409 when there is no filter to try.
pub async fn test_filter(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: FilterTestIn,
) -> ApiResult<FilterTestOut> {
    let ep = get(state, org, app, endpoint).await?;
    let target = filter_target(app);
    let doc =
        match body.filter {
            Some(doc) => doc,
            None => ep.data.filter.map(|f| f.document()).ok_or_else(|| {
                ApiError::Conflict("the endpoint has no filter; give one in `filter`".into())
            })?,
        };
    let filter = Filter::parse(&doc, target).map_err(|e| filter_error(&["body", "filter"], e))?;
    let sent = target == FilterTarget::Sent;
    let refuse = |field: &str| {
        let kind = if sent {
            "an application's endpoint"
        } else {
            "a destination"
        };
        ApiError::invalid(
            &["body", field],
            format!("{field} is not part of a sample for {kind}"),
        )
    };
    if sent {
        for (field, given) in [
            ("headers", body.headers.is_some()),
            ("query", body.query.is_some()),
            ("path", body.path.is_some()),
        ] {
            if given {
                return Err(refuse(field));
            }
        }
    } else {
        for (field, given) in [
            ("eventType", body.event_type.is_some()),
            ("channels", body.channels.is_some()),
        ] {
            if given {
                return Err(refuse(field));
            }
        }
    }
    let event_type = body
        .event_type
        .map(|t| {
            parse_field::<EventTypeName>(&t, "eventType").map(|t| serde_json::Value::String(t.to_string()))
        })
        .transpose()?;
    let channels = parse_channels(body.channels)?.map(|c| {
        serde_json::Value::Array(
            c.iter()
                .map(|c| serde_json::Value::String(c.to_string()))
                .collect(),
        )
    });
    let headers = body
        .headers
        .map(|h| hookd_core::filter::headers_value(h.iter().map(|(k, v)| (k.as_str(), v.as_str()))));
    let query = body.query.as_deref().map(hookd_core::filter::query_value);
    let path = body.path.map(serde_json::Value::String);
    let subject = hookd_core::filter::Subject {
        body: body.payload.as_ref(),
        headers: headers.as_ref(),
        query: query.as_ref(),
        path: path.as_ref(),
        event_type: event_type.as_ref(),
        channels: channels.as_ref(),
        ..Default::default()
    };
    Ok(match filter.explain(&subject) {
        Ok(()) => FilterTestOut {
            matched: true,
            pointer: None,
            expected: None,
            found: None,
        },
        Err(why) => FilterTestOut {
            matched: false,
            pointer: Some(why.pointer),
            expected: Some(why.expected),
            found: why.found,
        },
    })
}

/// The custom headers; credential headers' values are withheld.
pub async fn headers(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
) -> ApiResult<EndpointHeadersOut> {
    let ep = get(state, org, app, endpoint).await?;
    let (sensitive, shown): (BTreeMap<_, _>, BTreeMap<_, _>) = ep
        .data
        .headers
        .into_iter()
        .partition(|(name, _)| endpoint_headers::is_sensitive(name));
    Ok(EndpointHeadersOut {
        headers: shown,
        sensitive: sensitive.into_keys().collect(),
    })
}

/// Replaces the custom headers.
pub async fn set_headers(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: EndpointHeadersIn,
) -> ApiResult<()> {
    check_headers(&body.headers)?;
    change_endpoint(
        state,
        org,
        app,
        endpoint,
        Box::new(move |d| {
            d.headers = body.headers;
            Ok(())
        }),
    )
    .await?;
    Ok(())
}

/// Sets or removes some custom headers.
pub async fn patch_headers(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: EndpointHeadersPatchIn,
) -> ApiResult<()> {
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
        state,
        org,
        app,
        endpoint,
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
    Ok(())
}

/// The signing secret.
pub async fn secret(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
) -> ApiResult<EndpointSecretOut> {
    let ep = get(state, org, app, endpoint).await?;
    Ok(EndpointSecretOut {
        key: ep.data.secret.expose(),
    })
}

/// Rotates the signing secret; the old one keeps signing (next to the new one) for the
/// grace period. Answers the new secret.
pub async fn rotate_secret(
    state: &Service,
    org: &OrgId,
    app: &AppRef,
    endpoint: &str,
    body: EndpointSecretRotateIn,
) -> ApiResult<EndpointSecretOut> {
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
        state,
        org,
        app,
        endpoint,
        Box::new(move |d| {
            d.rotate_secret(new, Utc::now(), chrono::Duration::seconds(i64::from(grace)));
            Ok(())
        }),
    )
    .await?;
    Ok(EndpointSecretOut { key })
}
