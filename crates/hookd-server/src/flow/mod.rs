//! `/api/v1/flow` and `/api/v1/flow-run`: flows (a trigger, then ordered steps) and
//! the log of their runs; `/api/v1/flow-secret` ([`secret`]): the secrets they name. What a flow may say is `hookd_flow::definition`'s; what runs
//! it is `crate::service::flow`. A definition is taken as JSON and kept as given, so
//! its errors name the JSON pointer of the field at fault (`loc: ["body", "steps",
//! "1", "key"]`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::FlowRunId;
use hookd_flow::RunStatus;
use hookd_store::{FlowRun, Order, StoredFlow};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, HttpErrorOut, ValidationErrorOut};
use crate::http::extract::{ApiJson, ApiJsonOrDefault, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::service::Service;
use crate::service::flow;

pub mod secret;

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .merge(secret::router())
        .routes(routes!(list_flows, create_flow))
        .routes(routes!(get_flow, replace_flow, patch_flow, delete_flow))
        .routes(routes!(run_flow))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(cancel_run))
        .routes(routes!(rerun_run))
}

/// A flow's definition (docs/flows.md has every trigger and step).
/// The body is read as JSON and checked by `Flow::parse` (so errors name the JSON
/// pointer); this is its schema in the OpenAPI document.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct FlowIn {
    /// Unique in the organisation; a flow is addressed by its id or its name.
    #[schema(example = "invoice-paid", max_length = 64, pattern = r"^[a-zA-Z0-9\-_]+$")]
    pub name: String,
    pub description: Option<String>,
    /// Default true; a disabled flow is not started (its runs in progress go on).
    pub enabled: Option<bool>,
    /// What starts a run: `manual` (only `POST /api/v1/flow/{flow_id}/run`),
    /// `source.request`, `message.created`, `document.changed`,
    /// `leaderboard.submitted`, `mode` or `cron`, with their fields.
    #[schema(value_type = Object, example = json!({"type": "message.created", "app": "shop", "eventTypes": ["order.paid"]}))]
    pub trigger: Value,
    /// The steps, in order: each `{"name", "type", "if"?, ...}`.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<Value>,
    /// How many of its runs may be carried out at once, over all nodes (default: no
    /// limit).
    #[schema(minimum = 1)]
    pub concurrency: Option<u32>,
    /// How many of its runs may be taken up per second, over all nodes (default: no
    /// limit); a run past it waits its turn.
    #[schema(minimum = 1, maximum = 65535)]
    pub throttle_rate: Option<u16>,
    /// A `mode` flow's answer to the poster: `{"status", "body"?}` (templates).
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowOut {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    #[schema(value_type = Object)]
    pub trigger: Value,
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub concurrency: Option<u32>,
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<StoredFlow> for FlowOut {
    fn from(f: StoredFlow) -> Self {
        let doc = &f.data.document;
        Self {
            id: f.id.to_string(),
            name: f.data.name.as_str().to_owned(),
            description: doc.get("description").and_then(Value::as_str).map(str::to_owned),
            enabled: f.data.enabled,
            trigger: doc.get("trigger").cloned().unwrap_or(Value::Null),
            steps: doc.get("steps").cloned().unwrap_or(Value::Array(Vec::new())),
            concurrency: f.data.concurrency,
            throttle_rate: doc
                .get("throttleRate")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok()),
            response: doc.get("response").cloned().filter(|r| !r.is_null()),
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

/// A manual run's input.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunIn {
    /// The run's trigger data (`trigger` in templates and filters); for a flow built
    /// for received requests, give what a request looks like: `{"body": {...}, "headers": {...}}`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
}

/// Which step a re-run starts from.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RerunIn {
    /// The name of a step the run ran; default: the first.
    pub from_step: Option<String>,
}

/// A run, as the run log shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FlowRunOut {
    pub id: String,
    pub flow_id: String,
    /// `running`, `waiting`, `succeeded`, `failed`, `stopped`, `invalid` or `canceled`.
    pub status: String,
    /// What started it.
    #[schema(value_type = Object)]
    pub trigger: Value,
    /// Each step that ran, in order: `{name, status, output?, error?, attempts,
    /// startedAt, finishedAt}`.
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    /// The index of the next step to run.
    pub next_step: u64,
    /// How many levels of flows led to it: 0 for a run its trigger or the API
    /// started, one more than its parent for a run a `flow.call` step started or that
    /// a flow's own write (a document, a score, a message) set off.
    pub depth: u64,
    /// When its next step is due (a retry, or the end of a delay).
    pub wake_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Read field by field from the stored state rather than as a `RunState`, so a run
/// whose state this version cannot read (one the runner ended as failed for that
/// reason) is still shown instead of failing the whole list.
impl From<FlowRun> for FlowRunOut {
    fn from(r: FlowRun) -> Self {
        let state = match r.data.state {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let get = |k: &str| state.get(k).cloned().unwrap_or(Value::Null);
        Self {
            id: r.id.to_string(),
            flow_id: r.flow_id.to_string(),
            status: r.data.status,
            trigger: get("trigger"),
            steps: state.get("steps").cloned().unwrap_or(Value::Array(Vec::new())),
            next_step: state.get("next").and_then(Value::as_u64).unwrap_or(0),
            depth: state.get("depth").and_then(Value::as_u64).unwrap_or(0),
            wake_at: state
                .get("wakeAt")
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            error: state.get("error").and_then(Value::as_str).map(str::to_owned),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunFilter {
    /// Only runs of this flow (its id or name).
    pub flow: Option<String>,
    /// Only runs with this status.
    #[param(value_type = Option<String>)]
    pub status: Option<RunStatus>,
    /// Only runs started before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only runs started after this time.
    pub after: Option<DateTime<Utc>>,
}

fn run_id(value: &str) -> ApiResult<FlowRunId> {
    value
        .parse()
        .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["path", "run_id"], e.message))
}

/// List the organisation's flows, oldest first.
#[utoipa::path(get, path = "/api/v1/flow", tag = "Flow", params(Pagination),
    responses((status = 200, body = ListResponse<FlowOut>)))]
async fn list_flows(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
) -> ApiResult<Json<ListResponse<FlowOut>>> {
    let query = page.to_query(Order::Ascending)?;
    let page = state.store.list_flows(&tenant.org, &query).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |f| f.id.to_string(),
        FlowOut::from,
    )))
}

