//! Flows' definitions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{FlowId, OrgId};
use hookd_core::name::DataName;
use hookd_store::{
    FlowData, FlowRunData, FlowSecret, FlowSecretStore, FlowStore, ListQuery, Mutation, Page, StoreError,
    StoreResult, StoredFlow,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::SqliteStore;
use crate::sql::{self, from_millis, internal};

const COLUMNS: &str = "id, name, document, enabled, trigger_key, created_at, updated_at, concurrency";
const TAKEN: &str = "a flow with this name already exists";

fn from_row(row: &Row<'_>) -> rusqlite::Result<StoredFlow> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(r: &Row<'_>) -> rusqlite::Result<StoredFlow> {
    let document: String = r.get(2)?;
    Ok(StoredFlow {
        id: FlowId::from_trusted(r.get(0)?),
        data: FlowData {
            name: DataName::from_trusted(r.get(1)?),
            document: sql::from_json(2, &document)?,
            enabled: r.get(3)?,
            trigger: r.get(4)?,
            concurrency: r.get(7)?,
        },
        created_at: from_millis(r.get(5)?),
        updated_at: from_millis(r.get(6)?),
    })
}

/// By id, or else by name.
fn find(c: &Connection, org: &OrgId, key: &str) -> StoreResult<StoredFlow> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM flow WHERE org_id = ?1 AND (id = ?2 OR name = ?2)
         ORDER BY id = ?2 DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![org.as_str(), key], from_row).optional())
    .map_err(internal)?
    .ok_or(StoreError::NotFound("flow"))
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn create_flow(&self, org: &OrgId, data: FlowData) -> StoreResult<StoredFlow> {
        let org = org.clone();
        self.write(move |c| {
            let now = sql::now();
            let flow = StoredFlow {
                id: FlowId::generate(),
                data,
                created_at: now,
                updated_at: now,
            };
            c.prepare_cached(
                "INSERT INTO flow (id, org_id, name, document, enabled, trigger_key, created_at, updated_at,
                     concurrency)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    flow.id.as_str(),
                    org.as_str(),
                    flow.data.name.as_str(),
                    sql::to_json(&flow.data.document),
                    flow.data.enabled,
                    flow.data.trigger,
                    now.timestamp_millis(),
                    now.timestamp_millis(),
                    flow.data.concurrency
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, TAKEN))?;
            Ok(flow)
        })
        .await
    }

    async fn get_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow> {
        let (org, key) = (org.clone(), key.to_owned());
        self.read(move |c| find(c, &org, &key)).await
    }

    async fn list_flows(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<StoredFlow>> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |c| {
            sql::select_page(
                c,
                &format!("SELECT {COLUMNS} FROM flow WHERE org_id = ?"),
                "id",
                params![org.as_str()],
                &query,
                from_row,
            )
        })
        .await
    }

    async fn update_flow(
        &self,
        org: &OrgId,
        key: &str,
        change: Mutation<FlowData>,
    ) -> StoreResult<StoredFlow> {
        let (org, key) = (org.clone(), key.to_owned());
        self.write(move |c| {
            let mut flow = find(c, &org, &key)?;
            change(&mut flow.data)?;
            flow.updated_at = sql::now();
            c.prepare_cached(
                "UPDATE flow SET name = ?, document = ?, enabled = ?, trigger_key = ?, updated_at = ?,
                     concurrency = ?
                 WHERE org_id = ? AND id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    flow.data.name.as_str(),
                    sql::to_json(&flow.data.document),
                    flow.data.enabled,
                    flow.data.trigger,
                    flow.updated_at.timestamp_millis(),
                    flow.data.concurrency,
                    org.as_str(),
                    flow.id.as_str()
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, TAKEN))?;
            Ok(flow)
        })
        .await
    }

    async fn delete_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow> {
        let (org, key) = (org.clone(), key.to_owned());
        self.write(move |c| {
            let flow = find(c, &org, &key)?;
            c.prepare_cached("DELETE FROM flow WHERE org_id = ? AND id = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), flow.id.as_str()]))
                .map_err(internal)?;
            Ok(flow)
        })
        .await
    }

    async fn flows_for_trigger(&self, org: &OrgId, trigger: &str) -> StoreResult<Vec<StoredFlow>> {
        let (org, trigger) = (org.clone(), trigger.to_owned());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM flow WHERE org_id = ? AND trigger_key = ? AND enabled = 1 ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map(params![org.as_str(), trigger], from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
    }

    async fn cron_flows(&self) -> StoreResult<Vec<(OrgId, StoredFlow, Option<DateTime<Utc>>)>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, org_id, cron_last_fire FROM flow
                 WHERE trigger_key = 'cron' AND enabled = 1 ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        OrgId::from_trusted(r.get(8)?),
                        from_row(r)?,
                        r.get::<_, Option<i64>>(9)?.map(from_millis),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
    }

    async fn fire_cron_flow(
        &self,
        org: &OrgId,
        flow: &FlowId,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        run: FlowRunData,
    ) -> StoreResult<bool> {
        let (org, flow) = (org.clone(), flow.clone());
        self.write(move |c| {
            let claimed = c
                .prepare_cached(
                    "UPDATE flow SET cron_last_fire = ?1
                     WHERE org_id = ?2 AND id = ?3 AND enabled = 1 AND cron_last_fire IS ?4",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        at.timestamp_millis(),
                        org.as_str(),
                        flow.as_str(),
                        previous.map(|p| p.timestamp_millis())
                    ])
                })
                .map_err(internal)?;
            if claimed != 1 {
                return Ok(false);
            }
            crate::flow_runs::insert_unleased(c, &org, &flow, &run, at)
        })
        .await
    }
}

