//! Organisations and API tokens.

use async_trait::async_trait;
use hookd_core::api_token::TokenHash;
use hookd_core::id::{OrgId, TokenId};
use hookd_store::{NewToken, Org, OrgStore, StoreError, StoreResult, TokenRecord};
use rusqlite::{OptionalExtension as _, Row, params};

use crate::SqliteStore;
use crate::sql::{self, from_millis, internal};

fn org_from_row(row: &Row<'_>) -> rusqlite::Result<Org> {
    sql::named(row, org_from_row_columns)
}

fn org_from_row_columns(row: &Row<'_>) -> rusqlite::Result<Org> {
    Ok(Org {
        id: OrgId::from_trusted(row.get(0)?),
        name: row.get(1)?,
        created_at: from_millis(row.get(2)?),
    })
}

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    sql::named(row, token_from_row_columns)
}

fn token_from_row_columns(row: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    let hash: Vec<u8> = row.get(3)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| sql::corrupt(3, std::fmt::Error))?;
    Ok(TokenRecord {
        id: TokenId::from_trusted(row.get(0)?),
        org_id: OrgId::from_trusted(row.get(1)?),
        name: row.get(2)?,
        hash: TokenHash(hash),
        created_at: from_millis(row.get(4)?),
        revoked_at: row.get::<_, Option<i64>>(5)?.map(from_millis),
    })
}

const TOKEN_COLUMNS: &str = "id, org_id, name, secret_hash, created_at, revoked_at";

#[async_trait]
impl OrgStore for SqliteStore {
    async fn ensure_org(&self, name: &str) -> StoreResult<Org> {
        let name = name.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO org (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
            )
            .and_then(|mut s| {
                s.execute(params![
                    OrgId::generate().as_str(),
                    name,
                    sql::now().timestamp_millis()
                ])
            })
            .map_err(internal)?;
            c.prepare_cached("SELECT id, name, created_at FROM org WHERE name = ?")
                .and_then(|mut s| s.query_row([&name], org_from_row))
                .map_err(internal)
        })
        .await
    }

    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<Org>> {
        let key = id_or_name.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT id, name, created_at FROM org WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1")
                .and_then(|mut s| s.query_row([&key], org_from_row).optional())
                .map_err(internal)
        })
        .await
    }

    async fn create_token(&self, org: &OrgId, token: NewToken) -> StoreResult<TokenRecord> {
        let org = org.clone();
        self.write(move |c| {
            let now = sql::now();
            c.prepare_cached(
                "INSERT INTO api_token (id, org_id, name, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    token.id.as_str(),
                    org.as_str(),
                    token.name,
                    &token.hash.0[..],
                    now.timestamp_millis()
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, "a token with this id exists"))?;
            Ok(TokenRecord {
                id: token.id,
                org_id: org,
                name: token.name,
                hash: token.hash,
                created_at: now,
                revoked_at: None,
            })
        })
        .await
    }

    async fn find_token(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE id = ?"))
                .and_then(|mut s| s.query_row([id.as_str()], token_from_row).optional())
                .map_err(internal)
        })
        .await
    }

    async fn list_tokens(&self, org: &OrgId) -> StoreResult<Vec<TokenRecord>> {
        let org = org.clone();
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {TOKEN_COLUMNS} FROM api_token WHERE org_id = ? ORDER BY id"
                ))
                .map_err(internal)?;
            s.query_map([org.as_str()], token_from_row)
                .and_then(|rows| rows.collect())
                .map_err(internal)
        })
        .await
    }

    async fn revoke_token(&self, org: &OrgId, id: &TokenId) -> StoreResult<()> {
        let (org, id) = (org.clone(), id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE api_token SET revoked_at = ? WHERE org_id = ? AND id = ? AND revoked_at IS NULL",
                )
                .and_then(|mut s| {
                    s.execute(params![sql::now().timestamp_millis(), org.as_str(), id.as_str()])
                })
                .map_err(internal)?;
            if n == 0 {
                Err(StoreError::NotFound("token"))
            } else {
                Ok(())
            }
        })
        .await
    }
}
