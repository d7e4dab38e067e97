//! How long an SMS is: its encoding and how many parts the network sends.
//!
//! A text made only of the GSM 03.38 alphabet travels as GSM-7: 160 septets in
//! one message, 153 per part once concatenated (the rest carries the
//! concatenation header). The characters of the extension table (`€`, `[`,
//! `{`, ...) take two septets and a part never splits one. Any other character
//! (capital accented letters such as `È`, curly quotes, emoji) switches the
//! whole text to UCS-2: 70 UTF-16 units alone, 67 per part, never splitting a
//! surrogate pair. Providers bill per part, so templates are kept in GSM-7.

use serde::Serialize;

/// GSM 03.38 default alphabet, without the escape character.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table: escape + one septet each.
const GSM7_EXTENSION: &str = "^{}\\[~]|€\u{000C}";

const GSM7_SINGLE: usize = 160;
const GSM7_PART: usize = 153;
const UCS2_SINGLE: usize = 70;
const UCS2_PART: usize = 67;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SmsLength {
    pub encoding: SmsEncoding,
    /// Septets (GSM-7) or UTF-16 units (UCS-2).
    pub units: usize,
    pub parts: usize,
}

fn gsm7_septets(c: char) -> Option<usize> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// Measures `text` as the network will send it.
pub fn measure(text: &str) -> SmsLength {
    let septets: Option<Vec<usize>> = text.chars().map(gsm7_septets).collect();
    let (encoding, sizes, single, part) = match septets {
        Some(sizes) => (SmsEncoding::Gsm7, sizes, GSM7_SINGLE, GSM7_PART),
        None => (
            SmsEncoding::Ucs2,
            text.chars().map(char::len_utf16).collect(),
            UCS2_SINGLE,
            UCS2_PART,
        ),
    };
    let units = sizes.iter().sum();
    // An empty text is still one (empty) message.
    let parts = if units <= single {
        1
    } else {
        count_parts(&sizes, part)
    };
    SmsLength {
        encoding,
        units,
        parts,
    }
}

/// Greedy split where no character (escape pair, surrogate pair) straddles two parts.
fn count_parts(sizes: &[usize], capacity: usize) -> usize {
    let mut parts = 1;
    let mut used = 0;
    for &size in sizes {
        if used + size > capacity {
            parts += 1;
            used = 0;
        }
        used += size;
    }
    parts
}

/// An Italian or international mobile number as E.164 (`+393331234567`).
/// Spaces, dots, dashes and a leading `00` are accepted; a number without a
/// country code is taken as Italian.
pub fn normalize_phone(raw: &str) -> Result<String, String> {
    let compact: String = raw
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '.' | '-' | '/' | '(' | ')')))
        .collect();
    let international = if let Some(rest) = compact.strip_prefix('+') {
        rest.to_owned()
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest.to_owned()
    } else {
        format!("39{compact}")
    };
    if !international.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("not a phone number: {raw:?}"));
    }
    // Country codes never start with 0 (E.164).
    if international.starts_with('0') {
        return Err(format!("not an international number: {raw:?}"));
    }
    if !(8..=15).contains(&international.len()) {
        return Err(format!("a phone number has 8 to 15 digits: {raw:?}"));
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_italian_text_is_gsm7_in_one_part() {
        let length =
            measure("INPS: la tua richiesta è stata protocollata. Più info nell'area riservata.");
        assert_eq!(length.encoding, SmsEncoding::Gsm7);
        assert_eq!(length.parts, 1);
    }

    #[test]
    fn gsm7_limits_are_160_alone_and_153_per_part() {
        assert_eq!(measure(&"a".repeat(160)).parts, 1);
        assert_eq!(measure(&"a".repeat(161)).parts, 2);
        assert_eq!(measure(&"a".repeat(306)).parts, 2);
        assert_eq!(measure(&"a".repeat(307)).parts, 3);
    }

    #[test]
    fn extension_characters_count_twice_and_are_not_split() {
        let euro = measure("€");
        assert_eq!((euro.encoding, euro.units), (SmsEncoding::Gsm7, 2));
        assert_eq!(measure(&format!("{}€", "a".repeat(158))).parts, 1);
        assert_eq!(measure(&format!("{}€", "a".repeat(159))).parts, 2);
        // 152 septets then an escape pair: the pair moves whole to part two.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
        assert_eq!(measure(&text).units, 306);
        assert_eq!(measure(&text).parts, 3);
    }

    #[test]
    fn one_foreign_character_makes_the_whole_text_ucs2() {
        let length = measure("È pronta la tua pratica");
        assert_eq!(length.encoding, SmsEncoding::Ucs2);
        assert_eq!(measure(&"È".repeat(70)).parts, 1);
        assert_eq!(measure(&"È".repeat(71)).parts, 2);
        assert_eq!(measure(&"È".repeat(134)).parts, 2);
        assert_eq!(measure(&"È".repeat(135)).parts, 3);
    }

    #[test]
    fn surrogate_pairs_count_two_units_and_stay_whole() {
        assert_eq!(measure("😀").units, 2);
        let text = format!("{}😀", "x".repeat(66));
        assert_eq!(measure(&text).units, 68);
        assert_eq!(measure(&text).parts, 1);
        let text = format!("{}😀", "x".repeat(69));
        assert_eq!(measure(&text).parts, 2);
    }

    #[test]
    fn phone_numbers_become_e164() {
        assert_eq!(normalize_phone("333 123 4567").unwrap(), "+393331234567");
        assert_eq!(normalize_phone("+39 333-1234567").unwrap(), "+393331234567");
        assert_eq!(
            normalize_phone("0041 79 123 45 67").unwrap(),
            "+41791234567"
        );
        assert!(normalize_phone("chiamami").is_err());
        assert!(normalize_phone("12").is_err());
        assert!(normalize_phone("+0 333 1234567").is_err());
        assert_eq!(
            normalize_phone("333\t123\u{a0}4567").unwrap(),
            "+393331234567"
        );
    }
}
