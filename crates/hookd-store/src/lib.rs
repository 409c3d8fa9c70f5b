//! The storage seam of hookd.
//!
//! One trait per aggregate ([`OrgStore`], [`ApplicationStore`], [`EventTypeStore`],
//! [`EndpointStore`]), gathered in [`Store`]. Every method that touches tenant data
//! takes the organisation first, so no query can forget the tenant. Backends live in
//! their own crates and run the shared [`contract`] suite (feature `contract`).
//!
//! Updates are expressed as a [`Mutation`]: a closure the backend applies to the
//! current state inside one transaction, so concurrent PATCHes never lose each other's
//! changes and no handler needs a read-modify-write race.

pub mod copy;
mod data;
mod error;
pub mod fanout;
mod flows;
mod models;
mod page;
pub mod pressure;
pub mod rank_index;
pub mod sealing;
mod ui_sessions;

#[cfg(feature = "contract")]
pub mod contract;

pub use data::*;
pub use error::StoreError;
pub use flows::*;
pub use models::*;
pub use page::{Cursor, ListQuery, Order, Page};
pub use ui_sessions::*;

use async_trait::async_trait;
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use hookd_core::id::{
    ApiKeyId, ApplicationId, AttemptId, EndpointId, FlowId, FlowRunId, IngestLogId, MessageId, OrgId,
    SourceId, TaskId, TokenId,
};
use hookd_core::name::{DataName, EventTypeName, ItemKey};
use hookd_core::throttle::ThrottleRate;

pub type StoreResult<T> = Result<T, StoreError>;

/// A change applied to the current state of an object inside the backend's transaction.
/// Returning an error aborts the change.
pub type Mutation<T> = Box<dyn FnOnce(&mut T) -> StoreResult<()> + Send>;

/// Organisations (tenants) and their API tokens.
#[async_trait]
pub trait OrgStore: Send + Sync {
    /// Returns the organisation named `name`, creating it if needed.
    async fn ensure_org(&self, name: &str) -> StoreResult<Org>;
    /// Looks an organisation up by id or name.
    async fn find_org(&self, id_or_name: &str) -> StoreResult<Option<Org>>;
    async fn create_token(&self, org: &OrgId, token: NewToken) -> StoreResult<TokenRecord>;
    /// Finds a token by its public id. This lookup precedes tenancy: it is how the
    /// tenant of a request is learnt.
    async fn find_token(&self, id: &TokenId) -> StoreResult<Option<TokenRecord>>;
    async fn list_tokens(&self, org: &OrgId) -> StoreResult<Vec<TokenRecord>>;
    /// Revokes a token; [`StoreError::NotFound`] if the org has no such live token.
    async fn revoke_token(&self, org: &OrgId, id: &TokenId) -> StoreResult<()>;
}

/// Applications, addressed by id or uid.
#[async_trait]
pub trait ApplicationStore: Send + Sync {
    /// [`StoreError::Conflict`] if the uid is taken in this organisation.
    async fn create_application(&self, org: &OrgId, data: ApplicationData) -> StoreResult<Application>;
    async fn get_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application>;
    async fn list_applications(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: ApplicationFilter,
    ) -> StoreResult<Page<Application>>;
    async fn update_application(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<ApplicationData>,
    ) -> StoreResult<Updated<Application>>;
    /// Deletes the application and everything that belongs to it.
    async fn delete_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application>;
    /// The organisation's hidden application for operational webhooks, created on
    /// first use. It never appears in the application calls above.
    async fn operational_app(&self, org: &OrgId) -> StoreResult<ApplicationId>;
}

/// Event types, addressed by name.
#[async_trait]
pub trait EventTypeStore: Send + Sync {
    /// [`StoreError::Conflict`] if the name exists (archived or not).
    async fn create_event_type(
        &self,
        org: &OrgId,
        name: &EventTypeName,
        data: EventTypeData,
    ) -> StoreResult<EventType>;
    async fn get_event_type(&self, org: &OrgId, name: &str) -> StoreResult<EventType>;
    async fn list_event_types(
        &self,
        org: &OrgId,
        query: &ListQuery,
        include_archived: bool,
    ) -> StoreResult<Page<EventType>>;
    async fn update_event_type(
        &self,
        org: &OrgId,
        name: &str,
        change: Mutation<EventTypeData>,
    ) -> StoreResult<EventType>;
    /// Archives the event type, or removes it for good with `expunge`.
    async fn delete_event_type(&self, org: &OrgId, name: &str, expunge: bool) -> StoreResult<()>;
    /// Which of `names` do not exist in this organisation (archived ones exist).
    async fn missing_event_types(
        &self,
        org: &OrgId,
        names: &[EventTypeName],
    ) -> StoreResult<Vec<EventTypeName>>;
}

