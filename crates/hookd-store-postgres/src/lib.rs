//! The PostgreSQL backend of hookd: several nodes share one database.
//!
//! - Every call takes a connection from a pool ([`deadpool_postgres`]); writes that
//!   must hold together run in one transaction, and what must hold across nodes is
//!   enforced by the database itself: unique indexes (`eventId`, uids), row locks
//!   (`SELECT ... FOR UPDATE` around every read-modify-write), conditional updates
//!   (auto-disable, cron firings) and transaction-scoped advisory locks
//!   (deduplication keys).
//! - The delivery queue is leased with `FOR UPDATE SKIP LOCKED` ([`deliveries`]), so
//!   nodes never wait for each other's rows and never claim the same one.
//! - New work wakes other nodes through `LISTEN/NOTIFY` ([`notify`]); polling remains
//!   the fallback when a notification is lost.
//! - Migrations are embedded and applied under an advisory lock, so nodes starting
//!   together migrate once ([`migrations`]).

mod applications;
mod data;
mod db;
mod deliveries;
mod endpoints;
mod event_types;
mod flow_runs;
mod flows;
mod group_commit;
mod idempotency;
mod import;
mod ingest;
mod jobs;
mod messages;
pub mod migrations;
mod notify;
mod orgs;
mod retention;
mod secrets;
#[cfg(feature = "testing")]
pub mod testing;
mod ui_sessions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};
use hookd_store::pressure::WriteWait;
use hookd_store::sealing::Keyring;
use hookd_store::{Store, StoreError, StoreResult};
use tokio::sync::Notify;

use db::tls_connector;
pub use import::Import;

/// How the PostgreSQL database is reached.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:password@host:port/database?sslmode=...&options=...`
    pub url: String,
    /// Connections in the pool (per node).
    pub pool_size: usize,
    /// How long opening a connection may take.
    pub connect_timeout: Duration,
    /// How long a call may wait for a free pooled connection.
    pub acquire_timeout: Duration,
    /// The longest a single statement may run (`statement_timeout`); zero: no limit.
    pub statement_timeout: Duration,
    /// A CA certificate (PEM) the server's certificate must chain to; `None`: TLS (when
    /// `sslmode` asks for it) encrypts without authenticating the server, as libpq.
    pub ca_file: Option<std::path::PathBuf>,
    /// The keys secrets are sealed with (`hookd_store::sealing`); every node needs the
    /// same.
    pub keyring: Arc<Keyring>,
}

impl PgOptions {
    pub fn new(url: impl Into<String>, keyring: Keyring) -> Self {
        Self {
            url: url.into(),
            keyring: Arc::new(keyring),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            ca_file: None,
        }
    }

    /// The connection settings the URL describes, with hookd's timeouts applied.
    pub fn pg_config(&self) -> StoreResult<tokio_postgres::Config> {
        let mut config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("the PostgreSQL URL is not valid: {e}")))?;
        config.connect_timeout(self.connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("hookd");
        }
        if !self.statement_timeout.is_zero() {
            let options = config.get_options().unwrap_or_default().to_owned();
            config.options(format!(
                "{options} -c statement_timeout={}",
                self.statement_timeout.as_millis()
            ));
        }
        Ok(config)
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Raised when another node (or this one) committed new work.
    work: Arc<Notify>,
    /// Asks the notifier task to tell other nodes about work this node committed.
    announce: Arc<Notify>,
    /// The endpoint this node's last claim ended on; the next claim starts after it.
    claim_cursor: Arc<std::sync::Mutex<String>>,
    keyring: Arc<Keyring>,
    /// How long calls wait for a pooled connection (admission control's signal,
    /// [`hookd_store::pressure`]).
    wait: Arc<WriteWait>,
    /// Gathers concurrent new messages into one statement ([`group_commit`]).
    messages: group_commit::GroupCommit<messages::NewMessages>,
    /// Gathers the attempts of sends that ended together into one statement.
    records: group_commit::GroupCommit<deliveries::Records>,
    /// Closes the pool and stops the background tasks when the last clone goes.
    _closer: Arc<Closer>,
}

