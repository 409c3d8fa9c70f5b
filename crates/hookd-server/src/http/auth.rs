//! Who is calling: the [`Tenant`] extractor turns `Authorization: Bearer <token>` into
//! the caller's organisation. Every tenant-scoped handler takes it, so no handler can
//! reach the store without an organisation to scope by. Checking the presented
//! credential is the state's [`Authenticate`] (the service layer's authenticator).

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use hookd_core::id::{OrgId, TokenId};

use crate::http::error::ApiError;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub org: OrgId,
    pub token: TokenId,
}

/// Checks a presented API token (the part after `Bearer `).
pub trait Authenticate {
    /// The caller the token belongs to; 401 with one answer for every kind of bad token.
    fn authenticate_token(&self, presented: &str) -> impl Future<Output = Result<Tenant, ApiError>> + Send;
}

impl<S: Authenticate + Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
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
        state.authenticate_token(presented).await
    }
}
