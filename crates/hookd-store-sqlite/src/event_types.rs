//! Event types, keyed by (organisation, name).

use async_trait::async_trait;
use hookd_core::id::OrgId;
use hookd_core::name::EventTypeName;
use hookd_store::{
    EventType, EventTypeData, EventTypeStore, ListQuery, Mutation, Page, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::SqliteStore;
use crate::sql::{self, from_json, from_millis, internal, to_json};

const COLUMNS: &str =
    "name, description, archived, deprecated, schemas, group_name, feature_flags, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<EventType> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(row: &Row<'_>) -> rusqlite::Result<EventType> {
    Ok(EventType {
        name: EventTypeName::from_trusted(row.get(0)?),
        data: EventTypeData {
            description: row.get(1)?,
            archived: row.get(2)?,
            deprecated: row.get(3)?,
            schemas: row
                .get::<_, Option<String>>(4)?
                .map(|s| from_json(4, &s))
                .transpose()?,
            group_name: row
                .get::<_, Option<String>>(5)?
                .map(|g| g.parse().map_err(|e| sql::corrupt(5, e)))
                .transpose()?,
            feature_flags: from_json(6, &row.get::<_, String>(6)?)?,
        },
        created_at: from_millis(row.get(7)?),
        updated_at: from_millis(row.get(8)?),
    })
}

fn find(c: &Connection, org: &OrgId, name: &str) -> StoreResult<EventType> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM event_type WHERE org_id = ? AND name = ?"
    ))
    .and_then(|mut s| s.query_row(params![org.as_str(), name], from_row).optional())
    .map_err(internal)?
    .ok_or(StoreError::NotFound("event type"))
}

fn write_row(c: &Connection, org: &OrgId, et: &EventType, insert: bool) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO event_type (description, archived, deprecated, schemas, group_name, feature_flags,
             created_at, updated_at, org_id, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE event_type SET description = ?, archived = ?, deprecated = ?, schemas = ?, group_name = ?,
             feature_flags = ?, created_at = ?, updated_at = ? WHERE org_id = ? AND name = ?"
    };
    let d = &et.data;
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                d.description,
                d.archived,
                d.deprecated,
                d.schemas.as_ref().map(to_json),
                d.group_name.as_ref().map(|g| g.as_str()),
                to_json(&d.feature_flags),
                et.created_at.timestamp_millis(),
                et.updated_at.timestamp_millis(),
                org.as_str(),
                et.name.as_str(),
            ])
        })
        .map_err(|e| sql::conflict_or_internal(e, "an event type with this name already exists"))?;
    Ok(())
}

#[async_trait]
impl EventTypeStore for SqliteStore {
    async fn create_event_type(
        &self,
        org: &OrgId,
        name: &EventTypeName,
        data: EventTypeData,
    ) -> StoreResult<EventType> {
        let (org, name) = (org.clone(), name.clone());
        self.write(move |c| {
            let now = sql::now();
            let et = EventType {
                name,
                created_at: now,
                updated_at: now,
                data,
            };
            write_row(c, &org, &et, true)?;
            Ok(et)
        })
        .await
    }

    async fn get_event_type(&self, org: &OrgId, name: &str) -> StoreResult<EventType> {
        let (org, name) = (org.clone(), name.to_owned());
        self.read(move |c| find(c, &org, &name)).await
    }

    async fn list_event_types(
        &self,
        org: &OrgId,
        query: &ListQuery,
        include_archived: bool,
    ) -> StoreResult<Page<EventType>> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |c| {
            let archived = if include_archived { "" } else { " AND archived = 0" };
            let select = format!("SELECT {COLUMNS} FROM event_type WHERE org_id = ?{archived}");
            sql::select_page(c, &select, "name", params![org.as_str()], &query, from_row)
        })
        .await
    }

    async fn update_event_type(
        &self,
        org: &OrgId,
        name: &str,
        change: Mutation<EventTypeData>,
    ) -> StoreResult<EventType> {
        let (org, name) = (org.clone(), name.to_owned());
        self.write(move |c| {
            let mut et = find(c, &org, &name)?;
            change(&mut et.data)?;
            et.updated_at = sql::now();
            write_row(c, &org, &et, false)?;
            Ok(et)
        })
        .await
    }

    async fn delete_event_type(&self, org: &OrgId, name: &str, expunge: bool) -> StoreResult<()> {
        let (org, name) = (org.clone(), name.to_owned());
        self.write(move |c| {
            let n = if expunge {
                c.prepare_cached("DELETE FROM event_type WHERE org_id = ? AND name = ?")
                    .and_then(|mut s| s.execute(params![org.as_str(), name]))
            } else {
                c.prepare_cached(
                    "UPDATE event_type SET archived = 1, updated_at = ? WHERE org_id = ? AND name = ?",
                )
                .and_then(|mut s| s.execute(params![sql::now().timestamp_millis(), org.as_str(), name]))
            }
            .map_err(internal)?;
            if n == 0 {
                Err(StoreError::NotFound("event type"))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn missing_event_types(
        &self,
        org: &OrgId,
        names: &[EventTypeName],
    ) -> StoreResult<Vec<EventTypeName>> {
        let (org, names) = (org.clone(), names.to_vec());
        self.read(move |c| {
            let mut s = c
                .prepare_cached("SELECT 1 FROM event_type WHERE org_id = ? AND name = ?")
                .map_err(internal)?;
            let mut missing = Vec::new();
            for name in names {
                if !s.exists(params![org.as_str(), name.as_str()]).map_err(internal)? {
                    missing.push(name);
                }
            }
            Ok(missing)
        })
        .await
    }
}
