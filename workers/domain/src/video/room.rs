//! A room's life: when its links open, what the operator's controls do, who
//! may do what inside, and the two seats.
//!
//! ```text
//!  waiting ──admit──▶ admitted ──end──▶ ended ──grant──▶ window open ──timer──▶ expired
//!     └─────────────────end──────────────▶ ended (no window: the link is over)
//! ```
//! Chat and documents are switched on and off by the operator at any time
//! before the end; after the end, with the window open, only the citizen's
//! document upload remains. What a link opens onto at a given time (the
//! call, the window's document page, or a refusal saying why) is
//! [`Schedule::landing`].

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{Role, WINDOW_HOURS};

/// Links open this long before the slot starts.
pub const OPENS_BEFORE: Duration = Duration::minutes(15);

/// The room as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomState {
    /// The operator granted the citizen permission to publish.
    pub admitted: bool,
    pub chat_enabled: bool,
    pub documents_enabled: bool,
    pub ended_at: Option<DateTime<Utc>>,
    pub window: Window,
}

impl RoomState {
    pub fn new() -> Self {
        Self {
            admitted: false,
            chat_enabled: false,
            documents_enabled: false,
            ended_at: None,
            window: Window::None,
        }
    }

    /// Where the room is, for pages and the signalling `state` message.
    pub fn phase(&self, now: DateTime<Utc>) -> Phase {
        match (self.ended_at, self.window) {
            (None, _) if self.admitted => Phase::Admitted,
            (None, _) => Phase::Waiting,
            (Some(_), Window::Open { closes_at }) if now < closes_at => Phase::WindowOpen,
            (Some(_), Window::Open { .. } | Window::Closed { .. }) => Phase::Expired,
            (Some(_), Window::None) => Phase::Ended,
        }
    }
}

impl Default for RoomState {
    fn default() -> Self {
        Self::new()
    }
}

/// The document window after the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Window {
    None,
    Open {
        closes_at: DateTime<Utc>,
    },
    /// `closes_at` is the deadline the citizen was given; `closed_at` when
    /// the timer fired (at or after it).
    Closed {
        closes_at: DateTime<Utc>,
        closed_at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The citizen waits to be admitted ("A breve sarai accolto...").
    Waiting,
    /// In the call.
    Admitted,
    /// "Chiamata terminata", nothing more.
    Ended,
    /// "Chiamata terminata": uploads only, until the window closes.
    WindowOpen,
    /// The window closed: the link shows the expired page.
    Expired,
}

/// The operator's console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Admit,
    Chat(bool),
    Documents(bool),
    EndCall,
    /// "Termina con estensione": end the call (if not ended) and open the
    /// 72-hour window.
    GrantWindow,
}

