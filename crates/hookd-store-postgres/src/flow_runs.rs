//! Flows' runs: leased like jobs, each step committed with its data write.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::id::{FlowId, FlowRunId, OrgId};
use hookd_store::{
    FlowNext, FlowRun, FlowRunData, FlowRunFilter, FlowRunSaved, FlowRunStep, FlowRunStore, FlowWrite,
    JobLease, ListQuery, Mutation, NewFlowRun, Page, StoreError, StoreResult, Written,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get};

const COLUMNS: &str = "id, org_id, flow_id, status, state, due_at, created_at, updated_at, lease_owner";

/// A claimed run's row decoded into `claimed`; or, when it does not decode, logged and
/// set aside (due again later, unleased), never the whole claim failed with it.
async fn claim_or_set_aside<C: GenericClient>(
    c: &C,
    row: &Row,
    now: DateTime<Utc>,
    claimed: &mut Vec<FlowRun>,
) -> StoreResult<()> {
    match from_row(row) {
        Ok(run) => claimed.push(run),
        Err(e) => {
            let id: String = get(row, 0)?;
            hookd_store::log_set_aside("flow run", &id, &e);
            db::execute(
                c,
                "UPDATE flow_run SET due_at = $1, lease_owner = NULL, lease_until = NULL WHERE id = $2",
                &[&db::ms(now + hookd_store::undecodable_park()), &id],
            )
            .await?;
        }
    }
    Ok(())
}

fn from_row(r: &Row) -> StoreResult<FlowRun> {
    Ok(FlowRun {
        id: FlowRunId::from_trusted(get(r, 0)?),
        org_id: OrgId::from_trusted(get(r, 1)?),
        flow_id: FlowId::from_trusted(get(r, 2)?),
        data: FlowRunData {
            status: get(r, 3)?,
            state: get(r, 4)?,
            due_at: get(r, 5)?,
        },
        created_at: get(r, 6)?,
        updated_at: get(r, 7)?,
        lease_owner: get(r, 8)?,
    })
}

/// Whether a run of the flow `f` (a `flow` row) may take a lease at `$now`: the flow
/// has no concurrency limit, or fewer of its runs hold a live lease. Callers that
/// lease take [`lock_flow`] first, so two nodes never both see the last free place.
fn room(now: &str) -> String {
    format!(
        "(f.concurrency IS NULL OR (SELECT count(*) FROM flow_run h
            WHERE h.flow_id = f.id AND h.lease_owner IS NOT NULL AND h.lease_until > {now}) < f.concurrency)"
    )
}

/// Serialises the leasing of flow `flow`'s runs until the transaction ends.
async fn lock_flow<C: GenericClient>(c: &C, flow: &str) -> StoreResult<()> {
    db::execute(
        c,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&format!("flow-lease\n{flow}")],
    )
    .await
    .map(|_| ())
}

/// Inserts a run of `flow` (of the same organisation, and enabled; `None` when there
/// is no such flow) on `c` (the caller's
/// transaction): `create_flow_run`, and the runs an event starts where the event is
/// committed.
pub(crate) async fn insert_flow_run<C: GenericClient>(
    c: &C,
    org: &OrgId,
    flow: &FlowId,
    data: &FlowRunData,
    now: DateTime<Utc>,
    lease: Option<&JobLease>,
) -> StoreResult<Option<FlowRun>> {
    let id = FlowRunId::generate();
    let room = room("$7");
    let sql = format!(
        "INSERT INTO flow_run
             (id, org_id, flow_id, status, state, due_at, lease_owner, lease_until, created_at, updated_at)
         SELECT $1, f.org_id, f.id, $2, $3, $4, CASE WHEN {room} THEN $5::text END,
                CASE WHEN {room} THEN $6::timestamptz END, $7, $7
         FROM flow f WHERE f.org_id = $8 AND f.id = $9 AND f.enabled
         RETURNING {COLUMNS}"
    );
    let (owner, until) = (lease.map(|l| l.owner.as_str()), lease.map(|l| db::ms(l.until)));
    let row = db::query_opt(
        c,
        &sql,
        &[
            &id.as_str(),
            &data.status,
            &data.state,
            &data.due_at.map(db::ms),
            &owner,
            &until,
            &db::ms(now),
            &org.as_str(),
            &flow.as_str(),
        ],
    )
    .await?;
    row.as_ref().map(from_row).transpose()
}

