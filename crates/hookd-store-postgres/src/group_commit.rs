//! Group commit of new messages (issue 21 item 3).
//!
//! A message written on its own costs PostgreSQL a statement, a commit (a WAL flush)
//! and a round trip, and under load the database's CPU, not hookd's, was the limit
//! (docs/benchmarks.md). So `create_message` calls that arrive while earlier ones are
//! being written wait in a queue, and the next free slot writes everything queued
//! (up to [`MAX_BATCH`] messages, [`MAX_BATCH_BYTES`] of payloads) with one multi-row
//! statement
//! ([`crate::messages::insert_batch`]): one commit, one round trip and one read of
//! each application's endpoints for the lot.
//!
//! - At most `slots` batches are written at once (a quarter of the pool, see
//!   [`GroupCommit::start`]); the rest of the pool stays free for the engine and the
//!   readers. Under load, calls gather behind busy slots; alone, a call finds a free
//!   slot and is written at once, by the single-message statement of before.
//! - A 2xx still means committed: each caller is answered after the statement that
//!   holds its message has returned.
//! - When a batch's statement fails as a whole (its application deleted meanwhile, a
//!   deadlock with another batch over the same `eventId`s, a lost connection), nothing
//!   of it was written, and each of its messages is written again on its own, so every
//!   caller gets its own exact answer.
//! - Admission control sees this queue as it sees the pool's: each batch records how
//!   long its last-queued message took from queueing to commit, and
//!   [`GroupCommit::wait`] reports that while messages are waiting
//!   ([`hookd_store::pressure`]). Without it, calls that wait here, not for a
//!   connection, would never look overloaded.
//! - Only messages sent through the API to their subscribed endpoints are gathered;
//!   a forward, a resend to one endpoint and a message that starts flow runs keep
//!   their own transaction ([`crate::messages::batchable`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use hookd_core::id::{ApplicationId, OrgId};
use hookd_store::pressure::WriteWait;
use hookd_store::{Message, NewMessage, StoreError, StoreResult};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::db;
use crate::messages::{insert_batch, insert_message};

/// Most messages one statement writes.
const MAX_BATCH: usize = 256;
/// Most payload bytes one statement carries (past it, the batch closes): the
/// statement's parameters are held whole in memory on both sides.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Calls that may wait for a slot before callers are held back.
const QUEUE_DEPTH: usize = 4_096;

type Answer = oneshot::Sender<StoreResult<(Message, usize)>>;

struct Pending {
    queued: Instant,
    org: OrgId,
    app: ApplicationId,
    message: NewMessage,
    answer: Answer,
}

/// The queue in front of the batch writer; the writer task ends when the last clone
/// (the last store clone) is dropped.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
    /// Queueing to commit, per batch (its last-queued message).
    waited: Arc<WriteWait>,
}

/// What a batch needs from the store, without keeping the store alive.
struct Shared {
    pool: Pool,
    /// Each pooled connection taken records its wait (admission control).
    wait: Arc<WriteWait>,
    /// Raised once a batch wrote deliveries.
    announce: Arc<Notify>,
    /// See [`GroupCommit::wait`].
    waited: Arc<WriteWait>,
}

impl GroupCommit {
    /// Starts the batch writer with `slots` batches written at once at most.
    pub(crate) fn start(pool: Pool, wait: Arc<WriteWait>, announce: Arc<Notify>, slots: usize) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let waited = Arc::new(WriteWait::default());
        let shared = Arc::new(Shared {
            pool,
            wait,
            announce,
            waited: Arc::clone(&waited),
        });
        tokio::spawn(run(shared, rx, Arc::new(Semaphore::new(slots.max(1)))));
        Self { queue, waited }
    }

    /// How long messages have lately taken from queueing to commit
    /// ([`WriteWait::current`]), while messages are waiting for a slot now; zero
    /// once the queue is empty.
    pub(crate) fn wait(&self) -> Duration {
        if self.queue.capacity() == self.queue.max_capacity() {
            return Duration::ZERO;
        }
        self.waited.current()
    }

    /// Writes `message` with whatever else is waiting, and answers once committed.
    pub(crate) async fn create(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        message: NewMessage,
    ) -> StoreResult<(Message, usize)> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            queued: Instant::now(),
            org: org.clone(),
            app: app.clone(),
            message,
            answer,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("the message writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the message writer dropped a message unanswered".into()))?
    }
}

async fn run(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending>, slots: Arc<Semaphore>) {
    loop {
        // A slot first: while every slot is busy, calls gather in the queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = first.message.payload.len();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.message.payload.len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            write(&shared, batch).await;
            drop(slot);
        });
    }
}

/// Writes one batch and answers each of its callers.
async fn write(shared: &Shared, batch: Vec<Pending>) {
    let asked = Instant::now();
    let client = match shared.pool.get().await {
        Ok(c) => c,
        Err(e) => {
            let e = db::pool(e);
            for p in batch {
                let _ = p.answer.send(Err(e.duplicate()));
            }
            return;
        }
    };
    shared.wait.record(asked.elapsed());
    let latest = batch.iter().map(|p| p.queued).max();
    let mut answers = Vec::with_capacity(batch.len());
    let mut messages = Vec::with_capacity(batch.len());
    for p in batch {
        answers.push(p.answer);
        messages.push((p.org, p.app, p.message));
    }
    let results = match messages.len() {
        1 => None,
        _ => match insert_batch(&client, &messages).await {
            Ok(results) => Some(results),
            Err(e) => {
                tracing::debug!(error = %e, size = messages.len(), "a message batch failed as a whole; writing its messages one by one");
                None
            }
        },
    };
    let results = match results {
        Some(results) => results,
        None => {
            let mut one_by_one = Vec::with_capacity(messages.len());
            for (org, app, message) in messages {
                one_by_one.push(insert_message(&client, &org, &app, message, None).await);
            }
            one_by_one
        }
    };
    if results.iter().any(|r| matches!(r, Ok((_, n)) if *n > 0)) {
        shared.announce.notify_one();
    }
    if let Some(latest) = latest {
        shared.waited.record(latest.elapsed());
    }
    for (answer, result) in answers.into_iter().zip(results) {
        // The caller may have gone away (client hung up); the message is committed.
        let _ = answer.send(result);
    }
}
