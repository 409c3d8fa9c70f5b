//! The server's Prometheus metrics (with the delivery engine's registered beside them),
//! counted by the service functions and rendered for `/metrics`.

use std::sync::Arc;

use chrono::Utc;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
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

/// Labels of `hookd_flow_runs_ended`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowRunLabels {
    /// `succeeded`, `failed`, `stopped`, `invalid` or `canceled`.
    pub status: &'static str,
}

/// `hookd_endpoints_filtered_out`, read from the fan-out's counters at each scrape.
#[derive(Debug)]
struct FilteredOutCollector;

impl Collector for FilteredOutCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counts = hookd_store::fanout::filtered_out();
        let mut metric = encoder.encode_descriptor(
            "hookd_endpoints_filtered_out",
            "Endpoints a message was not delivered to because their payload filter did not match, by target: sent (application and operational endpoints) or received (ingest destinations)",
            None,
            MetricType::Counter,
        )?;
        for (target, n) in [("sent", counts.sent), ("received", counts.received)] {
            ConstCounter::new(n).encode(metric.encode_family(&[("target", target)])?)?;
        }
        Ok(())
    }
}

/// The server's own counters and the gauges read at scrape time.
#[derive(Debug, Default)]
pub struct ServerMetrics {
    pub messages_accepted: Counter,
    pub ingest_received: Family<IngestLabels, Counter>,
    pub ingest_too_large: Counter,
    pub ingest_rate_limited: Counter,
    pub flow_runs_ended: Family<FlowRunLabels, Counter>,
    /// Requests admission control refused (`http::server`).
    pub overloaded: Counter,
    write_wait: Gauge<f64, std::sync::atomic::AtomicU64>,
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
            "hookd_ingest_rate_limited",
            "Requests refused at source URLs past the source's rate limit (429, not kept)",
            server.ingest_rate_limited.clone(),
        );
        registry.register(
            "hookd_flow_runs_ended",
            "Flow runs this node ended, by how they ended",
            server.flow_runs_ended.clone(),
        );
        registry.register(
            "hookd_http_overloaded",
            "Requests refused 503 overloaded before any work because the database's writes were queueing past http_admission_write_wait",
            server.overloaded.clone(),
        );
        registry.register(
            "hookd_database_write_wait_seconds",
            "The shortest wait of a write for the database over the last 300 ms (SQLite's writer queue, PostgreSQL's pool): what admission control compares with http_admission_write_wait",
            server.write_wait.clone(),
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
        registry.register_collector(Box::new(FilteredOutCollector));
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
    state
        .metrics
        .server
        .write_wait
        .set(state.store.write_wait().as_secs_f64());
    let mut text = String::new();
    encode(&mut text, &state.metrics.registry).map_err(|_| ApiError::Internal)?;
    Ok(text)
}
