//! Background tasks (`/api/v1/background-task`) and the long operations that start
//! them: replaying what an endpoint missed (`replay-missing`), replaying what it got
//! (`bulk-replay`), removing every payload of an application
//! (`msg/expunge-all-contents`), and the usage statistics (`/api/v1/stats/usage/...`).
//! Each answers 202 with a `qtask_` id at once; the work runs as a durable job
//! (`service::tasks`) whose progress `GET /api/v1/background-task/{task_id}` shows.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use hookd_core::id::TaskId;
use hookd_core::name::Tag;
use hookd_store::{DeliveryStatus, Job, JobStatus, Order};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::auth::Tenant;
use crate::http::error::{ApiError, ApiResult, HttpErrorOut, ValidationErrorOut};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::pagination::{ListResponse, Pagination};
use crate::send::message::parse_event_types_list;
use crate::service::tasks::{self, BulkReplayFilter};
use crate::service::{Service, message};

pub fn router() -> OpenApiRouter<Service> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(replay_missing))
        .routes(routes!(bulk_replay))
        .routes(routes!(expunge_all_contents))
        .routes(routes!(aggregate_app_stats))
        .routes(routes!(aggregate_event_types))
}

/// A background task: where it stands, and its result so far in `data`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    #[schema(value_type = String, example = "qtask_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: TaskId,
    /// `running`, `finished` or `failed`.
    pub status: &'static str,
    /// The kind, e.g. `endpoint.replay`.
    pub task: String,
    pub updated_at: DateTime<Utc>,
    /// The result so far (`messagesSent`, `messagesPurged`, `appStats`,
    /// `event_types`, ...), with `error` and `finishedAt` once it ended.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<Job> for BackgroundTaskOut {
    fn from(job: Job) -> Self {
        Self {
            data: tasks::data(&job),
            id: job.id,
            status: job.status.text(),
            task: job.kind,
            updated_at: job.updated_at,
        }
    }
}

/// A task just queued (the answer of every call that starts one).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskQueuedOut {
    #[schema(value_type = String, example = "qtask_1srOrx2ZWZBpBUvZwXKQmoEYga2")]
    pub id: TaskId,
    pub status: &'static str,
    pub task: String,
    pub updated_at: DateTime<Utc>,
}

impl From<Job> for TaskQueuedOut {
    fn from(job: Job) -> Self {
        Self {
            id: job.id,
            status: job.status.text(),
            task: job.kind,
            updated_at: job.updated_at,
        }
    }
}

fn accepted<T>(out: T) -> (StatusCode, Json<T>) {
    (StatusCode::ACCEPTED, Json(out))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskListQuery {
    /// `running`, `finished` or `failed`.
    status: Option<String>,
    /// One kind. Svix's kinds are listed by default; hookd's own (`source.replay`)
    /// only when named here.
    task: Option<String>,
}

/// List the organisation's background tasks, newest first.
#[utoipa::path(get, path = "/api/v1/background-task", tag = "Background Task", operation_id = "v1.background-task.list",
    params(Pagination, TaskListQuery),
    responses((status = 200, body = ListResponse<BackgroundTaskOut>),
        (status = 422, body = ValidationErrorOut)))]
async fn list_tasks(
    tenant: Tenant,
    State(state): State<Service>,
    ApiQuery(page): ApiQuery<Pagination>,
    ApiQuery(q): ApiQuery<TaskListQuery>,
) -> ApiResult<Json<ListResponse<BackgroundTaskOut>>> {
    let query = page.to_query(Order::Descending)?;
    let status = match q.status.as_deref() {
        None => None,
        Some("running") => Some(JobStatus::Running),
        Some("finished") => Some(JobStatus::Finished),
        Some("failed") => Some(JobStatus::Failed),
        Some(_) => {
            return Err(ApiError::invalid(
                &["query", "status"],
                "status must be running, finished or failed",
            ));
        }
    };
    let one: [&str; 1];
    let kinds: &[&str] = match q.task.as_deref() {
        None => tasks::SVIX_KINDS,
        Some(kind) if tasks::SVIX_KINDS.contains(&kind) || tasks::HOOKD_KINDS.contains(&kind) => {
            one = [kind];
            &one
        }
        // Svix kinds hookd never makes: nothing to list.
        Some("message.broadcast" | "sdk.generate") => &[],
        Some(_) => {
            return Err(ApiError::invalid(
                &["query", "task"],
                format!(
                    "task must be one of {}",
                    [tasks::SVIX_KINDS, tasks::HOOKD_KINDS].concat().join(", ")
                ),
            ));
        }
    };
    let page = state.store.list_jobs(&tenant.org, &query, status, kinds).await?;
    Ok(Json(ListResponse::from_page(
        page,
        |j| j.id.to_string(),
        BackgroundTaskOut::from,
    )))
}

