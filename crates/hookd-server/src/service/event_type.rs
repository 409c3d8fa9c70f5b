//! Event types: the organisation's catalogue, created, replaced, changed and archived
//! (or expunged) by name.

use std::collections::{BTreeMap, BTreeSet};

use hookd_core::id::OrgId;
use hookd_core::name::{EventTypeName, FeatureFlag, GroupName};
use hookd_store::{EventType, EventTypeData};

use crate::http::error::ApiResult;
use crate::service::event_type_openapi::ImportedEventType;
use crate::service::{Service, all_pages, upsert};

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

/// Every event type of the organisation (archived ones too, with
/// `include_archived`), by name.
pub async fn all(state: &Service, org: &OrgId, include_archived: bool) -> ApiResult<Vec<EventType>> {
    let store = &state.store;
    Ok(all_pages(
        |q| async move { store.list_event_types(org, &q, include_archived).await },
        |e: &EventType| e.name.to_string(),
    )
    .await?)
}

/// What an OpenAPI import did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Imported {
    /// The event types created, changed, unarchived or (with `replace_all`) archived.
    pub modified: Vec<String>,
    /// Those the spec would create or change (a dry run).
    pub to_modify: Vec<ImportedEventType>,
}

/// Creates or updates (unarchiving) the event types of an OpenAPI document; with
/// `replace_all`, archives those it does not name. Every one is checked before any is
/// written; each is then committed on its own, so an import that stops midway is
/// simply run again. `dry_run` changes nothing and answers what would change.
pub async fn import(
    state: &Service,
    org: &OrgId,
    types: Vec<ImportedEventType>,
    replace_all: bool,
    dry_run: bool,
) -> ApiResult<Imported> {
    let checked = types.iter().map(|t| t.to_data()).collect::<ApiResult<Vec<_>>>()?;
    let named: BTreeSet<String> = types.iter().map(|t| t.name.clone()).collect();
    let current: BTreeMap<String, EventType> = all(state, org, true)
        .await?
        .into_iter()
        .map(|e| (e.name.to_string(), e))
        .collect();
    let mut out = Imported::default();
    for (imported, (name, data)) in types.into_iter().zip(checked) {
        if current
            .get(name.as_str())
            .is_some_and(|c| !imported.changes(&c.data))
        {
            continue;
        }
        if !dry_run {
            replace(state, org, &name, data).await?;
            out.modified.push(name.to_string());
        }
        out.to_modify.push(imported);
    }
    if replace_all {
        for (name, et) in &current {
            if et.data.archived || named.contains(name) {
                continue;
            }
            if !dry_run {
                delete(state, org, name, false).await?;
                out.modified.push(name.clone());
            }
        }
    }
    Ok(out)
}

/// Archives the event type `name`, or with `expunge` removes it for good.
pub async fn delete(state: &Service, org: &OrgId, name: &str, expunge: bool) -> ApiResult<()> {
    Ok(state.store.delete_event_type(org, name, expunge).await?)
}
