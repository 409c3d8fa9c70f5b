//! What every handler shares.

use std::sync::Arc;

use hookd_dispatch::Dispatcher;
use hookd_store::Store;

use crate::config::Config;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The local delivery engine, woken after each committed message; `None` on an
    /// API-only node (its deliveries are picked up by the workers' polling).
    pub dispatcher: Option<Arc<Dispatcher>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Wakes the cron scheduler after a source changed.
    pub cron_wake: Arc<tokio::sync::Notify>,
    /// Recent token and application lookups (see `cache`).
    pub lookups: Arc<crate::cache::Lookups>,
    /// Data API usage, quota and per-key rates.
    pub meter: Arc<crate::meter::Meter>,
}

impl AppState {
    /// Tells the local delivery engine that new deliveries were committed.
    pub fn wake_dispatcher(&self) {
        if let Some(d) = &self.dispatcher {
            d.wake();
        }
    }

    /// Tells the cron scheduler that a source was created, changed or deleted.
    pub fn wake_cron(&self) {
        self.cron_wake.notify_one();
    }
}
