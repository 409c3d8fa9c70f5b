//! Flows: definitions checked (`hookd_flow::Flow::parse`) and kept, and their runs
//! carried out step by step. Each step is planned without IO (`hookd_flow::plan`),
//! carried out here, recorded (`RunState::record`) and committed before the next one
//! starts, so a run outlives a crash: a restarted (or another) node claims it once
//! its lease runs out and goes on at the first step not committed. A data step's
//! write is committed in the same transaction as the step (`FlowWrite`), so it is
//! applied once; a published message carries the step's idempotency key as its
//! `eventId`, so a step tried again after a crash meets the message it already made.
//!
//! A run follows its flow's definition as it is when each step starts: a flow changed
//! while a run waits goes on with the new steps from the index it reached.
//!
//! An http step is sent with the deliveries' guarded client (`delivery_allow_networks`,
//! `delivery_https_only`, `delivery_timeout`, no redirects), carries the step's
//! idempotency key as `Idempotency-Key`, and is signed with Standard Webhooks
//! headers when it names a secret (`sign_with`).
//!
//! Email and SMS steps use a secret of the organisation (`service::secret`) and go
//! through the delivery network guard: an SMTP host whose every address is refused
//! is not connected to, and Twilio is reached with the guarded client. An email
//! carries the step's idempotency key as its `Message-ID`, the same on every try.
//!
//! Flows start from the triggers in `triggers` (each run committed with the event
//! that starts it), by hand (`start`), or from another flow's `flow.call` step (the
//! child run committed with the parent's step). A loop of `flow.call`s is refused when
//! a flow is saved, and runs that set each other off through data stop at
//! `hookd_flow::run::MAX_DEPTH`.
//!
//! A flow's `concurrency` limits how many of its runs are carried out at once over
//! all nodes: the store leases a run only while the flow is below it (a run counts
//! while its lease lives; a waiting run holds none), so the others wait, due, for a
//! place. A node carries out at most `flow_concurrency` runs at once. A flow's
//! `throttleRate` bounds how many of its runs are taken up per second over all nodes
//! (the store's shared throttle on PostgreSQL, the node's own on SQLite): a run past
//! it is put back, due when its turn comes.

pub mod triggers;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookd_core::id::{FlowId, FlowRunId, OrgId};
use hookd_flow::{Action, Effect, Flow, FlowError, Outcome, RunState, RunStatus, Trigger};
use hookd_sandbox::ScriptError;
use hookd_store::{
    DocumentWritten, FlowData, FlowNext, FlowRun, FlowRunData, FlowRunFilter, FlowRunSaved, FlowRunStep,
    FlowWrite, JobLease, ListQuery, Page, RunsFrom, ScoreSubmitted, StoreError, StoreResult, StoredFlow,
    Written,
};
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::http::error::{ApiError, ApiResult, ValidationItem};
use crate::service::Service;
use crate::service::data::DocumentOp;

/// How often the runner looks for runs that came due (delays and retries that ended,
/// runs of a node that died).
pub const POLL: Duration = Duration::from_millis(500);

/// How long `POST /flow/{id}/run` carries a run out itself before it answers with
/// the run as it stands; the runner goes on with it from there.
pub const INLINE_BUDGET: Duration = Duration::from_secs(10);

/// Largest output one step may add to its run (JSON text), so a run's state stays
/// small enough to commit after every step.
pub const MAX_STEP_OUTPUT_BYTES: usize = 256 * 1024;

/// A definition error as the API's 422: the JSON pointer as the `loc` under `body`.
fn definition_error(e: FlowError) -> ApiError {
    let mut loc = vec!["body".to_owned()];
    loc.extend(
        e.pointer
            .split('/')
            .skip(1)
            .map(|segment| segment.replace("~1", "/").replace("~0", "~")),
    );
    ApiError::Validation(vec![ValidationItem {
        loc,
        msg: e.message,
        kind: "value_error".into(),
    }])
}

/// A name the API could not find, as a 422 at `loc`.
fn unknown(loc: &[&str], what: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::invalid(loc, format!("there is no {what}")),
        e => e.into(),
    }
}

/// The key `FlowStore::flows_for_trigger` finds a flow's trigger by, with the
/// applications, sources, collections, boards and modes it names resolved (and
/// checked to exist).
async fn trigger_key(state: &Service, org: &OrgId, trigger: &Trigger) -> ApiResult<String> {
    use crate::service::message::app_id;
    let app = |key: &str| {
        let key = key.to_owned();
        async move {
            app_id(state, org, &key).await.map_err(|e| match e {
                ApiError::NotFound(_) => ApiError::invalid(
                    &["body", "trigger", "app"],
                    format!("there is no application {key:?}"),
                ),
                e => e,
            })
        }
    };
    let definition = |app: hookd_core::id::ApplicationId,
                      kind: hookd_store::DefinitionKind,
                      name: String,
                      field: &'static str| async move {
        state
            .store
            .get_definition(org, &app, kind, &name)
            .await
            .map_err(|e| {
                unknown(
                    &["body", "trigger", field],
                    &format!("{field} {name:?} in the application"),
                    e,
                )
            })
    };
    Ok(match trigger {
        Trigger::Manual => triggers::MANUAL.to_owned(),
        Trigger::Cron { .. } => triggers::CRON.to_owned(),
        Trigger::SourceRequest { source } => {
            let found = state.store.get_source(org, source).await;
            let s = found
                .map_err(|e| unknown(&["body", "trigger", "source"], &format!("source {source:?}"), e))?;
            triggers::source_key(&s.id)
        }
        Trigger::MessageCreated { app: key, .. } => triggers::message_key(&app(key).await?),
        Trigger::DocumentChanged {
            app: key, collection, ..
        } => {
            let app = app(key).await?;
            definition(
                app.clone(),
                hookd_store::DefinitionKind::Collection,
                collection.to_string(),
                "collection",
            )
            .await?;
            triggers::document_key(&app, collection)
        }
        Trigger::LeaderboardSubmitted {
            app: key,
            leaderboard,
        } => {
            let app = app(key).await?;
            definition(
                app.clone(),
                hookd_store::DefinitionKind::Leaderboard,
                leaderboard.to_string(),
                "leaderboard",
            )
            .await?;
            triggers::score_key(&app, leaderboard)
        }
        // A mode is bound per method; the flow listens to the mode by name, whatever
        // its methods (a mode of operation `flow.run` may be made before or after).
        Trigger::Mode { app: key, mode } => triggers::mode_key(&app(key).await?, mode),
    })
}

