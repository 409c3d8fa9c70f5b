//! The service layer: what the server does, whoever asks — an API handler, a data-API
//! mode, and later the web UI and flows. Its functions take validated input, call the
//! store, and own every side effect of a change: operational events, clearing the
//! lookup caches, waking the delivery engine and the cron scheduler, metering.
//!
//! The rule: a handler extracts, calls one function here, and maps the answer. The
//! side-effect methods of [`Service`] are private to this module, so a handler cannot
//! wake, emit, clear or meter by itself.
//!
//! It may use the shared HTTP layer's error and [`Tenant`](crate::http::auth::Tenant)
//! types (`crate::http`), the store, the delivery engine and core; never a surface.

pub mod application;
pub mod auth;
pub mod cache;
pub mod cron;
pub mod data;
pub mod endpoint;
pub mod event_type;
pub mod event_type_openapi;
pub mod events;
pub mod flow;
pub mod job_kinds;
pub mod jobs;
pub mod listen;
pub mod message;
pub mod meter;
pub mod metric_history;
pub mod metrics;
pub mod secret;
pub mod source;
pub mod tasks;
pub mod transformation;
pub mod ui_session;

use std::future::Future;
use std::sync::Arc;

use hookd_dispatch::Dispatcher;
use hookd_store::{Store, StoreError, StoreResult};

use crate::config::Config;
use crate::http::error::{ApiError, ApiResult};

/// The server's state, shared by every request: the store and configuration, and the
/// in-process parts that changes must reach (delivery engine, cron scheduler, caches,
/// meter, metrics).
#[derive(Debug, Clone)]
pub struct Service {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// The local delivery engine, woken after each committed message; `None` on an
    /// API-only node (its deliveries are picked up by the workers' polling).
    dispatcher: Option<Arc<Dispatcher>>,
    metrics: Arc<metrics::Metrics>,
    /// Wakes the cron scheduler after a source changed.
    cron_wake: Arc<tokio::sync::Notify>,
    /// Recent token and application lookups (see `cache`).
    lookups: Arc<cache::Lookups>,
    /// Data API usage, quota and per-key rates.
    meter: Arc<meter::Meter>,
    /// Collections' and modes' JSON Schemas, compiled once each.
    schemas: Arc<data::Schemas>,
    /// Wakes the job runner after a job was queued.
    jobs_wake: Arc<tokio::sync::Notify>,
    /// Wakes the flow runner after a run was made due.
    flows_wake: Arc<tokio::sync::Notify>,
    /// Runs transformation code (simulations and checks here; the delivery engine
    /// shares the pool).
    pub sandbox: hookd_sandbox::Sandbox,
    /// Flows' requests to addresses users chose (SMS), through the network guard.
    outbound: flow::Outbound,
    /// Flows' `throttleRate` buckets, when the store does not share one between nodes.
    flow_throttle: Arc<std::sync::Mutex<hookd_dispatch::throttle::Throttle<hookd_core::id::FlowId>>>,
    /// Sources' rate limits on this node (`rateLimit`, `ingest_source_rate_limit`).
    source_throttle: Arc<std::sync::Mutex<hookd_dispatch::throttle::Throttle<hookd_core::id::SourceId>>>,
    /// Says which source just recorded a request (the UI's live inspector listens;
    /// other nodes' requests are found by its polling).
    received: tokio::sync::broadcast::Sender<hookd_core::id::SourceId>,
    /// The last hour of this node's figures (the UI's overview).
    pub history: Arc<metric_history::History>,
}

impl Service {
    /// The state of a server on `store` with `config`; `dispatcher` is the local
    /// delivery engine, if this node runs one; `sandbox` runs transformation code.
    pub fn new(
        store: Arc<dyn Store>,
        config: Config,
        dispatcher: Option<Arc<Dispatcher>>,
        sandbox: hookd_sandbox::Sandbox,
    ) -> Self {
        Self {
            metrics: Arc::new(metrics::Metrics::new(
                dispatcher.as_ref().map(|d| d.metrics()),
                sandbox.metrics(),
            )),
            sandbox,
            meter: Arc::new(meter::Meter::new(&config)),
            store,
            dispatcher,
            cron_wake: Arc::new(tokio::sync::Notify::new()),
            lookups: Arc::default(),
            schemas: Arc::default(),
            jobs_wake: Arc::new(tokio::sync::Notify::new()),
            flows_wake: Arc::new(tokio::sync::Notify::new()),
            outbound: flow::Outbound::new(&config),
            flow_throttle: Arc::default(),
            source_throttle: Arc::default(),
            received: tokio::sync::broadcast::channel(256).0,
            history: Arc::default(),
            config: Arc::new(config),
        }
    }

