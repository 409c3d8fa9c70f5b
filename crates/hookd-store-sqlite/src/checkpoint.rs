//! WAL checkpoints off the writer's thread.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a checkpoint copies
//! them back into the database file (then fsyncs it). Left to SQLite, the committing
//! connection does that itself once the WAL passes 1,000 pages, so every few hundred
//! commits one group commit — and every caller waiting on it — also pays for copying
//! megabytes and an fsync. The writer's p99 is made of those commits.
//!
//! Here a thread of its own, on its own connection, runs `PASSIVE` checkpoints (which
//! never block the writer or readers) after the writer has committed, at most every
//! [`SPACING`]. The writer keeps SQLite's own checkpoint as a safety net at a much
//! larger WAL ([`WRITER_FALLBACK_PAGES`]), so a checkpointer that falls behind (a slow
//! disk) bounds the WAL instead of letting it grow without end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use rusqlite::Connection;

/// Least time between two checkpoints: each costs an fsync of the database file.
const SPACING: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB each) past which the writer checkpoints itself.
pub(crate) const WRITER_FALLBACK_PAGES: i64 = 16_384;
/// Bytes the WAL file is cut back to after it has been reset.
pub(crate) const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// The writer's side: tells the checkpointer that something was committed.
#[derive(Debug)]
pub(crate) struct Checkpoints {
    committed: SyncSender<()>,
    /// Whether the thread was found stopped (said once, not at every commit).
    stopped: AtomicBool,
}

impl Checkpoints {
    /// Starts the checkpoint thread on `conn` (a read-write connection to the same
    /// database). It ends, after a last checkpoint, when the `Checkpoints` is dropped.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (committed, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("hookd-sqlite-checkpoint".into())
            .spawn(move || run(&conn, &rx))?;
        Ok(Self {
            committed,
            stopped: AtomicBool::new(false),
        })
    }

    /// After a commit: a checkpoint is due (one already asked for covers this one).
    pub(crate) fn committed(&self) {
        match self.committed.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                if !self.stopped.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "the SQLite checkpoint thread has stopped; the writer checkpoints itself past {WRITER_FALLBACK_PAGES} WAL pages"
                    );
                }
            }
        }
    }
}

fn run(conn: &Connection, committed: &Receiver<()>) {
    while committed.recv().is_ok() {
        checkpoint(conn);
        std::thread::sleep(SPACING);
    }
    checkpoint(conn);
    tracing::debug!("SQLite checkpoint thread stopped");
}

/// One `PASSIVE` checkpoint: copies what no reader still needs, waits for nobody.
fn checkpoint(conn: &Connection) {
    let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
    });
    match result {
        Ok((wal, copied)) => tracing::trace!(wal, copied, "WAL checkpoint"),
        // The writer's own checkpoint (WRITER_FALLBACK_PAGES) bounds the WAL meanwhile.
        Err(e) => tracing::warn!(error = %e, "a WAL checkpoint failed; trying again after the next commit"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::{SqliteOptions, open_connection};

    /// The writer never checkpoints below its fallback; the thread does, so the pages
    /// reach the database file while the WAL holds far fewer than that.
    #[test]
    fn the_thread_copies_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteOptions::new(dir.path().join("c.db"), hookd_store::sealing::Keyring::generate());
        let writer = open_connection(&options, false).unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT); PRAGMA wal_autocheckpoint = 16384;")
            .unwrap();
        let checkpoints = Checkpoints::start(open_connection(&options, false).unwrap()).unwrap();
        let file_len = || std::fs::metadata(&options.path).unwrap().len();
        let before = file_len();
        for _ in 0..50 {
            writer
                .execute("INSERT INTO t VALUES (?)", ["x".repeat(4_000)])
                .unwrap();
            checkpoints.committed();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while file_len() <= before + 50 * 4_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            file_len() > before + 50 * 4_000,
            "the rows never reached the database file: {} bytes",
            file_len()
        );
    }
}
