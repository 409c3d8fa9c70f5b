//! Durable background jobs: what each kind does in one step. A job's state is its
//! input and its progress; each step is committed before the next starts, so a job
//! outlives a crash and a restarted (or another) node resumes it where it stood. The
//! runner that leases and steps them is `ops::jobs`.
//!
//! Kinds: `endpoint.recover` (requeue an endpoint's failed deliveries, a batch a step).

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, EndpointId, OrgId, TaskId};
use hookd_store::{Job, JobStatus};
use serde::{Deserialize, Serialize};

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// The kind of an endpoint recovery.
pub const RECOVER: &str = "endpoint.recover";

/// Rows requeued per step of a recovery, so a large one never holds the database for
/// long.
const RECOVER_BATCH: usize = 1_000;

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

/// What one step did: the job's next state and where it is.
#[derive(Debug)]
pub struct Stepped {
    pub state: serde_json::Value,
    pub status: JobStatus,
    pub error: Option<String>,
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
    let value = serde_json::to_value(&input).map_err(|_| ApiError::Internal)?;
    let job = state.store.create_job(org, RECOVER, value, Utc::now()).await?;
    state.jobs_wake.notify_one();
    Ok(job.id)
}

/// Runs one step of `job`.
pub async fn step(state: &Service, job: &Job) -> Stepped {
    let failed = |error: String| Stepped {
        state: job.state.clone(),
        status: JobStatus::Failed,
        error: Some(error),
    };
    match job.kind.as_str() {
        RECOVER => {
            let mut r: Recover = match serde_json::from_value(job.state.clone()) {
                Ok(r) => r,
                Err(e) => return failed(format!("unreadable recovery state: {e}")),
            };
            let batch = state
                .store
                .recover_batch(&job.org_id, &r.app, &r.endpoint, r.since, r.until, RECOVER_BATCH)
                .await;
            let status = match batch {
                Ok(0) => {
                    tracing::info!(task = %job.id, endpoint = %r.endpoint, requeued = r.requeued, "endpoint recovery finished");
                    JobStatus::Finished
                }
                Ok(n) => {
                    r.requeued += n;
                    state.wake_dispatcher();
                    JobStatus::Running
                }
                // A passing fault: the next step tries again.
                Err(e) => {
                    tracing::warn!(task = %job.id, error = %e, "an endpoint recovery step failed; it is tried again");
                    JobStatus::Running
                }
            };
            Stepped {
                state: serde_json::to_value(&r).unwrap_or_else(|_| job.state.clone()),
                status,
                error: None,
            }
        }
        other => failed(format!("no job kind {other:?} on this node")),
    }
}

/// The wake-up the job runner waits on (a job was queued on this node).
pub(crate) fn signal(state: &Service) -> std::sync::Arc<tokio::sync::Notify> {
    std::sync::Arc::clone(&state.jobs_wake)
}
