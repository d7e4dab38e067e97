//! Appointment operations for the HTTP API and (later) the intake worker:
//! availability, *Prenota* (hold), *Conferma*, *Cancella prenotazione*,
//! the expiry of an unconfirmed hold, "Gestione appuntamenti" and receipts.
//! Each operation authorizes the caller, decides with `domain::appointment`
//! and writes in the caller's transaction: the `*_in` functions take a
//! `&mut PgConnection` inside a transaction (roll it back on `Err`: nothing
//! of a refused command may be kept); the others begin and commit their own.

mod booking;
pub mod callbacks;
pub mod commands;
pub mod completion;
pub mod lookups;
pub mod receipt;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::config::Settings;
use crate::contract::Principal;
use crate::domain::access::CaseParties;
use crate::domain::appointment::{
    calendar, side_on_appointment, BookingLimits, ConversationRequired, LimitReached, Mode,
    NotYetEligible, SlotRefusal, StateRefusal,
};
use crate::domain::cron::TIME_ZONE;
use crate::domain::document::Side;
use crate::domain::refusal::Code;
use crate::store::appointments::{self as store, AppointmentRecord, Scope};
use crate::store::documents as documents_store;

pub use booking::{
    cancel, cancel_in, confirm, confirm_in, expire_hold, hold, hold_in, Answer, Hold, HoldRequest,
    Outcome,
};

/// Longest range one availability request covers.
pub const MAX_RANGE_DAYS: i64 = 31;
/// Free slots offered when the one asked for is taken.
pub const ALTERNATIVES: usize = 5;
/// Appointments one history page lists.
pub const HISTORY_LIMIT: i64 = 200;

