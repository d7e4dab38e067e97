use super::*;
use chrono::TimeZone;
use sportello_contract::Authentication;

const CITIZEN: &str = "RSSMRA85T10A562S";
const OTHER: &str = "BNCGVN70A41F205O";

fn cf(raw: &str) -> CodiceFiscale {
    CodiceFiscale::parse(raw).unwrap()
}

fn citizen(raw: &str) -> Principal {
    Principal::Citizen {
        tax_code: cf(raw),
        authentication: Authentication::Spid { level: 2 },
    }
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).unwrap()
}

#[test]
fn values_are_parsed_valid() {
    assert_eq!(Mode::parse("video"), Ok(Mode::Video));
    assert!(Mode::parse("carrier_pigeon").is_err());
    assert!(DeskKind::parse("conto_assicurativo").is_ok());
    assert!(DeskKind::parse("Conto").is_err());
    assert!(DeskKind::parse("a;drop").is_err());
    assert_eq!(
        PhoneNumber::parse("333 123 4567").unwrap().as_str(),
        "+393331234567"
    );
    assert!(PhoneNumber::parse("").is_err());
    assert!(PhoneNumber::parse("call me").is_err());
    assert_eq!(Notes::parse("  pensione  ").unwrap().as_str(), "pensione");
    assert!(Notes::parse("   ").is_err());
    assert!(Notes::parse(&"x".repeat(MAX_NOTES + 1)).is_err());
    assert!(Notes::parse("a\u{0}b").is_err());
}

#[test]
fn a_hold_is_confirmed_once_and_a_repeat_answers_the_same() {
    let expires = at(10, 10);
    let starts = at(15, 0);
    let confirm = |state, now| decide(state, expires, starts, Command::Confirm, now);
    assert_eq!(
        confirm(AppointmentState::Held, at(10, 5)),
        Ok(Transition::Confirm)
    );
    assert_eq!(
        confirm(AppointmentState::Confirmed, at(10, 6)),
        Ok(Transition::Unchanged)
    );
    // Even after the hold's expiry, a confirmed appointment stays confirmed.
    assert_eq!(
        confirm(AppointmentState::Confirmed, at(11, 0)),
        Ok(Transition::Unchanged)
    );
}

#[test]
fn an_expired_hold_lapses_and_cannot_be_confirmed() {
    let expires = at(10, 10);
    let starts = at(15, 0);
    assert_eq!(
        decide(
            AppointmentState::Held,
            expires,
            starts,
            Command::Confirm,
            at(10, 10)
        ),
        Ok(Transition::Lapse)
    );
    assert_eq!(
        decide(
            AppointmentState::Expired,
            expires,
            starts,
            Command::Confirm,
            at(10, 11)
        ),
        Err(StateRefusal::HoldExpired)
    );
    let cancel = Command::Cancel {
        by: CancelledBy::Citizen,
    };
    assert_eq!(
        decide(
            AppointmentState::Expired,
            expires,
            starts,
            cancel,
            at(10, 11)
        ),
        Err(StateRefusal::HoldExpired)
    );
}

#[test]
fn cancel_releases_and_only_a_confirmed_cancellation_is_announced() {
    let expires = at(10, 10);
    let starts = at(15, 0);
    let citizen_cancel = Command::Cancel {
        by: CancelledBy::Citizen,
    };
    assert_eq!(
        decide(
            AppointmentState::Held,
            expires,
            starts,
            citizen_cancel,
            at(10, 1)
        ),
        Ok(Transition::Cancel {
            by: CancelledBy::Citizen,
            announce: false
        })
    );
    assert_eq!(
        decide(
            AppointmentState::Confirmed,
            expires,
            starts,
            citizen_cancel,
            at(14, 59)
        ),
        Ok(Transition::Cancel {
            by: CancelledBy::Citizen,
            announce: true
        })
    );
    assert_eq!(
        decide(
            AppointmentState::Confirmed,
            expires,
            starts,
            citizen_cancel,
            at(15, 0)
        ),
        Err(StateRefusal::TooLateToCancel)
    );
    let office_cancel = Command::Cancel {
        by: CancelledBy::Office,
    };
    assert!(matches!(
        decide(
            AppointmentState::Confirmed,
            expires,
            starts,
            office_cancel,
            at(15, 5)
        ),
        Ok(Transition::Cancel { announce: true, .. })
    ));
    assert_eq!(
        decide(
            AppointmentState::Cancelled,
            expires,
            starts,
            citizen_cancel,
            at(14, 0)
        ),
        Ok(Transition::Unchanged)
    );
    assert_eq!(
        decide(
            AppointmentState::Cancelled,
            expires,
            starts,
            Command::Confirm,
            at(10, 2)
        ),
        Err(StateRefusal::Cancelled),
        "confirm after cancel"
    );
    assert_eq!(
        decide(
            AppointmentState::Done,
            expires,
            starts,
            office_cancel,
            at(16, 0)
        ),
        Err(StateRefusal::Done)
    );
}