/// Refuses a flow whose `flow.call`s, with the organisation's other flows, would
/// make a loop (`calls` may name flows by id or name; a callee that does not exist is
/// refused at its step).
async fn check_calls(state: &Service, org: &OrgId, id: Option<&FlowId>, flow: &Flow) -> ApiResult<()> {
    if flow.calls().next().is_none() {
        return Ok(());
    }
    // Every flow of the organisation, by id, with its callees' ids.
    let mut flows: Vec<(FlowId, String, Vec<String>)> = Vec::new();
    let mut query = ListQuery {
        limit: 250,
        ..ListQuery::default()
    };
    loop {
        let page = state.store.list_flows(org, &query).await?;
        for f in &page.items {
            if Some(&f.id) == id {
                continue;
            }
            let calls = Flow::parse(&f.data.document)
                .map(|p| p.calls().map(str::to_owned).collect())
                .unwrap_or_default();
            flows.push((f.id.clone(), f.data.name.to_string(), calls));
        }
        match page.items.last().filter(|_| page.has_more) {
            Some(last) => {
                query.cursor = Some(hookd_store::Cursor {
                    key: last.id.to_string(),
                    backward: false,
                })
            }
            None => break,
        }
    }
    const SELF: &str = "(this flow)";
    let me = id.map_or(SELF.to_owned(), |i| i.to_string());
    let resolve = |key: &str| -> Option<String> {
        if key == flow.name.as_str() || id.is_some_and(|i| i.as_str() == key) {
            return Some(me.clone());
        }
        flows
            .iter()
            .find(|(fid, name, _)| fid.as_str() == key || name == key)
            .map(|(fid, _, _)| fid.to_string())
    };
    for (i, callee) in flow.calls().enumerate() {
        if resolve(callee).is_none() {
            let step = flow
                .steps
                .iter()
                .position(|s| matches!(&s.action, Action::FlowCall { flow, .. } if flow == callee))
                .unwrap_or(i);
            return Err(ApiError::invalid(
                &["body", "steps", &step.to_string(), "flow"],
                format!("there is no flow {callee:?}"),
            ));
        }
    }
    let mut graph: std::collections::BTreeMap<String, Vec<String>> = flows
        .iter()
        .map(|(fid, _, calls)| (fid.to_string(), calls.iter().filter_map(|c| resolve(c)).collect()))
        .collect();
    graph.insert(me.clone(), flow.calls().filter_map(resolve).collect());
    // Only what this flow reaches: a loop there would run whenever it runs.
    let mut reached = std::collections::BTreeSet::from([me.clone()]);
    let mut todo = vec![me.clone()];
    while let Some(node) = todo.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if reached.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    let borrowed: std::collections::BTreeMap<&str, Vec<&str>> = graph
        .iter()
        .filter(|(k, _)| reached.contains(*k))
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect();
    if let Some(cycle) = hookd_flow::definition::find_call_cycle(&borrowed) {
        let names: Vec<String> = cycle
            .iter()
            .map(|c| {
                if *c == me {
                    flow.name.to_string()
                } else {
                    flows
                        .iter()
                        .find(|(fid, _, _)| fid.as_str() == *c)
                        .map_or((*c).to_owned(), |(_, n, _)| n.clone())
                }
            })
            .collect();
        return Err(ApiError::invalid(
            &["body", "steps"],
            format!("flow.call would make a loop: {}", names.join(" → ")),
        ));
    }
    Ok(())
}

/// Checks a definition and answers what is stored of it.
pub async fn check(
    state: &Service,
    org: &OrgId,
    id: Option<&FlowId>,
    document: Value,
) -> ApiResult<FlowData> {
    let flow = Flow::parse(&document).map_err(definition_error)?;
    check_calls(state, org, id, &flow).await?;
    Ok(FlowData {
        name: flow.name.clone(),
        enabled: flow.enabled,
        trigger: trigger_key(state, org, &flow.trigger).await?,
        concurrency: flow.concurrency,
        document,
    })
}

/// After a flow changed: this node's trigger lookups are dropped, and the cron
/// scheduler looks again at when its next firing is due.
fn changed(state: &Service) {
    state.lookups.flows.clear();
    state.lookups.flow_definitions.clear();
    state.wake_cron();
}

pub async fn create(state: &Service, org: &OrgId, document: Value) -> ApiResult<StoredFlow> {
    let data = check(state, org, None, document).await?;
    let created = state.store.create_flow(org, data).await?;
    changed(state);
    Ok(created)
}

/// Replaces the definition of flow `key` (its id or name).
pub async fn replace(state: &Service, org: &OrgId, key: &str, document: Value) -> ApiResult<StoredFlow> {
    // PUT creates nothing: the flow must exist (its id keeps its own calls apart).
    let id = state.store.get_flow(org, key).await?.id;
    let data = check(state, org, Some(&id), document).await?;
    let replaced = state
        .store
        .update_flow(
            org,
            key,
            Box::new(move |current| {
                *current = data;
                Ok(())
            }),
        )
        .await?;
    changed(state);
    Ok(replaced)
}

/// Applies a JSON merge patch (RFC 7386) to the definition of flow `key`; the result
/// is checked as a new definition.
pub async fn patch(state: &Service, org: &OrgId, key: &str, patch: Value) -> ApiResult<StoredFlow> {
    if !patch.is_object() {
        return Err(ApiError::invalid(&["body"], "a merge patch is a JSON object"));
    }
    let current = state.store.get_flow(org, key).await?;
    let mut document = current.data.document.clone();
    hookd_core::data::merge_patch(&mut document, &patch);
    let data = check(state, org, Some(&current.id), document).await?;
    let seen = current.updated_at;
    let patched = state
        .store
        .update_flow(
            org,
            current.id.as_str(),
            Box::new(move |now| {
                // Changed by another call since it was read: its change is not lost.
                if now.document != current.data.document {
                    return Err(StoreError::Precondition(format!(
                        "the flow changed since {seen}; read it again and patch that"
                    )));
                }
                *now = data;
                Ok(())
            }),
        )
        .await?;
    changed(state);
    Ok(patched)
}

pub async fn delete(state: &Service, org: &OrgId, key: &str) -> ApiResult<()> {
    state.store.delete_flow(org, key).await?;
    changed(state);
    Ok(())
}

/// The stored form of a run's state.
pub(crate) fn stored(run: &RunState) -> FlowRunData {
    FlowRunData {
        status: run.status.as_str().to_owned(),
        state: serde_json::to_value(run).unwrap_or(Value::Null),
        due_at: if run.status.is_final() {
            None
        } else {
            Some(run.wake_at.unwrap_or_else(Utc::now))
        },
    }
}

/// A run's state as stored; a state this version cannot read is an error naming the run.
pub fn run_state(run: &FlowRun) -> ApiResult<RunState> {
    RunState::deserialize(&run.data.state).map_err(|e| {
        tracing::error!(run = %run.id, error = %e, "a flow run's state is unreadable");
        ApiError::Internal
    })
}

/// The runs a request received on `source` starts: one per enabled flow listening to
/// the source, each seeing the request as `trigger` (`{source, requestId,
/// receivedAt, method, body, headers, query, path}`). They are committed with the
/// request (only if it is accepted and not a duplicate) and woken after it.
pub async fn runs_for_request(
    state: &Service,
    org: &OrgId,
    source: &hookd_store::Source,
    request: &hookd_store::NewIngestRequest,
) -> StoreResult<Vec<hookd_store::NewFlowRun>> {
    let listeners = triggers::listeners(state, org, triggers::source_key(&source.id)).await?;
    if listeners.is_empty() {
        return Ok(Vec::new());
    }
    let values = hookd_core::filter::RequestValues::new(
        &request.path,
        &request.query,
        request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &request.body,
    );
    let mut trigger = values.into_json(&request.body);
    if let Value::Object(fields) = &mut trigger {
        fields.insert("source".into(), json!(source.id));
        fields.insert("requestId".into(), json!(request.id));
        fields.insert("receivedAt".into(), json!(request.received_at));
        fields.insert("method".into(), json!(request.method));
    }
    let flows: Vec<FlowId> = listeners.iter().map(|l| l.id.clone()).collect();
    Ok(triggers::new_runs(&flows, trigger, 0))
}

/// Wakes the flow runner after runs were committed elsewhere (with a received request).
pub(crate) fn wake(state: &Service) {
    state.flows_wake.notify_one();
}

