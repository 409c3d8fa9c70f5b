//! `/api/v1/app/{app_id}/api-key`: the API keys of an application's data API modes
//! (scopes read/write, optionally only some modes, a rate per key), and
//! `/api/v1/usage`: the organisation's data usage per day.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use hookd_core::id::ApiKeyId;
use hookd_core::name::DataName;
use hookd_store::{ApiKeyRecord, Order};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::auth;
use crate::service::data::{self, app_id};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(get_api_key, revoke_api_key))
        .routes(routes!(get_usage))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiKeyIn {
    #[schema(example = "ios-app")]
    pub name: String,
    /// `read` and/or `write`.
    #[schema(example = json!(["read", "write"]))]
    pub scopes: Vec<String>,
    /// Only these modes (default: every mode of the application).
    pub modes: Option<Vec<String>>,
    /// Requests per second, 1 to 1,000,000 (default: the server's
    /// `data_key_rate_limit`).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub rate_limit: Option<u32>,
}

/// The highest `rateLimit` a key may have.

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyOut {
    #[schema(value_type = String)]
    pub id: ApiKeyId,
    pub name: String,
    pub scopes: Vec<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub modes: Option<BTreeSet<DataName>>,
    pub rate_limit: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key itself: shown once, when it is created; only its hash is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyOut {
    fn new(r: ApiKeyRecord, key: Option<String>) -> Self {
        let mut scopes = Vec::new();
        if r.data.read {
            scopes.push("read".into());
        }
        if r.data.write {
            scopes.push("write".into());
        }
        Self {
            id: r.id,
            name: r.data.name,
            scopes,
            modes: r.data.modes,
            rate_limit: r.data.rate_limit,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            key,
        }
    }
}

/// List the application's API keys (revoked ones too), oldest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/api-key", tag = "Data", params(Pagination),
    responses((status = 200, body = ListResponse<ApiKeyOut>)))]
async fn list_api_keys(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<ApiKeyOut>>> {
    let app = app_id(&state, &tenant.org, &app).await?;
    let page = state
        .store
        .list_api_keys(&tenant.org, &app, &page.to_query(Order::Ascending)?)
        .await?;
    Ok(Json(ListResponse::from_page(
        page,
        |k| k.id.to_string(),
        |k| ApiKeyOut::new(k, None),
    )))
}

/// Create an API key. The answer's `key` is the only time the key is shown.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/api-key", tag = "Data", request_body = ApiKeyIn,
    responses((status = 201, body = ApiKeyOut), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_api_key(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    let data = auth::api_key_data(body.name, &body.scopes, body.modes.as_deref(), body.rate_limit)?;
    let app = app_id(&state, &tenant.org, &app).await?;
    let (record, key) = auth::issue_api_key(state.store.as_ref(), &tenant.org, &app, data).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyOut::new(record, Some(key.reveal()))),
    ))
}

fn key_id(id: &str) -> ApiResult<ApiKeyId> {
    id.parse().map_err(|_| ApiError::not_found("API key"))
}

/// Get an API key (never its secret).
#[utoipa::path(get, path = "/api/v1/app/{app_id}/api-key/{key_id}", tag = "Data",
    responses((status = 200, body = ApiKeyOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_api_key(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<Json<ApiKeyOut>> {
    let id = key_id(&id)?;
    let app = app_id(&state, &tenant.org, &app).await?;
    let record = state
        .store
        .find_api_key(&id)
        .await?
        .filter(|k| k.org_id == tenant.org && k.app_id == app)
        .ok_or_else(|| ApiError::not_found("API key"))?;
    Ok(Json(ApiKeyOut::new(record, None)))
}

/// Revoke an API key: refused from then on (within a second on every node).
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/api-key/{key_id}", tag = "Data",
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn revoke_api_key(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = key_id(&id)?;
    let app = app_id(&state, &tenant.org, &app).await?;
    data::revoke_api_key(&state, &tenant.org, &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// First day (UTC), default 30 days ago.
    pub since: Option<NaiveDate>,
    /// Last day (UTC), default today.
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageDayOut {
    pub day: NaiveDate,
    pub reads: u64,
    pub writes: u64,
    pub credits: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageOut {
    pub data: Vec<UsageDayOut>,
    /// Credits an account may spend per day; `null`: no quota.
    pub daily_credit_quota: Option<u64>,
    pub read_credits: u64,
    pub write_credits: u64,
}

/// The organisation's data usage per day (UTC), counted every few seconds. Days
/// without usage are left out.
#[utoipa::path(get, path = "/api/v1/usage", tag = "Data", params(UsageQuery),
    responses((status = 200, body = UsageOut)))]
async fn get_usage(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<UsageOut>> {
    let until = q.until.unwrap_or_else(|| Utc::now().date_naive());
    let since = q.since.unwrap_or(until - chrono::Days::new(30));
    if since > until || (until - since).num_days() > 366 {
        return Err(ApiError::invalid(
            &["query", "since"],
            "since must be at most 366 days before until",
        ));
    }
    let days = data::usage(&state, &tenant.org, since, until).await?;
    let config = &state.config;
    Ok(Json(UsageOut {
        data: days
            .into_iter()
            .map(|d| UsageDayOut {
                day: d.day,
                reads: d.count.reads,
                writes: d.count.writes,
                credits: d.count.credits,
            })
            .collect(),
        daily_credit_quota: (config.data_daily_credit_quota > 0).then_some(config.data_daily_credit_quota),
        read_credits: config.data_read_credits,
        write_credits: config.data_write_credits,
    }))
}
