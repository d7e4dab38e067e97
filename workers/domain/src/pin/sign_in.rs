//! What a PIN sign-in checks, and when the credential locks.

use chrono::{DateTime, Duration, Utc};

use super::PresentedPin;

/// Where a citizen's PIN stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialState {
    /// A 16-character initial PIN was issued (on request or recovery) and
    /// not yet replaced at first use.
    Issued,
    /// First use done: the citizen's own 8-character PIN.
    Active,
    /// Revoked: a new request is needed.
    Revoked,
}

impl CredentialState {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialState::Issued => "issued",
            CredentialState::Active => "active",
            CredentialState::Revoked => "revoked",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Issued, Self::Active, Self::Revoked]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Which stored hash the presented PIN is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The first half of a new PIN: the simplified access.
    FirstHalf,
    /// All 16 characters of the initial PIN: only to replace it.
    Initial,
    /// The citizen's own PIN.
    Chosen,
}

/// Why a sign-in is refused before or after the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInRefusal {
    #[error("no PIN was issued to this tax code, or the PIN is wrong")]
    Unknown,
    #[error("the PIN is wrong")]
    Wrong {
        failures: u32,
        locked_until: Option<DateTime<Utc>>,
    },
    #[error("the PIN is locked after repeated wrong attempts until {until}: wait until then, or recover it with \"Hai smarrito il PIN?\" (POST /pin/recovery) if first use was done")]
    Locked { until: DateTime<Utc> },
    #[error("this PIN was revoked: request a new one")]
    Revoked,
    #[error("the initial 16-character PIN must be replaced first: choose your 8-character PIN at first use (POST /pin/first-use)")]
    FirstUseRequired,
    #[error(
        "the initial PIN was already replaced at first use: sign in with your 8-character PIN"
    )]
    AlreadyReplaced,
    #[error("the simplified PIN (first half) is only for a PIN requested and never used; this one was recovered: complete first use with all 16 characters")]
    NotSimplified,
}

/// What to check for `presented` on a credential in `state`.
/// `simplified_allowed`: the PIN was requested, never activated (seed 003:
/// the simplified access is for who has never had a PIN).
pub fn what_to_check(
    state: CredentialState,
    presented: &PresentedPin,
    simplified_allowed: bool,
) -> Result<Check, SignInRefusal> {
    match (state, presented) {
        (CredentialState::Revoked, _) => Err(SignInRefusal::Revoked),
        (CredentialState::Issued, PresentedPin::Eight(_)) if simplified_allowed => {
            Ok(Check::FirstHalf)
        }
        (CredentialState::Issued, PresentedPin::Eight(_)) => Err(SignInRefusal::NotSimplified),
        (CredentialState::Issued, PresentedPin::Sixteen(_)) => Ok(Check::Initial),
        (CredentialState::Active, PresentedPin::Eight(_)) => Ok(Check::Chosen),
        (CredentialState::Active, PresentedPin::Sixteen(_)) => Err(SignInRefusal::AlreadyReplaced),
    }
}

/// Wrong attempts allowed before the PIN locks, and for how long (doubling
/// with each lock in a row, up to a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockPolicy {
    pub max_failures: u32,
    pub lock_for: Duration,
}

impl Default for LockPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

impl LockPolicy {
    /// Whether the PIN is locked at `now`.
    pub fn locked(
        &self,
        locked_until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        locked_until.filter(|until| *until > now)
    }

    /// After one more wrong attempt (`failures` counts it): the lock, if
    /// it is reached. `locks` is how many locks came before in a row.
    pub fn after_failure(
        &self,
        failures: u32,
        locks: u32,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if failures < self.max_failures {
            return None;
        }
        let factor = 1i32 << locks.min(10);
        let lock = (self.lock_for * factor).min(Duration::days(1));
        Some(now + lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eight() -> PresentedPin {
        PresentedPin::parse("ABCD2345").unwrap()
    }
    fn sixteen() -> PresentedPin {
        PresentedPin::parse("ABCD2345EFGH6789").unwrap()
    }

    #[test]
    fn each_state_checks_its_own_hash() {
        use CredentialState::*;
        assert_eq!(what_to_check(Issued, &eight(), true), Ok(Check::FirstHalf));
        assert_eq!(
            what_to_check(Issued, &eight(), false),
            Err(SignInRefusal::NotSimplified)
        );
        assert_eq!(what_to_check(Issued, &sixteen(), true), Ok(Check::Initial));
        assert_eq!(what_to_check(Active, &eight(), false), Ok(Check::Chosen));
        assert_eq!(
            what_to_check(Active, &sixteen(), false),
            Err(SignInRefusal::AlreadyReplaced)
        );
        assert_eq!(
            what_to_check(Revoked, &eight(), false),
            Err(SignInRefusal::Revoked)
        );
    }

    #[test]
    fn the_fifth_failure_locks_and_locks_in_a_row_double() {
        let policy = LockPolicy::default();
        let now = Utc::now();
        assert_eq!(policy.after_failure(4, 0, now), None);
        assert_eq!(
            policy.after_failure(5, 0, now),
            Some(now + Duration::minutes(15))
        );
        assert_eq!(
            policy.after_failure(5, 1, now),
            Some(now + Duration::minutes(30))
        );
        assert_eq!(
            policy.after_failure(5, 20, now),
            Some(now + Duration::days(1))
        );
        assert_eq!(policy.locked(Some(now - Duration::seconds(1)), now), None);
        assert!(policy
            .locked(Some(now + Duration::seconds(1)), now)
            .is_some());
    }
}
