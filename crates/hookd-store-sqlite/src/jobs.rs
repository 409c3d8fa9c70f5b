//! Durable background jobs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{OrgId, TaskId};
use hookd_store::{Job, JobLease, JobStatus, JobStep, JobStore, ListQuery, Page, StoreError, StoreResult};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension as _, Row, ToSql, params};

use crate::SqliteStore;
use crate::sql::{self, from_millis, internal};

const COLUMNS: &str = "id, org_id, kind, state, status, error, created_at, updated_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(r: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(3)?;
    Ok(Job {
        id: TaskId::from_trusted(r.get(0)?),
        org_id: OrgId::from_trusted(r.get(1)?),
        kind: r.get(2)?,
        state: sql::from_json(3, &state)?,
        status: JobStatus::from_code(r.get(4)?),
        error: r.get(5)?,
        created_at: from_millis(r.get(6)?),
        updated_at: from_millis(r.get(7)?),
    })
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn create_job(
        &self,
        org: &OrgId,
        kind: &str,
        state: serde_json::Value,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<Job> {
        let job = Job {
            id: TaskId::generate(),
            org_id: org.clone(),
            kind: kind.to_owned(),
            state,
            status: JobStatus::Running,
            error: None,
            created_at: now,
            updated_at: now,
        };
        let row = job.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO job (id, org_id, kind, state, status, created_at, updated_at, lease_owner, lease_until)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    row.id.as_str(),
                    row.org_id.as_str(),
                    row.kind,
                    row.state.to_string(),
                    row.status.code(),
                    row.created_at.timestamp_millis(),
                    row.updated_at.timestamp_millis(),
                    lease.as_ref().map(|l| l.owner.as_str()),
                    lease.as_ref().map(|l| l.until.timestamp_millis()),
                ])
            })
            .map_err(internal)?;
            Ok(())
        })
        .await?;
        Ok(job)
    }

    async fn claim_job(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
    ) -> StoreResult<Option<Job>> {
        let owner = owner.to_owned();
        self.write(move |c| {
            let sql = format!(
                "UPDATE job SET lease_owner = ?, lease_until = ?
                 WHERE id = (SELECT id FROM job WHERE status = 0 AND (lease_until IS NULL OR lease_until <= ?)
                             ORDER BY created_at LIMIT 1)
                 RETURNING {COLUMNS}"
            );
            loop {
                let job = c
                    .prepare_cached(&sql)
                    .and_then(|mut s| {
                        s.query_row(
                            params![owner, lease_until.timestamp_millis(), now.timestamp_millis()],
                            |r| Ok(from_row(r).map_err(|e| (r.get::<_, String>(0).unwrap_or_default(), e))),
                        )
                        .optional()
                    })
                    .map_err(internal)?;
                match job {
                    Some(Err((id, e))) => {
                        // A damaged row: set aside (its lease held by nobody until
                        // then), and the next job claimed instead.
                        hookd_store::log_set_aside("job", &id, &internal(e));
                        let until = now + hookd_store::undecodable_park();
                        c.prepare_cached("UPDATE job SET lease_owner = NULL, lease_until = ? WHERE id = ?")
                            .and_then(|mut s| s.execute(params![until.timestamp_millis(), id]))
                            .map_err(internal)?;
                    }
                    other => return Ok(other.and_then(Result::ok)),
                }
            }
        })
        .await
    }

    async fn save_job(&self, id: &TaskId, owner: &str, step: JobStep) -> StoreResult<bool> {
        let (id, owner) = (id.clone(), owner.to_owned());
        self.write(move |c| {
            let running = step.status == JobStatus::Running;
            let n = c
                .prepare_cached(
                    "UPDATE job SET state = ?, status = ?, error = ?, updated_at = ?,
                         lease_owner = CASE WHEN ? THEN lease_owner END,
                         lease_until = CASE WHEN ? THEN ? END
                     WHERE id = ? AND lease_owner = ? AND status = 0",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        step.state.to_string(),
                        step.status.code(),
                        step.error,
                        step.now.timestamp_millis(),
                        running,
                        running,
                        step.lease_until.timestamp_millis(),
                        id.as_str(),
                        owner,
                    ])
                })
                .map_err(internal)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_job(&self, org: &OrgId, id: &TaskId) -> StoreResult<Job> {
        let (org, id) = (org.clone(), id.clone());
        self.read(move |c| {
            let sql = format!("SELECT {COLUMNS} FROM job WHERE org_id = ? AND id = ?");
            c.prepare_cached(&sql)
                .and_then(|mut s| {
                    s.query_row(params![org.as_str(), id.as_str()], from_row)
                        .optional()
                })
                .map_err(internal)?
                .ok_or(StoreError::NotFound("task"))
        })
        .await
    }

    async fn list_jobs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        status: Option<JobStatus>,
        kinds: &[&str],
    ) -> StoreResult<Page<Job>> {
        let (org, query) = (org.clone(), query.clone());
        let kinds: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
        self.read(move |c| {
            let mut select = format!(
                "SELECT {COLUMNS} FROM job WHERE org_id = ? AND kind IN (SELECT value FROM json_each(?))"
            );
            let mut values = vec![Value::Text(org.to_string()), Value::Text(sql::to_json(&kinds))];
            if let Some(status) = status {
                select.push_str(" AND status = ?");
                values.push(Value::Integer(i64::from(status.code())));
            }
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "id", &refs, &query, from_row)
        })
        .await
    }

    async fn release_jobs(&self, owner: &str) -> StoreResult<()> {
        let owner = owner.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE job SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ? AND status = 0",
            )
            .and_then(|mut s| s.execute(params![owner]))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }
}
