//! The flow runner: claims due flow runs (`FlowRunStore`) and carries each out
//! (`service::flow`), every step committed before the next. A run made due on this
//! node (a re-run, a manual run handed over) wakes it at once; runs whose delay or
//! retry came due, and runs of a node that died, are found by polling.

use std::future::Future;

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

/// How much lower than the request path the runner's thread is scheduled (a `nice`
/// increment): when the cores are short, requests keep their latency and the runs
/// take what is left, catching up once the load falls.
const RUNNER_NICENESS: i32 = 10;

/// Runs `runner` (the flow runner) on a thread of its own, `hookd-flows`, with a
/// runtime of its own, at [`RUNNER_NICENESS`] below the request path; the handle ends
/// when it does. A run's steps go through the same store and sandbox as everything
/// else: only the runner's own work (planning, templates, JSON) is on that thread.
pub fn spawn_runner(
    runner: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("hookd-flows")
        .build()?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("hookd-flows".into())
        .spawn(move || {
            // Linux keeps a niceness per thread: this lowers the runner's thread only.
            if let Err(e) = rustix::process::nice(RUNNER_NICENESS) {
                tracing::warn!(error = %e, "could not lower the flow runner's priority; it runs at the request path's");
            }
            runtime.block_on(runner);
            let _ = done_tx.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = done_rx.await;
    }))
}
