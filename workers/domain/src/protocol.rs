//! *Protocollo*: numbering and signatures of official registrations, and the
//! hash chain of the daily register. Plain rules; storage is `store::protocol`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cron::TIME_ZONE;

/// Registering unit (*Area Organizzativa Omogenea*), e.g. `0040`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Aoo(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("registering unit (AOO) must be 4 digits, got `{0}`")]
pub struct InvalidAoo(String);

impl Aoo {
    pub fn parse(raw: &str) -> Result<Self, InvalidAoo> {
        if raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidAoo(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Aoo {
    type Error = InvalidAoo;
    fn try_from(raw: String) -> Result<Self, InvalidAoo> {
        Aoo::parse(&raw)
    }
}

impl From<Aoo> for String {
    fn from(aoo: Aoo) -> String {
        aoo.0
    }
}

impl fmt::Display for Aoo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The registration date is the institute's calendar date (Europe/Rome): a
/// registration at 23:30 UTC on 31 December is already next year in Rome.
pub fn registration_date(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&TIME_ZONE).date_naive()
}

/// The counter a registration at `at` draws from: numbers restart each year.
pub fn numbering_year(at: DateTime<Utc>) -> i32 {
    registration_date(at).year()
}

/// *Segnatura*: `INPS.<AOO>.<dd/mm/yyyy>.<number, at least 7 digits>`.
pub fn signature(aoo: &Aoo, date: NaiveDate, number: i64) -> String {
    format!("INPS.{aoo}.{}.{number:07}", date.format("%d/%m/%Y"))
}

/// A file listed in a registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredFile {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// One line of a daily register.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterEntry {
    pub signature: String,
    pub registered_at: DateTime<Utc>,
    pub subject: String,
    pub registered_by: serde_json::Value,
    pub files: Vec<RegisteredFile>,
    /// Set when the registration was annulled by the time the register was made.
    pub annulment: Option<Annulment>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annulment {
    pub reason: String,
    pub annulled_by: serde_json::Value,
    pub annulled_at: DateTime<Utc>,
}

/// The stored form of a day's register and its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyRegister {
    pub day: NaiveDate,
    pub content: Vec<u8>,
    pub content_sha256: String,
    pub previous_sha256: Option<String>,
    pub chain_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The chain link: hash of the previous link and of this day's content, so
/// editing any day changes every link after it.
pub fn chain_hash(previous: Option<&str>, content_sha256: &str, day: NaiveDate) -> String {
    sha256_hex(
        format!(
            "{}|{}|{}",
            previous.unwrap_or("GENESIS"),
            day,
            content_sha256
        )
        .as_bytes(),
    )
}

pub fn daily_register(
    day: NaiveDate,
    entries: &[RegisterEntry],
    previous: Option<&str>,
) -> DailyRegister {
    // serde_json writes struct fields in declaration order: the bytes are
    // reproducible from the same entries.
    let document = serde_json::json!({ "day": day, "entries": entries });
    let content = serde_json::to_vec_pretty(&document).unwrap_or_default();
    let content_sha256 = sha256_hex(&content);
    let chain_sha256 = chain_hash(previous, &content_sha256, day);
    DailyRegister {
        day,
        content,
        content_sha256,
        previous_sha256: previous.map(str::to_owned),
        chain_sha256,
    }
}

/// What is wrong with a stored chain, day by day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("{day}: content does not match its hash (edited)")]
    ContentEdited { day: NaiveDate },
    #[error("{day}: does not chain to the previous day's register")]
    LinkBroken { day: NaiveDate },
}

impl ChainBreak {
    /// The day whose register is at fault.
    pub fn day(&self) -> NaiveDate {
        match self {
            ChainBreak::ContentEdited { day } | ChainBreak::LinkBroken { day } => *day,
        }
    }
}

/// How many entries a stored register lists; `None` if its content is no
/// longer a register document.
pub fn entry_count(content: &[u8]) -> Option<usize> {
    let document: serde_json::Value = serde_json::from_slice(content).ok()?;
    document.get("entries")?.as_array().map(Vec::len)
}

/// Checks registers given in day order.
pub fn verify_chain(registers: &[DailyRegister]) -> Vec<ChainBreak> {
    let mut breaks = Vec::new();
    let mut previous: Option<&str> = None;
    for register in registers {
        if sha256_hex(&register.content) != register.content_sha256 {
            breaks.push(ChainBreak::ContentEdited { day: register.day });
        }
        let expected = chain_hash(previous, &register.content_sha256, register.day);
        if register.previous_sha256.as_deref() != previous || register.chain_sha256 != expected {
            breaks.push(ChainBreak::LinkBroken { day: register.day });
        }
        previous = Some(&register.chain_sha256);
    }
    breaks
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn signature_has_the_seed_format() {
        let aoo = Aoo::parse("0040").unwrap();
        let date = NaiveDate::from_ymd_opt(2025, 5, 29).unwrap();
        assert_eq!(signature(&aoo, date, 1632), "INPS.0040.29/05/2025.0001632");
        assert_eq!(
            signature(&aoo, date, 12_345_678),
            "INPS.0040.29/05/2025.12345678"
        );
    }

    #[test]
    fn aoo_is_four_digits() {
        assert!(Aoo::parse("0040").is_ok());
        assert!(Aoo::parse("40").is_err());
        assert!(Aoo::parse("00A0").is_err());
    }

    #[test]
    fn the_year_turns_at_midnight_in_rome() {
        let new_years_eve_utc = Utc.with_ymd_and_hms(2025, 12, 31, 23, 30, 0).unwrap();
        assert_eq!(numbering_year(new_years_eve_utc), 2026);
        let still_old_year = Utc.with_ymd_and_hms(2025, 12, 31, 22, 59, 59).unwrap();
        assert_eq!(numbering_year(still_old_year), 2025);
    }

    fn entry(signature: &str) -> RegisterEntry {
        RegisterEntry {
            signature: signature.into(),
            registered_at: Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap(),
            subject: "Documenti videochiamata".into(),
            registered_by: serde_json::json!({"kind": "operator", "operator_id": "E0013609"}),
            files: vec![RegisteredFile {
                name: "a.pdf".into(),
                sha256: "00".repeat(32),
                size: 10,
            }],
            annulment: None,
        }
    }

    #[test]
    fn a_chain_verifies_and_an_edit_is_detected() {
        let d1 = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let first = daily_register(d1, &[entry("INPS.0040.22/11/2026.0000001")], None);
        let second = daily_register(
            d2,
            &[entry("INPS.0040.23/11/2026.0000002")],
            Some(&first.chain_sha256),
        );
        assert!(verify_chain(&[first.clone(), second.clone()]).is_empty());
        assert_eq!(entry_count(&first.content), Some(1));
        assert_eq!(entry_count(b"not json"), None);

        let mut edited = first.clone();
        edited.content = edited.content.replace_range_bytes(b"0000001", b"0000009");
        assert_eq!(
            verify_chain(&[edited, second.clone()]),
            vec![ChainBreak::ContentEdited { day: d1 }]
        );

        // Re-hashing the edited day is not enough: the next link breaks.
        let forged = daily_register(d1, &[entry("INPS.0040.22/11/2026.0000009")], None);
        assert_eq!(
            verify_chain(&[forged, second]),
            vec![ChainBreak::LinkBroken { day: d2 }]
        );
        assert_eq!(ChainBreak::LinkBroken { day: d2 }.day(), d2);
    }

    trait ReplaceBytes {
        fn replace_range_bytes(self, from: &[u8], to: &[u8]) -> Vec<u8>;
    }

    impl ReplaceBytes for Vec<u8> {
        fn replace_range_bytes(self, from: &[u8], to: &[u8]) -> Vec<u8> {
            let at = self.windows(from.len()).position(|w| w == from).unwrap();
            let mut out = self[..at].to_vec();
            out.extend_from_slice(to);
            out.extend_from_slice(&self[at + from.len()..]);
            out
        }
    }
}
