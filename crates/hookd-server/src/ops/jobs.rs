//! The job runner: leases due jobs (`JobStore`) and runs them (`service::jobs::run`
//! with `service::job_kinds::step`, each step committed before the next). One job at
//! a time per node; a job queued on this node wakes it at once, others are found by
//! polling.

use std::time::Duration;

use chrono::Utc;
use hookd_store::StoreResult;
use tokio::sync::watch;

use crate::service::{Service, job_kinds, jobs};

/// How often the runner looks for jobs queued elsewhere (or whose node died).
const POLL: Duration = Duration::from_secs(1);

/// Runs every job that is due now, each to its end; answers how many jobs ran. Tests
/// call it directly; [`run_jobs`] calls it in a loop.
pub async fn run_pending_jobs(state: &Service) -> StoreResult<usize> {
    let owner = state.config.node_id();
    let mut ran = 0;
    while let Some(job) = state
        .store
        .claim_job(Utc::now(), Utc::now() + jobs::lease_span(state), &owner)
        .await?
    {
        jobs::run(state, job, &owner, job_kinds::step).await?;
        ran += 1;
    }
    Ok(ran)
}

/// Runs jobs until `shutdown`; the current step ends first (its state committed).
/// (`launch` gives back the leases this node held before a restart.)
pub async fn run_jobs(state: Service, mut shutdown: watch::Receiver<bool>) {
    let wake = jobs::signal(&state);
    while !*shutdown.borrow() {
        if let Err(e) = run_pending_jobs(&state).await {
            tracing::warn!(error = %e, "the job runner failed; it will try again");
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}
