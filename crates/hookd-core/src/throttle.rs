//! Delivery rate limits.

use std::num::NonZeroU16;

/// A delivery rate limit, in messages per second, of an application or an endpoint:
/// at least 1 (no limit is the absence of one). On the wire and in the database it is
/// the plain number ([`ThrottleRate::get`]); 0 there means none ([`ThrottleRate::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_no_rate() {
        assert_eq!(ThrottleRate::new(0), None);
        assert_eq!(ThrottleRate::new(1).map(ThrottleRate::get), Some(1));
        assert_eq!(ThrottleRate::new(u16::MAX).map(ThrottleRate::get), Some(u16::MAX));
    }
}
