//! The office's agenda (*agenda appuntamenti*) for one day, Europe/Rome:
//! every appointment of the signed-in operator's office (scoped in SQL by
//! the session's office), of one desk or all, with the links to the
//! previous and next day; a confirmed video appointment has the operator's
//! join link ("Entra nella stanza").

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::errors::UNAVAILABLE;
use super::render::{error_page, render};
use super::session::{session, Session};
use super::ApiState;
use crate::appointments::BookingSettings;
use crate::domain::appointment::{AppointmentState, DeskKind, Mode};
use crate::domain::cron::TIME_ZONE;
use crate::domain::video::Role;
use crate::store::appointments::{self as store, AppointmentRecord};

pub(super) const AGENDA: &str = "/ufficio/agenda";

/// The page's query: `giorno=AAAA-MM-GG`, `sportello=<desk kind>` (both optional).
#[derive(Debug, Default, Deserialize)]
pub(super) struct AgendaQuery {
    giorno: Option<String>,
    sportello: Option<String>,
}

/// Why the query cannot be used, said on the page.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum QueryError {
    Day(String),
    Desk(String),
}

impl QueryError {
    fn message(&self) -> String {
        match self {
            QueryError::Day(raw) => format!("«{raw}» non è una data valida (AAAA-MM-GG)."),
            QueryError::Desk(raw) => format!("Lo sportello «{raw}» non esiste in questa sede."),
        }
    }
}

/// One appointment of the agenda.
#[derive(Serialize)]
pub(super) struct Row {
    pub(super) time: String,
    pub(super) desk: String,
    pub(super) mode: &'static str,
    pub(super) citizen: String,
    /// As the booking declared it; empty when it did not.
    pub(super) citizen_name: String,
    pub(super) phone: String,
    pub(super) notes: String,
    pub(super) state: &'static str,
    /// The operator's link to the video room ("Entra nella stanza").
    pub(super) join_link: Option<String>,
}

pub(super) fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::InPerson => "in presenza",
        Mode::Phone => "ricontatto telefonico",
        Mode::Video => "videochiamata",
    }
}

pub(super) fn state_label(state: AppointmentState) -> &'static str {
    match state {
        AppointmentState::Held => "prenotato",
        AppointmentState::Confirmed => "confermato",
        AppointmentState::Cancelled => "cancellato",
        AppointmentState::Expired => "scaduto",
        AppointmentState::Done => "svolto",
    }
}

/// The instants a Rome day spans: `[its midnight, the next midnight)`.
pub(super) fn day_span(day: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = |day: NaiveDate| {
        TIME_ZONE
            .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|at| at.with_timezone(&Utc))
    };
    Some((start(day)?, start(day.succ_opt()?)?))
}

/// The day asked for (today in Rome when none) and the desk, if one.
pub(super) fn parse_query(
    query: &AgendaQuery,
    now: DateTime<Utc>,
) -> Result<(NaiveDate, Option<DeskKind>), QueryError> {
    let day = match query.giorno.as_deref().map(str::trim) {
        None | Some("") => now.with_timezone(&TIME_ZONE).date_naive(),
        Some(raw) => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map_err(|_| QueryError::Day(raw.to_owned()))?,
    };
    let desk = match query.sportello.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(raw) => Some(DeskKind::parse(raw).map_err(|_| QueryError::Desk(raw.to_owned()))?),
    };
    Ok((day, desk))
}

/// The operator's join link of a confirmed video appointment: signed for
/// this appointment and the operator's role, valid to the slot's end plus
/// the longest document window; the gateway decides on each use whether
/// the room is open yet (from 15 minutes before the slot).
fn join_link(settings: &BookingSettings, a: &AppointmentRecord) -> Option<String> {
    (a.mode == Mode::Video && a.state == AppointmentState::Confirmed)
        .then(|| settings.room_link(a.id, Role::Operator, a.ends_at))
}

