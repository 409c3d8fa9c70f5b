//! The single writer: one thread owns the write connection and runs write jobs in
//! group commits.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` each commit costs an
//! fsync. Jobs queued while a commit is in progress are therefore gathered (up to
//! [`MAX_BATCH`]) into one transaction. Each job runs inside its own savepoint, so a job
//! that fails rolls back alone; every caller is answered only after the shared COMMIT
//! has returned, which keeps the rule that a 2xx means the data is on disk.
//!
//! Jobs come in two lanes. [`Lane::Now`] is what a caller is waiting on (an API
//! request, a received webhook, a form). [`Lane::Later`] is background work that
//! catches up on its own (the flow runner's claims and steps): a batch takes every
//! waiting `Now` job, then `Later` jobs only until the batch has run for
//! [`LATER_BUDGET`] (and at most [`MAX_BATCH`] jobs), so background work that
//! outgrows the writer falls behind itself instead of making every request wait
//! behind it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hookd_store::pressure::WriteWait;
use hookd_store::{StoreError, StoreResult};
use rusqlite::Connection;

use crate::checkpoint::Checkpoints;
use tokio::sync::{mpsc, oneshot};

/// Most jobs one transaction carries.
const MAX_BATCH: usize = 256;
/// Jobs that may wait for the writer before callers are held back.
const QUEUE_DEPTH: usize = 4_096;
/// `Later` jobs the writer takes off the queue and keeps aside; past it, their
/// callers are held back by the queue as before.
const LATER_DEPTH: usize = 4_096;
/// How long a batch may run before it stops taking `Later` jobs: short beside a
/// commit, so a request that arrives behind background work waits about one commit
/// more at most.
const LATER_BUDGET: Duration = Duration::from_micros(1_500);

/// Whether a caller waits on a job ([`Lane::Now`]) or it is background work
/// ([`Lane::Later`]); see the module's documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    Now,
    Later,
}

type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;
/// A job runs on the connection, or is handed the error that kept it from running.
type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> (bool, Finish) + Send>;

/// A job in the queue: its lane and when it was queued.
type Queued = (Lane, Instant, Job);

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Queued>,
    /// How long `Now` jobs wait from their queueing to their commit (admission
    /// control's signal, [`hookd_store::pressure`]).
    wait: Arc<WriteWait>,
    /// How many `Now` jobs are in the channel, not yet taken by the writer thread.
    now_queued: Arc<AtomicUsize>,
}

impl Writer {
    /// Starts the writer thread on `conn`. The thread ends when every `Writer` clone is
    /// dropped and the queue is drained.
    /// Each commit tells `checkpoints` (see [`crate::checkpoint`]).
    pub(crate) fn start(conn: Connection, checkpoints: Checkpoints) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        let wait = Arc::new(WriteWait::default());
        let recorded = Arc::clone(&wait);
        let now_queued = Arc::new(AtomicUsize::new(0));
        let taken = Arc::clone(&now_queued);
        std::thread::Builder::new()
            .name("hookd-sqlite-writer".into())
            .spawn(move || run(&conn, rx, &checkpoints, &recorded, &taken))?;
        Ok(Self {
            jobs,
            wait,
            now_queued,
        })
    }

    /// How long jobs callers wait on have lately taken from their queueing to their
    /// commit ([`WriteWait::current`]), while such a job is waiting now: once none
    /// waits, what the last window saw (jobs held up by a one-off stall, a lock
    /// another process held) is over. Background jobs queued meanwhile do not renew
    /// it: they wait by design, and a write refused after a stall would otherwise be
    /// refused for as long as one of them sat in the channel.
    pub(crate) fn wait(&self) -> Duration {
        if self.now_queued.load(Ordering::Acquire) == 0 {
            return Duration::ZERO;
        }
        self.wait.current()
    }

    /// Runs `f` in a write transaction, in `lane`, and answers once it is committed.
    pub(crate) async fn write<T, F>(&self, lane: Lane, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => f(conn),
                Err(e) => Err(e.duplicate()),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |commit_error| {
                let answer = match (result, commit_error) {
                    (Ok(_), Some(e)) => Err(e.duplicate()),
                    (result, _) => result,
                };
                // The caller may have gone away (client hung up); the data is committed.
                let _ = tx.send(answer);
            });
            (ok, finish)
        });
        let mut sending = Sending::start(lane, &self.now_queued);
        self.jobs
            .send((lane, Instant::now(), job))
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        sending.sent();
        rx.await
            .map_err(|_| StoreError::Unavailable("a write job panicked; it was rolled back".into()))?
    }
}

