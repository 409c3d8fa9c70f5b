//! Counters of transformation runs, registered by the server for `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabel {
    /// `ok`, `canceled`, or the error's kind (`ScriptError::kind`).
    pub outcome: &'static str,
}

#[derive(Debug, Clone)]
pub struct TransformMetrics {
    pub runs: Family<RunLabel, Counter>,
    pub run_seconds: Histogram,
}

impl Default for TransformMetrics {
    fn default() -> Self {
        let buckets = [
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ];
        Self {
            runs: Family::default(),
            run_seconds: Histogram::new(buckets),
        }
    }
}

impl TransformMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hookd_transformation_runs",
            "Transformation runs (deliveries and simulations) by outcome: ok, canceled, or the error (thrown, timeout, memory, stack, bad_result, bad_code, unavailable)",
            self.runs.clone(),
        );
        registry.register(
            "hookd_transformation_run_duration_seconds",
            "Time of one transformation run, waiting for a free runtime included",
            self.run_seconds.clone(),
        );
    }

    pub(crate) fn record(&self, outcome: &'static str, seconds: f64) {
        self.runs.get_or_create(&RunLabel { outcome }).inc();
        self.run_seconds.observe(seconds);
    }
}
