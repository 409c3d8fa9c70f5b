//! The embedded SQLite backend of hookd.
//!
//! One database file in WAL mode. Writes go through one writer thread that
//! group-commits ([`writer`]); reads use a small pool of read-only connections
//! ([`readers`]). Migrations are embedded and applied on open ([`migrations`]).

mod applications;
pub mod backup;
mod checkpoint;
mod data;
mod deliveries;
mod endpoints;
mod event_types;
mod export;
mod flow_runs;
mod flows;
mod idempotency;
mod ingest;
mod jobs;
mod messages;
pub mod migrations;
mod orgs;
mod rank_index;
mod readers;
mod retention;
mod secrets;
mod sql;
mod ui_sessions;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hookd_store::sealing::Keyring;
use hookd_store::{Store, StoreError, StoreResult};
use rusqlite::{Connection, OpenFlags};

use readers::Readers;
use writer::Writer;

/// How the SQLite database is opened.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    pub path: PathBuf,
    /// Read-only connections in the pool.
    pub readers: usize,
    /// `synchronous=FULL` (true) makes every commit durable on power loss; `NORMAL`
    /// (false) still survives a process crash.
    pub synchronous_full: bool,
    pub busy_timeout: Duration,
    /// The keys secrets are sealed with (`hookd_store::sealing`).
    pub keyring: Arc<Keyring>,
}

impl SqliteOptions {
    pub fn new(path: impl Into<PathBuf>, keyring: Keyring) -> Self {
        Self {
            path: path.into(),
            keyring: Arc::new(keyring),
            readers: 4,
            synchronous_full: true,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    path: PathBuf,
    /// The endpoint the last claim visited last; the next claim starts after it.
    claim_cursor: Arc<std::sync::Mutex<String>>,
    keyring: Arc<Keyring>,
}

impl SqliteStore {
    /// Opens (creating the file and its directory when missing) and migrates.
    pub async fn open(options: SqliteOptions) -> StoreResult<Self> {
        tokio::task::spawn_blocking(move || Self::open_blocking(options))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
    }

    fn open_blocking(options: SqliteOptions) -> StoreResult<Self> {
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create the data directory {}: {e}", dir.display()))
            })?;
        }
        let mut writer = open_connection(&options, false)?;
        let applied = migrations::apply(&mut writer).map_err(|e| {
            StoreError::Unavailable(format!("migrating {} failed: {e}", options.path.display()))
        })?;
        if !applied.is_empty() {
            tracing::info!(path = %options.path.display(), ?applied, "applied SQLite migrations");
        }
        secrets::prepare(&mut writer, &options.keyring)?;
        // The checkpoint thread keeps the WAL short (`checkpoint`); the writer only
        // checkpoints itself when that thread falls far behind. Each job's savepoint
        // journal stays in memory (in a temporary file, writing it was a quarter of
        // the writer's time), and a group commit's pages fit in its cache without
        // spilling. It holds every statement it runs prepared (about a hundred kinds).
        let configure = |name: &str, value: i64| writer.pragma_update(None, name, value);
        configure("wal_autocheckpoint", checkpoint::WRITER_FALLBACK_PAGES)
            .and_then(|()| configure("journal_size_limit", checkpoint::WAL_SIZE_LIMIT))
            .and_then(|()| configure("temp_store", 2))
            .and_then(|()| configure("cache_size", WRITER_CACHE_KIB))
            .map_err(|e| StoreError::Unavailable(format!("configuring {}: {e}", options.path.display())))?;
        writer.set_prepared_statement_cache_capacity(WRITER_STATEMENTS);
        let checkpoints = checkpoint::Checkpoints::start(open_connection(&options, false)?)
            .map_err(StoreError::internal)?;
        let readers = (0..options.readers.max(1))
            .map(|_| open_connection(&options, true))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Self {
            writer: Writer::start(writer, checkpoints).map_err(StoreError::internal)?,
            readers: Arc::new(Readers::new(readers)),
            path: options.path,
            claim_cursor: Arc::default(),
            keyring: options.keyring,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.readers.read(f).await
    }

    /// A write a caller waits on (see [`writer::Lane`]).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(writer::Lane::Now, f).await
    }

    /// Background work's write, which waits for the writer's spare time (see
    /// [`writer::Lane`]).
    async fn write_later<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.write(writer::Lane::Later, f).await
    }
}

/// The writer's page cache, in KiB as `PRAGMA cache_size` takes it (negative).
const WRITER_CACHE_KIB: i64 = -16 * 1024;
/// Prepared statements the writer keeps (more kinds than the readers' 64).
const WRITER_STATEMENTS: usize = 256;

fn open_connection(options: &SqliteOptions, read_only: bool) -> StoreResult<Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let unavailable =
        |e: rusqlite::Error| StoreError::Unavailable(format!("opening {}: {e}", options.path.display()));
    let conn = Connection::open_with_flags(&options.path, flags).map_err(unavailable)?;
    conn.busy_timeout(options.busy_timeout).map_err(unavailable)?;
    // SQLite falls back to reading when the file cannot be written; hookd would then
    // answer every write 503 forever. Say so at start instead.
    if !read_only && conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
        return Err(StoreError::Unavailable(format!(
            "{} cannot be written (its permissions, or a read-only filesystem); hookd needs to write its database",
            options.path.display()
        )));
    }
    if !read_only {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "{} does not support WAL mode (got {mode})",
                options.path.display()
            )));
        }
        let sync = if options.synchronous_full {
            "FULL"
        } else {
            "NORMAL"
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(unavailable)?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(unavailable)?;
    secrets::register(&conn, Arc::clone(&options.keyring)).map_err(unavailable)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())).map_err(sql::internal))
            .await
    }

    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn write_wait(&self) -> std::time::Duration {
        self.writer.wait()
    }
}
