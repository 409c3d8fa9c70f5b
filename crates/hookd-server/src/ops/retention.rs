//! Retention: the background pruner, and the operator's `hookd prune`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hookd_store::{Store, StoreResult};
use tokio::sync::watch;

/// Rows changed per transaction.
const BATCH: usize = 1_000;

/// How long the pruner keeps what it prunes by age.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Ingest log entries.
    pub ingest: Duration,
    /// Flows' runs once they ended.
    pub flow_runs: Duration,
}

/// Expunges expired payloads, deletes ingest log entries and ended flow runs past
/// their retention and forgets old idempotency records and ended UI sessions, every `interval`, until
/// `shutdown` turns true.
pub async fn run_pruner(
    store: Arc<dyn Store>,
    interval: Duration,
    retention: Retention,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match prune_expired(store.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(payloads = n, "expunged payloads past their retention"),
            Err(e) => tracing::warn!(error = %e, "the retention pruner failed; it will try again"),
        }
        let cutoff = Utc::now() - crate::config::span(retention.ingest);
        match delete_ingest_before(store.as_ref(), cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requests = n, "deleted ingest log entries past ingest_retention"),
            Err(e) => tracing::warn!(error = %e, "the ingest log pruner failed; it will try again"),
        }
        let cutoff = Utc::now() - crate::config::span(retention.flow_runs);
        match delete_flow_runs_before(store.as_ref(), cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "deleted flow runs past flow_run_retention"),
            Err(e) => tracing::warn!(error = %e, "the flow run pruner failed; it will try again"),
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One pass: every expired payload, in batches. Returns how many were expunged.
pub async fn prune_expired(store: &dyn Store) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let n = store.expire_payloads(Utc::now(), BATCH).await?;
        total += n;
        if n < BATCH {
            break;
        }
    }
    store
        .delete_idempotency_before(Utc::now() - crate::http::idempotency::KEEP - chrono::Duration::hours(1))
        .await?;
    // Web UI sessions and sign-in links a day after they ended (kept a little, so a
    // late request of an ended session still reads as "expired").
    store
        .delete_ui_sessions_before(Utc::now() - chrono::Duration::days(1))
        .await?;
    Ok(total)
}

async fn delete_ingest_before(store: &dyn Store, cutoff: chrono::DateTime<Utc>) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let n = store.delete_ingest_requests_before(cutoff, BATCH).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Deletes every flow run that ended before `cutoff`, in batches.
pub async fn delete_flow_runs_before(store: &dyn Store, cutoff: chrono::DateTime<Utc>) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let n = store.delete_ended_flow_runs_before(cutoff, BATCH).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}

/// Deletes messages (with deliveries and attempts) created more than `older_than` ago.
pub async fn delete_older_than(store: &dyn Store, older_than: Duration) -> StoreResult<usize> {
    let cutoff = Utc::now() - crate::config::span(older_than);
    let mut total = 0;
    loop {
        let n = store.delete_messages_before(cutoff, BATCH).await?;
        total += n;
        if n < BATCH {
            return Ok(total);
        }
    }
}