fn row(settings: &BookingSettings, a: &AppointmentRecord) -> Row {
    Row {
        time: format!(
            "{}-{}",
            a.starts_at.with_timezone(&TIME_ZONE).format("%H:%M"),
            a.ends_at.with_timezone(&TIME_ZONE).format("%H:%M")
        ),
        desk: a.desk_name.clone(),
        mode: mode_label(a.mode),
        citizen: a.subject_tax_code.clone(),
        citizen_name: a.citizen_name.clone().unwrap_or_default(),
        phone: a.phone.clone(),
        notes: a.notes.clone(),
        state: state_label(a.state),
        join_link: join_link(settings, a),
    }
}

fn link(day: NaiveDate, desk: Option<&DeskKind>) -> String {
    let mut pairs = vec![("giorno", day.format("%Y-%m-%d").to_string())];
    if let Some(desk) = desk {
        pairs.push(("sportello", desk.as_str().to_owned()));
    }
    match serde_urlencoded::to_string(pairs) {
        Ok(query) => format!("{AGENDA}?{query}"),
        Err(_) => AGENDA.to_owned(),
    }
}

pub(super) async fn agenda(state: web::Data<ApiState>, request: HttpRequest) -> HttpResponse {
    let Session { operator, .. } = match session(&state, &request).await {
        Ok(session) => session,
        Err(refusal) => return refusal.response(),
    };
    let office = operator.office.clone();
    let query =
        serde_urlencoded::from_str::<AgendaQuery>(request.query_string()).unwrap_or_default();
    let parsed = parse_query(&query, Utc::now());
    let mut conn = match state.pool.acquire().await {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "agenda: no database connection");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&operator),
                UNAVAILABLE,
            );
        }
    };
    let desks = match store::office_desks(&mut conn, &office).await {
        Ok(desks) => desks,
        Err(error) => {
            tracing::error!(%error, "agenda: desks unavailable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&operator),
                UNAVAILABLE,
            );
        }
    };
    let checked = parsed.and_then(|(day, desk)| match desk {
        Some(desk) if !desks.iter().any(|(kind, _)| kind == desk.as_str()) => {
            Err(QueryError::Desk(desk.as_str().to_owned()))
        }
        desk => Ok((day, desk)),
    });
    let (day, desk) = match checked {
        Ok(checked) => checked,
        Err(error) => {
            return render(
                StatusCode::BAD_REQUEST,
                "agenda.html",
                context! {
                    operator, desks, appointments => Vec::<Row>::new(), error => error.message(),
                    day => query.giorno.unwrap_or_default(), day_label => "",
                    desk => query.sportello.unwrap_or_default(),
                    previous_day => AGENDA, next_day => AGENDA,
                },
            );
        }
    };
    let Some((from, to)) = day_span(day) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&operator),
            &QueryError::Day(day.to_string()).message(),
        );
    };
    let appointments = match store::agenda(
        &mut conn,
        &office,
        desk.as_ref().map(DeskKind::as_str),
        from,
        to,
    )
    .await
    {
        Ok(appointments) => appointments,
        Err(error) => {
            tracing::error!(%error, "agenda unavailable");
            return error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some(&operator),
                UNAVAILABLE,
            );
        }
    };
    let rows: Vec<Row> = appointments
        .iter()
        .map(|a| row(&state.booking, a))
        .collect();
    let previous_day = day.pred_opt().map(|d| link(d, desk.as_ref()));
    let next_day = day.succ_opt().map(|d| link(d, desk.as_ref()));
    render(
        StatusCode::OK,
        "agenda.html",
        context! {
            operator, desks, appointments => rows,
            day => day.format("%Y-%m-%d").to_string(),
            day_label => day.format("%d/%m/%Y").to_string(),
            desk => desk.as_ref().map(|d| d.as_str().to_owned()).unwrap_or_default(),
            previous_day, next_day,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn the_default_day_is_today_in_rome() {
        let late_evening = at("2026-12-01T23:30:00Z");
        let (day, desk) = parse_query(&AgendaQuery::default(), late_evening).unwrap();
        assert_eq!(day, NaiveDate::from_ymd_opt(2026, 12, 2).unwrap());
        assert_eq!(desk, None);
    }

    #[test]
    fn a_bad_day_or_desk_is_refused() {
        let query = |giorno: &str, sportello: &str| AgendaQuery {
            giorno: Some(giorno.into()),
            sportello: Some(sportello.into()),
        };
        let now = at("2026-12-01T10:00:00Z");
        assert_eq!(
            parse_query(&query("2026-02-30", ""), now),
            Err(QueryError::Day("2026-02-30".into()))
        );
        assert_eq!(
            parse_query(&query("2026-12-03", "<b>"), now),
            Err(QueryError::Desk("<b>".into()))
        );
        let (day, desk) = parse_query(&query("2026-12-03", "ammortizzatori"), now).unwrap();
        assert_eq!(day.to_string(), "2026-12-03");
        assert_eq!(desk.unwrap().as_str(), "ammortizzatori");
    }

    fn appointment(mode: Mode, state: AppointmentState) -> AppointmentRecord {
        let starts_at = at("2026-12-02T08:30:00Z");
        AppointmentRecord {
            id: uuid::Uuid::now_v7(),
            subject_tax_code: "RSSMRA85T10A562S".into(),
            citizen_name: Some("Mario Rossi".into()),
            matricola: None,
            gestione: "aziende_uniemens".into(),
            channel: "web".into(),
            office_aoo: "1901".into(),
            office_name: "Crema".into(),
            office_address: None,
            desk_kind: "conto_assicurativo".into(),
            desk_name: "Conto assicurativo".into(),
            mode,
            starts_at,
            ends_at: starts_at + chrono::Duration::minutes(20),
            state,
            hold_expires_at: starts_at,
            phone: "+393331234567".into(),
            notes: "Estratto conto".into(),
            ticket_id: None,
            cancelled_by: None,
            cancel_reason: None,
            created_at: starts_at,
            updated_at: starts_at,
            confirmed_at: None,
            cancelled_at: None,
            booked_by: serde_json::json!({"kind": "citizen"}),
            booked_by_key: "citizen:RSSMRA85T10A562S".into(),
            request_sha256: String::new(),
        }
    }

    #[test]
    fn only_a_confirmed_video_appointment_has_the_operators_join_link() {
        let settings = BookingSettings::from_settings(&crate::config::Settings::local_defaults());
        let signer = crate::domain::video::link::LinkSigner::new(
            crate::domain::video::link::DEVELOPMENT_LINK_SECRET,
        );
        let video = appointment(Mode::Video, AppointmentState::Confirmed);
        let row = row(&settings, &video);
        assert_eq!(row.citizen_name, "Mario Rossi");
        let link = row.join_link.expect("a join link");
        let token = link.rsplit_once("/stanza/").unwrap().1;
        let verified = signer.verify(token, video.starts_at).unwrap();
        assert_eq!(verified.appointment_id, video.id);
        assert_eq!(verified.role, Role::Operator);
        assert_eq!(
            verified.expires_at,
            crate::domain::video::link::latest_use(video.ends_at)
        );
        for (mode, state) in [
            (Mode::Video, AppointmentState::Held),
            (Mode::Video, AppointmentState::Cancelled),
            (Mode::Video, AppointmentState::Done),
            (Mode::InPerson, AppointmentState::Confirmed),
            (Mode::Phone, AppointmentState::Confirmed),
        ] {
            assert_eq!(
                join_link(&settings, &appointment(mode, state)),
                None,
                "{mode:?} {state:?}"
            );
        }
    }

    #[test]
    fn a_day_spans_23_or_25_hours_when_the_clocks_change() {
        let span = |d: &str| {
            let (from, to) = day_span(NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()).unwrap();
            (from, (to - from).num_hours())
        };
        assert_eq!(span("2026-03-29"), (at("2026-03-28T23:00:00Z"), 23));
        assert_eq!(span("2026-10-25"), (at("2026-10-24T22:00:00Z"), 25));
        assert_eq!(span("2026-12-02").1, 24);
    }
}
