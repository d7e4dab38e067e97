//! The two-phase booking: *Prenota* takes a seat of the slot and holds it
//! (with a durable timer that expires the hold), *Conferma* makes it final
//! and announces it, *Cancella prenotazione* gives the seat back. A command
//! repeated answers the same outcome.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::lookups::Lookups;
use super::{side_on, AppointmentError, BookingSettings};
use crate::contract::{
    AppointmentCancelled, AppointmentConfirmed, Channel, CodiceFiscale, Contact, Event, Principal,
};
use crate::domain::access::CaseParties;
use crate::domain::access::Delegation;
use crate::domain::appointment::{
    booking_party, calendar, cassetto_eligibility, check_limits, decide, needs_conversation,
    AppointmentState, CancelledBy, CitizenName, Command, ConversationRequired, DeskKind, Mode,
    Notes, PhoneNumber, Seat, Transition, HOLD_TIMER_KIND,
};
use crate::domain::delegation::FIRST_GESTIONE;
use crate::domain::document::Side;
use crate::store::appointments::{self as store, AppointmentRecord, NewAppointment, SlotKey};
use crate::store::documents as documents_store;
use crate::store::outbox::{self, OutboxMessage};
use crate::store::timers::{self, TimerRequest};

/// *Prenota*, as a channel sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldRequest {
    pub office: String,
    pub desk: String,
    /// `in_person`, `phone` or `video`.
    pub mode: String,
    pub starts_at: DateTime<Utc>,
    /// E.164, or an Italian number.
    pub phone: String,
    pub notes: String,
    /// The Cassetto conversation the booking is requested from.
    #[serde(default)]
    pub ticket_id: Option<Uuid>,
    /// The citizen an intermediary or operator books for.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// The contribution position, for an intermediary's delega.
    #[serde(default)]
    pub matricola: Option<String>,
    /// The position's scheme (gestione): it must be open to booking
    /// (`gestioni.open_to_booking`), and an intermediary's delega must cover
    /// it. Absent: the conversation's, else `aziende_uniemens`. Left out of
    /// the request's hash when absent, like `citizen_name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gestione: Option<String>,
    #[serde(default)]
    pub channel: Option<Channel>,
    /// The citizen's name (*nome e cognome*), as the channel knows it (the
    /// identity provider's attributes, or what the citizen told the agent
    /// or the desk); shown to the operator in the video room. Optional.
    /// Left out of the request's hash when absent, so requests kept from
    /// before it existed hash the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citizen_name: Option<String>,
}

/// The answer to *Prenota*: the held appointment (or, for a resent request,
/// the one the first created, in whatever state it is now).
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub appointment: AppointmentRecord,
    /// The same request (same Idempotency-Key) was applied before.
    pub repeated: bool,
}

/// What a confirm or cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Confirmed,
    AlreadyConfirmed,
    Cancelled,
    AlreadyCancelled,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub outcome: Outcome,
    pub appointment: AppointmentRecord,
}

fn invalid(error: impl ToString) -> AppointmentError {
    AppointmentError::Invalid(error.to_string())
}

/// *Prenota* in its own transaction. A concurrent resend under the same key
/// finds the first one's hold.
pub async fn hold(
    pool: &PgPool,
    settings: &BookingSettings,
    principal: &Principal,
    request: &HoldRequest,
    idempotency_key: Option<&str>,
    correlation_id: &str,
) -> Result<Hold, AppointmentError> {
    let mut tx = pool.begin().await?;
    match hold_in(
        &mut tx,
        settings,
        &mut Lookups::default(),
        principal,
        request,
        idempotency_key,
        correlation_id,
        Utc::now(),
    )
    .await
    {
        Ok(hold) => {
            tx.commit().await?;
            Ok(hold)
        }
        Err(AppointmentError::Database(error)) if store::is_key_conflict(&error) => {
            drop(tx);
            let mut tx = pool.begin().await?;
            let hold = hold_in(
                &mut tx,
                settings,
                &mut Lookups::default(),
                principal,
                request,
                idempotency_key,
                correlation_id,
                Utc::now(),
            )
            .await?;
            tx.commit().await?;
            Ok(hold)
        }
        Err(error) => Err(error),
    }
}