    /// The wake-up the cron scheduler waits on.
    pub(crate) fn cron_signal(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.cron_wake)
    }

    /// The data API's usage meter (its flusher runs beside the server).
    pub(crate) fn meter(&self) -> Arc<meter::Meter> {
        Arc::clone(&self.meter)
    }

    /// The count of requests admission control refuses (`hookd_http_overloaded`).
    pub(crate) fn overloaded_counter(&self) -> prometheus_client::metrics::counter::Counter {
        self.metrics.server.overloaded.clone()
    }

    /// Announces each request a source of this node records.
    pub fn subscribe_received(&self) -> tokio::sync::broadcast::Receiver<hookd_core::id::SourceId> {
        self.received.subscribe()
    }

    /// This node's `hookd listen` sessions; `None` on a node without a delivery engine.
    fn relays(&self) -> Option<&Arc<hookd_dispatch::relay::Relays>> {
        self.dispatcher.as_ref().map(|d| d.relays())
    }

    /// This node's delivery engine (`None` on an API-only node).
    fn dispatcher(&self) -> Option<&Arc<Dispatcher>> {
        self.dispatcher.as_ref()
    }

    /// Tells the local delivery engine that new deliveries were committed.
    fn wake_dispatcher(&self) {
        if let Some(d) = &self.dispatcher {
            d.wake();
        }
    }

    /// Tells the cron scheduler that a source was created, changed or deleted.
    fn wake_cron(&self) {
        self.cron_wake.notify_one();
    }
}

impl crate::http::HttpState for Service {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn max_body_bytes(&self) -> usize {
        self.config.api_max_body_bytes
    }
}

/// PUT semantics: replace when it exists, else create; a concurrent creator wins and is
/// then replaced. Returns whether this call created the object.
pub(super) async fn upsert<T, U, UF, C, CF>(update: U, create: C) -> ApiResult<(T, bool)>
where
    U: Fn() -> UF,
    UF: Future<Output = StoreResult<T>>,
    C: FnOnce() -> CF,
    CF: Future<Output = StoreResult<T>>,
{
    match update().await {
        Err(StoreError::NotFound(what)) => match create().await {
            Ok(v) => Ok((v, true)),
            Err(StoreError::Conflict(message)) => match update().await {
                Ok(v) => Ok((v, false)),
                // The conflict was with some other object (e.g. a uid taken elsewhere).
                Err(StoreError::NotFound(_)) => Err(ApiError::Conflict(message)),
                Err(e) => Err(e.into()),
            },
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(what)),
            Err(e) => Err(e.into()),
        },
        other => Ok((other?, false)),
    }
}

/// Every item of a keyset listing, page by page (250 a page): `page` reads the page
/// after a cursor, `key` gives an item's cursor key. For listings known to be small
/// (an organisation's event types, an application's endpoints).
pub(super) async fn all_pages<T, F, Fut>(mut page: F, key: impl Fn(&T) -> String) -> StoreResult<Vec<T>>
where
    F: FnMut(hookd_store::ListQuery) -> Fut,
    Fut: Future<Output = StoreResult<hookd_store::Page<T>>>,
{
    let mut out = Vec::new();
    let mut query = hookd_store::ListQuery {
        limit: 250,
        cursor: None,
        order: hookd_store::Order::Ascending,
    };
    loop {
        let got = page(query.clone()).await?;
        let last = got.items.last().map(&key);
        out.extend(got.items);
        match (got.has_more, last) {
            (true, Some(key)) => {
                query.cursor = Some(hookd_store::Cursor { key, backward: false });
            }
            _ => return Ok(out),
        }
    }
}
