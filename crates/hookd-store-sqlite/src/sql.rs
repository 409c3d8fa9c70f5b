//! Conversions between SQLite values and the store's types: times, JSON columns,
//! constraint errors and keyset pagination.

use chrono::{DateTime, Utc};
use hookd_store::{ListQuery, Page, StoreError, StoreResult};
use rusqlite::{Connection, Row, ToSql};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A database error: what space, permissions or another process may cure — the disk
/// full (`SQLITE_FULL`), the file read-only (`SQLITE_READONLY`), busy or locked, an I/O
/// error, the file gone — is `Unavailable` (503 with `Retry-After`, nothing committed);
/// the rest internal.
pub(crate) fn internal(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && transient(f.code)
    {
        return StoreError::Unavailable(format!("SQLite: {e}"));
    }
    StoreError::internal(e)
}

fn transient(code: rusqlite::ErrorCode) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        code,
        C::DiskFull
            | C::ReadOnly
            | C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::CannotOpen
            | C::OutOfMemory
            | C::FileLockingProtocolFailed
    )
}

/// Maps a unique-constraint failure to a conflict with `message`; anything else is
/// internal.
pub(crate) fn conflict_or_internal(e: rusqlite::Error, message: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation
                && (f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
        {
            StoreError::Conflict(message.to_owned())
        }
        _ => internal(e),
    }
}

/// Now, at the millisecond precision the database keeps.
pub(crate) fn now() -> DateTime<Utc> {
    from_millis(Utc::now().timestamp_millis())
}

pub(crate) fn from_millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> String {
    // Serialising maps, sets and strings cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

pub(crate) fn from_json<T: DeserializeOwned>(idx: usize, s: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// A value that failed validation when read back (should never happen: it was validated
/// on the way in).
pub(crate) fn corrupt(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
}

/// The `AND key > ? ORDER BY key ASC LIMIT n` tail of a keyset-paginated query.
/// The cursor, when present, must be bound as the next parameter.
fn page_clause(query: &ListQuery, key: &str) -> String {
    let (cmp, dir) = if query.scan_descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let after = if query.cursor.is_some() {
        format!(" AND {key} {cmp} ?")
    } else {
        String::new()
    };
    format!("{after} ORDER BY {key} {dir} LIMIT {}", query.limit + 1)
}

/// Runs `select` (ending in its WHERE conditions, bound to `params`) as one keyset page
/// ordered by `key`.
pub(crate) fn select_page<T>(
    c: &Connection,
    select: &str,
    key: &str,
    params: &[&dyn ToSql],
    query: &ListQuery,
    from_row: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Page<T>> {
    let sql = format!("{select}{}", page_clause(query, key));
    let mut bound: Vec<&dyn ToSql> = params.to_vec();
    if let Some(cursor) = &query.cursor {
        bound.push(&cursor.key);
    }
    let rows = c
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_map(bound.as_slice(), from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal)?;
    Ok(query.into_page(rows))
}
