//! Ingest sources: create, replace, change, delete and token rotation (each waking the
//! cron scheduler, whose schedule may have changed), the recording of a received
//! request or a cron firing (with the wake-up of the delivery engine for its
//! forwards), and replay of what was received.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, EndpointId, IngestLogId, MessageId, OrgId, SourceId, TaskId};
use hookd_core::ingest::{SourceKind, SourceOptions};
use hookd_core::name::{EventTypeName, SourceUid, Uid};
use hookd_store::{
    ForwardedRequest, IngestLogFilter, IngestRecorded, IngestRequest, IngestStatus, JobStatus, ListQuery,
    NewIngestRequest, Order, Source, SourceData, StoreError,
};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::error::{ApiError, ApiResult};
use crate::service::{Service, jobs, message, upsert};

/// Most log entries replayed by one range replay.
pub const MAX_REPLAY: usize = 10_000;

/// A preset and its config from a body, or 422 naming the failing part.
pub fn parse_kind(kind: &str, config: Option<&Value>) -> ApiResult<SourceKind> {
    SourceKind::parse(kind, config).map_err(|e| {
        let mut loc = vec!["body"];
        loc.extend(e.loc.iter().map(String::as_str));
        ApiError::invalid(&loc, e.message)
    })
}

/// Where a source's sender posts: `HOOKD_PUBLIC_URL` + `/in/{token}`.
pub fn ingest_url(state: &Service, token: &str) -> String {
    format!("{}/in/{token}", state.config.public_url())
}

/// The event type of messages forwarding a source's requests: `ingest.<type>`.
pub fn event_type(kind: &SourceKind) -> EventTypeName {
    format!("ingest.{}", kind.type_name())
        .parse()
        .unwrap_or_else(|_| EventTypeName::from_trusted("ingest.request".into()))
}

/// Until when a request received at `at` is kept and forwarded (`ingest_retention`).
pub fn retain_until(retention: Duration, at: DateTime<Utc>) -> DateTime<Utc> {
    at + crate::config::span(retention)
}

/// A new URL token: 24 random bytes, URL-safe base64.
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Creates a source with a new URL token.
pub async fn create(state: &Service, org: &OrgId, data: SourceData) -> ApiResult<Source> {
    let source = state.store.create_source(org, data, new_token()).await?;
    changed(state);
    Ok(source)
}

/// After a source was created, changed or deleted here: the receive path's
/// remembered sources are dropped, and the cron loop looks at the schedules again.
fn changed(state: &Service) {
    state.lookups.sources.clear();
    state.wake_cron();
}

