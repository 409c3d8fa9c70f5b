//! `/ingest/api/v1/source/{source_id}/endpoint`: a source's destinations.
//!
//! They are endpoints of the source's hidden application: the same service functions
//! as application endpoints, with [`AppRef::Source`], so they get the same validation,
//! secrets, rotation, headers and throttling — and the same delivery engine. They have no event-type or channel filters: a destination
//! receives every accepted request.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_store::Order;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::Created;
use crate::http::auth::Tenant;
use crate::http::error::ApiResult;
use crate::http::extract::{ApiJson, ApiJsonOrDefault, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::endpoint::{
    self, AppRef, EndpointHeadersIn, EndpointHeadersOut, EndpointIn, EndpointOut, EndpointSecretOut,
    EndpointSecretRotateIn, EndpointUpsertIn, FilterTestIn, FilterTestOut,
};
use crate::service::transformation::{self, EndpointTransformationOut, EndpointTransformationPatch};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, upsert, delete))
        .routes(routes!(get_headers, set_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_filter))
        .routes(routes!(get_transformation, patch_transformation))
}

/// List a source's destinations.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = endpoint::list(&state, &tenant.org, &AppRef::Source(source), &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

/// Create a destination: every accepted request is forwarded to it.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/endpoint", tag = "Ingest Endpoint",
    params(("source_id" = String, Path)), request_body = EndpointIn, responses((status = 201, body = EndpointOut)))]
async fn create(
    tenant: Tenant,
    State(state): State<Service>,
    Path(source): Path<String>,
    ApiJson(body): ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    let ep = endpoint::create(&state, &tenant.org, &AppRef::Source(source), body).await?;
    Ok(Created::new(ep.into()))
}

/// Get a destination.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointOut)))]
async fn get(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = endpoint::get(&state, &tenant.org, &AppRef::Source(source), &endpoint).await?;
    Ok(Json(ep.into()))
}

/// Create or replace a destination.
#[utoipa::path(put, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointUpsertIn,
    responses((status = 200, body = EndpointOut), (status = 201, description = "created (a uid that named none)", body = EndpointOut)))]
async fn upsert(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    let (ep, created) =
        endpoint::replace(&state, &tenant.org, &AppRef::Source(source), &endpoint, body).await?;
    Ok(Created::new_if(created, ep.into()))
}

/// Delete a destination.
#[utoipa::path(delete, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 204)))]
async fn delete(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    endpoint::delete(&state, &tenant.org, &AppRef::Source(source), &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a destination's custom headers.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    Ok(Json(
        endpoint::headers(&state, &tenant.org, &AppRef::Source(source), &endpoint).await?,
    ))
}

/// Replace a destination's custom headers.
#[utoipa::path(put, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/headers", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersIn,
    responses((status = 204)))]
async fn set_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::set_headers(&state, &tenant.org, &AppRef::Source(source), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a destination's signing secret.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointSecretOut>> {
    Ok(Json(
        endpoint::secret(&state, &tenant.org, &AppRef::Source(source), &endpoint).await?,
    ))
}

/// Rotate a destination's signing secret (204, as the Ingest API says; the old secret
/// keeps signing for `gracePeriodSeconds`).
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = Option<EndpointSecretRotateIn>,
    responses((status = 204)))]
async fn rotate_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<StatusCode> {
    let _new_secret =
        endpoint::rotate_secret(&state, &tenant.org, &AppRef::Source(source), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The destination's transformation (docs/transformations.md): off, with no code,
/// until one is set.
#[utoipa::path(get, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointTransformationOut)))]
async fn get_transformation(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointTransformationOut>> {
    Ok(Json(
        transformation::get(&state, &tenant.org, &AppRef::Source(source), &endpoint).await?,
    ))
}

/// Set the code, switch it on or off, or set its variables. It runs before each
/// forward of a received request, which it sees as `webhook.request`.
#[utoipa::path(patch, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/transformation", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointTransformationPatch,
    responses((status = 204), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn patch_transformation(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointTransformationPatch>,
) -> ApiResult<StatusCode> {
    transformation::set(&state, &tenant.org, &AppRef::Source(source), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// hookd: try the destination's payload filter (or the `filter` given) on a sample
/// received request: matched or not, and the clause that did not hold.
#[utoipa::path(post, path = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}/filter/test", tag = "Ingest Endpoint",
    params(("source_id" = String, Path), ("endpoint_id" = String, Path)), request_body = FilterTestIn,
    responses((status = 200, body = FilterTestOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn test_filter(
    tenant: Tenant,
    State(state): State<Service>,
    Path((source, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<FilterTestIn>,
) -> ApiResult<Json<FilterTestOut>> {
    Ok(Json(
        endpoint::test_filter(&state, &tenant.org, &AppRef::Source(source), &endpoint, body).await?,
    ))
}
