//! How many messages one room WebSocket may send: a token bucket per
//! connection. A browser sends a burst of ICE candidates when a call starts
//! (tens, up to a few hundred with many interfaces and TURN relays) and then
//! next to nothing; the bucket holds `burst` messages and refills at
//! `per_second`, so a real browser never meets it while a script flooding
//! the relay is cut off within a second. Only the offending connection is
//! closed; the room and its other participant go on.

use std::time::{Duration, Instant};

/// Messages a connection may send per second, sustained.
pub const MESSAGES_PER_SECOND: u32 = 50;
/// Messages a connection may send at once (a fresh or rested bucket).
pub const MESSAGE_BURST: u32 = 200;

/// The limit, as settings give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: MESSAGES_PER_SECOND,
            burst: MESSAGE_BURST,
        }
    }
}

/// One connection's bucket. Time is passed in, so the rule is testable
/// without waiting.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Tokens left, as a fraction: refilling is continuous.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        // A zero limit would close every connection at its first message:
        // at least one message a second, a burst of one.
        let limit = RateLimit {
            per_second: limit.per_second.max(1),
            burst: limit.burst.max(1),
        };
        Self {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Takes a token for one message at `now`; `false` when the connection
    /// is over its limit.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * f64::from(self.limit.per_second))
            .min(f64::from(self.limit.burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }
}

/// How long a sustained `rate` (messages per second) could go on from a
/// full bucket before it is refused; `None` if forever. For explanations
/// and tests.
pub fn lasts(limit: RateLimit, rate: u32) -> Option<Duration> {
    if rate <= limit.per_second {
        return None;
    }
    let excess = f64::from(rate - limit.per_second);
    Some(Duration::from_secs_f64(f64::from(limit.burst) / excess))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_of_ice_candidates_passes_then_the_flood_is_refused() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::default(), start);
        // 200 candidates in the same instant: all accepted.
        assert!((0..MESSAGE_BURST).all(|_| bucket.try_take(start)));
        // The 201st at once is over the limit.
        assert!(!bucket.try_take(start));
        // 20 ms later one more token has come back (50/s).
        assert!(bucket.try_take(start + 20 * MS));
        assert!(!bucket.try_take(start + 20 * MS));
    }

    #[test]
    fn a_sustained_rate_at_the_limit_is_never_refused() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::default(), start);
        // Ten minutes at exactly 50 messages a second, after a full burst.
        assert!((0..MESSAGE_BURST).all(|_| bucket.try_take(start)));
        let mut refused = 0;
        for i in 1..=(10 * 60 * 50) {
            if !bucket.try_take(start + i * 20 * MS) {
                refused += 1;
            }
        }
        assert_eq!(refused, 0);
    }

    #[test]
    fn a_rested_bucket_is_full_again_but_never_more() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RateLimit::default(), start);
        assert!((0..MESSAGE_BURST).all(|_| bucket.try_take(start)));
        // An hour of silence refills it to the burst, no more.
        let later = start + Duration::from_secs(3600);
        assert!((0..MESSAGE_BURST).all(|_| bucket.try_take(later)));
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn a_flood_is_cut_off_within_seconds() {
        let limit = RateLimit::default();
        // A script sending 1,000 messages a second is refused after 210 ms;
        // twice the sustained rate after 4 s.
        assert_eq!(
            lasts(limit, 1000),
            Some(Duration::from_secs_f64(200.0 / 950.0))
        );
        assert_eq!(lasts(limit, 100), Some(Duration::from_secs(4)));
        assert_eq!(lasts(limit, 50), None);
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit, start);
        let first_refusal = (0..2000u32)
            .find(|i| !bucket.try_take(start + Duration::from_micros(u64::from(*i) * 1000)))
            .unwrap();
        // 1 ms apart: 200 + 50/s × ~0.21 s ≈ 210 messages.
        assert!((205..=215).contains(&first_refusal), "{first_refusal}");
    }

    #[test]
    fn a_zero_limit_still_lets_one_message_through() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 0,
                burst: 0,
            },
            start,
        );
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_secs(1)));
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(
            RateLimit {
                per_second: 1,
                burst: 1,
            },
            start,
        );
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_secs(5)));
        assert!(!bucket.try_take(start));
    }
}
