//! What the store keeps. Each object is split into its identity (id, owner, times),
//! which only the backend sets, and its `...Data`, which callers create and mutate.

use std::collections::{BTreeMap, BTreeSet};

use crate::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use hookd_core::InvalidValue;
use hookd_core::api_token::TokenHash;
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::id::{ApplicationId, EndpointId, IngestLogId, MessageId, OrgId, SourceId, TaskId, TokenId};
use hookd_core::ingest::{SourceKind, SourceOptions};
use hookd_core::name::{ChannelName, EventTypeName, FeatureFlag, GroupName, SourceUid, Uid};
use hookd_core::secret::EndpointSecret;
use hookd_core::throttle::ThrottleRate;

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug)]
pub struct NewToken {
    pub id: TokenId,
    pub name: String,
    pub hash: TokenHash,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: TokenId,
    pub org_id: OrgId,
    pub name: String,
    pub hash: TokenHash,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationData {
    pub uid: Option<Uid>,
    pub name: String,
    /// Messages per second across the application's endpoints; `None` = unlimited.
    pub throttle_rate: Option<ThrottleRate>,
    pub metadata: Metadata,
}

/// What an update did: the stored object before the change and after it, so callers
/// decide what to report (events, cache clearing) from the two.
#[derive(Debug, Clone)]
pub struct Updated<T> {
    pub before: T,
    pub after: T,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub id: ApplicationId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: ApplicationData,
}

/// Narrows an application listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplicationFilter {
    /// Leave out applications that have no endpoint.
    pub exclude_without_endpoints: bool,
    /// Leave out applications whose endpoints are all disabled.
    pub exclude_all_endpoints_disabled: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventTypeData {
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    /// JSON Schemas by version, as given.
    pub schemas: Option<serde_json::Value>,
    pub group_name: Option<GroupName>,
    /// Empty when the event type is visible to everyone.
    pub feature_flags: BTreeSet<FeatureFlag>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: EventTypeName,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: EventTypeData,
}

/// A signing secret replaced by a rotation, still used to sign until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    pub secret: EndpointSecret,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointData {
    pub uid: Option<Uid>,
    pub url: EndpointUrl,
    pub description: String,
    pub disabled: bool,
    /// Only these event types are delivered; `None` = all.
    pub event_types: Option<BTreeSet<EventTypeName>>,
    /// Only messages on one of these channels are delivered; `None` = all.
    pub channels: Option<BTreeSet<ChannelName>>,
    pub throttle_rate: Option<ThrottleRate>,
    pub metadata: Metadata,
    /// Custom headers sent with every delivery (validated by
    /// `hookd_core::endpoint_headers`).
    pub headers: BTreeMap<String, String>,
    pub secret: EndpointSecret,
    pub previous_secrets: Vec<PreviousSecret>,
    /// A payload filter (`hookd_core::filter`, checked when it was set): only messages
    /// it matches get a delivery. Matched as `Sent` on an application's endpoint, as
    /// `Received` on a source's destination.
    pub filter: Option<hookd_core::filter::FilterText>,
    /// JavaScript run at each attempt to reshape the request (`hookd_sandbox::transform`);
    /// `None` until one is set.
    pub transformation: Option<Transformation>,
}

/// An endpoint's transformation, as the API sets it. Stored as JSON in one column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transformation {
    pub code: Option<String>,
    /// Off keeps the code but sends the webhook as it is.
    pub enabled: bool,
    /// Values the code reads as `webhook.variables`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<BTreeMap<String, String>>,
    pub updated_at: DateTime<Utc>,
}

impl Transformation {
    /// The code to run at an attempt: set and enabled.
    pub fn active_code(&self) -> Option<&str> {
        self.code.as_deref().filter(|_| self.enabled)
    }
}

