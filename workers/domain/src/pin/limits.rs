//! How many PIN attempts are let through: a token bucket per client
//! address (kept by the service with `governor`) on top of the per-tax-code
//! lock (`sign_in::LockPolicy`), and the failed attempts of the last minute
//! over every address, whose ceiling is an alert.

use std::time::Duration;

/// The per-address bucket: `per_minute` attempts refill each minute, up to
/// `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimit {
    pub per_minute: u32,
    pub burst: u32,
}

/// The `Retry-After` of a refusal: whole seconds, rounded up, at least one.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

/// Failed attempts of the last 60 seconds, counted per second: `record`
/// and `count` take the current Unix second, so the window is tested
/// without a clock.
#[derive(Debug, Clone)]
pub struct FailureWindow {
    /// (second, failures in it), for the last 60 seconds.
    buckets: [(u64, u64); 60],
}

impl Default for FailureWindow {
    fn default() -> Self {
        Self {
            buckets: [(u64::MAX, 0); 60],
        }
    }
}

impl FailureWindow {
    /// One more failure at `second`; returns the failures of the minute
    /// ending then.
    pub fn record(&mut self, second: u64) -> u64 {
        let slot = &mut self.buckets[(second % 60) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
        self.count(second)
    }

    /// The failures of the 60 seconds ending at `second`.
    pub fn count(&self, second: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|(at, _)| *at <= second && second - *at < 60)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Whether `failures` in the last minute reach the alert `ceiling`.
pub fn over_ceiling(failures: u64, ceiling: u32) -> bool {
    failures >= u64::from(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(5_001)), 6);
        assert_eq!(retry_after_seconds(Duration::from_secs(7)), 7);
    }

    #[test]
    fn the_window_counts_the_last_minute_only() {
        let mut window = FailureWindow::default();
        assert_eq!(window.count(1_000), 0);
        assert_eq!(window.record(1_000), 1);
        assert_eq!(window.record(1_000), 2);
        assert_eq!(window.record(1_030), 3);
        assert_eq!(window.count(1_059), 3);
        assert_eq!(window.count(1_060), 1, "the two of second 1000 left");
        // A slot reused a minute later starts again.
        assert_eq!(window.record(1_060), 2);
        assert_eq!(window.count(1_200), 0);
        assert!(over_ceiling(100, 100));
        assert!(!over_ceiling(99, 100));
    }
}