/// Inserts the runs an event starts on `c` (the caller's transaction); answers how
/// many were started (a run of a flow deleted or disabled meanwhile is not).
pub(crate) async fn insert_started<C: GenericClient>(
    c: &C,
    org: &OrgId,
    runs: Vec<NewFlowRun>,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let mut started = 0;
    for run in runs {
        started += usize::from(
            insert_flow_run(c, org, &run.flow, &run.data, now, None)
                .await?
                .is_some(),
        );
    }
    Ok(started)
}

#[async_trait]
impl FlowRunStore for PgStore {
    async fn create_flow_run(
        &self,
        org: &OrgId,
        flow: &FlowId,
        data: FlowRunData,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<FlowRun> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        if lease.is_some() {
            lock_flow(&tx, flow.as_str()).await?;
        }
        let run = insert_flow_run(&tx, org, flow, &data, now, lease.as_ref())
            .await?
            .ok_or(StoreError::NotFound("flow"))?;
        tx.commit().await.map_err(db::err)?;
        Ok(run)
    }

    async fn claim_flow_runs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<FlowRun>> {
        let mut c = self.client().await?;
        let room = room("$1");
        // The due runs, in due order, locked (other claimers skip them): one statement
        // for the whole batch (a statement per run, each walking again over the rows
        // the batch had taken, made a claim quadratic in its size and long in round
        // trips).
        let pick = format!(
            "SELECT r.id, r.flow_id, f.concurrency IS NOT NULL FROM flow_run r JOIN flow f ON f.id = r.flow_id
             WHERE r.due_at IS NOT NULL AND r.due_at <= $1 AND (r.lease_until IS NULL OR r.lease_until <= $1)
               AND {room}
             ORDER BY r.due_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED"
        );
        let take_all = format!(
            "UPDATE flow_run SET lease_owner = $1, lease_until = $2 WHERE id = ANY($3) RETURNING {COLUMNS}"
        );
        let take = format!(
            "UPDATE flow_run SET lease_owner = $1, lease_until = $2 WHERE id = $3 RETURNING {COLUMNS}"
        );
        let recount = format!("SELECT 1 FROM flow f WHERE f.id = $2 AND {room}");
        let tx = c.transaction().await.map_err(db::err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut free = Vec::new();
        let mut limited = Vec::new();
        for row in db::query(&tx, &pick, &[&now, &limit]).await? {
            let (id, flow, is_limited): (String, String, bool) =
                (get(&row, 0)?, get(&row, 1)?, get(&row, 2)?);
            if is_limited {
                limited.push((id, flow));
            } else {
                free.push(id);
            }
        }
        let mut claimed = Vec::new();
        if !free.is_empty() {
            for row in db::query(&tx, &take_all, &[&owner, &db::ms(lease_until), &free]).await? {
                claim_or_set_aside(&tx, &row, now, &mut claimed).await?;
            }
        }
        // A run of a flow with a limit: its place is counted again under the flow's
        // lock (another node, or a run before it in this batch, may have taken the
        // last one since the pick); one without a place is left for a later claim.
        for (id, flow) in limited {
            lock_flow(&tx, &flow).await?;
            if db::query_opt(&tx, &recount, &[&now, &flow]).await?.is_none() {
                continue;
            }
            if let Some(row) = db::query_opt(&tx, &take, &[&owner, &db::ms(lease_until), &id]).await? {
                claim_or_set_aside(&tx, &row, now, &mut claimed).await?;
            }
        }
        tx.commit().await.map_err(db::err)?;
        Ok(claimed)
    }

    async fn flow_throttle_take(
        &self,
        flow: &FlowId,
        rate: hookd_core::throttle::ThrottleRate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<std::time::Duration>> {
        crate::deliveries::FLOW_THROTTLE
            .take(self, flow.as_str(), rate, now)
            .await
    }

    async fn save_flow_run(
        &self,
        id: &FlowRunId,
        owner: &str,
        step: FlowRunStep,
    ) -> StoreResult<FlowRunSaved> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        // FOR UPDATE: a cancel or a takeover waits for this step, or this step sees it.
        let Some(row) = db::query_opt(
            &tx,
            "SELECT org_id FROM flow_run WHERE id = $1 AND lease_owner = $2 FOR UPDATE",
            &[&id.as_str(), &owner],
        )
        .await?
        else {
            return Ok(FlowRunSaved::NotHeld);
        };
        let org = OrgId::from_trusted(get(&row, 0)?);
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
                            &tx,
                            &org,
                            &app,
                            &collection,
                            &key,
                            edit,
                            event_retain_until,
                            &runs,
                        )
                        .await?;
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
                            &tx, &org, &app, &board, &player, score, step.now, &runs,
                        )
                        .await?;
                        (Written::Score(submitted), then)
                    }
                    FlowWrite::StartRun { flow, data, then } => {
                        let child = insert_flow_run(&tx, &org, &flow, &data, step.now, None)
                            .await?
                            .ok_or(StoreError::NotFound("flow"))?;
                        (Written::Run(Box::new(child)), then)
                    }
                };
                (then(&written), Some(written))
            }
        };
        db::execute(
            &tx,
            "UPDATE flow_run SET status = $1, state = $2, due_at = $3, updated_at = $4,
                 lease_owner = CASE WHEN $5::timestamptz IS NULL THEN NULL ELSE lease_owner END,
                 lease_until = $5::timestamptz
             WHERE id = $6 AND lease_owner = $7",
            &[
                &data.status,
                &data.state,
                &data.due_at.map(db::ms),
                &db::ms(step.now),
                &step.lease_until.map(db::ms),
                &id.as_str(),
                &owner,
            ],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        if matches!(&written, Some(Written::Document(w)) if w.event_deliveries > 0) {
            self.announce_work();
        }
        Ok(FlowRunSaved::Saved(written))
    }

    async fn get_flow_run(&self, org: &OrgId, id: &FlowRunId) -> StoreResult<FlowRun> {
        let c = self.client().await?;
        let sql = format!("SELECT {COLUMNS} FROM flow_run WHERE org_id = $1 AND id = $2");
        db::query_opt(&c, &sql, &[&org.as_str(), &id.as_str()])
            .await?
            .map(|r| from_row(&r))
            .transpose()?
            .ok_or(StoreError::NotFound("flow run"))
    }

    async fn list_flow_runs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: &FlowRunFilter,
    ) -> StoreResult<Page<FlowRun>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {COLUMNS} FROM flow_run WHERE org_id = {}",
            args.push(org.to_string())
        );
        if let Some(flow) = &filter.flow {
            select.push_str(&format!(" AND flow_id = {}", args.push(flow.to_string())));
        }
        if let Some(status) = &filter.status {
            select.push_str(&format!(" AND status = {}", args.push(status.clone())));
        }
        if let Some(before) = filter.before {
            select.push_str(&format!(" AND created_at < {}", args.push(before)));
        }
        if let Some(after) = filter.after {
            select.push_str(&format!(" AND created_at > {}", args.push(after)));
        }
        db::select_page(&c, &select, "id", args, query, from_row).await
    }

    async fn update_flow_run(
        &self,
        org: &OrgId,
        id: &FlowRunId,
        change: Mutation<FlowRunData>,
    ) -> StoreResult<FlowRun> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let sql = format!("SELECT {COLUMNS} FROM flow_run WHERE org_id = $1 AND id = $2 FOR UPDATE");
        let mut run = db::query_opt(&tx, &sql, &[&org.as_str(), &id.as_str()])
            .await?
            .map(|r| from_row(&r))
            .transpose()?
            .ok_or(StoreError::NotFound("flow run"))?;
        change(&mut run.data)?;
        run.data.due_at = run.data.due_at.map(db::ms);
        run.updated_at = db::now();
        db::execute(
            &tx,
            "UPDATE flow_run SET status = $1, state = $2, due_at = $3, updated_at = $4,
                 lease_owner = NULL, lease_until = NULL
             WHERE org_id = $5 AND id = $6",
            &[
                &run.data.status,
                &run.data.state,
                &run.data.due_at,
                &run.updated_at,
                &org.as_str(),
                &id.as_str(),
            ],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(run)
    }

    async fn release_flow_runs(&self, owner: &str) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "UPDATE flow_run SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            &[&owner],
        )
        .await?;
        Ok(())
    }

    async fn delete_ended_flow_runs_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "DELETE FROM flow_run WHERE id IN
                 (SELECT id FROM flow_run WHERE due_at IS NULL AND updated_at < $1 ORDER BY updated_at LIMIT $2
                  FOR UPDATE SKIP LOCKED)",
            &[&cutoff, &(limit as i64)],
        )
        .await?;
        Ok(n as usize)
    }
}
