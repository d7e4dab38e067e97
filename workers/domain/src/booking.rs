//! Admission of booking messages from channels (the broker side of
//! appointments): everything decidable from the message alone. Whether the
//! slot is free, the appointment theirs or the delegation active is decided
//! when the command is applied.

use super::admission::{check_access, check_routing_key, idempotency_of, Idempotency, Rejection};
use sportello_contract::appointments::{
    AvailabilityRequested, CallbackOutcome, CancelRequested, ConfirmRequested, HoldRequested,
};
use sportello_contract::schemas::catalogue;
use sportello_contract::{Channel, CodiceFiscale, Envelope, Principal};

pub const AVAILABILITY_REQUESTED: &str = "appointment.availability_requested";
pub const HOLD_REQUESTED: &str = "appointment.hold_requested";
pub const CONFIRM_REQUESTED: &str = "appointment.confirm_requested";
pub const CANCEL_REQUESTED: &str = "appointment.cancel_requested";
pub const CALLBACK_OUTCOME: &str = "appointment.callback_outcome";

/// A booking command that passed admission.
#[derive(Debug, Clone)]
pub enum BookingCommand {
    Hold(Envelope<HoldRequested>),
    Confirm(Envelope<ConfirmRequested>),
    Cancel(Envelope<CancelRequested>),
    CallbackOutcome(Envelope<CallbackOutcome>),
}

impl BookingCommand {
    pub fn message_type(&self) -> &'static str {
        match self {
            BookingCommand::Hold(_) => HOLD_REQUESTED,
            BookingCommand::Confirm(_) => CONFIRM_REQUESTED,
            BookingCommand::Cancel(_) => CANCEL_REQUESTED,
            BookingCommand::CallbackOutcome(_) => CALLBACK_OUTCOME,
        }
    }

    pub fn correlation_id(&self) -> &str {
        match self {
            BookingCommand::Hold(e) => &e.correlation_id,
            BookingCommand::Confirm(e) => &e.correlation_id,
            BookingCommand::Cancel(e) => &e.correlation_id,
            BookingCommand::CallbackOutcome(e) => &e.correlation_id,
        }
    }

    pub fn principal(&self) -> &Principal {
        match self {
            BookingCommand::Hold(e) => &e.principal,
            BookingCommand::Confirm(e) => &e.principal,
            BookingCommand::Cancel(e) => &e.principal,
            BookingCommand::CallbackOutcome(e) => &e.principal,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AdmittedCommand {
    pub idempotency: Idempotency,
    pub command: BookingCommand,
}

fn decode<P: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    routing_key: &str,
) -> Result<Envelope<P>, Rejection> {
    let envelope: Envelope<P> =
        serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
    check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
    Ok(envelope)
}

/// Admits a booking command published with `routing_key`.
pub fn admit_command(routing_key: &str, body: &[u8]) -> Result<AdmittedCommand, Rejection> {
    let value = catalogue().validate_bytes(body)?;
    let message_type = value["type"].as_str().unwrap_or_default().to_owned();
    let (idempotency, command) = match message_type.as_str() {
        HOLD_REQUESTED => {
            let envelope: Envelope<HoldRequested> = decode(value, routing_key)?;
            check_booker(&envelope.channel, &envelope.principal, HOLD_REQUESTED)?;
            match (&envelope.principal, &envelope.payload.for_tax_code) {
                (Principal::Intermediary { .. }, None) => {
                    return Err(Rejection::MissingSubject(HOLD_REQUESTED))
                }
                (
                    Principal::Operator {
                        on_behalf_of: None, ..
                    },
                    _,
                ) => return Err(Rejection::MissingSubject(HOLD_REQUESTED)),
                _ => {}
            }
            (
                idempotency_of(&envelope, HOLD_REQUESTED)?,
                BookingCommand::Hold(envelope),
            )
        }
        CONFIRM_REQUESTED => {
            let envelope: Envelope<ConfirmRequested> = decode(value, routing_key)?;
            check_booker(&envelope.channel, &envelope.principal, CONFIRM_REQUESTED)?;
            (
                idempotency_of(&envelope, CONFIRM_REQUESTED)?,
                BookingCommand::Confirm(envelope),
            )
        }
        CANCEL_REQUESTED => {
            let envelope: Envelope<CancelRequested> = decode(value, routing_key)?;
            check_booker(&envelope.channel, &envelope.principal, CANCEL_REQUESTED)?;
            (
                idempotency_of(&envelope, CANCEL_REQUESTED)?,
                BookingCommand::Cancel(envelope),
            )
        }
        CALLBACK_OUTCOME => {
            let envelope: Envelope<CallbackOutcome> = decode(value, routing_key)?;
            // Calls are taken by contact-centre agents (or an office's staff
            // at the desk); citizens never answer for them.
            let allowed = matches!(
                (envelope.channel, &envelope.principal),
                (Channel::ContactCenter, Principal::ContactCenterAgent { .. })
                    | (Channel::Desk, Principal::Operator { .. })
            );
            if !allowed {
                return Err(not_allowed(
                    envelope.channel,
                    &envelope.principal,
                    CALLBACK_OUTCOME,
                ));
            }
            (
                idempotency_of(&envelope, CALLBACK_OUTCOME)?,
                BookingCommand::CallbackOutcome(envelope),
            )
        }
        _ => return Err(Rejection::NotAnIntakeMessage(message_type)),
    };
    Ok(AdmittedCommand {
        idempotency,
        command,
    })
}

/// What a booking command (or availability query) refused at admission
/// still says about itself, enough to answer its sender on `reply_to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedMessage {
    pub message_type: &'static str,
    /// The envelope's, when it has one (the AMQP property wins in replies).
    pub correlation_id: String,
    pub message_id: Option<uuid::Uuid>,
}

