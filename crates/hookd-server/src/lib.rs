//! The hookd server: configuration, the Svix-compatible HTTP API and the operator CLI.
//!
//! [`launch`] starts the API on a listener the caller bound (port 0 in tests) and
//! returns a [`Running`] server; the `hookd` binary ([`cli`]) wraps it with signal
//! handling.

pub mod cli;
pub mod client;
/// The configuration (its own crate, `hookd-config`, so the fuzz targets can take it).
pub use hookd_config as config;
pub mod data;
pub mod flow;
pub mod http;
pub mod listen;
pub mod ops;
pub mod receive;
pub mod router;
pub mod secret_key;
pub mod send;
pub mod service;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use hookd_dispatch::{DispatchConfig, Dispatcher};
use hookd_store::Store;
use hookd_store_postgres::{PgOptions, PgStore};
use hookd_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::Layer as _;
use tower_http::normalize_path::NormalizePathLayer;

use crate::config::{Config, DatabaseKind, SqliteSynchronous};
use crate::service::Service;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Key(#[from] secret_key::KeyError),
    #[error("cannot open the database: {0}")]
    Store(#[from] hookd_store::StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot start the delivery engine: {0}")]
    Dispatch(#[from] hookd_dispatch::sender::BuildError),
}

/// Opens (and migrates) the database the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, LaunchError> {
    let database = config.database()?;
    let keyring = secret_key::keyring_for(config, &database)?;
    match database {
        DatabaseKind::Sqlite(path) => {
            let mut options = SqliteOptions::new(path, keyring);
            options.readers = config.sqlite_readers;
            options.synchronous_full = config.sqlite_synchronous == SqliteSynchronous::Full;
            Ok(Arc::new(SqliteStore::open(options).await?))
        }
        DatabaseKind::Postgres(url) => Ok(Arc::new(PgStore::open(pg_options(config, url, keyring)).await?)),
    }
}

/// What one transformation run may use.
pub fn transform_limits(config: &Config) -> hookd_sandbox::Limits {
    hookd_sandbox::Limits {
        memory_bytes: config.transform_memory_bytes,
        time: config.transform_timeout,
        stack_bytes: config.transform_stack_bytes,
        max_output_bytes: config.transform_max_output_bytes,
    }
}

/// The PostgreSQL settings from the configuration.
pub fn pg_options(config: &Config, url: String, keyring: hookd_store::sealing::Keyring) -> PgOptions {
    let mut options = PgOptions::new(url, keyring);
    options.pool_size = config.postgres_pool_size;
    options.connect_timeout = config.postgres_connect_timeout;
    options.acquire_timeout = config.postgres_acquire_timeout;
    options.statement_timeout = config.postgres_statement_timeout;
    options.ca_file = (!config.postgres_ca_file.is_empty()).then(|| config.postgres_ca_file.clone().into());
    options
}

/// A server started by [`launch`].
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    store: Arc<dyn Store>,
    dispatcher: Option<Arc<Dispatcher>>,
    task: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<()>>,
    /// The retention pruner and the cron scheduler (worker nodes only), and the
    /// usage meter's flusher.
    background: Vec<JoinHandle<()>>,
    meter: Arc<service::meter::Meter>,
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the server uses (tests create tokens through it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The delivery engine, when this node runs one (tests step it directly).
    pub fn dispatcher(&self) -> Option<&Arc<Dispatcher>> {
        self.dispatcher.as_ref()
    }

    /// Waits until the server has stopped (after its shutdown future completed,
    /// in-flight requests finished, in-flight deliveries finished or were released, and
    /// the pruner and cron scheduler ended their current step — none of them is left
    /// holding a transaction open).
    pub async fn wait(self) -> std::io::Result<()> {
        let served = self.task.await.map_err(std::io::Error::other)?;
        if let Some(worker) = self.worker {
            worker.await.map_err(std::io::Error::other)?;
        }
        for task in self.background {
            task.await.map_err(std::io::Error::other)?;
        }
        // The last requests' usage.
        self.meter.flush(self.store.as_ref()).await;
        served
    }
}

/// The delivery engine's settings from the configuration.
pub fn dispatch_config(config: &Config) -> DispatchConfig {
    DispatchConfig {
        node_id: config.node_id(),
        retry_schedule: config.retry_schedule.clone(),
        policy: hookd_core::network_policy::NetworkPolicy::new(config.delivery_allow_networks.clone()),
        timeout: config.delivery_timeout,
        https_only: config.delivery_https_only,
        proxy: (!config.delivery_proxy.is_empty()).then(|| config.delivery_proxy.clone()),
        concurrency: config.delivery_concurrency,
        endpoint_concurrency: config.delivery_endpoint_concurrency,
        lease: config.delivery_lease,
        poll_interval: config.delivery_poll_interval,
        shutdown_grace: config.shutdown_timeout,
        auto_disable_after: config.endpoint_auto_disable_after,
        record_headers: config.delivery_record_headers,
    }
}

/// Opens the database and serves the API on `listener` until `shutdown` completes.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, LaunchError> {
    let store = open_store(&config).await?;
    launch_with_store(config, store, listener, shutdown)
}

