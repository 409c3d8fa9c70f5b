//! `/api/v1/operational-webhook/endpoint`: the organisation's operational webhook
//! endpoints, which receive hookd's own events (`endpoint.disabled`,
//! `message.attempt.exhausted`, ...; see `hookd_dispatch::events::EVENT_TYPES`).
//!
//! They are endpoints of the organisation's hidden operational application: the same
//! service functions as application endpoints, with [`AppRef::Operational`].

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

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, upsert, delete))
        .routes(routes!(get_headers, set_headers))
        .routes(routes!(get_secret))
        .routes(routes!(rotate_secret))
        .routes(routes!(test_filter))
}

/// List the operational webhook endpoints.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint", tag = "Webhook Endpoint",
    params(Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = endpoint::list(&state, &tenant.org, &AppRef::Operational, &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

/// Create an operational webhook endpoint.
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint", tag = "Webhook Endpoint",
    request_body = EndpointIn, responses((status = 201, body = EndpointOut)))]
async fn create(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    let ep = endpoint::create(&state, &tenant.org, &AppRef::Operational, body).await?;
    Ok(Created::new(ep.into()))
}

/// Get an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointOut)))]
async fn get(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = endpoint::get(&state, &tenant.org, &AppRef::Operational, &endpoint).await?;
    Ok(Json(ep.into()))
}

/// Create or replace an operational webhook endpoint.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = EndpointUpsertIn,
    responses((status = 200, body = EndpointOut), (status = 201, description = "created (a uid that named none)", body = EndpointOut)))]
async fn upsert(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
    ApiJson(body): ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    let (ep, created) = endpoint::replace(&state, &tenant.org, &AppRef::Operational, &endpoint, body).await?;
    Ok(Created::new_if(created, ep.into()))
}

/// Delete an operational webhook endpoint.
#[utoipa::path(delete, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 204)))]
async fn delete(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
) -> ApiResult<StatusCode> {
    endpoint::delete(&state, &tenant.org, &AppRef::Operational, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the custom headers of an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointHeadersOut)))]
async fn get_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    Ok(Json(
        endpoint::headers(&state, &tenant.org, &AppRef::Operational, &endpoint).await?,
    ))
}

/// Replace the custom headers of an operational webhook endpoint.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = EndpointHeadersIn, responses((status = 204)))]
async fn set_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
    ApiJson(body): ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::set_headers(&state, &tenant.org, &AppRef::Operational, &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the signing secret of an operational webhook endpoint.
#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), responses((status = 200, body = EndpointSecretOut)))]
async fn get_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
) -> ApiResult<Json<EndpointSecretOut>> {
    Ok(Json(
        endpoint::secret(&state, &tenant.org, &AppRef::Operational, &endpoint).await?,
    ))
}

/// Rotate the signing secret of an operational webhook endpoint (200 with the new
/// secret, as for application endpoints).
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = Option<EndpointSecretRotateIn>,
    responses((status = 200, body = EndpointSecretOut)))]
async fn rotate_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<Json<EndpointSecretOut>> {
    Ok(Json(
        endpoint::rotate_secret(&state, &tenant.org, &AppRef::Operational, &endpoint, body).await?,
    ))
}

/// hookd: try an operational webhook endpoint's payload filter (or the `filter` given)
/// on a sample event: matched or not, and the clause that did not hold.
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/filter/test", tag = "Webhook Endpoint",
    params(("endpoint_id" = String, Path)), request_body = FilterTestIn,
    responses((status = 200, body = FilterTestOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn test_filter(
    tenant: Tenant,
    State(state): State<Service>,
    Path(endpoint): Path<String>,
    ApiJson(body): ApiJson<FilterTestIn>,
) -> ApiResult<Json<FilterTestOut>> {
    Ok(Json(
        endpoint::test_filter(&state, &tenant.org, &AppRef::Operational, &endpoint, body).await?,
    ))
}
