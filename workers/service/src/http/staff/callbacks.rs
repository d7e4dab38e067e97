//! "Richiamate": the office's phone desks with the calls waiting on each
//! queue, the office's latest call outcomes, and the call the operator
//! holds. "Prendi la prossima richiamata" takes ONE call from the desk's
//! queue (`held_calls`); the outcome form records it through
//! `appointments::callbacks::record_outcome_in` as the operator, in one
//! transaction, and only after the commit is the call acked. Unanswered in
//! time, or at sign-out, the call goes back to the queue.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use minijinja::context;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::agenda::state_label;
use super::errors::{not_found, UNAVAILABLE};
use super::held_calls::{HeldCall, Settle, Taken};
use super::render::OperatorView;
use super::render::{error_page, redirect, render, when};
use super::session::{cross_origin, cross_origin_refused, session, Session};
use super::{ApiState, SESSION_COOKIE};
use crate::appointments::callbacks::record_outcome_in;
use crate::appointments::AppointmentError;
use crate::broker::names::callback_queue;
use crate::contract::appointments::{CallbackOutcome, CallbackResult};
use crate::contract::{Channel, Envelope};
use crate::domain::appointment::DeskKind;
use crate::domain::booking::CALLBACK_OUTCOME;
use crate::store::{appointments as appointments_store, booking_commands as calls};

pub(super) const CALLBACKS: &str = "/ufficio/richiamate";
/// Outcomes the page lists.
const RECENT_OUTCOMES: i64 = 30;
/// The schema's longest note.
const MAX_NOTE_CHARS: usize = 2000;
/// Stale or foreign calls skipped in one "Prendi" before giving up.
const MAX_SKIPPED: usize = 10;

/// A desk taking call-backs, with its queue.
#[derive(Serialize)]
pub(super) struct DeskRow {
    pub(super) kind: String,
    pub(super) name: String,
    /// Calls waiting; `None` when the queue could not be read.
    pub(super) waiting: Option<u32>,
}

#[derive(Serialize)]
pub(super) struct OutcomeRow {
    pub(super) at: String,
    pub(super) desk: String,
    pub(super) citizen: String,
    pub(super) phone: String,
    pub(super) attempt: i32,
    pub(super) outcome: &'static str,
    pub(super) who: String,
    pub(super) note: String,
}

/// The held call as the page shows it.
#[derive(Serialize)]
pub(super) struct CallView {
    pub(super) call_id: Uuid,
    pub(super) desk: String,
    pub(super) citizen: String,
    pub(super) phone: String,
    pub(super) notes: String,
    pub(super) time: String,
    pub(super) attempt: u32,
    pub(super) state: &'static str,
    pub(super) answer_by: String,
}

fn outcome_label(raw: &str) -> &'static str {
    match raw {
        "done" => "fatto",
        "no_answer" => "nessuna risposta",
        "rescheduled" => "riprogrammato",
        _ => "altro",
    }
}

/// The form's outcome, by the values the page offers.
pub(super) fn parse_outcome(raw: &str) -> Option<CallbackResult> {
    match raw {
        "fatto" => Some(CallbackResult::Done),
        "nessuna_risposta" => Some(CallbackResult::NoAnswer),
        "riprogrammato" => Some(CallbackResult::Rescheduled),
        _ => None,
    }
}

/// Notices set by the redirects after a POST (only these codes are shown).
fn notice(query: &str) -> Option<&'static str> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let code = pairs
        .iter()
        .find(|(name, _)| name == "avviso")
        .map(|(_, v)| v.as_str())?;
    match code {
        "registrato" => Some("Esito registrato."),
        "nessuna" => Some("Nessuna richiamata in attesa su questo sportello."),
        "in-corso" => Some("Hai già una richiamata in corso: registra prima il suo esito."),
        "gia-registrato" => Some("L'esito di questa richiamata era già stato registrato."),
        _ => None,
    }
}

