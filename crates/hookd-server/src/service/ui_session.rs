//! Web UI sessions: one-time sign-in links (`hookd ui-link`), operator sessions, and
//! the consumer portal's access (Svix's `app-portal-access`, `logout`, `expire-all`).
//! Every credential is an `hks_` [`UiCredential`] whose secret is stored hashed and
//! checked in constant time; every check reads the store, so a sign-out or an
//! `expire-all` takes effect on the next request.

use chrono::{DateTime, Utc};
use hookd_core::api_token::UiCredential;
use hookd_core::id::{ApplicationId, OrgId};
use hookd_store::{NewUiSession, Org, Store, StoreResult, UiSession, UiSessionGrants, UiSessionKind};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::http::error::{ApiError, ApiResult};
use crate::service::Service;

/// The consumer portal's capabilities, as Svix names them.
pub const CAPABILITIES: [&str; 6] = [
    "ViewBase",
    "ViewEndpointSecret",
    "ManageEndpointSecret",
    "ManageTransformations",
    "CreateAttempts",
    "ManageEndpoint",
];

/// Portal access lasts 1 hour to 7 days (Svix's bounds); 7 days by default.
pub const PORTAL_EXPIRY_MIN: u64 = 3_600;
pub const PORTAL_EXPIRY_MAX: u64 = 7 * 86_400;

/// A checked, live session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: UiSession,
    /// Proves a form came from a page of this session (see [`SignedIn::csrf_token`]).
    csrf: String,
}

impl SignedIn {
    fn new(session: UiSession) -> Self {
        // Derived from the stored hash of the session's secret: only the server (which
        // reads it from the store) and nobody without the cookie can compute it.
        let mut h = Sha256::new();
        h.update(b"hookd-ui-csrf\0");
        h.update(session.hash.0);
        let csrf = hex::encode(h.finalize());
        Self { session, csrf }
    }

    pub fn org(&self) -> &OrgId {
        &self.session.org_id
    }

    /// The token every form of this session carries.
    pub fn csrf_token(&self) -> &str {
        &self.csrf
    }

    /// Constant-time check of a submitted CSRF token.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len() && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// Whether a portal session holds `capability` (operator sessions hold all).
    pub fn can(&self, capability: &str) -> bool {
        match self.session.kind {
            UiSessionKind::Portal => self.session.grants.capabilities.iter().any(|c| c == capability),
            _ => true,
        }
    }
}

async fn create(
    store: &dyn Store,
    org: &OrgId,
    kind: UiSessionKind,
    app_id: Option<ApplicationId>,
    grants: UiSessionGrants,
    expires_at: DateTime<Utc>,
) -> StoreResult<(UiCredential, UiSession)> {
    let credential = UiCredential::generate();
    let session = store
        .create_ui_session(
            org,
            NewUiSession {
                id: credential.id.clone(),
                hash: credential.hash(),
                kind,
                app_id,
                grants,
                expires_at,
            },
        )
        .await?;
    Ok((credential, session))
}

/// Makes a one-time operator sign-in link for the organisation `org` (by name or id;
/// created by that name when missing), valid for `lifetime`. Returns the organisation
/// and the link's credential (the only copy of its secret).
pub async fn issue_sign_in_link(
    store: &dyn Store,
    org: &str,
    lifetime: std::time::Duration,
) -> StoreResult<(Org, UiCredential)> {
    let org = match store.find_org(org).await? {
        Some(o) => o,
        None => store.ensure_org(org).await?,
    };
    let (credential, _) = create(
        store,
        &org.id,
        UiSessionKind::SignInLink,
        None,
        UiSessionGrants::default(),
        Utc::now() + crate::config::span(lifetime),
    )
    .await?;
    Ok((org, credential))
}

/// The live session (of `kind`) a presented credential opens; 401 for anything else,
/// the same answer whatever was wrong.
pub async fn authenticate(state: &Service, presented: &str, kind: UiSessionKind) -> ApiResult<SignedIn> {
    let refuse = || ApiError::Unauthorized("invalid or expired session".into());
    let credential = UiCredential::parse(presented).ok_or_else(refuse)?;
    let session = state
        .store
        .find_ui_session(&credential.id)
        .await?
        .ok_or_else(refuse)?;
    if session.kind != kind || !session.live(Utc::now()) || !credential.matches(&session.hash) {
        return Err(refuse());
    }
    Ok(SignedIn::new(session))
}

/// Follows a portal access link: the session it opens, once (Svix's links are single
/// use; the session itself lasts until it expires or logs out).
pub async fn follow_portal_link(state: &Service, presented: &str) -> ApiResult<SignedIn> {
    let signed_in = authenticate(state, presented, UiSessionKind::Portal).await?;
    if !state
        .store
        .use_sign_in_link(&signed_in.session.id, Utc::now())
        .await?
    {
        return Err(ApiError::Unauthorized("invalid or expired session".into()));
    }
    Ok(signed_in)
}