/// *Prenota* in the caller's transaction: checks the values, who books for
/// whom (delegation; a Cassetto topic from its conversation, when eligible),
/// the slot against the calendar, the citizen's booking limits (under the
/// citizen's lock), takes a seat (or answers "slot taken" with
/// alternatives), writes the hold and schedules its expiry. `lookups` spares the commands of one
/// batch reading the same reference data again.
#[allow(clippy::too_many_arguments)]
pub async fn hold_in(
    conn: &mut PgConnection,
    settings: &BookingSettings,
    lookups: &mut Lookups,
    principal: &Principal,
    request: &HoldRequest,
    idempotency_key: Option<&str>,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Hold, AppointmentError> {
    let booked_by_key = principal.actor_key();
    let request_sha256 = hex::encode(Sha256::digest(serde_json::to_vec(request)?));
    if idempotency_key.is_some_and(|key| key.is_empty() || key.len() > 200) {
        return Err(invalid("an Idempotency-Key is 1 to 200 characters"));
    }
    let repeat = Repeat {
        principal,
        booked_by_key: &booked_by_key,
        idempotency_key,
        request_sha256: &request_sha256,
        now,
    };
    if let Some(hold) = repeat.find(conn).await? {
        return Ok(hold);
    }
    let mode = Mode::parse(&request.mode).map_err(invalid)?;
    let desk = DeskKind::parse(&request.desk).map_err(invalid)?;
    let office = crate::domain::protocol::Aoo::parse(&request.office).map_err(invalid)?;
    let phone = PhoneNumber::parse(&request.phone).map_err(invalid)?;
    let notes = Notes::parse(&request.notes).map_err(invalid)?;
    let citizen_name = request
        .citizen_name
        .as_deref()
        .map(CitizenName::parse)
        .transpose()
        .map_err(invalid)?;
    let on_behalf_of = request
        .on_behalf_of
        .as_deref()
        .map(CodiceFiscale::parse)
        .transpose()
        .map_err(invalid)?;
    // Which of office and desk is unknown, before any other refusal.
    let desk_names = lookups
        .desk_names(conn, office.as_str(), desk.as_str())
        .await?;
    let channel = request
        .channel
        .or(request.ticket_id.map(|_| Channel::Cassetto));
    let party = booking_party(principal, on_behalf_of.as_ref(), office.as_str(), channel)
        .map_err(|e| AppointmentError::Forbidden(e.to_string()))?;
    let mut matricola = request.matricola.clone();
    let mut gestione = request.gestione.clone();
    let from_conversation = needs_conversation(party.channel, desk_names.cassetto_topics_only);
    match request.ticket_id {
        None if from_conversation => return Err(ConversationRequired.into()),
        None => {}
        Some(ticket_id) => {
            let facts = store::conversation(conn, ticket_id)
                .await?
                .ok_or_else(|| invalid(format!("no conversation (ticket) {ticket_id}")))?;
            if facts.subject_tax_code != party.subject.as_str() {
                return Err(AppointmentError::Forbidden(
                    "the conversation is about another citizen".into(),
                ));
            }
            cassetto_eligibility(&facts.conversation, now)?;
            matricola = matricola.or(facts.matricola);
            gestione = gestione.or(Some(facts.gestione));
        }
    }
    let gestione = gestione.unwrap_or_else(|| FIRST_GESTIONE.to_owned());
    match store::gestione_bookable(conn, &gestione).await? {
        None => return Err(invalid(format!("unknown scheme (gestione) `{gestione}`"))),
        Some(false) => return Err(AppointmentError::SchemeClosed(gestione)),
        Some(true) => {}
    }
    if party.needs_delegation {
        check_delegation(
            conn,
            principal,
            party.subject.as_str(),
            matricola.as_deref(),
            &gestione,
            office.as_str(),
            now,
        )
        .await?;
    }
    let rules = lookups
        .calendar(conn, office.as_str(), desk.as_str(), mode)
        .await?;
    let day = calendar::rome_date(request.starts_at);
    let closures = lookups.closures(conn, office.as_str(), day).await?;
    let slot = calendar::check_slot(&rules, &closures, request.starts_at, now)?;
    store::lock_citizen(conn, party.subject.as_str()).await?;
    // The same Prenota sent twice at once: the second waited for the lock
    // above and finds the first's hold, rather than counting it as another.
    if let Some(hold) = repeat.find(conn).await? {
        return Ok(hold);
    }
    let live = store::live_seats(conn, party.subject.as_str(), now).await?;
    let wanted = Seat {
        office_aoo: office.as_str().into(),
        desk_kind: desk.as_str().into(),
        day: calendar::rome_date(slot.starts_at),
    };
    check_limits(settings.limits, &live, &wanted)?;
    let key = SlotKey {
        office_aoo: office.as_str().into(),
        desk_kind: desk.as_str().into(),
        mode,
        starts_at: slot.starts_at,
    };
    if !store::take_seat(conn, &key, slot.capacity).await? {
        let lapsed = store::expire_lapsed_holds(conn, &key).await?;
        if lapsed == 0 || !store::take_seat(conn, &key, slot.capacity).await? {
            let alternatives = lookups.alternatives(conn, &key, now).await?;
            return Err(AppointmentError::SlotTaken { alternatives });
        }
    }
    let id = Uuid::now_v7();
    let hold_expires_at = now + settings.hold;
    let appointment = store::insert(
        conn,
        &NewAppointment {
            id,
            subject_tax_code: party.subject.as_str(),
            matricola: matricola.as_deref(),
            gestione: &gestione,
            booked_by: serde_json::to_value(principal)?,
            booked_by_key,
            channel: party.channel.as_str(),
            slot: &key,
            ends_at: slot.ends_at,
            hold_expires_at,
            phone: phone.as_str(),
            notes: notes.as_str(),
            citizen_name: citizen_name.as_ref().map(CitizenName::as_str),
            ticket_id: request.ticket_id,
            idempotency_key,
            request_sha256: &request_sha256,
            correlation_id,
            at: now,
        },
    )
    .await?;
    timers::schedule(
        conn,
        &TimerRequest {
            kind: HOLD_TIMER_KIND.into(),
            key: id.to_string(),
            fire_at: hold_expires_at,
            data: serde_json::json!({ "appointment_id": id }),
            correlation_id: correlation_id.into(),
        },
    )
    .await?;
    tracing::info!(appointment_id = %id, office = %key.office_aoo, desk = %key.desk_kind,
        mode = mode.as_str(), starts_at = %key.starts_at, %correlation_id, "slot held");
    let side = side_on(conn, principal, &appointment, now).await?;
    Ok(Hold {
        appointment: super::as_seen(appointment, side),
        repeated: false,
    })
}

/// A Prenota repeated under its Idempotency-Key: the first one's hold, in
/// whatever state it is now; refused when the key came with another request.
struct Repeat<'a> {
    principal: &'a Principal,
    booked_by_key: &'a str,
    idempotency_key: Option<&'a str>,
    request_sha256: &'a str,
    now: DateTime<Utc>,
}

