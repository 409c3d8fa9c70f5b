//! `/ingest/api/v1/source/{source_id}/endpoint`: a source's destinations.
//!
//! They are endpoints of the source's hidden application, served by the same handlers
//! as application endpoints (the `{source_id}` in the path makes
//! [`AppRef`](crate::api::endpoint::AppRef) mean "that source's application"), so they
//! get the same validation, secrets, rotation, headers and throttling — and the same
//! delivery engine. They have no event-type or channel filters: a destination
//! receives every accepted request.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
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
        .routes(routes!(get_transformation, patch_transformation))
}

/// List a source's destinations.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    q: ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    endpoint::list_endpoints(t, s, a, q).await
}

/// Create a destination: every accepted request is forwarded to it.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/endpoint", tag = "Ingest Endpoint",
    params(("source_id" = String, Path)), request_body = EndpointIn, responses((status = 201, body = EndpointOut)))]
async fn create(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    b: ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    endpoint::create_endpoint(t, s, a, b).await
}

/// Get a destination.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointOut)))]
async fn get(t: Tenant, s: State<AppState>, a: AppRef, e: EndpointKey) -> ApiResult<Json<EndpointOut>> {
    endpoint::get_endpoint(t, s, a, e).await
}

/// Create or replace a destination.
#[utoipa::path(put, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointUpsertIn,
    responses((status = 200, body = EndpointOut)))]
async fn upsert(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    endpoint::update_endpoint(t, s, a, e, b).await
}

/// Delete a destination.
#[utoipa::path(delete, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 204)))]
async fn delete(t: Tenant, s: State<AppState>, a: AppRef, e: EndpointKey) -> ApiResult<StatusCode> {
    endpoint::delete_endpoint(t, s, a, e).await
}

/// Get a destination's custom headers.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<Json<EndpointHeadersOut>> {
    endpoint::get_headers(t, s, a, e).await
}

/// Replace a destination's custom headers.
#[utoipa::path(put, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersIn,
    responses((status = 204)))]
async fn set_headers(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::set_headers(t, s, a, e, b).await
}

/// Get a destination's signing secret.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<Json<EndpointSecretOut>> {
    endpoint::get_secret(t, s, a, e).await
}

/// Rotate a destination's signing secret (204, as the Ingest API says; the old secret
/// keeps signing for `gracePeriodSeconds`).
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointSecretRotateIn,
    responses((status = 204)))]
async fn rotate_secret(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
    b: ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<StatusCode> {
    let _new_secret = endpoint::rotate_secret(t, s, a, e, b).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Transformations are not run by hookd: always disabled, and enabling one is refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransformationOut {
    pub code: Option<String>,
    pub enabled: bool,
}

/// The destination's transformation: hookd runs none, so it is always off.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = TransformationOut)))]
async fn get_transformation(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<Json<TransformationOut>> {
    let _exists = endpoint::get_endpoint(t, s, a, e).await?;
    Ok(Json(TransformationOut {
        code: None,
        enabled: false,
    }))
}

/// Refused (501): hookd does not run transformation code.
#[utoipa::path(patch, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 501, body = crate::error::HttpErrorOut)))]
async fn patch_transformation(
    t: Tenant,
    s: State<AppState>,
    a: AppRef,
    e: EndpointKey,
) -> ApiResult<StatusCode> {
    let _exists = endpoint::get_endpoint(t, s, a, e).await?;
    Err(crate::error::ApiError::NotImplemented(
        "hookd does not run transformation code; destinations receive the request as it arrived".into(),
    ))
}