impl EndpointData {
    /// Makes `new` the signing secret; the current one keeps signing until
    /// `now + grace`. Secrets whose grace has run out are dropped.
    pub fn rotate_secret(&mut self, new: EndpointSecret, now: DateTime<Utc>, grace: chrono::Duration) {
        self.previous_secrets.retain(|p| p.expires_at > now);
        let old = std::mem::replace(&mut self.secret, new);
        if grace > chrono::Duration::zero() {
            self.previous_secrets.push(PreviousSecret {
                secret: old,
                expires_at: now + grace,
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: ApplicationId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: EndpointData,
}

/// A message as the API creates it. `payload` is the JSON text exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub event_type: EventTypeName,
    pub event_id: Option<Uid>,
    pub channels: Option<BTreeSet<ChannelName>>,
    pub tags: BTreeSet<String>,
    pub payload: String,
    /// When the payload may be expunged.
    pub retain_until: DateTime<Utc>,
    /// Deliver to this endpoint only, whatever its filters (send-example); `None`:
    /// every endpoint that accepts the message.
    pub only_endpoint: Option<EndpointId>,
    /// Set for a message that forwards a received request (`payload` is then empty).
    pub forward: Option<ForwardedRequest>,
    /// The flow runs the message starts, committed with it.
    pub flow_runs: crate::RunsFrom<Message>,
    /// When its deliveries are due (`deliverAt`); `None`: now.
    pub deliver_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: hookd_core::id::MessageId,
    pub app_id: ApplicationId,
    pub event_type: EventTypeName,
    pub event_id: Option<Uid>,
    pub channels: Option<BTreeSet<ChannelName>>,
    pub tags: BTreeSet<String>,
    /// `None` once expunged.
    pub payload: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When its deliveries were scheduled for, if the sender set `deliverAt`.
    pub deliver_at: Option<DateTime<Utc>>,
}

/// The status of a delivery or an attempt, numbered as the Svix `MessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
    Canceled = 4,
}

impl DeliveryStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::Pending,
            2 => Self::Fail,
            3 => Self::Sending,
            4 => Self::Canceled,
            _ => return None,
        })
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Pending => "pending",
            Self::Fail => "fail",
            Self::Sending => "sending",
            Self::Canceled => "canceled",
        }
    }
}

/// Why an attempt was made, numbered as the Svix `MessageAttemptTriggerType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptTrigger {
    Scheduled = 0,
    Manual = 1,
}

/// How many deliveries of each endpoint one claim may lease: the room left under the
/// engine's per-endpoint concurrency cap. Deliveries the engine cannot start would only
/// be leased to be put back, a write each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointRoom {
    /// For every endpoint not in `limited`.
    pub each: usize,
    /// Endpoints with less room (deliveries in flight, or paused: 0).
    pub limited: Vec<(EndpointId, usize)>,
}

impl EndpointRoom {
    /// No limit per endpoint.
    pub fn any() -> Self {
        Self {
            each: usize::MAX,
            limited: Vec::new(),
        }
    }

    /// Endpoints with no room at all: left out of the claim.
    pub fn full(&self) -> impl Iterator<Item = &EndpointId> {
        self.limited.iter().filter(|(_, n)| *n == 0).map(|(e, _)| e)
    }

    /// Endpoints with some room, but less than `each`.
    pub fn partial(&self) -> impl Iterator<Item = (&EndpointId, usize)> {
        self.limited
            .iter()
            .filter(|(_, n)| *n > 0 && *n < self.each)
            .map(|(e, n)| (e, *n))
    }
}

/// Endpoints with pending deliveries one claim visits at most (an index seek each).
pub const CLAIM_WALK_ENDPOINTS: usize = 1_000;

/// How long a claimed delivery whose rows do not decode (a damaged message or endpoint
/// row) is set aside: it stays pending, loses no attempt, and is tried again after
/// this, so the rest of the queue is never held up by it.
pub const UNDECODABLE_PARK: std::time::Duration = std::time::Duration::from_secs(600);

/// [`UNDECODABLE_PARK`] as a time span.
pub fn undecodable_park() -> chrono::Duration {
    chrono::Duration::from_std(UNDECODABLE_PARK).unwrap_or_default()
}