const SECRET_COLUMNS: &str = "name, sealed, created_at, updated_at";

fn secret_from_row(row: &Row<'_>) -> rusqlite::Result<FlowSecret> {
    sql::named(row, secret_from_row_columns)
}

fn secret_from_row_columns(r: &Row<'_>) -> rusqlite::Result<FlowSecret> {
    Ok(FlowSecret {
        name: DataName::from_trusted(r.get(0)?),
        sealed: r.get(1)?,
        created_at: from_millis(r.get(2)?),
        updated_at: from_millis(r.get(3)?),
    })
}

fn find_secret(c: &Connection, org: &OrgId, name: &str) -> StoreResult<Option<FlowSecret>> {
    c.prepare_cached(&format!(
        "SELECT {SECRET_COLUMNS} FROM flow_secret WHERE org_id = ? AND name = ?"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.as_str(), name], secret_from_row)
            .optional()
    })
    .map_err(internal)
}

#[async_trait]
impl FlowSecretStore for SqliteStore {
    async fn put_flow_secret(
        &self,
        org: &OrgId,
        name: &DataName,
        sealed: String,
    ) -> StoreResult<(FlowSecret, bool)> {
        let (org, name) = (org.clone(), name.clone());
        self.write(move |c| {
            let now = sql::now();
            let before = find_secret(c, &org, name.as_str())?;
            let secret = FlowSecret {
                name,
                sealed,
                created_at: before.as_ref().map_or(now, |b| b.created_at),
                updated_at: now,
            };
            c.prepare_cached(
                "INSERT INTO flow_secret (org_id, name, sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (org_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.as_str(),
                    secret.name.as_str(),
                    secret.sealed,
                    secret.created_at.timestamp_millis(),
                    now.timestamp_millis()
                ])
            })
            .map_err(|e| match &e {
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
                {
                    StoreError::NotFound("organisation")
                }
                _ => internal(e),
            })?;
            Ok((secret, before.is_none()))
        })
        .await
    }

    async fn get_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<FlowSecret> {
        let (org, name) = (org.clone(), name.to_owned());
        self.read(move |c| find_secret(c, &org, &name)?.ok_or(StoreError::NotFound("secret")))
            .await
    }

    async fn list_flow_secrets(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<FlowSecret>> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |c| {
            sql::select_page(
                c,
                &format!("SELECT {SECRET_COLUMNS} FROM flow_secret WHERE org_id = ?"),
                "name",
                params![org.as_str()],
                &query,
                secret_from_row,
            )
        })
        .await
    }

    async fn delete_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<()> {
        let (org, name) = (org.clone(), name.to_owned());
        self.write(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM flow_secret WHERE org_id = ? AND name = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), name]))
                .map_err(internal)?;
            if deleted == 0 {
                return Err(StoreError::NotFound("secret"));
            }
            Ok(())
        })
        .await
    }
}
