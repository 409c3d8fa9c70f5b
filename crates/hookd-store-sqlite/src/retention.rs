//! Housekeeping in bounded batches.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_store::{RetentionStore, StoreResult};
use rusqlite::params;

use crate::SqliteStore;
use crate::sql::internal;

fn delete_requests(c: &rusqlite::Connection, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
    c.prepare_cached(
        "DELETE FROM ingest_request WHERE id IN
             (SELECT id FROM ingest_request WHERE received_at < ? ORDER BY received_at LIMIT CAST(? AS INTEGER))",
    )
    .and_then(|mut s| s.execute(params![cutoff.timestamp_millis(), limit as i64]))
    .map_err(internal)
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.write(move |c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM message WHERE payload IS NOT NULL AND retain_until < ? ORDER BY retain_until LIMIT CAST(? AS INTEGER)",
                )
                .and_then(|mut s| {
                    s.query_map(params![now.timestamp_millis(), limit as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(internal)?;
            let mut expunge = c.prepare_cached("UPDATE message SET payload = NULL WHERE id = ?").map_err(internal)?;
            let mut cancel = c
                .prepare_cached("UPDATE delivery SET status = 4, lease_until = NULL WHERE msg_id = ? AND status = 1")
                .map_err(internal)?;
            for id in &ids {
                expunge.execute([id]).map_err(internal)?;
                cancel.execute([id]).map_err(internal)?;
            }
            Ok(ids.len())
        })
        .await
    }

    async fn delete_messages_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.write(move |c| {
            let ids: Vec<(String, String, String)> = c
                .prepare_cached(
                    "SELECT id, org_id, app_id FROM message WHERE created_at < ? ORDER BY created_at LIMIT CAST(? AS INTEGER)",
                )
                .and_then(|mut s| {
                    s.query_map(params![cutoff.timestamp_millis(), limit as i64], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(internal)?;
            // By (org, app, message): the attempt log's index, not a scan per message.
            let mut attempts = c
                .prepare_cached("DELETE FROM attempt WHERE org_id = ? AND app_id = ? AND msg_id = ?")
                .map_err(internal)?;
            // Deliveries go with their message (ON DELETE CASCADE).
            let mut message = c
                .prepare_cached("DELETE FROM message WHERE id = ?")
                .map_err(internal)?;
            for (id, org, app) in &ids {
                attempts.execute([org, app, id]).map_err(internal)?;
                message.execute([id]).map_err(internal)?;
            }
            Ok(ids.len() + delete_requests(c, cutoff, limit)?)
        })
        .await
    }

    async fn delete_ingest_requests_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.write(move |c| delete_requests(c, cutoff, limit)).await
    }

    async fn delete_idempotency_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM idempotency WHERE started_at < ?")
                .and_then(|mut s| s.execute([cutoff.timestamp_millis()]))
                .map_err(internal)
        })
        .await
    }
}