impl Repeat<'_> {
    async fn find(&self, conn: &mut PgConnection) -> Result<Option<Hold>, AppointmentError> {
        let Some(key) = self.idempotency_key else {
            return Ok(None);
        };
        let Some(existing) = store::by_key(conn, self.booked_by_key, key).await? else {
            return Ok(None);
        };
        if existing.request_sha256 != self.request_sha256 {
            return Err(AppointmentError::KeyReused);
        }
        let side = side_on(conn, self.principal, &existing, self.now).await?;
        Ok(Some(Hold {
            appointment: super::as_seen(existing, side),
            repeated: true,
        }))
    }
}

async fn check_delegation(
    conn: &mut PgConnection,
    principal: &Principal,
    subject: &str,
    matricola: Option<&str>,
    gestione: &str,
    office: &str,
    now: DateTime<Utc>,
) -> Result<(), AppointmentError> {
    let Principal::Intermediary { tax_code, .. } = principal else {
        return Ok(());
    };
    let delegations: Vec<Delegation> =
        documents_store::delegations_of(conn, tax_code.as_str(), subject).await?;
    let parties = CaseParties {
        citizen_tax_code: subject.into(),
        matricola: matricola.map(Into::into),
        gestione: gestione.into(),
        office_aoo: office.into(),
    };
    if delegations.iter().any(|d| d.covers(&parties, now)) {
        Ok(())
    } else {
        Err(AppointmentError::Forbidden(
            "no active delegation covers this citizen or position".into(),
        ))
    }
}

