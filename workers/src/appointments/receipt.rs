//! The appointment receipt (*ricevuta*): mode, office, desk, date and time,
//! and for a video call the link of its room; as JSON and as PDF.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{detail, AppointmentError, BookingSettings};
use crate::contract::Principal;
use crate::domain::appointment::{AppointmentState, Mode};
use crate::store::appointments::AppointmentRecord;
use crate::timers::cron::TIME_ZONE;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub appointment_id: Uuid,
    pub state: AppointmentState,
    pub mode: Mode,
    /// The mode as the receipt says it (*In presenza*, ...).
    pub mode_label: &'static str,
    pub office_aoo: String,
    pub office_name: String,
    pub desk: String,
    /// Rome date (`dd/mm/yyyy`) and times (`HH:MM`).
    pub date: String,
    pub time: String,
    pub ends: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub subject_tax_code: String,
    pub phone: String,
    pub video_link: Option<String>,
}

impl Receipt {
    pub fn of(settings: &BookingSettings, appointment: &AppointmentRecord) -> Receipt {
        let starts = appointment.starts_at.with_timezone(&TIME_ZONE);
        let ends = appointment.ends_at.with_timezone(&TIME_ZONE);
        Receipt {
            appointment_id: appointment.id,
            state: appointment.state,
            mode: appointment.mode,
            mode_label: appointment.mode.label(),
            office_aoo: appointment.office_aoo.clone(),
            office_name: appointment.office_name.clone(),
            desk: appointment.desk_name.clone(),
            date: starts.format("%d/%m/%Y").to_string(),
            time: starts.format("%H:%M").to_string(),
            ends: ends.format("%H:%M").to_string(),
            starts_at: appointment.starts_at,
            ends_at: appointment.ends_at,
            subject_tax_code: appointment.subject_tax_code.clone(),
            phone: appointment.phone.clone(),
            video_link: (appointment.mode == Mode::Video)
                .then(|| settings.video_link(appointment.id)),
        }
    }

    /// The PDF's lines (no parentheses: they would be hex-encoded).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("Identificativo appuntamento: {}", self.appointment_id),
            format!("Stato: {}", state_label(self.state)),
            format!("Modalità: {}", self.mode_label),
            format!("Sede: {} - AOO {}", self.office_name, self.office_aoo),
            format!("Sportello: {}", self.desk),
            format!(
                "Data e ora: {} dalle {} alle {}, ora di Roma",
                self.date, self.time, self.ends
            ),
            format!("Codice fiscale: {}", self.subject_tax_code),
            format!("Recapito telefonico: {}", self.phone),
        ];
        if let Some(link) = &self.video_link {
            lines.push(String::new());
            lines.push(format!("Videochiamata: {link}"));
            lines.push(
                "Il collegamento è anche nel Centro notifiche di MyINPS, sotto Scadenze.".into(),
            );
        }
        lines
    }

    pub fn pdf(&self) -> Vec<u8> {
        crate::documents::receipt::lines_pdf("INPS - Ricevuta di prenotazione", &self.lines())
    }
}

fn state_label(state: AppointmentState) -> &'static str {
    match state {
        AppointmentState::Held => "prenotato, da confermare",
        AppointmentState::Confirmed => "confermato",
        AppointmentState::Cancelled => "cancellato",
        AppointmentState::Expired => "prenotazione scaduta",
        AppointmentState::Done => "svolto",
    }
}

/// The receipt of a confirmed (or done) appointment the principal may see.
pub async fn receipt(
    pool: &PgPool,
    settings: &BookingSettings,
    principal: &Principal,
    id: Uuid,
) -> Result<Receipt, AppointmentError> {
    let appointment = detail(pool, principal, id).await?;
    if !matches!(
        appointment.state,
        AppointmentState::Confirmed | AppointmentState::Done
    ) {
        return Err(AppointmentError::NotConfirmed);
    }
    Ok(Receipt::of(settings, &appointment))
}
