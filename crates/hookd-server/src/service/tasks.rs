//! Svix's background tasks: the long operations that answer a `qtask_` id at once and
//! run as durable jobs (`jobs`), a bounded batch a committed step, so they survive a
//! crash and a restarted (or another) node resumes them. Each kind's state is its input
//! and its progress; [`data`] turns it into the `data` the background-task API shows.
//!
//! Kinds (Svix's names): `endpoint.recover` (in `jobs`), `endpoint.replay` (messages an
//! endpoint never got), `endpoint.bulk-replay` (messages it got, again),
//! `application.purge_content` (every payload of an application), `application.stats`
//! (attempts per application) and `event-type.aggregate` (what each application's
//! endpoints subscribe to). hookd's own `source.replay` is listed only when asked for:
//! the SDKs' models know Svix's kinds only.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, EndpointId, MessageId, OrgId, TaskId};
use hookd_core::matching::{Subscription, accepts};
use hookd_core::name::{ChannelName, EventTypeName};
use hookd_store::fanout::Fanout;
use hookd_store::{
    AttemptFilter, AttemptTrigger, Cursor, DeliveryStatus, Job, JobStatus, ListQuery, MessageFilter, Order,
    StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::http::error::{ApiError, ApiResult};
use crate::service::jobs::{self, StepError, StepFuture, Stepped, queue};
use crate::service::{Service, all_pages, source};

pub const REPLAY_MISSING: &str = "endpoint.replay";
pub const BULK_REPLAY: &str = "endpoint.bulk-replay";
pub const PURGE_CONTENT: &str = "application.purge_content";
pub const APP_STATS: &str = "application.stats";
pub const EVENT_TYPE_AGGREGATE: &str = "event-type.aggregate";

/// The kinds Svix's API names, listed by default.
pub const SVIX_KINDS: &[&str] = &[
    jobs::RECOVER,
    REPLAY_MISSING,
    BULK_REPLAY,
    PURGE_CONTENT,
    APP_STATS,
    EVENT_TYPE_AGGREGATE,
];

/// hookd's own kinds, listed when asked for by name.
pub const HOOKD_KINDS: &[&str] = &[source::REPLAY];

/// Messages looked at per step of a replay.
const REPLAY_BATCH: usize = 250;
/// Payloads removed per step of a purge.
const PURGE_BATCH: usize = 1_000;
/// Applications per step of the statistics tasks.
const APPS_BATCH: usize = 100;
/// Applications a statistics request may name.
pub const MAX_STATS_APPS: usize = 1_000;

/// A step's outcome from a batch's result: `Ok(true)` ends the job, `Ok(false)` goes
/// on, a passing fault pauses and tries again, anything else fails it.
fn stepped(job: &Job, state: Value, result: Result<bool, StepError>) -> Stepped {
    let (status, error, pause) = match result {
        Ok(true) => (JobStatus::Finished, None, false),
        Ok(false) => (JobStatus::Running, None, false),
        Err(StepError::Passing(e)) => {
            tracing::warn!(task = %job.id, kind = %job.kind, error = %e, "a task step failed; it is tried again");
            (JobStatus::Running, None, true)
        }
        Err(StepError::Fatal(e)) => (JobStatus::Failed, Some(e), false),
    };
    Stepped {
        state,
        status,
        error,
        pause,
    }
}

/// A store fault as a step sees it: what is gone ends the job; the rest passes.
fn step_error(e: StoreError) -> StepError {
    match e {
        StoreError::NotFound(what) => StepError::Fatal(format!("the {what} no longer exists")),
        StoreError::Rejected { message, .. } | StoreError::Conflict(message) => StepError::Fatal(message),
        other => StepError::Passing(other.to_string()),
    }
}

/// Reads a job's state as `T`, or fails the job.
fn read_state<T: for<'de> Deserialize<'de>>(job: &Job) -> Result<T, Stepped> {
    serde_json::from_value(job.state.clone())
        .map_err(|e| Stepped::failed(job, format!("unreadable {} state: {e}", job.kind)))
}

/// The step function of a kind whose state is `$state` and whose one batch is
/// `$batch(state, org, &mut state) -> Result<bool, StepError>` (`true`: done): the
/// state read (or the job failed), the batch run, the new state and status kept.
macro_rules! batch_step {
    ($name:ident, $state:ty, $batch:ident) => {
        pub(super) fn $name<'a>(state: &'a Service, job: &'a Job) -> StepFuture<'a> {
            Box::pin(async move {
                let mut s: $state = match read_state(job) {
                    Ok(s) => s,
                    Err(failed) => return failed,
                };
                let result = $batch(state, &job.org_id, &mut s).await;
                stepped(
                    job,
                    serde_json::to_value(&s).unwrap_or_else(|_| job.state.clone()),
                    result,
                )
            })
        }
    };
}

// ---------------------------------------------------------------------------------
// endpoint.replay: what the endpoint never got.

#[derive(Debug, Serialize, Deserialize)]
struct ReplayMissing {
    app: ApplicationId,
    endpoint: EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    sent: usize,
    #[serde(default)]
    after: Option<MessageId>,
}

/// Queues the replay of every message created in `[since, until)` that `endpoint` would
/// take (its event types, channels and filter) but never got a delivery of.
pub async fn replay_missing(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> ApiResult<Job> {
    let input = ReplayMissing {
        app: app.clone(),
        endpoint: endpoint.clone(),
        since,
        until,
        sent: 0,
        after: None,
    };
    queue(state, org, REPLAY_MISSING, &input).await
}

batch_step!(replay_missing_step, ReplayMissing, replay_missing_batch);

async fn replay_missing_batch(
    state: &Service,
    org: &OrgId,
    r: &mut ReplayMissing,
) -> Result<bool, StepError> {
    let store = &state.store;
    let ep = store
        .get_endpoint(org, &r.app, r.endpoint.as_str())
        .await
        .map_err(step_error)?;
    let msgs = store
        .messages_missing_endpoint(
            org,
            &r.app,
            &r.endpoint,
            r.since,
            r.until,
            r.after.as_ref(),
            REPLAY_BATCH,
        )
        .await
        .map_err(step_error)?;
    let Some(last) = msgs.last() else {
        return Ok(true);
    };
    let next = last.id.clone();
    let sub = Subscription {
        disabled: false,
        event_types: ep.data.event_types.as_ref(),
        channels: ep.data.channels.as_ref(),
    };
    let wanted: Vec<MessageId> = msgs
        .iter()
        .filter(|m| accepts(sub, &m.event_type, m.channels.as_ref()))
        .filter(|m| {
            ep.data.filter.as_ref().is_none_or(|f| {
                Fanout::sent(
                    &m.event_type,
                    m.channels.as_ref(),
                    m.payload.as_deref().unwrap_or(""),
                )
                .passes(f.as_str())
            })
        })
        .map(|m| m.id.clone())
        .collect();
    let queued = store
        .queue_deliveries(org, &r.app, &r.endpoint, &wanted, AttemptTrigger::Scheduled)
        .await
        .map_err(step_error)?;
    r.sent += queued;
    r.after = Some(next);
    if queued > 0 {
        state.wake_dispatcher();
    }
    Ok(false)
}

// ---------------------------------------------------------------------------------
// endpoint.bulk-replay: what the endpoint got, again.

/// Which of an endpoint's messages a bulk replay sends again.
#[derive(Debug, Clone, Default)]
pub struct BulkReplayFilter {
    pub event_types: Option<Vec<EventTypeName>>,
    pub channel: Option<ChannelName>,
    pub tag: Option<String>,
    /// The delivery's status (or, with `status_code_class`, an attempt's).
    pub status: Option<DeliveryStatus>,
    /// Messages with an attempt answered in this class (1 to 5; 0: no answer).
    pub status_code_class: Option<u16>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BulkReplay {
    app: ApplicationId,
    endpoint: EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    event_types: Option<Vec<EventTypeName>>,
    channel: Option<ChannelName>,
    tag: Option<String>,
    status: Option<i64>,
    status_code_class: Option<u16>,
    #[serde(default)]
    sent: usize,
    /// The last message (or, by attempt class, attempt) id a step went through.
    #[serde(default)]
    cursor: Option<String>,
}

/// Queues sending again (one manual attempt each) every message created in `[since,
/// until)` that went to `endpoint` and passes `filter`, whatever its status.
pub async fn bulk_replay(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    endpoint: &EndpointId,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    filter: BulkReplayFilter,
) -> ApiResult<Job> {
    let input = BulkReplay {
        app: app.clone(),
        endpoint: endpoint.clone(),
        since,
        until,
        event_types: filter.event_types,
        channel: filter.channel,
        tag: filter.tag,
        status: filter.status.map(|s| s as i64),
        status_code_class: filter.status_code_class,
        sent: 0,
        cursor: None,
    };
    queue(state, org, BULK_REPLAY, &input).await
}

batch_step!(bulk_replay_step, BulkReplay, bulk_replay_batch);

async fn bulk_replay_batch(state: &Service, org: &OrgId, r: &mut BulkReplay) -> Result<bool, StepError> {
    let store = &state.store;
    let query = ListQuery {
        limit: REPLAY_BATCH,
        cursor: r.cursor.clone().map(|key| Cursor { key, backward: false }),
        order: Order::Ascending,
    };
    // `after` is exclusive; `since` is not.
    let after = Some(r.since - chrono::Duration::milliseconds(1));
    let status = r.status.and_then(DeliveryStatus::from_code);
    let (ids, next, more): (Vec<MessageId>, Option<String>, bool) = match r.status_code_class {
        None => {
            let filter = MessageFilter {
                event_types: r.event_types.clone(),
                channel: r.channel.clone(),
                tag: r.tag.clone(),
                before: r.until,
                after,
            };
            let page = store
                .list_endpoint_messages(org, &r.app, &r.endpoint, &query, &filter, status)
                .await
                .map_err(step_error)?;
            let next = page.items.last().map(|(m, _)| m.id.to_string());
            let ids = page.items.into_iter().map(|(m, _)| m.id).collect();
            (ids, next, page.has_more)
        }
        Some(class) => {
            let filter = AttemptFilter {
                endpoint: Some(r.endpoint.clone()),
                status,
                status_code_class: Some(class),
                event_types: r.event_types.clone(),
                channel: r.channel.clone(),
                tag: r.tag.clone(),
                before: r.until,
                after,
                ..Default::default()
            };
            let page = store
                .list_attempts(org, &r.app, &query, &filter)
                .await
                .map_err(step_error)?;
            let next = page.items.last().map(|a| a.id.to_string());
            let ids: BTreeSet<MessageId> = page.items.into_iter().map(|a| a.msg_id).collect();
            (ids.into_iter().collect(), next, page.has_more)
        }
    };
    let queued = store
        .queue_deliveries(org, &r.app, &r.endpoint, &ids, AttemptTrigger::Manual)
        .await
        .map_err(step_error)?;
    r.sent += queued;
    if queued > 0 {
        state.wake_dispatcher();
    }
    if next.is_some() {
        r.cursor = next;
    }
    Ok(!more)
}

// ---------------------------------------------------------------------------------
// application.purge_content: every payload of an application.

#[derive(Debug, Serialize, Deserialize)]
struct Purge {
    app: ApplicationId,
    #[serde(default)]
    purged: usize,
}

/// Queues the removal of every message payload of `app` (their deliveries not yet
/// made are canceled, as with one message's `DELETE .../content`).
pub async fn purge_content(state: &Service, org: &OrgId, app: &ApplicationId) -> ApiResult<Job> {
    queue(
        state,
        org,
        PURGE_CONTENT,
        &Purge {
            app: app.clone(),
            purged: 0,
        },
    )
    .await
}

batch_step!(purge_step, Purge, purge_batch);

async fn purge_batch(state: &Service, org: &OrgId, p: &mut Purge) -> Result<bool, StepError> {
    let n = state
        .store
        .expunge_payloads_batch(org, &p.app, PURGE_BATCH)
        .await
        .map_err(step_error)?;
    p.purged += n;
    Ok(n == 0)
}

// ---------------------------------------------------------------------------------
// application.stats and event-type.aggregate: over the organisation's applications.

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppStat {
    app_id: ApplicationId,
    app_uid: Option<String>,
    message_destinations: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AppStats {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// The applications asked for; `None`: every one, a page a step.
    apps: Option<Vec<ApplicationId>>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    stats: Vec<AppStat>,
}

/// Queues counting the attempts (`messageDestinations`) each application made in
/// `[since, until)`: those `apps` names (ids or uids), or every one. Answers the job and
/// the names that matched no application (422 when none did).
pub async fn app_stats(
    state: &Service,
    org: &OrgId,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    apps: Option<Vec<String>>,
) -> ApiResult<(Job, Vec<String>)> {
    let (resolved, unresolved) = match apps {
        None => (None, Vec::new()),
        Some(keys) => {
            let (mut found, mut missing) = (Vec::new(), Vec::new());
            for key in keys {
                match state.store.get_application(org, &key).await {
                    Ok(app) => found.push(app.id),
                    Err(StoreError::NotFound(_)) => missing.push(key),
                    Err(e) => return Err(e.into()),
                }
            }
            if found.is_empty() {
                return Err(ApiError::invalid(
                    &["body", "appIds"],
                    "none of the applications named exists",
                ));
            }
            found.sort();
            found.dedup();
            (Some(found), missing)
        }
    };
    let input = AppStats {
        since,
        until,
        apps: resolved,
        cursor: None,
        stats: Vec::new(),
    };
    Ok((queue(state, org, APP_STATS, &input).await?, unresolved))
}

/// The next applications a statistics task goes through — the named ones left, or the
/// next page of all of them — with the key to go on after; `None` when none are left.
async fn next_apps(
    state: &Service,
    org: &OrgId,
    named: Option<&[ApplicationId]>,
    cursor: Option<&str>,
) -> Result<Option<(Vec<hookd_store::Application>, String)>, StepError> {
    let Some(named) = named else {
        let query = ListQuery {
            limit: APPS_BATCH,
            cursor: cursor.map(|key| Cursor {
                key: key.to_owned(),
                backward: false,
            }),
            order: Order::Ascending,
        };
        let page = state
            .store
            .list_applications(org, &query, Default::default())
            .await
            .map_err(step_error)?;
        let last = page.items.last().map(|a| a.id.to_string());
        return Ok(last.map(|last| (page.items, last)));
    };
    let batch: Vec<&ApplicationId> = named
        .iter()
        .filter(|id| cursor.is_none_or(|c| id.as_str() > c))
        .take(APPS_BATCH)
        .collect();
    let Some(last) = batch.last().map(|id| id.to_string()) else {
        return Ok(None);
    };
    let mut apps = Vec::with_capacity(batch.len());
    for id in batch {
        match state.store.get_application(org, id.as_str()).await {
            Ok(app) => apps.push(app),
            // Deleted since it was named: left out.
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(step_error(e)),
        }
    }
    Ok(Some((apps, last)))
}

batch_step!(app_stats_step, AppStats, app_stats_batch);

async fn app_stats_batch(state: &Service, org: &OrgId, s: &mut AppStats) -> Result<bool, StepError> {
    let Some((apps, last)) = next_apps(state, org, s.apps.as_deref(), s.cursor.as_deref()).await? else {
        return Ok(true);
    };
    let ids: Vec<ApplicationId> = apps.iter().map(|a| a.id.clone()).collect();
    let counts = state
        .store
        .count_attempts(org, &ids, s.since, s.until)
        .await
        .map_err(step_error)?;
    for app in apps {
        let n = counts.iter().find(|(id, _)| *id == app.id).map_or(0, |(_, n)| *n);
        s.stats.push(AppStat {
            app_id: app.id,
            app_uid: app.data.uid.map(|u| u.to_string()),
            message_destinations: n,
        });
    }
    s.cursor = Some(last);
    Ok(false)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppEventTypes {
    app_id: ApplicationId,
    explicitly_subscribed_event_types: BTreeSet<String>,
    has_catch_all_endpoint: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Aggregate {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    apps: Vec<AppEventTypes>,
}

/// Queues listing, for every application, the event types its endpoints name and
/// whether one of them takes every type.
pub async fn aggregate_event_types(state: &Service, org: &OrgId) -> ApiResult<Job> {
    queue(state, org, EVENT_TYPE_AGGREGATE, &Aggregate::default()).await
}

batch_step!(aggregate_step, Aggregate, aggregate_batch);

async fn aggregate_batch(state: &Service, org: &OrgId, a: &mut Aggregate) -> Result<bool, StepError> {
    let Some((apps, last)) = next_apps(state, org, None, a.cursor.as_deref()).await? else {
        return Ok(true);
    };
    for app in &apps {
        let mut entry = AppEventTypes {
            app_id: app.id.clone(),
            explicitly_subscribed_event_types: BTreeSet::new(),
            has_catch_all_endpoint: false,
        };
        let store = &state.store;
        let endpoints = all_pages(
            |q| async move { store.list_endpoints(org, &app.id, &q).await },
            |ep: &hookd_store::Endpoint| ep.id.to_string(),
        )
        .await
        .map_err(step_error)?;
        for ep in &endpoints {
            match &ep.data.event_types {
                Some(types) if !types.is_empty() => entry
                    .explicitly_subscribed_event_types
                    .extend(types.iter().map(ToString::to_string)),
                _ => entry.has_catch_all_endpoint = true,
            }
        }
        a.apps.push(entry);
    }
    a.cursor = Some(last);
    Ok(false)
}

// ---------------------------------------------------------------------------------
// What the background-task API shows.

/// A task's `data`: its result so far, as Svix documents each kind's (`messagesSent`,
/// `messagesPurged`, `appStats`, `event_types`), with what it works on, and `error`
/// and `finishedAt` once it ended.
pub fn data(job: &Job) -> Value {
    let s = &job.state;
    let mut data = match job.kind.as_str() {
        jobs::RECOVER => json!({
            "appId": s["app"], "endpointId": s["endpoint"], "since": s["since"], "until": s["until"],
            "messagesSent": s["requeued"].as_u64().unwrap_or(0),
        }),
        REPLAY_MISSING => json!({
            "appId": s["app"], "endpointId": s["endpoint"], "since": s["since"], "until": s["until"],
            "messagesSent": s["sent"].as_u64().unwrap_or(0),
        }),
        BULK_REPLAY => json!({
            "appId": s["app"], "endpointId": s["endpoint"], "since": s["since"], "until": s["until"],
            "messagesSent": s["sent"].as_u64().unwrap_or(0),
        }),
        PURGE_CONTENT => json!({"appId": s["app"], "messagesPurged": s["purged"].as_u64().unwrap_or(0)}),
        APP_STATS => json!({"since": s["since"], "until": s["until"], "appStats": s["stats"]}),
        EVENT_TYPE_AGGREGATE => json!({"event_types": s["apps"]}),
        source::REPLAY => json!({
            "sourceId": s["source"], "since": s["since"], "until": s["until"],
            "messages": s["msg_ids"].as_array().map_or(0, Vec::len), "deliveries": s["deliveries"],
        }),
        _ => json!({}),
    };
    if let Value::Object(map) = &mut data {
        if let Some(error) = &job.error {
            map.insert("error".into(), error.clone().into());
        }
        if job.status != JobStatus::Running {
            map.insert("finishedAt".into(), json!(job.updated_at));
        }
    }
    data
}

/// A task of the organisation by id (404 for another organisation's).
pub async fn get(state: &Service, org: &OrgId, id: &str) -> ApiResult<Job> {
    let id: TaskId = id.parse().map_err(|_| ApiError::not_found("task"))?;
    Ok(state.store.get_job(org, &id).await?)
}
