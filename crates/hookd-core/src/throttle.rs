//! Delivery rate limits.

use std::fmt;
use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};

/// A delivery rate limit, in messages per second, of an application or an endpoint:
/// at least 1 (no limit is the absence of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ThrottleRate(NonZeroU16);

impl ThrottleRate {
    /// `None` for 0, which is no rate.
    pub fn new(per_second: u16) -> Option<Self> {
        NonZeroU16::new(per_second).map(Self)
    }

    /// Messages per second.
    pub fn get(self) -> u16 {
        self.0.get()
    }
}

impl fmt::Display for ThrottleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_rate() {
        assert_eq!(ThrottleRate::new(0), None);
        assert_eq!(ThrottleRate::new(1).map(ThrottleRate::get), Some(1));
        assert_eq!(ThrottleRate::new(u16::MAX).map(ThrottleRate::get), Some(u16::MAX));
        assert!(serde_json::from_str::<ThrottleRate>("0").is_err());
        assert_eq!(serde_json::to_string(&ThrottleRate::new(5)).unwrap(), "5");
    }
}
