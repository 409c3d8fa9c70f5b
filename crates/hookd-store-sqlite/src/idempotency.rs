//! Idempotency keys.

use async_trait::async_trait;
use hookd_core::id::{OrgId, TokenId};
use hookd_store::{IdempotencyBegin, IdempotencyStore, IdempotencyWindow, StoreResult, StoredResponse};
use rusqlite::{OptionalExtension as _, params};

use crate::SqliteStore;
use crate::sql::{from_millis, internal};

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn idempotency_begin(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        fingerprint: &str,
        window: IdempotencyWindow,
    ) -> StoreResult<IdempotencyBegin> {
        let now = window.now;
        let (org, token, key, fingerprint) =
            (org.clone(), token.clone(), key.to_owned(), fingerprint.to_owned());
        self.write(move |c| {
            type Row = (String, Option<u16>, Option<String>, Option<Vec<u8>>, i64, Option<i64>);
            let existing: Option<Row> = c
                .prepare_cached(
                    "SELECT fingerprint, status, content_type, body, started_at, completed_at FROM idempotency
                     WHERE org_id = ? AND token_id = ? AND key = ?",
                )
                .and_then(|mut s| {
                    s.query_row(params![org.as_str(), token.as_str(), key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                    })
                    .optional()
                })
                .map_err(internal)?;
            if let Some((stored_fp, status, content_type, body, started, completed)) = existing {
                let response = status.map(|status| StoredResponse {
                    status,
                    content_type,
                    body: body.unwrap_or_default(),
                });
                if let Some(answer) = window.judge(from_millis(started), completed.map(from_millis), stored_fp, response) {
                    return Ok(answer);
                }
            }
            c.prepare_cached(
                "INSERT INTO idempotency (org_id, token_id, key, fingerprint, started_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (token_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL,
                     content_type = NULL, body = NULL, started_at = excluded.started_at, completed_at = NULL",
            )
            .and_then(|mut s| s.execute(params![org.as_str(), token.as_str(), key, fingerprint, now.timestamp_millis()]))
            .map_err(internal)?;
            Ok(IdempotencyBegin::Started)
        })
        .await
    }

    async fn idempotency_complete(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()> {
        let (org, token, key) = (org.clone(), token.clone(), key.to_owned());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE idempotency SET status = ?, content_type = ?, body = ?, completed_at = ?
                 WHERE org_id = ? AND token_id = ? AND key = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    response.status,
                    response.content_type,
                    response.body,
                    crate::sql::now().timestamp_millis(),
                    org.as_str(),
                    token.as_str(),
                    key
                ])
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn idempotency_abandon(&self, org: &OrgId, token: &TokenId, key: &str) -> StoreResult<()> {
        let (org, token, key) = (org.clone(), token.clone(), key.to_owned());
        self.write(move |c| {
            c.prepare_cached("DELETE FROM idempotency WHERE org_id = ? AND token_id = ? AND key = ? AND completed_at IS NULL")
                .and_then(|mut s| s.execute(params![org.as_str(), token.as_str(), key]))
                .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
