//! `/api/v1/app/{app_id}/endpoint`: an application's endpoints, their custom headers,
//! signing secret and its rotation (the work is `service::endpoint`'s).

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
    self, AppRef, EndpointHeadersIn, EndpointHeadersOut, EndpointHeadersPatchIn, EndpointIn, EndpointOut,
    EndpointPatch, EndpointSecretOut, EndpointSecretRotateIn, EndpointUpsertIn, FilterTestIn, FilterTestOut,
};
use crate::service::transformation::{
    self, EndpointTransformationOut, EndpointTransformationPatch, TransformationSimulateIn,
    TransformationSimulateOut,
};

pub fn router() -> OpenApiRouter<Service> {
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
        .routes(routes!(test_filter))
        .routes(routes!(get_transformation, patch_transformation))
        .routes(routes!(simulate_transformation))
}

/// List an application's endpoints.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path), Pagination), responses((status = 200, body = ListResponse<EndpointOut>)))]
pub(crate) async fn list_endpoints(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = endpoint::list(&state, &tenant.org, &AppRef::Key(app), &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path)), request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
pub(crate) async fn create_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<EndpointIn>,
) -> ApiResult<Created<EndpointOut>> {
    let ep = endpoint::create(&state, &tenant.org, &AppRef::Key(app), body).await?;
    Ok(Created::new(ep.into()))
}

/// Get an endpoint by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
pub(crate) async fn get_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = endpoint::get(&state, &tenant.org, &AppRef::Key(app), &endpoint).await?;
    Ok(Json(ep.into()))
}

/// Create or replace an endpoint (its secret and custom headers are kept).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointUpsertIn,
    responses((status = 200, body = EndpointOut), (status = 201, body = EndpointOut)))]
pub(crate) async fn update_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointUpsertIn>,
) -> ApiResult<Created<EndpointOut>> {
    let (ep, created) = endpoint::replace(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?;
    Ok(Created::new_if(created, ep.into()))
}

/// Change some fields of an endpoint.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut)))]
pub(crate) async fn patch_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(patch): ApiJson<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let ep = endpoint::change(&state, &tenant.org, &AppRef::Key(app), &endpoint, patch).await?;
    Ok(Json(ep.into()))
}

/// Delete an endpoint.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 204)))]
pub(crate) async fn delete_endpoint(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    endpoint::delete(&state, &tenant.org, &AppRef::Key(app), &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the custom headers sent with every webhook.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
pub(crate) async fn get_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    Ok(Json(
        endpoint::headers(&state, &tenant.org, &AppRef::Key(app), &endpoint).await?,
    ))
}

/// Replace the custom headers.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersIn,
    responses((status = 204)))]
pub(crate) async fn set_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    endpoint::set_headers(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set or remove some custom headers.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointHeadersPatchIn,
    responses((status = 204)))]
pub(crate) async fn patch_headers(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointHeadersPatchIn>,
) -> ApiResult<StatusCode> {
    endpoint::patch_headers(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the endpoint's signing secret.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
pub(crate) async fn get_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointSecretOut>> {
    Ok(Json(
        endpoint::secret(&state, &tenant.org, &AppRef::Key(app), &endpoint).await?,
    ))
}

/// Rotate the signing secret. The old secret keeps signing (next to the new one) for
/// the grace period. Answers 200 with the new secret (the Svix spec says 204; the
/// official SDKs parse a body, and both work with this).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = Option<EndpointSecretRotateIn>,
    responses((status = 200, body = EndpointSecretOut)))]
pub(crate) async fn rotate_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<EndpointSecretRotateIn>,
) -> ApiResult<Json<EndpointSecretOut>> {
    Ok(Json(
        endpoint::rotate_secret(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?,
    ))
}

/// hookd: try the endpoint's payload filter (or the `filter` given) on a sample message:
/// matched or not, and the clause that did not hold.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/filter/test", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = FilterTestIn,
    responses((status = 200, body = FilterTestOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
pub(crate) async fn test_filter(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<FilterTestIn>,
) -> ApiResult<Json<FilterTestOut>> {
    Ok(Json(
        endpoint::test_filter(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?,
    ))
}

/// The endpoint's transformation (docs/transformations.md): off, with no code, until
/// one is set.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointTransformationOut)))]
pub(crate) async fn get_transformation(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
) -> ApiResult<Json<EndpointTransformationOut>> {
    Ok(Json(
        transformation::get(&state, &tenant.org, &AppRef::Key(app), &endpoint).await?,
    ))
}

/// Set the code, switch it on or off, or set its variables. The code is checked
/// (size, syntax) but not run; it runs at each attempt from then on, pending retries
/// included.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = EndpointTransformationPatch,
    responses((status = 204), (status = 422, body = crate::http::error::ValidationErrorOut)))]
pub(crate) async fn patch_transformation(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<EndpointTransformationPatch>,
) -> ApiResult<StatusCode> {
    transformation::set(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run transformation code on a sample message for this endpoint, keeping nothing:
/// what would be sent, or 400 `transformation_failed` with the script's error.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation/simulate", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = TransformationSimulateIn,
    responses((status = 200, body = TransformationSimulateOut), (status = 400, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
pub(crate) async fn simulate_transformation(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<TransformationSimulateIn>,
) -> ApiResult<Json<TransformationSimulateOut>> {
    Ok(Json(
        transformation::simulate(&state, &tenant.org, &AppRef::Key(app), &endpoint, body).await?,
    ))
}
