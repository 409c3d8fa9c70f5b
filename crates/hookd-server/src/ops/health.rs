//! `/api/v1/health`: 204 once the server can reach its database, 503 otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::error::ApiError;
use crate::service::Service;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ping))
}

/// Verify the API server is up and its database answers. Needs no token.
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", security(()),
    responses((status = 204, description = "ready"), (status = 503, body = crate::http::error::HttpErrorOut)))]
async fn health(State(state): State<Service>) -> Result<StatusCode, ApiError> {
    state.store.ping().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Liveness: the process answers HTTP. Needs no token.
#[utoipa::path(get, path = "/api/v1/health/ping", tag = "Health", security(()),
    responses((status = 204, description = "alive")))]
async fn ping() -> StatusCode {
    StatusCode::NO_CONTENT
}