#[test]
fn a_citizen_name_is_trimmed_and_checked() {
    assert_eq!(
        CitizenName::parse("  Mario   Rossi ").unwrap().as_str(),
        "Mario Rossi"
    );
    assert_eq!(
        CitizenName::parse("D'Angelo Maria-Luisa").unwrap().as_str(),
        "D'Angelo Maria-Luisa"
    );
    assert!(CitizenName::parse("   ").is_err());
    assert!(CitizenName::parse("12345").is_err());
    assert!(CitizenName::parse("Mario\u{0}Rossi").is_err());
    assert!(CitizenName::parse(&"a".repeat(121)).is_err());
    assert!(CitizenName::parse(&"à".repeat(120)).is_ok());
}

#[test]
fn only_a_confirmed_appointment_is_completed_and_once() {
    assert_eq!(complete(AppointmentState::Confirmed), Ok(true));
    assert_eq!(complete(AppointmentState::Done), Ok(false));
    assert_eq!(
        complete(AppointmentState::Cancelled),
        Err(StateRefusal::Cancelled)
    );
    assert_eq!(
        complete(AppointmentState::Expired),
        Err(StateRefusal::HoldExpired)
    );
    assert_eq!(
        complete(AppointmentState::Held),
        Err(StateRefusal::NotConfirmed)
    );
}

#[test]
fn cassetto_booking_waits_n_days_unless_rejected() {
    let first = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    let conversation = Conversation {
        first_message_at: first,
        after_days: 10,
        rejected: false,
    };
    let early = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    assert_eq!(
        cassetto_eligibility(&conversation, early),
        Err(NotYetEligible {
            possible_from: Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
        })
    );
    let later = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
    assert_eq!(cassetto_eligibility(&conversation, later), Ok(()));
    let rejected = Conversation {
        rejected: true,
        ..conversation
    };
    assert_eq!(cassetto_eligibility(&rejected, early), Ok(()));
}

#[test]
fn who_books_for_whom() {
    let me = citizen(CITIZEN);
    let party = booking_party(&me, None, "1900", None).unwrap();
    assert_eq!(party.subject, cf(CITIZEN));
    assert_eq!(party.channel, Channel::Web);
    assert!(booking_party(&me, Some(&cf(OTHER)), "1900", None).is_err());
    assert!(booking_party(&me, None, "1900", Some(Channel::Desk)).is_err());
    assert_eq!(
        booking_party(&me, None, "1900", Some(Channel::Cassetto))
            .unwrap()
            .channel,
        Channel::Cassetto
    );

    let intermediary = Principal::Intermediary {
        tax_code: cf(OTHER),
        authentication: Authentication::Cns,
    };
    assert!(booking_party(&intermediary, None, "1900", None).is_err());
    let party = booking_party(&intermediary, Some(&cf(CITIZEN)), "1900", None).unwrap();
    assert!(party.needs_delegation);
    assert_eq!(party.subject, cf(CITIZEN));

    let agent = Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: cf(CITIZEN),
        identified_by: None,
        pin_verification_id: None,
    };
    let party = booking_party(&agent, None, "1900", None).unwrap();
    assert_eq!(party.channel, Channel::ContactCenter);
    assert!(booking_party(&agent, Some(&cf(OTHER)), "1900", None).is_err());

    let operator = Principal::Operator {
        operator_id: "E0013609".into(),
        office: "1900".into(),
        on_behalf_of: None,
    };
    assert!(booking_party(&operator, None, "1900", None).is_err());
    assert!(booking_party(&operator, Some(&cf(CITIZEN)), "1901", None).is_err());
    let party = booking_party(&operator, Some(&cf(CITIZEN)), "1900", None).unwrap();
    assert_eq!(party.channel, Channel::Desk);
}

#[test]
fn an_agent_sees_only_what_they_booked_for_that_citizen() {
    let parties = CaseParties {
        citizen_tax_code: CITIZEN.into(),
        matricola: None,
        gestione: "aziende_uniemens".into(),
        office_aoo: "1900".into(),
    };
    let agent = Principal::ContactCenterAgent {
        agent_id: "CC-0042".into(),
        on_behalf_of: cf(CITIZEN),
        identified_by: None,
        pin_verification_id: None,
    };
    let now = Utc::now();
    assert_eq!(
        side_on_appointment(&agent, &parties, "agent:CC-0042", &[], now),
        Some(Side::Citizen)
    );
    assert_eq!(
        side_on_appointment(&agent, &parties, "citizen:RSSMRA85T10A562S", &[], now),
        None
    );
    assert_eq!(
        side_on_appointment(&citizen(CITIZEN), &parties, "agent:CC-0042", &[], now),
        Some(Side::Citizen)
    );
    assert_eq!(
        side_on_appointment(&citizen(OTHER), &parties, "citizen:x", &[], now),
        None
    );
}
