//! The single writer: one thread owns the write connection and runs write jobs in
//! group commits.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` each commit costs an
//! fsync. Jobs queued while a commit is in progress are therefore gathered (up to
//! [`MAX_BATCH`]) into one transaction. Each job runs inside its own savepoint, so a job
//! that fails rolls back alone; every caller is answered only after the shared COMMIT
//! has returned, which keeps the rule that a 2xx means the data is on disk.

use std::panic::{AssertUnwindSafe, catch_unwind};

use hookd_store::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::checkpoint::Checkpoints;
use tokio::sync::{mpsc, oneshot};

/// Most jobs one transaction carries.
const MAX_BATCH: usize = 256;
/// Jobs that may wait for the writer before callers are held back.
const QUEUE_DEPTH: usize = 4_096;

type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A job runs on the connection, or is handed the error that kept it from running.
type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> (bool, Finish) + Send>;

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every `Writer` clone is
    /// dropped and the queue is drained.
    /// Each commit tells `checkpoints` (see [`crate::checkpoint`]).
    pub(crate) fn start(conn: Connection, checkpoints: Checkpoints) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || run(&conn, rx, &checkpoints))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in a write transaction and answers once it is committed.
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(e.duplicate()),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit_error| {
                let answer = match (result, commit_error) {
                    (Ok(_), Some(e)) => Err(e.duplicate()),
                    (result, _) => result,
                };
                // The caller may have gone away (client hung up); the data is committed.
                let _ = tx.send(answer);
            });
            (ok, finish)
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("a write job panicked; it was rolled back".into()))?
    }
}

fn run(conn: &Connection, mut rx: mpsc::Receiver<Job>, checkpoints: &Checkpoints) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if run_batch(conn, batch) {
            checkpoints.committed();
        }
    }
    tracing::debug!("SQLite writer stopped");
}

/// Runs `batch` in one transaction; whether it was committed.
fn run_batch(conn: &Connection, batch: Vec<Job>) -> bool {
    if let Err(e) = cached(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "SQLite writer could not begin a transaction");
        let err = StoreError::Unavailable(format!("could not begin a transaction: {e}"));
        for job in batch {
            let (_, finish) = job(Err(&err));
            finish(None);
        }
        return false;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
    // Set when SQLite rolled the whole transaction back by itself (it may on a full
    // disk, an I/O error or out of memory): every job of the batch is lost, and no
    // later job may run outside the transaction (a SAVEPOINT would open a new one
    // that its RELEASE commits alone).
    let mut lost: Option<StoreError> = None;
    for job in batch {
        if let Some(err) = &lost {
            let (_, finish) = job(Err(err));
            finishes.push(finish);
            continue;
        }
        if let Err(e) = cached(conn, "SAVEPOINT job") {
            tracing::error!(error = %e, "SQLite writer could not open a savepoint");
            let err = StoreError::Unavailable(format!("could not open a savepoint: {e}"));
            let (_, finish) = job(Err(&err));
            finishes.push(finish);
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok((ok, finish)) => {
                if conn.is_autocommit() {
                    lost = Some(rolled_back());
                } else {
                    let end = if ok {
                        cached(conn, "RELEASE job")
                    } else {
                        conn.execute_batch("ROLLBACK TO job; RELEASE job")
                    };
                    if let Err(e) = end {
                        tracing::error!(error = %e, "SQLite writer could not close a savepoint");
                    }
                }
                finishes.push(finish);
            }
            Err(_) => {
                // The job's answer channel went down with it; its caller sees an error.
                tracing::error!("a write job panicked; its changes were rolled back");
                if conn.is_autocommit() {
                    lost = Some(rolled_back());
                } else {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
    }
    let commit_error = match lost {
        Some(err) => {
            tracing::error!(error = %err, "SQLite rolled a write batch back");
            Some(err)
        }
        None => cached(conn, "COMMIT").err().map(|e| {
            tracing::error!(error = %e, "SQLite commit failed; the batch was rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Unavailable(format!("the commit failed: {e}"))
        }),
    };
    let committed = commit_error.is_none();
    for finish in finishes {
        finish(commit_error.as_ref());
    }
    committed
}

fn rolled_back() -> StoreError {
    StoreError::Unavailable(
        "SQLite rolled the transaction back (the disk full, an I/O error or out of memory); nothing was written"
            .into(),
    )
}

/// Runs one statement of the writer's own, prepared once (two per job: parsing them
/// each time showed in profiles).
fn cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}