/// Counts a `Now` job in [`Writer::now_queued`] while it is sent, and counts it out
/// again unless it reached the channel (a full channel's send fails, or its caller
/// hangs up meanwhile); once sent, the writer thread counts it out as it takes it.
struct Sending<'a>(Option<&'a AtomicUsize>);

impl<'a> Sending<'a> {
    fn start(lane: Lane, now_queued: &'a AtomicUsize) -> Self {
        if lane != Lane::Now {
            return Self(None);
        }
        now_queued.fetch_add(1, Ordering::AcqRel);
        Self(Some(now_queued))
    }

    fn sent(&mut self) {
        self.0 = None;
    }
}

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        if let Some(now_queued) = self.0 {
            now_queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn run(
    conn: &Connection,
    mut rx: mpsc::Receiver<Queued>,
    checkpoints: &Checkpoints,
    wait: &WriteWait,
    now_queued: &AtomicUsize,
) {
    let mut queue = Queue {
        now: Vec::new(),
        later: VecDeque::new(),
        now_queued,
    };
    loop {
        if queue.later.is_empty() {
            match rx.blocking_recv() {
                Some(job) => queue.push(job),
                None => break,
            }
        }
        queue.fill(&mut rx);
        // The batch's shortest time from queueing to commit is its last-queued `Now`
        // job's: the one admission control's window keeps.
        let latest = queue.now.iter().map(|(queued, _)| *queued).max();
        let now: Vec<Job> = queue.now.drain(..).map(|(_, job)| job).collect();
        if run_batch(conn, now, &mut queue.later) {
            checkpoints.committed();
        }
        if let Some(latest) = latest {
            wait.record(latest.elapsed());
        }
    }
    tracing::debug!("SQLite writer stopped");
}

/// The jobs taken off the channel, by lane.
struct Queue<'a> {
    /// With when each was queued.
    now: Vec<(Instant, Job)>,
    later: VecDeque<Job>,
    /// [`Writer::now_queued`], counted down as `Now` jobs are taken.
    now_queued: &'a AtomicUsize,
}

impl Queue<'_> {
    fn push(&mut self, (lane, queued, job): Queued) {
        match lane {
            Lane::Now => {
                self.now_queued.fetch_sub(1, Ordering::AcqRel);
                self.now.push((queued, job));
            }
            // Background work waits by design: its time is no signal.
            Lane::Later => self.later.push_back(job),
        }
    }

    /// Takes what is queued, while a batch has room for `Now` jobs and `Later` ones
    /// have room aside.
    fn fill(&mut self, rx: &mut mpsc::Receiver<Queued>) {
        while self.now.len() < MAX_BATCH && self.later.len() < LATER_DEPTH {
            match rx.try_recv() {
                Ok(job) => self.push(job),
                Err(_) => break,
            }
        }
    }
}

/// Runs `now`, then as many of `later` as [`LATER_BUDGET`] and [`MAX_BATCH`] allow,
/// in one transaction; whether it was committed.
fn run_batch(conn: &Connection, now: Vec<Job>, later: &mut VecDeque<Job>) -> bool {
    let started = Instant::now();
    let mut now = now.into_iter();
    let mut taken = 0;
    // The next job of the batch: the `Now` ones, then `Later` ones while there is time
    // (also when no `Now` job waits: one may arrive meanwhile, and it then waits for
    // this batch to end).
    let mut next = || {
        let job = now.next().or_else(|| {
            let spent = taken >= MAX_BATCH || started.elapsed() >= LATER_BUDGET;
            if spent { None } else { later.pop_front() }
        });
        taken += 1;
        job
    };
    if let Err(e) = cached(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "SQLite writer could not begin a transaction");
        let err = StoreError::Unavailable(format!("could not begin a transaction: {e}"));
        while let Some(job) = next() {
            let (_, finish) = job(Err(&err));
            finish(None);
        }
        return false;
    }
    let mut finishes: Vec<Finish> = Vec::with_capacity(64);
    // Set when SQLite rolled the whole transaction back by itself (it may on a full
    // disk, an I/O error or out of memory): every job of the batch is lost, and no
    // later job may run outside the transaction (a SAVEPOINT would open a new one
    // that its RELEASE commits alone).
    let mut lost: Option<StoreError> = None;
    while let Some(job) = next() {
        if let Some(err) = &lost {
            let (_, finish) = job(Err(err));
            finishes.push(finish);
            continue;
        }
        if let Err(e) = cached(conn, "SAVEPOINT job") {
            tracing::error!(error = %e, "SQLite writer could not open a savepoint");
            let err = StoreError::Unavailable(format!("could not open a savepoint: {e}"));
            let (_, finish) = job(Err(&err));
            finishes.push(finish);
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| job(Ok(conn)))) {
            Ok((ok, finish)) => {
                if conn.is_autocommit() {
                    lost = Some(rolled_back());
                } else {
                    let end = if ok {
                        cached(conn, "RELEASE job")
                    } else {
                        conn.execute_batch("ROLLBACK TO job; RELEASE job")
                    };
                    if let Err(e) = end {
                        tracing::error!(error = %e, "SQLite writer could not close a savepoint");
                    }
                }
                finishes.push(finish);
            }
            Err(_) => {
                // The job's answer channel went down with it; its caller sees an error.
                tracing::error!("a write job panicked; its changes were rolled back");
                if conn.is_autocommit() {
                    lost = Some(rolled_back());
                } else {
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                }
            }
        }
    }
    let commit_error = match lost {
        Some(err) => {
            tracing::error!(error = %err, "SQLite rolled a write batch back");
            Some(err)
        }
        None => cached(conn, "COMMIT").err().map(|e| {
            tracing::error!(error = %e, "SQLite commit failed; the batch was rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::Unavailable(format!("the commit failed: {e}"))
        }),
    };
    let committed = commit_error.is_none();
    for finish in finishes {
        finish(commit_error.as_ref());
    }
    committed
}

