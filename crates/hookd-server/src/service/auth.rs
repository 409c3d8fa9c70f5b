//! Credentials: one check of a presented credential against its stored record, for API
//! tokens and data API keys alike (the record remembered for a moment, see `cache`; the
//! secret checked in constant time on every request), and issuing new tokens and keys.

use std::collections::BTreeSet;
use std::future::Future;
use std::hash::Hash;

use hookd_core::api_token::ApiKey;
use hookd_core::api_token::{ApiToken, Credential, CredentialId, TokenHash};
use hookd_core::id::{ApiKeyId, ApplicationId, OrgId, TokenId};
use hookd_store::{ApiKeyData, ApiKeyRecord, NewApiKey, NewToken, Org, Store, StoreResult, TokenRecord};

use crate::http::auth::{Authenticate, Tenant};
use crate::http::error::{ApiError, ApiResult};

/// The most requests per second a data API key may be allowed.
const MAX_RATE_LIMIT: u32 = 1_000_000;
use crate::service::Service;
use crate::service::cache::Recent;

impl Authenticate for Service {
    async fn authenticate_token(&self, presented: &str) -> Result<Tenant, ApiError> {
        let store = &self.store;
        let record = check::<TokenId, _, _>(
            presented,
            &self.lookups.tokens,
            "invalid or revoked token",
            |id| async move { store.find_token(&id).await },
        )
        .await?;
        Ok(Tenant {
            org: record.org_id,
            token: record.id,
        })
    }
}

/// The key's record when it is valid and live.
pub async fn authenticate_api_key(state: &Service, presented: &str) -> ApiResult<ApiKeyRecord> {
    let store = &state.store;
    check::<ApiKeyId, _, _>(
        presented,
        &state.lookups.api_keys,
        "invalid or revoked API key",
        |id| async move { store.find_api_key(&id).await },
    )
    .await
}

/// A stored credential: what a presented one is checked against.
trait StoredCredential: Clone {
    fn hash(&self) -> &TokenHash;
    fn revoked(&self) -> bool;
}

impl StoredCredential for TokenRecord {
    fn hash(&self) -> &TokenHash {
        &self.hash
    }
    fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

impl StoredCredential for ApiKeyRecord {
    fn hash(&self) -> &TokenHash {
        &self.hash
    }
    fn revoked(&self) -> bool {
        self.revoked_at.is_some()
    }
}

/// The one check of every presented credential (API tokens, data API keys, and the
/// next kinds): parsed as a [`Credential`] of id type `I`, its record found by its id
/// (remembered a moment in `recent`, else `find`), live, and its secret compared with
/// the stored hash in constant time on every call. Every kind of failure answers the
/// same 401 `invalid`, so a caller learns nothing about which part was wrong.
async fn check<I, R, Fut>(
    presented: &str,
    recent: &Recent<I, R>,
    invalid: &str,
    find: impl FnOnce(I) -> Fut,
) -> ApiResult<R>
where
    I: CredentialId + Eq + Hash,
    R: StoredCredential,
    Fut: Future<Output = StoreResult<Option<R>>>,
{
    let refuse = || ApiError::Unauthorized(invalid.to_owned());
    let credential = Credential::<I>::parse(presented).ok_or_else(refuse)?;
    let record = match recent.get(&credential.id) {
        Some(record) => record,
        None => {
            let record = find(credential.id.clone()).await?.ok_or_else(refuse)?;
            recent.put(credential.id.clone(), record.clone());
            record
        }
    };
    if record.revoked() || !credential.matches(record.hash()) {
        return Err(refuse());
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

/// Makes a key for the application; the returned key is the only copy of its secret.
pub async fn issue_api_key(
    store: &dyn Store,
    org: &OrgId,
    app: &ApplicationId,
    data: ApiKeyData,
) -> StoreResult<(ApiKeyRecord, ApiKey)> {
    let key = ApiKey::generate();
    let record = store
        .create_api_key(
            org,
            app,
            NewApiKey {
                id: key.id.clone(),
                hash: key.hash(),
                data,
            },
        )
        .await?;
    Ok((record, key))
}

/// A key's grants from a request: its name, scopes (`read`, `write`) and modes given
/// by name, and its rate limit, each checked.
pub fn api_key_data(
    name: String,
    scopes: &[String],
    modes: Option<&[String]>,
    rate_limit: Option<u32>,
) -> ApiResult<ApiKeyData> {
    if name.is_empty() || name.len() > 256 {
        return Err(ApiError::invalid(
            &["body", "name"],
            "a name of 1 to 256 characters",
        ));
    }
    let (mut read, mut write) = (false, false);
    for scope in scopes {
        match scope.as_str() {
            "read" => read = true,
            "write" => write = true,
            other => {
                return Err(ApiError::invalid(
                    &["body", "scopes"],
                    format!("unknown scope {other:?}: read or write"),
                ));
            }
        }
    }
    if !read && !write {
        return Err(ApiError::invalid(&["body", "scopes"], "give read, write or both"));
    }
    let modes = modes
        .map(|m| {
            m.iter()
                .map(|name| crate::http::parse_field::<hookd_core::name::DataName>(name, "modes"))
                .collect::<ApiResult<BTreeSet<_>>>()
        })
        .transpose()?;
    if rate_limit.is_some_and(|r| !(1..=MAX_RATE_LIMIT).contains(&r)) {
        return Err(ApiError::invalid(
            &["body", "rateLimit"],
            "1 to 1,000,000 requests per second",
        ));
    }
    Ok(ApiKeyData {
        name,
        read,
        write,
        modes,
        rate_limit,
    })
}
