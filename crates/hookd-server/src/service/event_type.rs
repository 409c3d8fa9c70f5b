//! Event types: the organisation's catalogue, created, replaced, changed and archived
//! (or expunged) by name.

use std::collections::BTreeSet;

use hookd_core::id::OrgId;
use hookd_core::name::{EventTypeName, FeatureFlag, GroupName};
use hookd_store::{EventType, EventTypeData};

use crate::http::error::ApiResult;
use crate::service::{Service, upsert};

/// A checked PATCH of an event type: `None` keeps a field.
#[derive(Debug, Default)]
pub struct EventTypeChange {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    /// `Some(None)` removes the schemas.
    pub schemas: Option<Option<serde_json::Value>>,
    pub feature_flags: Option<BTreeSet<FeatureFlag>>,
    /// `Some(None)` removes the group.
    pub group_name: Option<Option<GroupName>>,
}

impl EventTypeChange {
    fn apply(self, d: &mut EventTypeData) {
        if let Some(v) = self.description {
            d.description = v;
        }
        if let Some(v) = self.archived {
            d.archived = v;
        }
        if let Some(v) = self.deprecated {
            d.deprecated = v;
        }
        if let Some(v) = self.schemas {
            d.schemas = v;
        }
        if let Some(v) = self.feature_flags {
            d.feature_flags = v;
        }
        if let Some(v) = self.group_name {
            d.group_name = v;
        }
    }
}

/// Creates the event type `name` (409 when it exists).
pub async fn create(
    state: &Service,
    org: &OrgId,
    name: &EventTypeName,
    data: EventTypeData,
) -> ApiResult<EventType> {
    Ok(state.store.create_event_type(org, name, data).await?)
}

/// Creates or replaces the event type `name`; answers whether it was created.
pub async fn replace(
    state: &Service,
    org: &OrgId,
    name: &EventTypeName,
    data: EventTypeData,
) -> ApiResult<(EventType, bool)> {
    let store = &state.store;
    upsert(
        || {
            let data = data.clone();
            store.update_event_type(
                org,
                name.as_str(),
                Box::new(move |cur| {
                    *cur = data;
                    Ok(())
                }),
            )
        },
        || store.create_event_type(org, name, data.clone()),
    )
    .await
}

/// Changes some fields of the event type `name`.
pub async fn change(
    state: &Service,
    org: &OrgId,
    name: &str,
    change: EventTypeChange,
) -> ApiResult<EventType> {
    Ok(state
        .store
        .update_event_type(
            org,
            name,
            Box::new(move |d| {
                change.apply(d);
                Ok(())
            }),
        )
        .await?)
}

/// Archives the event type `name`, or with `expunge` removes it for good.
pub async fn delete(state: &Service, org: &OrgId, name: &str, expunge: bool) -> ApiResult<()> {
    Ok(state.store.delete_event_type(org, name, expunge).await?)
}