/// The command a refused body meant to be, if it is JSON naming a booking
/// command's type: anything else is no command, and only dead-lettered.
pub fn refused_command(body: &[u8]) -> Option<RefusedMessage> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let named = value.get("type").and_then(serde_json::Value::as_str)?;
    let message_type = [
        HOLD_REQUESTED,
        CONFIRM_REQUESTED,
        CANCEL_REQUESTED,
        CALLBACK_OUTCOME,
    ]
    .into_iter()
    .find(|known| *known == named)?;
    Some(RefusedMessage::of(message_type, &value))
}

impl RefusedMessage {
    fn of(message_type: &'static str, value: &serde_json::Value) -> Self {
        let text = |field: &str| value.get(field).and_then(serde_json::Value::as_str);
        RefusedMessage {
            message_type,
            // What the schema allows (the AMQP property it becomes holds
            // 255 bytes at most): anything else may be why it was refused.
            correlation_id: text("correlation_id")
                .filter(|id| (1..=128).contains(&id.chars().count()) && id.len() <= 255)
                .unwrap_or("unknown")
                .to_owned(),
            message_id: text("message_id").and_then(|id| id.parse().ok()),
        }
    }
}

/// What a refused availability query asked, when its answer can say it
/// back (the answer's schema requires a well-formed office, desk and mode).
pub fn refused_query(body: &[u8]) -> Option<(RefusedMessage, [String; 3])> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("type").and_then(serde_json::Value::as_str) != Some(AVAILABILITY_REQUESTED) {
        return None;
    }
    let text = |pointer: &str| value.pointer(pointer).and_then(serde_json::Value::as_str);
    let office = text("/payload/office_aoo").filter(|o| super::protocol::Aoo::parse(o).is_ok())?;
    let desk = text("/payload/desk").filter(|d| super::appointment::DeskKind::parse(d).is_ok())?;
    let mode = text("/payload/mode").filter(|m| super::appointment::Mode::parse(m).is_ok())?;
    let asked = [office.to_owned(), desk.to_owned(), mode.to_owned()];
    Some((RefusedMessage::of(AVAILABILITY_REQUESTED, &value), asked))
}

/// Admits an availability query published with `routing_key`.
pub fn admit_query(
    routing_key: &str,
    body: &[u8],
) -> Result<Envelope<AvailabilityRequested>, Rejection> {
    let value = catalogue().validate_bytes(body)?;
    let message_type = value["type"].as_str().unwrap_or_default().to_owned();
    if message_type != AVAILABILITY_REQUESTED {
        return Err(Rejection::NotAnIntakeMessage(message_type));
    }
    let envelope: Envelope<AvailabilityRequested> = decode(value, routing_key)?;
    check_booker(
        &envelope.channel,
        &envelope.principal,
        AVAILABILITY_REQUESTED,
    )?;
    Ok(envelope)
}

/// Who may book on each channel: citizens and intermediaries on their own
/// channels, contact-centre agents for the
/// caller, desk operators for the person at the desk; each as the access
/// policy admits them.
fn check_booker(
    channel: &Channel,
    principal: &Principal,
    message_type: &'static str,
) -> Result<(), Rejection> {
    match (channel, principal) {
        (
            Channel::Web | Channel::App | Channel::Cassetto,
            Principal::Citizen { .. } | Principal::Intermediary { .. },
        )
        | (Channel::ContactCenter, Principal::ContactCenterAgent { .. })
        | (Channel::Desk, Principal::Operator { .. }) => check_access(principal, message_type),
        (channel, principal) => Err(not_allowed(*channel, principal, message_type)),
    }
}

