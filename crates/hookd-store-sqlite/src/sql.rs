//! Conversions between SQLite values and the store's types: times, JSON columns,
//! constraint errors and keyset pagination.
//!
//! A `LIMIT` taken from a parameter is written `LIMIT CAST(? AS INTEGER)`: SQLite plans
//! a plain `LIMIT ?` from the value bound, so it marks the cached statement expired at
//! every new binding and parses it again at its next step (a claim, a page, a
//! leaderboard's neighbours paid a full prepare each time). A test keeps it so.

use chrono::{DateTime, Utc};
use hookd_store::{ListQuery, Page, StoreError, StoreResult};
use rusqlite::{Connection, Row, ToSql};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A database error: what space, permissions or another process may cure — the disk
/// full (`SQLITE_FULL`), the file read-only (`SQLITE_READONLY`), busy or locked, an I/O
/// error, the file gone — is `Unavailable` (503 with `Retry-After`, nothing committed);
/// the rest internal.
///
/// A value that does not decode is `Damaged`, named where [`named`] could: the
/// conversion failures of the row decoders, and a sealed value `hookd_open` could not
/// open (SQLite hands a function's error back as its message).
pub(crate) fn internal(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _) if transient(f.code) => {
            StoreError::Unavailable(format!("SQLite: {e}"))
        }
        rusqlite::Error::SqliteFailure(_, Some(ref message)) => {
            match message
                .strip_prefix(DAMAGED_PREFIX)
                .and_then(|rest| rest.split_once(": "))
            {
                Some((place, cause)) => StoreError::damaged(place, cause),
                None => StoreError::internal(e),
            }
        }
        rusqlite::Error::FromSqlConversionFailure(idx, _, cause) => match cause.downcast::<DamagedValue>() {
            Ok(d) => StoreError::damaged(d.place, d.cause),
            Err(cause) => StoreError::damaged(format!("column {idx} of a row"), cause),
        },
        rusqlite::Error::InvalidColumnType(_, name, ty) => StoreError::damaged(
            format!("the {name} of a row"),
            format!("a {ty} value where another type belongs"),
        ),
        e => StoreError::internal(e),
    }
}

/// How `StoreError::Damaged` displays, as SQLite hands back a function's error.
const DAMAGED_PREFIX: &str = "stored data does not decode: ";

/// A value of a row that does not decode, with the column and row it is in.
#[derive(Debug)]
struct DamagedValue {
    place: String,
    cause: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for DamagedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.place, self.cause)
    }
}

impl std::error::Error for DamagedValue {}

/// Decodes `row` with `decode`; a column that does not decode is named, with the
/// row's key (its first column, when that is text), so the log says which row to
/// repair.
pub(crate) fn named<T>(
    row: &Row<'_>,
    decode: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    decode(row).map_err(|e| match e {
        rusqlite::Error::FromSqlConversionFailure(idx, ty, cause) => {
            let place = place(row, idx);
            rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(DamagedValue { place, cause }))
        }
        rusqlite::Error::InvalidColumnType(idx, _, ty) => {
            let cause = format!("a {ty} value where another type belongs").into();
            let place = place(row, idx);
            rusqlite::Error::FromSqlConversionFailure(idx, ty, Box::new(DamagedValue { place, cause }))
        }
        other => other,
    })
}

/// "the `column` of the row whose `key column` is `key`".
fn place(row: &Row<'_>, idx: usize) -> String {
    let statement = row.as_ref();
    let name = |i: usize| {
        let name = statement.column_name(i).unwrap_or("?");
        // A sealed column is read as `hookd_open(column, kind, key)`.
        name.strip_prefix("hookd_open(")
            .and_then(|rest| rest.split(',').next())
            .unwrap_or(name)
            .to_owned()
    };
    match row.get_ref(0).ok().and_then(|v| v.as_str().ok()) {
        Some(key) if idx != 0 => format!("the {} of the row whose {} is {key}", name(idx), name(0)),
        _ => format!("the {} of a row", name(idx)),
    }
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

#[cfg(test)]
mod limit_tests {
    /// See the module's documentation: no statement binds a bare `LIMIT ?`.
    #[test]
    fn no_statement_limits_by_a_bare_parameter() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.ends_with("sql.rs") {
                continue; // this explanation
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let bare = text.match_indices("LIMIT ?").count();
            assert_eq!(bare, 0, "{} binds a bare LIMIT ?", path.display());
        }
    }
}
