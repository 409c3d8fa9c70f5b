//! Flows' runs: leased like jobs, each step committed with its data write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{FlowId, FlowRunId, OrgId};
use hookd_store::{
    FlowNext, FlowRun, FlowRunData, FlowRunFilter, FlowRunSaved, FlowRunStep, FlowRunStore, FlowWrite,
    JobLease, ListQuery, Mutation, NewFlowRun, Page, StoreError, StoreResult, Written,
};
use rusqlite::{Connection, OptionalExtension as _, Row, ToSql, params};

use crate::SqliteStore;
use crate::sql::{self, from_millis, internal};

const COLUMNS: &str = "id, org_id, flow_id, status, state, due_at, created_at, updated_at, lease_owner";

fn from_row(row: &Row<'_>) -> rusqlite::Result<FlowRun> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(r: &Row<'_>) -> rusqlite::Result<FlowRun> {
    let state: String = r.get(4)?;
    Ok(FlowRun {
        id: FlowRunId::from_trusted(r.get(0)?),
        org_id: OrgId::from_trusted(r.get(1)?),
        flow_id: FlowId::from_trusted(r.get(2)?),
        data: FlowRunData {
            status: r.get(3)?,
            state: sql::from_json(4, &state)?,
            due_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
        },
        created_at: from_millis(r.get(6)?),
        updated_at: from_millis(r.get(7)?),
        lease_owner: r.get(8)?,
    })
}

fn find(c: &Connection, org: &OrgId, id: &FlowRunId) -> StoreResult<FlowRun> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM flow_run WHERE org_id = ? AND id = ?"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.as_str(), id.as_str()], from_row)
            .optional()
    })
    .map_err(internal)?
    .ok_or(StoreError::NotFound("flow run"))
}

fn millis(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

/// Whether a run of the flow `f` (a `flow` row) may take a lease at `?now`: the flow
/// has no concurrency limit, or fewer of its runs hold a live lease.
const ROOM: &str = "(f.concurrency IS NULL OR (SELECT count(*) FROM flow_run h INDEXED BY flow_run_leased
     WHERE h.flow_id = f.id AND h.lease_owner IS NOT NULL AND h.lease_until > :now) < f.concurrency)";

/// Inserts a run of `flow` (of the same organisation, and enabled; `None` when there
/// is no such flow) in the caller's transaction:
/// `create_flow_run`, and the runs an event starts where the event is committed.
/// With `lease`, the run is leased only while the flow is below its concurrency.
pub(crate) fn insert_flow_run(
    c: &Connection,
    org: &OrgId,
    flow: &FlowId,
    data: &FlowRunData,
    now: DateTime<Utc>,
    lease: Option<&JobLease>,
) -> StoreResult<Option<FlowRun>> {
    let id = FlowRunId::generate();
    c.prepare_cached(&format!(
        "INSERT INTO flow_run
             (id, org_id, flow_id, status, state, due_at, lease_owner, lease_until, created_at, updated_at)
         SELECT :id, f.org_id, f.id, :status, :state, :due,
                CASE WHEN {ROOM} THEN :owner END, CASE WHEN {ROOM} THEN :until END, :now, :now
         FROM flow f WHERE f.org_id = :org AND f.id = :flow AND f.enabled = 1
         RETURNING {COLUMNS}"
    ))
    .and_then(|mut s| {
        s.query_row(
            rusqlite::named_params! {
                ":id": id.as_str(),
                ":status": data.status,
                ":state": sql::to_json(&data.state),
                ":due": millis(data.due_at),
                ":owner": lease.map(|l| l.owner.as_str()),
                ":until": lease.map(|l| l.until.timestamp_millis()),
                ":now": now.timestamp_millis(),
                ":org": org.as_str(),
                ":flow": flow.as_str(),
            },
            from_row,
        )
        .optional()
    })
    .map_err(internal)
}

/// Inserts a run of `flow` that nobody holds yet, in the caller's transaction;
/// whether it was (not when the flow was deleted or disabled meanwhile). The runs an
/// event or a schedule starts: on the receive path, so it reads nothing back.
pub(crate) fn insert_unleased(
    c: &Connection,
    org: &OrgId,
    flow: &FlowId,
    data: &FlowRunData,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let id = FlowRunId::generate();
    let inserted = c
        .prepare_cached(
            "INSERT INTO flow_run (id, org_id, flow_id, status, state, due_at, created_at, updated_at)
             SELECT ?1, f.org_id, f.id, ?2, ?3, ?4, ?5, ?5
             FROM flow f WHERE f.org_id = ?6 AND f.id = ?7 AND f.enabled = 1",
        )
        .and_then(|mut s| {
            s.execute(params![
                id.as_str(),
                data.status,
                sql::to_json(&data.state),
                millis(data.due_at),
                now.timestamp_millis(),
                org.as_str(),
                flow.as_str(),
            ])
        })
        .map_err(internal)?;
    Ok(inserted == 1)
}

