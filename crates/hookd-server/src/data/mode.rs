//! `/api/v1/app/{app_id}/mode`: an application's portal modes. A mode binds one HTTP
//! method at `/h/{account}/{app}/{name}/{data...}` to one operation on a collection or
//! leaderboard (or publishing a message), with an optional JSON Schema for the body.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::data::ModeOperation;
use hookd_core::name::DataName;
use hookd_store::{Definition, DefinitionKind, DefinitionSpec, ModeData, mode_key};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::data::path_name;
use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::{ApiJson, ApiQuery, double_option};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::data::{self, app_id, list_definitions};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_modes, create_mode))
        .routes(routes!(get_mode, patch_mode, delete_mode))
}

/// The methods a mode may bind.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModeIn {
    /// The path segment after the application: `/h/{account}/{app}/{name}/...`.
    #[schema(example = "score", max_length = 64, pattern = r"^[a-zA-Z0-9\-_]+$")]
    pub name: String,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    #[schema(example = "POST")]
    pub method: String,
    /// `document.get`, `document.put`, `document.patch`, `document.increment`,
    /// `document.delete`, `document.list`, `leaderboard.submit`, `leaderboard.top`,
    /// `leaderboard.rank`, `message.publish`, `capture` or `flow.run` (runs the flows
    /// whose trigger is this mode).
    #[schema(example = "leaderboard.submit")]
    pub operation: String,
    /// The collection (document operations, capture) or leaderboard it works on; none
    /// for `message.publish` and `flow.run`.
    #[schema(example = "weekly-points")]
    pub target: Option<String>,
    /// A JSON Schema the request body must satisfy.
    #[schema(value_type = Option<Object>)]
    pub body_schema: Option<Value>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ModePatch {
    pub operation: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub target: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub body_schema: Option<Option<Value>>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModeOut {
    pub name: String,
    pub method: String,
    #[schema(value_type = String)]
    pub operation: ModeOperation,
    #[schema(value_type = Option<String>)]
    pub target: Option<DataName>,
    #[schema(value_type = Option<Object>)]
    pub body_schema: Option<Value>,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ModeOut {
    fn new(def: Definition) -> ApiResult<Self> {
        let DefinitionSpec::Mode(data) = def.spec else {
            return Err(ApiError::not_found("mode"));
        };
        let (name, method) = def.name.split_once(' ').unwrap_or((&def.name, ""));
        Ok(Self {
            name: name.to_owned(),
            method: method.to_owned(),
            operation: data.operation,
            target: data.target,
            body_schema: data.body_schema,
            description: data.description,
            created_at: def.created_at,
            updated_at: def.updated_at,
        })
    }
}

const KIND: DefinitionKind = DefinitionKind::Mode;

fn method(value: &str, loc: &[&str]) -> ApiResult<String> {
    let upper = value.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        Err(ApiError::invalid(loc, format!("one of {}", METHODS.join(", "))))
    }
}

/// List the application's modes, by name and method.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/mode", tag = "Data", params(Pagination),
    responses((status = 200, body = ListResponse<ModeOut>)))]
async fn list_modes(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<ModeOut>>> {
    Ok(Json(
        list_definitions(&state, &tenant.org, &app, KIND, &page, ModeOut::new).await?,
    ))
}

/// Create a mode.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/mode", tag = "Data", request_body = ModeIn,
    responses((status = 201, body = ModeOut), (status = 409, body = crate::http::error::HttpErrorOut),
        (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn create_mode(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<ModeIn>,
) -> ApiResult<(StatusCode, Json<ModeOut>)> {
    let name = crate::http::parse_field::<DataName>(&body.name, "name")?;
    let method = method(&body.method, &["body", "method"])?;
    let operation = crate::http::parse_field::<ModeOperation>(&body.operation, "operation")?;
    let target = body
        .target
        .as_deref()
        .map(|t| crate::http::parse_field::<DataName>(t, "target"))
        .transpose()?;
    let app = app_id(&state, &tenant.org, &app).await?;
    let mode = ModeData {
        description: body.description,
        operation,
        target,
        body_schema: body.body_schema,
    };
    let def = data::create_mode(&state, &tenant.org, &app, &name, &method, mode).await?;
    Ok((StatusCode::CREATED, Json(ModeOut::new(def)?)))
}

/// Get a mode by name and method.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/mode/{name}/{method}", tag = "Data",
    responses((status = 200, body = ModeOut), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn get_mode(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, m)): Path<(String, String, String)>,
) -> ApiResult<Json<ModeOut>> {
    let (name, m) = (path_name(&name, "name")?, method(&m, &["path", "method"])?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let def = state
        .store
        .get_definition(&tenant.org, &app, KIND, &mode_key(&name, &m))
        .await?;
    Ok(Json(ModeOut::new(def)?))
}

/// Change a mode.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/mode/{name}/{method}", tag = "Data", request_body = ModePatch,
    responses((status = 200, body = ModeOut), (status = 422, body = crate::http::error::ValidationErrorOut)))]
async fn patch_mode(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, m)): Path<(String, String, String)>,
    ApiJson(patch): ApiJson<ModePatch>,
) -> ApiResult<Json<ModeOut>> {
    let (name, m) = (path_name(&name, "name")?, method(&m, &["path", "method"])?);
    let app = app_id(&state, &tenant.org, &app).await?;
    let operation = patch
        .operation
        .as_deref()
        .map(|op| crate::http::parse_field::<ModeOperation>(op, "operation"))
        .transpose()?;
    let target = patch
        .target
        .map(|t| {
            t.as_deref()
                .map(|t| crate::http::parse_field::<DataName>(t, "target"))
                .transpose()
        })
        .transpose()?;
    let def = data::change_mode(&state, &tenant.org, &app, &mode_key(&name, &m), move |mode| {
        if let Some(op) = operation {
            mode.operation = op;
        }
        if let Some(target) = target {
            mode.target = target;
        }
        if let Some(schema) = patch.body_schema {
            mode.body_schema = schema;
        }
        if let Some(d) = patch.description {
            mode.description = d;
        }
    })
    .await?;
    Ok(Json(ModeOut::new(def)?))
}

/// Delete a mode.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/mode/{name}/{method}", tag = "Data",
    responses((status = 204), (status = 404, body = crate::http::error::HttpErrorOut)))]
async fn delete_mode(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app, name, m)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (name, m) = (path_name(&name, "name")?, method(&m, &["path", "method"])?);
    let app = app_id(&state, &tenant.org, &app).await?;
    data::delete_mode(&state, &tenant.org, &app, &mode_key(&name, &m)).await?;
    Ok(StatusCode::NO_CONTENT)
}
