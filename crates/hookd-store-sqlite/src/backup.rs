//! Online backup and restore of the embedded database (`hookd backup`, `hookd restore`).
//!
//! A backup is `VACUUM INTO` on a connection of its own: one read transaction, so the
//! copy is the database as of one commit, taken while a server keeps writing (WAL
//! readers never block the writer). It is written beside the target as `.partial`,
//! synced, checked, then renamed into place, so a target that exists is always a
//! whole backup.
//!
//! A restore copies a backup into the database path through SQLite's backup API (so the
//! WAL and its index stay consistent), after checking the backup's integrity and that
//! it is a hookd database no newer than this binary. The server must be stopped: it
//! keeps state in memory that a database replaced under it would contradict, so the
//! restore takes SQLite's exclusive lock and refuses while any other connection is open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// What a backup or a restore did.
#[derive(Debug, Clone)]
pub struct Copied {
    pub bytes: u64,
    /// Messages in the copy (a figure to check it by).
    pub messages: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists; choose a new file (a backup never overwrites one)")]
    Exists(PathBuf),
    #[error("{path}: {message}")]
    Sqlite { path: PathBuf, message: String },
    #[error("{0}")]
    Io(String),
    #[error("{0} is in use: stop every hookd using it before restoring")]
    InUse(PathBuf),
    #[error("{path} is not a usable hookd backup: {reason}")]
    NotABackup { path: PathBuf, reason: String },
}

fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> BackupError + '_ {
    move |e| BackupError::Sqlite {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Copies the database at `db` into a new file `to`, consistently, while servers use it.
pub fn backup(db: &Path, to: &Path) -> Result<Copied, BackupError> {
    if to.exists() {
        return Err(BackupError::Exists(to.to_owned()));
    }
    if !db.exists() {
        return Err(BackupError::Sqlite {
            path: db.to_owned(),
            message: "no such database".into(),
        });
    }
    let partial = partial_path(to);
    let _ = std::fs::remove_file(&partial);
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite(db))?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(sqlite(db))?;
    let target = partial
        .to_str()
        .ok_or_else(|| BackupError::Io(format!("{} is not UTF-8", partial.display())))?;
    let copied = conn.execute("VACUUM INTO ?1", [target]).map_err(sqlite(db));
    drop(conn);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let result = check(&partial).and_then(|messages| {
        let file = std::fs::File::open(&partial).map_err(|e| BackupError::Io(e.to_string()))?;
        file.sync_all().map_err(|e| BackupError::Io(e.to_string()))?;
        let bytes = file.metadata().map_err(|e| BackupError::Io(e.to_string()))?.len();
        std::fs::rename(&partial, to)
            .map_err(|e| BackupError::Io(format!("renaming into {}: {e}", to.display())))?;
        Ok(Copied { bytes, messages })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// Replaces the database at `db` (made when missing) with the backup `from`. Every
/// hookd using `db` must be stopped.
pub fn restore(from: &Path, db: &Path) -> Result<Copied, BackupError> {
    let messages = check(from)?;
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackupError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    let src = Connection::open_with_flags(from, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(sqlite(from))?;
    let mut dst = Connection::open(db).map_err(sqlite(db))?;
    // Exclusive: fails within half a second while a server holds the database.
    dst.busy_timeout(Duration::from_millis(500)).map_err(sqlite(db))?;
    dst.pragma_update(None, "locking_mode", "EXCLUSIVE")
        .map_err(sqlite(db))?;
    dst.execute_batch("BEGIN EXCLUSIVE; COMMIT")
        .map_err(|_| BackupError::InUse(db.to_owned()))?;
    {
        let copy = rusqlite::backup::Backup::new(&src, &mut dst).map_err(sqlite(db))?;
        copy.run_to_completion(1024, Duration::ZERO, None)
            .map_err(sqlite(db))?;
    }
    dst.execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_checkpoint(TRUNCATE);")
        .map_err(sqlite(db))?;
    drop(dst);
    let bytes = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    Ok(Copied { bytes, messages })
}

/// Checks a backup file: SQLite's integrity check, and a hookd schema no newer than
/// this binary's. The number of messages in it.
fn check(path: &Path) -> Result<i64, BackupError> {
    let not = |reason: String| BackupError::NotABackup {
        path: path.to_owned(),
        reason,
    };
    if !path.is_file() {
        return Err(not("no such file".into()));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| not(e.to_string()))?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| not(e.to_string()))?;
    if verdict != "ok" {
        return Err(not(format!("the integrity check failed: {verdict}")));
    }
    let newest: u32 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| not(e.to_string()))?;
    let known = crate::migrations::LATEST;
    if newest == 0 {
        return Err(not("it holds no hookd schema".into()));
    }
    if newest > known {
        return Err(not(format!(
            "its schema ({newest}) is newer than this hookd's ({known}); use a newer hookd"
        )));
    }
    conn.query_row("SELECT count(*) FROM message", [], |r| r.get(0))
        .map_err(|e| not(e.to_string()))
}

fn partial_path(to: &Path) -> PathBuf {
    let mut name = to.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    to.with_file_name(name)
}
