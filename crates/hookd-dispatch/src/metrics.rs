//! The delivery engine's counters, registered by the server for `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `success`, `retry`, `exhausted` or `canceled`.
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct DispatchMetrics {
    pub attempts: Family<OutcomeLabel, Counter>,
    pub attempt_seconds: Histogram,
    pub in_flight: Gauge,
}

impl Default for DispatchMetrics {
    fn default() -> Self {
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
        ];
        Self {
            attempts: Family::default(),
            attempt_seconds: Histogram::new(buckets),
            in_flight: Gauge::default(),
        }
    }
}

impl DispatchMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hookd_delivery_attempts",
            "Delivery attempts by what followed: success, retry (scheduled again), exhausted, canceled",
            self.attempts.clone(),
        );
        registry.register(
            "hookd_delivery_attempt_duration_seconds",
            "Time from sending a webhook to its answer (or failure)",
            self.attempt_seconds.clone(),
        );
        registry.register(
            "hookd_deliveries_in_flight",
            "Deliveries being sent by this node",
            self.in_flight.clone(),
        );
    }
}
