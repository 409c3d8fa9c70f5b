//! The retry schedule: the delays after each failed attempt, e.g. `5s,5m,30m,2h`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::InvalidValue;

#[derive(Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    pub fn delays(&self) -> &[Duration] {
        &self.0
    }

    /// The delay after the `failed_attempts`-th failure (1-based), or `None` once the
    /// schedule is exhausted.
    pub fn delay_after(&self, failed_attempts: usize) -> Option<Duration> {
        failed_attempts
            .checked_sub(1)
            .and_then(|i| self.0.get(i))
            .copied()
    }

    /// How many retries the schedule holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Spreads `delay` by up to ±20% so that endpoints that failed together do not all
/// retry in the same instant. `unit` is a random number in [0, 1).
pub fn jitter(delay: Duration, unit: f64) -> Duration {
    let factor = 0.8 + 0.4 * unit.clamp(0.0, 1.0);
    delay.mul_f64(factor)
}

/// The delay a `Retry-After` answer asks for, bounded so that a receiver can neither
/// make hookd hammer it (at least `floor`) nor park a delivery for days (at most
/// `ceiling`).
pub fn honour_retry_after(asked: Duration, floor: Duration, ceiling: Duration) -> Duration {
    asked.clamp(floor, ceiling.max(floor))
}

impl Default for RetrySchedule {
    fn default() -> Self {
        "5s,5m,30m,2h,5h,10h,10h"
            .parse()
            .unwrap_or_else(|_| Self(Vec::new()))
    }
}

impl FromStr for RetrySchedule {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            // No retries at all is a legitimate (if unusual) choice.
            return Ok(Self(Vec::new()));
        }
        let delays = s
            .split(',')
            .map(|part| {
                humantime::parse_duration(part.trim())
                    .map_err(|e| InvalidValue::new(format!("{:?} is not a duration ({e})", part.trim())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > 50 {
            return Err(InvalidValue::new("at most 50 retries may be scheduled"));
        }
        Ok(Self(delays))
    }
}

impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|d| humantime::format_duration(*d).to_string().replace(' ', ""))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetrySchedule({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn default_schedule() {
        let s = RetrySchedule::default();
        assert_eq!(s.delays().len(), 7);
        assert_eq!(s.delay_after(1), Some(Duration::from_secs(5)));
        assert_eq!(s.delay_after(2), Some(Duration::from_secs(300)));
        assert_eq!(s.delay_after(7), Some(Duration::from_secs(36_000)));
        assert_eq!(s.delay_after(8), None);
        assert_eq!(s.delay_after(0), None);
        assert_eq!(s.to_string(), "5s,5m,30m,2h,5h,10h,10h");
    }

    #[test]
    fn bad_input_is_named() {
        let err = "5s,soon".parse::<RetrySchedule>().unwrap_err();
        assert!(err.message.contains("soon"), "{err}");
        assert!("".parse::<RetrySchedule>().unwrap().delays().is_empty());
        assert_eq!("100ms, 1s".parse::<RetrySchedule>().unwrap().delays().len(), 2);
    }

    #[test]
    fn retry_after_is_bounded() {
        let (floor, ceiling) = (Duration::from_secs(1), Duration::from_secs(3600));
        assert_eq!(honour_retry_after(Duration::ZERO, floor, ceiling), floor);
        assert_eq!(
            honour_retry_after(Duration::from_secs(30), floor, ceiling),
            Duration::from_secs(30)
        );
        assert_eq!(
            honour_retry_after(Duration::from_secs(86_400), floor, ceiling),
            ceiling
        );
    }

    proptest! {
        #[test]
        fn jitter_stays_within_twenty_percent(secs in 1u64..100_000, unit in 0.0f64..1.0) {
            let d = Duration::from_secs(secs);
            let j = jitter(d, unit);
            prop_assert!(j >= d.mul_f64(0.8) && j <= d.mul_f64(1.2));
        }

        #[test]
        fn display_round_trips(secs in proptest::collection::vec(1u64..100_000, 0..10)) {
            let s = RetrySchedule(secs.iter().map(|s| Duration::from_secs(*s)).collect());
            prop_assert_eq!(s.to_string().parse::<RetrySchedule>().unwrap(), s);
        }
    }
}