/// Exchanges a sign-in link for a new operator session (the link then stops working).
pub async fn sign_in_with_link(state: &Service, presented: &str) -> ApiResult<(UiCredential, SignedIn)> {
    let link = authenticate(state, presented, UiSessionKind::SignInLink).await?;
    if !state.store.use_sign_in_link(&link.session.id, Utc::now()).await? {
        return Err(ApiError::Unauthorized("invalid or expired session".into()));
    }
    operator_session(state, link.org()).await
}

/// Signs a browser in with an API token of the organisation (pasted on the sign-in
/// page).
pub async fn sign_in_with_token(state: &Service, presented: &str) -> ApiResult<(UiCredential, SignedIn)> {
    use crate::http::auth::Authenticate as _;
    let tenant = state.authenticate_token(presented.trim()).await?;
    operator_session(state, &tenant.org).await
}

async fn operator_session(state: &Service, org: &OrgId) -> ApiResult<(UiCredential, SignedIn)> {
    let (credential, session) = create(
        state.store.as_ref(),
        org,
        UiSessionKind::Operator,
        None,
        UiSessionGrants::default(),
        Utc::now() + crate::config::span(state.config.ui_session_lifetime),
    )
    .await?;
    Ok((credential, SignedIn::new(session)))
}

/// What an organisation grants a portal session.
#[derive(Debug, Clone, Default)]
pub struct PortalGrant {
    /// Svix's capability names; `None`: all of them.
    pub capabilities: Option<Vec<String>>,
    /// Deprecated by Svix in favour of capabilities: only `ViewBase`.
    pub read_only: bool,
    pub feature_flags: Vec<String>,
    pub session_id: Option<String>,
    /// Seconds; 1 hour to 7 days, 7 days when `None`.
    pub expiry: Option<u64>,
}

/// Makes portal access for one application: the token, and the URL that signs a
/// browser in with it.
pub async fn portal_access(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    grant: PortalGrant,
) -> ApiResult<(String, String)> {
    let expiry = grant.expiry.unwrap_or(PORTAL_EXPIRY_MAX);
    if !(PORTAL_EXPIRY_MIN..=PORTAL_EXPIRY_MAX).contains(&expiry) {
        return Err(ApiError::invalid(
            &["body", "expiry"],
            format!("between {PORTAL_EXPIRY_MIN} and {PORTAL_EXPIRY_MAX} seconds"),
        ));
    }
    let mut capabilities = match grant.capabilities {
        Some(c) => c,
        None if grant.read_only => vec!["ViewBase".to_owned()],
        None => CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
    };
    if let Some(bad) = capabilities.iter().find(|c| !CAPABILITIES.contains(&c.as_str())) {
        return Err(ApiError::invalid(
            &["body", "capabilities"],
            format!("unknown capability {bad:?}; one of {}", CAPABILITIES.join(", ")),
        ));
    }
    if grant.read_only {
        // readOnly wins over capabilities that would allow changes.
        capabilities.retain(|c| c == "ViewBase" || c == "ViewEndpointSecret");
    }
    if !capabilities.iter().any(|c| c == "ViewBase") {
        capabilities.insert(0, "ViewBase".to_owned());
    }
    capabilities.dedup();
    let (credential, _) = create(
        state.store.as_ref(),
        org,
        UiSessionKind::Portal,
        Some(app.clone()),
        UiSessionGrants {
            capabilities,
            feature_flags: grant.feature_flags,
            session_id: grant.session_id,
        },
        Utc::now() + chrono::Duration::seconds(i64::try_from(expiry).unwrap_or(i64::MAX)),
    )
    .await?;
    let token = credential.reveal();
    let url = format!(
        "{}/portal/sign-in?token={token}",
        state.config.public_url().trim_end_matches('/')
    );
    Ok((url, token))
}

/// Ends the session a credential opens (`POST /api/v1/auth/logout` with a portal
/// token, or an operator's sign-out).
pub async fn sign_out(state: &Service, signed_in: &SignedIn) -> ApiResult<()> {
    Ok(state
        .store
        .revoke_ui_session(signed_in.org(), &signed_in.session.id)
        .await?)
}

/// Makes an application's portal sessions (only those of `session_ids`, when given)
/// expire in `expiry` seconds (now when `None`); how many were shortened.
pub async fn expire_portal_sessions(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    session_ids: Option<&[String]>,
    expiry: Option<u64>,
) -> ApiResult<u64> {
    let expiry = expiry.unwrap_or(0);
    if expiry > PORTAL_EXPIRY_MAX {
        return Err(ApiError::invalid(
            &["body", "expiry"],
            format!("at most {PORTAL_EXPIRY_MAX} seconds"),
        ));
    }
    let at = Utc::now() + chrono::Duration::seconds(i64::try_from(expiry).unwrap_or(0));
    Ok(state
        .store
        .expire_portal_sessions(org, app, session_ids, at)
        .await?)
}