/// Logs a delivery set aside because its rows do not decode.
pub fn log_parked(delivery: i64, endpoint: &str, message: &str, error: &crate::StoreError) {
    tracing::error!(
        delivery,
        endpoint,
        message,
        error = %error,
        "a claimed delivery's rows do not decode; it is set aside for {} minutes (repair or delete the row)",
        UNDECODABLE_PARK.as_secs() / 60
    );
}

/// Logs a claimed flow run or job (`what`) set aside because its row does not decode.
pub fn log_set_aside(what: &str, id: &str, error: &crate::StoreError) {
    tracing::error!(
        what,
        id,
        error = %error,
        "a claimed {what}'s row does not decode; it is set aside for {} minutes (repair or delete the row)",
        UNDECODABLE_PARK.as_secs() / 60
    );
}

/// A delivery the engine has leased: everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub org_id: OrgId,
    pub message: Message,
    pub endpoint: Endpoint,
    /// Attempts made before this one.
    pub attempts: u32,
    pub trigger: AttemptTrigger,
    /// The application's uid, for event payloads.
    pub app_uid: Option<Uid>,
    /// Whether this is an operational webhook (hookd's own event): its failures
    /// raise no further events.
    pub operational: bool,
    /// For a forwarded received request: the body and headers to send instead of the
    /// JSON payload.
    pub raw: Option<RawBody>,
}

/// The record of one attempt, written by the engine.
#[derive(Debug, Clone)]
pub struct NewAttempt {
    pub url: String,
    /// `Success` or `Fail`.
    pub status: DeliveryStatus,
    /// The receiver's HTTP status; 0 when no answer came (refused, timeout, ...).
    pub response_status_code: i32,
    /// The first bytes of the answer, or why there was none.
    pub response: String,
    pub duration_ms: i64,
    pub trigger: AttemptTrigger,
    pub at: DateTime<Utc>,
    /// A transformation ran first.
    pub transformed: bool,
    /// The request's headers as sent (credential values hidden) and the answer's.
    pub headers: AttemptHeaders,
}

/// An attempt's headers: what was sent (the values of credential headers, such as a
/// custom `Authorization`, hidden) and what came back (none when no answer came).
/// Kept as one JSON text; bounded by the sender (`hookd_dispatch::sender`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttemptHeaders {
    #[serde(default)]
    pub request: Vec<(String, String)>,
    #[serde(default)]
    pub response: Vec<(String, String)>,
}