fn session_key(request: &HttpRequest) -> String {
    request
        .cookie(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

async fn show(
    state: &ApiState,
    request: &HttpRequest,
    operator: OperatorView,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let office = operator.office.clone();
    let loaded = async {
        let mut conn = state.pool.acquire().await?;
        let desks = calls::office_phone_desks(&mut conn, &office).await?;
        let outcomes = calls::recent_outcomes(&mut conn, &office, RECENT_OUTCOMES).await?;
        let held = state.held_calls.current(&session_key(request));
        let appointment = match &held {
            Some(held) => {
                appointments_store::get(&mut conn, held.call.payload.appointment_id).await?
            }
            None => None,
        };
        Ok::<_, sqlx::Error>((desks, outcomes, held, appointment))
    };
    let (desks, outcomes, held, appointment) = match loaded.await {
        Ok(loaded) => loaded,
        Err(error) => {
            tracing::error!(%error, "call-backs page unavailable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&operator),
                UNAVAILABLE,
            );
        }
    };
    let mut rows = Vec::new();
    for (kind, name) in desks {
        let waiting = match state
            .held_calls
            .waiting(&callback_queue(&office, &kind))
            .await
        {
            Ok(count) => Some(count),
            Err(error) => {
                tracing::warn!(%error, desk = %kind, "call-back queue not readable");
                None
            }
        };
        rows.push(DeskRow {
            kind,
            name,
            waiting,
        });
    }
    let outcomes: Vec<OutcomeRow> = outcomes
        .iter()
        .map(|r| OutcomeRow {
            at: r.call.recorded_at.map(when).unwrap_or_default(),
            desk: r.desk_name.clone(),
            citizen: r.subject_tax_code.clone(),
            phone: r.phone.clone(),
            attempt: r.call.attempt,
            outcome: outcome_label(r.call.outcome.as_deref().unwrap_or_default()),
            who: r.call.agent.clone().unwrap_or_default(),
            note: r.call.note.clone().unwrap_or_default(),
        })
        .collect();
    let call = held.map(|HeldCall { call, expires_at }| {
        let p = call.payload;
        CallView {
            call_id: p.call_id,
            desk: p.desk_name,
            citizen: p.citizen_tax_code.as_str().to_owned(),
            phone: p.phone,
            notes: p.notes,
            time: when(p.starts_at),
            attempt: p.attempt,
            state: appointment.map_or("", |a| state_label(a.state)),
            answer_by: when(expires_at),
        }
    });
    let message = notice(request.query_string());
    render(
        status,
        "richiamate.html",
        context! { operator, desks => rows, outcomes, call, message, error },
    )
}

pub(super) async fn page(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    match session(&state, &request).await {
        Ok(Session { operator, .. }) => {
            show(&state, &request, operator, StatusCode::OK, None).await
        }
        Err(refusal) => refusal.response(),
    }
}

#[derive(Deserialize)]
pub(super) struct TakeForm {
    #[serde(default)]
    sportello: String,
}

pub(super) async fn take(
    state: web::Data<ApiState>,
    request: HttpRequest,
    form: web::Form<TakeForm>,
) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    let Session { operator, .. } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let office = operator.office.clone();
    let Ok(desk) = DeskKind::parse(form.sportello.trim()) else {
        return not_found(Some(&operator), "Sportello");
    };
    // Only the session's own office's desks: another office's queue is
    // never named, whatever the form says.
    let desks = match state.pool.acquire().await {
        Ok(mut conn) => calls::office_phone_desks(&mut conn, &office).await,
        Err(error) => Err(error),
    };
    match desks {
        Ok(desks) if desks.iter().any(|(kind, _)| kind == desk.as_str()) => {}
        Ok(_) => return not_found(Some(&operator), "Sportello"),
        Err(error) => {
            tracing::error!(%error, "call-back desks unavailable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&operator),
                UNAVAILABLE,
            );
        }
    }
    let key = session_key(&request);
    let queue = callback_queue(&office, desk.as_str());
    for _ in 0..MAX_SKIPPED {
        let held = match state.held_calls.take(&key, &queue).await {
            Ok(Taken::Call(held)) => *held,
            Ok(Taken::Empty) => return redirect(&format!("{CALLBACKS}?avviso=nessuna")),
            Ok(Taken::AlreadyHolding) => return redirect(&format!("{CALLBACKS}?avviso=in-corso")),
            Ok(Taken::Unreadable) => continue,
            Err(error) => {
                tracing::error!(%error, %queue, "could not take a call-back");
                let message = "La coda delle richiamate non è raggiungibile; riprova più tardi.";
                return show(
                    &state,
                    &request,
                    operator,
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(message.into()),
                )
                .await;
            }
        };
        match still_open(&state, &office, &held).await {
            Ok(None) => return redirect(CALLBACKS),
            Ok(Some(how)) => {
                // Already answered (a requeue raced a commit), or not this
                // office's call: it does not stay with this operator.
                let call_id = held.call.payload.call_id;
                if let Some(delivery) = state.held_calls.remove(&key, call_id) {
                    if let Err(error) = delivery.settle(how).await {
                        tracing::warn!(%error, %call_id, "could not settle a stale call-back");
                    }
                }
            }
            // Kept: the page shows it, the outcome is checked again on POST.
            Err(error) => {
                tracing::warn!(%error, "could not check a taken call-back");
                return redirect(CALLBACKS);
            }
        }
    }
    redirect(&format!("{CALLBACKS}?avviso=nessuna"))
}

/// `None` when the call is the office's and waits for an outcome;
/// otherwise how to settle it.
async fn still_open(
    state: &ApiState,
    office: &str,
    held: &HeldCall,
) -> Result<Option<Settle>, sqlx::Error> {
    let payload = &held.call.payload;
    if payload.office_aoo != office {
        tracing::error!(call_id = %payload.call_id, office = %payload.office_aoo,
            "another office's call on this office's queue: dead-lettered");
        return Ok(Some(Settle::DeadLetter));
    }
    let mut conn = state.pool.acquire().await?;
    let call = calls::calls_of(&mut conn, payload.appointment_id)
        .await?
        .into_iter()
        .find(|c| c.call_id == payload.call_id);
    Ok(match call {
        None => {
            tracing::error!(call_id = %payload.call_id, "call-back without its call row: dead-lettered");
            Some(Settle::DeadLetter)
        }
        Some(call) if call.outcome.is_some() => Some(Settle::Ack),
        Some(_) => None,
    })
}

#[derive(Deserialize)]
pub(super) struct OutcomeForm {
    #[serde(default)]
    call_id: String,
    #[serde(default)]
    esito: String,
    #[serde(default)]
    nota: String,
}

pub(super) async fn record(
    state: web::Data<ApiState>,
    request: HttpRequest,
    form: web::Form<OutcomeForm>,
) -> HttpResponse {
    if cross_origin(&request) {
        return cross_origin_refused();
    }
    let Session {
        principal,
        operator,
    } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let key = session_key(&request);
    let form = form.into_inner();
    let note = form.nota.trim().to_owned();
    let checked = match (form.call_id.parse::<Uuid>(), parse_outcome(&form.esito)) {
        (Err(_), _) => Err("Richiamata non valida.".to_owned()),
        (_, None) => Err("Scegli l'esito: fatto, nessuna risposta o riprogrammato.".to_owned()),
        _ if note.chars().count() > MAX_NOTE_CHARS => Err(format!(
            "La nota può avere al massimo {MAX_NOTE_CHARS} caratteri."
        )),
        _ if note.contains('\0') => Err("La nota contiene caratteri non ammessi.".to_owned()),
        (Ok(call_id), Some(outcome)) => Ok((call_id, outcome)),
    };
    let (call_id, outcome) = match checked {
        Ok(checked) => checked,
        Err(message) => {
            return show(
                &state,
                &request,
                operator,
                StatusCode::BAD_REQUEST,
                Some(message),
            )
            .await
        }
    };
    let Some(delivery) = state.held_calls.remove(&key, call_id) else {
        let message = "Questa richiamata non è più in corso: è tornata in coda (tempo scaduto) \
                       oppure non è stata presa in questa sessione.";
        return show(
            &state,
            &request,
            operator,
            StatusCode::CONFLICT,
            Some(message.into()),
        )
        .await;
    };
    let call = &delivery.held.call;
    let envelope = Envelope {
        message_id: Uuid::now_v7(),
        message_type: CALLBACK_OUTCOME.into(),
        schema_version: 1,
        channel: Channel::Desk,
        occurred_at: Utc::now(),
        correlation_id: call.correlation_id.clone(),
        idempotency_key: format!("callback-{call_id}"),
        principal,
        payload: CallbackOutcome {
            appointment_id: call.payload.appointment_id,
            call_id,
            outcome,
            retry_after_minutes: None,
            note: (!note.is_empty()).then_some(note),
        },
    };
    let applied = async {
        let mut tx = state.pool.begin().await?;
        record_outcome_in(&mut tx, &envelope, Utc::now()).await?;
        tx.commit().await?;
        Ok::<_, AppointmentError>(())
    }
    .await;
    // Ack only after the commit; whatever did not commit goes back.
    let (how, answer) = match applied {
        Ok(()) => (Settle::Ack, Ok("registrato")),
        Err(AppointmentError::Invalid(_)) => (Settle::Ack, Ok("gia-registrato")),
        Err(AppointmentError::Forbidden(_)) => (
            Settle::DeadLetter,
            Err((
                StatusCode::FORBIDDEN,
                "La richiamata è di un'altra sede: solo i suoi operatori possono registrarla.",
            )),
        ),
        Err(AppointmentError::NotFound) => (
            Settle::DeadLetter,
            Err((StatusCode::NOT_FOUND, "Richiamata non trovata.")),
        ),
        Err(error) => {
            tracing::error!(%error, %call_id, "call-back outcome not recorded: call requeued");
            (
                Settle::Requeue,
                Err((StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)),
            )
        }
    };
    if let Err(error) = delivery.settle(how).await {
        // An unacked call comes back; its next taker finds the outcome
        // recorded and acks it (see `still_open`).
        tracing::warn!(%error, %call_id, ?how, "could not settle a call-back");
    }
    match answer {
        Ok(code) => redirect(&format!("{CALLBACKS}?avviso={code}")),
        Err((status, message)) => {
            show(&state, &request, operator, status, Some(message.into())).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_outcomes_and_notices_are_italian_codes() {
        assert_eq!(parse_outcome("fatto"), Some(CallbackResult::Done));
        assert_eq!(
            parse_outcome("nessuna_risposta"),
            Some(CallbackResult::NoAnswer)
        );
        assert_eq!(
            parse_outcome("riprogrammato"),
            Some(CallbackResult::Rescheduled)
        );
        assert_eq!(parse_outcome("done"), None);
        assert_eq!(notice("avviso=registrato"), Some("Esito registrato."));
        assert_eq!(notice("avviso=<script>"), None);
        assert_eq!(outcome_label("no_answer"), "nessuna risposta");
    }
}
