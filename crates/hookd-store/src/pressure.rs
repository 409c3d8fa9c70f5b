//! How long writes wait for the database: the signal hookd's admission control reads
//! (`http_admission_write_wait`, hookd-server's `http::server`).
//!
//! A backend records how long writes waited (SQLite: from a job's queueing to its
//! batch's commit; PostgreSQL: the wait for a pooled connection, and a group-commit
//! batch's time from queueing to commit). What counts is the
//! *shortest* wait over a window of [`WINDOW`], as CoDel judges a queue: a burst makes
//! some writes wait and drains within the window, so some write in it waited little;
//! a queue that stands (more offered than the database commits) makes every write of
//! the window wait. [`WriteWait::current`] is that minimum for the last window, or
//! for the window in progress once it is a window old (a long batch records nothing
//! until it commits). Backends report it only while writes are waiting at that
//! moment (as CoDel acts only on a queue that is not empty): after a one-off stall,
//! the few writes it held up make a window whose every write waited, yet nothing
//! stands once they are done, and a signal nobody renews (every write refused,
//! nothing else writing) ends with the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The span over which the shortest wait is taken.
pub const WINDOW: Duration = Duration::from_millis(300);

/// No wait was recorded in the window (yet).
const NONE: u64 = u64::MAX;

/// The shortest write wait over recent windows; shared by every writer of a store
/// (lock-free: one writer thread records on SQLite, many tasks on PostgreSQL).
#[derive(Debug)]
pub struct WriteWait {
    base: Instant,
    /// When the window in progress began (µs since `base`).
    window_start: AtomicU64,
    /// The shortest wait recorded in the window in progress (µs), or [`NONE`].
    window_min: AtomicU64,
    /// The last ended window's shortest wait (µs; [`NONE`] counts as zero).
    last_min: AtomicU64,
}

impl Default for WriteWait {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            window_start: AtomicU64::new(0),
            window_min: AtomicU64::new(NONE),
            last_min: AtomicU64::new(NONE),
        }
    }
}

impl WriteWait {
    /// Records that a write waited `waited` before it started.
    pub fn record(&self, waited: Duration) {
        self.record_at(self.micros(Instant::now()), waited);
    }

    /// The shortest wait of the window in progress if it is a window old, else of the
    /// last window that ended; zero if nothing was recorded.
    pub fn current(&self) -> Duration {
        self.current_at(self.micros(Instant::now()))
    }

    fn micros(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_micros()).unwrap_or(u64::MAX)
    }

    fn record_at(&self, now: u64, waited: Duration) {
        let window = WINDOW.as_micros() as u64;
        let start = self.window_start.load(Ordering::Acquire);
        if now.saturating_sub(start) >= window
            && self
                .window_start
                .compare_exchange(start, now, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            // This caller ended the window: its minimum becomes the signal. A wait
            // recorded by another thread between the two swaps lands in the new
            // window, which is where it belongs as much as the old one.
            let min = self.window_min.swap(NONE, Ordering::AcqRel);
            self.last_min.store(min, Ordering::Release);
        }
        let waited = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX - 1);
        self.window_min.fetch_min(waited, Ordering::AcqRel);
    }

    fn current_at(&self, now: u64) -> Duration {
        let window = WINDOW.as_micros() as u64;
        let start = self.window_start.load(Ordering::Acquire);
        let in_progress = self.window_min.load(Ordering::Acquire);
        let min = if now.saturating_sub(start) >= window && in_progress != NONE {
            in_progress
        } else {
            self.last_min.load(Ordering::Acquire)
        };
        match min {
            NONE => Duration::ZERO,
            min => Duration::from_micros(min),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` hundredths of a window, in µs.
    fn at(n: u64) -> u64 {
        WINDOW.as_micros() as u64 * n / 100
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_that_drains_within_the_window_is_no_signal() {
        let w = WriteWait::default();
        // Writes through a window: most waited 40 ms, one did not wait.
        for t in (150..250).step_by(10) {
            w.record_at(at(t), ms(40));
        }
        w.record_at(at(240), ms(0));
        // The next write ends the window that began at 150.
        w.record_at(at(260), ms(40));
        assert_eq!(w.current_at(at(261)), Duration::ZERO);
    }

    #[test]
    fn a_standing_queue_is_the_shortest_wait_of_the_window() {
        let w = WriteWait::default();
        for (i, t) in (150..260).step_by(10).enumerate() {
            w.record_at(at(t), ms(60 + i as u64));
        }
        // The window from 150 ended at 250; its shortest wait was the first.
        assert_eq!(w.current_at(at(255)), ms(60));
    }

    #[test]
    fn a_window_in_progress_counts_once_it_is_a_window_old() {
        let w = WriteWait::default();
        w.record_at(at(150), ms(1));
        // A long batch: its commit records 300 ms at 260, then nothing for long.
        w.record_at(at(260), ms(300));
        assert_eq!(w.current_at(at(300)), ms(1));
        assert_eq!(w.current_at(at(361)), ms(300));
        assert_eq!(w.current_at(at(2_000)), ms(300));
    }

    #[test]
    fn nothing_recorded_is_no_wait() {
        let w = WriteWait::default();
        assert_eq!(w.current(), Duration::ZERO);
        w.record(ms(5));
        assert!(w.current() <= ms(5));
    }
}
