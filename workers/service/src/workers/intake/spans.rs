//! What an intake message is logged and traced under: the ids its sender
//! knows it by, and its consumer span.

use lapin::message::Delivery;

use crate::broker::names::INTAKE_REQUESTS_QUEUE;
use crate::broker::trace;

/// The ids a message is logged under: the envelope's own (what the sender
/// knows it by), else the AMQP properties, else `-`. The body is read
/// leniently (it may be the very thing that was wrong) and without building
/// it: every message passes here, attachments and all.
pub(super) fn ids_for_log(
    body: &[u8],
    message_id: Option<&str>,
    correlation_id: Option<&str>,
) -> (String, String) {
    /// A field read if it is text, skipped (not built) otherwise.
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Field<'a> {
        Text(#[serde(borrow)] std::borrow::Cow<'a, str>),
        Other(serde::de::IgnoredAny),
    }
    #[derive(serde::Deserialize)]
    struct Ids<'a> {
        #[serde(borrow, default)]
        message_id: Option<Field<'a>>,
        #[serde(borrow, default)]
        correlation_id: Option<Field<'a>>,
    }
    let ids = serde_json::from_slice::<Ids>(body).ok();
    let text = |field: Option<&Field>| match field {
        Some(Field::Text(value)) if !value.is_empty() => {
            Some(value.chars().take(128).collect::<String>())
        }
        _ => None,
    };
    let or_dash = |value: Option<String>, property: Option<&str>| {
        value
            .or_else(|| property.filter(|p| !p.is_empty()).map(str::to_owned))
            .unwrap_or_else(|| "-".into())
    };
    (
        or_dash(
            text(ids.as_ref().and_then(|i| i.message_id.as_ref())),
            message_id,
        ),
        or_dash(
            text(ids.as_ref().and_then(|i| i.correlation_id.as_ref())),
            correlation_id,
        ),
    )
}

/// [`ids_for_log`] of a delivery.
pub(super) fn delivery_ids(delivery: &Delivery) -> (String, String) {
    let properties = &delivery.properties;
    ids_for_log(
        &delivery.data,
        properties.message_id().as_ref().map(|v| v.as_str()),
        properties.correlation_id().as_ref().map(|v| v.as_str()),
    )
}

/// The span of one intake message: a consumer's, continuing the trace the
/// message carries, or starting one (an integrator's message without
/// `traceparent`); its correlation id is the envelope's, untouched.
pub(super) fn message_span(delivery: &Delivery) -> tracing::Span {
    let (message_id, correlation_id) = delivery_ids(delivery);
    trace::process_span_as(
        INTAKE_REQUESTS_QUEUE,
        delivery,
        &message_id,
        &correlation_id,
    )
}

#[cfg(test)]
mod log_tests {
    use super::ids_for_log;

    #[test]
    fn a_rejected_message_is_logged_under_the_ids_its_body_carries() {
        let body = br#"{"message_id": "m-1", "correlation_id": "c-1", "type": 3}"#;
        assert_eq!(
            ids_for_log(body, Some("p"), None),
            ("m-1".to_owned(), "c-1".to_owned())
        );
        let odd = br#"{"message_id": 7, "correlation_id": "c-\u00e8", "payload": {"a": [1]}}"#;
        assert_eq!(
            ids_for_log(odd, Some("p"), None),
            ("p".to_owned(), "c-\u{e8}".to_owned())
        );
        assert_eq!(
            ids_for_log(b"not json", Some("p"), None),
            ("p".to_owned(), "-".to_owned())
        );
    }
}
