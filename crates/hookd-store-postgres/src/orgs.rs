//! Organisations and API tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::id::{OrgId, TokenId};
use hookd_store::{NewToken, Org, OrgStore, StoreError, StoreResult, TokenRecord};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, get};

fn org_from_row(row: &Row) -> StoreResult<Org> {
    Ok(Org {
        id: OrgId::from_trusted(get(row, 0)?),
        name: get(row, 1)?,
        created_at: get(row, 2)?,
    })
}

fn token_from_row(row: &Row) -> StoreResult<TokenRecord> {
    let hash: Vec<u8> = get(row, 3)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| db::corrupt("token hash", "not 32 bytes"))?;
    Ok(TokenRecord {
        id: TokenId::from_trusted(get(row, 0)?),
        org_id: OrgId::from_trusted(get(row, 1)?),
        name: get(row, 2)?,
        hash: TokenHash(hash),
        created_at: get(row, 4)?,
        revoked_at: get::<Option<DateTime<Utc>>>(row, 5)?,
    })
}

const TOKEN_COLUMNS: &str = "id, org_id, name, secret_hash, created_at, revoked_at";

#[async_trait]
impl OrgStore for PgStore {
    async fn ensure_org(&self, name: &str) -> StoreResult<Org> {
        let c = self.client().await?;
        // Inserts unless present; either way one round trip returns the row.
        let row = db::query_opt(
            &c,
            "INSERT INTO org (id, name, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO NOTHING RETURNING id, name, created_at",
            &[&OrgId::generate().as_str(), &name, &db::now()],
        )
        .await?;
        let row = match row {
            Some(row) => row,
            None => db::query_opt(
                &c,
                "SELECT id, name, created_at FROM org WHERE name = $1",
                &[&name],
            )
            .await?
            .ok_or(StoreError::NotFound("organisation"))?,
        };
        org_from_row(&row)
    }

    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<Org>> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            "SELECT id, name, created_at FROM org WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1",
            &[&id_or_name],
        )
        .await?
        .as_ref()
        .map(org_from_row)
        .transpose()
    }

    async fn create_token(&self, org: &OrgId, token: NewToken) -> StoreResult<TokenRecord> {
        let c = self.client().await?;
        let now = db::now();
        db::execute_unique(
            &c,
            "INSERT INTO api_token (id, org_id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            &[
                &token.id.as_str(),
                &org.as_str(),
                &token.name,
                &&token.hash.0[..],
                &now,
            ],
            "a token with this id exists",
        )
        .await?;
        Ok(TokenRecord {
            id: token.id,
            org_id: org.clone(),
            name: token.name,
            hash: token.hash,
            created_at: now,
            revoked_at: None,
        })
    }

    async fn find_token(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            &format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .as_ref()
        .map(token_from_row)
        .transpose()
    }

    async fn list_tokens(&self, org: &OrgId) -> StoreResult<Vec<TokenRecord>> {
        let c = self.client().await?;
        db::query(
            &c,
            &format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE org_id = $1 ORDER BY id"),
            &[&org.as_str()],
        )
        .await?
        .iter()
        .map(token_from_row)
        .collect()
    }

    async fn revoke_token(&self, org: &OrgId, id: &TokenId) -> StoreResult<()> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE api_token SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
            &[&db::now(), &org.as_str(), &id.as_str()],
        )
        .await?;
        if n == 0 {
            Err(StoreError::NotFound("token"))
        } else {
            Ok(())
        }
    }
}
