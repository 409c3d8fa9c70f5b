//! Secrets at rest in SQLite (`hookd_store::sealing`).
//!
//! Every connection has `hookd_open(value, kind, key)`, so a query reads a sealed
//! column as its clear text (`hookd_open(secret, 'endpoint-secret', id)`) and the row
//! decoders stay as they were; a value that does not open fails its query, naming the
//! row. Writes seal in Rust ([`seal`]) before binding. SQLite keeps the sealed text
//! itself in every sealed column, JSON ones included.

use std::sync::Arc;

use hookd_core::ingest::token_digest;
use hookd_store::StoreResult;
use hookd_store::sealing::{
    Keyring, ResealBatch, ResealCursor, SEALED_TABLES, Sealed, SealedUnder, SecretStore,
};
use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::SqliteStore;
use crate::sql::internal;

/// Gives `conn` the `hookd_open(value, kind, key)` function, opening with `keys`.
pub(crate) fn register(conn: &Connection, keys: Arc<Keyring>) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "hookd_open",
        3,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let Some(value) = ctx.get::<Option<String>>(0)? else {
                return Ok(None);
            };
            let name = ctx.get::<String>(1)?;
            let kind = Sealed::from_name(&name).ok_or_else(|| {
                rusqlite::Error::UserFunctionError(format!("no sealed kind {name:?}").into())
            })?;
            let place = kind.place(&ctx.get::<String>(2)?);
            keys.open(&value, &place).map(Some).map_err(|_| {
                rusqlite::Error::UserFunctionError(Box::new(hookd_store::sealing::unopened(&place)))
            })
        },
    )
}

/// `plain` sealed for column `kind` of the row keyed `key`.
pub(crate) fn seal(keys: &Keyring, kind: Sealed, key: &str, plain: &str) -> String {
    keys.seal(plain, &kind.place(key))
}

/// On open: checks the key against the database's key check (writing one if there is
/// none yet) and seals every value still in clear, in one transaction.
pub(crate) fn prepare(c: &mut Connection, keys: &Keyring) -> StoreResult<()> {
    let tx = c.transaction().map_err(internal)?;
    let check: Option<String> = tx
        .query_row("SELECT sealed FROM key_check WHERE id = 1", [], |r| r.get(0))
        .optional()
        .map_err(internal)?;
    match check {
        Some(check) => {
            if keys.verify_check(&check)? == SealedUnder::Previous {
                tracing::warn!(
                    "this database's secrets are sealed under a previous key; run `hookd secrets rotate-key`"
                );
            }
        }
        None => {
            // A database from before the key check may already hold sealed values
            // (flows' secrets): the key must open them before it is recorded.
            for table in SEALED_TABLES {
                for &(column, kind) in table.columns {
                    for (key, value) in values(&tx, table.key, table.table, column, true)? {
                        if keys.open(&value, &kind.place(&key)).is_err() {
                            tracing::error!(place = %kind.place(&key), "a sealed value does not open");
                            return Err(hookd_store::sealing::wrong_key());
                        }
                    }
                }
            }
            tx.execute(
                "INSERT INTO key_check (id, sealed) VALUES (1, ?)",
                [keys.check_value()],
            )
            .map_err(internal)?;
        }
    }
    let mut sealed = digest_source_tokens(&tx, keys)?;
    for table in SEALED_TABLES {
        for &(column, kind) in table.columns {
            for (key, value) in values(&tx, table.key, table.table, column, false)? {
                set(
                    &tx,
                    table.table,
                    table.key,
                    column,
                    &key,
                    &seal(keys, kind, &key, &value),
                )?;
                sealed += 1;
            }
        }
    }
    tx.commit().map_err(internal)?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed the secrets this database kept in clear");
    }
    Ok(())
}

