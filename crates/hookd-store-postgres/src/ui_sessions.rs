//! Web UI sessions, consumer portal access and sign-in links.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::id::{ApplicationId, OrgId, UiSessionId};
use hookd_store::{NewUiSession, StoreError, StoreResult, UiSession, UiSessionKind, UiSessionStore};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, get};

const COLUMNS: &str =
    "id, org_id, kind, app_id, secret_hash, grants, created_at, expires_at, used_at, revoked_at";

fn session_from_row(row: &Row) -> StoreResult<UiSession> {
    let kind: String = get(row, 2)?;
    let kind = UiSessionKind::parse(&kind).ok_or_else(|| db::corrupt("session kind", &kind))?;
    let hash: Vec<u8> = get(row, 4)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| db::corrupt("session hash", "not 32 bytes"))?;
    Ok(UiSession {
        id: UiSessionId::from_trusted(get(row, 0)?),
        org_id: OrgId::from_trusted(get(row, 1)?),
        kind,
        app_id: get::<Option<String>>(row, 3)?.map(ApplicationId::from_trusted),
        hash: TokenHash(hash),
        grants: db::json(row, 5)?,
        created_at: get(row, 6)?,
        expires_at: get(row, 7)?,
        used_at: get(row, 8)?,
        revoked_at: get(row, 9)?,
    })
}

#[async_trait]
impl UiSessionStore for PgStore {
    async fn create_ui_session(&self, org: &OrgId, session: NewUiSession) -> StoreResult<UiSession> {
        let c = self.client().await?;
        let now = db::now();
        let expires_at = db::ms(session.expires_at);
        db::execute_unique(
            &c,
            &format!(
                "INSERT INTO ui_session ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)"
            ),
            &[
                &session.id.as_str(),
                &org.as_str(),
                &session.kind.text(),
                &session.app_id.as_ref().map(|a| a.as_str()),
                &&session.hash.0[..],
                &db::to_json(&session.grants),
                &now,
                &expires_at,
            ],
            "a session with this id exists",
        )
        .await?;
        Ok(UiSession {
            id: session.id,
            org_id: org.clone(),
            kind: session.kind,
            app_id: session.app_id,
            hash: session.hash,
            grants: session.grants,
            created_at: now,
            expires_at,
            used_at: None,
            revoked_at: None,
        })
    }

    async fn find_ui_session(&self, id: &UiSessionId) -> StoreResult<Option<UiSession>> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            &format!("SELECT {COLUMNS} FROM ui_session WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .as_ref()
        .map(session_from_row)
        .transpose()
    }

    async fn use_sign_in_link(&self, id: &UiSessionId, now: DateTime<Utc>) -> StoreResult<bool> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE ui_session SET used_at = $1 WHERE id = $2 AND kind IN ('link', 'portal') \
             AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
            &[&now, &id.as_str()],
        )
        .await?;
        Ok(n == 1)
    }

    async fn revoke_ui_session(&self, org: &OrgId, id: &UiSessionId) -> StoreResult<()> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE ui_session SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
            &[&db::now(), &org.as_str(), &id.as_str()],
        )
        .await?;
        if n == 0 {
            Err(StoreError::NotFound("session"))
        } else {
            Ok(())
        }
    }

    async fn expire_portal_sessions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        session_ids: Option<&[String]>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let c = self.client().await?;
        let only: Option<Vec<String>> = session_ids.map(<[String]>::to_vec);
        db::execute(
            &c,
            "UPDATE ui_session SET expires_at = $1 WHERE org_id = $2 AND app_id = $3 \
             AND kind = 'portal' AND revoked_at IS NULL AND expires_at > $1 \
             AND ($4::text[] IS NULL OR grants->>'sessionId' = ANY($4))",
            &[&db::ms(at), &org.as_str(), &app.as_str(), &only],
        )
        .await
    }

    async fn delete_ui_sessions_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "DELETE FROM ui_session WHERE expires_at < $1 OR revoked_at < $1",
            &[&cutoff],
        )
        .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}
