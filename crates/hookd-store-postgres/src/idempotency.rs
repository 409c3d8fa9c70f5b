//! Idempotency keys. A key is claimed by inserting its row: of two nodes claiming at
//! once, the second waits on the unique index until the first commits, then sees the
//! claim — one request runs, the other is told it is in progress.

use async_trait::async_trait;
use hookd_core::id::{OrgId, TokenId};
use hookd_store::{IdempotencyBegin, IdempotencyStore, IdempotencyWindow, StoreResult, StoredResponse};

use crate::PgStore;
use crate::db::{self, get};

#[async_trait]
impl IdempotencyStore for PgStore {
    async fn idempotency_begin(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        fingerprint: &str,
        window: IdempotencyWindow,
    ) -> StoreResult<IdempotencyBegin> {
        let now = window.now;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let inserted = db::query_opt(
            &tx,
            "INSERT INTO idempotency (org_id, token_id, key, fingerprint, started_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (token_id, key) DO NOTHING RETURNING 1",
            &[&org.as_str(), &token.as_str(), &key, &fingerprint, &db::ms(now)],
        )
        .await?;
        if inserted.is_some() {
            tx.commit().await.map_err(db::err)?;
            return Ok(IdempotencyBegin::Started);
        }
        let existing = db::query_opt(
            &tx,
            "SELECT fingerprint, status, content_type, body, started_at, completed_at FROM idempotency
             WHERE org_id = $1 AND token_id = $2 AND key = $3 FOR UPDATE",
            &[&org.as_str(), &token.as_str(), &key],
        )
        .await?;
        if let Some(row) = existing {
            let status: Option<i32> = get(&row, 1)?;
            let response = match status {
                Some(status) => Some(StoredResponse {
                    status: status.clamp(0, i32::from(u16::MAX)) as u16,
                    content_type: get(&row, 2)?,
                    body: get::<Option<Vec<u8>>>(&row, 3)?.unwrap_or_default(),
                }),
                None => None,
            };
            if let Some(answer) = window.judge(get(&row, 4)?, get(&row, 5)?, get(&row, 0)?, response) {
                tx.commit().await.map_err(db::err)?;
                return Ok(answer);
            }
        }
        // Expired, or its request died: this request takes the key over.
        db::execute(
            &tx,
            "UPDATE idempotency SET fingerprint = $4, status = NULL, content_type = NULL, body = NULL,
                 started_at = $5, completed_at = NULL
             WHERE org_id = $1 AND token_id = $2 AND key = $3",
            &[&org.as_str(), &token.as_str(), &key, &fingerprint, &db::ms(now)],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(IdempotencyBegin::Started)
    }

    async fn idempotency_complete(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "UPDATE idempotency SET status = $1, content_type = $2, body = $3, completed_at = $4
             WHERE org_id = $5 AND token_id = $6 AND key = $7",
            &[
                &i32::from(response.status),
                &response.content_type,
                &response.body,
                &db::now(),
                &org.as_str(),
                &token.as_str(),
                &key,
            ],
        )
        .await?;
        Ok(())
    }

    async fn idempotency_abandon(&self, org: &OrgId, token: &TokenId, key: &str) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "DELETE FROM idempotency WHERE org_id = $1 AND token_id = $2 AND key = $3 AND completed_at IS NULL",
            &[&org.as_str(), &token.as_str(), &key],
        )
        .await?;
        Ok(())
    }
}
