//! Reading every table out, batch by batch, for `hookd migrate-data`.

use hookd_store::copy::{CopyBatch, CopyValue};
use hookd_store::{StoreError, StoreResult};
use rusqlite::types::ValueRef;

use crate::SqliteStore;
use crate::sql::internal;

impl SqliteStore {
    /// Up to `limit` rows of `table` after row position `after` (start with 0), in
    /// storage order. An empty batch means the table is done. `table` must be one of
    /// [`hookd_store::copy::TABLES`].
    pub async fn export_batch(
        &self,
        table: &'static str,
        after: i64,
        limit: usize,
    ) -> StoreResult<CopyBatch> {
        if !hookd_store::copy::TABLES.contains(&table) {
            return Err(StoreError::rejected(
                "table",
                format!("{table} is not a hookd table"),
            ));
        }
        self.read(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT rowid, * FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT CAST(? AS INTEGER)"
                ))
                .map_err(internal)?;
            let columns: Vec<String> = stmt
                .column_names()
                .iter()
                .skip(1)
                .map(|s| (*s).to_owned())
                .collect();
            let width = columns.len();
            let mut batch = CopyBatch {
                columns,
                rows: Vec::new(),
                next: after,
            };
            let mut rows = stmt
                .query(rusqlite::params![after, limit as i64])
                .map_err(internal)?;
            while let Some(row) = rows.next().map_err(internal)? {
                batch.next = row.get(0).map_err(internal)?;
                let mut values = Vec::with_capacity(width);
                for i in 1..=width {
                    values.push(match row.get_ref(i).map_err(internal)? {
                        ValueRef::Null => CopyValue::Null,
                        ValueRef::Integer(n) => CopyValue::Integer(n),
                        ValueRef::Real(f) => CopyValue::Real(f),
                        ValueRef::Text(t) => CopyValue::Text(String::from_utf8_lossy(t).into_owned()),
                        ValueRef::Blob(b) => CopyValue::Blob(b.to_vec()),
                    });
                }
                batch.rows.push(values);
            }
            Ok(batch)
        })
        .await
    }
}