fn not_allowed(channel: Channel, principal: &Principal, message_type: &'static str) -> Rejection {
    Rejection::PrincipalNotAllowed {
        principal: principal.kind(),
        channel: channel.as_str(),
        message_type,
    }
}

/// The citizen an admitted hold is for: the citizen themself, the caller of
/// an agent or the person at a desk, or an intermediary's delegating citizen
/// (whose delegation is checked when applied).
pub fn hold_subject(envelope: &Envelope<HoldRequested>) -> Option<&CodiceFiscale> {
    match &envelope.principal {
        Principal::Intermediary { .. } => envelope.payload.for_tax_code.as_ref(),
        principal => principal.subject_tax_code(),
    }
}

/// The order a batch applies its new commands in (positions in
/// `commands`): confirmations, cancellations and call outcomes first, in
/// arrival order, so a seat one gives back can go to a hold of the same
/// batch; then the holds by slot, in arrival order within a slot (the first
/// to ask is the first served). Two workers' batches thus take the slot rows
/// they share in the same order, and do not deadlock on them.
pub fn application_order(commands: &[&BookingCommand]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..commands.len()).collect();
    // A stable sort: arrival order within equal keys.
    order.sort_by_key(|&position| match commands[position] {
        BookingCommand::Hold(envelope) => {
            let slot = &envelope.payload;
            Some((
                slot.office_aoo.as_str(),
                slot.desk.as_str(),
                slot.mode.as_str(),
                slot.starts_at,
            ))
        }
        _ => None,
    });
    order
}