impl AttemptHeaders {
    /// The JSON text a backend keeps (`None` for an attempt that sent nothing).
    pub fn stored(&self) -> Option<String> {
        (!self.request.is_empty() || !self.response.is_empty())
            .then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// Read back from [`AttemptHeaders::stored`] (`None` for older attempts).
    pub fn from_stored(text: Option<&str>) -> Option<Self> {
        text.and_then(|t| serde_json::from_str(t).ok())
    }
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Delivered.
    Done,
    /// Try again at this time.
    RetryAt(DateTime<Utc>),
    /// The schedule is used up.
    Exhausted,
    /// Not attempted and never will be (endpoint gone or disabled, payload expunged).
    Cancel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttempt {
    pub id: hookd_core::id::AttemptId,
    pub msg_id: hookd_core::id::MessageId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub response: Option<String>,
    pub response_status_code: i32,
    pub response_duration_ms: i64,
    pub status: DeliveryStatus,
    pub trigger: AttemptTrigger,
    pub created_at: DateTime<Utc>,
    /// A transformation ran before this attempt (its result is what was sent).
    pub transformed: bool,
    /// `None` for attempts recorded before headers were kept, or expunged.
    pub headers: Option<AttemptHeaders>,
}

/// Narrows a message listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub event_types: Option<Vec<EventTypeName>>,
    pub channel: Option<ChannelName>,
    /// Only messages carrying this tag.
    pub tag: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// Narrows an attempt listing. One of `msg` or `endpoint` is set by the route.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptFilter {
    pub msg: Option<hookd_core::id::MessageId>,
    pub endpoint: Option<EndpointId>,
    pub status: Option<DeliveryStatus>,
    /// 1 for 1xx ... 5xx; 0 for attempts with no answer.
    pub status_code_class: Option<u16>,
    pub event_types: Option<Vec<EventTypeName>>,
    /// Only attempts of messages on this channel.
    pub channel: Option<ChannelName>,
    /// Only attempts of messages carrying this tag.
    pub tag: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// A stored answer to an idempotent request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

/// The times an idempotency claim is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdempotencyWindow {
    pub now: DateTime<Utc>,
    /// Claims started before this, still unanswered, belong to requests that died.
    pub stale_before: DateTime<Utc>,
    /// Answers given before this are forgotten.
    pub expired_before: DateTime<Utc>,
}

impl IdempotencyWindow {
    /// Judges a stored claim: `Some(answer)` while it is live (answered within
    /// `expired_before`, or unanswered but started within `stale_before`), `None` when
    /// the new request takes the key over.
    pub fn judge(
        &self,
        started: DateTime<Utc>,
        completed: Option<DateTime<Utc>>,
        fingerprint: String,
        response: Option<StoredResponse>,
    ) -> Option<IdempotencyBegin> {
        let live = match completed {
            Some(done) => done >= self.expired_before,
            None => started >= self.stale_before,
        };
        live.then_some(match (response, completed) {
            (Some(response), Some(_)) => IdempotencyBegin::Completed {
                fingerprint,
                response,
            },
            _ => IdempotencyBegin::InProgress,
        })
    }
}

/// What `IdempotencyStore::idempotency_begin` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// The key is new (or expired, or abandoned): the caller runs the request.
    Started,
    /// Another request with this key is running.
    InProgress,
    /// A request with this key was answered; `fingerprint` is of that request.
    Completed {
        fingerprint: String,
        response: StoredResponse,
    },
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryState {
    /// `Sending` while leased.
    pub status: DeliveryStatus,
    pub next_attempt: Option<DateTime<Utc>>,
}

impl DeliveryState {
    /// From a delivery row: its stored status code, whether a lease is live, and its
    /// next attempt. `None` for an unknown status code.
    pub fn from_row(status: i64, leased: bool, next: Option<DateTime<Utc>>) -> Option<Self> {
        let mut status = DeliveryStatus::from_code(status)?;
        if status == DeliveryStatus::Pending && leased {
            status = DeliveryStatus::Sending;
        }
        let next_attempt = (status == DeliveryStatus::Pending).then_some(next).flatten();
        Some(Self { status, next_attempt })
    }
}

/// Deliveries to one endpoint, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

impl EndpointStats {
    /// Adds `n` deliveries of a stored status code, leased (being sent) or not.
    pub fn add(&mut self, status: i64, leased: bool, n: u64) {
        match (status, leased) {
            (0, _) => self.success += n,
            (1, true) => self.sending += n,
            (1, false) => self.pending += n,
            (2, _) => self.fail += n,
            _ => self.canceled += n,
        }
    }
}

/// What a source is made of, as callers create and change it: its preset and options
/// typed, parsed once when the row is read.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceData {
    pub uid: Option<SourceUid>,
    pub name: String,
    /// The preset (`github`, `stripe`, ...) with its configuration, secrets included
    /// (never shown by the API).
    pub kind: SourceKind,
    /// hookd's own checks and behaviours, secrets included.
    pub options: SourceOptions,
    pub metadata: Metadata,
}

impl SourceData {
    /// Whether changing `before` into `self` starts a cron schedule afresh (it became
    /// a cron source, stopped being one, or its schedule changed): its firings then
    /// count from now, not from the old schedule's.
    pub fn resets_cron(&self, before: &SourceData) -> bool {
        match (&before.kind, &self.kind) {
            (SourceKind::Cron(old), SourceKind::Cron(new)) => old != new,
            _ => true,
        }
    }