/// [`launch`] on a store the caller opened.
pub fn launch_with_store(
    mut config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, LaunchError> {
    let local_addr = listener.local_addr()?;
    // Without a public URL, ingest URLs name the address actually bound (port 0 in
    // tests picks one).
    if config.public_url.is_none() {
        config.public_url = url::Url::parse(&format!("http://{local_addr}")).ok();
    }
    let sandbox = hookd_sandbox::Sandbox::start(transform_limits(&config), config.transform_threads())?;
    let dispatcher = if config.delivery_enabled {
        Some(Dispatcher::new(
            Arc::clone(&store),
            dispatch_config(&config),
            sandbox.clone(),
        )?)
    } else {
        None
    };
    // One shutdown signal, watched by the HTTP server and the delivery engine.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let worker = dispatcher
        .as_ref()
        .map(|d| tokio::spawn(Arc::clone(d).run(stop_rx.clone())));
    // Leases this node held before a restart (runs and jobs it was carrying out) are
    // given back at once, and before it answers anything or its runners claim: a run
    // or a job made here is leased to this node, and must not lose that lease to this.
    let (released_tx, released) = tokio::sync::watch::channel(false);
    {
        let (store, node) = (Arc::clone(&store), config.node_id());
        tokio::spawn(async move {
            if let Err(e) = store.release_flow_runs(&node).await {
                tracing::warn!(error = %e, "could not release old flow run leases; they will expire");
            }
            if let Err(e) = store.release_jobs(&node).await {
                tracing::warn!(error = %e, "could not release old job leases; they will expire");
            }
            let _ = released_tx.send(true);
        });
    }
    let after_release = |work: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>| {
        let mut released = released.clone();
        async move {
            let _ = released.wait_for(|done| *done).await;
            work.await;
        }
    };
    let state_limits = http::server::Limits::from_config(&config);
    let state = Service::new(Arc::clone(&store), config, dispatcher.clone(), sandbox);
    let meter = state.meter();
    let state_overloaded = state.overloaded_counter();
    // Background work belongs to worker nodes (every node on one database may run it:
    // pruning batches skip each other's rows and a cron firing is recorded once).
    let mut background = vec![tokio::spawn(
        Arc::clone(&meter).run(Arc::clone(&store), stop_rx.clone()),
    )];
    if state.config.ui_enabled && state.config.api_enabled {
        background.push(tokio::spawn(ops::metrics::run_readings(
            state.clone(),
            stop_rx.clone(),
        )));
    }
    if state.config.delivery_enabled {
        background.push(tokio::spawn(ops::retention::run_pruner(
            Arc::clone(&store),
            state.config.retention_interval,
            ops::retention::Retention {
                ingest: state.config.ingest_retention,
                flow_runs: state.config.flow_run_retention,
            },
            stop_rx.clone(),
        )));
        background.push(tokio::spawn(after_release(Box::pin(ops::jobs::run_jobs(
            state.clone(),
            stop_rx.clone(),
        )))));
        background.push(ops::flows::spawn_runner(after_release(Box::pin(
            ops::flows::run_flows(state.clone(), stop_rx.clone()),
        )))?);
        background.push(tokio::spawn(service::cron::run_cron(
            Arc::clone(&store),
            state.clone(),
            state.cron_signal(),
            stop_rx.clone(),
        )));
    }
    // Trailing slashes are trimmed before routing, so every path answers with and
    // without one (the SDKs differ).
    let app = NormalizePathLayer::trim_trailing_slash().layer(router::router(state));
    let limits = state_limits;
    let admission = http::server::Admission {
        write_wait: {
            let store = Arc::clone(&store);
            Arc::new(move || store.write_wait())
        },
        refused: state_overloaded,
    };
    let mut released = released.clone();
    let task = tokio::spawn(async move {
        let _ = released.wait_for(|done| *done).await;
        http::server::serve(listener, app, limits, admission, stop_rx).await;
        Ok(())
    });
    Ok(Running {
        local_addr,
        store,
        dispatcher,
        task,
        worker,
        background,
        meter,
    })
}
