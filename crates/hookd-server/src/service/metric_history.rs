//! The last hour of this node's figures, read from its own metrics every
//! [`READ_EVERY`], for the operator UI's overview charts: deliveries per second,
//! their success rate, the p99 attempt time, messages accepted, requests received and
//! the backlog. Kept in memory (a restart starts a new hour); `/metrics` with a
//! Prometheus server is the place for longer history and for every node at once.
//! Readings are taken only while someone has looked at the overview in the last
//! hour: a reading counts the backlog, which costs a query on a large queue.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::http::error::ApiResult;
use crate::service::Service;

/// How often a reading is taken.
pub const READ_EVERY: Duration = Duration::from_secs(10);
/// Readings kept: one hour.
const KEPT: usize = 360;

/// The counters at one moment (cumulative since the node started).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub at: DateTime<Utc>,
    /// Attempts that succeeded.
    pub delivered: u64,
    /// Attempts that failed (retried or exhausted).
    pub failed: u64,
    pub accepted: u64,
    pub received: u64,
    /// Deliveries due now (the queue).
    pub due: u64,
    /// The attempt-time histogram: (upper bound in seconds, cumulative count).
    pub buckets: Vec<(f64, u64)>,
}

/// The readings, oldest first, and when the overview was last looked at.
#[derive(Debug, Default)]
pub struct History {
    readings: Mutex<VecDeque<Reading>>,
    /// Unix seconds of the last look (0: never).
    viewed_at: std::sync::atomic::AtomicI64,
}

impl History {
    /// Notes that the overview was looked at: readings go on for an hour from now.
    pub fn viewed(&self) {
        self.viewed_at
            .store(Utc::now().timestamp(), std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether readings are wanted at `now` (the overview was looked at within the
    /// hour the history holds).
    pub fn wanted(&self, now: DateTime<Utc>) -> bool {
        let at = self.viewed_at.load(std::sync::atomic::Ordering::Relaxed);
        at > 0 && now.timestamp() - at <= (READ_EVERY.as_secs() * KEPT as u64) as i64
    }

    fn push(&self, r: Reading) {
        let mut q = self
            .readings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(r);
    }

    pub fn readings(&self) -> Vec<Reading> {
        let q = self
            .readings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        q.iter().cloned().collect()
    }
}

/// One metric line's value when its name (and label, if any) is `name` and `label`.
fn value(line: &str, name: &str, label: Option<&str>) -> Option<f64> {
    let rest = line.strip_prefix(name)?;
    let rest = match label {
        Some(l) => rest.strip_prefix('{')?.strip_prefix(l)?.strip_prefix('}')?,
        None => rest,
    };
    rest.strip_prefix(' ')?.split(' ').next()?.parse().ok()
}

/// A reading from the OpenMetrics text `/metrics` serves.
pub fn parse(text: &str, at: DateTime<Utc>) -> Reading {
    let mut r = Reading {
        at,
        ..Reading::default()
    };
    let sum = |acc: &mut u64, v: Option<f64>| {
        if let Some(v) = v {
            *acc += v as u64;
        }
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        sum(
            &mut r.delivered,
            value(line, "hookd_delivery_attempts_total", Some("outcome=\"success\"")),
        );
        sum(
            &mut r.failed,
            value(line, "hookd_delivery_attempts_total", Some("outcome=\"retry\"")),
        );
        sum(
            &mut r.failed,
            value(
                line,
                "hookd_delivery_attempts_total",
                Some("outcome=\"exhausted\""),
            ),
        );
        sum(
            &mut r.accepted,
            value(line, "hookd_messages_accepted_total", None),
        );
        if let Some(rest) = line.strip_prefix("hookd_ingest_requests_total{")
            && let Some((_, v)) = rest.split_once("} ")
        {
            sum(&mut r.received, v.split(' ').next().and_then(|v| v.parse().ok()));
        }
        sum(&mut r.due, value(line, "hookd_deliveries_due", None));
        if let Some(rest) = line.strip_prefix("hookd_delivery_attempt_duration_seconds_bucket{le=\"")
            && let Some((le, v)) = rest.split_once("\"} ")
            && let (Ok(le), Some(Ok(n))) = (le.parse::<f64>(), v.split(' ').next().map(str::parse::<f64>))
        {
            r.buckets.push((le, n as u64));
        }
    }
    r
}

/// Takes a reading now, if one is wanted.
pub async fn read(state: &Service) -> ApiResult<()> {
    if !state.history.wanted(Utc::now()) {
        return Ok(());
    }
    let text = crate::service::metrics::render(state).await?;
    state.history.push(parse(&text, Utc::now()));
    Ok(())
}

/// The p99 (seconds, the bucket's upper bound) of the attempts between two readings'
/// histograms; `None` when there were none.
pub fn p99(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(l, _)| l == le).map_or(0, |(_, n)| *n);
            (*le, n.saturating_sub(was))
        })
        .collect();
    let total = delta.iter().map(|(_, n)| *n).max()?;
    if total == 0 {
        return None;
    }
    let wanted = (total as f64 * 0.99).ceil() as u64;
    delta.iter().find(|(_, n)| *n >= wanted).map(|(le, _)| *le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_come_from_the_exposition() {
        let text = "# HELP x\nhookd_delivery_attempts_total{outcome=\"success\"} 90\n\
            hookd_delivery_attempts_total{outcome=\"retry\"} 7\n\
            hookd_delivery_attempts_total{outcome=\"exhausted\"} 3\n\
            hookd_messages_accepted_total 50\n\
            hookd_ingest_requests_total{status=\"accepted\"} 4\n\
            hookd_ingest_requests_total{status=\"rejected\"} 1\n\
            hookd_deliveries_due 12\n\
            hookd_delivery_attempt_duration_seconds_bucket{le=\"0.005\"} 10\n\
            hookd_delivery_attempt_duration_seconds_bucket{le=\"0.01\"} 95\n\
            hookd_delivery_attempt_duration_seconds_bucket{le=\"+Inf\"} 100\n";
        let r = parse(text, Utc::now());
        assert_eq!(
            (r.delivered, r.failed, r.accepted, r.received, r.due),
            (90, 10, 50, 5, 12)
        );
        assert_eq!(r.buckets.len(), 3);
        assert_eq!(p99(&[], &r.buckets), Some(f64::INFINITY));
        let before = vec![(0.005, 10), (0.01, 10), (f64::INFINITY, 10)];
        let after = vec![(0.005, 110), (0.01, 110), (f64::INFINITY, 110)];
        assert_eq!(p99(&before, &after), Some(0.005));
        assert_eq!(p99(&after, &after), None);
    }

    #[test]
    fn readings_are_wanted_for_an_hour_after_a_look() {
        let h = History::default();
        let now = Utc::now();
        assert!(!h.wanted(now), "nobody looked");
        h.viewed();
        assert!(h.wanted(now));
        assert!(h.wanted(now + chrono::Duration::minutes(59)));
        assert!(!h.wanted(now + chrono::Duration::minutes(61)));
    }
}
