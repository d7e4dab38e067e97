//! Names of the broker objects the code relies on; `broker-config/definitions.json`
//! declares them (a test checks that the two agree).

/// Where channels publish; routing key `<channel>.<message type>`.
pub const INTAKE_EXCHANGE: &str = "sportello.intake";
/// Where Sportello's own events go; routing key `<event type>[.<suffix>]`.
pub const EVENTS_EXCHANGE: &str = "sportello.events";
/// Where rejected and undeliverable messages go, with the reason in a header.
pub const DEAD_LETTER_EXCHANGE: &str = "sportello.dead-letter";
/// `request.submitted` from every channel.
pub const INTAKE_REQUESTS_QUEUE: &str = "sportello.intake.requests";
/// `documents.registration_requested` from the events exchange.
pub const REGISTRATION_REQUESTS_QUEUE: &str = "sportello.registration.requests";
/// The events notifications are planned from (bindings: one per rule).
pub const NOTIFICATION_EVENTS_QUEUE: &str = "sportello.notifications.events";
pub const DEAD_LETTER_QUEUE: &str = "sportello.dead-letter";
/// Booking commands (hold, confirm, cancel, call-back outcome) from every channel.
pub const APPOINTMENT_COMMANDS_QUEUE: &str = "sportello.appointments.commands";
/// Availability queries (request/reply) from every channel.
pub const APPOINTMENT_QUERIES_QUEUE: &str = "sportello.appointments.queries";
/// An agent's check of its caller's PIN half (request/reply). Not durable,
/// no dead-letter exchange, a 30 s TTL: the half it carries is never
/// written to disk by a queue, nor dead-lettered.
pub const PIN_AGENT_CHECKS_QUEUE: &str = "sportello.pin.agent-checks";
/// Phone call-backs due, routed by `<aoo>.<desk kind>` to one queue per
/// office and desk; its alternate exchange keeps what no queue takes.
pub const CALLBACKS_EXCHANGE: &str = "sportello.callbacks";
pub const UNROUTED_CALLBACKS_QUEUE: &str = "sportello.callbacks.unrouted";

/// The call-back queue of an office's desk, which its agents consume.
pub fn callback_queue(office_aoo: &str, desk_kind: &str) -> String {
    format!("{CALLBACKS_EXCHANGE}.{office_aoo}.{desk_kind}")
}

/// Header carrying why a message was dead-lettered.
pub const REASON_HEADER: &str = "x-sportello-reason";
/// The refusal's stable code, where it has one (the intake's).
pub const REASON_CODE_HEADER: &str = "x-sportello-reason-code";
pub const ORIGINAL_QUEUE_HEADER: &str = "x-sportello-original-queue";
pub const ORIGINAL_EXCHANGE_HEADER: &str = "x-sportello-original-exchange";
pub const ORIGINAL_ROUTING_KEY_HEADER: &str = "x-sportello-original-routing-key";
pub const FAILED_AT_HEADER: &str = "x-sportello-failed-at";
/// The `message_id` as the sender sent it (a dead letter's own property must
/// be a UUID; the sender's need not be).
pub const ORIGINAL_MESSAGE_ID_HEADER: &str = "x-sportello-original-message-id";
/// On a replayed message: the dead letter (`sportello dead-letters`) it came from.
pub const REPLAYED_FROM_HEADER: &str = "x-sportello-replayed-from";
/// Set by quorum queues on redelivery.
pub const DELIVERY_COUNT_HEADER: &str = "x-delivery-count";
