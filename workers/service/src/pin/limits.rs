//! The PIN's limits around the per-tax-code lock: a token bucket per client
//! address, or per agent over the broker, where there is no address
//! (`governor`, `PIN_ADDRESS_PER_MINUTE`, `PIN_ADDRESS_BURST`),
//! checked before any hash is computed; and the wrong attempts of the last
//! minute over every address (`domain::pin::limits::FailureWindow`), which
//! drive the metrics an alert watches (`PIN_FAILURES_ALERT_PER_MINUTE`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::domain::pin::limits::{over_ceiling, AddressLimit, FailureWindow};
use crate::metrics::{metrics, StepLabel};

/// Which PIN step an attempt is, for the metrics; and whose bucket it
/// draws on (an agent's check has its own, so a contact centre's shared
/// address does not crowd out citizens behind the same one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    SignIn,
    FirstUse,
    Recovery,
    AgentCheck,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::SignIn => "sign_in",
            Step::FirstUse => "first_use",
            Step::Recovery => "recovery",
            Step::AgentCheck => "agent_check",
        }
    }

    fn bucket(self) -> u8 {
        u8::from(self == Step::AgentCheck)
    }
}

/// Whose bucket an attempt draws on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// The client address (behind trusted proxies) of an HTTP request.
    Address(IpAddr),
    /// A contact-centre agent checking halves over the broker.
    Agent(String),
}

impl From<IpAddr> for Client {
    fn from(address: IpAddr) -> Client {
        Client::Address(address)
    }
}

/// How often idle addresses are forgotten (every this many checks).
const FORGET_EVERY: u64 = 4096;

pub struct PinLimits {
    per_address: DefaultKeyedRateLimiter<(u8, Client)>,
    clock: DefaultClock,
    failures: Mutex<FailureWindow>,
    ceiling: u32,
    checks: AtomicU64,
}

impl PinLimits {
    pub fn new(limit: AddressLimit, ceiling: u32) -> Self {
        let per_minute = NonZeroU32::new(limit.per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            per_address: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
            clock: DefaultClock::default(),
            failures: Mutex::new(FailureWindow::default()),
            ceiling,
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one attempt from `client`'s bucket, or says how long to wait.
    pub fn admit(&self, step: Step, client: impl Into<Client>) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.per_address.retain_recent();
        }
        self.per_address
            .check_key(&(step.bucket(), client.into()))
            .map_err(|not_until| {
                metrics()
                    .pin_rate_limited
                    .get_or_create(&StepLabel {
                        step: step.as_str(),
                    })
                    .inc();
                not_until.wait_time_from(self.clock.now())
            })
    }

    /// One wrong attempt, whatever the address: counted for the alert.
    pub fn failed(&self, step: Step) {
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let last_minute = self
            .failures
            .lock()
            .map(|mut window| window.record(second))
            .unwrap_or_default();
        let m = metrics();
        m.pin_failures
            .get_or_create(&StepLabel {
                step: step.as_str(),
            })
            .inc();
        m.pin_failures_last_minute
            .set(i64::try_from(last_minute).unwrap_or(i64::MAX));
        let exceeded = over_ceiling(last_minute, self.ceiling);
        m.pin_failure_ceiling_exceeded.set(i64::from(exceeded));
        if exceeded {
            tracing::warn!(
                last_minute,
                ceiling = self.ceiling,
                "wrong PIN attempts over the alert ceiling"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_is_stopped_at_its_burst_and_others_go_on() {
        let limits = PinLimits::new(
            AddressLimit {
                per_minute: 1,
                burst: 3,
            },
            100,
        );
        let guesser: IpAddr = "198.51.100.7".parse().unwrap();
        let other: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..3 {
            assert!(limits.admit(Step::SignIn, guesser).is_ok());
        }
        let wait = limits.admit(Step::SignIn, guesser).unwrap_err();
        assert!(wait > Duration::from_secs(50), "{wait:?}");
        assert!(limits.admit(Step::SignIn, other).is_ok());
        assert!(
            limits.admit(Step::AgentCheck, guesser).is_ok(),
            "an agent's check has its own bucket"
        );
    }
}
