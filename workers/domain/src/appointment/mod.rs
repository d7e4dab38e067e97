//! Appointments (*appuntamenti*, seeds 000-002): the values a booking is
//! made of, parsed valid; the two-phase booking (*Prenota* holds a slot,
//! *Conferma* makes it final, *Cancella prenotazione* releases it, an
//! unconfirmed hold expires); who may book for whom; the Cassetto rule for
//! booking from a conversation. Calendars and slots are in `calendar`.

pub mod calendar;
pub mod limits;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::access::{side_on_case, CaseParties, Delegation};
use super::document::Side;
use sportello_contract::{Channel, CodiceFiscale, Principal};

pub use calendar::{CalendarRule, Closure, Slot, SlotRefusal};
pub use limits::{check_limits, BookingLimits, LimitReached, Seat};

/// Kind of timer that expires an unconfirmed hold (key: the appointment id).
pub const HOLD_TIMER_KIND: &str = "appointment.hold";

/// How the appointment is held (*modalità di erogazione*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// *In presenza*, at the office.
    InPerson,
    /// *Ricontatto telefonico*: the office calls the citizen back.
    Phone,
    /// *Videochiamata*.
    Video,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::InPerson, Mode::Phone, Mode::Video];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::InPerson => "in_person",
            Mode::Phone => "phone",
            Mode::Video => "video",
        }
    }

    pub fn parse(raw: &str) -> Result<Mode, InvalidValue> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == raw)
            .ok_or_else(|| {
                InvalidValue(format!(
                    "mode must be in_person, phone or video, not `{raw}`"
                ))
            })
    }

    /// As the receipt says it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::InPerson => "In presenza",
            Mode::Phone => "Ricontatto telefonico",
            Mode::Video => "Videochiamata",
        }
    }
}

/// A value that cannot be part of a booking, with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub String);

/// The kind of desk (*sportello*), e.g. `conto_assicurativo`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub struct DeskKind(String);

impl DeskKind {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let ok = (2..=40).contains(&raw.len())
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidValue(format!("not a desk kind: `{raw}`")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<DeskKind> for String {
    fn from(kind: DeskKind) -> String {
        kind.0
    }
}

/// A phone number in E.164 (`+393331234567`): mandatory for every booking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Accepts what `domain::sms::normalize_phone` accepts (an Italian
    /// number without country code included).
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        if raw.trim().is_empty() {
            return Err(InvalidValue("a phone number is required".into()));
        }
        super::sms::normalize_phone(raw)
            .map(Self)
            .map_err(InvalidValue)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<PhoneNumber> for String {
    fn from(phone: PhoneNumber) -> String {
        phone.0
    }
}

/// The booking's notes (*note*): mandatory, at most this many characters.
pub const MAX_NOTES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Notes(String);

impl Notes {
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(InvalidValue("notes are required".into()));
        }
        if trimmed.chars().count() > MAX_NOTES {
            return Err(InvalidValue(format!(
                "notes are at most {MAX_NOTES} characters"
            )));
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(InvalidValue("notes contain control characters".into()));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<Notes> for String {
    fn from(notes: Notes) -> String {
        notes.0
    }
}

/// The citizen's name as the booking declares it (*nome e cognome*):
/// optional, shown to the operator with the codice fiscale. At most this
/// many characters.
pub const MAX_CITIZEN_NAME: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct CitizenName(String);

impl CitizenName {
    /// Trimmed, inner runs of spaces made one; letters required (names
    /// such as "D'Angelo Maria-Luisa" pass), no control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let name = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if name.is_empty() {
            return Err(InvalidValue("the citizen's name is empty".into()));
        }
        if name.chars().count() > MAX_CITIZEN_NAME {
            return Err(InvalidValue(format!(
                "the citizen's name is at most {MAX_CITIZEN_NAME} characters"
            )));
        }
        if !name.chars().any(char::is_alphabetic) || name.chars().any(char::is_control) {
            return Err(InvalidValue("not a citizen's name".into()));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<CitizenName> for String {
    fn from(name: CitizenName) -> String {
        name.0
    }
}

/// Where an appointment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentState {
    /// *Prenotato*: the slot is held until the hold expires.
    Held,
    /// *Confermato*.
    Confirmed,
    /// *Cancellato*, by the citizen's side or the office.
    Cancelled,
    /// The hold lapsed unconfirmed; the slot was released.
    Expired,
    /// Held: the meeting took place.
    Done,
}

impl AppointmentState {
    pub const ALL: [AppointmentState; 5] = [
        AppointmentState::Held,
        AppointmentState::Confirmed,
        AppointmentState::Cancelled,
        AppointmentState::Expired,
        AppointmentState::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AppointmentState::Held => "held",
            AppointmentState::Confirmed => "confirmed",
            AppointmentState::Cancelled => "cancelled",
            AppointmentState::Expired => "expired",
            AppointmentState::Done => "done",
        }
    }

    pub fn parse(raw: &str) -> Option<AppointmentState> {
        AppointmentState::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
    }

    /// Whether it occupies a seat of its slot.
    pub fn holds_seat(self) -> bool {
        matches!(self, AppointmentState::Held | AppointmentState::Confirmed)
    }
}

/// Who cancelled (`appointment.cancelled`'s `cancelled_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelledBy {
    Citizen,
    Office,
}

impl CancelledBy {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelledBy::Citizen => "citizen",
            CancelledBy::Office => "office",
        }
    }
}