/// The source whose URL token is `token` (or whose old token it is, within its
/// grace), with its organisation; a current token's source is remembered for a
/// second (`service::cache`).
pub async fn by_token(
    state: &Service,
    token: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<Arc<(OrgId, Source)>>> {
    if let Some(found) = state.lookups.sources.get(token) {
        return Ok(Some(found));
    }
    let Some(found) = state.store.find_source_by_token(token, now).await? else {
        return Ok(None);
    };
    let found = Arc::new(found);
    // An old token (rotated, within its grace) is looked up each time, so its grace
    // ends when it says.
    if found.1.token == token {
        state.lookups.sources.put(token.to_owned(), Arc::clone(&found));
    }
    Ok(Some(found))
}

/// What a replace keeps of the source it replaces.
#[derive(Debug, Default, Clone, Copy)]
pub struct Keep {
    /// Its options (the request gave none).
    pub options: bool,
    /// Its hookd-only preset, when it has one (the request named `generic-webhook`
    /// with no config and no options: what the SDKs send back after reading such a
    /// source, which is answered as `generic-webhook`).
    pub hookd_preset: bool,
}

/// Creates or replaces the source `key`; a uid-shaped key names a new one (`uid` is
/// that key parsed, for a create). `keep` says what of the replaced source stays.
pub async fn replace(
    state: &Service,
    org: &OrgId,
    key: &str,
    data: SourceData,
    keep: Keep,
    uid: impl FnOnce() -> ApiResult<SourceUid>,
) -> ApiResult<(Source, bool)> {
    let store = &state.store;
    let mut create_data = data.clone();
    if create_data.uid.is_none() && !SourceId::is_valid(key) {
        create_data.uid = Some(uid()?);
    }
    let (source, created) = upsert(
        || {
            let d = data.clone();
            async move {
                let updated = store
                    .update_source(
                        org,
                        key,
                        Box::new(move |cur: &mut SourceData| {
                            let uid = d.uid.clone().or_else(|| cur.uid.take());
                            let mut next = SourceData { uid, ..d };
                            if keep.options {
                                next.options = std::mem::take(&mut cur.options);
                            }
                            if keep.hookd_preset && cur.kind.is_hookd_only() {
                                next.kind = cur.kind.clone();
                            }
                            *cur = next;
                            Ok(())
                        }),
                    )
                    .await?;
                Ok(updated.after)
            }
        },
        || async {
            if SourceId::is_valid(key) {
                return Err(StoreError::NotFound("source"));
            }
            store.create_source(org, create_data, new_token()).await
        },
    )
    .await?;
    changed(state);
    Ok((source, created))
}

/// A checked PATCH of a source: `None` keeps a field.
#[derive(Debug, Default)]
pub struct SourceChange {
    pub name: Option<String>,
    pub uid: Option<Option<SourceUid>>,
    pub metadata: Option<std::collections::BTreeMap<String, String>>,
    /// A new preset, or (alone) the current one's new config.
    pub kind: Option<String>,
    pub config: Option<Value>,
    /// Checked options (the defaults remove them).
    pub options: Option<SourceOptions>,
}

/// Changes some fields of the source `key`. A new config without a type is checked
/// against the type the source has when the change is applied, inside the store's
/// transaction, so a concurrent replace is never overwritten with a stale type.
pub async fn change(state: &Service, org: &OrgId, key: &str, change: SourceChange) -> ApiResult<Source> {
    // Checked first against the source as read now, for an answer naming the field.
    let current = state.store.get_source(org, key).await?;
    if change.kind.is_some() || change.config.is_some() {
        let kind = change.kind.as_deref().unwrap_or(current.data.kind.type_name());
        parse_kind(kind, change.config.as_ref())?;
    }
    let updated = state
        .store
        .update_source(
            org,
            current.id.as_str(),
            Box::new(move |d| {
                if change.kind.is_some() || change.config.is_some() {
                    let kind = change.kind.as_deref().unwrap_or(d.kind.type_name());
                    d.kind = SourceKind::parse(kind, change.config.as_ref()).map_err(|e| {
                        StoreError::rejected(e.loc.first().map_or("config", String::as_str), e.message)
                    })?;
                }
                if let Some(name) = change.name {
                    d.name = name;
                }
                if let Some(uid) = change.uid {
                    d.uid = uid;
                }
                if let Some(m) = change.metadata {
                    d.metadata = m;
                }
                if let Some(options) = change.options {
                    d.options = options;
                }
                Ok(())
            }),
        )
        .await?;
    changed(state);
    Ok(updated.after)
}

/// Deletes the source `key` with its destinations and log.
pub async fn delete(state: &Service, org: &OrgId, key: &str) -> ApiResult<()> {
    state.store.delete_source(org, key).await?;
    changed(state);
    Ok(())
}

/// Gives the source a new URL token; the old one keeps working for
/// `ingest_token_grace`.
pub async fn rotate_token(state: &Service, org: &OrgId, key: &str) -> ApiResult<Source> {
    let grace = crate::config::span(state.config.ingest_token_grace);
    let source = state
        .store
        .rotate_source_token(org, key, new_token(), Utc::now() + grace)
        .await?;
    changed(state);
    Ok(source)
}

/// Whether a verified request passes the source's filter (`options.filter`; none:
/// every request passes).
pub fn passes_filter(
    options: &SourceOptions,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> bool {
    options.filter.as_ref().is_none_or(|f| {
        let values = hookd_core::filter::RequestValues::new(
            path,
            query,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            body,
        );
        f.0.matches(&values.subject())
    })
}

/// Counts a request refused for a body over `ingest_max_body_bytes` (not kept).
/// Takes one request of `source` under its rate (`rateLimit`, else the server's
/// `ingest_source_rate_limit`; none: always admitted); 429 with `Retry-After` past it.
pub fn admit(state: &Service, source: &Source) -> ApiResult<()> {
    let rate = match source.data.options.rate_limit {
        Some(rate) => rate,
        None if state.config.ingest_source_rate_limit > 0 => state.config.ingest_source_rate_limit,
        None => return Ok(()),
    };
    let now = std::time::Instant::now();
    let mut throttle = state.source_throttle.lock().unwrap_or_else(|p| p.into_inner());
    throttle.prune(now);
    throttle.take(&source.id, rate, now).map_err(|wait| {
        state.metrics.server.ingest_rate_limited.inc();
        ApiError::TooManyRequests {
            code: "rate_limited",
            detail: format!("this source accepts {rate} requests per second; slow down"),
            retry_after: Some(wait.as_secs().max(1)),
        }
    })
}

pub fn count_too_large(state: &Service) {
    state.metrics.server.ingest_too_large.inc();
}

/// Keeps a request received at the source's URL with its verdict and forwards, in one
/// transaction, then counts it (`hookd_ingest_requests`) and wakes the delivery engine
/// for its forwards.
pub async fn receive(
    state: &Service,
    org: &OrgId,
    source: &Source,
    request: NewIngestRequest,
) -> ApiResult<IngestRecorded> {
    let recorded = record(state, org, source, request).await?;
    // Nobody listening is the usual case, not an error.
    let _ = state.received.send(source.id.clone());
    state
        .metrics
        .server
        .ingest_received
        .get_or_create(&crate::service::metrics::IngestLabels {
            status: recorded.status.text(),
        })
        .inc();
    Ok(recorded)
}

/// Keeps a cron firing (claimed in the same transaction) like a received request;
/// `None` when another node recorded it first.
pub async fn fire(
    state: &Service,
    org: &OrgId,
    source: &Source,
    request: NewIngestRequest,
) -> Result<Option<IngestRecorded>, StoreError> {
    match record(state, org, source, request).await {
        Ok(recorded) => Ok(Some(recorded)),
        Err(StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn record(
    state: &Service,
    org: &OrgId,
    source: &Source,
    mut request: NewIngestRequest,
) -> Result<IngestRecorded, StoreError> {
    if request.status == IngestStatus::Accepted {
        request.flow_runs = crate::service::flow::runs_for_request(state, org, source, &request).await?;
    }
    let recorded = state.store.record_ingest(org, source, request).await?;
    if recorded.deliveries > 0 {
        state.wake_dispatcher();
    }
    if recorded.flow_runs > 0 {
        crate::service::flow::wake(state);
    }
    Ok(recorded)
}

/// What became of a received request's forward: every attempt at every destination,
/// newest first (none for a request that was not forwarded).
pub async fn forward_attempts(
    state: &Service,
    org: &OrgId,
    source: &Source,
    entry: &IngestRequest,
) -> ApiResult<Vec<hookd_store::MessageAttempt>> {
    let Some(msg) = &entry.msg_id else {
        return Ok(Vec::new());
    };
    let filter = hookd_store::AttemptFilter {
        msg: Some(msg.clone()),
        ..Default::default()
    };
    let query = ListQuery {
        limit: 250,
        cursor: None,
        order: Order::Descending,
    };
    Ok(state
        .store
        .list_attempts(org, &source.app_id, &query, &filter)
        .await?
        .items)
}

/// What a replay made: the new messages and their deliveries; `done` false when more
/// than [`MAX_REPLAY`] matched (resume at `next_since`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Replayed {
    pub msg_ids: Vec<MessageId>,
    pub deliveries: usize,
    pub done: bool,
    pub next_since: Option<DateTime<Utc>>,
}

/// The destination a replay is limited to, if any.
async fn replay_target(
    state: &Service,
    org: &OrgId,
    source: &Source,
    key: Option<&str>,
) -> ApiResult<Option<EndpointId>> {
    Ok(match key {
        Some(key) => Some(state.store.get_endpoint(org, &source.app_id, key).await?.id),
        None => None,
    })
}

/// Forwards one logged request again, as a new message (new `webhook-id`, same body
/// and headers). `options` are the source's, read once per replay call; `event_id`
/// makes the forward happen once however often it is tried (a range replay's step
/// that is run again after a crash).
async fn replay_entry(
    state: &Service,
    org: &OrgId,
    source: &Source,
    entry: &IngestRequest,
    only: Option<&EndpointId>,
    event_id: Option<Uid>,
) -> ApiResult<(MessageId, usize)> {
    let mut forward = message::new_message(event_type(&source.data.kind), String::new());
    forward.retain_until = retain_until(state.config.ingest_retention, Utc::now());
    forward.only_endpoint = only.cloned();
    forward.event_id = event_id;
    forward.forward = Some(ForwardedRequest {
        log_id: entry.id.clone(),
        headers: hookd_core::ingest::forward_headers(&entry.headers, &source.data.options),
    });
    let (msg, n) = message::create(state, org, &source.app_id, forward).await?;
    Ok((msg.id, n))
}

/// Forwards one logged request again, to one destination or every one.
pub async fn replay_one(
    state: &Service,
    org: &OrgId,
    source: &Source,
    entry: &IngestRequest,
    endpoint: Option<&str>,
) -> ApiResult<Replayed> {
    if entry.status == IngestStatus::Rejected {
        return Err(ApiError::Conflict("a rejected request is never forwarded".into()));
    }
    let only = replay_target(state, org, source, endpoint).await?;
    let (msg_id, deliveries) = replay_entry(state, org, source, entry, only.as_ref(), None).await?;
    Ok(Replayed {
        msg_ids: vec![msg_id],
        deliveries,
        done: true,
        next_since: None,
    })
}

/// A range replay's input and progress: the state of its job.
#[derive(Debug, Serialize, Deserialize)]
struct RangeReplay {
    source: SourceId,
    endpoint: Option<EndpointId>,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// The last log entry forwarded (the next step lists after it).
    after: Option<IngestLogId>,
    #[serde(flatten)]
    out: Replayed,
}

/// Log entries a range replay forwards per step (one page of the log).
const REPLAY_STEP: usize = 250;

/// Forwards again every accepted request the source received from `since` until
/// `until` (default now), oldest first, at most [`MAX_REPLAY`]. It runs as a durable
/// job that this request runs while its caller waits: if the caller goes away or the
/// node stops midway, the job's lease runs out and a runner finishes it, and each
/// request is forwarded once however often its step is tried.
pub async fn replay_range(
    state: &Service,
    org: &OrgId,
    key: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
    endpoint: Option<&str>,
) -> ApiResult<Replayed> {
    let source = state.store.get_source(org, key).await?;
    let only = replay_target(state, org, &source, endpoint).await?;
    let input = RangeReplay {
        source: source.id,
        endpoint: only,
        since,
        until: until.unwrap_or_else(Utc::now),
        after: None,
        out: Replayed {
            done: true,
            ..Replayed::default()
        },
    };
    let job = jobs::run_here(state, org, REPLAY, &input, replay_job).await?;
    serde_json::from_value::<RangeReplay>(job.state)
        .map(|r| r.out)
        .map_err(|e| {
            tracing::error!(task = %job.id, error = %e, "a finished replay has an unreadable state");
            ApiError::Internal
        })
}

/// The job kind of a source's range replay.
pub const REPLAY: &str = "source.replay";

/// One step of a range replay job: its state read, the next page forwarded, the
/// progress kept even when the step met a fault (what was forwarded is not forwarded
/// again).
pub(super) fn replay_job<'a>(state: &'a Service, job: &'a hookd_store::Job) -> jobs::StepFuture<'a> {
    Box::pin(async move {
        let mut r: RangeReplay = match serde_json::from_value(job.state.clone()) {
            Ok(r) => r,
            Err(e) => return jobs::Stepped::failed(job, format!("unreadable replay state: {e}")),
        };
        let (status, error, pause) = match replay_step(state, &job.org_id, &job.id, &mut r).await {
            Ok(true) => (JobStatus::Finished, None, false),
            Ok(false) => (JobStatus::Running, None, false),
            Err(jobs::StepError::Passing(e)) => {
                tracing::warn!(task = %job.id, error = %e, "a replay step failed; it is tried again");
                (JobStatus::Running, None, true)
            }
            Err(jobs::StepError::Fatal(e)) => (JobStatus::Failed, Some(e), false),
        };
        jobs::Stepped {
            state: serde_json::to_value(&r).unwrap_or_else(|_| job.state.clone()),
            status,
            error,
            pause,
        }
    })
}

/// How many endpoints a message was given to (the deliveries it made).
async fn destinations(
    state: &Service,
    org: &OrgId,
    app: &ApplicationId,
    msg: &MessageId,
) -> hookd_store::StoreResult<usize> {
    let mut query = ListQuery {
        limit: REPLAY_STEP,
        cursor: None,
        order: Order::Ascending,
    };
    let mut n = 0;
    loop {
        let page = state
            .store
            .list_message_destinations(org, app, msg, &query)
            .await?;
        n += page.items.len();
        match page.items.last() {
            Some((last, _)) if page.has_more => {
                query.cursor = Some(hookd_store::Cursor {
                    key: last.id.to_string(),
                    backward: false,
                });
            }
            _ => return Ok(n),
        }
    }
}

/// One step of a range replay (job `task`): the next page of the log forwarded.
/// Answers whether the replay is finished.
async fn replay_step(
    state: &Service,
    org: &OrgId,
    task: &TaskId,
    r: &mut RangeReplay,
) -> Result<bool, jobs::StepError> {
    let source = match state.store.get_source(org, r.source.as_str()).await {
        Ok(source) => source,
        Err(StoreError::NotFound(_)) => {
            return Err(jobs::StepError::Fatal(
                "the source was deleted during the replay".into(),
            ));
        }
        Err(e) => return Err(jobs::StepError::Passing(e.to_string())),
    };
    let filter = IngestLogFilter {
        status: Some(IngestStatus::Accepted),
        before: Some(r.until),
        after: Some(r.since - chrono::Duration::milliseconds(1)),
    };
    let query = ListQuery {
        limit: REPLAY_STEP,
        cursor: r.after.as_ref().map(|id| hookd_store::Cursor {
            key: id.to_string(),
            backward: false,
        }),
        order: Order::Ascending,
    };
    let page = state
        .store
        .list_ingest_log(org, &source.id, &query, &filter)
        .await
        .map_err(|e| jobs::StepError::Passing(e.to_string()))?;
    for entry in &page.items {
        if r.out.msg_ids.len() >= MAX_REPLAY {
            r.out.done = false;
            r.out.next_since = Some(entry.received_at);
            return Ok(true);
        }
        let event_id: Uid = format!("replay.{task}.{}", entry.id).parse().map_err(|_| {
            jobs::StepError::Fatal(format!("no event id can be made from {task} and {}", entry.id))
        })?;
        let forwarded = replay_entry(
            state,
            org,
            &source,
            entry,
            r.endpoint.as_ref(),
            Some(event_id.clone()),
        )
        .await;
        match forwarded {
            Ok((msg, n)) => {
                r.out.msg_ids.push(msg);
                r.out.deliveries += n;
            }
            // Forwarded by an earlier try of this step whose progress was not saved.
            Err(ApiError::Conflict(_)) => {
                let msg = state
                    .store
                    .get_message(org, &source.app_id, event_id.as_str())
                    .await
                    .map_err(|e| match e {
                        // A conflict that was not this step's earlier forward.
                        StoreError::NotFound(_) => jobs::StepError::Fatal(format!(
                            "the forward of {} was refused as a conflict",
                            entry.id
                        )),
                        e => jobs::StepError::Passing(e.to_string()),
                    })?;
                r.out.deliveries += destinations(state, org, &source.app_id, &msg.id)
                    .await
                    .map_err(|e| jobs::StepError::Passing(e.to_string()))?;
                r.out.msg_ids.push(msg.id);
            }
            Err(ApiError::NotFound(what)) => {
                return Err(jobs::StepError::Fatal(format!(
                    "{what} (deleted during the replay)"
                )));
            }
            Err(e) => return Err(jobs::StepError::Passing(e.to_string())),
        }
        r.after = Some(entry.id.clone());
    }
    Ok(!page.has_more)
}