/// Inserts the runs an event starts in the caller's transaction; answers how many
/// were started (a run of a flow deleted or disabled meanwhile is not).
pub(crate) fn insert_started(
    c: &Connection,
    org: &OrgId,
    runs: Vec<NewFlowRun>,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut started = 0;
    for run in runs {
        started += usize::from(insert_unleased(c, org, &run.flow, &run.data, now)?);
    }
    Ok(started)
}

#[async_trait]
impl FlowRunStore for SqliteStore {
    async fn create_flow_run(
        &self,
        org: &OrgId,
        flow: &FlowId,
        data: FlowRunData,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<FlowRun> {
        let (org, flow) = (org.clone(), flow.clone());
        self.write(move |c| {
            insert_flow_run(c, &org, &flow, &data, now, lease.as_ref())?.ok_or(StoreError::NotFound("flow"))
        })
        .await
    }

    async fn claim_flow_runs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<FlowRun>> {
        let owner = owner.to_owned();
        // The runner's background work: it waits for the writer's spare time.
        self.write_later(move |c| {
            // One statement a run, each seeing the leases the ones before took (so a
            // flow's concurrency holds inside the batch), all in one commit.
            let mut claim = c
                .prepare_cached(&format!(
                    "UPDATE flow_run SET lease_owner = :owner, lease_until = :until
                     WHERE id = (SELECT r.id FROM flow_run r INDEXED BY flow_run_due JOIN flow f ON f.id = r.flow_id
                                 WHERE r.due_at IS NOT NULL AND r.due_at <= :now
                                   AND (r.lease_until IS NULL OR r.lease_until <= :now)
                                   AND {ROOM}
                                 ORDER BY r.due_at LIMIT 1)
                     RETURNING {COLUMNS}"
                ))
                .map_err(internal)?;
            let mut claimed = Vec::new();
            while claimed.len() < limit {
                let run = claim
                    .query_row(
                        rusqlite::named_params! {
                            ":owner": owner,
                            ":until": lease_until.timestamp_millis(),
                            ":now": now.timestamp_millis(),
                        },
                        |r| Ok(from_row(r).map_err(|e| (r.get::<_, String>(0).unwrap_or_default(), e))),
                    )
                    .optional()
                    .map_err(internal)?;
                match run {
                    Some(Ok(run)) => claimed.push(run),
                    // A damaged row: set aside (due again later, unleased), never the
                    // whole claim failed with it, again and again.
                    Some(Err((id, e))) => {
                        hookd_store::log_set_aside("flow run", &id, &internal(e));
                        let until = now + hookd_store::undecodable_park();
                        c.prepare_cached(
                            "UPDATE flow_run SET due_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
                        )
                        .and_then(|mut s| s.execute(params![until.timestamp_millis(), id]))
                        .map_err(internal)?;
                    }
                    None => break,
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn save_flow_run(
        &self,
        id: &FlowRunId,
        owner: &str,
        step: FlowRunStep,
    ) -> StoreResult<FlowRunSaved> {
        let (id, owner) = (id.clone(), owner.to_owned());
        let save = move |c: &Connection| {
            let org: Option<String> = c
                .prepare_cached("SELECT org_id FROM flow_run WHERE id = ? AND lease_owner = ?")
                .and_then(|mut s| s.query_row(params![id.as_str(), owner], |r| r.get(0)).optional())
                .map_err(internal)?;
            let Some(org) = org else {
                return Ok(FlowRunSaved::NotHeld);
            };
            let org = OrgId::from_trusted(org);
            // The write first: if it fails, the writer's savepoint drops everything.
            let (data, written) = match step.next {
                FlowNext::State(data) => (data, None),
                FlowNext::Write(write) => {
                    let (written, then) = match write {
                        FlowWrite::Document {
                            app,
                            collection,
                            key,
                            edit,
                            event_retain_until,
                            runs,
                            then,
                        } => {
                            let written = crate::data::write_document_in(
                                c,
                                &org,
                                &app,
                                &collection,
                                &key,
                                edit,
                                event_retain_until,
                                &runs,
                            )?;
                            (Written::Document(written), then)
                        }
                        FlowWrite::Score {
                            app,
                            board,
                            player,
                            score,
                            runs,
                            then,
                        } => {
                            let submitted = crate::data::submit_score_in(
                                c, &org, &app, &board, &player, score, step.now, &runs,
                            )?;
                            (Written::Score(submitted), then)
                        }
                        FlowWrite::StartRun { flow, data, then } => {
                            let child = insert_flow_run(c, &org, &flow, &data, step.now, None)?
                                .ok_or(StoreError::NotFound("flow"))?;
                            (Written::Run(Box::new(child)), then)
                        }
                    };
                    (then(&written), Some(written))
                }
            };
            c.prepare_cached(
                "UPDATE flow_run SET status = ?, state = ?, due_at = ?, updated_at = ?,
                     lease_owner = CASE WHEN ?5 IS NULL THEN NULL ELSE lease_owner END, lease_until = ?5
                 WHERE id = ? AND lease_owner = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    data.status,
                    sql::to_json(&data.state),
                    millis(data.due_at),
                    step.now.timestamp_millis(),
                    millis(step.lease_until),
                    id.as_str(),
                    owner,
                ])
            })
            .map_err(internal)?;
            Ok(FlowRunSaved::Saved(written))
        };
        if step.urgent {
            self.write(save).await
        } else {
            self.write_later(save).await
        }
    }

    async fn get_flow_run(&self, org: &OrgId, id: &FlowRunId) -> StoreResult<FlowRun> {
        let (org, id) = (org.clone(), id.clone());
        self.read(move |c| find(c, &org, &id)).await
    }

    async fn list_flow_runs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: &FlowRunFilter,
    ) -> StoreResult<Page<FlowRun>> {
        let (org, query, filter) = (org.clone(), query.clone(), filter.clone());
        self.read(move |c| {
            let mut select = format!("SELECT {COLUMNS} FROM flow_run WHERE org_id = ?");
            let org = org.as_str().to_owned();
            let mut bound: Vec<&dyn ToSql> = vec![&org];
            let flow = filter.flow.as_ref().map(|f| f.as_str().to_owned());
            if let Some(flow) = &flow {
                select.push_str(" AND flow_id = ?");
                bound.push(flow);
            }
            if let Some(status) = &filter.status {
                select.push_str(" AND status = ?");
                bound.push(status);
            }
            let before = filter.before.map(|t| t.timestamp_millis());
            if let Some(before) = &before {
                select.push_str(" AND created_at < ?");
                bound.push(before);
            }
            let after = filter.after.map(|t| t.timestamp_millis());
            if let Some(after) = &after {
                select.push_str(" AND created_at > ?");
                bound.push(after);
            }
            sql::select_page(c, &select, "id", &bound, &query, from_row)
        })
        .await
    }

    async fn update_flow_run(
        &self,
        org: &OrgId,
        id: &FlowRunId,
        change: Mutation<FlowRunData>,
    ) -> StoreResult<FlowRun> {
        let (org, id) = (org.clone(), id.clone());
        self.write(move |c| {
            let mut run = find(c, &org, &id)?;
            change(&mut run.data)?;
            run.data.due_at = run.data.due_at.map(|t| from_millis(t.timestamp_millis()));
            run.updated_at = sql::now();
            c.prepare_cached(
                "UPDATE flow_run SET status = ?, state = ?, due_at = ?, updated_at = ?,
                     lease_owner = NULL, lease_until = NULL
                 WHERE org_id = ? AND id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    run.data.status,
                    sql::to_json(&run.data.state),
                    millis(run.data.due_at),
                    run.updated_at.timestamp_millis(),
                    org.as_str(),
                    id.as_str(),
                ])
            })
            .map_err(internal)?;
            Ok(run)
        })
        .await
    }

    async fn release_flow_runs(&self, owner: &str) -> StoreResult<()> {
        let owner = owner.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE flow_run SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?",
            )
            .and_then(|mut s| s.execute(params![owner]))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn delete_ended_flow_runs_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        self.write(move |c| {
            c.prepare_cached(
                "DELETE FROM flow_run WHERE id IN
                     (SELECT id FROM flow_run WHERE due_at IS NULL AND updated_at < ? ORDER BY updated_at LIMIT CAST(? AS INTEGER))",
            )
            .and_then(|mut s| s.execute(params![cutoff.timestamp_millis(), limit as i64]))
            .map_err(internal)
        })
        .await
    }
}
