//! `/api/v1/operational-webhook/endpoint`: the organisation's operational webhook
//! endpoints, which receive hookd's own events (`endpoint.disabled`,
//! `message.attempt.exhausted`, ...; see `hookd_dispatch::events::EVENT_TYPES`).
//!
//! They are endpoints of the organisation's hidden operational application, served by
//! the same handlers as application endpoints (the path has no `{app_id}`, which
//! [`AppRef`](crate::api::endpoint::AppRef) reads as "operational").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::Created;
use crate::api::endpoint::{
    self, AppRef, EndpointHeadersIn, EndpointHeadersOut, EndpointIn, EndpointKey, EndpointOut,
    EndpointSecretOut, EndpointSecretRotateIn, EndpointUpsertIn,
};
use crate::auth::Tenant;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiJsonOrDefault, ApiQuery};
use crate::pagination::{ListResponse, Pagination};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, upsert, delete))
        .routes(routes!(get_headers, set_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
}

/// List the operational webhook endpoints.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint", tag = "Webhook Endpoint",
    params(Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    q: ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    endpoint::list_endpoints(t, s, a, q).await
}

/// Create an operational webhook endpoint.
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint", tag = "Webhook Endpoint",
    request_body = EndpointIn, responses((status = 201, body = EndpointOut)))]
async fn create(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    b: ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    endpoint::create_endpoint(t, s, a, b).await
}

/// Get an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointOut)))]
async fn get(t: Tenant, s: State<AppState>, a: AppRef, e: EndpointKey) -> ApiResult<Json<EndpointOut>> {
    endpoint::get_endpoint(t, s, a, e).await
}

/// Create or replace an operational webhook endpoint.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = EndpointUpsertIn, responses((status = 200, body = EndpointOut)))]
async fn upsert(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    endpoint::update_endpoint(t, s, a, e, b).await
}

/// Delete an operational webhook endpoint.
#[utoipa::path(delete, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 204)))]
async fn delete(t: Tenant, s: State<AppState>, a: AppRef, e: EndpointKey) -> ApiResult<StatusCode> {
    endpoint::delete_endpoint(t, s, a, e).await
}

/// Get the custom headers of an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<Json<EndpointHeadersOut>> {
    endpoint::get_headers(t, s, a, e).await
}

/// Replace the custom headers of an operational webhook endpoint.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = EndpointHeadersIn, responses((status = 204)))]
async fn set_headers(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::set_headers(t, s, a, e, b).await
}

/// Get the signing secret of an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<Json<EndpointSecretOut>> {
    endpoint::get_secret(t, s, a, e).await
}

/// Rotate the signing secret of an operational webhook endpoint (200 with the new
/// secret, as for application endpoints).
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut)))]
async fn rotate_secret(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<Json<EndpointSecretOut>> {
    endpoint::rotate_secret(t, s, a, e, b).await
}