fn rolled_back() -> StoreError {
    StoreError::Unavailable(
        "SQLite rolled the transaction back (the disk full, an I/O error or out of memory); nothing was written"
            .into(),
    )
}

/// Runs one statement of the writer's own, prepared once (two per job: parsing them
/// each time showed in profiles).
fn cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &tempfile::TempDir) -> Writer {
        let path = dir.path().join("lanes.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (lane TEXT, n INTEGER)")
            .unwrap();
        let checkpoints = Checkpoints::start(Connection::open(&path).unwrap()).unwrap();
        Writer::start(conn, checkpoints).unwrap()
    }

    /// The committed rows written in `lane` (`now` or `later`).
    async fn rows(writer: &Writer, lane: &'static str) -> i64 {
        writer
            .write(Lane::Now, move |c| {
                c.query_row("SELECT count(*) FROM t WHERE lane = ?", [lane], |r| r.get(0))
                    .map_err(StoreError::internal)
            })
            .await
            .unwrap()
    }

    /// Background jobs queued ahead of a job a caller waits on do not hold it back:
    /// it is committed once [`LATER_BUDGET`] of them have run, and every one of them
    /// is committed afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waited_on_job_goes_ahead_of_background_work_that_all_gets_done() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        // Hold the writer so the queue fills behind this job.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holding = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(Lane::Now, move |_| {
                    held.recv().ok();
                    Ok(())
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        const LATER: usize = 200;
        let ran = Arc::new(AtomicUsize::new(0));
        let mut later = Vec::new();
        for n in 0..LATER {
            let (w, ran) = (writer.clone(), Arc::clone(&ran));
            later.push(tokio::spawn(async move {
                w.write(Lane::Later, move |c| {
                    // About 200 µs each: the whole backlog is some 40 ms of work.
                    std::thread::sleep(Duration::from_micros(200));
                    ran.fetch_add(1, Ordering::SeqCst);
                    c.execute("INSERT INTO t VALUES ('later', ?)", [n as i64])
                        .map_err(StoreError::internal)
                })
                .await
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let urgent = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(Lane::Now, |c| {
                    c.execute("INSERT INTO t VALUES ('now', 0)", [])
                        .map_err(StoreError::internal)
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        urgent.await.unwrap().unwrap();
        let before_urgent = ran.load(Ordering::SeqCst);
        assert!(
            before_urgent < LATER / 4,
            "{before_urgent} of {LATER} background jobs ran before the waited-on one was answered"
        );
        for job in later {
            assert_eq!(job.await.unwrap().unwrap(), 1);
        }
        assert_eq!(rows(&writer, "later").await, LATER as i64);
    }

    /// Offered faster than the writer serves, waited-on jobs queue, and the queue's
    /// wait is what `wait()` reports (admission control's signal); once the queue has
    /// drained and nothing more is offered, the report lapses to zero.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_standing_queue_shows_as_the_writers_wait_and_lapses_when_it_drains() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        assert_eq!(writer.wait(), Duration::ZERO);
        // A job every millisecond, each 3 ms of the writer's time: about three times
        // what it serves, for 400 ms.
        let mut jobs = Vec::new();
        for n in 0..400_i64 {
            let w = writer.clone();
            jobs.push(tokio::spawn(async move {
                w.write(Lane::Now, move |c| {
                    std::thread::sleep(Duration::from_millis(3));
                    c.execute("INSERT INTO t VALUES ('now', ?)", [n])
                        .map_err(StoreError::internal)
                })
                .await
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let standing = writer.wait();
        assert!(
            standing >= Duration::from_millis(50),
            "the writer's wait with a standing queue was {standing:?}"
        );
        for job in jobs {
            assert_eq!(job.await.unwrap().unwrap(), 1);
        }
        tokio::time::sleep(hookd_store::pressure::WINDOW * 3).await;
        assert_eq!(writer.wait(), Duration::ZERO);
        assert_eq!(rows(&writer, "now").await, 400);
    }

    /// A stall (here a long job; in production a lock another process held) leaves a
    /// window whose every waited-on job waited long. Once none waits, background jobs
    /// sitting in the channel do not bring that old signal back: a write offered
    /// then is admitted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_jobs_queued_after_a_stall_do_not_renew_its_signal() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        let insert = |lane: Lane, sleep_ms: u64| {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write(lane, move |c| {
                    std::thread::sleep(Duration::from_millis(sleep_ms));
                    c.execute("INSERT INTO t VALUES ('x', 1)", [])
                        .map_err(StoreError::internal)
                })
                .await
            })
        };
        let stall = insert(Lane::Now, 700);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let held = insert(Lane::Now, 0);
        stall.await.unwrap().unwrap();
        held.await.unwrap().unwrap();
        // The window the held job's wait opened is now a window old.
        tokio::time::sleep(hookd_store::pressure::WINDOW + Duration::from_millis(50)).await;
        let background = insert(Lane::Later, 300);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = insert(Lane::Later, 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            writer.wait.current() >= Duration::from_millis(500),
            "the stall's window is still the last one: {:?}",
            writer.wait.current()
        );
        assert!(
            writer.jobs.capacity() < writer.jobs.max_capacity(),
            "a job sits in the channel"
        );
        assert_eq!(writer.wait(), Duration::ZERO);
        background.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
    }

    /// A waited-on job that arrives while the writer is busy with background work
    /// waits for one short batch, not for the whole backlog.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waited_on_job_arriving_during_background_work_is_not_held_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        const LATER: usize = 200;
        let ran = Arc::new(AtomicUsize::new(0));
        let mut later = Vec::new();
        for n in 0..LATER {
            let (w, ran) = (writer.clone(), Arc::clone(&ran));
            later.push(tokio::spawn(async move {
                w.write(Lane::Later, move |c| {
                    std::thread::sleep(Duration::from_micros(200));
                    ran.fetch_add(1, Ordering::SeqCst);
                    c.execute("INSERT INTO t VALUES ('later', ?)", [n as i64])
                        .map_err(StoreError::internal)
                })
                .await
            }));
        }
        // The writer is into the backlog (some 40 ms of it) when this one comes.
        while ran.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        writer
            .write(Lane::Now, |c| {
                c.execute("INSERT INTO t VALUES ('now', 0)", [])
                    .map_err(StoreError::internal)
            })
            .await
            .unwrap();
        let before_urgent = ran.load(Ordering::SeqCst);
        assert!(
            before_urgent < LATER / 4,
            "{before_urgent} of {LATER} background jobs ran before the waited-on one was answered"
        );
        for job in later {
            assert_eq!(job.await.unwrap().unwrap(), 1);
        }
    }

    /// With nothing waited on, background jobs all commit, and a failing one rolls
    /// back alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_jobs_alone_commit_and_fail_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let writer = writer(&dir);
        let mut jobs = Vec::new();
        for n in 0..600_i64 {
            let w = writer.clone();
            jobs.push(tokio::spawn(async move {
                w.write(Lane::Later, move |c| {
                    c.execute("INSERT INTO t VALUES ('later', ?)", [n])
                        .map_err(StoreError::internal)?;
                    if n % 100 == 7 {
                        return Err(StoreError::Conflict("refused".into()));
                    }
                    Ok(())
                })
                .await
            }));
        }
        let mut refused = 0;
        for job in jobs {
            if job.await.unwrap().is_err() {
                refused += 1;
            }
        }
        assert_eq!(refused, 6);
        assert_eq!(rows(&writer, "later").await, 594);
    }
}