impl Control {
    pub fn parse(raw: &str) -> Option<Control> {
        Some(match raw {
            "admit" => Control::Admit,
            "chat_on" => Control::Chat(true),
            "chat_off" => Control::Chat(false),
            "documents_on" => Control::Documents(true),
            "documents_off" => Control::Documents(false),
            "end_call" => Control::EndCall,
            "grant_window" => Control::GrantWindow,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlRefusal {
    #[error("only the operator controls the room")]
    NotTheOperator,
    #[error("the call has ended")]
    Ended,
    #[error("the document window was already granted")]
    WindowAlreadyGranted,
}

/// The room after `control` by `by` at `now`.
pub fn control(
    state: &RoomState,
    by: Role,
    control: Control,
    now: DateTime<Utc>,
) -> Result<RoomState, ControlRefusal> {
    if by != Role::Operator {
        return Err(ControlRefusal::NotTheOperator);
    }
    let mut next = state.clone();
    match control {
        Control::GrantWindow => {
            if next.window != Window::None {
                return Err(ControlRefusal::WindowAlreadyGranted);
            }
            next.ended_at.get_or_insert(now);
            next.window = Window::Open {
                closes_at: now + Duration::hours(WINDOW_HOURS),
            };
            return Ok(next);
        }
        _ if state.ended_at.is_some() => return Err(ControlRefusal::Ended),
        Control::Admit => next.admitted = true,
        Control::Chat(on) => next.chat_enabled = on,
        Control::Documents(on) => next.documents_enabled = on,
        Control::EndCall => next.ended_at = Some(now),
    }
    Ok(next)
}

/// The durable timer closes an open window (at or after `closes_at`).
pub fn expire_window(state: &RoomState, now: DateTime<Utc>) -> Option<RoomState> {
    match state.window {
        Window::Open { closes_at } => Some(RoomState {
            window: Window::Closed {
                closes_at,
                closed_at: now,
            },
            ..state.clone()
        }),
        _ => None,
    }
}

/// What a participant may do in the room now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Send offers, answers and ICE candidates (publish media).
    Signal,
    Chat,
    /// Upload, delete, download documents.
    Documents,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActRefusal {
    #[error("the operator has not admitted you yet")]
    NotAdmitted,
    #[error("the chat is off")]
    ChatOff,
    #[error("the documents are off")]
    DocumentsOff,
    #[error("the call has ended")]
    Ended,
    #[error("the document window has closed")]
    Expired,
}

/// Whether `role` may `act` in a room in `state` at `now`.
pub fn may(state: &RoomState, role: Role, act: Act, now: DateTime<Utc>) -> Result<(), ActRefusal> {
    match (state.phase(now), act) {
        (Phase::Expired, _) => Err(ActRefusal::Expired),
        // After the call only documents remain, and only with the window.
        (Phase::WindowOpen, Act::Documents) => Ok(()),
        (Phase::WindowOpen | Phase::Ended, _) => Err(ActRefusal::Ended),
        (Phase::Waiting, Act::Signal) if role == Role::Citizen => Err(ActRefusal::NotAdmitted),
        (_, Act::Chat) if role == Role::Citizen && !state.chat_enabled => Err(ActRefusal::ChatOff),
        (_, Act::Documents) if role == Role::Citizen && !state.documents_enabled => {
            Err(ActRefusal::DocumentsOff)
        }
        (Phase::Waiting, _) if role == Role::Citizen => Err(ActRefusal::NotAdmitted),
        _ => Ok(()),
    }
}

/// When a room's links open and close.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleRefusal {
    #[error("the room opens at {0}")]
    NotYet(DateTime<Utc>),
    #[error("the appointment is over")]
    Over,
    /// The call is over and so is its document window, due at this instant.
    #[error("the document window closed at {0}")]
    WindowClosed(DateTime<Utc>),
}

/// What a link opens onto (*dove porta il collegamento*), when it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// The call: device check, waiting room, the call itself.
    Call,
    /// After the call, the 72-hour window's page: documents, receipts and
    /// upload only. No camera or microphone is asked for: the call is over.
    Window { closes_at: DateTime<Utc> },
}

impl Schedule {
    /// A link opens from `OPENS_BEFORE` the slot until its end onto the call,
    /// or, once the call ended with a window granted, onto the window's page
    /// until the window closes. Otherwise, why not.
    pub fn landing(
        &self,
        state: &RoomState,
        now: DateTime<Utc>,
    ) -> Result<Landing, ScheduleRefusal> {
        let opens = self.starts_at - OPENS_BEFORE;
        if now < opens {
            return Err(ScheduleRefusal::NotYet(opens));
        }
        match state.window {
            Window::Open { closes_at } if now < closes_at => Ok(Landing::Window { closes_at }),
            Window::None if now < self.ends_at && state.ended_at.is_none() => Ok(Landing::Call),
            _ => Err(over(state, now)),
        }
    }

    /// Whether a link opens at all now.
    pub fn admits(&self, state: &RoomState, now: DateTime<Utc>) -> Result<(), ScheduleRefusal> {
        self.landing(state, now).map(|_| ())
    }
}

/// Why a room's link no longer opens (also for an authentic link past its
/// own expiry): its document window closed, and when uploads stopped (the
/// deadline, or its timer if that fired first); otherwise simply over. A
/// window still open (a call that overran its slot past the link's expiry)
/// is not said to be closed.
pub fn over(state: &RoomState, now: DateTime<Utc>) -> ScheduleRefusal {
    match state.window {
        Window::Closed {
            closes_at,
            closed_at,
        } => ScheduleRefusal::WindowClosed(closes_at.min(closed_at)),
        Window::Open { closes_at } if closes_at <= now => ScheduleRefusal::WindowClosed(closes_at),
        _ => ScheduleRefusal::Over,
    }
}

/// A room never holds more than two participants: one seat per role.
/// Whoever holds a seat and is asked for it by a new connection of the
/// same role keeps it, unless the newcomer explicitly replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatVerdict {
    /// The seat was free (or its holder went silent): taken.
    Taken,
    /// The holder is told it was replaced and disconnected.
    Replaces,
    /// Occupied: the newcomer is refused with a clear page.
    Occupied,
}

/// How long a seat outlives its holder's last heartbeat (a gateway that
/// died without releasing it).
pub const SEAT_STALE_AFTER: Duration = Duration::seconds(30);

pub fn seat(
    held_since_heartbeat: Option<DateTime<Utc>>,
    replace: bool,
    now: DateTime<Utc>,
) -> SeatVerdict {
    match held_since_heartbeat {
        None => SeatVerdict::Taken,
        Some(seen) if now - seen > SEAT_STALE_AFTER => SeatVerdict::Taken,
        Some(_) if replace => SeatVerdict::Replaces,
        Some(_) => SeatVerdict::Occupied,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_operator_admits_then_the_citizen_may_publish() {
        let now = at("2026-12-03T10:00:00Z");
        let room = RoomState::new();
        assert_eq!(room.phase(now), Phase::Waiting);
        assert_eq!(
            may(&room, Role::Citizen, Act::Signal, now),
            Err(ActRefusal::NotAdmitted)
        );
        assert_eq!(may(&room, Role::Operator, Act::Signal, now), Ok(()));
        assert_eq!(
            control(&room, Role::Citizen, Control::Admit, now),
            Err(ControlRefusal::NotTheOperator)
        );
        let admitted = control(&room, Role::Operator, Control::Admit, now).unwrap();
        assert_eq!(admitted.phase(now), Phase::Admitted);
        assert_eq!(may(&admitted, Role::Citizen, Act::Signal, now), Ok(()));
    }

    #[test]
    fn chat_and_documents_only_while_enabled() {
        let now = at("2026-12-03T10:00:00Z");
        let room = control(&RoomState::new(), Role::Operator, Control::Admit, now).unwrap();
        assert_eq!(
            may(&room, Role::Citizen, Act::Chat, now),
            Err(ActRefusal::ChatOff)
        );
        assert_eq!(
            may(&room, Role::Citizen, Act::Documents, now),
            Err(ActRefusal::DocumentsOff)
        );
        let on = control(&room, Role::Operator, Control::Chat(true), now).unwrap();
        let on = control(&on, Role::Operator, Control::Documents(true), now).unwrap();
        assert_eq!(may(&on, Role::Citizen, Act::Chat, now), Ok(()));
        assert_eq!(may(&on, Role::Citizen, Act::Documents, now), Ok(()));
        let off = control(&on, Role::Operator, Control::Chat(false), now).unwrap();
        assert_eq!(
            may(&off, Role::Citizen, Act::Chat, now),
            Err(ActRefusal::ChatOff)
        );
    }

    #[test]
    fn after_the_call_only_the_window_allows_uploads_until_it_closes() {
        let now = at("2026-12-03T10:00:00Z");
        let room = control(&RoomState::new(), Role::Operator, Control::Admit, now).unwrap();
        let ended = control(&room, Role::Operator, Control::EndCall, now).unwrap();
        assert_eq!(ended.phase(now), Phase::Ended);
        assert_eq!(
            may(&ended, Role::Citizen, Act::Documents, now),
            Err(ActRefusal::Ended)
        );
        assert_eq!(
            control(&ended, Role::Operator, Control::Admit, now),
            Err(ControlRefusal::Ended)
        );
        let window = control(&ended, Role::Operator, Control::GrantWindow, now).unwrap();
        assert_eq!(window.phase(now), Phase::WindowOpen);
        assert_eq!(window.ended_at, Some(now));
        assert_eq!(may(&window, Role::Citizen, Act::Documents, now), Ok(()));
        assert_eq!(
            may(&window, Role::Citizen, Act::Chat, now),
            Err(ActRefusal::Ended)
        );
        assert_eq!(
            control(&window, Role::Operator, Control::GrantWindow, now),
            Err(ControlRefusal::WindowAlreadyGranted)
        );
        let later = now + Duration::hours(WINDOW_HOURS);
        assert_eq!(window.phase(later), Phase::Expired);
        let closed = expire_window(&window, later).unwrap();
        assert_eq!(closed.phase(now), Phase::Expired);
        assert_eq!(
            may(&closed, Role::Citizen, Act::Documents, now),
            Err(ActRefusal::Expired)
        );
        assert_eq!(expire_window(&closed, later), None);
        // Granting straight from the call ends it too.
        let direct = control(&room, Role::Operator, Control::GrantWindow, now).unwrap();
        assert_eq!(direct.phase(now), Phase::WindowOpen);
    }

    #[test]
    fn links_open_shortly_before_the_slot_until_its_end_or_the_windows() {
        let schedule = Schedule {
            starts_at: at("2026-12-03T10:00:00Z"),
            ends_at: at("2026-12-03T10:20:00Z"),
        };
        let room = RoomState::new();
        assert!(matches!(
            schedule.admits(&room, at("2026-12-03T09:44:00Z")),
            Err(ScheduleRefusal::NotYet(_))
        ));
        assert_eq!(schedule.admits(&room, at("2026-12-03T09:46:00Z")), Ok(()));
        assert_eq!(schedule.admits(&room, at("2026-12-03T10:19:00Z")), Ok(()));
        assert_eq!(
            schedule.admits(&room, at("2026-12-03T10:20:00Z")),
            Err(ScheduleRefusal::Over)
        );
        let granted = control(
            &room,
            Role::Operator,
            Control::GrantWindow,
            at("2026-12-03T10:15:00Z"),
        )
        .unwrap();
        assert_eq!(
            schedule.admits(&granted, at("2026-12-05T10:00:00Z")),
            Ok(())
        );
        assert_eq!(
            schedule.admits(&granted, at("2026-12-06T10:15:00Z")),
            Err(ScheduleRefusal::WindowClosed(at("2026-12-06T10:15:00Z")))
        );
        let ended = control(
            &room,
            Role::Operator,
            Control::EndCall,
            at("2026-12-03T10:10:00Z"),
        )
        .unwrap();
        assert_eq!(
            schedule.admits(&ended, at("2026-12-03T10:11:00Z")),
            Err(ScheduleRefusal::Over)
        );
    }

    #[test]
    fn after_the_call_the_link_lands_on_the_window_page_then_says_when_it_closed() {
        let schedule = Schedule {
            starts_at: at("2026-12-03T10:00:00Z"),
            ends_at: at("2026-12-03T10:20:00Z"),
        };
        let during = at("2026-12-03T10:05:00Z");
        let room = control(&RoomState::new(), Role::Operator, Control::Admit, during).unwrap();
        // During the call: the call (the device check comes with it).
        assert_eq!(schedule.landing(&room, during), Ok(Landing::Call));
        // Ended with the window: its page, with no devices, until it closes,
        // also long after the slot's end.
        let granted = control(&room, Role::Operator, Control::GrantWindow, during).unwrap();
        let closes_at = at("2026-12-06T10:05:00Z");
        for now in [
            during,
            at("2026-12-03T10:30:00Z"),
            at("2026-12-06T10:04:59Z"),
        ] {
            assert_eq!(
                schedule.landing(&granted, now),
                Ok(Landing::Window { closes_at }),
                "{now}"
            );
        }
        // Due but its timer not yet fired, and fired late: closed at the
        // deadline the citizen was given either way.
        assert_eq!(
            schedule.landing(&granted, closes_at),
            Err(ScheduleRefusal::WindowClosed(closes_at))
        );
        let fired = expire_window(&granted, at("2026-12-06T10:09:00Z")).unwrap();
        assert_eq!(
            fired.window,
            Window::Closed {
                closes_at,
                closed_at: at("2026-12-06T10:09:00Z")
            }
        );
        assert_eq!(
            schedule.landing(&fired, at("2026-12-09T00:00:00Z")),
            Err(ScheduleRefusal::WindowClosed(closes_at))
        );
        // Ended without a window: simply over.
        let ended = control(&room, Role::Operator, Control::EndCall, during).unwrap();
        assert_eq!(schedule.landing(&ended, during), Err(ScheduleRefusal::Over));
        // Why an expired link is over: the window if it has closed, never a
        // window still open, else simply over.
        assert_eq!(
            over(&fired, at("2026-12-07T12:00:00Z")),
            ScheduleRefusal::WindowClosed(closes_at)
        );
        assert_eq!(over(&granted, during), ScheduleRefusal::Over);
        // A timer fired before its time (moved forward): closed when it fired.
        let early = expire_window(&granted, at("2026-12-04T08:00:00Z")).unwrap();
        assert_eq!(
            schedule.landing(&early, at("2026-12-04T08:00:01Z")),
            Err(ScheduleRefusal::WindowClosed(at("2026-12-04T08:00:00Z")))
        );
        assert_eq!(over(&ended, during), ScheduleRefusal::Over);
        assert_eq!(over(&RoomState::new(), during), ScheduleRefusal::Over);
    }

    #[test]
    fn a_seat_is_kept_unless_replaced_by_choice_or_abandoned() {
        let now = at("2026-12-03T10:00:00Z");
        assert_eq!(seat(None, false, now), SeatVerdict::Taken);
        assert_eq!(seat(Some(now), false, now), SeatVerdict::Occupied);
        assert_eq!(seat(Some(now), true, now), SeatVerdict::Replaces);
        assert_eq!(
            seat(Some(now - Duration::seconds(31)), false, now),
            SeatVerdict::Taken
        );
    }

    #[test]
    fn controls_parse_from_their_names() {
        assert_eq!(Control::parse("admit"), Some(Control::Admit));
        assert_eq!(
            Control::parse("documents_off"),
            Some(Control::Documents(false))
        );
        assert_eq!(Control::parse("explode"), None);
    }
}
