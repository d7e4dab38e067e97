//! The secrets of a PIN. None of these types prints its value: `Debug`
//! shows a mask and there is no `Display`, so a PIN cannot reach a log by
//! a stray `{:?}`; the value is read only through `expose`.

use std::fmt;

/// Characters of a generated half: capitals and digits without the ones
/// read one for another on paper (0/O, 1/I/L).
pub const HALF_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// A half, the simplified PIN and a chosen PIN are 8 characters.
pub const HALF_LENGTH: usize = 8;

/// Why a presented or chosen PIN is refused (never quoting it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("a PIN is 8 characters (16 for the initial PIN)")]
    Length,
    #[error("a PIN holds letters and digits only")]
    Characters,
    #[error("the new PIN needs at least one letter and one digit")]
    TooSimple,
    #[error("the new PIN must differ from both halves of the initial PIN")]
    SameAsInitial,
}

/// Eight characters of a generated PIN (the first or the second half).
#[derive(Clone, PartialEq, Eq)]
pub struct PinHalf(String);

impl PinHalf {
    /// A half from 8 random indexes into [`HALF_ALPHABET`] (the caller
    /// draws them from a CSPRNG).
    pub fn from_indexes(indexes: [u8; HALF_LENGTH]) -> Self {
        Self(
            indexes
                .iter()
                .map(|&i| char::from(HALF_ALPHABET[usize::from(i) % HALF_ALPHABET.len()]))
                .collect(),
        )
    }

    /// A half read back (unsealed): 8 characters of the alphabet, or none.
    pub fn from_generated(text: &str) -> Option<Self> {
        (text.len() == HALF_LENGTH && text.bytes().all(|b| HALF_ALPHABET.contains(&b)))
            .then(|| Self(text.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PinHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinHalf(********)")
    }
}

/// The initial PIN: 16 characters, made of its two halves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialPin {
    pub first: PinHalf,
    pub second: PinHalf,
}

impl InitialPin {
    /// The 16 characters, as the citizen types them at first use.
    pub fn whole(&self) -> String {
        format!("{}{}", self.first.expose(), self.second.expose())
    }
}

/// What a citizen typed: 8 characters (the first half, or the chosen PIN)
/// or 16 (the initial PIN). Case is ignored for generated characters.
#[derive(Clone, PartialEq, Eq)]
pub enum PresentedPin {
    Eight(String),
    Sixteen(String),
}

impl PresentedPin {
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        let trimmed = raw.trim();
        if !trimmed.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SecretError::Characters);
        }
        match trimmed.len() {
            8 => Ok(PresentedPin::Eight(trimmed.to_owned())),
            16 => Ok(PresentedPin::Sixteen(trimmed.to_owned())),
            _ => Err(SecretError::Length),
        }
    }

    pub fn expose(&self) -> &str {
        match self {
            PresentedPin::Eight(s) | PresentedPin::Sixteen(s) => s,
        }
    }

    /// The generated characters are capitals: a citizen typing them in
    /// lower case means the same PIN.
    pub fn generated_form(&self) -> String {
        self.expose().to_ascii_uppercase()
    }
}

impl fmt::Debug for PresentedPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PresentedPin::Eight(_) => f.write_str("PresentedPin(8 characters)"),
            PresentedPin::Sixteen(_) => f.write_str("PresentedPin(16 characters)"),
        }
    }
}

/// The 8-character PIN a citizen chooses at first use: letters and digits,
/// at least one of each, case-sensitive, not a half of the initial PIN.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenPin(String);

impl ChosenPin {
    pub fn parse(raw: &str, initial_whole: &str) -> Result<Self, SecretError> {
        if raw.chars().count() != HALF_LENGTH {
            return Err(SecretError::Length);
        }
        if !raw.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(SecretError::Characters);
        }
        if !raw.chars().any(|c| c.is_ascii_digit()) || !raw.chars().any(|c| c.is_ascii_alphabetic())
        {
            return Err(SecretError::TooSimple);
        }
        let upper = raw.to_ascii_uppercase();
        let initial = initial_whole.to_ascii_uppercase();
        if initial.len() == 2 * HALF_LENGTH
            && (upper == initial[..HALF_LENGTH] || upper == initial[HALF_LENGTH..])
        {
            return Err(SecretError::SameAsInitial);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ChosenPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChosenPin(********)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_use_the_unambiguous_alphabet_and_never_print() {
        let half = PinHalf::from_indexes([0, 1, 2, 30, 31, 255, 7, 8]);
        assert_eq!(half.expose().len(), 8);
        assert!(half.expose().bytes().all(|b| HALF_ALPHABET.contains(&b)));
        assert_eq!(format!("{half:?}"), "PinHalf(********)");
        let initial = InitialPin {
            first: half.clone(),
            second: half.clone(),
        };
        assert!(!format!("{initial:?}").contains(half.expose()));
    }

    #[test]
    fn presented_pins_are_8_or_16_letters_and_digits() {
        assert!(matches!(
            PresentedPin::parse("ABCD2345"),
            Ok(PresentedPin::Eight(_))
        ));
        assert!(matches!(
            PresentedPin::parse("ABCD2345EFGH6789"),
            Ok(PresentedPin::Sixteen(_))
        ));
        assert_eq!(PresentedPin::parse("ABC"), Err(SecretError::Length));
        assert_eq!(
            PresentedPin::parse("ABCD 234"),
            Err(SecretError::Characters)
        );
        let presented = PresentedPin::parse("secret12").unwrap();
        assert!(!format!("{presented:?}").contains("secret12"));
    }

    #[test]
    fn a_chosen_pin_has_its_rules() {
        let initial = "ABCD2345EFGH6789";
        assert!(ChosenPin::parse("Nuovo123", initial).is_ok());
        assert_eq!(
            ChosenPin::parse("short1", initial),
            Err(SecretError::Length)
        );
        assert_eq!(
            ChosenPin::parse("abcdefgh", initial),
            Err(SecretError::TooSimple)
        );
        assert_eq!(
            ChosenPin::parse("abcd-123", initial),
            Err(SecretError::Characters)
        );
        assert_eq!(
            ChosenPin::parse("efgh6789", initial),
            Err(SecretError::SameAsInitial)
        );
    }
}
