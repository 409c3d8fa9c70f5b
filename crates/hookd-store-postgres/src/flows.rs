//! Flows' definitions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::id::{FlowId, OrgId};
use hookd_core::name::DataName;
use hookd_store::{
    FlowData, FlowRunData, FlowSecret, FlowSecretStore, FlowStore, ListQuery, Mutation, Page, StoreError,
    StoreResult, StoredFlow,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get};

const COLUMNS: &str = "id, name, document, enabled, trigger_key, created_at, updated_at, concurrency";
const TAKEN: &str = "a flow with this name already exists";

fn from_row(r: &Row) -> StoreResult<StoredFlow> {
    Ok(StoredFlow {
        id: FlowId::from_trusted(get(r, 0)?),
        data: FlowData {
            name: DataName::from_trusted(get(r, 1)?),
            document: get(r, 2)?,
            enabled: get(r, 3)?,
            trigger: get(r, 4)?,
            concurrency: get::<Option<i32>>(r, 7)?.map(|n| n.unsigned_abs()),
        },
        created_at: get(r, 5)?,
        updated_at: get(r, 6)?,
    })
}

/// A flow's concurrency as the column keeps it (a limit beyond `i32` is no limit a
/// table of runs could reach).
fn concurrency(data: &FlowData) -> Option<i32> {
    data.concurrency.map(|n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// By id, or else by name; `lock` is appended (` FOR UPDATE`).
async fn find<C: GenericClient>(c: &C, org: &OrgId, key: &str, lock: &str) -> StoreResult<StoredFlow> {
    let row = db::query_opt(
        c,
        &format!(
            "SELECT {COLUMNS} FROM flow WHERE org_id = $1 AND (id = $2 OR name = $2)
             ORDER BY id = $2 DESC LIMIT 1{lock}"
        ),
        &[&org.as_str(), &key],
    )
    .await?
    .ok_or(StoreError::NotFound("flow"))?;
    from_row(&row)
}

#[async_trait]
impl FlowStore for PgStore {
    async fn create_flow(&self, org: &OrgId, data: FlowData) -> StoreResult<StoredFlow> {
        let c = self.client().await?;
        let now = db::now();
        let flow = StoredFlow {
            id: FlowId::generate(),
            data,
            created_at: now,
            updated_at: now,
        };
        db::execute_unique(
            &c,
            "INSERT INTO flow (id, org_id, name, document, enabled, trigger_key, created_at, updated_at,
                 concurrency)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
            &[
                &flow.id.as_str(),
                &org.as_str(),
                &flow.data.name.as_str(),
                &flow.data.document,
                &flow.data.enabled,
                &flow.data.trigger,
                &now,
                &concurrency(&flow.data),
            ],
            TAKEN,
        )
        .await?;
        Ok(flow)
    }

    async fn get_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow> {
        let c = self.client().await?;
        find(&c, org, key, "").await
    }

    async fn list_flows(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<StoredFlow>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT {COLUMNS} FROM flow WHERE org_id = {}",
            args.push(org.to_string())
        );
        db::select_page(&c, &select, "id", args, query, from_row).await
    }

    async fn update_flow(
        &self,
        org: &OrgId,
        key: &str,
        change: Mutation<FlowData>,
    ) -> StoreResult<StoredFlow> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut flow = find(&tx, org, key, " FOR UPDATE").await?;
        change(&mut flow.data)?;
        flow.updated_at = db::now();
        db::execute_unique(
            &tx,
            "UPDATE flow SET name = $1, document = $2, enabled = $3, trigger_key = $4, updated_at = $5,
                 concurrency = $8
             WHERE org_id = $6 AND id = $7",
            &[
                &flow.data.name.as_str(),
                &flow.data.document,
                &flow.data.enabled,
                &flow.data.trigger,
                &flow.updated_at,
                &org.as_str(),
                &flow.id.as_str(),
                &concurrency(&flow.data),
            ],
            TAKEN,
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(flow)
    }

    async fn delete_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let flow = find(&tx, org, key, " FOR UPDATE").await?;
        db::execute(
            &tx,
            "DELETE FROM flow WHERE org_id = $1 AND id = $2",
            &[&org.as_str(), &flow.id.as_str()],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(flow)
    }

    async fn flows_for_trigger(&self, org: &OrgId, trigger: &str) -> StoreResult<Vec<StoredFlow>> {
        let c = self.client().await?;
        db::query(
            &c,
            &format!(
                "SELECT {COLUMNS} FROM flow WHERE org_id = $1 AND trigger_key = $2 AND enabled ORDER BY id"
            ),
            &[&org.as_str(), &trigger],
        )
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    async fn cron_flows(&self) -> StoreResult<Vec<(OrgId, StoredFlow, Option<DateTime<Utc>>)>> {
        let c = self.client().await?;
        db::query(
            &c,
            &format!(
                "SELECT {COLUMNS}, org_id, cron_last_fire FROM flow
                 WHERE trigger_key = 'cron' AND enabled ORDER BY id"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| Ok((OrgId::from_trusted(get(r, 8)?), from_row(r)?, get(r, 9)?)))
        .collect()
    }

    async fn fire_cron_flow(
        &self,
        org: &OrgId,
        flow: &FlowId,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        run: FlowRunData,
    ) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let claimed = db::execute(
            &tx,
            "UPDATE flow SET cron_last_fire = $1
             WHERE org_id = $2 AND id = $3 AND enabled AND cron_last_fire IS NOT DISTINCT FROM $4",
            &[&db::ms(at), &org.as_str(), &flow.as_str(), &previous.map(db::ms)],
        )
        .await?;
        if claimed != 1 {
            return Ok(false);
        }
        let inserted = crate::flow_runs::insert_flow_run(&tx, org, flow, &run, at, None).await?;
        tx.commit().await.map_err(db::err)?;
        Ok(inserted.is_some())
    }
}

const SECRET_COLUMNS: &str = "name, sealed, created_at, updated_at";

fn secret_from_row(r: &Row) -> StoreResult<FlowSecret> {
    Ok(FlowSecret {
        name: DataName::from_trusted(get(r, 0)?),
        sealed: get(r, 1)?,
        created_at: get(r, 2)?,
        updated_at: get(r, 3)?,
    })
}

#[async_trait]
impl FlowSecretStore for PgStore {
    async fn put_flow_secret(
        &self,
        org: &OrgId,
        name: &DataName,
        sealed: String,
    ) -> StoreResult<(FlowSecret, bool)> {
        let c = self.client().await?;
        // `xmax = 0`: the row was inserted by this statement, not updated.
        let row = db::query_opt(
            &c,
            &format!(
                "INSERT INTO flow_secret (org_id, name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (org_id, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
                 RETURNING {SECRET_COLUMNS}, (xmax = 0)"
            ),
            &[&org.as_str(), &name.as_str(), &sealed, &db::now()],
        )
        .await?
        .ok_or(StoreError::NotFound("secret"))?;
        Ok((secret_from_row(&row)?, get(&row, 4)?))
    }

    async fn get_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<FlowSecret> {
        let c = self.client().await?;
        let row = db::query_opt(
            &c,
            &format!("SELECT {SECRET_COLUMNS} FROM flow_secret WHERE org_id = $1 AND name = $2"),
            &[&org.as_str(), &name],
        )
        .await?
        .ok_or(StoreError::NotFound("secret"))?;
        secret_from_row(&row)
    }

    async fn list_flow_secrets(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<FlowSecret>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT {SECRET_COLUMNS} FROM flow_secret WHERE org_id = {}",
            args.push(org.to_string())
        );
        db::select_page(&c, &select, "name", args, query, secret_from_row).await
    }

    async fn delete_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<()> {
        let c = self.client().await?;
        let deleted = db::execute(
            &c,
            "DELETE FROM flow_secret WHERE org_id = $1 AND name = $2",
            &[&org.as_str(), &name],
        )
        .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound("secret"));
        }
        Ok(())
    }
}