    /// The columns a backend keeps the preset and options in: the preset's type name,
    /// its config, and the options (`null` when they are the defaults).
    pub fn spec_columns(&self) -> StoreResult<(&str, serde_json::Value, serde_json::Value)> {
        let options = if self.options == SourceOptions::default() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&self.options).map_err(|e| {
                StoreError::Internal(format!("a source's options do not serialise: {e}").into())
            })?
        };
        Ok((self.kind.type_name(), self.kind.config_json(), options))
    }

    /// Reads back what [`spec_columns`](Self::spec_columns) stored.
    pub fn parse_spec(
        kind: &str,
        config: &serde_json::Value,
        options: serde_json::Value,
    ) -> Result<(SourceKind, SourceOptions), InvalidValue> {
        let kind = SourceKind::parse(kind, Some(config))
            .map_err(|e| InvalidValue::new(format!("the {kind} config: {}", e.message)))?;
        let options = match options {
            serde_json::Value::Null => SourceOptions::default(),
            // The error's detail could quote a secret: only where it is.
            v => serde_json::from_value(v).map_err(|e| {
                InvalidValue::new(format!(
                    "the options do not parse (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?,
        };
        Ok((kind, options))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: SourceId,
    /// The hidden application whose endpoints are the source's destinations.
    pub app_id: ApplicationId,
    /// The secret part of the source's URL (`/in/{token}`).
    pub token: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub data: SourceData,
}

/// What became of a received request, numbered as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IngestStatus {
    /// Verified, kept and forwarded (or, for a provider's URL check, answered).
    Accepted = 0,
    /// Failed a check: kept, answered 4xx, never forwarded.
    Rejected = 1,
    /// Same deduplication key as an accepted request inside the window: kept,
    /// answered like the original, not forwarded.
    Duplicate = 2,
    /// Verified but not matched by the source's filter: kept, answered like an
    /// accepted request, forwarded nowhere.
    Filtered = 3,
}

impl IngestStatus {
    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Accepted,
            1 => Self::Rejected,
            2 => Self::Duplicate,
            3 => Self::Filtered,
            _ => return None,
        })
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Filtered => "filtered",
        }
    }
}

/// A request received at a source URL, as the receive handler records it.
#[derive(Debug, Clone)]
pub struct NewIngestRequest {
    /// The log entry's id, chosen by the caller (flows' runs name it).
    pub id: IngestLogId,
    pub method: String,
    pub path: String,
    pub query: String,
    /// Lower-case names, in arrival order.
    pub headers: Vec<(String, String)>,
    pub client_addr: Option<String>,
    pub body: Vec<u8>,
    /// `Accepted` or `Rejected`; the store turns an accepted request into a
    /// `Duplicate` when its key was seen inside the window.
    pub status: IngestStatus,
    /// Why it was rejected, or a note (e.g. "URL check answered").
    pub reason: Option<String>,
    pub response_status: u16,
    pub received_at: DateTime<Utc>,
    /// Deduplication key and the start of its window.
    pub dedup: Option<(String, DateTime<Utc>)>,
    /// How to forward it, when accepted and not a duplicate; `None`: keep only.
    pub forward: Option<IngestForward>,
    /// For a cron source's firing: the firing before this one (`None` for the
    /// first) and this one. Recorded only if no other node recorded it first.
    pub cron: Option<(Option<DateTime<Utc>>, DateTime<Utc>)>,
    /// The flows' runs it starts when it is accepted and not a duplicate.
    pub flow_runs: Vec<crate::NewFlowRun>,
}

/// The message an accepted request becomes.
#[derive(Debug, Clone)]
pub struct IngestForward {
    pub event_type: EventTypeName,
    /// Headers passed on to destinations (content type included).
    pub headers: Vec<(String, String)>,
    pub retain_until: DateTime<Utc>,
}