/// A background task by id.
#[utoipa::path(get, path = "/api/v1/background-task/{task_id}", tag = "Background Task", operation_id = "v1.background-task.get",
    params(("task_id" = String, Path, description = "The task's `qtask_` id")),
    responses((status = 200, body = BackgroundTaskOut), (status = 404, body = HttpErrorOut)))]
async fn get_task(
    tenant: Tenant,
    State(state): State<Service>,
    Path(task_id): Path<String>,
) -> ApiResult<Json<BackgroundTaskOut>> {
    Ok(Json(tasks::get(&state, &tenant.org, &task_id).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// Messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time (default: now, when each step runs).
    pub until: Option<DateTime<Utc>>,
}

fn check_range(since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> ApiResult<()> {
    if until.is_some_and(|u| u <= since) {
        return Err(ApiError::invalid(&["body", "until"], "until must be after since"));
    }
    Ok(())
}

/// Send the endpoint every message created since `since` that it takes (its event
/// types, channels and filter) but never got — it was added later, or the message was
/// filtered out then. Each gets a delivery with the usual retries.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing", tag = "Endpoint",
    operation_id = "v1.endpoint.replay-missing",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = ReplayIn,
    responses((status = 202, body = TaskQueuedOut), (status = 404, body = HttpErrorOut),
        (status = 422, body = ValidationErrorOut)))]
async fn replay_missing(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<ReplayIn>,
) -> ApiResult<(StatusCode, Json<TaskQueuedOut>)> {
    check_range(body.since, body.until)?;
    let app = message::app_id(&state, &tenant.org, &app_key).await?;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?;
    if ep.data.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it before replaying to it".into(),
        ));
    }
    let job = tasks::replay_missing(&state, &tenant.org, &app, &ep.id, body.since, body.until).await?;
    Ok(accepted(job.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkReplayIn {
    /// Messages created at or after this time.
    pub since: DateTime<Utc>,
    /// ... and before this time.
    pub until: Option<DateTime<Utc>>,
    pub event_types: Option<Vec<String>>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    /// The delivery's status: 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
    pub status: Option<i64>,
    /// Messages with an attempt answered in this class: 0 (no answer), 100 ... 500.
    pub status_code_class: Option<u16>,
}

/// Send again (one manual attempt each) every message created since `since` that went
/// to the endpoint and matches the filters — successful and failed alike.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay", tag = "Endpoint",
    operation_id = "v1.endpoint.bulk-replay",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = BulkReplayIn,
    responses((status = 202, body = TaskQueuedOut), (status = 404, body = HttpErrorOut),
        (status = 422, body = ValidationErrorOut)))]
