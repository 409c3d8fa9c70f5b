//! Who is calling: the [`Tenant`] extractor turns `Authorization: Bearer <token>` into
//! the caller's organisation. Every tenant-scoped handler takes it, so no handler can
//! reach the store without an organisation to scope by.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hookd_core::api_token::ApiToken;
use hookd_core::id::{OrgId, TokenId};
use hookd_store::{NewToken, Org, Store, StoreResult};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub org: OrgId,
    pub token: TokenId,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // Already authenticated by a middleware of this request (idempotency).
        if let Some(tenant) = parts.extensions.get::<Tenant>() {
            return Ok(tenant.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".into()))?;
        let presented = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        // One answer for every kind of bad token, so a caller learns nothing about
        // which part was wrong.
        let invalid = || ApiError::Unauthorized("invalid or revoked token".into());
        let token = ApiToken::parse(presented).ok_or_else(invalid)?;
        let record = match state.lookups.tokens.get(&token.id) {
            Some(record) => record,
            None => {
                let record = state.store.find_token(&token.id).await?.ok_or_else(invalid)?;
                state.lookups.tokens.put(token.id.clone(), record.clone());
                record
            }
        };
        if record.revoked_at.is_some() || !token.matches(&record.hash) {
            return Err(invalid());
        }
        Ok(Tenant {
            org: record.org_id,
            token: record.id,
        })
    }
}

/// Makes a new token for the organisation `org` (by name or id; created by that name
/// when missing). The returned token is the only copy of its secret.
pub async fn issue_token(store: &dyn Store, org: &str, name: &str) -> StoreResult<(Org, ApiToken)> {
    let org = match store.find_org(org).await? {
        Some(o) => o,
        None => store.ensure_org(org).await?,
    };
    let token = ApiToken::generate();
    store
        .create_token(
            &org.id,
            NewToken {
                id: token.id.clone(),
                name: name.to_owned(),
                hash: token.hash(),
            },
        )
        .await?;
    Ok((org, token))
}
