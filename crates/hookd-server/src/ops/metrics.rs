//! `/metrics`: Prometheus text exposition of the server and its delivery engine; and
//! the readings of it the UI's overview charts (`service::metric_history`).

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use crate::service::Service;

pub async fn handler(State(state): State<Service>) -> Response {
    match crate::service::metrics::render(&state).await {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Reads this node's metrics every `READ_EVERY` into the history, until `shutdown`.
pub async fn run_readings(state: Service, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(crate::service::metric_history::READ_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = crate::service::metric_history::read(&state).await {
                    tracing::debug!(error = %e, "no metrics reading this time");
                }
            }
            _ = shutdown.changed() => {}
        }
    }
}