async fn bulk_replay(
    tenant: Tenant,
    State(state): State<Service>,
    Path((app_key, endpoint)): Path<(String, String)>,
    ApiJson(body): ApiJson<BulkReplayIn>,
) -> ApiResult<(StatusCode, Json<TaskQueuedOut>)> {
    check_range(body.since, body.until)?;
    let status = body
        .status
        .map(|s| {
            DeliveryStatus::from_code(s)
                .ok_or_else(|| ApiError::invalid(&["body", "status"], "status must be 0 to 4"))
        })
        .transpose()?;
    let status_code_class = match body.status_code_class {
        None => None,
        Some(c @ (0 | 100 | 200 | 300 | 400 | 500)) => Some(c / 100),
        Some(_) => {
            return Err(ApiError::invalid(
                &["body", "statusCodeClass"],
                "statusCodeClass must be 0, 100, 200, 300, 400 or 500",
            ));
        }
    };
    let filter = BulkReplayFilter {
        event_types: parse_event_types_list(body.event_types.as_deref(), &["body", "eventTypes"])?,
        channel: body
            .channel
            .as_deref()
            .map(|c| crate::http::parse_field(c, "channel"))
            .transpose()?,
        tag: body
            .tag
            .as_deref()
            .map(|t| crate::http::parse_field::<Tag>(t, "tag").map(String::from))
            .transpose()?,
        status,
        status_code_class,
    };
    let app = message::app_id(&state, &tenant.org, &app_key).await?;
    let ep = state.store.get_endpoint(&tenant.org, &app, &endpoint).await?;
    let job = tasks::bulk_replay(&state, &tenant.org, &app, &ep.id, body.since, body.until, filter).await?;
    Ok(accepted(job.into()))
}

/// Remove the payload of every message of the application (the messages and their
/// attempt log stay; deliveries not yet made are canceled).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/expunge-all-contents", tag = "Message",
    operation_id = "v1.message.expunge-all-contents",
    params(("app_id" = String, Path)),
    responses((status = 202, body = TaskQueuedOut), (status = 404, body = HttpErrorOut)))]
async fn expunge_all_contents(
    tenant: Tenant,
    State(state): State<Service>,
    Path(app_key): Path<String>,
) -> ApiResult<(StatusCode, Json<TaskQueuedOut>)> {
    let app = message::app_id(&state, &tenant.org, &app_key).await?;
    Ok(accepted(
        tasks::purge_content(&state, &tenant.org, &app).await?.into(),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppUsageStatsIn {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Application ids or uids (at most 1,000); every application when absent.
    pub app_ids: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppUsageStatsOut {
    #[serde(flatten)]
    pub task: TaskQueuedOut,
    /// The `appIds` that named no application (the others are counted).
    pub unresolved_app_ids: Vec<String>,
}

/// Count the attempts (`messageDestinations`) each application made in `[since,
/// until)`; the finished task's `data.appStats` holds one entry per application.
#[utoipa::path(post, path = "/api/v1/stats/usage/app", tag = "Statistics", operation_id = "v1.statistics.aggregate-app-stats",
    request_body = AppUsageStatsIn,
    responses((status = 202, body = AppUsageStatsOut), (status = 422, body = ValidationErrorOut)))]
async fn aggregate_app_stats(
    tenant: Tenant,
    State(state): State<Service>,
    ApiJson(body): ApiJson<AppUsageStatsIn>,
) -> ApiResult<(StatusCode, Json<AppUsageStatsOut>)> {
    if body.until <= body.since {
        return Err(ApiError::invalid(&["body", "until"], "until must be after since"));
    }
    if body
        .app_ids
        .as_ref()
        .is_some_and(|a| a.len() > tasks::MAX_STATS_APPS)
    {
        return Err(ApiError::invalid(
            &["body", "appIds"],
            format!("at most {} applications", tasks::MAX_STATS_APPS),
        ));
    }
    let (job, unresolved) =
        tasks::app_stats(&state, &tenant.org, body.since, body.until, body.app_ids).await?;
    Ok(accepted(AppUsageStatsOut {
        task: job.into(),
        unresolved_app_ids: unresolved,
    }))
}

/// List, for every application, the event types its endpoints subscribe to and
/// whether one takes every type; the finished task's `data.event_types` holds them.
#[utoipa::path(put, path = "/api/v1/stats/usage/event-types", tag = "Statistics",
    operation_id = "v1.statistics.aggregate-event-types",
    responses((status = 202, body = TaskQueuedOut)))]
async fn aggregate_event_types(
    tenant: Tenant,
    State(state): State<Service>,
) -> ApiResult<(StatusCode, Json<TaskQueuedOut>)> {
    Ok(accepted(
        tasks::aggregate_event_types(&state, &tenant.org).await?.into(),
    ))
}
