//! Every kind of durable job and the step that runs it: the one place that knows them
//! all. The runner (`jobs`) knows none of them, so a kind's own module may use the
//! runner (a replay runs its job while its caller waits) without an import circle.
//!
//! Kinds: `endpoint.recover` (requeue an endpoint's failed deliveries, a batch a step),
//! `source.replay` (forward a source's logged requests again, a page a step), and the
//! Svix background tasks of `tasks` (replays, purge, statistics). A
//! new kind: its state type and step function in its own module, a line here.

use hookd_store::Job;

use crate::service::jobs::{self, StepFuture, Stepped};
use crate::service::{Service, source, tasks};

/// Runs one step of `job`, whatever its kind; an unknown kind fails the job.
pub fn step<'a>(state: &'a Service, job: &'a Job) -> StepFuture<'a> {
    match job.kind.as_str() {
        jobs::RECOVER => jobs::recover_step(state, job),
        source::REPLAY => source::replay_job(state, job),
        tasks::REPLAY_MISSING => tasks::replay_missing_step(state, job),
        tasks::BULK_REPLAY => tasks::bulk_replay_step(state, job),
        tasks::PURGE_CONTENT => tasks::purge_step(state, job),
        tasks::APP_STATS => tasks::app_stats_step(state, job),
        tasks::EVENT_TYPE_AGGREGATE => tasks::aggregate_step(state, job),
        other => {
            let failed = Stepped::failed(job, format!("no job kind {other:?} on this node"));
            Box::pin(std::future::ready(failed))
        }
    }
}
