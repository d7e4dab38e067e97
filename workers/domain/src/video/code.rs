//! The one-time code sent by SMS to the appointment's phone when the
//! citizen's link is opened: a forwarded link alone opens nothing. Six
//! digits, valid five minutes, five attempts, then a new code is needed;
//! new codes are rate limited per appointment. Only a keyed hash of the code
//! is stored, and it is compared in constant time.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// How long a code may be used.
pub const CODE_VALIDITY: Duration = Duration::minutes(5);
/// Wrong guesses a code survives; the fifth wrong one spends it.
pub const MAX_ATTEMPTS: i16 = 5;
/// At least this long between two codes of one appointment.
pub const RESEND_AFTER: Duration = Duration::seconds(60);
/// At most this many codes per appointment per hour.
pub const MAX_CODES_PER_HOUR: usize = 5;

/// A code as the citizen types it: exactly six ASCII digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never in logs.
        f.write_str("Code(******)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the code is six digits")]
pub struct NotACode;

impl Code {
    /// Spaces the citizen typed between the digits are ignored.
    pub fn parse(raw: &str) -> Result<Code, NotACode> {
        let digits: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Code(digits))
        } else {
            Err(NotACode)
        }
    }

    /// A fresh random code.
    pub fn generate() -> Code {
        Code(format!("{:06}", rand::rng().random_range(0..1_000_000u32)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored form: HMAC-SHA256 under the link key over the appointment
    /// and the code (a million codes are quickly hashed; the key keeps a
    /// copy of the table from being enough to find them).
    pub fn digest(&self, key: &[u8], appointment_id: Uuid) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(appointment_id.as_bytes());
        mac.update(self.0.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The code an appointment has outstanding, as stored.
#[derive(Debug, Clone)]
pub struct IssuedCode {
    pub digest: Vec<u8>,
    pub expires_at: DateTime<Utc>,
    pub attempts: i16,
    pub used: bool,
}

/// What one attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Right: the code is spent and the citizen gets a pass.
    Accepted,
    /// Wrong; this many attempts are left.
    Wrong { remaining: i16 },
    /// Wrong, and it was the last attempt: a new code is needed.
    Exhausted,
    /// No usable code: never sent, expired, spent or exhausted.
    NoCode,
}

/// Judges `typed` against the outstanding code at `now`. The caller records
/// the attempt (`attempts + 1`) whatever the verdict, in the same row lock.
pub fn attempt(issued: Option<&IssuedCode>, typed_digest: &[u8], now: DateTime<Utc>) -> Attempt {
    let Some(issued) = issued else {
        return Attempt::NoCode;
    };
    if issued.used || now >= issued.expires_at || issued.attempts >= MAX_ATTEMPTS {
        return Attempt::NoCode;
    }
    if bool::from(issued.digest.as_slice().ct_eq(typed_digest)) {
        return Attempt::Accepted;
    }
    let remaining = MAX_ATTEMPTS - issued.attempts - 1;
    if remaining <= 0 {
        Attempt::Exhausted
    } else {
        Attempt::Wrong { remaining }
    }
}

/// Refused: too many codes asked for; the next one may be asked at `retry_at`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too many codes: ask again after {retry_at}")]
pub struct TooManyCodes {
    pub retry_at: DateTime<Utc>,
}

/// Whether a new code may be sent at `now`, given when the previous ones of
/// the appointment were issued (any order).
pub fn may_issue(previous: &[DateTime<Utc>], now: DateTime<Utc>) -> Result<(), TooManyCodes> {
    let mut recent: Vec<DateTime<Utc>> = previous
        .iter()
        .copied()
        .filter(|at| *at > now - Duration::hours(1))
        .collect();
    recent.sort();
    if let Some(last) = recent.last() {
        if now < *last + RESEND_AFTER {
            return Err(TooManyCodes {
                retry_at: *last + RESEND_AFTER,
            });
        }
    }
    if recent.len() >= MAX_CODES_PER_HOUR {
        return Err(TooManyCodes {
            retry_at: recent[recent.len() - MAX_CODES_PER_HOUR] + Duration::hours(1),
        });
    }
    Ok(())
}

/// The SMS text (one GSM-7 part).
pub fn sms_text(code: &Code) -> String {
    format!(
        "INPS Sportello telematico: il codice per entrare nella videochiamata e' {}. \
         Vale 5 minuti. Non comunicarlo a nessuno.",
        code.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_code_is_six_digits() {
        assert!(Code::parse("123456").is_ok());
        assert_eq!(Code::parse("123 456").unwrap().as_str(), "123456");
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６"] {
            assert_eq!(Code::parse(bad), Err(NotACode), "{bad}");
        }
        for _ in 0..100 {
            assert!(Code::parse(Code::generate().as_str()).is_ok());
        }
        assert_eq!(
            format!("{:?}", Code::parse("123456").unwrap()),
            "Code(******)"
        );
    }

    #[test]
    fn five_attempts_within_five_minutes_then_a_new_code() {
        let id = Uuid::now_v7();
        let right = Code::parse("123456").unwrap();
        let wrong = Code::parse("654321").unwrap().digest(b"k", id);
        let now = at("2026-12-03T10:00:00Z");
        let mut issued = IssuedCode {
            digest: right.digest(b"k", id),
            expires_at: now + CODE_VALIDITY,
            attempts: 0,
            used: false,
        };
        assert_eq!(
            attempt(Some(&issued), &right.digest(b"k", id), now),
            Attempt::Accepted
        );
        // The same code for another appointment is another digest.
        assert_eq!(
            attempt(Some(&issued), &right.digest(b"k", Uuid::now_v7()), now),
            Attempt::Wrong { remaining: 4 }
        );
        for remaining in (1..=4).rev() {
            assert_eq!(
                attempt(Some(&issued), &wrong, now),
                Attempt::Wrong { remaining }
            );
            issued.attempts += 1;
        }
        assert_eq!(attempt(Some(&issued), &wrong, now), Attempt::Exhausted);
        issued.attempts += 1;
        assert_eq!(
            attempt(Some(&issued), &right.digest(b"k", id), now),
            Attempt::NoCode
        );
        issued.attempts = 0;
        assert_eq!(
            attempt(Some(&issued), &right.digest(b"k", id), now + CODE_VALIDITY),
            Attempt::NoCode
        );
        issued.used = true;
        assert_eq!(
            attempt(Some(&issued), &right.digest(b"k", id), now),
            Attempt::NoCode
        );
        assert_eq!(attempt(None, &wrong, now), Attempt::NoCode);
    }

    #[test]
    fn new_codes_are_rate_limited() {
        let now = at("2026-12-03T10:00:00Z");
        assert_eq!(may_issue(&[], now), Ok(()));
        let just = [now - Duration::seconds(10)];
        assert_eq!(
            may_issue(&just, now),
            Err(TooManyCodes {
                retry_at: now + Duration::seconds(50)
            })
        );
        let five: Vec<_> = (1..=5).map(|m| now - Duration::minutes(m * 10)).collect();
        assert_eq!(
            may_issue(&five, now),
            Err(TooManyCodes {
                retry_at: now - Duration::minutes(50) + Duration::hours(1)
            })
        );
        let old: Vec<_> = (1..=5).map(|m| now - Duration::minutes(60 + m)).collect();
        assert_eq!(may_issue(&old, now), Ok(()));
    }

    #[test]
    fn the_sms_fits_one_part() {
        let text = sms_text(&Code::parse("123456").unwrap());
        assert!(text.len() <= 160, "{}", text.len());
        assert!(text.contains("123456"));
    }
}
