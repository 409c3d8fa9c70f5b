//! Event types, keyed by (organisation, name).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use hookd_core::id::OrgId;
use hookd_core::name::EventTypeName;
use hookd_store::{
    EventType, EventTypeData, EventTypeStore, ListQuery, Mutation, Page, StoreError, StoreResult,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json, json_opt, to_json};

const COLUMNS: &str =
    "name, description, archived, deprecated, schemas, group_name, feature_flags, created_at, updated_at";

fn from_row(row: &Row) -> StoreResult<EventType> {
    Ok(EventType {
        name: EventTypeName::from_trusted(get(row, 0)?),
        data: EventTypeData {
            description: get(row, 1)?,
            archived: get(row, 2)?,
            deprecated: get(row, 3)?,
            schemas: json_opt(row, 4)?,
            group_name: get::<Option<String>>(row, 5)?
                .map(|g| g.parse().map_err(|e| db::corrupt("group name", e)))
                .transpose()?,
            feature_flags: json(row, 6)?,
        },
        created_at: get(row, 7)?,
        updated_at: get(row, 8)?,
    })
}

async fn find<C: GenericClient>(c: &C, org: &OrgId, name: &str, lock: bool) -> StoreResult<EventType> {
    let sql = format!(
        "SELECT {COLUMNS} FROM event_type WHERE org_id = $1 AND name = $2{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    db::query_opt(c, &sql, &[&org.as_str(), &name])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or(StoreError::NotFound("event type"))
}

async fn write_row<C: GenericClient>(c: &C, org: &OrgId, et: &EventType, insert: bool) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO event_type (description, archived, deprecated, schemas, group_name, feature_flags,
             created_at, updated_at, org_id, name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    } else {
        "UPDATE event_type SET description = $1, archived = $2, deprecated = $3, schemas = $4, group_name = $5,
             feature_flags = $6, created_at = $7, updated_at = $8 WHERE org_id = $9 AND name = $10"
    };
    let d = &et.data;
    db::execute_unique(
        c,
        sql,
        &[
            &d.description,
            &d.archived,
            &d.deprecated,
            &d.schemas,
            &d.group_name.as_ref().map(|g| g.as_str()),
            &to_json(&d.feature_flags),
            &et.created_at,
            &et.updated_at,
            &org.as_str(),
            &et.name.as_str(),
        ],
        "an event type with this name already exists",
    )
    .await?;
    Ok(())
}

#[async_trait]
impl EventTypeStore for PgStore {
    async fn create_event_type(
        &self,
        org: &OrgId,
        name: &EventTypeName,
        data: EventTypeData,
    ) -> StoreResult<EventType> {
        let c = self.client().await?;
        let now = db::now();
        let et = EventType {
            name: name.clone(),
            created_at: now,
            updated_at: now,
            data,
        };
        write_row(&c, org, &et, true).await?;
        Ok(et)
    }

    async fn get_event_type(&self, org: &OrgId, name: &str) -> StoreResult<EventType> {
        let c = self.client().await?;
        find(&c, org, name, false).await
    }

    async fn list_event_types(
        &self,
        org: &OrgId,
        query: &ListQuery,
        include_archived: bool,
    ) -> StoreResult<Page<EventType>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let archived = if include_archived { "" } else { " AND NOT archived" };
        let select = format!(
            "SELECT {COLUMNS} FROM event_type WHERE org_id = {}{archived}",
            args.push(org.to_string())
        );
        db::select_page(&c, &select, "name", args, query, from_row).await
    }

    async fn update_event_type(
        &self,
        org: &OrgId,
        name: &str,
        change: Mutation<EventTypeData>,
    ) -> StoreResult<EventType> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut et = find(&tx, org, name, true).await?;
        change(&mut et.data)?;
        et.updated_at = db::now();
        write_row(&tx, org, &et, false).await?;
        tx.commit().await.map_err(db::err)?;
        Ok(et)
    }

    async fn delete_event_type(&self, org: &OrgId, name: &str, expunge: bool) -> StoreResult<()> {
        let c = self.client().await?;
        let n = if expunge {
            db::execute(
                &c,
                "DELETE FROM event_type WHERE org_id = $1 AND name = $2",
                &[&org.as_str(), &name],
            )
            .await?
        } else {
            db::execute(
                &c,
                "UPDATE event_type SET archived = true, updated_at = $1 WHERE org_id = $2 AND name = $3",
                &[&db::now(), &org.as_str(), &name],
            )
            .await?
        };
        if n == 0 {
            Err(StoreError::NotFound("event type"))
        } else {
            Ok(())
        }
    }

    async fn missing_event_types(
        &self,
        org: &OrgId,
        names: &[EventTypeName],
    ) -> StoreResult<Vec<EventTypeName>> {
        let c = self.client().await?;
        let wanted: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        let found: Vec<String> = db::query(
            &c,
            "SELECT name FROM event_type WHERE org_id = $1 AND name = ANY($2)",
            &[&org.as_str(), &wanted],
        )
        .await?
        .iter()
        .map(|r| get(r, 0))
        .collect::<StoreResult<_>>()?;
        Ok(names
            .iter()
            .filter(|n| !found.iter().any(|f| f == n.as_str()))
            .cloned()
            .collect())
    }
}
