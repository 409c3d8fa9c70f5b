//! What an answer means for the delivery: done, retry (when), give up, and whether the
//! endpoint should be disabled or paused.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookd_core::retry::{RetrySchedule, honour_retry_after, jitter};
use hookd_store::{DeliveryStatus, NextStep};

use crate::sender::Sent;

/// Bounds on how long a `Retry-After` may push a retry.
pub const RETRY_AFTER_FLOOR: Duration = Duration::from_secs(1);
pub const RETRY_AFTER_CEILING: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The attempt's status: `Success` or `Fail`.
    pub attempt: DeliveryStatus,
    pub next: NextStep,
    /// 410 Gone: the receiver asks never to be called again.
    pub disable_endpoint: bool,
    /// Back-pressure (429, 502, 503, 504): hold every delivery to this endpoint for
    /// this long, not only this one.
    pub pause_endpoint: Option<Duration>,
}

/// Judges one attempt. `failures` counts failed attempts including this one;
/// `unit` is a random number in [0, 1) for jitter.
pub fn judge(
    sent: &Sent,
    failures: usize,
    schedule: &RetrySchedule,
    now: DateTime<Utc>,
    unit: f64,
) -> Verdict {
    let status = sent.status;
    if status.is_some_and(|s| (200..300).contains(&s)) {
        return Verdict {
            attempt: DeliveryStatus::Success,
            next: NextStep::Done,
            disable_endpoint: false,
            pause_endpoint: None,
        };
    }
    if status == Some(410) {
        return Verdict {
            attempt: DeliveryStatus::Fail,
            next: NextStep::Exhausted,
            disable_endpoint: true,
            pause_endpoint: None,
        };
    }
    let back_pressure = matches!(status, Some(429 | 502 | 503 | 504));
    let asked = sent
        .retry_after
        .map(|d| honour_retry_after(d, RETRY_AFTER_FLOOR, RETRY_AFTER_CEILING));
    let next = match schedule.delay_after(failures) {
        None => NextStep::Exhausted,
        Some(planned) => {
            // A receiver's Retry-After may postpone a retry, never bring it forward.
            let delay = jitter(planned, unit).max(asked.unwrap_or_default());
            NextStep::RetryAt(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
        }
    };
    Verdict {
        attempt: DeliveryStatus::Fail,
        next,
        disable_endpoint: false,
        pause_endpoint: back_pressure.then(|| asked.unwrap_or(RETRY_AFTER_FLOOR)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(status: Option<u16>, retry_after: Option<u64>) -> Sent {
        Sent {
            url: "https://x".into(),
            status,
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
            duration: Duration::ZERO,
            headers: Default::default(),
        }
    }

    #[test]
    fn verdicts() {
        let schedule: RetrySchedule = "10s,1m".parse().unwrap();
        let now = Utc::now();
        let ok = judge(&sent(Some(204), None), 0, &schedule, now, 0.5);
        assert_eq!(ok.next, NextStep::Done);
        assert_eq!(ok.attempt, DeliveryStatus::Success);

        let first = judge(&sent(Some(500), None), 1, &schedule, now, 0.5);
        assert_eq!(first.next, NextStep::RetryAt(now + chrono::Duration::seconds(10)));
        assert_eq!(first.pause_endpoint, None);
        let last = judge(&sent(None, None), 3, &schedule, now, 0.5);
        assert_eq!(last.next, NextStep::Exhausted);

        let gone = judge(&sent(Some(410), None), 1, &schedule, now, 0.5);
        assert!(gone.disable_endpoint);
        assert_eq!(gone.next, NextStep::Exhausted);

        let busy = judge(&sent(Some(429), Some(120)), 1, &schedule, now, 0.5);
        assert_eq!(busy.next, NextStep::RetryAt(now + chrono::Duration::seconds(120)));
        assert_eq!(busy.pause_endpoint, Some(Duration::from_secs(120)));
        let redirect = judge(&sent(Some(302), None), 1, &schedule, now, 0.5);
        assert_eq!(redirect.attempt, DeliveryStatus::Fail);
        // A Retry-After shorter than the schedule does not bring the retry forward.
        let early = judge(&sent(Some(503), Some(1)), 2, &schedule, now, 0.5);
        assert_eq!(early.next, NextStep::RetryAt(now + chrono::Duration::seconds(60)));
    }
}
