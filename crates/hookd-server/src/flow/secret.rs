//! `/api/v1/flow-secret`: the organisation's secrets that flows name (SMTP and Twilio
//! credentials). Write-only: a secret is put, listed by name and deleted, never read
//! back (`crate::service::secret`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::name::DataName;
use hookd_store::{FlowSecret, Order};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::Created;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, HttpErrorOut, ValidationErrorOut};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::secret;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets))
        .routes(routes!(put_secret, delete_secret))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretIn {
    /// The secret, a JSON object: `{"smtpUrl": "smtps://user:pass@host", "from":
    /// "Shop <shop@example.com>"}` for email steps, `{"accountSid", "authToken"}` for
    /// SMS steps.
    #[schema(value_type = Object)]
    pub value: Value,
}

/// A secret as listed: its name and dates, never its value.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretOut {
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<FlowSecret> for SecretOut {
    fn from(s: FlowSecret) -> Self {
        Self {
            name: s.name.as_str().to_owned(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

fn name(value: &str) -> ApiResult<DataName> {
    value
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", "name"], e.message))
}

/// List the organisation's secrets by name (never their values).
#[utoipa::path(get, path = "/api/v1/flow-secret", tag = "Flow", params(Pagination),
    responses((status = 200, body = ListResponse<SecretOut>)))]
async fn list_secrets(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<SecretOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = secret::list(&state, &tenant.org, &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |s| s.name.as_str().to_owned(),
        SecretOut::from,
    )))
}

/// Create or replace a secret. It is sealed under the server's secret key before it is
/// stored (docs/security.md#secrets-at-rest); nothing reads it back.
#[utoipa::path(put, path = "/api/v1/flow-secret/{name}", tag = "Flow", request_body = SecretIn,
    params(("name" = String, Path)),
    responses((status = 201, body = SecretOut), (status = 200, body = SecretOut),
        (status = 422, body = ValidationErrorOut)))]
async fn put_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<SecretIn>,
) -> ApiResult<Created<SecretOut>> {
    let (stored, created) = secret::put(&state, &tenant.org, &name(&key)?, &body.value).await?;
    Ok(Created::new_if(created, stored.into()))
}

/// Delete a secret; the steps that name it fail until it is put again.
#[utoipa::path(delete, path = "/api/v1/flow-secret/{name}", tag = "Flow",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = HttpErrorOut)))]
async fn delete_secret(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    secret::delete(&state, &tenant.org, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
