//! Durable background jobs. A claim takes the oldest free job with `FOR UPDATE SKIP
//! LOCKED`, so nodes claiming at once never take the same one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{OrgId, TaskId};
use hookd_store::{Job, JobLease, JobStatus, JobStep, JobStore, ListQuery, Page, StoreError, StoreResult};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get};

const COLUMNS: &str = "id, org_id, kind, state, status, error, created_at, updated_at";

fn from_row(r: &Row) -> StoreResult<Job> {
    Ok(Job {
        id: TaskId::from_trusted(get(r, 0)?),
        org_id: OrgId::from_trusted(get(r, 1)?),
        kind: get(r, 2)?,
        state: get(r, 3)?,
        status: JobStatus::from_code(i64::from(get::<i32>(r, 4)?)),
        error: get(r, 5)?,
        created_at: get(r, 6)?,
        updated_at: get(r, 7)?,
    })
}

#[async_trait]
impl JobStore for PgStore {
    async fn create_job(
        &self,
        org: &OrgId,
        kind: &str,
        state: serde_json::Value,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<Job> {
        let c = self.client().await?;
        let id = TaskId::generate();
        let sql = format!(
            "INSERT INTO job (id, org_id, kind, state, status, created_at, updated_at, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, 0, $5, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let (owner, until) = (
            lease.as_ref().map(|l| l.owner.as_str()),
            lease.as_ref().map(|l| l.until),
        );
        let row = db::query_opt(
            &c,
            &sql,
            &[&id.as_str(), &org.as_str(), &kind, &state, &now, &owner, &until],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("a job insert returned no row".into()))?;
        from_row(&row)
    }

    async fn claim_job(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
    ) -> StoreResult<Option<Job>> {
        let c = self.client().await?;
        let sql = format!(
            "UPDATE job SET lease_owner = $1, lease_until = $2
             WHERE id = (SELECT id FROM job WHERE status = 0 AND (lease_until IS NULL OR lease_until <= $3)
                         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING {COLUMNS}"
        );
        loop {
            let Some(row) = db::query_opt(&c, &sql, &[&owner, &lease_until, &now]).await? else {
                return Ok(None);
            };
            match from_row(&row) {
                Ok(job) => return Ok(Some(job)),
                // A damaged row: set aside (its lease held by nobody until then), and
                // the next job claimed instead.
                Err(e) => {
                    let id: String = get(&row, 0)?;
                    hookd_store::log_set_aside("job", &id, &e);
                    db::execute(
                        &c,
                        "UPDATE job SET lease_owner = NULL, lease_until = $1 WHERE id = $2",
                        &[&(now + hookd_store::undecodable_park()), &id],
                    )
                    .await?;
                }
            }
        }
    }

    async fn save_job(&self, id: &TaskId, owner: &str, step: JobStep) -> StoreResult<bool> {
        let c = self.client().await?;
        let running = step.status == JobStatus::Running;
        let n = db::execute(
            &c,
            "UPDATE job SET state = $1, status = $2, error = $3, updated_at = $4,
                 lease_owner = CASE WHEN $5::boolean THEN lease_owner END,
                 lease_until = CASE WHEN $5::boolean THEN $6::timestamptz END
             WHERE id = $7 AND lease_owner = $8 AND status = 0",
            &[
                &step.state,
                &step.status.code(),
                &step.error,
                &step.now,
                &running,
                &step.lease_until,
                &id.as_str(),
                &owner,
            ],
        )
        .await?;
        Ok(n == 1)
    }

    async fn get_job(&self, org: &OrgId, id: &TaskId) -> StoreResult<Job> {
        let c = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM job WHERE org_id = $1 AND id = $2");
        db::query_opt(&c, &sql, &[&org.as_str(), &id.as_str()])
            .await?
            .map(|r| from_row(&r))
            .transpose()?
            .ok_or(StoreError::NotFound("task"))
    }

    async fn list_jobs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        status: Option<JobStatus>,
        kinds: &[&str],
    ) -> StoreResult<Page<Job>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        let mut select = format!(
            "SELECT {COLUMNS} FROM job WHERE org_id = {} AND kind = ANY({})",
            args.push(org.to_string()),
            args.push(kinds)
        );
        if let Some(status) = status {
            select.push_str(&format!(" AND status = {}", args.push(status.code())));
        }
        db::select_page(&c, &select, "id", args, query, from_row).await
    }

    async fn release_jobs(&self, owner: &str) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "UPDATE job SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND status = 0",
            &[&owner],
        )
        .await?;
        Ok(())
    }
}
