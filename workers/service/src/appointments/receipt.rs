//! The appointment receipt (*ricevuta*): mode, office, desk, date and time,
//! and for a video call the link of its room; as JSON and as PDF.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::{detail, AppointmentError, BookingSettings};
use crate::contract::Principal;
use crate::domain::appointment::{AppointmentState, Mode};
use crate::domain::cron::TIME_ZONE;
use crate::store::appointments::AppointmentRecord;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Receipt {
    pub appointment_id: Uuid,
    pub state: AppointmentState,
    pub mode: Mode,
    /// The mode as the receipt says it (*In presenza*, ...).
    pub mode_label: &'static str,
    pub office_aoo: String,
    pub office_name: String,
    /// Where to go, for an in-person appointment (when the office has one).
    pub office_address: Option<String>,
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
            office_address: appointment.address_to_go(),
            desk: appointment.desk_name.clone(),
            date: starts.format("%d/%m/%Y").to_string(),
            time: starts.format("%H:%M").to_string(),
            ends: ends.format("%H:%M").to_string(),
            starts_at: appointment.starts_at,
            ends_at: appointment.ends_at,
            subject_tax_code: appointment.subject_tax_code.clone(),
            phone: appointment.phone.clone(),
            video_link: (appointment.mode == Mode::Video)
                .then(|| settings.video_link(appointment.id, appointment.ends_at)),
        }
    }

    /// The PDF's lines (no parentheses: they would be hex-encoded).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![
            format!("Identificativo appuntamento: {}", self.appointment_id),
            format!("Stato: {}", state_label(self.state)),
            format!("Modalità: {}", self.mode_label),
            format!("Sede: {} - AOO {}", self.office_name, self.office_aoo),
        ];
        if let Some(address) = &self.office_address {
            lines.push(format!("Indirizzo: {address}"));
        }
        lines.extend([
            format!("Sportello: {}", self.desk),
            format!(
                "Data e ora: {} dalle {} alle {}, ora di Roma",
                self.date, self.time, self.ends
            ),
            format!("Codice fiscale: {}", self.subject_tax_code),
            format!("Recapito telefonico: {}", self.phone),
        ]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn appointment(mode: Mode) -> AppointmentRecord {
        // Thursday 3 December 2026, 09:20 in Rome.
        let starts_at = Utc.with_ymd_and_hms(2026, 12, 3, 8, 20, 0).unwrap();
        AppointmentRecord {
            id: Uuid::now_v7(),
            subject_tax_code: "RSSMRA85T10A562S".into(),
            citizen_name: None,
            matricola: None,
            gestione: "aziende_uniemens".into(),
            channel: "web".into(),
            office_aoo: "1900".into(),
            office_name: "Direzione Provinciale Cremona".into(),
            office_address: None,
            desk_kind: "ammortizzatori".into(),
            desk_name: "indennità e ammortizzatori sociali".into(),
            mode,
            starts_at,
            ends_at: starts_at + Duration::minutes(20),
            state: AppointmentState::Confirmed,
            hold_expires_at: starts_at - Duration::days(1),
            phone: "+393331234567".into(),
            notes: "NASpI".into(),
            ticket_id: None,
            cancelled_by: None,
            cancel_reason: None,
            created_at: starts_at - Duration::days(2),
            updated_at: starts_at - Duration::days(2),
            confirmed_at: Some(starts_at - Duration::days(2)),
            cancelled_at: None,
            booked_by: serde_json::json!({"kind": "citizen"}),
            booked_by_key: "citizen:RSSMRA85T10A562S".into(),
            request_sha256: String::new(),
        }
    }

    #[test]
    fn the_receipt_names_mode_office_desk_and_rome_time_and_the_room_of_a_video_call() {
        let settings = BookingSettings {
            hold: Duration::minutes(10),
            video_base_url: "https://video.example/".into(),
            video_links: crate::domain::video::link::LinkSigner::new("k"),
            limits: Default::default(),
        };
        let video = appointment(Mode::Video);
        let receipt = Receipt::of(&settings, &video);
        let link = receipt.video_link.clone().unwrap();
        let token = link.strip_prefix("https://video.example/stanza/").unwrap();
        let opened = settings.video_links.verify(token, video.starts_at).unwrap();
        assert_eq!(opened.appointment_id, video.id);
        assert_eq!(opened.role, crate::domain::video::Role::Citizen);
        let lines = receipt.lines();
        assert!(lines.contains(&"Modalità: Videochiamata".to_owned()));
        assert!(lines.contains(&"Sportello: indennità e ammortizzatori sociali".to_owned()));
        assert!(lines
            .contains(&"Data e ora: 03/12/2026 dalle 09:20 alle 09:40, ora di Roma".to_owned()));
        assert!(receipt.pdf().starts_with(b"%PDF-"));

        let in_person = Receipt::of(&settings, &appointment(Mode::InPerson));
        assert_eq!(in_person.video_link, None);
        assert_eq!(in_person.mode_label, "In presenza");
        assert!(!in_person
            .lines()
            .iter()
            .any(|l| l.contains("Videochiamata")));
    }
}