struct Closer {
    pool: Pool,
    announce: Arc<Notify>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.pool.close();
        // The announcer sees the closed pool and ends.
        self.announce.notify_one();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("pool_size", &status.max_size)
            .field("pool_idle", &status.available)
            .finish()
    }
}

impl PgStore {
    /// Connects, migrates (once, whatever the number of nodes starting) and starts the
    /// `LISTEN` task that turns other nodes' notifications into wake-ups.
    pub async fn open(options: PgOptions) -> StoreResult<Self> {
        let pg_config = options.pg_config()?;
        let manager = Manager::from_config(
            pg_config.clone(),
            tls_connector(options.ca_file.as_deref())?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .timeouts(Timeouts {
                wait: Some(options.acquire_timeout),
                create: Some(options.connect_timeout),
                recycle: Some(options.connect_timeout),
            })
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot build the connection pool: {e}")))?;
        {
            let mut client = pool.get().await.map_err(|e| match db::pool(e) {
                StoreError::Unavailable(m) => {
                    let hosts: Vec<String> = pg_config
                        .get_hosts()
                        .iter()
                        .zip(pg_config.get_ports().iter().chain(std::iter::repeat(&5432)))
                        .map(|(h, p)| match h {
                            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{p}"),
                            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                        })
                        .collect();
                    StoreError::Unavailable(format!(
                        "cannot connect to PostgreSQL at {}: {m}",
                        hosts.join(", ")
                    ))
                }
                other => other,
            })?;
            let applied = migrations::apply(&mut client).await?;
            if !applied.is_empty() {
                tracing::info!(?applied, "applied PostgreSQL migrations");
            }
            secrets::prepare(&mut client, &options.keyring).await?;
        }
        let work = Arc::new(Notify::new());
        let announce = Arc::new(Notify::new());
        tokio::spawn(notify::listen(
            pg_config,
            options.ca_file.clone(),
            Arc::downgrade(&work),
        ));
        tokio::spawn(notify::announce(pool.clone(), Arc::clone(&announce)));
        let wait = Arc::<WriteWait>::default();
        let messages = group_commit::GroupCommit::start(
            pool.clone(),
            Arc::clone(&wait),
            Arc::clone(&announce),
            group_commit_slots(options.pool_size),
        );
        let records = group_commit::GroupCommit::start(
            pool.clone(),
            Arc::clone(&wait),
            Arc::clone(&announce),
            group_commit_slots(options.pool_size),
        );
        Ok(Self {
            _closer: Arc::new(Closer {
                pool: pool.clone(),
                announce: Arc::clone(&announce),
            }),
            pool,
            work,
            announce,
            claim_cursor: Arc::default(),
            keyring: options.keyring,
            wait,
            messages,
            records,
        })
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        let asked = std::time::Instant::now();
        let client = self.pool.get().await.map_err(db::pool)?;
        self.wait.record(asked.elapsed());
        Ok(client)
    }

    /// Tells every node (this one included) that deliveries were committed.
    fn announce_work(&self) {
        self.announce.notify_one();
    }
}

/// How many batches of one kind (messages, attempt records) are written at once: a
/// quarter of the pool each, so the claims and the readers keep the rest
/// ([`group_commit`]).
pub(crate) fn group_commit_slots(pool_size: usize) -> usize {
    (pool_size / 4).clamp(1, 8)
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map_err(db::err)?;
        Ok(())
    }

    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    /// Reads and writes share the pool, so its wait is the signal: a pool every call
    /// waits for is the database (or the pool's size) at its limit. Only while calls
    /// are waiting for it now: a one-off stall's waits end with it.
    /// New messages and attempt records wait in the group commit's queues instead
    /// ([`group_commit`]): the longest of the three.
    fn write_wait(&self) -> std::time::Duration {
        let pool = if self.pool.status().waiting == 0 {
            std::time::Duration::ZERO
        } else {
            self.wait.current()
        };
        pool.max(self.messages.wait()).max(self.records.wait())
    }
}
