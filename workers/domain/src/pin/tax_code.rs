//! Whether a *codice fiscale* belongs to the personal data given with it:
//! the letters of surname and name, the birth date and sex, and the
//! birthplace code (*codice catastale*, e.g. `A562`, or `Z…` for a country)
//! are derived by the official rules and compared with the code's first
//! fifteen characters. Digits replaced by letters (*omocodia*: two people
//! who would share a code) are read back as digits.

use chrono::{Datelike, NaiveDate};

use sportello_contract::CodiceFiscale;

/// *Sesso*: the day of birth of a woman is written plus 40.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sex {
    M,
    F,
}

/// The personal data a tax code encodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Personal<'a> {
    pub surname: &'a str,
    pub name: &'a str,
    pub birth_date: NaiveDate,
    pub sex: Sex,
    /// *Codice catastale* of the municipality (or `Z` + country) of birth.
    pub birthplace_code: &'a str,
}

/// The field whose data does not match the tax code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    Surname,
    Name,
    BirthDate,
    Sex,
    BirthplaceCode,
}

impl Mismatch {
    /// The request field named in the refusal.
    pub fn field(self) -> &'static str {
        match self {
            Mismatch::Surname => "surname",
            Mismatch::Name => "name",
            Mismatch::BirthDate => "birth_date",
            Mismatch::Sex => "sex",
            Mismatch::BirthplaceCode => "birthplace_code",
        }
    }
}

const MONTH_LETTERS: [char; 12] = ['A', 'B', 'C', 'D', 'E', 'H', 'L', 'M', 'P', 'R', 'S', 'T'];
const OMOCODIA_LETTERS: &str = "LMNPQRSTUV";

/// Letters only, upper case, accents dropped (`D'Angelò` -> `DANGELO`).
fn letters(raw: &str) -> Vec<char> {
    raw.chars()
        .filter_map(|c| {
            let plain = match c.to_uppercase().next().unwrap_or(c) {
                'À' | 'Á' | 'Â' | 'Ä' => 'A',
                'È' | 'É' | 'Ê' | 'Ë' => 'E',
                'Ì' | 'Í' | 'Î' | 'Ï' => 'I',
                'Ò' | 'Ó' | 'Ô' | 'Ö' => 'O',
                'Ù' | 'Ú' | 'Û' | 'Ü' => 'U',
                other => other,
            };
            plain.is_ascii_uppercase().then_some(plain)
        })
        .collect()
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'A' | 'E' | 'I' | 'O' | 'U')
}

fn split(raw: &str) -> (Vec<char>, Vec<char>) {
    letters(raw).into_iter().partition(|&c| !is_vowel(c))
}

/// Consonants, then vowels, then `X`, three of them.
fn pad(consonants: Vec<char>, vowels: Vec<char>) -> String {
    consonants
        .into_iter()
        .chain(vowels)
        .chain(std::iter::repeat('X'))
        .take(3)
        .collect()
}

/// The three surname letters.
pub fn surname_letters(surname: &str) -> String {
    let (consonants, vowels) = split(surname);
    pad(consonants, vowels)
}

/// The three name letters: with four consonants or more, the first, third
/// and fourth.
pub fn name_letters(name: &str) -> String {
    let (consonants, vowels) = split(name);
    if consonants.len() >= 4 {
        [consonants[0], consonants[2], consonants[3]]
            .into_iter()
            .collect()
    } else {
        pad(consonants, vowels)
    }
}

/// Year (two digits), month letter, day (plus 40 for a woman).
pub fn birth_characters(birth_date: NaiveDate, sex: Sex) -> String {
    let day = birth_date.day() + if sex == Sex::F { 40 } else { 0 };
    format!(
        "{:02}{}{:02}",
        birth_date.year().rem_euclid(100),
        MONTH_LETTERS[birth_date.month0() as usize],
        day
    )
}

/// The code with every omocodia letter read back as its digit.
fn without_omocodia(code: &CodiceFiscale) -> Vec<char> {
    const DIGIT_POSITIONS: [usize; 7] = [6, 7, 9, 10, 12, 13, 14];
    code.as_str()
        .chars()
        .enumerate()
        .map(|(position, c)| match OMOCODIA_LETTERS.find(c) {
            Some(digit) if DIGIT_POSITIONS.contains(&position) => char::from(b'0' + digit as u8),
            _ => c,
        })
        .collect()
}