impl NewIngestRequest {
    /// The request as a destination's filter sees it.
    pub fn view(&self) -> crate::fanout::RequestView<'_> {
        crate::fanout::RequestView {
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

impl IngestForward {
    /// The message that forwards the request logged as `log_id` (its body is read from
    /// the log when sent).
    pub fn into_message(self, log_id: IngestLogId) -> NewMessage {
        NewMessage {
            event_type: self.event_type,
            event_id: None,
            channels: None,
            tags: Default::default(),
            payload: String::new(),
            retain_until: self.retain_until,
            only_endpoint: None,
            forward: Some(ForwardedRequest {
                log_id,
                headers: self.headers,
            }),
            flow_runs: Default::default(),
            deliver_at: None,
        }
    }
}

/// What `IngestStore::record_ingest` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecorded {
    pub id: IngestLogId,
    pub status: IngestStatus,
    pub msg_id: Option<MessageId>,
    /// The accepted request this one duplicates.
    pub duplicate_of: Option<IngestLogId>,
    /// Deliveries created (one per enabled destination).
    pub deliveries: usize,
    /// Flows' runs started.
    pub flow_runs: usize,
}

/// The recording of one received request, step by step. The decisions — a cron firing
/// is claimed first, only an accepted request is checked for an earlier one with its
/// key, only an accepted request that is not a duplicate is forwarded — are made here
/// once; a backend runs, inside one transaction, the SQL each step asks for:
///
/// 1. [`cron_claim`](Self::cron_claim) → claim the slot, then [`cron_claimed`](Self::cron_claimed);
/// 2. [`dedup_lookup`](Self::dedup_lookup) → find the first accepted request with the
///    key inside the window, then [`found_earlier`](Self::found_earlier);
/// 3. [`take_forward`](Self::take_forward) → insert the message, then
///    [`forwarded`](Self::forwarded);
/// 4. insert the log row from the fields, and answer [`recorded`](Self::recorded).
#[derive(Debug)]
pub struct IngestRecording {
    /// The log entry's id (the forward's message points at it).
    pub id: IngestLogId,
    pub request: NewIngestRequest,
    /// The status to record: the request's, or `Duplicate`.
    pub status: IngestStatus,
    pub duplicate_of: Option<IngestLogId>,
    pub msg_id: Option<MessageId>,
    pub deliveries: usize,
    pub flow_runs: usize,
}

impl IngestRecording {
    pub fn new(request: NewIngestRequest) -> Self {
        Self {
            id: request.id.clone(),
            status: request.status,
            request,
            duplicate_of: None,
            msg_id: None,
            deliveries: 0,
            flow_runs: 0,
        }
    }

    /// For a cron firing: the firing before it and this one, to claim before anything
    /// else.
    pub fn cron_claim(&self) -> Option<(Option<DateTime<Utc>>, DateTime<Utc>)> {
        self.request.cron
    }

    /// Whether the claim held; a conflict ends the recording (another node recorded
    /// this firing).
    pub fn cron_claimed(&self, claimed: bool) -> StoreResult<()> {
        if claimed {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "this cron firing was already recorded".into(),
            ))
        }
    }

    /// The deduplication key and the start of its window, when the request is
    /// accepted and has a key.
    pub fn dedup_lookup(&self) -> Option<(&str, DateTime<Utc>)> {
        match (&self.request.dedup, self.status) {
            (Some((key, since)), IngestStatus::Accepted) => Some((key.as_str(), *since)),
            _ => None,
        }
    }

    /// The first accepted request with the key inside the window, if any: this one
    /// becomes its duplicate.
    pub fn found_earlier(&mut self, first: Option<IngestLogId>) {
        if let Some(first) = first {
            self.status = IngestStatus::Duplicate;
            self.duplicate_of = Some(first);
        }
    }

    /// The message to insert, once, when the request is accepted and to be forwarded.
    pub fn take_forward(&mut self) -> Option<NewMessage> {
        match self.status {
            IngestStatus::Accepted => self
                .request
                .forward
                .take()
                .map(|f| f.into_message(self.id.clone())),
            _ => None,
        }
    }

    /// The inserted forward and the deliveries it made.
    pub fn forwarded(&mut self, msg: MessageId, deliveries: usize) {
        self.msg_id = Some(msg);
        self.deliveries = deliveries;
    }

    /// The flows' runs to insert, once, when the request is accepted (not a
    /// duplicate). A run whose flow was deleted meanwhile is skipped, never a reason
    /// to lose the request; the caller counts what it inserted with
    /// [`started_flow_runs`](Self::started_flow_runs).
    pub fn take_flow_runs(&mut self) -> Vec<crate::NewFlowRun> {
        let runs = std::mem::take(&mut self.request.flow_runs);
        match self.status {
            IngestStatus::Accepted => runs,
            _ => Vec::new(),
        }
    }

    /// How many of the runs were inserted.
    pub fn started_flow_runs(&mut self, n: usize) {
        self.flow_runs = n;
    }

    /// The key the log row keeps (also for a duplicate or a rejected request).
    pub fn dedup_key(&self) -> Option<&str> {
        self.request.dedup.as_ref().map(|(k, _)| k.as_str())
    }

    /// The outcome, once the log row is inserted.
    pub fn recorded(self) -> IngestRecorded {
        IngestRecorded {
            id: self.id,
            status: self.status,
            msg_id: self.msg_id,
            duplicate_of: self.duplicate_of,
            deliveries: self.deliveries,
            flow_runs: self.flow_runs,
        }
    }
}

