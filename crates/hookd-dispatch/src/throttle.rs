//! Rate limits as token buckets holding at most one second's worth: per endpoint
//! (`throttleRate`, messages per second) in the engine, per API key in the data API.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use hookd_core::id::EndpointId;

#[derive(Debug)]
pub struct Throttle<K = EndpointId> {
    buckets: HashMap<K, Bucket>,
}

impl<K> Default for Throttle<K> {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl<K: Hash + Eq + Clone> Throttle<K> {
    /// Takes one send for `endpoint` (or any key) at `rate` per second. `Ok` to send
    /// now, or `Err(wait)` until a send is allowed.
    pub fn take(&mut self, endpoint: &K, rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let bucket = self.buckets.entry(endpoint.clone()).or_insert(Bucket {
            tokens: rate,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }

    /// Forgets endpoints idle for a while, so the map does not grow without bound.
    pub fn prune(&mut self, now: Instant) {
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_rate_per_second() {
        let mut t = Throttle::default();
        let ep = EndpointId::generate();
        let start = Instant::now();
        let sent = (0..100).filter(|_| t.take(&ep, 10, start).is_ok()).count();
        assert_eq!(sent, 10, "a full bucket is one second's worth");
        let wait = t.take(&ep, 10, start).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Over the next second, ten more.
        let mut later = 0;
        for i in 1..=100 {
            if t.take(&ep, 10, start + Duration::from_millis(i * 10)).is_ok() {
                later += 1;
            }
        }
        assert!((9..=11).contains(&later), "{later}");
    }
}