/// Starts a run of flow `key` with `input` as its trigger data and carries it out
/// here until it ends, waits or [`INLINE_BUDGET`] is spent; answers the run as it
/// stands (the runner goes on with one that has not ended).
pub async fn start(state: &Service, org: &OrgId, key: &str, input: Value) -> ApiResult<FlowRun> {
    let flow = state.store.get_flow(org, key).await?;
    if !flow.data.enabled {
        return Err(ApiError::Conflict(format!(
            "flow {} is disabled; enable it to run it",
            flow.data.name
        )));
    }
    let run = RunState::new(input, 0).map_err(|e| ApiError::invalid(&["body"], e))?;
    let owner = state.config.node_id();
    let now = Utc::now();
    let lease = JobLease {
        owner: owner.clone(),
        until: now + crate::service::jobs::lease_span(state),
    };
    let created = state
        .store
        .create_flow_run(org, &flow.id, stored(&run), now, Some(lease))
        .await?;
    let id = created.id.clone();
    if created.lease_owner.as_deref() == Some(owner.as_str()) {
        drive(
            state,
            created,
            &owner,
            Some(tokio::time::Instant::now() + INLINE_BUDGET),
        )
        .await?;
    } else {
        // The flow is at its concurrency: the run waits, due, for a runner.
        state.flows_wake.notify_one();
    }
    Ok(state.store.get_flow_run(org, &id).await?)
}

/// What a mode of operation `flow.run` answers: the status and JSON body.
#[derive(Debug)]
pub struct ModeAnswer {
    pub status: u16,
    pub body: Value,
}