/// Whether `later` repeats `earlier`: the same message, or the same actor's
/// command under the same idempotency key (what the inbox treats as one).
pub fn repeats(earlier: &Idempotency, later: &Idempotency) -> bool {
    earlier.message_id == later.message_id
        || (earlier.scope == later.scope && earlier.key == later.key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use sportello_contract::schemas::SCHEMA_FILES;

    fn example(message_type: &str) -> Value {
        let file = SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == message_type)
            .unwrap();
        serde_json::from_str(file.example).unwrap()
    }

    fn admit_value(routing_key: &str, value: &Value) -> Result<AdmittedCommand, Rejection> {
        admit_command(routing_key, &serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn every_example_command_is_admitted_on_its_routing_key() {
        for message_type in [
            HOLD_REQUESTED,
            CONFIRM_REQUESTED,
            CANCEL_REQUESTED,
            CALLBACK_OUTCOME,
        ] {
            let value = example(message_type);
            let key = format!("contact_center.{message_type}");
            let admitted = admit_value(&key, &value).unwrap();
            assert_eq!(admitted.command.message_type(), message_type);
        }
        let query = example(AVAILABILITY_REQUESTED);
        admit_query(
            "contact_center.appointment.availability_requested",
            &serde_json::to_vec(&query).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn another_channel_routing_key_is_refused() {
        let value = example(HOLD_REQUESTED);
        let refused = admit_value("web.appointment.hold_requested", &value).unwrap_err();
        assert!(matches!(refused, Rejection::RoutingKeyMismatch { .. }));
    }

    #[test]
    fn citizens_cannot_record_call_outcomes() {
        let mut value = example(CALLBACK_OUTCOME);
        value["channel"] = json!("web");
        value["principal"] = json!({"kind": "citizen", "tax_code": "RSSMRA85T10A562S", "authentication": {"method": "SPID", "level": 2}});
        let refused = admit_value("web.appointment.callback_outcome", &value).unwrap_err();
        assert!(matches!(refused, Rejection::PrincipalNotAllowed { .. }));
    }

    #[test]
    fn an_intermediary_names_the_citizen_and_a_weak_login_cannot_book() {
        let mut value = example(HOLD_REQUESTED);
        value["channel"] = json!("web");
        value["principal"] = json!({"kind": "intermediary", "tax_code": "FRRLCU75C41D969A", "authentication": {"method": "CNS"}});
        assert!(matches!(
            admit_value("web.appointment.hold_requested", &value).unwrap_err(),
            Rejection::MissingSubject(_)
        ));
        value["payload"]["for_tax_code"] = json!("RSSMRA85T10A562S");
        let admitted = admit_value("web.appointment.hold_requested", &value).unwrap();
        let BookingCommand::Hold(envelope) = admitted.command else {
            panic!("a hold")
        };
        assert_eq!(
            hold_subject(&envelope).unwrap().as_str(),
            "RSSMRA85T10A562S"
        );

        value["principal"] = json!({"kind": "citizen", "tax_code": "RSSMRA85T10A562S", "authentication": {"method": "SPID", "level": 1}});
        assert!(matches!(
            admit_value("web.appointment.hold_requested", &value).unwrap_err(),
            Rejection::Access { .. }
        ));
    }

    #[test]
    fn a_refused_command_can_still_be_answered_but_garbage_cannot() {
        let mut weak = example(HOLD_REQUESTED);
        weak["principal"]["authentication"] = json!({"method": "SPID", "level": 1});
        let body = serde_json::to_vec(&weak).unwrap();
        let refused = refused_command(&body).expect("a hold, however refused");
        assert_eq!(refused.message_type, HOLD_REQUESTED);
        assert_eq!(
            refused.correlation_id,
            weak["correlation_id"].as_str().unwrap()
        );
        assert!(refused.message_id.is_some());
        let not_json = refused_command(b"\xff{");
        let not_a_command = refused_command(br#"{"type": "ticket.opened"}"#);
        assert_eq!((not_json, not_a_command), (None, None));
        let bare = refused_command(br#"{"type": "appointment.cancel_requested"}"#).unwrap();
        assert_eq!(
            (bare.correlation_id.as_str(), bare.message_id),
            ("unknown", None)
        );
        // Refused perhaps for its correlation id: not repeated in the answer.
        weak["correlation_id"] = json!("x".repeat(300));
        let long = refused_command(&serde_json::to_vec(&weak).unwrap()).unwrap();
        assert_eq!(long.correlation_id, "unknown");
    }

    #[test]
    fn a_desk_operator_books_only_for_the_person_at_the_desk() {
        let mut value = example(HOLD_REQUESTED);
        value["channel"] = json!("desk");
        value["principal"] =
            json!({"kind": "operator", "operator_id": "E0013609", "office": "1901"});
        assert!(matches!(
            admit_value("desk.appointment.hold_requested", &value).unwrap_err(),
            Rejection::MissingSubject(_)
        ));
    }

    fn admitted(message_type: &str, edit: impl FnOnce(&mut Value)) -> AdmittedCommand {
        let mut value = example(message_type);
        value["message_id"] = json!(uuid::Uuid::now_v7());
        edit(&mut value);
        let key = format!("contact_center.{message_type}");
        admit_value(&key, &value).unwrap()
    }

    fn hold_at(starts_at: &str, key: &str) -> AdmittedCommand {
        admitted(HOLD_REQUESTED, |value| {
            value["payload"]["starts_at"] = json!(starts_at);
            value["idempotency_key"] = json!(format!("batch-key-{key}"));
        })
    }

    #[test]
    fn a_batch_applies_releases_first_then_holds_by_slot_in_arrival_order() {
        let batch = [
            hold_at("2030-03-05T10:00:00Z", "a"),
            admitted(CONFIRM_REQUESTED, |_| {}),
            hold_at("2030-03-05T09:00:00Z", "b"),
            hold_at("2030-03-05T10:00:00Z", "c"),
            admitted(CANCEL_REQUESTED, |_| {}),
            hold_at("2030-03-05T09:00:00Z", "d"),
        ];
        let commands: Vec<&BookingCommand> = batch.iter().map(|a| &a.command).collect();
        assert_eq!(application_order(&commands), vec![1, 4, 2, 5, 0, 3]);
        // Whatever order two batches arrive in, they meet the slots in one order.
        let reversed: Vec<&BookingCommand> = commands.iter().rev().copied().collect();
        let slots = |commands: &[&BookingCommand]| -> Vec<String> {
            application_order(commands)
                .into_iter()
                .filter_map(|p| match commands[p] {
                    BookingCommand::Hold(e) => Some(e.payload.starts_at.to_rfc3339()),
                    _ => None,
                })
                .collect()
        };
        let mut deduplicated = slots(&commands);
        deduplicated.dedup();
        let mut other = slots(&reversed);
        other.dedup();
        assert_eq!(deduplicated, other);
        assert!(application_order(&[]).is_empty());
    }

    #[test]
    fn a_command_repeats_the_same_message_or_the_same_key_of_the_same_actor() {
        let first = hold_at("2030-03-05T10:00:00Z", "same-key");
        let resend = hold_at("2030-03-05T10:00:00Z", "same-key");
        let other = hold_at("2030-03-05T10:00:00Z", "other-key");
        assert!(repeats(&first.idempotency, &first.idempotency));
        assert!(repeats(&first.idempotency, &resend.idempotency));
        assert!(!repeats(&first.idempotency, &other.idempotency));
        let mut another_agent = resend.idempotency.clone();
        another_agent.scope = "someone else".into();
        assert!(!repeats(&first.idempotency, &another_agent));
    }
}