/// Create a flow.
#[utoipa::path(post, path = "/api/v1/flow", tag = "Flow", request_body = FlowIn,
    responses((status = 201, body = FlowOut), (status = 409, body = HttpErrorOut),
        (status = 422, body = ValidationErrorOut)))]
async fn create_flow(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<(StatusCode, Json<FlowOut>)> {
    let created = flow::create(&state, &tenant.org, body).await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Get a flow by id or name.
#[utoipa::path(get, path = "/api/v1/flow/{flow_id}", tag = "Flow",
    params(("flow_id" = String, Path, description = "The flow's id or name")),
    responses((status = 200, body = FlowOut), (status = 404, body = HttpErrorOut)))]
async fn get_flow(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
) -> ApiResult<Json<FlowOut>> {
    Ok(Json(state.store.get_flow(&tenant.org, &key).await?.into()))
}

/// Replace a flow's definition.
#[utoipa::path(put, path = "/api/v1/flow/{flow_id}", tag = "Flow", request_body = FlowIn,
    params(("flow_id" = String, Path, description = "The flow's id or name")),
    responses((status = 200, body = FlowOut), (status = 404, body = HttpErrorOut),
        (status = 409, body = HttpErrorOut), (status = 422, body = ValidationErrorOut)))]
async fn replace_flow(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<FlowOut>> {
    Ok(Json(flow::replace(&state, &tenant.org, &key, body).await?.into()))
}

/// Change a flow with a JSON merge patch (RFC 7386) of its definition: fields given
/// replace theirs (`steps` as a whole), `null` removes one.
#[utoipa::path(patch, path = "/api/v1/flow/{flow_id}", tag = "Flow", request_body = Object,
    params(("flow_id" = String, Path, description = "The flow's id or name")),
    responses((status = 200, body = FlowOut), (status = 404, body = HttpErrorOut),
        (status = 412, body = HttpErrorOut), (status = 422, body = ValidationErrorOut)))]