/// The second phase of a booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// *Conferma*.
    Confirm,
    /// *Cancella prenotazione*.
    Cancel { by: CancelledBy },
}

/// What a command does to an appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// held → confirmed.
    Confirm,
    /// held | confirmed → cancelled; the seat is released. `announce`: it
    /// was confirmed, so `appointment.cancelled` tells the citizen.
    Cancel { by: CancelledBy, announce: bool },
    /// The same command again: nothing changes, the same outcome is answered.
    Unchanged,
    /// The hold lapsed before the command: held → expired (seat released),
    /// then the command is refused with `HoldExpired`.
    Lapse,
}

/// Why a command is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    #[error("the hold expired before it was confirmed; book the slot again")]
    HoldExpired,
    #[error("the booking was cancelled; it cannot be confirmed")]
    Cancelled,
    #[error("the appointment already took place")]
    Done,
    #[error("the appointment has started; it can no longer be cancelled by the citizen")]
    TooLateToCancel,
    #[error("the appointment was never confirmed; it cannot have taken place")]
    NotConfirmed,
}

/// Decides `command` on an appointment in `state` at `now`.
pub fn decide(
    state: AppointmentState,
    hold_expires_at: DateTime<Utc>,
    starts_at: DateTime<Utc>,
    command: Command,
    now: DateTime<Utc>,
) -> Result<Transition, StateRefusal> {
    use AppointmentState as S;
    let lapsed = now >= hold_expires_at || now >= starts_at;
    match (command, state) {
        (Command::Confirm, S::Held) if lapsed => Ok(Transition::Lapse),
        (Command::Confirm, S::Held) => Ok(Transition::Confirm),
        (Command::Confirm, S::Confirmed) => Ok(Transition::Unchanged),
        (Command::Confirm, S::Cancelled) => Err(StateRefusal::Cancelled),
        (Command::Cancel { .. }, S::Cancelled) => Ok(Transition::Unchanged),
        (_, S::Expired) => Err(StateRefusal::HoldExpired),
        (_, S::Done) => Err(StateRefusal::Done),
        (Command::Cancel { by }, S::Held) => Ok(Transition::Cancel {
            by,
            announce: false,
        }),
        (
            Command::Cancel {
                by: CancelledBy::Citizen,
            },
            S::Confirmed,
        ) if now >= starts_at => Err(StateRefusal::TooLateToCancel),
        (Command::Cancel { by }, S::Confirmed) => Ok(Transition::Cancel { by, announce: true }),
    }
}

/// The meeting took place (the operator ended the video call, or a
/// call-back was answered): confirmed → done. `Ok(false)`: it already was,
/// nothing changes. A cancelled, expired or unconfirmed appointment did not
/// take place and stays as it is.
pub fn complete(state: AppointmentState) -> Result<bool, StateRefusal> {
    use AppointmentState as S;
    match state {
        S::Confirmed => Ok(true),
        S::Done => Ok(false),
        S::Cancelled => Err(StateRefusal::Cancelled),
        S::Expired => Err(StateRefusal::HoldExpired),
        S::Held => Err(StateRefusal::NotConfirmed),
    }
}

/// Booking from a Cassetto conversation is not possible yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an appointment can be requested from this conversation from {possible_from}")]
pub struct NotYetEligible {
    pub possible_from: DateTime<Utc>,
}

/// The conversation (a ticket) a Cassetto booking comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// When its first message was sent (the ticket's opening).
    pub first_message_at: DateTime<Utc>,
    /// Days after the first message its ambito allows a booking.
    pub after_days: u32,
    /// The citizen's request was rejected (closed with esito *respinta*).
    pub rejected: bool,
}