/// A received request, as kept in the source's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRequest {
    pub id: IngestLogId,
    pub source_id: SourceId,
    pub status: IngestStatus,
    pub reason: Option<String>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub client_addr: Option<String>,
    pub body: Vec<u8>,
    pub response_status: u16,
    pub msg_id: Option<MessageId>,
    pub duplicate_of: Option<IngestLogId>,
    pub received_at: DateTime<Utc>,
}

/// Narrows a source's log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestLogFilter {
    pub status: Option<IngestStatus>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// A message that forwards a received request: its body is the request's, stored once
/// in the source's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardedRequest {
    pub log_id: IngestLogId,
    /// Headers passed on to destinations (content type included).
    pub headers: Vec<(String, String)>,
}

/// The body and headers a delivery of a forwarded request sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// The request as it was received, for a transformation: path after the receiving
    /// URL, raw query string and every header (`headers` above are only those passed on).
    pub received: ReceivedParts,
}

/// What a forwarded request looked like when it arrived (besides its body).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceivedParts {
    /// The HTTP method it came with.
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    /// Queued or under way.
    Running,
    Finished,
    Failed,
}

impl JobStatus {
    pub fn code(self) -> i32 {
        match self {
            Self::Running => 0,
            Self::Finished => 1,
            Self::Failed => 2,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            0 => Self::Running,
            1 => Self::Finished,
            _ => Self::Failed,
        }
    }

    /// As the Svix background-task API names it.
    pub fn text(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }
}

