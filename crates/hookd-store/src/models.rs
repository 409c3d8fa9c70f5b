//! What the store keeps. Each object is split into its identity (id, owner, times),
//! which only the backend sets, and its `...Data`, which callers create and mutate.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::id::{ApplicationId, EndpointId, OrgId, TokenId};
use hookd_core::name::{ChannelName, EventTypeName, FeatureFlag, GroupName, Uid};
use hookd_core::secret::EndpointSecret;

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct NewToken {
    pub id: TokenId,
    pub name: String,
    pub hash: TokenHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub org_id: OrgId,
    pub name: String,
    pub hash: TokenHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationData {
    pub uid: Option<Uid>,
    pub name: String,
    /// Messages per second across the application's endpoints; `None` = unlimited.
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: ApplicationId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: ApplicationData,
}

/// Narrows an application listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplicationFilter {
    /// Leave out applications that have no endpoint.
    pub exclude_without_endpoints: bool,
    /// Leave out applications whose endpoints are all disabled.
    pub exclude_all_endpoints_disabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeData {
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    /// JSON Schemas by version, as given.
    pub schemas: Option<serde_json::Value>,
    pub group_name: Option<GroupName>,
    /// Empty when the event type is visible to everyone.
    pub feature_flags: BTreeSet<FeatureFlag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: EventTypeName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: EventTypeData,
}

/// A signing secret replaced by a rotation, still used to sign until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: EndpointSecret,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointData {
    pub uid: Option<Uid>,
    pub url: EndpointUrl,
    pub description: String,
    pub disabled: bool,
    /// Only these event types are delivered; `None` = all.
    pub event_types: Option<BTreeSet<EventTypeName>>,
    /// Only messages on one of these channels are delivered; `None` = all.
    pub channels: Option<BTreeSet<ChannelName>>,
    pub throttle_rate: Option<u16>,
    pub metadata: Metadata,
    /// Custom headers sent with every delivery (validated by
    /// `hookd_core::endpoint_headers`).
    pub headers: BTreeMap<String, String>,
    pub secret: EndpointSecret,
    pub previous_secrets: Vec<PreviousSecret>,
}

impl EndpointData {
    /// Makes `new` the signing secret; the current one keeps signing until
    /// `now + grace`. Secrets whose grace has run out are dropped.
    pub fn rotate_secret(&mut self, new: EndpointSecret, now: DateTime<Utc>, grace: chrono::Duration) {
        self.previous_secrets.retain(|p| p.expires_at > now);
        let old = std::mem::replace(&mut self.secret, new);
        if grace > chrono::Duration::zero() {
            self.previous_secrets.push(PreviousSecret {
                secret: old,
                expires_at: now + grace,
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: ApplicationId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: EndpointData,
}
