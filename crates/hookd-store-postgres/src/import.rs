//! Filling an empty database from another backend's tables (`hookd migrate-data`), in
//! one transaction on a connection of its own: all or nothing.

use chrono::DateTime;
use hookd_store::copy::{CopyBatch, CopyValue};
use hookd_store::{StoreError, StoreResult};
use tokio_postgres::types::{ToSql, Type};

use crate::db::err;
use crate::{PgOptions, PgStore};

/// An import in progress. Dropped without [`Import::commit`], nothing is kept (the
/// connection closes and the transaction with it).
pub struct Import {
    client: tokio_postgres::Client,
    rows: u64,
}

impl std::fmt::Debug for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Import").field("rows", &self.rows).finish()
    }
}

impl PgStore {
    /// Whether the database holds no organisation (nothing to overwrite).
    pub async fn is_empty(&self) -> StoreResult<bool> {
        let c = self.client().await?;
        let row = c
            .query_one("SELECT NOT EXISTS (SELECT 1 FROM org)", &[])
            .await
            .map_err(err)?;
        Ok(row.get(0))
    }
}

impl Import {
    /// Begins an import into the (migrated) database `options` names.
    pub async fn begin(options: &PgOptions) -> StoreResult<Self> {
        let config = options.pg_config()?;
        let tls = crate::db::tls_connector(options.ca_file.as_deref())?;
        let (client, connection) = config.connect(tls).await.map_err(err)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the import connection failed");
            }
        });
        client.batch_execute("BEGIN").await.map_err(err)?;
        Ok(Self { client, rows: 0 })
    }

    /// Inserts a batch of `table`'s rows, converting each value to its column's type.
    pub async fn insert(&mut self, table: &str, batch: &CopyBatch) -> StoreResult<()> {
        if batch.rows.is_empty() {
            return Ok(());
        }
        if !hookd_store::copy::TABLES.contains(&table)
            || !batch
                .columns
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'))
        {
            return Err(StoreError::rejected(
                "table",
                format!("{table}: unexpected table or column"),
            ));
        }
        let placeholders: Vec<String> = (1..=batch.columns.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            batch.columns.join(", "),
            placeholders.join(", ")
        );
        let stmt = self.client.prepare(&sql).await.map_err(err)?;
        let types = stmt.params().to_vec();
        for row in &batch.rows {
            let values = row
                .iter()
                .zip(&types)
                .zip(&batch.columns)
                .map(|((v, ty), col)| {
                    convert(v, ty).map_err(|e| StoreError::rejected(format!("{table}.{col}"), e))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|b| b.as_ref() as &(dyn ToSql + Sync)).collect();
            self.client.execute(&stmt, &refs).await.map_err(err)?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Moves the delivery id sequence past the copied ids and commits. Returns the rows
    /// copied.
    pub async fn commit(self) -> StoreResult<u64> {
        self.client
            .batch_execute(
                "SELECT setval(pg_get_serial_sequence('delivery', 'id'), GREATEST((SELECT MAX(id) FROM delivery), 1));
                 COMMIT",
            )
            .await
            .map_err(err)?;
        Ok(self.rows)
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

/// A source value as the target column's type.
fn convert(v: &CopyValue, ty: &Type) -> Result<Param, String> {
    let null = matches!(v, CopyValue::Null);
    let int = || match v {
        CopyValue::Integer(n) => Ok(*n),
        other => Err(format!("expected an integer, found {other:?}")),
    };
    let text = || match v {
        CopyValue::Text(t) => Ok(t.clone()),
        CopyValue::Blob(b) => String::from_utf8(b.clone()).map_err(|e| e.to_string()),
        other => Err(format!("expected text, found {other:?}")),
    };
    Ok(match *ty {
        Type::TEXT | Type::VARCHAR if null => Box::new(None::<String>),
        Type::TEXT | Type::VARCHAR => Box::new(text()?),
        Type::INT8 if null => Box::new(None::<i64>),
        Type::INT8 => Box::new(int()?),
        Type::INT4 if null => Box::new(None::<i32>),
        Type::INT4 => Box::new(i32::try_from(int()?).map_err(|e| e.to_string())?),
        Type::BOOL if null => Box::new(None::<bool>),
        Type::BOOL => Box::new(int()? != 0),
        Type::TIMESTAMPTZ if null => Box::new(None::<DateTime<chrono::Utc>>),
        Type::TIMESTAMPTZ => {
            let ms = int()?;
            Box::new(DateTime::from_timestamp_millis(ms).ok_or_else(|| format!("{ms} is not a time"))?)
        }
        Type::JSONB | Type::JSON if null => Box::new(None::<serde_json::Value>),
        // SQLite keeps a sealed JSON column's sealed text as it is; here it is a JSON
        // string (`hookd_store::sealing`).
        Type::JSONB | Type::JSON => match text()? {
            t if hookd_core::sealed::SealingKey::is_sealed(&t) => Box::new(serde_json::Value::String(t)),
            t => Box::new(serde_json::from_str::<serde_json::Value>(&t).map_err(|e| e.to_string())?),
        },
        Type::BYTEA if null => Box::new(None::<Vec<u8>>),
        Type::BYTEA => Box::new(match v {
            CopyValue::Blob(b) => b.clone(),
            CopyValue::Text(t) => t.clone().into_bytes(),
            other => return Err(format!("expected bytes, found {other:?}")),
        }),
        Type::DATE => Box::new(text()?.parse::<chrono::NaiveDate>().map_err(|e| e.to_string())?),
        ref other => return Err(format!("no conversion to {other}")),
    })
}
