//! Admission of a channel message: everything that can be decided from the
//! message alone, before any I/O. A message that fails here is dead-lettered
//! with the [`Rejection`] as its reason; it never reaches the database.

use chrono::Utc;

use super::admission::{check_access, check_routing_key, idempotency_of};
pub use super::admission::{Idempotency, Rejection};
use super::application::{case_request, check_application, ApplicationRules, CheckedApplication};
use super::content::{check_content, named_for};
use super::delegation;
use super::document::sanitize_file_name;
use sportello_contract::applications::ApplicationSubmitted;
use sportello_contract::schemas::catalogue;
use sportello_contract::{
    Channel, DelegationGranted, DelegationRevoked, Envelope, InlineAttachment, MessageAdded,
    Principal, RequestSubmitted,
};

/// An attachment that passed its checks, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedAttachment {
    /// Sanitised; never used as a path.
    pub file_name: String,
    pub media_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Decodes and checks a request's attachments: valid base64, at most
/// `max_bytes` each, a PDF, P7M, JPEG or PNG by content, a name that is
/// not a path. The schema already limits them to three.
pub fn check_attachments(
    attachments: &[InlineAttachment],
    max_bytes: usize,
) -> Result<Vec<CheckedAttachment>, Rejection> {
    use base64::Engine;
    attachments
        .iter()
        .enumerate()
        .map(|(index, attachment)| {
            let refuse = |reason: String| Rejection::Attachment {
                index: index + 1,
                file_name: attachment.file_name.chars().take(120).collect(),
                reason,
            };
            let file_name =
                sanitize_file_name(&attachment.file_name).map_err(|e| refuse(e.to_string()))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(attachment.content_base64.as_bytes())
                .map_err(|e| refuse(format!("not valid base64: {e}")))?;
            if bytes.len() > max_bytes {
                return Err(refuse(format!(
                    "{} bytes, more than the {max_bytes} allowed",
                    bytes.len()
                )));
            }
            let kind = check_content(&bytes).map_err(|e| refuse(e.to_string()))?;
            Ok(CheckedAttachment {
                file_name: named_for(&file_name, kind),
                media_type: kind.media_type(),
                bytes,
            })
        })
        .collect()
}

/// An intake message that passed admission, typed.
// One per delivery in a batch, short-lived: the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum IntakeMessage {
    RequestSubmitted(Envelope<RequestSubmitted>),
    /// Applied to a ticket the principal may see from the citizen's side
    /// (checked against the database when applied).
    MessageAdded(Envelope<MessageAdded>),
    /// A *delega* granted (publisher checked here, the rest when applied).
    DelegationGranted(Envelope<DelegationGranted>),
    DelegationRevoked(Envelope<DelegationRevoked>),
    /// A benefit application: opened as a ticket (`as_request`) and kept as
    /// an application (one per citizen and benefit, checked when applied).
    ApplicationSubmitted(Box<AdmittedApplication>),
    /// A PIN requested at the contact centre, its fields judged.
    PinRequested(Box<AdmittedPinRequest>),
}

/// A contact centre's `pin.requested` that passed every field's check.
#[derive(Debug, Clone)]
pub struct AdmittedPinRequest {
    pub envelope: Envelope<sportello_contract::pin::PinRequestBody>,
    pub request: crate::pin::PinRequest,
}

/// An application that passed every check that needs no database.
#[derive(Debug, Clone)]
pub struct AdmittedApplication {
    pub envelope: Envelope<ApplicationSubmitted>,
    pub checked: CheckedApplication,
    /// The back-office case it becomes, as the request a ticket is opened from.
    pub as_request: Envelope<RequestSubmitted>,
}

