//! The job runner: leases due jobs (`JobStore`), runs their steps
//! (`service::jobs::step`) and commits each before the next. One job at a time per
//! node; a job queued on this node wakes it at once, others are found by polling.

use std::time::Duration;

use chrono::Utc;
use hookd_store::{JobStatus, JobStep, StoreResult};
use tokio::sync::watch;

use crate::service::{Service, jobs};

/// How often the runner looks for jobs queued elsewhere (or whose node died).
const POLL: Duration = Duration::from_secs(1);

/// Runs every job that is due now, step by step to its end; answers how many steps
/// ran. Tests call it directly; [`run_jobs`] calls it in a loop.
pub async fn run_pending_jobs(state: &Service) -> StoreResult<usize> {
    let owner = state.config.node_id();
    let lease = crate::config::span(state.config.delivery_lease);
    let mut steps = 0;
    while let Some(job) = state
        .store
        .claim_job(Utc::now(), Utc::now() + lease, &owner)
        .await?
    {
        let mut job = job;
        loop {
            let stepped = jobs::step(state, &job).await;
            steps += 1;
            let now = Utc::now();
            let saved = state
                .store
                .save_job(
                    &job.id,
                    &owner,
                    JobStep {
                        state: stepped.state.clone(),
                        status: stepped.status,
                        error: stepped.error.clone(),
                        now,
                        lease_until: now + lease,
                    },
                )
                .await?;
            if !saved {
                tracing::warn!(task = %job.id, "a job's lease was lost; its new holder goes on with it");
                break;
            }
            if stepped.status != JobStatus::Running {
                if let Some(error) = &stepped.error {
                    tracing::error!(task = %job.id, kind = %job.kind, error = %error, "a job failed");
                }
                break;
            }
            job.state = stepped.state;
        }
    }
    Ok(steps)
}

/// Runs jobs until `shutdown`; the current step ends first (its state committed).
/// Leases this node held before a restart are given back at once.
pub async fn run_jobs(state: Service, mut shutdown: watch::Receiver<bool>) {
    if let Err(e) = state.store.release_jobs(&state.config.node_id()).await {
        tracing::warn!(error = %e, "could not release old job leases; they will expire");
    }
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