#[derive(Debug, thiserror::Error)]
pub enum AppointmentError {
    #[error("appointment not found")]
    NotFound,
    #[error("no office with AOO `{0}`")]
    UnknownOffice(String),
    #[error("office {office} has no desk `{desk}`")]
    UnknownDesk { office: String, desk: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Slot(#[from] SlotRefusal),
    #[error("the slot is taken; the next free slots are in `alternatives`")]
    SlotTaken { alternatives: Vec<FreeSlot> },
    #[error(transparent)]
    State(#[from] StateRefusal),
    #[error(transparent)]
    NotYetEligible(#[from] NotYetEligible),
    #[error(transparent)]
    ConversationRequired(#[from] ConversationRequired),
    #[error(transparent)]
    LimitReached(#[from] LimitReached),
    #[error("scheme (gestione) `{0}` is not open to booking yet (seed 002: the Agenda opens the schemes one by one)")]
    SchemeClosed(String),
    #[error("this Idempotency-Key was already used for another booking")]
    KeyReused,
    #[error("the receipt is issued once the appointment is confirmed")]
    NotConfirmed,
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

impl AppointmentError {
    /// A stable code for programs (HTTP problem bodies, broker refusals).
    pub fn code(&self) -> Code {
        match self {
            AppointmentError::NotFound => Code::NotFound,
            AppointmentError::UnknownOffice(_) => Code::UnknownOffice,
            AppointmentError::UnknownDesk { .. } => Code::UnknownDesk,
            AppointmentError::Forbidden(_) => Code::Forbidden,
            AppointmentError::Invalid(_) => Code::Invalid,
            AppointmentError::Slot(_) => Code::SlotUnavailable,
            AppointmentError::SlotTaken { .. } => Code::SlotTaken,
            AppointmentError::State(StateRefusal::HoldExpired) => Code::HoldExpired,
            AppointmentError::State(_) => Code::IllegalTransition,
            AppointmentError::NotYetEligible(_) => Code::NotYetEligible,
            AppointmentError::ConversationRequired(_) => Code::ConversationRequired,
            AppointmentError::LimitReached(_) => Code::LimitReached,
            AppointmentError::SchemeClosed(_) => Code::SchemeNotOpen,
            AppointmentError::KeyReused => Code::IdempotencyKeyReused,
            AppointmentError::NotConfirmed => Code::NotConfirmed,
            AppointmentError::Database(_) | AppointmentError::Encoding(_) => Code::Internal,
        }
    }

    /// Whether this is an answer for the sender (bad input, a rule) rather
    /// than a failure of ours worth trying again.
    pub fn is_refusal(&self) -> bool {
        !matches!(
            self,
            AppointmentError::Database(_) | AppointmentError::Encoding(_)
        )
    }
}

/// What bookings need from the settings.
#[derive(Debug, Clone)]
pub struct BookingSettings {
    /// How long a hold lives unconfirmed (`APPOINTMENT_HOLD_MINUTES`).
    pub hold: Duration,
    /// Where the video gateway serves rooms (`VIDEO_BASE_URL`).
    pub video_base_url: String,
    /// Signs the rooms' join links (`VIDEO_LINK_SECRET`).
    pub video_links: crate::domain::video::link::LinkSigner,
    /// How many live appointments one citizen may have
    /// (`APPOINTMENT_LIMIT_PER_DESK_DAY`, `APPOINTMENT_LIMIT_LIVE`).
    pub limits: BookingLimits,
}

impl BookingSettings {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            hold: Duration::minutes(i64::from(settings.appointment_hold_minutes)),
            video_base_url: settings.video_base_url.clone(),
            video_links: crate::domain::video::link::LinkSigner::new(&settings.video_link_secret),
            limits: BookingLimits {
                per_desk_and_day: settings.appointment_limit_per_desk_day,
                live: settings.appointment_limit_live,
            },
        }
    }

    /// The citizen's link to the room of a video appointment ending at
    /// `ends_at` (the one the notification centre and the receipt show).
    pub fn video_link(&self, id: Uuid, ends_at: DateTime<Utc>) -> String {
        self.room_link(id, crate::domain::video::Role::Citizen, ends_at)
    }

    /// The link of `role` to the room.
    pub fn room_link(
        &self,
        id: Uuid,
        role: crate::domain::video::Role,
        ends_at: DateTime<Utc>,
    ) -> String {
        format!(
            "{}/stanza/{}",
            self.video_base_url.trim_end_matches('/'),
            self.video_links.sign(id, role, ends_at)
        )
    }
}

/// A slot with seats left.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FreeSlot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Rome wall-clock date and time, as the citizen reads them.
    pub date: String,
    pub time: String,
    pub free: u32,
}

impl From<&FreeSlot> for crate::contract::appointments::FreeSlot {
    fn from(slot: &FreeSlot) -> Self {
        Self {
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            free: slot.free,
        }
    }
}

/// Free slots of one desk and mode over local dates.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Availability {
    pub office_aoo: String,
    pub office_name: String,
    pub desk_kind: String,
    pub desk_name: String,
    pub mode: Mode,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub slots: Vec<FreeSlot>,
}

/// The office's desk names, or which of the two is unknown.
pub(crate) async fn desk_names(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
) -> Result<store::DeskNames, AppointmentError> {
    if let Some(names) = store::desk(conn, office_aoo, desk_kind).await? {
        return Ok(names);
    }
    if crate::store::tickets::office_exists(conn, office_aoo).await? {
        Err(AppointmentError::UnknownDesk {
            office: office_aoo.into(),
            desk: desk_kind.into(),
        })
    } else {
        Err(AppointmentError::UnknownOffice(office_aoo.into()))
    }
}

/// Free slots of the desk and mode from `from` to `to` (local dates, both
/// included; at most `MAX_RANGE_DAYS`) that a hold made at `now` would
/// accept: after `now`, within the booking horizon, with a seat left. The
/// rules about the citizen (limits, Cassetto eligibility, delegation) are
/// the hold's.
pub async fn availability(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
    mode: Mode,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Availability, AppointmentError> {
    if to < from || (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(AppointmentError::Invalid(format!(
            "from must not be after to, and the range is at most {MAX_RANGE_DAYS} days"
        )));
    }
    let names = desk_names(conn, office_aoo, desk_kind).await?;
    let slots = free_slots(conn, office_aoo, desk_kind, mode, from, to, now).await?;
    Ok(Availability {
        office_aoo: office_aoo.into(),
        office_name: names.office_name,
        desk_kind: desk_kind.into(),
        desk_name: names.desk_name,
        mode,
        from,
        to,
        slots,
    })
}

pub(crate) async fn free_slots(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
    mode: Mode,
    from: NaiveDate,
    to: NaiveDate,
    now: DateTime<Utc>,
) -> Result<Vec<FreeSlot>, AppointmentError> {
    let rules = store::calendar(conn, office_aoo, desk_kind, mode).await?;
    let closures = store::closures(conn, office_aoo, from, to).await?;
    let slots = calendar::bookable_slots(&rules, &closures, from, to, now);
    let (Some(first), Some(last)) = (slots.first(), slots.last()) else {
        return Ok(Vec::new());
    };
    let taken = store::taken_seats(
        conn,
        office_aoo,
        desk_kind,
        mode,
        first.starts_at,
        last.starts_at + Duration::seconds(1),
    )
    .await?;
    Ok(slots
        .into_iter()
        .filter_map(|slot| {
            let (capacity, used) = taken
                .iter()
                .find(|(at, _, _)| *at == slot.starts_at)
                .map(|(_, capacity, used)| (*capacity, *used))
                .unwrap_or((i32::try_from(slot.capacity).unwrap_or(i32::MAX), 0));
            let free = u32::try_from(capacity - used.max(0))
                .ok()
                .filter(|f| *f > 0)?;
            let local = slot.starts_at.with_timezone(&TIME_ZONE);
            Some(FreeSlot {
                starts_at: slot.starts_at,
                ends_at: slot.ends_at,
                date: local.format("%Y-%m-%d").to_string(),
                time: local.format("%H:%M").to_string(),
                free,
            })
        })
        .collect())
}

/// The next free slots after `after` (within two weeks), for a refusal.
pub(crate) async fn alternatives(
    conn: &mut PgConnection,
    office_aoo: &str,
    desk_kind: &str,
    mode: Mode,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<FreeSlot>, AppointmentError> {
    let from = calendar::rome_date(after.max(now));
    let to = from + Duration::days(14);
    let mut slots = free_slots(conn, office_aoo, desk_kind, mode, from, to, now).await?;
    slots.retain(|s| s.starts_at > after);
    slots.truncate(ALTERNATIVES);
    Ok(slots)
}

/// The side `principal` sees `appointment` from, or why not at all.
pub(crate) async fn side_on(
    conn: &mut PgConnection,
    principal: &Principal,
    appointment: &AppointmentRecord,
    now: DateTime<Utc>,
) -> Result<Side, AppointmentError> {
    let parties = CaseParties {
        citizen_tax_code: appointment.subject_tax_code.clone(),
        matricola: appointment.matricola.clone(),
        gestione: appointment.gestione.clone(),
        office_aoo: appointment.office_aoo.clone(),
    };
    let delegations = match principal {
        Principal::Intermediary { tax_code, .. } => {
            documents_store::delegations_of(conn, tax_code.as_str(), &parties.citizen_tax_code)
                .await?
        }
        _ => Vec::new(),
    };
    side_on_appointment(
        principal,
        &parties,
        &appointment.booked_by_key,
        &delegations,
        now,
    )
    .ok_or_else(|| {
        AppointmentError::Forbidden(match principal {
            Principal::Intermediary { .. } => "no active delegation covers this appointment".into(),
            Principal::Operator { .. } => "this appointment belongs to another office".into(),
            Principal::ContactCenterAgent { .. } => {
                "agents reach only the appointments they booked for the citizen they serve".into()
            }
            Principal::Citizen { .. } => "this appointment is not yours".into(),
        })
    })
}

/// What the citizen's side sees: who booked, by kind only.
fn as_seen(mut appointment: AppointmentRecord, side: Side) -> AppointmentRecord {
    if side == Side::Citizen {
        appointment.booked_by = crate::documents::kind_only(&appointment.booked_by);
    }
    appointment
}

/// One appointment, if the principal may see it.
pub async fn detail(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
) -> Result<AppointmentRecord, AppointmentError> {
    let mut conn = pool.acquire().await?;
    let appointment = store::get(&mut conn, id)
        .await?
        .ok_or(AppointmentError::NotFound)?;
    let side = side_on(&mut conn, principal, &appointment, Utc::now()).await?;
    Ok(as_seen(appointment, side))
}

/// "Gestione appuntamenti": the citizen's own, an intermediary's delegated
/// citizens' and positions', an office's, or what an agent booked for the
/// citizen they serve; latest first.
pub async fn list(
    pool: &PgPool,
    principal: &Principal,
) -> Result<Vec<AppointmentRecord>, AppointmentError> {
    let (scope, side) = match principal {
        Principal::Citizen { tax_code, .. } => {
            (Scope::Citizen(tax_code.to_string()), Side::Citizen)
        }
        Principal::Intermediary { tax_code, .. } => {
            (Scope::Intermediary(tax_code.to_string()), Side::Citizen)
        }
        Principal::Operator { office, .. } => (Scope::Office(office.clone()), Side::Office),
        Principal::ContactCenterAgent { on_behalf_of, .. } => (
            Scope::BookedFor {
                booked_by_key: principal.actor_key(),
                subject: on_behalf_of.to_string(),
            },
            Side::Citizen,
        ),
    };
    let mut conn = pool.acquire().await?;
    Ok(store::list(&mut conn, &scope, HISTORY_LIMIT)
        .await?
        .into_iter()
        .map(|a| as_seen(a, side))
        .collect())
}