/// Runs the flows listening to mode `mode` of `app` with `trigger` as their input,
/// each carried out here until it ends, waits or [`INLINE_BUDGET`] is spent, then
/// answers for the poster:
/// - a run that ended `invalid`: 422 with each validation error;
/// - a run that ended `failed`: 502 naming the flow, the step and the run (not the
///   error, which may name the organisation's servers);
/// - otherwise the `response` of the first (oldest) flow that declares one, rendered
///   with that run's data, or 202 with the runs (id, flow, status) when none does or
///   it cannot render yet (it names a step still to run).
pub async fn run_for_mode(
    state: &Service,
    org: &OrgId,
    app: &hookd_core::id::ApplicationId,
    mode: &hookd_core::name::DataName,
    trigger: Value,
) -> ApiResult<ModeAnswer> {
    let listeners = triggers::listeners(state, org, triggers::mode_key(app, mode)).await?;
    if listeners.is_empty() {
        return Err(ApiError::NotFound(format!(
            "no enabled flow runs for the mode {mode}"
        )));
    }
    let run = RunState::new(trigger, 0).map_err(|e| ApiError::invalid(&["body"], e))?;
    let owner = state.config.node_id();
    let deadline = tokio::time::Instant::now() + INLINE_BUDGET;
    let mut runs = Vec::with_capacity(listeners.len());
    for listener in listeners.iter() {
        let now = Utc::now();
        let lease = JobLease {
            owner: owner.clone(),
            until: now + crate::service::jobs::lease_span(state),
        };
        match state
            .store
            .create_flow_run(org, &listener.id, stored(&run), now, Some(lease))
            .await
        {
            Ok(created) => runs.push(created),
            // Deleted or disabled since the lookup.
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    for created in &runs {
        if created.lease_owner.as_deref() == Some(owner.as_str()) {
            drive(state, created.clone(), &owner, Some(deadline)).await?;
        } else {
            // At the flow's concurrency: it waits, due, for a runner (answered 202).
            state.flows_wake.notify_one();
        }
    }
    let mut ended = Vec::with_capacity(runs.len());
    for created in &runs {
        let run = state.store.get_flow_run(org, &created.id).await?;
        let run_state = run_state(&run)?;
        ended.push((run, run_state));
    }
    for (run, current) in &ended {
        // The definition the runner just used (remembered), not another read.
        let flow = known_flow(state, run).await?;
        match current.status {
            RunStatus::Invalid => {
                let errors = current
                    .steps
                    .last()
                    .and_then(|s| s.output.as_ref())
                    .and_then(|o| o.get("errors"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let items = errors
                    .iter()
                    .map(|e| ValidationItem {
                        loc: vec!["body".into()],
                        msg: e.as_str().map_or_else(|| e.to_string(), str::to_owned),
                        kind: "value_error".into(),
                    })
                    .collect();
                return Err(ApiError::Validation(items));
            }
            RunStatus::Failed => {
                let step = current.steps.last().map_or("", |s| s.name.as_str());
                return Err(ApiError::BadGateway(format!(
                    "flow {} failed at step {step:?} (run {})",
                    flow.stored.data.name, run.id
                )));
            }
            _ => {}
        }
    }
    for (run, current) in &ended {
        let known = known_flow(state, run).await?;
        let Ok(flow) = &known.parsed else {
            continue;
        };
        let Some(response) = &flow.response else {
            continue;
        };
        let data = current.data(run.id.as_str(), flow);
        let body = match &response.body {
            None => Ok(Value::Null),
            Some(body) => body.render(&data),
        };
        match body {
            Ok(body) => {
                return Ok(ModeAnswer {
                    status: response.status,
                    body,
                });
            }
            Err(e) => {
                tracing::info!(run = %run.id, error = %e, "a mode's response could not render yet; answering 202");
                break;
            }
        }
    }
    let listed: Vec<Value> = ended
        .iter()
        .map(|(run, current)| json!({"id": run.id, "flowId": run.flow_id, "status": current.status.as_str()}))
        .collect();
    Ok(ModeAnswer {
        status: 202,
        body: json!({"runs": listed}),
    })
}

pub async fn get_run(state: &Service, org: &OrgId, id: &FlowRunId) -> ApiResult<FlowRun> {
    Ok(state.store.get_flow_run(org, id).await?)
}

/// Which runs the run log shows.
#[derive(Debug, Clone, Default)]
pub struct RunQuery {
    /// A flow's id or name.
    pub flow: Option<String>,
    pub status: Option<RunStatus>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

pub async fn list_runs(
    state: &Service,
    org: &OrgId,
    query: &ListQuery,
    filter: &RunQuery,
) -> ApiResult<Page<FlowRun>> {
    let flow = match &filter.flow {
        Some(key) => Some(state.store.get_flow(org, key).await?.id),
        None => None,
    };
    let filter = FlowRunFilter {
        flow,
        status: filter.status.map(|s| s.as_str().to_owned()),
        before: filter.before,
        after: filter.after,
    };
    Ok(state.store.list_flow_runs(org, query, &filter).await?)
}

/// Changes a run's state from outside its lease with `change`, which refuses (a
/// conflict) what does not apply to the run as it is.
async fn change_run(
    state: &Service,
    org: &OrgId,
    id: &FlowRunId,
    change: impl FnOnce(&mut RunState) -> Result<(), String> + Send + 'static,
) -> ApiResult<FlowRun> {
    let run = state
        .store
        .update_flow_run(
            org,
            id,
            Box::new(move |data| {
                let mut run: RunState = RunState::deserialize(&data.state).map_err(StoreError::internal)?;
                change(&mut run).map_err(StoreError::Conflict)?;
                *data = stored(&run);
                Ok(())
            }),
        )
        .await?;
    if run.data.due_at.is_some() {
        state.flows_wake.notify_one();
    }
    Ok(run)
}

/// Cancels a run that has not ended (one that is waiting, or retrying a step).
pub async fn cancel(state: &Service, org: &OrgId, id: &FlowRunId) -> ApiResult<FlowRun> {
    let canceled = change_run(state, org, id, |run| {
        if run.cancel() {
            Ok(())
        } else {
            Err(format!("the run has ended ({})", run.status.as_str()))
        }
    })
    .await?;
    count_ended(state, RunStatus::Canceled);
    Ok(canceled)
}

/// Runs an ended run again, from its first step or from the step named `from`
/// (every record from there on is dropped); the runner takes it at once.
pub async fn rerun(state: &Service, org: &OrgId, id: &FlowRunId, from: Option<String>) -> ApiResult<FlowRun> {
    let run = state.store.get_flow_run(org, id).await?;
    let index = match &from {
        None => 0,
        Some(name) => run_state(&run)?
            .steps
            .iter()
            .position(|s| &s.name == name)
            .ok_or_else(|| {
                ApiError::invalid(
                    &["body", "fromStep"],
                    format!("the run has no step {name:?} (a step it ran)"),
                )
            })?,
    };
    change_run(state, org, id, move |run| {
        if !run.status.is_final() {
            return Err(format!(
                "the run has not ended ({}); cancel it first",
                run.status.as_str()
            ));
        }
        run.rerun_from(index);
        Ok(())
    })
    .await
}

/// Runs every flow run that is due now, each until it ends, waits or loses its
/// lease, up to `flow_concurrency` at once; answers how many were taken. Tests call
/// it directly; `ops::flows` in a loop.
pub async fn run_pending(state: &Service) -> StoreResult<usize> {
    run_due(state, None).await
}

/// [`run_pending`] that stops claiming once `stop` says so, and returns when the
/// runs under way have ended or waited (the runner's shutdown).
pub(crate) async fn run_due(
    state: &Service,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
) -> StoreResult<usize> {
    let stopping = || stop.is_some_and(|s| *s.borrow());
    let owner = state.config.node_id();
    let limit = state.config.flow_concurrency.max(1);
    let mut running = tokio::task::JoinSet::new();
    let mut ran = 0;
    let mut failure = None;
    loop {
        // Claim while there is room and something is due.
        let mut claimed_any = false;
        // Claimed in batches (one commit each): when a quarter of the room is free,
        // or nothing is under way.
        let room = limit.saturating_sub(running.len());
        let worth_it = running.is_empty() || room >= limit.div_ceil(4);
        if worth_it && failure.is_none() && !stopping() {
            let now = Utc::now();
            let until = now + crate::service::jobs::lease_span(state);
            match state.store.claim_flow_runs(now, until, &owner, room).await {
                Ok(runs) => {
                    claimed_any = !runs.is_empty();
                    ran += runs.len();
                    for run in runs {
                        let (state, owner) = (state.clone(), owner.clone());
                        running.spawn(async move { drive(&state, run, &owner, None).await });
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        if running.is_empty() {
            if claimed_any {
                continue;
            }
            break;
        }
        // Runs under way: wait for one to end, for new work (a run made due on this
        // node), or for the poll (delays and retries that came due).
        let ended = tokio::select! {
            ended = running.join_next() => ended,
            () = state.flows_wake.notified() => None,
            () = tokio::time::sleep(POLL) => None,
        };
        // That one, and every other that has ended meanwhile.
        let mut ended = ended;
        loop {
            match ended {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => failure = failure.or(Some(e)),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "a flow run's task ended abnormally; its lease will expire")
                }
                None => break,
            }
            ended = running.try_join_next();
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(ran),
    }
}

/// The wake-up the flow runner waits on (a run was made due on this node).
pub(crate) fn signal(state: &Service) -> Arc<tokio::sync::Notify> {
    Arc::clone(&state.flows_wake)
}

/// What carrying a step out came to: its outcome, or a data write to commit with it.
enum Carried {
    Outcome(Outcome),
    Write(PendingWrite),
}

/// A step's write, committed with the step (`FlowWrite`); `output` makes the step's
/// output of what the write did.
struct PendingWrite {
    write: PendingKind,
    output: Box<dyn Fn(&Written) -> Value + Send + Sync>,
}

enum PendingKind {
    Document {
        app: hookd_core::id::ApplicationId,
        collection: hookd_core::name::DataName,
        key: hookd_core::name::ItemKey,
        op: DocumentOp,
        runs: RunsFrom<DocumentWritten>,
    },
    Score {
        app: hookd_core::id::ApplicationId,
        board: hookd_core::name::DataName,
        player: hookd_core::name::ItemKey,
        score: i64,
        runs: RunsFrom<ScoreSubmitted>,
    },
    Run {
        flow: FlowId,
        data: FlowRunData,
    },
}

/// A run whose flow cannot be read ends as failed with `error`.
fn end_unreadable(run: &mut RunState, error: String) {
    run.status = RunStatus::Failed;
    run.wake_at = None;
    run.error = Some(error);
}

/// Carries `run`, which `owner` holds, step by step until it ends, waits, loses its
/// lease, or (with a `deadline`) the time is spent, when it is handed to the runner.
async fn drive(
    state: &Service,
    run: FlowRun,
    owner: &str,
    deadline: Option<tokio::time::Instant>,
) -> StoreResult<()> {
    let known = match known_flow(state, &run).await {
        Ok(k) => k,
        // Deleted meanwhile: its runs went with it.
        Err(StoreError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    let stored_flow = &known.stored;
    let mut current = match RunState::deserialize(&run.data.state) {
        Ok(r) => r,
        Err(e) => {
            // Written by another version of hookd, or damaged: it ends, kept as it is.
            tracing::error!(run = %run.id, error = %e, "a flow run's state is unreadable; the run ends as failed");
            let step = FlowRunStep {
                next: FlowNext::State(FlowRunData {
                    status: RunStatus::Failed.as_str().to_owned(),
                    state: run.data.state.clone(),
                    due_at: None,
                }),
                now: Utc::now(),
                lease_until: None,
                urgent: deadline.is_some(),
            };
            if let FlowRunSaved::Saved(_) = state.store.save_flow_run(&run.id, owner, step).await? {
                count_ended(state, RunStatus::Failed);
                report_failure(
                    state,
                    &run,
                    stored_flow.data.name.as_str(),
                    None,
                    Some("the run's state is unreadable"),
                )
                .await;
            }
            return Ok(());
        }
    };
    let flow = match &known.parsed {
        Ok(f) => Arc::clone(f),
        Err(e) => {
            end_unreadable(
                &mut current,
                format!("the flow's definition no longer checks: {e}"),
            );
            let step = FlowRunStep {
                next: FlowNext::State(stored(&current)),
                now: Utc::now(),
                lease_until: None,
                urgent: deadline.is_some(),
            };
            if let FlowRunSaved::Saved(_) = state.store.save_flow_run(&run.id, owner, step).await? {
                count_ended(state, RunStatus::Failed);
                let name = stored_flow.data.name.as_str();
                report_failure(state, &run, name, None, current.error.as_deref()).await;
            }
            return Ok(());
        }
    };
    // A flow with a throttleRate: a run taken up past the rate is put back, due when
    // its turn comes.
    if let Some(rate) = flow.throttle_rate
        && current.is_due(Utc::now())
        && let Some(wait) = throttle_wait(state, &run.flow_id, rate).await
    {
        let now = Utc::now();
        current.wake_at = Some(now + crate::config::span(wait));
        let step = FlowRunStep {
            next: FlowNext::State(stored(&current)),
            now,
            lease_until: None,
            urgent: deadline.is_some(),
        };
        state.store.save_flow_run(&run.id, owner, step).await?;
        return Ok(());
    }
    let mut uncommitted_since = std::time::Instant::now();
    loop {
        let started = Utc::now();
        if !current.is_due(started) {
            return Ok(());
        }
        let Carrying {
            input,
            inward,
            carried,
        } = carry_out(state, &run, &flow, &current).await;
        let now = Utc::now();
        // The state moves on in place: a save that fails ends this drive, and the run
        // is taken up again from what was committed.
        let saved = match carried {
            Carried::Outcome(outcome) => {
                current.record(&flow, outcome, input, started, now);
                // A step that acted on nothing outside the run (a condition that held,
                // a validation, a transform, a skipped step) is committed with the next
                // step that does, or when the run ends or waits: run again after a
                // crash, it does what it did, and nobody saw the first time.
                let goes_on = current.status == RunStatus::Running && current.is_due(now);
                let in_time = deadline.is_none_or(|d| tokio::time::Instant::now() < d)
                    && uncommitted_since.elapsed() < MAX_UNCOMMITTED;
                if inward && goes_on && in_time {
                    continue;
                }
                save(state, &run.id, owner, &current, deadline, now).await?
            }
            Carried::Write(write) => {
                let step = Started {
                    input: input.clone(),
                    at: started,
                };
                match save_write(state, &run, owner, &flow, &current, write, step, deadline).await {
                    Ok((state_after, saved)) => {
                        current = state_after;
                        saved
                    }
                    Err(outcome) => {
                        current.record(&flow, outcome, input, started, now);
                        save(state, &run.id, owner, &current, deadline, now).await?
                    }
                }
            }
        };
        if !saved {
            tracing::warn!(run = %run.id, "a flow run's lease was lost; its new holder goes on with it");
            return Ok(());
        }
        uncommitted_since = std::time::Instant::now();
        if current.status.is_final() {
            count_ended(state, current.status);
        }
        if current.status == RunStatus::Failed {
            let step = current.steps.last().map(|s| s.name.as_str());
            report_failure(state, &run, flow.name.as_str(), step, current.error.as_deref()).await;
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            state.flows_wake.notify_one();
            return Ok(());
        }
    }
}

/// How long a run of `flow` must wait for its turn under `rate`, if at all: from the
/// throttle every node shares when the store keeps one, else from this node's.
async fn throttle_wait(
    state: &Service,
    flow: &FlowId,
    rate: hookd_core::throttle::ThrottleRate,
) -> Option<Duration> {
    if state.store.shares_throttle() {
        return match state.store.flow_throttle_take(flow, rate, Utc::now()).await {
            Ok(wait) => wait,
            Err(e) => {
                // Held back rather than let through: the limit is the user's promise
                // to whatever the flow calls.
                tracing::warn!(flow = %flow, error = %e, "the shared flow throttle is unavailable; holding the run back");
                Some(Duration::from_secs(1))
            }
        };
    }
    let now = std::time::Instant::now();
    let mut buckets = state
        .flow_throttle
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    buckets.prune(now);
    buckets.take(flow, u32::from(rate.get()), now).err()
}

/// Counts a run this node ended (`hookd_flow_runs_ended`).
fn count_ended(state: &Service, status: RunStatus) {
    let labels = crate::service::metrics::FlowRunLabels {
        status: status.as_str(),
    };
    state.metrics.server.flow_runs_ended.get_or_create(&labels).inc();
}

/// Logs a run that ended failed and sends `flow.run.failed` to the organisation's
/// operational endpoints; every way a run can end failed comes through here.
async fn report_failure(
    state: &Service,
    run: &FlowRun,
    flow_name: &str,
    step: Option<&str>,
    error: Option<&str>,
) {
    let error = error.unwrap_or("failed");
    tracing::warn!(run = %run.id, flow = %flow_name, error = %error, "a flow run failed");
    let event = hookd_dispatch::events::OperationalEvent::flow_run_failed(
        run.flow_id.as_str(),
        flow_name,
        run.id.as_str(),
        step,
        error,
    );
    crate::service::events::emit(state, &run.org_id, event).await;
}

/// Whether `owner` keeps the run after a step: only when its next step is due now
/// and no deadline has passed.
fn keep_lease(
    state: &Service,
    run: &RunState,
    deadline: Option<tokio::time::Instant>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    lease_while(state, run.is_due(now), deadline, now)
}

/// The lease to keep when the run's next step is due now (`due`) and no deadline
/// has passed.
fn lease_while(
    state: &Service,
    due: bool,
    deadline: Option<tokio::time::Instant>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let spent = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
    (due && !spent).then(|| now + crate::service::jobs::lease_span(state))
}

/// Commits `next` as the run's state; `false` if `owner` no longer holds the run.
async fn save(
    state: &Service,
    id: &FlowRunId,
    owner: &str,
    next: &RunState,
    deadline: Option<tokio::time::Instant>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let step = FlowRunStep {
        next: FlowNext::State(stored(next)),
        now,
        lease_until: keep_lease(state, next, deadline, now),
        urgent: deadline.is_some(),
    };
    Ok(matches!(
        state.store.save_flow_run(id, owner, step).await?,
        FlowRunSaved::Saved(_)
    ))
}

/// A step as it started: what it acts on, and when.
struct Started {
    input: Option<Value>,
    at: DateTime<Utc>,
}

/// What a data step's output says of its write.
fn written_output(key: &str, written: &DocumentWritten) -> Value {
    json!({
        "key": key,
        "created": written.before.is_none() && written.after.is_some(),
        "deleted": written.before.is_some() && written.after.is_none(),
        "version": written.after.as_ref().map(|d| d.version),
        "document": written.after.as_ref().map(|d| d.body.clone()),
    })
}

/// Commits a step's write with the run's state it leads to. `Err` is the step's
/// outcome when the write could not be made (refused, or a passing fault), which the
/// caller records and commits instead.
#[allow(clippy::too_many_arguments)]
async fn save_write(
    state: &Service,
    run: &FlowRun,
    owner: &str,
    flow: &Arc<Flow>,
    current: &RunState,
    pending: PendingWrite,
    step: Started,
    deadline: Option<tokio::time::Instant>,
) -> Result<(RunState, bool), Outcome> {
    let Started { input, at: started } = step;
    let data_write = !matches!(pending.write, PendingKind::Run { .. });
    if data_write && let Err(e) = state.meter.check(state.store.as_ref(), &run.org_id, true).await {
        return Err(Outcome::Failed(e.to_string()));
    }
    let now = Utc::now();
    // The state the write leads to is made by the store, in the write's transaction
    // (`then`), and handed back through `made` rather than made twice.
    let made = Arc::new(std::sync::OnceLock::new());
    let then: hookd_store::AfterWrite = {
        let (flow, made, output) = (Arc::clone(flow), Arc::clone(&made), pending.output);
        let mut next = current.clone();
        Box::new(move |written: &Written| {
            next.record(&flow, Outcome::Done(output(written)), input, started, now);
            let data = stored(&next);
            let _ = made.set(next);
            data
        })
    };
    // The lease is decided on the state the write leads to: a step done, so the run
    // goes on now unless this was its last step (a write never ends a wait).
    let goes_on = current.next + 1 < flow.steps.len();
    let lease_until = lease_while(state, goes_on, deadline, now);
    let write = match pending.write {
        PendingKind::Document {
            app,
            collection,
            key,
            op,
            runs,
        } => FlowWrite::Document {
            app,
            collection,
            key,
            edit: op.edit(None, Arc::clone(&state.schemas)),
            event_retain_until: crate::service::message::default_retain_until(),
            runs,
            then,
        },
        PendingKind::Score {
            app,
            board,
            player,
            score,
            runs,
        } => FlowWrite::Score {
            app,
            board,
            player,
            score,
            runs,
            then,
        },
        PendingKind::Run { flow, data } => FlowWrite::StartRun { flow, data, then },
    };
    let step = FlowRunStep {
        next: FlowNext::Write(write),
        now,
        lease_until,
        urgent: deadline.is_some(),
    };
    match state.store.save_flow_run(&run.id, owner, step).await {
        Ok(FlowRunSaved::Saved(written)) => {
            if data_write {
                state.meter.record(&run.org_id, true);
            }
            let Some(written) = written else {
                return Err(Outcome::Failed("the store answered no write".into()));
            };
            if matches!(&written, Written::Document(w) if w.event_deliveries > 0) {
                state.wake_dispatcher();
            }
            // A child run, or runs the write started, wait for the runner.
            state.flows_wake.notify_one();
            // `then` ran in the store and is gone, so `made` is this task's alone.
            let next = Arc::try_unwrap(made)
                .ok()
                .and_then(std::sync::OnceLock::into_inner);
            let Some(next) = next else {
                // Never expected: the run goes on from what was committed, once its
                // lease runs out.
                tracing::error!(run = %run.id, "the store committed a step without making the run's next state");
                return Ok((current.clone(), false));
            };
            Ok((next, true))
        }
        Ok(FlowRunSaved::NotHeld) => Ok((current.clone(), false)),
        Err(StoreError::NotFound(what)) => Err(Outcome::Failed(format!("{what} not found"))),
        Err(e) => Err(failed_or_retry(state, current, e.to_string(), passing(&e))),
    }
}

/// Whether a store error may pass (tried again on the retry schedule).
fn passing(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Unavailable(_) | StoreError::Damaged { .. } | StoreError::Internal(_)
    )
}

/// The outcome of a step that failed with `error`: tried again on the delivery retry
/// schedule when the fault may pass, until the schedule (or the run's
/// `MAX_ATTEMPTS`) is spent.
fn failed_or_retry(state: &Service, run: &RunState, error: String, may_pass: bool) -> Outcome {
    if !may_pass {
        return Outcome::Failed(error);
    }
    let attempts = match run.steps.last() {
        Some(last) if last.status == hookd_flow::run::StepStatus::Retrying => last.attempts as usize + 1,
        _ => 1,
    };
    match state.config.retry_schedule.delay_after(attempts) {
        Some(delay) => Outcome::Retry {
            error,
            at: Utc::now() + crate::config::span(delay),
        },
        None => Outcome::Failed(format!("{error} (after {attempts} attempts)")),
    }
}

/// A flow's definition as a runner uses it: as stored, and parsed.
#[derive(Debug)]
pub struct KnownFlow {
    pub stored: StoredFlow,
    pub parsed: Result<Arc<Flow>, FlowError>,
}

/// The flow of `run`, remembered for a second (`service::cache`): a runner carrying
/// out thousands of runs of one flow reads and parses it once, and a change made on
/// another node reaches runs within a second (this node's own changes at once).
async fn known_flow(state: &Service, run: &FlowRun) -> StoreResult<Arc<KnownFlow>> {
    let key = (run.org_id.clone(), run.flow_id.clone());
    if let Some(known) = state.lookups.flow_definitions.get(&key) {
        return Ok(known);
    }
    let stored = state.store.get_flow(&run.org_id, run.flow_id.as_str()).await?;
    let parsed = Flow::parse(&stored.data.document).map(Arc::new);
    let known = Arc::new(KnownFlow { stored, parsed });
    state.lookups.flow_definitions.put(key, Arc::clone(&known));
    Ok(known)
}

/// What carrying a step out came to, with what it acted on (its input) and whether
/// it acted on nothing outside the run (see [`drive`]).
struct Carrying {
    input: Option<Value>,
    inward: bool,
    carried: Carried,
}

/// Carries out the run's next step.
async fn carry_out(state: &Service, run: &FlowRun, flow: &Flow, current: &RunState) -> Carrying {
    let ended = |carried| Carrying {
        input: None,
        inward: false,
        carried,
    };
    let Some(step) = flow.steps.get(current.next) else {
        // Nothing left (the flow lost steps while the run waited): the run ends.
        return ended(Carried::Outcome(Outcome::Skipped));
    };
    let data = current.data(run.id.as_str(), flow);
    let effect = match hookd_flow::plan(step, &data) {
        Ok(effect) => effect,
        Err(e) => return ended(Carried::Outcome(Outcome::Failed(e.to_string()))),
    };
    Carrying {
        input: effect.input(),
        inward: matches!(
            effect,
            Effect::Skip | Effect::Output(_) | Effect::Transform { .. }
        ),
        carried: carry_effect(state, run, current, step, effect).await,
    }
}

/// Most time a runner goes on without committing a run's inward steps (well inside
/// the lease, so another node never takes a run whose holder is still working on it).
const MAX_UNCOMMITTED: Duration = Duration::from_secs(2);

/// Carries out a planned step.
async fn carry_effect(
    state: &Service,
    run: &FlowRun,
    current: &RunState,
    step: &hookd_flow::Step,
    effect: Effect,
) -> Carried {
    let org = &run.org_id;
    let outcome = match effect {
        Effect::Skip => Outcome::Skipped,
        Effect::Stop => Outcome::Stopped,
        Effect::Output(v) => Outcome::Done(v),
        Effect::Invalid(errors) => Outcome::Invalid(errors),
        Effect::Delay(d) => Outcome::Wait {
            until: Utc::now() + crate::config::span(d),
        },
        Effect::Transform { code, input } => {
            let scope = format!("{}/{}", run.flow_id, step.name.as_str());
            match state.sandbox.call(Some(&scope), &code, "handler", &input).await {
                Ok(output) => bounded(output),
                Err(e @ ScriptError::Unavailable) => failed_or_retry(state, current, e.to_string(), true),
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }
        Effect::Document {
            op,
            app,
            collection,
            key,
            body,
        } => {
            let app = match crate::service::message::app_id(state, org, &app).await {
                Ok(id) => id,
                Err(e) => {
                    return Carried::Outcome(api_failure(
                        state,
                        current,
                        &e,
                        &format!("application {app:?}"),
                    ));
                }
            };
            let op = match op {
                hookd_flow::definition::DocumentOp::Put => DocumentOp::Put(body.unwrap_or(Value::Null)),
                hookd_flow::definition::DocumentOp::Patch => DocumentOp::Patch(body.unwrap_or(Value::Null)),
                hookd_flow::definition::DocumentOp::Increment => match body {
                    Some(Value::Object(deltas)) => DocumentOp::Increment(deltas),
                    _ => return Carried::Outcome(Outcome::Failed("by: an object of numbers to add".into())),
                },
                hookd_flow::definition::DocumentOp::Delete => DocumentOp::Delete,
            };
            let runs = match triggers::document_runs(state, org, &app, &collection, current.depth + 1).await {
                Ok(runs) => runs,
                Err(e) => {
                    return Carried::Outcome(failed_or_retry(state, current, e.to_string(), passing(&e)));
                }
            };
            let shown = key.as_str().to_owned();
            return Carried::Write(PendingWrite {
                write: PendingKind::Document {
                    app,
                    collection,
                    key,
                    op,
                    runs,
                },
                output: Box::new(move |written| match written {
                    Written::Document(w) => written_output(&shown, w),
                    _ => Value::Null,
                }),
            });
        }
        Effect::LeaderboardSubmit {
            app,
            leaderboard,
            player,
            score,
        } => {
            let app = match crate::service::message::app_id(state, org, &app).await {
                Ok(id) => id,
                Err(e) => {
                    return Carried::Outcome(api_failure(
                        state,
                        current,
                        &e,
                        &format!("application {app:?}"),
                    ));
                }
            };
            let runs =
                match triggers::score_runs(state, org, &app, &leaderboard, score, current.depth + 1).await {
                    Ok(runs) => runs,
                    Err(e) => {
                        return Carried::Outcome(failed_or_retry(state, current, e.to_string(), passing(&e)));
                    }
                };
            return Carried::Write(PendingWrite {
                write: PendingKind::Score {
                    app,
                    board: leaderboard,
                    player,
                    score,
                    runs,
                },
                output: Box::new(|written| match written {
                    Written::Score(s) => json!({
                        "player": s.entry.player,
                        "score": s.entry.score,
                        "rank": s.entry.rank,
                        "period": s.period,
                        "changed": s.changed,
                    }),
                    _ => Value::Null,
                }),
            });
        }
        Effect::Call { flow: callee, input } => {
            let child = match state.store.get_flow(org, &callee).await {
                Ok(f) => f,
                Err(StoreError::NotFound(_)) => {
                    return Carried::Outcome(Outcome::Failed(format!("there is no flow {callee:?}")));
                }
                Err(e) => {
                    return Carried::Outcome(failed_or_retry(state, current, e.to_string(), passing(&e)));
                }
            };
            if !child.data.enabled {
                return Carried::Outcome(Outcome::Failed(format!("flow {callee:?} is disabled")));
            }
            let data = match RunState::new(input, current.depth + 1) {
                Ok(run) => stored(&run),
                Err(why) => return Carried::Outcome(Outcome::Failed(why)),
            };
            let name = child.data.name.to_string();
            return Carried::Write(PendingWrite {
                write: PendingKind::Run { flow: child.id, data },
                output: Box::new(move |written| match written {
                    Written::Run(r) => json!({"runId": r.id, "flowId": r.flow_id, "flow": name}),
                    _ => Value::Null,
                }),
            });
        }
        Effect::Publish {
            app,
            event_type,
            payload,
            channels,
        } => publish(state, run, current, &app, event_type, payload, channels).await,
        Effect::Email {
            to,
            cc,
            subject,
            text,
            html,
            credentials,
        } => {
            let email = hookd_notify::email::Email {
                to,
                cc,
                subject,
                text,
                html,
                message_id: current.idempotency_key(run.id.as_str()),
            };
            send_email(state, run, current, &credentials, email).await
        }
        Effect::Sms {
            to,
            sender,
            body,
            credentials,
        } => {
            let sender = match sender {
                hookd_flow::plan::SmsTo::From(f) => hookd_notify::sms::Sender::From(f),
                hookd_flow::plan::SmsTo::MessagingService(m) => {
                    hookd_notify::sms::Sender::MessagingService(m)
                }
            };
            let sms = hookd_notify::sms::Sms { to, sender, body };
            send_sms(state, run, current, &credentials, sms).await
        }
        Effect::Http {
            method,
            url,
            headers,
            body,
            sign_with,
        } => {
            let request = HttpCall {
                method,
                url,
                headers,
                body,
                sign_with,
                key: current.idempotency_key(run.id.as_str()),
            };
            call_http(state, run, current, request).await
        }
    };
    Carried::Outcome(outcome)
}

/// A step's output, unless it is too large to keep in the run.
fn bounded(output: Value) -> Outcome {
    let size = serde_json::to_string(&output).map_or(usize::MAX, |s| s.len());
    if size > MAX_STEP_OUTPUT_BYTES {
        return Outcome::Failed(format!(
            "the step's output is {size} bytes; at most {MAX_STEP_OUTPUT_BYTES}"
        ));
    }
    Outcome::Done(output)
}

/// The outcome of a step whose call into the service failed: a 503 may pass, anything
/// else ends the step (`what` names what it was looking for).
fn api_failure(state: &Service, current: &RunState, e: &ApiError, what: &str) -> Outcome {
    match e {
        ApiError::NotFound(_) => Outcome::Failed(format!("{what} not found")),
        ApiError::Unavailable(m) => failed_or_retry(state, current, m.clone(), true),
        ApiError::Internal => failed_or_retry(state, current, "storage error".into(), true),
        other => Outcome::Failed(other.to_string()),
    }
}

/// `message.publish`: the step's idempotency key is the message's `eventId`, so a
/// step tried again (after a crash between the commit of the message and of the
/// step) finds the message it made instead of making another.
async fn publish(
    state: &Service,
    run: &FlowRun,
    current: &RunState,
    app: &str,
    event_type: hookd_core::name::EventTypeName,
    payload: Value,
    channels: std::collections::BTreeSet<hookd_core::name::ChannelName>,
) -> Outcome {
    let org = &run.org_id;
    let app_id = match crate::service::message::app_id(state, org, app).await {
        Ok(id) => id,
        Err(e) => return api_failure(state, current, &e, &format!("application {app:?}")),
    };
    let key = current.idempotency_key(run.id.as_str());
    let Ok(event_id) = key.parse() else {
        return Outcome::Failed(format!("{key:?} is not an event id"));
    };
    let mut message = crate::service::message::new_message(event_type, payload.to_string());
    message.event_id = Some(event_id);
    message.channels = (!channels.is_empty()).then_some(channels);
    match crate::service::message::accept_in_chain(state, org, &app_id, message, current.depth + 1).await {
        Ok((msg, deliveries)) => {
            Outcome::Done(json!({"messageId": msg.id, "eventId": key, "deliveries": deliveries}))
        }
        // Made by an earlier try of this step.
        Err(ApiError::Conflict(_)) => match state.store.get_message(org, &app_id, &key).await {
            Ok(msg) => Outcome::Done(json!({"messageId": msg.id, "eventId": key})),
            Err(e) => api_failure(state, current, &e.into(), "the message this step published"),
        },
        Err(e) => api_failure(state, current, &e, &format!("application {app:?}")),
    }
}

/// Flows' outbound HTTP (SMS through Twilio): the guarded client and the policy it
/// checks, built once.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    client: reqwest::Client,
    policy: Arc<hookd_core::network_policy::NetworkPolicy>,
}

impl Outbound {
    pub(crate) fn new(config: &crate::config::Config) -> Self {
        let policy = Arc::new(hookd_core::network_policy::NetworkPolicy::new(
            config.delivery_allow_networks.clone(),
        ));
        let proxy = (!config.delivery_proxy.is_empty()).then_some(config.delivery_proxy.as_str());
        let client =
            hookd_dispatch::sender::guarded_client(Arc::clone(&policy), config.delivery_timeout, proxy)
                .or_else(|e| {
                    // The proxy was checked with the configuration; without it the client
                    // is still guarded.
                    tracing::error!(error = %e, "the flows' HTTP client could not use delivery_proxy");
                    hookd_dispatch::sender::guarded_client(Arc::clone(&policy), config.delivery_timeout, None)
                })
                .unwrap_or_default();
        Self { client, policy }
    }
}

/// A secret's fields a step needs, or the step's outcome when it cannot have them.
async fn secret_fields<const N: usize>(
    state: &Service,
    run: &FlowRun,
    current: &RunState,
    name: &str,
    fields: [&str; N],
) -> Result<[String; N], Outcome> {
    let value = match crate::service::secret::open(state, &run.org_id, name).await {
        Ok(v) => v,
        Err(crate::service::secret::OpenFailure::Missing(why)) => return Err(Outcome::Failed(why)),
        Err(crate::service::secret::OpenFailure::Unavailable(why)) => {
            return Err(failed_or_retry(state, current, why, true));
        }
    };
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, field) in out.iter_mut().zip(fields) {
        match value.get(field).and_then(Value::as_str) {
            Some(v) if !v.is_empty() => *slot = v.to_owned(),
            _ => {
                return Err(Outcome::Failed(format!(
                    "secret {name:?} has no {field:?} (it needs {})",
                    fields.join(", ")
                )));
            }
        }
    }
    Ok(out)
}

/// The outcome of a notification that was not sent.
fn notify_failure(state: &Service, current: &RunState, e: hookd_notify::SendError) -> Outcome {
    let transient = e.is_transient();
    failed_or_retry(state, current, e.to_string(), transient)
}

/// Checks that the SMTP server of `url` may be reached under the network policy:
/// every address its host resolves to must be allowed. (The SMTP client resolves the
/// host again when it connects; a DNS answer that changes in between is not seen.)
async fn smtp_allowed(policy: &hookd_core::network_policy::NetworkPolicy, url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|_| "smtpUrl is not a URL".to_owned())?;
    let host = parsed
        .host_str()
        .ok_or_else(|| "smtpUrl has no host".to_owned())?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(25);
    let addresses: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("the SMTP host {host} did not resolve: {e}"))?
        .collect();
    if addresses.is_empty() {
        return Err(format!("the SMTP host {host} did not resolve"));
    }
    for a in &addresses {
        policy
            .check(a.ip())
            .map_err(|why| format!("refused by the delivery network policy: {host}: {why}"))?;
    }
    Ok(())
}

/// `email`: through the SMTP server of the secret `credentials` (`smtpUrl`, `from`),
/// with the step's idempotency key as its `Message-ID`.
async fn send_email(
    state: &Service,
    run: &FlowRun,
    current: &RunState,
    credentials: &str,
    email: hookd_notify::email::Email,
) -> Outcome {
    let [url, from] = match secret_fields(state, run, current, credentials, ["smtpUrl", "from"]).await {
        Ok(f) => f,
        Err(outcome) => return outcome,
    };
    if let Err(why) = smtp_allowed(&state.outbound.policy, &url).await {
        return Outcome::Failed(why);
    }
    let mailer = match hookd_notify::email::Mailer::new(&url, &from, state.config.delivery_timeout) {
        Ok(m) => m,
        // Never echoes the URL (it holds the password).
        Err(e) => return Outcome::Failed(format!("secret {credentials:?}: {e}")),
    };
    match mailer.send(&email).await {
        Ok(()) => Outcome::Done(json!({"messageId": email.message_id, "to": email.to, "cc": email.cc})),
        Err(e) => notify_failure(state, current, e),
    }
}

/// `sms`: through Twilio's Messages API with the secret `credentials`
/// (`accountSid`, `authToken`), at `twilio_base_url`.
async fn send_sms(
    state: &Service,
    run: &FlowRun,
    current: &RunState,
    credentials: &str,
    sms: hookd_notify::sms::Sms,
) -> Outcome {
    let [account_sid, auth_token] =
        match secret_fields(state, run, current, credentials, ["accountSid", "authToken"]).await {
            Ok(f) => f,
            Err(outcome) => return outcome,
        };
    let twilio = match hookd_notify::sms::Twilio::new(&state.config.twilio_base_url) {
        Ok(t) => t,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Ok(url) = url::Url::parse(&state.config.twilio_base_url)
        && let Err(why) = hookd_dispatch::guard::check_literal(&state.outbound.policy, &url)
    {
        return Outcome::Failed(why.to_string());
    }
    let account = hookd_notify::sms::TwilioAccount {
        account_sid,
        auth_token,
    };
    match twilio.send(&state.outbound.client, &account, &sms).await {
        Ok(sent) => Outcome::Done(json!({"sid": sent.sid, "status": sent.status, "to": sms.to})),
        Err(e) => notify_failure(state, current, e),
    }
}

/// Most of an http step's answer kept in its output (bytes of the body).
pub const MAX_HTTP_ANSWER_BYTES: usize = 64 * 1024;

/// An http step's request, rendered.
struct HttpCall {
    method: hookd_flow::definition::HttpMethod,
    url: hookd_core::endpoint_url::EndpointUrl,
    headers: std::collections::BTreeMap<String, String>,
    body: Option<String>,
    sign_with: Option<String>,
    key: String,
}

/// `http`: one try of the request. A 2xx is done (its status and body are the
/// output); a 429, a 5xx, a timeout or a connection that failed is tried again; a
/// refusal by the network guard, a redirect or another 4xx fails the step.
async fn call_http(state: &Service, run: &FlowRun, current: &RunState, call: HttpCall) -> Outcome {
    use hookd_flow::definition::HttpMethod;
    let url = call.url.as_url().clone();
    if state.config.delivery_https_only && url.scheme() != "https" {
        return Outcome::Failed("delivery_https_only is set: the URL must be https".into());
    }
    if let Err(why) = hookd_dispatch::guard::check_literal(&state.outbound.policy, &url) {
        return Outcome::Failed(why.to_string());
    }
    let method = match call.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let body = call.body.unwrap_or_default();
    let mut request = state.outbound.client.request(method, url).header(
        reqwest::header::USER_AGENT,
        concat!("hookd/", env!("CARGO_PKG_VERSION")),
    );
    // The step's own key, unless its headers name one.
    if !call
        .headers
        .keys()
        .any(|h| h.eq_ignore_ascii_case("idempotency-key"))
    {
        request = request.header("idempotency-key", &call.key);
    }
    for (name, value) in &call.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    if !body.is_empty() {
        request = request
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
    }
    if let Some(name) = &call.sign_with {
        let [secret] = match secret_fields(state, run, current, name, ["secret"]).await {
            Ok(f) => f,
            Err(outcome) => return outcome,
        };
        let secret: hookd_core::secret::EndpointSecret = match secret.parse() {
            Ok(s) => s,
            Err(_) => return Outcome::Failed(format!("secret {name:?}: \"secret\" is not a whsec_ key")),
        };
        let ts = Utc::now().timestamp();
        request = request
            .header("webhook-id", &call.key)
            .header("webhook-timestamp", ts.to_string())
            .header(
                "webhook-signature",
                hookd_core::signature::sign(&secret, &call.key, ts, body.as_bytes()),
            );
    }
    let mut response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            if let Some(refusal) = hookd_dispatch::guard::refusal_in(&e) {
                return Outcome::Failed(refusal);
            }
            let what = if e.is_timeout() {
                "timed out"
            } else {
                "could not connect"
            };
            return failed_or_retry(state, current, format!("the request {what}: {e}"), true);
        }
    };
    let status = response.status();
    let kept = hookd_dispatch::sender::read_prefix(&mut response, MAX_HTTP_ANSWER_BYTES).await;
    let answer = serde_json::from_slice::<Value>(&kept)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&kept).into_owned()));
    if status.is_success() {
        return bounded(json!({"status": status.as_u16(), "body": answer}));
    }
    let error = format!("the server answered {status}");
    if status.as_u16() == 429 || status.is_server_error() {
        return failed_or_retry(state, current, error, true);
    }
    Outcome::Failed(error)
}
