//! Flows as stored (the automation issue): each flow's definition document, checked
//! by `hookd_flow::Flow::parse` before it is kept, and the key of the trigger it
//! listens to, so the place that commits an event finds its flows in one indexed read;
//! and their runs, each committed after every step.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, FlowId, FlowRunId, OrgId};
use hookd_core::name::{DataName, ItemKey};

use crate::{DocumentEdit, DocumentWritten, ScoreSubmitted};

/// What a flow is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowData {
    /// Unique in the organisation.
    pub name: DataName,
    /// The definition as the API took it.
    pub document: serde_json::Value,
    pub enabled: bool,
    /// What it listens to, e.g. `source.request:src_1`, `message.created:app_1`,
    /// `mode:app_1/signup`, `cron`, `manual` (the service builds it from the trigger,
    /// with ids resolved).
    pub trigger: String,
    /// How many of its runs may be carried out at once, over all nodes (a run counts
    /// while a runner holds its lease); `None`: no limit.
    pub concurrency: Option<u32>,
}

/// A flow.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFlow {
    pub id: FlowId,
    pub data: FlowData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a run is at: the runner's state (`hookd_flow::RunState` as JSON, opaque
/// here) and when its next step is due.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRunData {
    /// The state's status (`running`, `waiting`, `succeeded`, ...), kept beside it so
    /// the run log filters on it.
    pub status: String,
    pub state: serde_json::Value,
    /// When a runner should take its next step; `None` once the run has ended.
    pub due_at: Option<DateTime<Utc>>,
}

/// A run to start in the transaction that commits the event that triggers it (a
/// received request, ...), so the event is never kept without its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFlowRun {
    pub flow: FlowId,
    pub data: FlowRunData,
}

/// The runs an event starts, made from what the event committed (a message with its
/// id, a document write with its before and after, a score with its standing) inside
/// the event's transaction, so an event is never kept without its runs. The service
/// builds it (it knows the flows and the run's state format); the store only calls it
/// and inserts what it answers. Empty by default.
pub struct RunsFrom<T>(Option<Arc<MakeRuns<T>>>);

/// How [`RunsFrom`] makes its runs of an event.
type MakeRuns<T> = dyn Fn(&T) -> Vec<NewFlowRun> + Send + Sync;

impl<T> RunsFrom<T> {
    pub fn new(make: impl Fn(&T) -> Vec<NewFlowRun> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(make)))
    }

    /// Starts no run.
    pub fn none() -> Self {
        Self(None)
    }

    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// The runs `event` starts.
    pub fn runs(&self, event: &T) -> Vec<NewFlowRun> {
        self.0.as_ref().map(|make| make(event)).unwrap_or_default()
    }
}

impl<T> Default for RunsFrom<T> {
    fn default() -> Self {
        Self::none()
    }
}

impl<T> Clone for RunsFrom<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> std::fmt::Debug for RunsFrom<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "RunsFrom(..)"
        } else {
            "RunsFrom(none)"
        })
    }
}

/// Two are equal when both start nothing or both are the same function.
impl<T> PartialEq for RunsFrom<T> {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl<T> Eq for RunsFrom<T> {}

/// A run of a flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRun {
    pub id: FlowRunId,
    pub org_id: OrgId,
    pub flow_id: FlowId,
    pub data: FlowRunData,
    /// The node whose runner holds the run now (its lease may have run out).
    pub lease_owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The run's state once the step's write is known (its output names what it wrote).
pub type AfterWrite = Box<dyn FnOnce(&Written) -> FlowRunData + Send>;

/// A step's write, committed in the same transaction as the step's state, so a run
/// that resumes after a crash never applies it twice.
pub enum FlowWrite {
    Document {
        app: ApplicationId,
        collection: DataName,
        key: ItemKey,
        edit: DocumentEdit,
        event_retain_until: DateTime<Utc>,
        /// The runs the change starts (flows listening to the collection).
        runs: RunsFrom<DocumentWritten>,
        /// The run's state committed with the write.
        then: AfterWrite,
    },
    /// A `leaderboard.submit` step's score.
    Score {
        app: ApplicationId,
        board: DataName,
        player: ItemKey,
        score: i64,
        /// The runs the submission starts (flows listening to the board).
        runs: RunsFrom<ScoreSubmitted>,
        then: AfterWrite,
    },
    /// A `flow.call` step's child run of `flow` (of the same organisation; refused
    /// with [`crate::StoreError::NotFound`] when it is missing or disabled).
    StartRun {
        flow: FlowId,
        data: FlowRunData,
        then: AfterWrite,
    },
}

/// What a step's write did.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    Document(DocumentWritten),
    Score(ScoreSubmitted),
    /// The run a `flow.call` started.
    Run(Box<FlowRun>),
}

impl std::fmt::Debug for FlowWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Document {
                app, collection, key, ..
            } => f
                .debug_struct("Document")
                .field("app", app)
                .field("collection", collection)
                .field("key", key)
                .finish_non_exhaustive(),
            Self::Score {
                app,
                board,
                player,
                score,
                ..
            } => f
                .debug_struct("Score")
                .field("app", app)
                .field("board", board)
                .field("player", player)
                .field("score", score)
                .finish_non_exhaustive(),
            Self::StartRun { flow, .. } => f
                .debug_struct("StartRun")
                .field("flow", flow)
                .finish_non_exhaustive(),
        }
    }
}

/// What a step commits: the run's next state, or a data step's write with the state
/// computed from it.
#[derive(Debug)]
pub enum FlowNext {
    State(FlowRunData),
    Write(FlowWrite),
}

/// One committed step of a run its runner holds.
#[derive(Debug)]
pub struct FlowRunStep {
    pub next: FlowNext,
    pub now: DateTime<Utc>,
    /// `Some`: the runner keeps the run until then (its next step is due now);
    /// `None`: the lease is given up (the run ended, or waits for later, when any
    /// node may take it).
    pub lease_until: Option<DateTime<Utc>>,
    /// A caller waits on this step (a run carried out inline for an API call or a
    /// form); otherwise it is the runner's background work, which a store with a
    /// single writer commits behind what callers wait on.
    pub urgent: bool,
}

/// What saving a step came to.
#[derive(Debug, Clone, PartialEq)]
pub enum FlowRunSaved {
    /// Committed, with what the step's write did.
    Saved(Option<Written>),
    /// The runner no longer holds the run (its lease ran out and another took it, or
    /// the run was canceled or re-run meanwhile): nothing was written.
    NotHeld,
}

/// Which runs a list shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowRunFilter {
    pub flow: Option<FlowId>,
    pub status: Option<String>,
    /// Only runs started before this time.
    pub before: Option<DateTime<Utc>>,
    /// Only runs started after this time.
    pub after: Option<DateTime<Utc>>,
}

/// A secret of an organisation's flows (SMTP or Twilio credentials, an http step's
/// signing key), kept sealed: the store never sees it in the clear.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSecret {
    pub name: DataName,
    /// `hookd_core::sealed` text, bound to the organisation and the name.
    pub sealed: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
