//! Durable background jobs: what each kind does in one step, and the loop that runs a
//! job step by step. A job's state is its input and its progress; each step is
//! committed before the next starts, so a job outlives a crash and a restarted (or
//! another) node resumes it where it stood. The runner that leases queued jobs is
//! `ops::jobs`; a request whose caller waits for the result runs its job itself
//! ([`run_here`]), under a lease that any runner takes over if the request stops.
//!
//! This runner knows no kind but its own recovery: a kind's step is handed to it
//! ([`StepFn`]), and `job_kinds` is the one list of every kind, so a kind's module
//! (e.g. `source` for replays) uses the runner without the runner using it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, EndpointId, OrgId, TaskId};
use hookd_store::{Job, JobLease, JobStatus, JobStep, StoreResult};
use serde::{Deserialize, Serialize};

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// The kind of an endpoint recovery.
pub const RECOVER: &str = "endpoint.recover";

/// Rows requeued per step of a recovery, so a large one never holds the database for
/// long.
const RECOVER_BATCH: usize = 1_000;

/// How many lease spans a request whose job was taken over waits for its end.
const TAKEN_OVER_WAIT: u32 = 4;

/// How long a job waits before trying again a step that met a passing fault.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// An endpoint recovery's input and progress.
#[derive(Debug, Serialize, Deserialize)]
struct Recover {
    app: ApplicationId,
    endpoint: EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    requeued: usize,
}

/// Why a step did not finish its work.
#[derive(Debug)]
pub enum StepError {
    /// A passing fault (the database is unreachable): the step is tried again.
    Passing(String),
    /// The job cannot go on (what it works on is gone): it ends as failed.
    Fatal(String),
}

/// What one step did: the job's next state and where it is; `pause` when the step met
/// a passing fault and the next one should wait.
#[derive(Debug)]
pub struct Stepped {
    pub state: serde_json::Value,
    pub status: JobStatus,
    pub error: Option<String>,
    pub pause: bool,
}

/// One step of a job, running.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = Stepped> + Send + 'a>>;

/// What runs one step of a job of some kind.
pub type StepFn = for<'a> fn(&'a Service, &'a Job) -> StepFuture<'a>;

impl Stepped {
    /// The job ends as failed with `error`, its state as it was.
    pub fn failed(job: &Job, error: String) -> Self {
        Self {
            state: job.state.clone(),
            status: JobStatus::Failed,
            error: Some(error),
            pause: false,
        }
    }
}

/// Queues a recovery of every failed delivery to `endpoint` of messages created from
/// `since` (until `until`); answers the job's id at once and wakes the runner.
pub async fn recover(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> ApiResult<TaskId> {
    let input = Recover {
        app: app.clone(),
        endpoint: endpoint.clone(),
        since,
        until,
        requeued: 0,
    };
    Ok(queue(state, org, RECOVER, &input).await?.id)
}

/// Queues a job of `kind` with `input` as its first state for the runner, and wakes it.
pub(crate) async fn queue(
    state: &Service,
    org: &OrgId,
    kind: &str,
    input: &impl Serialize,
) -> ApiResult<Job> {
    let value = serde_json::to_value(input).map_err(|_| ApiError::Internal)?;
    let job = state.store.create_job(org, kind, value, Utc::now(), None).await?;
    state.jobs_wake.notify_one();
    Ok(job)
}

/// Makes a job of `kind` with `input` held by this node and runs it to its end now
/// with `step`; answers the finished job. A job that failed is a 409 with its error.
pub(super) async fn run_here(
    state: &Service,
    org: &OrgId,
    kind: &str,
    input: &impl Serialize,
    step: StepFn,
) -> ApiResult<Job> {
    let value = serde_json::to_value(input).map_err(|_| ApiError::Internal)?;
    let owner = state.config.node_id();
    let now = Utc::now();
    let lease = JobLease {
        owner: owner.clone(),
        until: now + lease_span(state),
    };
    let job = state.store.create_job(org, kind, value, now, Some(lease)).await?;
    let mut job = run(state, job, &owner, step).await?;
    // The lease was lost (a step outlasted it): the runner that took the job over
    // finishes it. The caller waits for that a while, not for ever (that runner may
    // stop too, and the next take-over needs its lease to run out first).
    let deadline = tokio::time::Instant::now() + state.config.delivery_lease * TAKEN_OVER_WAIT;
    while job.status == JobStatus::Running {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Unavailable(format!(
                "task {} was taken over by another runner and is still running; it finishes without this request",
                job.id
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        job = state.store.get_job(org, &job.id).await?;
    }
    match job.status {
        JobStatus::Failed => Err(ApiError::Conflict(
            job.error.clone().unwrap_or_else(|| "the job failed".into()),
        )),
        _ => Ok(job),
    }
}

/// How long a step may take before another node may take the job over.
pub(crate) fn lease_span(state: &Service) -> chrono::Duration {
    crate::config::span(state.config.delivery_lease)
}

/// Runs `job`, which `owner` holds, `step` by step until it ends or the lease is
/// lost; answers the job as it was left (still `Running` if the lease was lost).
pub(crate) async fn run(state: &Service, mut job: Job, owner: &str, step: StepFn) -> StoreResult<Job> {
    loop {
        let stepped = step(state, &job).await;
        if stepped.pause {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        let now = Utc::now();
        let saved = state
            .store
            .save_job(
                &job.id,
                owner,
                JobStep {
                    state: stepped.state.clone(),
                    status: stepped.status,
                    error: stepped.error.clone(),
                    now,
                    lease_until: now + lease_span(state),
                },
            )
            .await?;
        if !saved {
            tracing::warn!(task = %job.id, "a job's lease was lost; its new holder goes on with it");
            return Ok(job);
        }
        job.state = stepped.state;
        job.status = stepped.status;
        job.error = stepped.error;
        job.updated_at = now;
        if job.status != JobStatus::Running {
            if let Some(error) = &job.error {
                tracing::error!(task = %job.id, kind = %job.kind, error = %error, "a job failed");
            }
            return Ok(job);
        }
    }
}

/// One step of an endpoint recovery: the next batch requeued.
pub(super) fn recover_step<'a>(state: &'a Service, job: &'a Job) -> StepFuture<'a> {
    Box::pin(async move {
        let mut r: Recover = match serde_json::from_value(job.state.clone()) {
            Ok(r) => r,
            Err(e) => return Stepped::failed(job, format!("unreadable recovery state: {e}")),
        };
        let batch = state
            .store
            .recover_batch(&job.org_id, &r.app, &r.endpoint, r.since, r.until, RECOVER_BATCH)
            .await;
        let (status, pause) = match batch {
            Ok(0) => {
                tracing::info!(task = %job.id, endpoint = %r.endpoint, requeued = r.requeued, "endpoint recovery finished");
                (JobStatus::Finished, false)
            }
            Ok(n) => {
                r.requeued += n;
                state.wake_dispatcher();
                (JobStatus::Running, false)
            }
            // A passing fault: the next step tries again.
            Err(e) => {
                tracing::warn!(task = %job.id, error = %e, "an endpoint recovery step failed; it is tried again");
                (JobStatus::Running, true)
            }
        };
        Stepped {
            state: serde_json::to_value(&r).unwrap_or_else(|_| job.state.clone()),
            status,
            error: None,
            pause,
        }
    })
}

/// The wake-up the job runner waits on (a job was queued on this node).
pub(crate) fn signal(state: &Service) -> std::sync::Arc<tokio::sync::Notify> {
    std::sync::Arc::clone(&state.jobs_wake)
}