/// A durable background job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: TaskId,
    pub org_id: OrgId,
    /// What it does, e.g. `endpoint.recover`.
    pub kind: String,
    /// Its input and progress, as its kind reads them.
    pub state: serde_json::Value,
    pub status: JobStatus,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who holds a job and until when (a node's runner, or the request that queued the job
/// and runs it while its caller waits).
#[derive(Debug, Clone)]
pub struct JobLease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

/// One committed step of a job.
#[derive(Debug, Clone)]
pub struct JobStep {
    pub state: serde_json::Value,
    pub status: JobStatus,
    pub error: Option<String>,
    pub now: DateTime<Utc>,
    pub lease_until: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(status: IngestStatus) -> NewIngestRequest {
        NewIngestRequest {
            id: IngestLogId::generate(),
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: vec![],
            client_addr: None,
            body: b"{}".to_vec(),
            status,
            reason: None,
            response_status: 200,
            received_at: Utc::now(),
            dedup: Some(("key".into(), Utc::now())),
            forward: Some(IngestForward {
                event_type: EventTypeName::from_trusted("ingest.github".into()),
                headers: vec![],
                retain_until: Utc::now(),
            }),
            cron: None,
            flow_runs: Vec::new(),
        }
    }

    #[test]
    fn an_accepted_request_is_checked_for_an_earlier_one_then_forwarded_once() {
        let mut r = IngestRecording::new(request(IngestStatus::Accepted));
        assert!(r.cron_claim().is_none());
        assert_eq!(r.dedup_lookup().map(|(k, _)| k), Some("key"));
        r.found_earlier(None);
        let forward = r.take_forward().expect("forwarded");
        assert_eq!(forward.forward.as_ref().map(|f| &f.log_id), Some(&r.id));
        assert!(r.take_forward().is_none(), "once");
        let msg = MessageId::generate();
        r.forwarded(msg.clone(), 2);
        let done = r.recorded();
        assert_eq!(
            (done.status, done.msg_id, done.deliveries),
            (IngestStatus::Accepted, Some(msg), 2)
        );
    }

    #[test]
    fn a_duplicate_is_kept_with_its_original_and_not_forwarded() {
        let mut r = IngestRecording::new(request(IngestStatus::Accepted));
        let first = IngestLogId::generate();
        r.found_earlier(Some(first.clone()));
        assert!(r.take_forward().is_none());
        assert_eq!(r.dedup_key(), Some("key"), "the row keeps its key");
        let done = r.recorded();
        assert_eq!(
            (done.status, done.duplicate_of),
            (IngestStatus::Duplicate, Some(first))
        );
    }

    #[test]
    fn a_rejected_request_is_neither_deduplicated_nor_forwarded() {
        let mut r = IngestRecording::new(request(IngestStatus::Rejected));
        assert!(r.dedup_lookup().is_none());
        assert!(r.take_forward().is_none());
        assert_eq!(r.recorded().status, IngestStatus::Rejected);
    }

    #[test]
    fn a_cron_firing_another_node_recorded_is_a_conflict() {
        let mut request = request(IngestStatus::Accepted);
        let at = Utc::now();
        request.cron = Some((None, at));
        let r = IngestRecording::new(request);
        assert_eq!(r.cron_claim(), Some((None, at)));
        assert!(r.cron_claimed(true).is_ok());
        assert!(matches!(r.cron_claimed(false), Err(StoreError::Conflict(_))));
    }

    fn source(kind: &str, config: serde_json::Value) -> SourceData {
        SourceData {
            uid: None,
            name: "s".into(),
            kind: SourceKind::parse(kind, Some(&config)).unwrap(),
            options: SourceOptions::default(),
            metadata: Metadata::new(),
        }
    }

    #[test]
    fn a_source_spec_reads_back_what_was_stored() {
        let mut data = source("stripe", serde_json::json!({"secret": "whsec_x"}));
        let (kind, config, options) = data.spec_columns().unwrap();
        assert_eq!(
            (kind, options.clone()),
            ("stripe", serde_json::Value::Null),
            "default options stored as null"
        );
        let (kind, options) = SourceData::parse_spec(kind, &config, options).unwrap();
        assert_eq!((kind, options), (data.kind.clone(), SourceOptions::default()));

        data.options = serde_json::from_value(serde_json::json!({"dedup": {"header": "x-id"}})).unwrap();
        let (kind, config, options) = data.spec_columns().unwrap();
        assert!(options.is_object());
        let (_, back) = SourceData::parse_spec(kind, &config, options).unwrap();
        assert_eq!(back, data.options);
        assert!(SourceData::parse_spec("no-such-type", &config, serde_json::Value::Null).is_err());
    }

    #[test]
    fn only_a_new_schedule_or_a_new_cron_kind_resets_the_cron_count() {
        let cron =
            |schedule: &str| source("cron", serde_json::json!({"schedule": schedule, "payload": "{}"}));
        let github = source("github", serde_json::Value::Null);
        assert!(!cron("*/5 * * * *").resets_cron(&cron("*/5 * * * *")));
        assert!(cron("*/5 * * * *").resets_cron(&cron("*/6 * * * *")));
        assert!(cron("*/5 * * * *").resets_cron(&github));
        assert!(github.resets_cron(&cron("*/5 * * * *")));
    }
}
