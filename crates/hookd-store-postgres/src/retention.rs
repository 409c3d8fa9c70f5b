//! Housekeeping in bounded batches. Every node may run it at once: each batch takes
//! rows with `SKIP LOCKED`, so pruners share the work instead of waiting on each other.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_store::{RetentionStore, StoreResult};

use crate::PgStore;
use crate::db;

async fn delete_requests<C: GenericClient>(c: &C, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
    let n = db::execute(
        c,
        "DELETE FROM ingest_request WHERE id IN
             (SELECT id FROM ingest_request WHERE received_at < $1 ORDER BY received_at LIMIT $2
              FOR UPDATE SKIP LOCKED)",
        &[&cutoff, &(limit as i64)],
    )
    .await?;
    Ok(n as usize)
}

#[async_trait]
impl RetentionStore for PgStore {
    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let rows = db::query(
            &tx,
            "UPDATE message SET payload = NULL WHERE id IN
                 (SELECT id FROM message WHERE payload IS NOT NULL AND retain_until < $1
                  ORDER BY retain_until LIMIT $2 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            &[&now, &(limit as i64)],
        )
        .await?;
        let ids: Vec<String> = rows.iter().map(|r| db::get(r, 0)).collect::<StoreResult<_>>()?;
        if !ids.is_empty() {
            db::execute(
                &tx,
                "UPDATE delivery SET status = 4, lease_until = NULL WHERE msg_id = ANY($1) AND status = 1",
                &[&ids],
            )
            .await?;
        }
        tx.commit().await.map_err(db::err)?;
        Ok(ids.len())
    }

    async fn delete_messages_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let rows = db::query(
            &tx,
            "SELECT id, org_id, app_id FROM message WHERE created_at < $1 ORDER BY created_at LIMIT $2
             FOR UPDATE SKIP LOCKED",
            &[&cutoff, &(limit as i64)],
        )
        .await?;
        let ids: Vec<String> = rows.iter().map(|r| db::get(r, 0)).collect::<StoreResult<_>>()?;
        let orgs: Vec<String> = rows.iter().map(|r| db::get(r, 1)).collect::<StoreResult<_>>()?;
        let apps: Vec<String> = rows.iter().map(|r| db::get(r, 2)).collect::<StoreResult<_>>()?;
        if !ids.is_empty() {
            // By (org, app, message): the attempt log's index, not a scan.
            db::execute(
                &tx,
                "DELETE FROM attempt a USING unnest($1::text[], $2::text[], $3::text[]) AS m(org_id, app_id, id)
                 WHERE a.org_id = m.org_id AND a.app_id = m.app_id AND a.msg_id = m.id",
                &[&orgs, &apps, &ids],
            )
            .await?;
            // Deliveries go with their message (ON DELETE CASCADE).
            db::execute(&tx, "DELETE FROM message WHERE id = ANY($1)", &[&ids]).await?;
        }
        let requests = delete_requests(&tx, cutoff, limit).await?;
        tx.commit().await.map_err(db::err)?;
        Ok(ids.len() + requests)
    }

    async fn delete_ingest_requests_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let c = self.client().await?;
        delete_requests(&c, cutoff, limit).await
    }

    async fn delete_idempotency_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = db::execute(&c, "DELETE FROM idempotency WHERE started_at < $1", &[&cutoff]).await?;
        Ok(n as usize)
    }
}
