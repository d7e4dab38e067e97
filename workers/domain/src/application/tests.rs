use chrono::TimeZone;
use serde_json::json;

use super::*;
use sportello_contract::schemas::SCHEMA_FILES;

fn example() -> Envelope<ApplicationSubmitted> {
    let file = SCHEMA_FILES
        .iter()
        .find(|f| f.message_type == "application.submitted")
        .expect("the application.submitted schema is in the catalogue");
    serde_json::from_str(file.example).expect("the example decodes")
}

fn at(h: u32) -> DateTime<Utc> {
    chrono_tz::Europe::Rome
        .with_ymd_and_hms(2020, 4, 1, h, 30, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn check(
    envelope: &Envelope<ApplicationSubmitted>,
) -> Result<CheckedApplication, ApplicationRefusal> {
    check_application(
        ApplicationRules::shipped().unwrap(),
        envelope,
        envelope.occurred_at,
    )
}

#[test]
fn the_shipped_policy_is_consistent_and_the_example_passes() {
    let rules = ApplicationRules::shipped().expect("the shipped policy parses");
    assert!(rules.benefit("covid19_indemnity").is_some());
    let checked = check(&example()).expect("the example is a valid application");
    assert_eq!(checked.iban, "IT60X0542811101000000123456");
}

#[test]
fn ibans_are_checked_by_structure_length_and_mod_97() {
    assert_eq!(
        check_iban("IT60 X054 2811 1010 0000 0123 456").unwrap(),
        "IT60X0542811101000000123456"
    );
    for (bad, reason) in [
        ("IT61X0542811101000000123456", "mod 97"),
        ("IT90X054281110100000012345", "length"),
        ("hello", "not an IBAN"),
    ] {
        let refusal = check_iban(bad).unwrap_err().to_string();
        assert!(refusal.contains(reason), "{bad}: {refusal}");
    }
}

#[test]
fn an_account_the_applicant_does_not_hold_is_refused() {
    let mut envelope = example();
    envelope.payload.payment.holders[0].tax_code =
        sportello_contract::CodiceFiscale::parse("BNCGVN70A41F205O").unwrap();
    assert!(matches!(
        check(&envelope),
        Err(ApplicationRefusal::HolderMismatch { .. })
    ));
}

#[test]
fn an_ordinary_pin_may_consult_but_not_apply_and_the_simplified_pin_may_apply() {
    use sportello_contract::{Authentication, PinKind};
    let mut envelope = example();
    let with_pin = |pin_kind| match &envelope.principal {
        Principal::Citizen { tax_code, .. } => Principal::Citizen {
            tax_code: tax_code.clone(),
            authentication: Authentication::Pin { pin_kind },
        },
        other => other.clone(),
    };
    let ordinary = with_pin(PinKind::Ordinary);
    let simplified = with_pin(PinKind::Simplified);
    envelope.principal = ordinary;
    let refusal = check(&envelope).unwrap_err().to_string();
    assert!(refusal.contains("pin_ordinary"), "{refusal}");
    envelope.principal = simplified;
    assert_eq!(
        check(&envelope).unwrap().credential,
        Some(Credential::PinSimplified)
    );
}

#[test]
fn a_citizen_applies_only_for_themself() {
    let mut envelope = example();
    envelope.payload.applicant.tax_code =
        sportello_contract::CodiceFiscale::parse("BNCGVN70A41F205O").unwrap();
    envelope.payload.payment.holders[0].tax_code = envelope.payload.applicant.tax_code.clone();
    assert!(matches!(
        check(&envelope),
        Err(ApplicationRefusal::NotTheSubject { .. })
    ));
}

#[test]
fn outside_the_window_the_refusal_says_when_it_opens() {
    let mut envelope = example();
    envelope.occurred_at = at(10);
    assert_eq!(
        check(&envelope).unwrap_err().to_string(),
        "submissions on this channel are closed now; they open at 2020-04-01 16:00 (Europe/Rome)"
    );
    envelope.occurred_at = at(17);
    assert!(check(&envelope).is_ok());
}

#[test]
fn fields_and_categories_come_from_the_data() {
    let mut envelope = example();
    envelope.payload.category = "astronauts".into();
    assert!(matches!(
        check(&envelope),
        Err(ApplicationRefusal::UnknownCategory { .. })
    ));
    let mut envelope = example();
    envelope
        .payload
        .fields
        .insert("days_worked_2019".into(), json!(10));
    assert!(check(&envelope).is_err());
}

#[test]
fn a_resubmission_has_the_same_fingerprint_and_a_different_application_another() {
    let envelope = example();
    let first = check(&envelope).unwrap().fingerprint;
    let mut again = example();
    again.message_id = uuid::Uuid::new_v4();
    again.payload.contact.email = Some("altro@example.org".into());
    assert_eq!(check(&again).unwrap().fingerprint, first);
    let mut other = example();
    other.payload.payment.iban = "IT42L1234512345123456789012".into();
    assert_ne!(check(&other).unwrap().fingerprint, first);
}

/// The seeds disagree on the ordinary PIN (004 admits it for the bonus, 003
/// wants the PIN dispositivo): a choice per benefit, in the data.
#[test]
fn the_ordinary_pin_submits_the_bonus_but_not_the_indemnity() {
    let rules = ApplicationRules::shipped().unwrap();
    let ordinary = Some(Credential::PinOrdinary);
    let bonus = rules
        .service(&submission_service("babysitting_bonus"))
        .unwrap();
    assert_eq!(bonus.admits(ordinary), Ok(()));
    assert!(bonus.note.as_deref().unwrap().contains("004"));
    let indemnity = rules
        .service(&submission_service("covid19_indemnity"))
        .unwrap();
    assert!(indemnity.admits(ordinary).is_err());
    assert_eq!(indemnity.admits(Some(Credential::PinSimplified)), Ok(()));
}
