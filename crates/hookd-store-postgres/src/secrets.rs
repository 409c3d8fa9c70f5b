//! Secrets at rest in PostgreSQL (`hookd_store::sealing`). Text columns keep the
//! sealed text, `jsonb` columns a JSON string holding it; the row decoders open them
//! with the store's keyring, the writers seal before binding.

use deadpool_postgres::GenericClient;
use hookd_core::ingest::token_digest;
use hookd_store::StoreResult;
use hookd_store::sealing::{
    Keyring, ResealBatch, ResealCursor, SEALED_TABLES, Sealed, SealedUnder, SecretStore,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::PgStore;
use crate::db::{self, get};

/// Advisory lock key of the start-up check ("hkseal"), so nodes starting together
/// check and seal once.
const LOCK: i64 = 0x686b_7365_616c;

/// A sealed column's stored value, as its column type holds it.
enum Stored {
    Text(String),
    Json(Value),
}

impl Stored {
    fn read(row: &tokio_postgres::Row, idx: usize, kind: Sealed) -> StoreResult<Option<Self>> {
        Ok(if kind.is_json() {
            get::<Option<Value>>(row, idx)?.map(Self::Json)
        } else {
            get::<Option<String>>(row, idx)?.map(Self::Text)
        })
    }

    fn is_sealed(&self) -> bool {
        match self {
            Self::Text(t) => hookd_core::sealed::SealingKey::is_sealed(t),
            Self::Json(v) => v.as_str().is_some_and(hookd_core::sealed::SealingKey::is_sealed),
        }
    }

    fn opens(&self, keys: &Keyring, place: &str) -> bool {
        match self {
            Self::Text(t) => keys.open(t, place).is_ok(),
            Self::Json(v) => keys.open_json(v, place).is_ok(),
        }
    }

    /// Re-sealed under the current key, when it needs it.
    fn reseal(&self, keys: &Keyring, place: &str) -> StoreResult<Option<Self>> {
        let unopened = |_| hookd_store::sealing::unopened(place);
        Ok(match self {
            Self::Text(t) => keys.reseal_text(t, place).map_err(unopened)?.map(Self::Text),
            Self::Json(v) => keys.reseal_json(v, place).map_err(unopened)?.map(Self::Json),
        })
    }

    fn param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Self::Text(t) => t,
            Self::Json(v) => v,
        }
    }
}

/// Every `(row key, value)` of a sealed column (not NULL); with `only_clear`, only
/// the values still in clear (the check at each start reads no more than those).
async fn values<C: GenericClient>(
    c: &C,
    table: &str,
    key: &str,
    column: &str,
    kind: Sealed,
    only_clear: bool,
) -> StoreResult<Vec<(String, Stored)>> {
    let clear = match (only_clear, kind.is_json()) {
        (false, _) => String::new(),
        (true, true) => format!(" AND jsonb_typeof({column}) <> 'string'"),
        (true, false) => format!(" AND {column} NOT LIKE 'hks1.%'"),
    };
    let rows = db::query(
        c,
        &format!("SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL{clear}"),
        &[],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(v) = Stored::read(row, 1, kind)? {
            out.push((get(row, 0)?, v));
        }
    }
    Ok(out)
}

async fn set<C: GenericClient>(
    c: &C,
    table: &str,
    key: &str,
    column: &str,
    row_key: &str,
    value: &Stored,
) -> StoreResult<()> {
    db::execute(
        c,
        &format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2"),
        &[value.param(), &row_key],
    )
    .await?;
    Ok(())
}

/// Sources from before token digests (`token_sealed` NULL): the token is sealed into
/// `token_sealed` and `token`, `old_token` become digests. Answers how many.
async fn digest_source_tokens<C: GenericClient>(c: &C, keys: &Keyring) -> StoreResult<usize> {
    let rows = db::query(
        c,
        "SELECT id, token, old_token FROM source WHERE token_sealed IS NULL",
        &[],
    )
    .await?;
    for row in &rows {
        let (id, token, old): (String, String, Option<String>) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
        db::execute(
            c,
            "UPDATE source SET token = $1, old_token = $2, token_sealed = $3 WHERE id = $4",
            &[
                &token_digest(&token),
                &old.as_deref().map(token_digest),
                &keys.seal(&token, &Sealed::SourceToken.place(&id)),
                &id,
            ],
        )
        .await?;
    }
    Ok(rows.len())
}