/// "Richiedi appuntamento": allowed `after_days` after the first message,
/// or at once when the request was rejected; otherwise refused with the day
/// it becomes possible.
pub fn cassetto_eligibility(
    conversation: &Conversation,
    now: DateTime<Utc>,
) -> Result<(), NotYetEligible> {
    let possible_from =
        conversation.first_message_at + Duration::days(i64::from(conversation.after_days));
    if conversation.rejected || now >= possible_from {
        Ok(())
    } else {
        Err(NotYetEligible { possible_from })
    }
}

/// Whether a booking concerns a Cassetto topic (seed 001) and so must come
/// from the conversation about it, after the topic's days or a rejection:
/// it is made on the Cassetto channel, or at a desk whose every topic is a
/// Cassetto topic (`ambiti.cassetto`: UniEmens, versamenti, DURC,
/// certificazioni, all at the companies' desk), whoever books and on
/// whichever channel.
pub fn needs_conversation(channel: Channel, desk_handles_cassetto_topics_only: bool) -> bool {
    channel == Channel::Cassetto || desk_handles_cassetto_topics_only
}

/// A booking on a Cassetto topic without its conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an appointment on a Cassetto topic is requested from its conversation (\"Richiedi appuntamento\"): give its ticket_id")]
pub struct ConversationRequired;

/// Who an appointment is for, as the booking principal may book it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingParty {
    pub subject: CodiceFiscale,
    /// An intermediary: the operation must find an active delegation.
    pub needs_delegation: bool,
    pub channel: Channel,
}

/// Why this principal may not book this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BookingRefused(pub String);

/// Who the appointment is for and on which channel: citizens book for
/// themselves (web, app, Cassetto); intermediaries for a citizen named in
/// `on_behalf_of` (under a delega); contact-centre agents and front-desk
/// operators for the citizen they serve, operators only at their office.
pub fn booking_party(
    principal: &Principal,
    on_behalf_of: Option<&CodiceFiscale>,
    office_aoo: &str,
    channel: Option<Channel>,
) -> Result<BookingParty, BookingRefused> {
    let refuse = |why: &str| Err(BookingRefused(why.into()));
    let (subject, needs_delegation, allowed, default) = match principal {
        Principal::Citizen { tax_code, .. } => {
            if on_behalf_of.is_some_and(|o| o != tax_code) {
                return refuse("a citizen books only for themselves");
            }
            let allowed: &[Channel] = &[Channel::Web, Channel::App, Channel::Cassetto];
            (tax_code.clone(), false, allowed, Channel::Web)
        }
        Principal::Intermediary { .. } => {
            let Some(subject) = on_behalf_of else {
                return refuse("an intermediary books for a citizen: name them in on_behalf_of");
            };
            let allowed: &[Channel] = &[Channel::Web, Channel::App, Channel::Cassetto];
            (subject.clone(), true, allowed, Channel::Web)
        }
        Principal::ContactCenterAgent {
            on_behalf_of: own, ..
        } => {
            if on_behalf_of.is_some_and(|o| o != own) {
                return refuse("the agent's token names another citizen");
            }
            (
                own.clone(),
                false,
                &[Channel::ContactCenter][..],
                Channel::ContactCenter,
            )
        }
        Principal::Operator {
            office,
            on_behalf_of: own,
            ..
        } => {
            if office != office_aoo {
                return refuse("front-desk operators book only at their own office");
            }
            let Some(subject) = own.as_ref().or(on_behalf_of) else {
                return refuse("an operator books for a citizen: name them in on_behalf_of");
            };
            if own.as_ref().zip(on_behalf_of).is_some_and(|(a, b)| a != b) {
                return refuse("the operator's token names another citizen");
            }
            (subject.clone(), false, &[Channel::Desk][..], Channel::Desk)
        }
    };
    let channel = channel.unwrap_or(default);
    if !allowed.contains(&channel) {
        return refuse(&format!(
            "a {} does not book on the {} channel",
            principal.kind(),
            channel.as_str()
        ));
    }
    Ok(BookingParty {
        subject,
        needs_delegation,
        channel,
    })
}

/// The side `principal` sees an appointment from: as a case (its citizen,
/// a delegated intermediary, an operator of its office), or the
/// contact-centre agent who booked it, for the same citizen.
pub fn side_on_appointment(
    principal: &Principal,
    parties: &CaseParties,
    booked_by_key: &str,
    delegations: &[Delegation],
    now: DateTime<Utc>,
) -> Option<Side> {
    match principal {
        Principal::ContactCenterAgent { on_behalf_of, .. } => (principal.actor_key()
            == booked_by_key
            && on_behalf_of.as_str() == parties.citizen_tax_code)
            .then_some(Side::Citizen),
        _ => side_on_case(principal, parties, delegations, now),
    }
}

#[cfg(test)]
mod tests;