/// The identity of a message for exactly-once processing (the inbox row).
impl IntakeMessage {
    pub fn correlation_id(&self) -> &str {
        match self {
            IntakeMessage::RequestSubmitted(envelope) => &envelope.correlation_id,
            IntakeMessage::MessageAdded(envelope) => &envelope.correlation_id,
            IntakeMessage::DelegationGranted(envelope) => &envelope.correlation_id,
            IntakeMessage::DelegationRevoked(envelope) => &envelope.correlation_id,
            IntakeMessage::ApplicationSubmitted(application) => {
                &application.envelope.correlation_id
            }
            IntakeMessage::PinRequested(admitted) => &admitted.envelope.correlation_id,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Admitted {
    pub idempotency: Idempotency,
    pub message: IntakeMessage,
}

/// Decides whether a message published with `routing_key` may enter the system.
///
/// The broker's topic permissions guarantee that the first segment of the
/// routing key is the publishing channel's own name, so checking the envelope
/// against it stops a channel from speaking as another.
pub fn admit(routing_key: &str, body: &[u8]) -> Result<Admitted, Rejection> {
    let value = catalogue().validate_bytes(body)?;
    let message_type = value["type"].as_str().unwrap_or_default().to_owned();
    match message_type.as_str() {
        "request.submitted" => {
            let envelope: Envelope<RequestSubmitted> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            check_request_principal(&envelope)?;
            let idempotency = idempotency_of(&envelope, "request.submitted")?;
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::RequestSubmitted(envelope),
            })
        }
        "request.message_added" => {
            let envelope: Envelope<MessageAdded> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            check_message_principal(&envelope)?;
            let idempotency = idempotency_of(&envelope, "request.message_added")?;
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::MessageAdded(envelope),
            })
        }
        delegation::GRANTED => {
            let envelope: Envelope<DelegationGranted> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            delegation::check_grant(&envelope)?;
            let idempotency = idempotency_of(&envelope, delegation::GRANTED)?;
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::DelegationGranted(envelope),
            })
        }
        delegation::REVOKED => {
            let envelope: Envelope<DelegationRevoked> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            delegation::check_revoke(&envelope)?;
            let idempotency = idempotency_of(&envelope, delegation::REVOKED)?;
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::DelegationRevoked(envelope),
            })
        }
        "application.submitted" => {
            let envelope: Envelope<ApplicationSubmitted> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            // The floor here; the benefit's own service names its credentials.
            check_access(&envelope.principal, "application.submitted")?;
            let rules = ApplicationRules::shipped().map_err(Rejection::Policy)?;
            // The clock only bounds `occurred_at` (never ahead of it).
            let checked = check_application(rules, &envelope, Utc::now())?;
            let idempotency = idempotency_of(&envelope, "application.submitted")?;
            let as_request = case_request(&envelope, &checked);
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::ApplicationSubmitted(Box::new(AdmittedApplication {
                    envelope,
                    checked,
                    as_request,
                })),
            })
        }
        PIN_REQUESTED => {
            let envelope: Envelope<sportello_contract::pin::PinRequestBody> =
                serde_json::from_value(value).map_err(|e| Rejection::Decode(e.to_string()))?;
            check_routing_key(routing_key, envelope.channel, &envelope.message_type)?;
            let request = crate::pin::request::judge(&envelope.payload).map_err(|fields| {
                Rejection::PinRequest(
                    fields
                        .iter()
                        .map(|f| format!("{}: {}", f.field, f.message))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            check_pin_request_principal(&envelope, &request)?;
            let idempotency = idempotency_of(&envelope, PIN_REQUESTED)?;
            Ok(Admitted {
                idempotency,
                message: IntakeMessage::PinRequested(Box::new(AdmittedPinRequest {
                    envelope,
                    request,
                })),
            })
        }
        _ => Err(Rejection::NotAnIntakeMessage(message_type)),
    }
}

/// `pin.requested`: the contact centre's request of a PIN for its caller.
pub const PIN_REQUESTED: &str = "pin.requested";

/// Only a contact-centre agent, on its channel, for the caller it acts for
/// (the web requests over HTTP, `POST /pin/requests`).
fn check_pin_request_principal(
    envelope: &Envelope<sportello_contract::pin::PinRequestBody>,
    request: &crate::pin::PinRequest,
) -> Result<(), Rejection> {
    match (&envelope.channel, &envelope.principal) {
        (Channel::ContactCenter, Principal::ContactCenterAgent { on_behalf_of, .. }) => {
            check_access(&envelope.principal, PIN_REQUESTED)?;
            if *on_behalf_of == request.tax_code {
                Ok(())
            } else {
                Err(Rejection::PinRequest(format!(
                    "tax_code: the agent acts for {on_behalf_of}, not for {}",
                    request.tax_code
                )))
            }
        }
        (channel, principal) => Err(Rejection::PrincipalNotAllowed {
            principal: principal.kind(),
            channel: channel.as_str(),
            message_type: PIN_REQUESTED,
        }),
    }
}

/// The ticket's citizen, or an intermediary, writing through the citizens'
/// channels: the conversation of a ticket is theirs and the office's
/// (operators write through the ticket API).
fn check_message_principal(envelope: &Envelope<MessageAdded>) -> Result<(), Rejection> {
    const TYPE: &str = "request.message_added";
    match (&envelope.channel, &envelope.principal) {
        (
            Channel::Web | Channel::App | Channel::Cassetto,
            Principal::Citizen { .. } | Principal::Intermediary { .. },
        ) => check_access(&envelope.principal, TYPE),
        (channel, principal) => Err(Rejection::PrincipalNotAllowed {
            principal: principal.kind(),
            channel: channel.as_str(),
            message_type: TYPE,
        }),
    }
}

fn check_request_principal(envelope: &Envelope<RequestSubmitted>) -> Result<(), Rejection> {
    const TYPE: &str = "request.submitted";
    let allowed = matches!(
        (envelope.channel, &envelope.principal),
        (
            Channel::Web | Channel::App | Channel::Cassetto,
            Principal::Citizen { .. } | Principal::Intermediary { .. }
        ) | (Channel::ContactCenter, Principal::ContactCenterAgent { .. })
            | (Channel::Desk, Principal::Operator { .. })
    );
    if !allowed {
        return Err(Rejection::PrincipalNotAllowed {
            principal: envelope.principal.kind(),
            channel: envelope.channel.as_str(),
            message_type: TYPE,
        });
    }
    check_access(&envelope.principal, TYPE)?;
    if envelope.principal.subject_tax_code().is_none() {
        return Err(Rejection::MissingSubject(TYPE));
    }
    // An intermediary acts for a contribution position, under a delegation
    // for it (checked against the database when the request is applied).
    if matches!(envelope.principal, Principal::Intermediary { .. })
        && envelope.payload.matricola.is_none()
    {
        return Err(Rejection::IntermediaryWithoutPosition);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use sportello_contract::schemas::SCHEMA_FILES;

    fn example() -> Value {
        serde_json::from_str(SCHEMA_FILES[0].example).unwrap()
    }

    fn admit_value(routing_key: &str, value: &Value) -> Result<Admitted, Rejection> {
        admit(routing_key, &serde_json::to_vec(value).unwrap())
    }

    #[test]
    fn a_message_on_a_ticket_is_admitted_unless_blank_or_from_an_agent() {
        let example = SCHEMA_FILES
            .iter()
            .find(|file| file.schema.contains("request.message_added/v1.json"))
            .unwrap()
            .example;
        let mut message: Value = serde_json::from_str(example).unwrap();
        let admitted = admit_value("cassetto.request.message_added", &message).unwrap();
        assert!(matches!(admitted.message, IntakeMessage::MessageAdded(_)));
        for blank in ["   ", "\n\t", "a\u{0}b"] {
            message["payload"]["text"] = json!(blank);
            assert!(
                admit_value("cassetto.request.message_added", &message).is_err(),
                "{blank:?}"
            );
        }
        message["payload"]["text"] = json!("Grazie");
        message["principal"] = json!({"kind": "contact_center_agent", "agent_id": "CC-1", "on_behalf_of": "RSSMRA85T10A562S"});
        message["channel"] = json!("contact_center");
        assert!(matches!(
            admit_value("contact_center.request.message_added", &message),
            Err(Rejection::PrincipalNotAllowed { .. })
        ));
    }

    #[test]
    fn admits_the_example() {
        let admitted = admit_value("cassetto.request.submitted", &example()).unwrap();
        assert_eq!(
            admitted.idempotency.scope,
            "request.submitted:citizen:RSSMRA85T10A562S"
        );
        assert_eq!(admitted.idempotency.key, "cassetto-form-7f3d2a91");
    }

    #[test]
    fn refuses_a_channel_speaking_as_another() {
        let err = admit_value("web.request.submitted", &example()).unwrap_err();
        assert!(matches!(err, Rejection::RoutingKeyMismatch { .. }), "{err}");
    }

    #[test]
    fn refuses_a_wrong_control_character() {
        let mut message = example();
        message["principal"]["tax_code"] = json!("RSSMRA85T10A562T");
        let err = admit_value("cassetto.request.submitted", &message).unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
    }

    #[test]
    fn refuses_weak_authentication() {
        let mut message = example();
        message["principal"]["authentication"] = json!({"method": "SPID", "level": 1});
        assert!(matches!(
            admit_value("cassetto.request.submitted", &message),
            Err(Rejection::Access { .. })
        ));
        message["principal"]["authentication"] = json!({"method": "PIN", "pin_kind": "simplified"});
        let refusal = admit_value("cassetto.request.submitted", &message).unwrap_err();
        assert!(matches!(refusal, Rejection::Access { .. }), "{refusal}");
        assert!(
            refusal.to_string().contains("spid2"),
            "names what is needed: {refusal}"
        );
    }

    #[test]
    fn refuses_principals_foreign_to_the_channel() {
        let mut message = example();
        message["channel"] = json!("contact_center");
        let err = admit_value("contact_center.request.submitted", &message).unwrap_err();
        assert!(
            matches!(err, Rejection::PrincipalNotAllowed { .. }),
            "{err}"
        );
    }

    #[test]
    fn desk_operator_must_name_the_citizen() {
        let mut message = example();
        message["channel"] = json!("desk");
        message["principal"] =
            json!({"kind": "operator", "operator_id": "E0013609", "office": "0040"});
        assert!(matches!(
            admit_value("desk.request.submitted", &message),
            Err(Rejection::MissingSubject(_))
        ));
        message["principal"]["on_behalf_of"] = json!("RSSMRA85T10A562S");
        assert!(admit_value("desk.request.submitted", &message).is_ok());
    }

    #[test]
    fn same_payload_same_hash_different_payload_different_hash() {
        let a = admit_value("cassetto.request.submitted", &example()).unwrap();
        let mut changed = example();
        changed["payload"]["text"] = json!("altro testo");
        let b = admit_value("cassetto.request.submitted", &changed).unwrap();
        let a2 = admit_value("cassetto.request.submitted", &example()).unwrap();
        assert_eq!(a.idempotency.payload_sha256, a2.idempotency.payload_sha256);
        assert_ne!(a.idempotency.payload_sha256, b.idempotency.payload_sha256);
    }

    fn with_attachment(file_name: &str, bytes: &[u8]) -> RequestSubmitted {
        use base64::Engine;
        let mut request: Envelope<RequestSubmitted> = serde_json::from_value(example()).unwrap();
        request
            .payload
            .attachments
            .push(sportello_contract::InlineAttachment {
                file_name: file_name.into(),
                content_base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            });
        request.payload
    }

    #[test]
    fn attachments_are_checked_by_content_size_and_name() {
        let pdf = b"%PDF-1.7\n1 0 obj\n<</Type/Catalog/Pages 2 0 R>>\nendobj\n2 0 obj\n<</Type/Pages/Kids[3 0 R]/Count 1>>\nendobj\n3 0 obj\n<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>\nendobj\nxref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000054 00000 n \n0000000105 00000 n \ntrailer\n<</Size 4/Root 1 0 R>>\nstartxref\n170\n%%EOF\n".to_vec();
        let ok =
            check_attachments(&with_attachment("quietanza.pdf", &pdf).attachments, 1024).unwrap();
        assert_eq!(
            (ok[0].file_name.as_str(), ok[0].media_type),
            ("quietanza.pdf", "application/pdf")
        );
        let disguised = check_attachments(
            &with_attachment("foto.pdf", b"MZ\x90\x00 not a pdf").attachments,
            1024,
        );
        assert!(
            matches!(disguised, Err(Rejection::Attachment { index: 1, .. })),
            "{disguised:?}"
        );
        let big = check_attachments(&with_attachment("big.pdf", &pdf).attachments, 4);
        assert!(big
            .unwrap_err()
            .to_string()
            .contains("more than the 4 allowed"));
        let path = check_attachments(&with_attachment("../../etc/passwd", &pdf).attachments, 1024);
        assert!(path.unwrap_err().to_string().contains("path"));
        let mut bad = with_attachment("x.pdf", &pdf);
        bad.attachments[0].content_base64 = "not base64!".into();
        assert!(check_attachments(&bad.attachments, 1024)
            .unwrap_err()
            .to_string()
            .contains("base64"));
    }

    #[test]
    fn refuses_events_on_the_intake() {
        let event = SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == "ticket.opened")
            .unwrap();
        let event: Value = serde_json::from_str(event.example).unwrap();
        assert!(matches!(
            admit_value("web.ticket.opened", &event),
            Err(Rejection::NotAnIntakeMessage(_))
        ));
    }

    /// The examples integrators copy must be admitted as they are, with
    /// their attachments checked by content like any other.
    #[test]
    fn every_intake_example_is_admitted_and_its_attachments_pass() {
        for file in SCHEMA_FILES
            .iter()
            .filter(|f| f.message_type.starts_with("request."))
        {
            let value: Value = serde_json::from_str(file.example).unwrap();
            let key = format!(
                "{}.{}",
                value["channel"].as_str().unwrap(),
                file.message_type
            );
            let admitted = admit_value(&key, &value)
                .unwrap_or_else(|e| panic!("{} v{} example: {e}", file.message_type, file.version));
            if let IntakeMessage::RequestSubmitted(envelope) = admitted.message {
                check_attachments(&envelope.payload.attachments, 3 * 1024 * 1024)
                    .unwrap_or_else(|e| panic!("{} v{}: {e}", file.message_type, file.version));
            }
        }
    }

    #[test]
    fn a_pin_request_comes_from_an_agent_for_its_caller_with_every_field_right() {
        let file = SCHEMA_FILES
            .iter()
            .find(|f| f.message_type == PIN_REQUESTED)
            .unwrap();
        let example: Value = serde_json::from_str(file.example).unwrap();
        let admitted = admit_value("contact_center.pin.requested", &example).unwrap();
        assert!(matches!(admitted.message, IntakeMessage::PinRequested(_)));
        let mut other = example.clone();
        other["principal"]["on_behalf_of"] = json!("BNCGVN70A41F205O");
        assert!(matches!(
            admit_value("contact_center.pin.requested", &other),
            Err(Rejection::PinRequest(reason)) if reason.starts_with("tax_code")
        ));
        let mut web = example.clone();
        web["channel"] = json!("web");
        web["principal"] = json!({"kind": "citizen", "tax_code": "RSSMRA85T10A562S",
                                  "authentication": {"method": "CIE"}});
        assert!(matches!(
            admit_value("web.pin.requested", &web),
            Err(Rejection::PrincipalNotAllowed { .. })
        ));
        let mut bad = example;
        bad["payload"]["surname"] = json!("Verdi");
        bad["payload"]["contacts"]["mobile"] = json!("3331234567");
        let rejection = admit_value("contact_center.pin.requested", &bad).unwrap_err();
        let reason = rejection.to_string();
        assert!(
            reason.contains("surname") && reason.contains("contacts.mobile"),
            "{reason}"
        );
    }
}