/// Sources from before token digests (`token_sealed` NULL): the token is sealed into
/// `token_sealed` and `token`, `old_token` become digests. Answers how many.
fn digest_source_tokens(c: &Connection, keys: &Keyring) -> StoreResult<usize> {
    let rows: Vec<(String, String, Option<String>)> = c
        .prepare("SELECT id, token, old_token FROM source WHERE token_sealed IS NULL")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(internal)?;
    for (id, token, old) in &rows {
        c.prepare_cached("UPDATE source SET token = ?, old_token = ?, token_sealed = ? WHERE id = ?")
            .and_then(|mut s| {
                s.execute(params![
                    token_digest(token),
                    old.as_deref().map(token_digest),
                    seal(keys, Sealed::SourceToken, id, token),
                    id
                ])
            })
            .map_err(internal)?;
    }
    Ok(rows.len())
}

/// `(row key, value)` of every non-NULL value of `column` that is sealed (or, with
/// `sealed` false, that is still in clear).
fn values(
    c: &Connection,
    key: &str,
    table: &str,
    column: &str,
    sealed: bool,
) -> StoreResult<Vec<(String, String)>> {
    let not = if sealed { "" } else { "NOT" };
    let mut stmt = c
        .prepare(&format!(
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} {not} LIKE 'hks1.%'"
        ))
        .map_err(internal)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)?;
    Ok(rows)
}

fn set(c: &Connection, table: &str, key_expr: &str, column: &str, key: &str, value: &str) -> StoreResult<()> {
    c.prepare_cached(&format!("UPDATE {table} SET {column} = ? WHERE {key_expr} = ?"))
        .and_then(|mut s| s.execute(params![value, key]))
        .map_err(internal)?;
    Ok(())
}

#[async_trait::async_trait]
impl SecretStore for SqliteStore {
    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn reseal_secrets(&self, cursor: &ResealCursor, limit: usize) -> StoreResult<ResealBatch> {
        let keys = Arc::clone(&self.keyring);
        let mut cursor = cursor.clone();
        let limit = limit.max(1);
        self.write(move |c| {
            let mut batch = ResealBatch::default();
            while batch.rows < limit {
                let Some(table) = SEALED_TABLES.get(cursor.table) else {
                    return Ok(batch);
                };
                let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
                let rows: Vec<(String, Vec<Option<String>>)> = c
                    .prepare_cached(&format!(
                        "SELECT {key}, {columns} FROM {t} WHERE {key} > ? ORDER BY {key} LIMIT CAST(? AS INTEGER)",
                        key = table.key,
                        columns = columns.join(", "),
                        t = table.table,
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![cursor.after, (limit - batch.rows) as i64], |r| {
                            let values = (1..=columns.len())
                                .map(|i| r.get::<_, Option<String>>(i))
                                .collect::<rusqlite::Result<Vec<_>>>()?;
                            Ok((r.get(0)?, values))
                        })?
                        .collect()
                    })
                    .map_err(internal)?;
                let Some((last, _)) = rows.last() else {
                    cursor = ResealCursor {
                        table: cursor.table + 1,
                        after: String::new(),
                    };
                    continue;
                };
                cursor.after = last.clone();
                batch.rows += rows.len();
                for (key, values) in rows {
                    for (&(column, kind), value) in table.columns.iter().zip(values) {
                        let Some(value) = value else { continue };
                        let place = kind.place(&key);
                        let resealed = keys
                            .reseal_text(&value, &place)
                            .map_err(|_| hookd_store::sealing::unopened(&place))?;
                        if let Some(resealed) = resealed {
                            set(c, table.table, table.key, column, &key, &resealed)?;
                            batch.resealed += 1;
                        }
                    }
                }
            }
            batch.next = Some(cursor);
            Ok(batch)
        })
        .await
    }

    async fn seal_key_check(&self) -> StoreResult<()> {
        let check = self.keyring.check_value();
        self.write(move |c| {
            c.execute(
                "INSERT INTO key_check (id, sealed) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET sealed = ?1",
                [check],
            )
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
