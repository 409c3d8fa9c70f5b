//! Web UI sessions, consumer portal access and sign-in links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::id::{ApplicationId, OrgId, UiSessionId};
use hookd_store::{NewUiSession, StoreError, StoreResult, UiSession, UiSessionKind, UiSessionStore};
use rusqlite::{OptionalExtension as _, Row, params};

use crate::SqliteStore;
use crate::sql::{self, from_json, from_millis, internal};

const COLUMNS: &str =
    "id, org_id, kind, app_id, secret_hash, grants, created_at, expires_at, used_at, revoked_at";

fn session_from_row(row: &Row<'_>) -> rusqlite::Result<UiSession> {
    sql::named(row, session_from_row_columns)
}

fn session_from_row_columns(row: &Row<'_>) -> rusqlite::Result<UiSession> {
    let kind: String = row.get(2)?;
    let kind = UiSessionKind::parse(&kind).ok_or_else(|| sql::corrupt(2, std::fmt::Error))?;
    let hash: Vec<u8> = row.get(4)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| sql::corrupt(4, std::fmt::Error))?;
    let grants: String = row.get(5)?;
    Ok(UiSession {
        id: UiSessionId::from_trusted(row.get(0)?),
        org_id: OrgId::from_trusted(row.get(1)?),
        kind,
        app_id: row.get::<_, Option<String>>(3)?.map(ApplicationId::from_trusted),
        hash: TokenHash(hash),
        grants: from_json(5, &grants)?,
        created_at: from_millis(row.get(6)?),
        expires_at: from_millis(row.get(7)?),
        used_at: row.get::<_, Option<i64>>(8)?.map(from_millis),
        revoked_at: row.get::<_, Option<i64>>(9)?.map(from_millis),
    })
}

#[async_trait]
impl UiSessionStore for SqliteStore {
    async fn create_ui_session(&self, org: &OrgId, session: NewUiSession) -> StoreResult<UiSession> {
        let org = org.clone();
        self.write(move |c| {
            let now = sql::now();
            c.prepare_cached(&format!(
                "INSERT INTO ui_session ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    session.id.as_str(),
                    org.as_str(),
                    session.kind.text(),
                    session.app_id.as_ref().map(|a| a.as_str()),
                    &session.hash.0[..],
                    sql::to_json(&session.grants),
                    now.timestamp_millis(),
                    session.expires_at.timestamp_millis(),
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, "a session with this id exists"))?;
            Ok(UiSession {
                id: session.id,
                org_id: org,
                kind: session.kind,
                app_id: session.app_id,
                hash: session.hash,
                grants: session.grants,
                created_at: now,
                expires_at: sql::from_millis(session.expires_at.timestamp_millis()),
                used_at: None,
                revoked_at: None,
            })
        })
        .await
    }

    async fn find_ui_session(&self, id: &UiSessionId) -> StoreResult<Option<UiSession>> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {COLUMNS} FROM ui_session WHERE id = ?"))
                .and_then(|mut s| s.query_row([id.as_str()], session_from_row).optional())
                .map_err(internal)
        })
        .await
    }

    async fn use_sign_in_link(&self, id: &UiSessionId, now: DateTime<Utc>) -> StoreResult<bool> {
        let id = id.clone();
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE ui_session SET used_at = ?1 WHERE id = ?2 AND kind IN ('link', 'portal') \
                     AND used_at IS NULL AND revoked_at IS NULL AND expires_at > ?1",
                )
                .and_then(|mut s| s.execute(params![now.timestamp_millis(), id.as_str()]))
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn revoke_ui_session(&self, org: &OrgId, id: &UiSessionId) -> StoreResult<()> {
        let (org, id) = (org.clone(), id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE ui_session SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
                )
                .and_then(|mut s| {
                    s.execute(params![sql::now().timestamp_millis(), org.as_str(), id.as_str()])
                })
                .map_err(internal)?;
            if n == 0 {
                Err(StoreError::NotFound("session"))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn expire_portal_sessions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        session_ids: Option<&[String]>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let (org, app) = (org.clone(), app.clone());
        let only = session_ids.map(|ids| sql::to_json(&ids));
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE ui_session SET expires_at = ?1 WHERE org_id = ?2 AND app_id = ?3 \
                     AND kind = 'portal' AND revoked_at IS NULL AND expires_at > ?1 \
                     AND (?4 IS NULL OR json_extract(grants, '$.sessionId') IN (SELECT value FROM json_each(?4)))",
                )
                .and_then(|mut s| {
                    s.execute(params![at.timestamp_millis(), org.as_str(), app.as_str(), only])
                })
                .map_err(internal)?;
            Ok(n as u64)
        })
        .await
    }

    async fn delete_ui_sessions_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize> {
        self.write(move |c| {
            c.prepare_cached("DELETE FROM ui_session WHERE expires_at < ?1 OR revoked_at < ?1")
                .and_then(|mut s| s.execute([cutoff.timestamp_millis()]))
                .map_err(internal)
        })
        .await
    }
}
