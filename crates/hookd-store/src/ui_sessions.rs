//! Web UI sessions as stored: an operator's signed-in browser, a consumer portal's
//! access (one application, with the capabilities the organisation granted), and the
//! one-time sign-in links that start an operator session. Each is a credential
//! (`hks_<id>_<secret>`) whose secret is kept only as its SHA-256.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::id::{ApplicationId, OrgId, UiSessionId};
use serde::{Deserialize, Serialize};

use crate::StoreResult;

/// What a UI credential opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiSessionKind {
    /// A one-time link (`hookd ui-link`) exchanged for an operator session.
    SignInLink,
    /// The operator UI (`/ui`) for the whole organisation.
    Operator,
    /// The consumer portal (`/portal`) for one application.
    Portal,
}

impl UiSessionKind {
    pub fn text(self) -> &'static str {
        match self {
            Self::SignInLink => "link",
            Self::Operator => "operator",
            Self::Portal => "portal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::SignInLink, Self::Operator, Self::Portal]
            .into_iter()
            .find(|k| k.text() == s)
    }
}

/// A consumer portal's grants (empty for the other kinds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UiSessionGrants {
    /// Svix's capability names (`ViewBase`, `ManageEndpoint`, ...).
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub feature_flags: Vec<String>,
    /// The caller's own session id, which `expire-all` can name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUiSession {
    pub id: UiSessionId,
    pub hash: TokenHash,
    pub kind: UiSessionKind,
    /// The one application of a portal session.
    pub app_id: Option<ApplicationId>,
    pub grants: UiSessionGrants,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UiSession {
    pub id: UiSessionId,
    pub org_id: OrgId,
    pub kind: UiSessionKind,
    pub app_id: Option<ApplicationId>,
    pub hash: TokenHash,
    pub grants: UiSessionGrants,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When its link was followed: a sign-in link is exchanged then (and is spent); a
    /// portal session's link signs in one browser, once, and the session lives on.
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl UiSession {
    /// Whether it may be used at `now`: not revoked, not expired, and (a sign-in link)
    /// not used.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none()
            && self.expires_at > now
            && (self.kind != UiSessionKind::SignInLink || self.used_at.is_none())
    }
}

/// Web UI sessions and sign-in links.
#[async_trait]
pub trait UiSessionStore: Send + Sync {
    async fn create_ui_session(&self, org: &OrgId, session: NewUiSession) -> StoreResult<UiSession>;
    /// Finds a session by its public id. Like [`crate::OrgStore::find_token`], this
    /// lookup precedes tenancy: it is how a browser's organisation is learnt.
    async fn find_ui_session(&self, id: &UiSessionId) -> StoreResult<Option<UiSession>>;
    /// Marks the link of a live sign-in link or portal session followed; `false` when
    /// it was already, or the session is revoked, expired or an operator's, so of two
    /// browsers racing with one link only one gets in.
    async fn use_sign_in_link(&self, id: &UiSessionId, now: DateTime<Utc>) -> StoreResult<bool>;
    /// Ends one session (sign-out, logout); [`crate::StoreError::NotFound`] when the
    /// organisation has no such live session.
    async fn revoke_ui_session(&self, org: &OrgId, id: &UiSessionId) -> StoreResult<()>;
    /// Makes the portal sessions of `app` (only those with one of `session_ids`, when
    /// given) expire at `at` at the latest; how many were shortened.
    async fn expire_portal_sessions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        session_ids: Option<&[String]>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Deletes sessions and links that ended before `cutoff` (retention).
    async fn delete_ui_sessions_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize>;
}
