//! *Codice fiscale*: the 16-character Italian tax code that identifies a citizen.
//!
//! The JSON Schemas check the shape; only code can check the control character,
//! so every message that names a person goes through [`CodiceFiscale::parse`].

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CodiceFiscale(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodiceFiscaleError {
    #[error("codice fiscale must be 16 characters, got {0}")]
    Length(usize),
    #[error("codice fiscale has an invalid character at position {position}")]
    Shape { position: usize },
    #[error("codice fiscale control character is {found}, expected {expected}")]
    Checksum { found: char, expected: char },
}

/// Positions (0-based) that hold digits, or the letters that replace them when
/// two people would otherwise share a code (*omocodia*).
const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
const OMOCODIA_LETTERS: &str = "LMNPQRSTUV";
const MONTH_LETTERS: &str = "ABCDEHLMPRST";

impl CodiceFiscale {
    pub fn parse(raw: &str) -> Result<Self, CodiceFiscaleError> {
        let code = raw.trim().to_ascii_uppercase();
        let chars: Vec<char> = code.chars().collect();
        if chars.len() != 16 {
            return Err(CodiceFiscaleError::Length(chars.len()));
        }
        for (position, &c) in chars.iter().enumerate() {
            let ok = if DIGIT_POSITIONS.contains(&position) {
                c.is_ascii_digit() || OMOCODIA_LETTERS.contains(c)
            } else if position == 8 {
                MONTH_LETTERS.contains(c)
            } else {
                c.is_ascii_uppercase()
            };
            if !ok {
                return Err(CodiceFiscaleError::Shape { position });
            }
        }
        let expected = control_character(&chars[..15]);
        if chars[15] != expected {
            return Err(CodiceFiscaleError::Checksum {
                found: chars[15],
                expected,
            });
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The official algorithm: characters in odd positions (1-based) and in even
/// positions map through two different tables; the sum modulo 26 is a letter.
fn control_character(first_fifteen: &[char]) -> char {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    let sum: u32 = first_fifteen
        .iter()
        .enumerate()
        .map(|(index, &c)| {
            // Digits share the values of the letters A..J in both tables.
            let ordinal = if c.is_ascii_digit() {
                c as u32 - '0' as u32
            } else {
                c as u32 - 'A' as u32
            };
            if index % 2 == 0 {
                ODD[ordinal as usize]
            } else {
                ordinal
            }
        })
        .sum();
    char::from(b'A' + (sum % 26) as u8)
}

impl fmt::Display for CodiceFiscale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CodiceFiscale {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        CodiceFiscale::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_codes() {
        for code in [
            "RSSMRA85T10A562S",
            "BNCGVN70A41F205O",
            "VRDLGU80A01H501Q",
            "FRRLCU75C41D969A",
        ] {
            assert!(CodiceFiscale::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn accepts_omocodia_and_lowercase() {
        // Same person as RSSMRA85T10A562S with the last digit replaced by its letter.
        let code = CodiceFiscale::parse("RSSMRA85T10A56NH").unwrap();
        assert_eq!(code.as_str(), "RSSMRA85T10A56NH");
        assert!(CodiceFiscale::parse("rssmra85t10a562s").is_ok());
    }

    #[test]
    fn rejects_wrong_control_character() {
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85T10A562T"),
            Err(CodiceFiscaleError::Checksum {
                found: 'T',
                expected: 'S'
            })
        );
    }

    #[test]
    fn rejects_bad_shape() {
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85T10A562"),
            Err(CodiceFiscaleError::Length(15))
        );
        assert_eq!(
            CodiceFiscale::parse("RSSMRA85Z10A562S"),
            Err(CodiceFiscaleError::Shape { position: 8 })
        );
        assert_eq!(
            CodiceFiscale::parse("RSSMRA8XT10A562S"),
            Err(CodiceFiscaleError::Shape { position: 7 })
        );
    }
}