async fn patch_flow(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
    ApiJson(body): ApiJson<Value>,
) -> ApiResult<Json<FlowOut>> {
    Ok(Json(flow::patch(&state, &tenant.org, &key, body).await?.into()))
}

/// Delete a flow and its runs.
#[utoipa::path(delete, path = "/api/v1/flow/{flow_id}", tag = "Flow",
    params(("flow_id" = String, Path, description = "The flow's id or name")),
    responses((status = 204), (status = 404, body = HttpErrorOut)))]
async fn delete_flow(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    flow::delete(&state, &tenant.org, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Run a flow now with an input. The run is carried out before the answer until it
/// ends or waits (a `delay`), for at most 10 seconds; the answer is the run as it
/// stands, and the runner goes on with one that has not ended.
#[utoipa::path(post, path = "/api/v1/flow/{flow_id}/run", tag = "Flow", request_body = Option<RunIn>,
    params(("flow_id" = String, Path, description = "The flow's id or name")),
    responses((status = 201, body = FlowRunOut), (status = 404, body = HttpErrorOut),
        (status = 409, body = HttpErrorOut, description = "The flow is disabled")))]
async fn run_flow(
    tenant: Tenant,
    State(state): State<Service>,
    Path(key): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RunIn>,
) -> ApiResult<(StatusCode, Json<FlowRunOut>)> {
    let run = flow::start(&state, &tenant.org, &key, body.input).await?;
    Ok((StatusCode::CREATED, Json(run.into())))
}

/// List flow runs, newest first.
#[utoipa::path(get, path = "/api/v1/flow-run", tag = "Flow", params(Pagination, RunFilter),
    responses((status = 200, body = ListResponse<FlowRunOut>)))]
async fn list_runs(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(filter): ApiQuery<RunFilter>,
) -> ApiResult<Json<ListResponse<FlowRunOut>>> {
    let query = page.to_query(Order::Descending)?;
    let filter = flow::RunQuery {
        flow: filter.flow,
        status: filter.status,
        before: filter.before,
        after: filter.after,
    };
    let page = flow::list_runs(&state, &tenant.org, &query, &filter).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |r| r.id.to_string(),
        FlowRunOut::from,
    )))
}

/// Get a flow run.
#[utoipa::path(get, path = "/api/v1/flow-run/{run_id}", tag = "Flow",
    params(("run_id" = String, Path)),
    responses((status = 200, body = FlowRunOut), (status = 404, body = HttpErrorOut)))]
async fn get_run(
    tenant: Tenant,
    State(state): State<Service>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowRunOut>> {
    Ok(Json(
        flow::get_run(&state, &tenant.org, &run_id(&id)?).await?.into(),
    ))
}

/// Cancel a run that has not ended (waiting out a delay, or retrying a step).
#[utoipa::path(post, path = "/api/v1/flow-run/{run_id}/cancel", tag = "Flow",
    params(("run_id" = String, Path)),
    responses((status = 200, body = FlowRunOut), (status = 404, body = HttpErrorOut),
        (status = 409, body = HttpErrorOut, description = "The run has ended")))]
async fn cancel_run(
    tenant: Tenant,
    State(state): State<Service>,
    Path(id): Path<String>,
) -> ApiResult<Json<FlowRunOut>> {
    Ok(Json(
        flow::cancel(&state, &tenant.org, &run_id(&id)?).await?.into(),
    ))
}

/// Run an ended run again, from its first step or from a step it ran; the run's
/// records from that step on are replaced.
#[utoipa::path(post, path = "/api/v1/flow-run/{run_id}/rerun", tag = "Flow", request_body = Option<RerunIn>,
    params(("run_id" = String, Path)),
    responses((status = 200, body = FlowRunOut), (status = 404, body = HttpErrorOut),
        (status = 409, body = HttpErrorOut, description = "The run has not ended"),
        (status = 422, body = ValidationErrorOut)))]
async fn rerun_run(
    tenant: Tenant,
    State(state): State<Service>,
    Path(id): Path<String>,
    ApiJsonOrDefault(body): ApiJsonOrDefault<RerunIn>,
) -> ApiResult<Json<FlowRunOut>> {
    Ok(Json(
        flow::rerun(&state, &tenant.org, &run_id(&id)?, body.from_step)
            .await?
            .into(),
    ))
}
