//! Credentials: checking a presented API token or data API key against its stored
//! record (remembered for a moment, see `cache`; the secret checked in constant time on
//! every request), and issuing new tokens.

use hookd_core::api_token::{ApiKey, ApiToken};
use hookd_store::{ApiKeyRecord, NewToken, Org, Store, StoreResult};

use crate::http::auth::{Authenticate, Tenant};
use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

impl Authenticate for Service {
    async fn authenticate_token(&self, presented: &str) -> Result<Tenant, ApiError> {
        // One answer for every kind of bad token, so a caller learns nothing about
        // which part was wrong.
        let invalid = || ApiError::Unauthorized("invalid or revoked token".into());
        let token = ApiToken::parse(presented).ok_or_else(invalid)?;
        let record = match self.lookups.tokens.get(&token.id) {
            Some(record) => record,
            None => {
                let record = self.store.find_token(&token.id).await?.ok_or_else(invalid)?;
                self.lookups.tokens.put(token.id.clone(), record.clone());
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

/// The key's record when it is valid and live.
pub async fn authenticate_api_key(state: &Service, presented: &str) -> ApiResult<ApiKeyRecord> {
    // One answer for every kind of bad key: a caller learns nothing about which part
    // was wrong.
    let invalid = || ApiError::Unauthorized("invalid or revoked API key".into());
    let key = ApiKey::parse(presented).ok_or_else(invalid)?;
    let record = match state.lookups.api_keys.get(&key.id) {
        Some(record) => record,
        None => {
            let record = state.store.find_api_key(&key.id).await?.ok_or_else(invalid)?;
            state.lookups.api_keys.put(key.id.clone(), record.clone());
            record
        }
    };
    if record.revoked_at.is_some() || !key.matches(&record.hash) {
        return Err(invalid());
    }
    Ok(record)
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
