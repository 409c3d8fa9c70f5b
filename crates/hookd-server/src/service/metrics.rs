//! The server's Prometheus metrics (with the delivery engine's registered beside them),
//! counted by the service functions and rendered for `/metrics`.

use std::sync::Arc;

use chrono::Utc;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// Labels of `hookd_ingest_requests`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IngestLabels {
    /// `accepted`, `rejected` or `duplicate`.
    pub status: &'static str,
}

/// The server's own counters and the gauges read at scrape time.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub messages_accepted: Counter,
    pub ingest_received: Family<IngestLabels, Counter>,
    pub ingest_too_large: Counter,
    backlog_due: Gauge,
    backlog_scheduled: Gauge,
}

/// The registry with everything `/metrics` shows.
#[derive(Debug)]
pub struct Metrics {
    pub server: Arc<ServerMetrics>,
    registry: Registry,
}

impl Metrics {
    pub fn new(
        dispatch: Option<&hookd_dispatch::metrics::DispatchMetrics>,
        transform: &hookd_sandbox::metrics::TransformMetrics,
    ) -> Self {
        let server = Arc::new(ServerMetrics::default());
        let mut registry = Registry::default();
        registry.register(
            "hookd_messages_accepted",
            "Messages accepted (committed and answered 202)",
            server.messages_accepted.clone(),
        );
        registry.register(
            "hookd_ingest_requests",
            "Requests received at source URLs and kept, by outcome",
            server.ingest_received.clone(),
        );
        registry.register(
            "hookd_ingest_too_large",
            "Requests refused at source URLs for a body over ingest_max_body_bytes (not kept)",
            server.ingest_too_large.clone(),
        );
        registry.register(
            "hookd_deliveries_due",
            "Pending deliveries whose time has come (the queue)",
            server.backlog_due.clone(),
        );
        registry.register(
            "hookd_deliveries_scheduled",
            "Pending deliveries waiting for a later retry",
            server.backlog_scheduled.clone(),
        );
        if let Some(d) = dispatch {
            d.register(&mut registry);
        }
        transform.register(&mut registry);
        Self { server, registry }
    }
}

/// Prometheus metrics (no token: bind the listener privately or filter `/metrics` at
/// the proxy if it must not be public).
/// The metrics as OpenMetrics text, with the delivery backlog read now.
pub async fn render(state: &Service) -> ApiResult<String> {
    let (due, scheduled) = state.store.backlog(Utc::now()).await?;
    state.metrics.server.backlog_due.set(due as i64);
    state.metrics.server.backlog_scheduled.set(scheduled as i64);
    let mut text = String::new();
    encode(&mut text, &state.metrics.registry).map_err(|_| ApiError::Internal)?;
    Ok(text)
}