/// On open: checks the key against the database's key check (writing one if there is
/// none yet) and seals every value still in clear, in one transaction under a lock.
pub(crate) async fn prepare(client: &mut deadpool_postgres::Object, keys: &Keyring) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(db::err)?;
    db::execute(&tx, "SELECT pg_advisory_xact_lock($1)", &[&LOCK]).await?;
    let check = db::query_opt(&tx, "SELECT sealed FROM key_check WHERE id = 1", &[]).await?;
    let first = check.is_none();
    if let Some(row) = check
        && keys.verify_check(&get::<String>(&row, 0)?)? == SealedUnder::Previous
    {
        tracing::warn!(
            "this database's secrets are sealed under a previous key; run `hookd secrets rotate-key`"
        );
    }
    let mut sealed = digest_source_tokens(&tx, keys).await?;
    for table in SEALED_TABLES {
        for &(column, kind) in table.columns {
            for (key, value) in values(&tx, table.table, table.key, column, kind, !first).await? {
                let place = kind.place(&key);
                if value.is_sealed() {
                    // A database from before the key check may already hold sealed
                    // values (flows' secrets): the key must open them.
                    if first && !value.opens(keys, &place) {
                        tracing::error!(%place, "a sealed value does not open");
                        return Err(hookd_store::sealing::wrong_key());
                    }
                } else if let Some(new) = value.reseal(keys, &place)? {
                    set(&tx, table.table, table.key, column, &key, &new).await?;
                    sealed += 1;
                }
            }
        }
    }
    if first {
        db::execute(
            &tx,
            "INSERT INTO key_check (id, sealed) VALUES (1, $1)",
            &[&keys.check_value()],
        )
        .await?;
    }
    tx.commit().await.map_err(db::err)?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed the secrets this database kept in clear");
    }
    Ok(())
}

#[async_trait::async_trait]
impl SecretStore for PgStore {
    fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    async fn reseal_secrets(&self, cursor: &ResealCursor, limit: usize) -> StoreResult<ResealBatch> {
        let limit = limit.max(1);
        let mut cursor = cursor.clone();
        let mut batch = ResealBatch::default();
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        while batch.rows < limit {
            let Some(table) = SEALED_TABLES.get(cursor.table) else {
                tx.commit().await.map_err(db::err)?;
                return Ok(batch);
            };
            let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
            // Locked, so a node's write to the same row waits for this batch.
            let rows = db::query(
                &tx,
                &format!(
                    "SELECT {key}, {columns} FROM {t} WHERE {key} > $1 ORDER BY {key} LIMIT $2 FOR UPDATE",
                    key = table.key,
                    columns = columns.join(", "),
                    t = table.table,
                ),
                &[&cursor.after, &((limit - batch.rows) as i64)],
            )
            .await?;
            let Some(last) = rows.last() else {
                cursor = ResealCursor {
                    table: cursor.table + 1,
                    after: String::new(),
                };
                continue;
            };
            cursor.after = get(last, 0)?;
            batch.rows += rows.len();
            for row in &rows {
                let key: String = get(row, 0)?;
                for (i, &(column, kind)) in table.columns.iter().enumerate() {
                    let Some(value) = Stored::read(row, i + 1, kind)? else {
                        continue;
                    };
                    if let Some(new) = value.reseal(&self.keyring, &kind.place(&key))? {
                        set(&tx, table.table, table.key, column, &key, &new).await?;
                        batch.resealed += 1;
                    }
                }
            }
        }
        tx.commit().await.map_err(db::err)?;
        batch.next = Some(cursor);
        Ok(batch)
    }

    async fn seal_key_check(&self) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "INSERT INTO key_check (id, sealed) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET sealed = $1",
            &[&self.keyring.check_value()],
        )
        .await?;
        Ok(())
    }
}