/// *Conferma* in its own transaction.
pub async fn confirm(
    pool: &PgPool,
    settings: &BookingSettings,
    principal: &Principal,
    id: Uuid,
    correlation_id: &str,
) -> Result<Answer, AppointmentError> {
    let mut tx = pool.begin().await?;
    let answer = confirm_in(&mut tx, settings, principal, id, correlation_id, Utc::now()).await?;
    tx.commit().await?;
    Ok(answer)
}

/// *Conferma*: held → confirmed, the hold's timer cancelled and
/// `appointment.confirmed` written to the outbox; confirmed again: the same
/// outcome, nothing written.
pub async fn confirm_in(
    conn: &mut PgConnection,
    settings: &BookingSettings,
    principal: &Principal,
    id: Uuid,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Answer, AppointmentError> {
    let (appointment, side) = lock_for(conn, principal, id, now).await?;
    let transition = decide(
        appointment.state,
        appointment.hold_expires_at,
        appointment.starts_at,
        Command::Confirm,
        now,
    )?;
    let (outcome, appointment) = match transition {
        Transition::Unchanged => (Outcome::AlreadyConfirmed, appointment),
        // The timer (or the next booking of the slot) releases it.
        Transition::Lapse => {
            return Err(crate::domain::appointment::StateRefusal::HoldExpired.into())
        }
        Transition::Confirm => {
            let confirmed =
                store::set_state(conn, id, AppointmentState::Confirmed, None, now).await?;
            timers::cancel(conn, HOLD_TIMER_KIND, &id.to_string()).await?;
            let event = confirmed_event(settings, &appointment, correlation_id, now)?;
            outbox::enqueue(conn, &[OutboxMessage::event(&event, None)?]).await?;
            super::callbacks::on_confirmed(conn, &appointment, correlation_id).await?;
            tracing::info!(appointment_id = %id, %correlation_id, "appointment confirmed");
            (Outcome::Confirmed, confirmed)
        }
        Transition::Cancel { .. } => {
            return Err(AppointmentError::Invalid("confirm cannot cancel".into()))
        }
    };
    Ok(Answer {
        outcome,
        appointment: super::as_seen(appointment, side),
    })
}

/// The appointment a confirm or cancel acts on, locked until the end of
/// the transaction (its hold timer first, in the timer worker's order, so a
/// hold expiring meanwhile waits, never deadlocks), and the side the
/// principal sees it from (or why they may not touch it).
async fn lock_for(
    conn: &mut PgConnection,
    principal: &Principal,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(AppointmentRecord, Side), AppointmentError> {
    store::lock_hold_timer(conn, id).await?;
    let appointment = store::lock(conn, id)
        .await?
        .ok_or(AppointmentError::NotFound)?;
    let side = side_on(conn, principal, &appointment, now).await?;
    Ok((appointment, side))
}

fn subject_of(appointment: &AppointmentRecord) -> Result<CodiceFiscale, AppointmentError> {
    CodiceFiscale::parse(&appointment.subject_tax_code)
        .map_err(|e| AppointmentError::Invalid(format!("stored appointment: {e}")))
}

fn confirmed_event(
    settings: &BookingSettings,
    appointment: &AppointmentRecord,
    correlation_id: &str,
    at: DateTime<Utc>,
) -> Result<Event<AppointmentConfirmed>, AppointmentError> {
    Ok(Event {
        message_id: Uuid::now_v7(),
        message_type: "appointment.confirmed".into(),
        schema_version: 1,
        occurred_at: at,
        correlation_id: correlation_id.into(),
        causation_id: None,
        payload: AppointmentConfirmed {
            appointment_id: appointment.id,
            subject_tax_code: subject_of(appointment)?,
            office_aoo: appointment.office_aoo.clone(),
            office_name: appointment.office_name.clone(),
            desk: appointment.desk_name.clone(),
            mode: appointment.mode.as_str().into(),
            starts_at: appointment.starts_at,
            ends_at: appointment.ends_at,
            video_link: (appointment.mode == Mode::Video)
                .then(|| settings.video_link(appointment.id, appointment.ends_at)),
            office_address: appointment.address_to_go(),
            callback_phone: (appointment.mode == Mode::Phone).then(|| appointment.phone.clone()),
            contact: Contact {
                email: None,
                phone: Some(appointment.phone.clone()),
            },
        },
    })
}

fn cancelled_event(
    appointment: &AppointmentRecord,
    by: CancelledBy,
    reason: Option<&str>,
    correlation_id: &str,
    at: DateTime<Utc>,
) -> Result<Event<AppointmentCancelled>, AppointmentError> {
    Ok(Event {
        message_id: Uuid::now_v7(),
        message_type: "appointment.cancelled".into(),
        schema_version: 1,
        occurred_at: at,
        correlation_id: correlation_id.into(),
        causation_id: None,
        payload: AppointmentCancelled {
            appointment_id: appointment.id,
            subject_tax_code: subject_of(appointment)?,
            office_aoo: appointment.office_aoo.clone(),
            office_name: appointment.office_name.clone(),
            desk: Some(appointment.desk_name.clone()),
            mode: Some(appointment.mode.as_str().into()),
            starts_at: appointment.starts_at,
            cancelled_by: by.as_str().into(),
            reason: reason.map(Into::into),
            contact: Contact {
                email: None,
                phone: Some(appointment.phone.clone()),
            },
        },
    })
}

/// *Cancella prenotazione* in its own transaction.
pub async fn cancel(
    pool: &PgPool,
    principal: &Principal,
    id: Uuid,
    reason: Option<&str>,
    correlation_id: &str,
) -> Result<Answer, AppointmentError> {
    let mut tx = pool.begin().await?;
    let answer = cancel_in(&mut tx, principal, id, reason, correlation_id, Utc::now()).await?;
    tx.commit().await?;
    Ok(answer)
}

/// *Cancella prenotazione*, by the citizen's side before the start or by the
/// office: the seat is given back; a confirmed appointment's cancellation
/// is announced (`appointment.cancelled`). Cancelled again: same outcome.
pub async fn cancel_in(
    conn: &mut PgConnection,
    principal: &Principal,
    id: Uuid,
    reason: Option<&str>,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Answer, AppointmentError> {
    if reason.is_some_and(|r| r.chars().count() > 1000) {
        return Err(invalid("a reason is at most 1000 characters"));
    }
    let (appointment, side) = lock_for(conn, principal, id, now).await?;
    let by = match side {
        Side::Office | Side::System => CancelledBy::Office,
        Side::Citizen => CancelledBy::Citizen,
    };
    let transition = decide(
        appointment.state,
        appointment.hold_expires_at,
        appointment.starts_at,
        Command::Cancel { by },
        now,
    )?;
    let (outcome, appointment) = match transition {
        Transition::Unchanged => (Outcome::AlreadyCancelled, appointment),
        Transition::Cancel { by, announce } => {
            let reason = reason.map(str::trim).filter(|r| !r.is_empty());
            let cancelled = store::set_state(
                conn,
                id,
                AppointmentState::Cancelled,
                Some((by, reason)),
                now,
            )
            .await?;
            store::release_seat(conn, &appointment.slot()).await?;
            timers::cancel(conn, HOLD_TIMER_KIND, &id.to_string()).await?;
            if announce {
                let event = cancelled_event(&appointment, by, reason, correlation_id, now)?;
                outbox::enqueue(conn, &[OutboxMessage::event(&event, None)?]).await?;
            }
            tracing::info!(appointment_id = %id, by = by.as_str(), %correlation_id, "appointment cancelled");
            (Outcome::Cancelled, cancelled)
        }
        Transition::Confirm | Transition::Lapse => {
            return Err(AppointmentError::Invalid("cancel cannot confirm".into()))
        }
    };
    Ok(Answer {
        outcome,
        appointment: super::as_seen(appointment, side),
    })
}

/// The hold's timer fired: a hold still unconfirmed expires and gives its
/// seat back, once (the row lock and the state make a second call a no-op).
/// Returns whether it expired now.
pub async fn expire_hold(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let Some(appointment) = store::lock(conn, id).await? else {
        return Ok(false);
    };
    if appointment.state != AppointmentState::Held {
        return Ok(false);
    }
    store::set_state(conn, id, AppointmentState::Expired, None, Utc::now()).await?;
    store::release_seat(conn, &appointment.slot()).await?;
    tracing::info!(appointment_id = %id, "hold expired, slot released");
    Ok(true)
}
