//! The cron scheduler: fires cron sources on their schedules, each firing recorded as
//! a received request and forwarded like one, and starts the runs of flows on a cron
//! schedule (`service::flow::triggers::fire_cron_flows`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookd_core::ingest::{self, SourceKind, SourceOptions, verify};
use hookd_store::{IngestForward, IngestStatus, NewIngestRequest, Source, Store, StoreError};
use tokio::sync::{Notify, watch};

use crate::service::Service;
use crate::service::source::{event_type, retain_until};

/// Fires cron sources on their schedules until `shutdown`: each firing is recorded
/// as a received request (method `POST`, the configured payload and content type) and
/// forwarded like one. A firing is claimed in the same transaction that records it,
/// so with several nodes each firing happens once; firings missed while no node ran
/// are not made up, only the latest one is.
pub async fn run_cron(
    store: Arc<dyn Store>,
    state: Service,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    const MAX_SLEEP: Duration = Duration::from_secs(30);
    while !*shutdown.borrow() {
        let now = Utc::now();
        let step = cron_step(store.as_ref(), state.config.ingest_retention, now).await;
        if step.as_ref().is_ok_and(|s| s.deliveries > 0) {
            state.wake_dispatcher();
        }
        let flows = crate::service::flow::triggers::fire_cron_flows(store.as_ref(), now).await;
        if flows.as_ref().is_ok_and(|f| f.started > 0) {
            crate::service::flow::wake(&state);
        }
        let next = match (step, flows) {
            (Ok(s), Ok(f)) => Ok(match (s.next, f.next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        let sleep = match next {
            Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or_default().min(MAX_SLEEP),
            Ok(None) => MAX_SLEEP,
            Err(e) => {
                tracing::warn!(error = %e, "the cron scheduler failed; it will try again");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// What one [`cron_step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CronStep {
    /// Firings recorded by this call.
    pub fired: usize,
    /// Deliveries they created.
    pub deliveries: usize,
    /// When the next firing is due.
    pub next: Option<DateTime<Utc>>,
}

/// Fires every cron source that is due at `now` (tests call it with a time of their
/// choosing); `retention` is how long the firings are kept.
pub async fn cron_step(
    store: &dyn Store,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<CronStep, StoreError> {
    let mut step = CronStep::default();
    let mut earliest: Option<DateTime<Utc>> = None;
    for (org, source, last) in store.cron_sources().await? {
        let SourceKind::Cron(spec) = &source.data.kind else {
            continue;
        };
        // Counting starts at the later of the last firing and the source's last change.
        let from = last.map_or(source.updated_at, |l| l.max(source.updated_at));
        let Some(mut due) = verify::next_fire(&spec.schedule, from) else {
            continue;
        };
        if due <= now {
            // Skip firings missed while nobody ran: fire the latest due one only.
            while let Some(next) = verify::next_fire(&spec.schedule, due).filter(|n| *n <= now) {
                due = next;
            }
            if let Some(deliveries) = fire(
                store,
                retention,
                &org,
                &source,
                spec,
                &source.data.options,
                last,
                due,
            )
            .await?
            {
                step.fired += 1;
                step.deliveries += deliveries;
            }
            due = match verify::next_fire(&spec.schedule, due) {
                Some(d) => d,
                None => continue,
            };
        }
        earliest = Some(earliest.map_or(due, |e| e.min(due)));
    }
    step.next = earliest;
    Ok(step)
}

/// Records one firing; `None` when another node recorded it first.
#[allow(clippy::too_many_arguments)]
async fn fire(
    store: &dyn Store,
    retention: Duration,
    org: &hookd_core::id::OrgId,
    source: &Source,
    spec: &ingest::CronSpec,
    options: &SourceOptions,
    last: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Result<Option<usize>, StoreError> {
    let content_type = spec
        .content_type
        .clone()
        .unwrap_or_else(|| "application/json".into());
    let headers = vec![("content-type".to_owned(), content_type)];
    let kind = SourceKind::Cron(spec.clone());
    let request = NewIngestRequest {
        id: hookd_core::id::IngestLogId::generate(),
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        forward: Some(IngestForward {
            event_type: event_type(&kind),
            headers: ingest::forward_headers(&headers, options),
            retain_until: retain_until(retention, at),
        }),
        headers,
        client_addr: None,
        body: spec.payload.clone().into_bytes(),
        status: IngestStatus::Accepted,
        reason: Some(format!("cron firing of {}", at.to_rfc3339())),
        response_status: 200,
        received_at: Utc::now(),
        dedup: None,
        cron: Some((last, at)),
        flow_runs: Vec::new(),
    };
    // The same filter as on a received request (the payload is the same each time).
    let mut request = request;
    if !crate::service::source::passes_filter(
        options,
        &request.path,
        &request.query,
        &request.headers,
        &request.body,
    ) {
        request.status = IngestStatus::Filtered;
        request.reason = Some(format!(
            "cron firing of {}; did not match the source's filter",
            at.to_rfc3339()
        ));
        request.forward = None;
    }
    match store.record_ingest(org, source, request).await {
        Ok(recorded) => Ok(Some(recorded.deliveries)),
        // Another node fired it.
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}