/// Endpoints of an application, addressed by id or uid.
#[async_trait]
pub trait EndpointStore: Send + Sync {
    /// [`StoreError::Conflict`] if the uid is taken in this application;
    /// [`StoreError::NotFound`] if the application is not the organisation's.
    async fn create_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        data: EndpointData,
    ) -> StoreResult<Endpoint>;
    async fn get_endpoint(&self, org: &OrgId, app: &ApplicationId, id_or_uid: &str) -> StoreResult<Endpoint>;
    /// The organisation's endpoints whose deliveries have been exhausting their retries
    /// with no success since (the auto-disable clock), longest failing first, with
    /// when that started; at most `limit`.
    async fn failing_endpoints(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> StoreResult<Vec<(Endpoint, DateTime<Utc>)>>;
    async fn list_endpoints(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<Endpoint>>;
    async fn update_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_uid: &str,
        change: Mutation<EndpointData>,
    ) -> StoreResult<Updated<Endpoint>>;
    async fn delete_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_uid: &str,
    ) -> StoreResult<Endpoint>;
}

/// Messages and their attempt log, as the API sees them.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores the message and, in the same transaction, one pending delivery for every
    /// endpoint of the application that accepts it (`hookd_core::matching`).
    /// [`StoreError::Conflict`] if the application already has a message with this
    /// `event_id`. Returns the message and how many deliveries it got.
    async fn create_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        message: NewMessage,
    ) -> StoreResult<(Message, usize)>;
    /// By id, or else by event id.
    async fn get_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_event_id: &str,
    ) -> StoreResult<Message>;
    /// The application's messages among `ids` (at most a page's worth), in no order;
    /// ids of other applications or of no message are left out.
    async fn get_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<Message>>;
    /// Newest first by default.
    async fn list_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &MessageFilter,
    ) -> StoreResult<Page<Message>>;
    /// Removes the payload; pending deliveries of it are canceled.
    async fn expunge_message_payload(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
    ) -> StoreResult<()>;
    async fn list_attempts(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &AttemptFilter,
    ) -> StoreResult<Page<MessageAttempt>>;
    async fn get_attempt(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<MessageAttempt>;
    /// Removes an attempt's recorded response.
    async fn expunge_attempt_response(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<()>;
    /// Queues a manual attempt of `msg` to `endpoint` now, whatever the endpoint's
    /// filters and the delivery's past. [`StoreError::Rejected`] when the payload was
    /// expunged.
    async fn resend(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        endpoint: &EndpointId,
    ) -> StoreResult<()>;
    /// Requeues up to `limit` failed (exhausted) deliveries to `endpoint` of messages
    /// created in `[since, until)`; returns how many. Called until it returns 0.
    async fn recover_batch(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: usize,
    ) -> StoreResult<usize>;
    /// The application's messages created in `[since, until)` that still have their
    /// payload and have no delivery to `endpoint`, by id after `after`, at most
    /// `limit` (a replay of what the endpoint missed).
    #[allow(clippy::too_many_arguments)]
    async fn messages_missing_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<Message>>;
    /// Queues a delivery of each of `msgs` (the application's, with their payload) to
    /// `endpoint`, due now, with `trigger`: a new delivery, or an existing one that is
    /// not pending made pending again. Answers how many were queued.
    async fn queue_deliveries(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        msgs: &[MessageId],
        trigger: AttemptTrigger,
    ) -> StoreResult<usize>;
    /// Removes the payloads of up to `limit` of the application's messages that still
    /// have one, canceling their pending deliveries; answers how many. Called until it
    /// returns 0.
    async fn expunge_payloads_batch(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        limit: usize,
    ) -> StoreResult<usize>;
    /// How many attempts each of `apps` made in `[since, until)`; applications with
    /// none are left out.
    async fn count_attempts(
        &self,
        org: &OrgId,
        apps: &[ApplicationId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(ApplicationId, u64)>>;
    /// Deliveries to `endpoint` by status, of messages created in `[since, until)`.
    async fn endpoint_stats(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> StoreResult<EndpointStats>;
    /// The endpoints a message was (or is being) delivered to, by endpoint id.
    async fn list_message_destinations(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        query: &ListQuery,
    ) -> StoreResult<Page<(Endpoint, DeliveryState)>>;
    /// The messages delivered (or being delivered) to an endpoint, by message id.
    async fn list_endpoint_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        query: &ListQuery,
        filter: &MessageFilter,
        status: Option<DeliveryStatus>,
    ) -> StoreResult<Page<(Message, DeliveryState)>>;
}

/// The delivery queue, as the engine sees it. Rows carry their organisation; these
/// calls serve every tenant, which is why they are separate from the API's traits.
#[async_trait]
pub trait DeliveryStore: Send + Sync {
    /// Leases up to `limit` deliveries that are due at `now` and not leased (or whose
    /// lease ran out), at most `room` per endpoint, each endpoint's oldest due first.
    /// Endpoints with pending deliveries are served in turn (in id order, each claim
    /// starting after the endpoint the previous one ended on, at most
    /// [`CLAIM_WALK_ENDPOINTS`] per claim), so one endpoint's long queue never hides
    /// the others and costs a claim only its room. Deliveries that can never be sent
    /// (endpoint disabled, payload expunged) are canceled instead of returned; one whose
    /// rows do not decode is logged and set aside for [`UNDECODABLE_PARK`] (still
    /// pending) instead of failing the claim.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
        owner: &str,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Records an attempt and moves the delivery on, releasing its lease. A success
    /// clears the endpoint's failing streak. Returns the attempt's id (`None` when the
    /// delivery was deleted meanwhile).
    async fn finish_attempt(
        &self,
        delivery: i64,
        attempt: NewAttempt,
        next: NextStep,
    ) -> StoreResult<Option<AttemptId>>;
    /// Notes that a delivery to the endpoint exhausted its retries at `now`. When the
    /// endpoint has been failing (no success) since before `disable_before`, it is
    /// disabled and `true` returned (once).
    async fn note_exhausted(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        disable_before: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Puts a leased delivery back to be claimed at `at`, without recording an attempt
    /// (throttling, shutdown).
    async fn defer(&self, delivery: i64, at: DateTime<Utc>) -> StoreResult<()>;
    /// Makes the endpoint's pending deliveries that wait for a later retry due at
    /// `now` (leased ones are left alone): a `hookd listen` session that connects again
    /// takes what waited for it at once. Answers how many were moved.
    async fn retry_endpoint_now(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
    /// Drops the leases `owner` holds (a restarted node reclaims its own work at once).
    async fn release_leases(&self, owner: &str) -> StoreResult<usize>;
    /// Pending deliveries: `(due now, scheduled later)`, for metrics.
    async fn backlog(&self, now: DateTime<Utc>) -> StoreResult<(u64, u64)>;
    /// Takes one send to `endpoint` under its `throttleRate` (`rate` per second, with a
    /// burst of one second's worth) shared by every node on this database: `Ok(None)`
    /// to send now, `Ok(Some(wait))` until a send is allowed. Only called when
    /// [`DeliveryStore::shares_throttle`]; otherwise the engine keeps the bucket in
    /// the node's memory.
    async fn throttle_take(
        &self,
        endpoint: &EndpointId,
        rate: ThrottleRate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<std::time::Duration>> {
        let _ = (endpoint, rate, now);
        Ok(None)
    }
    /// Notes that the `hookd listen` session of `endpoint` is connected to node
    /// `owner` until `until` (renewed while it stays connected), so the other nodes'
    /// engines leave its deliveries to that node ([`DeliveryStore::listeners_elsewhere`]).
    /// A single-node backend keeps nothing: its one engine serves every session.
    async fn hold_listener(
        &self,
        endpoint: &EndpointId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let _ = (endpoint, owner, until);
        Ok(())
    }
    /// The endpoints whose `hookd listen` session another node than `owner` holds at
    /// `now`: this node's engine claims none of their deliveries.
    async fn listeners_elsewhere(&self, owner: &str, now: DateTime<Utc>) -> StoreResult<Vec<EndpointId>> {
        let _ = (owner, now);
        Ok(Vec::new())
    }
    /// Whether throttling must go through [`DeliveryStore::throttle_take`] (several
    /// nodes may send to one endpoint) rather than a bucket in the node's memory.
    fn shares_throttle(&self) -> bool {
        false
    }
    /// Raised when another node committed new work, so this node's engine looks at
    /// once instead of at its next poll. `None`: a single-node backend (the API wakes
    /// the local engine directly).
    fn work_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Idempotency keys, per token.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request, unless a live claim or answer exists. A claim older
    /// than `stale_before` is taken over (its request died); an answer older than
    /// `expired_before` is forgotten.
    async fn idempotency_begin(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        fingerprint: &str,
        window: IdempotencyWindow,
    ) -> StoreResult<IdempotencyBegin>;
    async fn idempotency_complete(
        &self,
        org: &OrgId,
        token: &TokenId,
        key: &str,
        response: StoredResponse,
    ) -> StoreResult<()>;
    /// Drops a claim whose request failed on the server's side, so a retry runs again.
    async fn idempotency_abandon(&self, org: &OrgId, token: &TokenId, key: &str) -> StoreResult<()>;
}

/// Ingest sources, their URL tokens and the log of what they received.
///
/// A source owns a hidden application (its destinations are that application's
/// endpoints), created and deleted with it.
#[async_trait]
pub trait IngestStore: Send + Sync {
    /// [`StoreError::Conflict`] if the uid is taken in this organisation.
    async fn create_source(&self, org: &OrgId, data: SourceData, token: String) -> StoreResult<Source>;
    async fn get_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source>;
    async fn list_sources(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<Source>>;
    async fn update_source(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<SourceData>,
    ) -> StoreResult<Updated<Source>>;
    /// Deletes the source with its destinations, messages and log.
    async fn delete_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source>;
    /// Gives the source `token`; the current one keeps working until `old_until`.
    async fn rotate_source_token(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        token: String,
        old_until: DateTime<Utc>,
    ) -> StoreResult<Source>;
    /// The source whose current token, or previous token still in its grace period at
    /// `now`, is `token`. This lookup precedes tenancy: the URL is the credential.
    async fn find_source_by_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(OrgId, Source)>>;
    /// Keeps a received request and, when it is accepted and not a duplicate, the
    /// message forwarding it with one delivery per enabled destination — all in one
    /// transaction. `source` is as the caller found it (by token); if it was deleted
    /// since, [`StoreError::NotFound`]. A cron firing already recorded (by another
    /// node) is [`StoreError::Conflict`].
    async fn record_ingest(
        &self,
        org: &OrgId,
        source: &Source,
        request: NewIngestRequest,
    ) -> StoreResult<IngestRecorded>;
    /// Newest first by default.
    async fn list_ingest_log(
        &self,
        org: &OrgId,
        source: &SourceId,
        query: &ListQuery,
        filter: &IngestLogFilter,
    ) -> StoreResult<Page<IngestRequest>>;
    async fn get_ingest_request(
        &self,
        org: &OrgId,
        source: &SourceId,
        id: &IngestLogId,
    ) -> StoreResult<IngestRequest>;
    /// Every cron source of every organisation, with its last firing.
    async fn cron_sources(&self) -> StoreResult<Vec<(OrgId, Source, Option<DateTime<Utc>>)>>;
}

/// Housekeeping: expiring payloads and old records, in bounded batches so no single
/// transaction holds the database for long. Each returns how many rows it changed;
/// callers repeat until 0.
#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// Expunges payloads whose retention ended before `now` (their pending deliveries
    /// are canceled).
    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
    /// Deletes messages created before `cutoff`, with their deliveries and attempts,
    /// and ingest log entries received before it.
    async fn delete_messages_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
    /// Deletes ingest log entries received before `cutoff` (forwarded messages still
    /// pending are then canceled: their body is gone).
    async fn delete_ingest_requests_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
    /// Deletes idempotency records started before `cutoff`.
    async fn delete_idempotency_before(&self, cutoff: DateTime<Utc>) -> StoreResult<usize>;
}

/// The data API: an application's collections, leaderboards and modes
/// ([`Definition`]s), its documents and scores, its API keys, and usage per day.
#[async_trait]
pub trait DataStore: Send + Sync {
    /// [`StoreError::Conflict`] if the name is taken for this kind in the application;
    /// [`StoreError::NotFound`] if the application is not the organisation's.
    async fn create_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        name: &str,
        spec: DefinitionSpec,
    ) -> StoreResult<Definition>;
    async fn get_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<Definition>;
    /// By name.
    async fn list_definitions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        query: &ListQuery,
    ) -> StoreResult<Page<Definition>>;
    /// The mutation may not change the kind ([`StoreError::Rejected`]).
    async fn update_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
        change: Mutation<DefinitionSpec>,
    ) -> StoreResult<Definition>;
    /// Deletes the definition, and a collection's documents or a leaderboard's scores.
    async fn delete_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<()>;

    /// [`StoreError::NotFound`] naming the collection or the document.
    async fn get_document(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
    ) -> StoreResult<Document>;
    /// By key.
    async fn list_documents(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        query: &ListQuery,
        filter: &DocumentFilter,
    ) -> StoreResult<Page<Document>>;
    /// [`DataStore::write_document_starting`] that starts no flow run.
    async fn write_document(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
        edit: DocumentEdit,
        event_retain_until: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<DocumentWritten> {
        self.write_document_starting(
            org,
            app,
            collection,
            key,
            edit,
            event_retain_until,
            RunsFrom::none(),
        )
        .await
    }

    /// Applies `edit` to the document in one transaction: its version grows by one
    /// with each change, and when the collection publishes change events, the event
    /// message (see [`change_event`], kept until `event_retain_until`) and its
    /// deliveries are written in the same transaction, as are the flow runs that
    /// `runs` makes of the write.
    #[allow(clippy::too_many_arguments)]
    async fn write_document_starting(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
        edit: DocumentEdit,
        event_retain_until: chrono::DateTime<chrono::Utc>,
        runs: RunsFrom<DocumentWritten>,
    ) -> StoreResult<DocumentWritten>;

    /// [`DataStore::submit_score_starting`] that starts no flow run.
    async fn submit_score(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        player: &ItemKey,
        score: i64,
        now: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<ScoreSubmitted> {
        self.submit_score_starting(org, app, board, player, score, now, RunsFrom::none())
            .await
    }

    /// Combines `score` with the player's score of the period `now` falls in, under
    /// the board's policy, in one transaction with the flow runs `runs` makes of the
    /// submission; answers the player's standing after it.
    #[allow(clippy::too_many_arguments)]
    async fn submit_score_starting(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        player: &ItemKey,
        score: i64,
        now: chrono::DateTime<chrono::Utc>,
        runs: RunsFrom<ScoreSubmitted>,
    ) -> StoreResult<ScoreSubmitted>;
    /// The best `limit` of the period, best first, with the period's key.
    async fn top_scores(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        period: &Period,
        limit: usize,
    ) -> StoreResult<(String, Vec<ScoreEntry>)>;
    /// The player's entry with up to `neighbours` entries ranked just above and just
    /// below, best first. [`StoreError::NotFound`] ("score") when the player has none.
    async fn scores_around(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        player: &ItemKey,
        neighbours: usize,
        period: &Period,
    ) -> StoreResult<(String, Vec<ScoreEntry>)>;
    /// Deletes every score of the board (of every period); returns how many.
    async fn reset_leaderboard(&self, org: &OrgId, app: &ApplicationId, board: &DataName)
    -> StoreResult<u64>;

    /// [`StoreError::NotFound`] if the application is not the organisation's.
    async fn create_api_key(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        key: NewApiKey,
    ) -> StoreResult<ApiKeyRecord>;
    /// Finds a key by its public id. This lookup precedes tenancy: it is how the
    /// tenant of a portal request is learnt.
    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>>;
    /// By id (creation order).
    async fn list_api_keys(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<ApiKeyRecord>>;
    /// [`StoreError::NotFound`] if the application has no such live key.
    async fn revoke_api_key(&self, org: &OrgId, app: &ApplicationId, id: &ApiKeyId) -> StoreResult<()>;

    /// Adds to the organisation's usage of `day`.
    async fn add_usage(&self, org: &OrgId, day: NaiveDate, count: UsageCount) -> StoreResult<()>;
    /// The organisation's usage of each day in `[since, until]` that has any, oldest
    /// first.
    async fn list_usage(&self, org: &OrgId, since: NaiveDate, until: NaiveDate)
    -> StoreResult<Vec<UsageDay>>;
}

/// Durable background work (endpoint recovery, and later range replays and flows'
/// waits): one row per job, leased by one node at a time, its progress committed with
/// each step, so a job outlives a crash and resumes where its last step left it.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Queues a job of `kind` with its input as its first `state`; with `lease`, already
    /// held by its owner (who runs it now; if it stops, the lease runs out and any
    /// runner takes the job over).
    async fn create_job(
        &self,
        org: &OrgId,
        kind: &str,
        state: serde_json::Value,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<Job>;
    /// Leases the oldest running job nobody holds (or whose lease ran out) to `owner`.
    async fn claim_job(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
    ) -> StoreResult<Option<Job>>;
    /// Commits one step of a job `owner` holds: its new state and status, and the
    /// lease renewed. `false` when `owner` no longer holds it (the step is not saved).
    async fn save_job(&self, id: &TaskId, owner: &str, step: JobStep) -> StoreResult<bool>;
    /// A job of the organisation.
    async fn get_job(&self, org: &OrgId, id: &TaskId) -> StoreResult<Job>;
    /// The organisation's jobs by id (creation order), of `kinds` only and with
    /// `status` when given.
    async fn list_jobs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        status: Option<JobStatus>,
        kinds: &[&str],
    ) -> StoreResult<Page<Job>>;
    /// Gives up every lease `owner` holds (a restarted node takes its jobs back at once).
    async fn release_jobs(&self, owner: &str) -> StoreResult<()>;
}

/// Flows' definitions (see [`FlowData`]). Keys are a flow's id or its name.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// [`StoreError::Conflict`] if the name is taken in the organisation.
    async fn create_flow(&self, org: &OrgId, data: FlowData) -> StoreResult<StoredFlow>;
    async fn get_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow>;
    /// Oldest first (by id).
    async fn list_flows(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<StoredFlow>>;
    /// [`StoreError::Conflict`] if renamed to a name taken.
    async fn update_flow(
        &self,
        org: &OrgId,
        key: &str,
        change: Mutation<FlowData>,
    ) -> StoreResult<StoredFlow>;
    /// Answers what it deleted.
    async fn delete_flow(&self, org: &OrgId, key: &str) -> StoreResult<StoredFlow>;
    /// The organisation's enabled flows listening to `trigger`, oldest first.
    async fn flows_for_trigger(&self, org: &OrgId, trigger: &str) -> StoreResult<Vec<StoredFlow>>;
    /// Every enabled flow whose trigger key is `cron`, of every organisation, with the
    /// time of its last firing.
    async fn cron_flows(&self) -> StoreResult<Vec<(OrgId, StoredFlow, Option<DateTime<Utc>>)>>;
    /// Makes flow `flow`'s firing at `at`: claims it (its last firing must still be
    /// `previous`) and inserts `run` in the same transaction. `false`, with nothing
    /// written, when another node made it first or the flow is gone or disabled.
    async fn fire_cron_flow(
        &self,
        org: &OrgId,
        flow: &FlowId,
        previous: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        run: FlowRunData,
    ) -> StoreResult<bool>;
}

/// Flows' runs (see [`FlowRun`]), claimed with leases as jobs are.
#[async_trait]
pub trait FlowRunStore: Send + Sync {
    /// A run of `flow` in the organisation; with `lease`, already held by its owner
    /// (who takes its first step now) unless the flow's `concurrency` is reached: the
    /// run is then made unleased and due, for a runner to take when there is room
    /// (`lease_owner` says which). [`StoreError::NotFound`] without the flow, or when
    /// it is disabled.
    async fn create_flow_run(
        &self,
        org: &OrgId,
        flow: &FlowId,
        data: FlowRunData,
        now: DateTime<Utc>,
        lease: Option<JobLease>,
    ) -> StoreResult<FlowRun>;
    /// Leases to `owner` the run due soonest (due at `now` or before) that nobody
    /// holds, or whose lease ran out, of a flow below its `concurrency` (runs whose
    /// lease has not run out count against it, whichever node holds them).
    async fn claim_flow_run(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
    ) -> StoreResult<Option<FlowRun>> {
        Ok(self.claim_flow_runs(now, lease_until, owner, 1).await?.pop())
    }
    /// [`FlowRunStore::claim_flow_run`] up to `limit` times in one transaction (one
    /// commit for a runner's whole room), soonest due first.
    async fn claim_flow_runs(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        owner: &str,
        limit: usize,
    ) -> StoreResult<Vec<FlowRun>>;
    /// Takes one run of flow `flow` at `rate` per second from a throttle (GCRA, a
    /// burst of one second's worth) shared by every node on this database: `Ok(None)`
    /// to go on now, `Ok(Some(wait))` until a run is allowed. Only called when
    /// [`DeliveryStore::shares_throttle`]; otherwise the runner keeps the bucket in
    /// the node's memory.
    async fn flow_throttle_take(
        &self,
        flow: &FlowId,
        rate: ThrottleRate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<std::time::Duration>> {
        let _ = (flow, rate, now);
        Ok(None)
    }
    /// Commits one step of a run `owner` holds, with the step's write in the same
    /// transaction. A write that fails (a schema, a missing collection) is answered
    /// as its error and nothing is committed.
    async fn save_flow_run(
        &self,
        id: &FlowRunId,
        owner: &str,
        step: FlowRunStep,
    ) -> StoreResult<FlowRunSaved>;
    async fn get_flow_run(&self, org: &OrgId, id: &FlowRunId) -> StoreResult<FlowRun>;
    /// By id, in the query's order.
    async fn list_flow_runs(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: &FlowRunFilter,
    ) -> StoreResult<Page<FlowRun>>;
    /// Changes a run from outside its lease (cancel, re-run): whoever held it loses
    /// it, so its next save is refused.
    async fn update_flow_run(
        &self,
        org: &OrgId,
        id: &FlowRunId,
        change: Mutation<FlowRunData>,
    ) -> StoreResult<FlowRun>;
    /// Gives up every lease `owner` holds.
    async fn release_flow_runs(&self, owner: &str) -> StoreResult<()>;
    /// Deletes up to `limit` runs that ended before `cutoff` (a run that waits or
    /// retries is never deleted); answers how many.
    async fn delete_ended_flow_runs_before(&self, cutoff: DateTime<Utc>, limit: usize) -> StoreResult<usize>;
}

/// The organisation's flow secrets (see [`FlowSecret`]), by name.
#[async_trait]
pub trait FlowSecretStore: Send + Sync {
    /// Creates or replaces the secret `name`; answers it and whether it was created.
    async fn put_flow_secret(
        &self,
        org: &OrgId,
        name: &DataName,
        sealed: String,
    ) -> StoreResult<(FlowSecret, bool)>;
    async fn get_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<FlowSecret>;
    /// By name, in the query's order.
    async fn list_flow_secrets(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<FlowSecret>>;
    async fn delete_flow_secret(&self, org: &OrgId, name: &str) -> StoreResult<()>;
}

/// Everything a hookd node needs from its database.
#[async_trait]
pub trait Store:
    OrgStore
    + ApplicationStore
    + EventTypeStore
    + EndpointStore
    + MessageStore
    + DeliveryStore
    + IdempotencyStore
    + IngestStore
    + RetentionStore
    + DataStore
    + JobStore
    + FlowStore
    + FlowRunStore
    + FlowSecretStore
    + UiSessionStore
    + sealing::SecretStore
    + std::fmt::Debug
{
    /// Cheap check that the database answers (for readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Which backend this is, for logs and `config print`.
    fn backend_name(&self) -> &'static str;
    /// How long writes callers wait on have lately waited before they started
    /// ([`pressure::WriteWait::current`]), zero unless writes are waiting now: what
    /// admission control reads.
    fn write_wait(&self) -> std::time::Duration;
}
