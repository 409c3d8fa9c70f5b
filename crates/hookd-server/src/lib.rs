//! The hookd server: configuration, the Svix-compatible HTTP API and the operator CLI.
//!
//! [`launch`] starts the API on a listener the caller bound (port 0 in tests) and
//! returns a [`Running`] server; the `hookd` binary ([`cli`]) wraps it with signal
//! handling.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod pagination;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::ServiceExt;
use axum::extract::Request;
use hookd_store::Store;
use hookd_store_sqlite::{SqliteOptions, SqliteStore};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::Layer as _;
use tower_http::normalize_path::NormalizePathLayer;

use crate::config::{Config, DatabaseKind, SqliteSynchronous};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot open the database: {0}")]
    Store(#[from] hookd_store::StoreError),
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens (and migrates) the database the configuration names.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, LaunchError> {
    match config.database()? {
        DatabaseKind::Sqlite(path) => {
            let mut options = SqliteOptions::new(path);
            options.readers = config.sqlite_readers;
            options.synchronous_full = config.sqlite_synchronous == SqliteSynchronous::Full;
            Ok(Arc::new(SqliteStore::open(options).await?))
        }
    }
}

/// A server started by [`launch`].
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    store: Arc<dyn Store>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The store the server uses (tests create tokens through it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Waits until the server has stopped (after its shutdown future completed and
    /// in-flight requests finished).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.map_err(std::io::Error::other)?
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
    config: Config,
    store: Arc<dyn Store>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, LaunchError> {
    let local_addr = listener.local_addr()?;
    let state = AppState {
        store: Arc::clone(&store),
        config: Arc::new(config),
    };
    // Trailing slashes are trimmed before routing, so every path answers with and
    // without one (the SDKs differ).
    let app = NormalizePathLayer::trim_trailing_slash().layer(api::router(state));
    let task = tokio::spawn(async move {
        axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
            .with_graceful_shutdown(shutdown)
            .await
    });
    Ok(Running {
        local_addr,
        store,
        task,
    })
}
