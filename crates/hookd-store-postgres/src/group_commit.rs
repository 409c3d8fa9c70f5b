//! Group commit: concurrent writes of one kind gathered into one statement (issue 21
//! item 3).
//!
//! A write on its own costs PostgreSQL a statement, a commit (a WAL flush) and a round
//! trip, and under load the database's CPU, not hookd's, was the limit
//! (docs/benchmarks.md). So calls that arrive while earlier ones are being written
//! wait in a queue, and the next free slot writes everything queued (up to
//! [`MAX_BATCH`] items, [`MAX_BATCH_BYTES`] of them) with one multi-row statement
//! ([`Batch::together`]). Two kinds go through it:
//! - new messages sent through the API ([`crate::messages::NewMessages`]): one commit,
//!   one round trip and one read of each application's endpoints for the lot;
//! - the engine's attempt records ([`crate::deliveries::Records`]): the deliveries
//!   moved on, the attempts logged and the endpoints' failing streaks cleared for
//!   every send that ended meanwhile.
//!
//! How a batch behaves:
//! - At most `slots` batches of a kind are written at once (a quarter of the pool,
//!   see [`crate::group_commit_slots`]); the rest of the pool stays free for the
//!   claims and the readers. Under load, calls gather behind busy slots; alone, a call
//!   finds a free slot and is written at once, by the single-item statement
//!   ([`Batch::alone`]).
//! - A 2xx still means committed: each caller is answered after the statement that
//!   holds its item has returned.
//! - When a batch's statement fails as a whole (a message's application deleted
//!   meanwhile, a deadlock with another batch), nothing of it was written, and each of
//!   its items is written again on its own, so every caller gets its own exact answer.
//!   When the connection closed under it, whether it committed is unknown: every
//!   caller is answered that the database is unavailable, and nothing is written
//!   twice.
//! - Admission control sees these queues as it sees the pool's: each batch records
//!   how long its last-queued item took from queueing to commit, and
//!   [`GroupCommit::wait`] reports that while items are waiting
//!   ([`hookd_store::pressure`]). Without it, calls that wait here, not for a
//!   connection, would never look overloaded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use hookd_store::pressure::WriteWait;
use hookd_store::{StoreError, StoreResult};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::db;

/// Most items one statement writes.
const MAX_BATCH: usize = 256;
/// Most bytes ([`Batch::bytes`]) one statement carries (past it, the batch closes):
/// the statement's parameters are held whole in memory on both sides.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Calls that may wait for a slot before callers are held back.
const QUEUE_DEPTH: usize = 4_096;

/// One kind of write that can be gathered.
#[async_trait]
pub(crate) trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Out: Send + 'static;

    /// What the item adds to a statement, roughly, in bytes.
    fn bytes(item: &Self::Item) -> usize;

    /// Writes `items` with one statement: one answer per item, in order. `Err`:
    /// nothing was written.
    async fn together(c: &Object, items: &[Self::Item]) -> StoreResult<Vec<StoreResult<Self::Out>>>;

    /// Writes one item on its own.
    async fn alone(c: &Object, item: Self::Item) -> StoreResult<Self::Out>;

    /// Whether this answer means new deliveries to announce to the engines.
    fn new_work(out: &Self::Out) -> bool;
}

struct Pending<B: Batch> {
    queued: Instant,
    item: B::Item,
    answer: oneshot::Sender<StoreResult<B::Out>>,
}

/// The queue in front of one kind's batch writer; the writer task ends when the last
/// clone (the last store clone) is dropped.
pub(crate) struct GroupCommit<B: Batch> {
    queue: mpsc::Sender<Pending<B>>,
    /// Queueing to commit, per batch (its last-queued item).
    waited: Arc<WriteWait>,
}

impl<B: Batch> Clone for GroupCommit<B> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            waited: Arc::clone(&self.waited),
        }
    }
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

impl<B: Batch> GroupCommit<B> {
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
        tokio::spawn(run::<B>(shared, rx, Arc::new(Semaphore::new(slots.max(1)))));
        Self { queue, waited }
    }

    /// How long items have lately taken from queueing to commit
    /// ([`WriteWait::current`]), while items are waiting for a slot now; zero once
    /// the queue is empty.
    pub(crate) fn wait(&self) -> Duration {
        if self.queue.capacity() == self.queue.max_capacity() {
            return Duration::ZERO;
        }
        self.waited.current()
    }

    /// Writes `item` with whatever else is waiting, and answers once committed.
    pub(crate) async fn write(&self, item: B::Item) -> StoreResult<B::Out> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            queued: Instant::now(),
            item,
            answer,
        };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("the batch writer has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Unavailable("the batch writer dropped a write unanswered".into()))?
    }
}

async fn run<B: Batch>(shared: Arc<Shared>, mut rx: mpsc::Receiver<Pending<B>>, slots: Arc<Semaphore>) {
    loop {
        // A slot first: while every slot is busy, calls gather in the queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut bytes = B::bytes(&first.item);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += B::bytes(&p.item);
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            write::<B>(&shared, batch).await;
            drop(slot);
        });
    }
}

/// Writes one batch and answers each of its callers.
async fn write<B: Batch>(shared: &Shared, batch: Vec<Pending<B>>) {
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
    let mut items = Vec::with_capacity(batch.len());
    for p in batch {
        answers.push(p.answer);
        items.push(p.item);
    }
    let results = match items.len() {
        1 => None,
        _ => match B::together(&client, &items).await {
            Ok(results) => Some(results),
            // The connection is gone: whether the statement committed is unknown, so
            // writing the items again could store them twice. Each caller hears that
            // the database is unavailable, as a lone call would.
            Err(e) if client.is_closed() => {
                tracing::warn!(error = %e, size = items.len(), "the connection closed while writing a batch");
                Some(items.iter().map(|_| Err(e.duplicate())).collect())
            }
            Err(e) => {
                tracing::debug!(error = %e, size = items.len(), "a batch failed as a whole; writing it one by one");
                None
            }
        },
    };
    let results = match results {
        Some(results) => results,
        None => {
            let mut one_by_one = Vec::with_capacity(items.len());
            for item in items {
                one_by_one.push(B::alone(&client, item).await);
            }
            one_by_one
        }
    };
    if results.iter().any(|r| r.as_ref().is_ok_and(B::new_work)) {
        shared.announce.notify_one();
    }
    if let Some(latest) = latest {
        shared.waited.record(latest.elapsed());
    }
    for (answer, result) in answers.into_iter().zip(results) {
        // The caller may have gone away (client hung up); the write is committed.
        let _ = answer.send(result);
    }
}
