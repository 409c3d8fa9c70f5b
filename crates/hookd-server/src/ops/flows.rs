//! The flow runner: claims due flow runs (`FlowRunStore`) and carries each out
//! (`service::flow`), every step committed before the next. A run made due on this
//! node (a re-run, a manual run handed over) wakes it at once; runs whose delay or
//! retry came due, and runs of a node that died, are found by polling.

use tokio::sync::watch;

use crate::service::{Service, flow};

/// Runs flow runs until `shutdown`; the current step ends first (its state
/// committed). (`launch` gives back the leases this node held before a restart.)
pub async fn run_flows(state: Service, mut shutdown: watch::Receiver<bool>) {
    let wake = flow::signal(&state);
    while !*shutdown.borrow() {
        if let Err(e) = flow::run_due(&state, Some(&shutdown)).await {
            tracing::warn!(error = %e, "the flow runner failed; it will try again");
        }
        tokio::select! {
            () = tokio::time::sleep(flow::POLL) => {}
            () = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}