/// Checks `code` against `personal`; the first field that does not match.
pub fn check(code: &CodiceFiscale, personal: &Personal) -> Result<(), Mismatch> {
    let chars = without_omocodia(code);
    let part = |range: std::ops::Range<usize>| -> String { chars[range].iter().collect() };
    if part(0..3) != surname_letters(personal.surname) {
        return Err(Mismatch::Surname);
    }
    if part(3..6) != name_letters(personal.name) {
        return Err(Mismatch::Name);
    }
    let expected = birth_characters(personal.birth_date, personal.sex);
    let found = part(6..11);
    if found != expected {
        // Right date, wrong sex: the day differs by exactly 40.
        let other = match personal.sex {
            Sex::M => Sex::F,
            Sex::F => Sex::M,
        };
        if found == birth_characters(personal.birth_date, other) {
            return Err(Mismatch::Sex);
        }
        return Err(Mismatch::BirthDate);
    }
    if part(11..15) != personal.birthplace_code.to_ascii_uppercase() {
        return Err(Mismatch::BirthplaceCode);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn rossi() -> Personal<'static> {
        Personal {
            surname: "Rossi",
            name: "Mario",
            birth_date: date(1985, 12, 10),
            sex: Sex::M,
            birthplace_code: "A562",
        }
    }

    #[test]
    fn surname_takes_consonants_then_vowels_then_x() {
        assert_eq!(surname_letters("Rossi"), "RSS");
        assert_eq!(surname_letters("Fo"), "FOX");
        assert_eq!(surname_letters("Bianchi"), "BNC");
        assert_eq!(surname_letters("D'Amico"), "DMC");
        assert_eq!(surname_letters("Rè"), "REX");
        assert_eq!(surname_letters("De Luca"), "DLC");
    }

    #[test]
    fn a_name_with_four_consonants_skips_the_second() {
        assert_eq!(name_letters("Gianfranco"), "GFR");
        assert_eq!(name_letters("Mario"), "MRA");
        assert_eq!(name_letters("Giovanni"), "GNN");
        assert_eq!(name_letters("Gavina"), "GVN");
        assert_eq!(name_letters("Luca"), "LCU");
        assert_eq!(name_letters("Ugo"), "GUO");
    }

    #[test]
    fn birth_date_and_sex_make_five_characters() {
        assert_eq!(birth_characters(date(1985, 12, 10), Sex::M), "85T10");
        assert_eq!(birth_characters(date(1970, 1, 1), Sex::F), "70A41");
        assert_eq!(birth_characters(date(2001, 6, 9), Sex::M), "01H09");
    }

    #[test]
    fn matching_data_is_accepted() {
        let code = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        assert_eq!(check(&code, &rossi()), Ok(()));
        let bianchi = CodiceFiscale::parse("BNCGVN70A41F205O").unwrap();
        let personal = Personal {
            surname: "Bianchi",
            name: "Gavina",
            birth_date: date(1970, 1, 1),
            sex: Sex::F,
            birthplace_code: "f205",
        };
        assert_eq!(check(&bianchi, &personal), Ok(()));
    }

    #[test]
    fn omocodia_letters_read_as_digits() {
        let code = CodiceFiscale::parse("RSSMRA85T10A56NH").unwrap();
        assert_eq!(check(&code, &rossi()), Ok(()));
    }

    #[test]
    fn each_mismatch_names_its_field() {
        let code = CodiceFiscale::parse("RSSMRA85T10A562S").unwrap();
        let mut data = rossi();
        data.surname = "Verdi";
        assert_eq!(check(&code, &data), Err(Mismatch::Surname));
        let mut data = rossi();
        data.name = "Marco";
        assert_eq!(check(&code, &data), Err(Mismatch::Name));
        let mut data = rossi();
        data.birth_date = date(1985, 12, 11);
        assert_eq!(check(&code, &data), Err(Mismatch::BirthDate));
        let mut data = rossi();
        data.sex = Sex::F;
        assert_eq!(check(&code, &data), Err(Mismatch::Sex));
        let mut data = rossi();
        data.birthplace_code = "H501";
        assert_eq!(check(&code, &data), Err(Mismatch::BirthplaceCode));
    }
}
