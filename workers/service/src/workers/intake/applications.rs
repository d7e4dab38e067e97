//! Applications among the new requests. An application is opened as a
//! ticket (its back-office case, registered with a protocol number) by the
//! requests path; here: one per citizen and benefit, and its own row.

use std::collections::HashMap;

use uuid::Uuid;

use super::{classify, ApplyFailure, Item};
use crate::domain::intake::{AdmittedApplication, IntakeMessage};
use crate::domain::ticket::NewTicket;
use crate::store::applications::{self as store, NewApplication};

/// Where an application stands against the ones already made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Standing {
    /// The citizen's first for this benefit.
    Fresh,
    /// The same application again (the F5): answered as a duplicate.
    Resubmitted,
    /// A different second application for the same benefit: refused.
    Conflict(String),
}

pub(super) fn application_of<'i>(item: &'i Item<'_>) -> Option<&'i AdmittedApplication> {
    match &item.admitted.message {
        IntakeMessage::ApplicationSubmitted(application) => Some(application),
        _ => None,
    }
}

/// The standing of every application of the group (index-aligned; `None`
/// for plain requests), against the database and earlier items of the group.
pub(super) async fn standings(
    conn: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<Option<Standing>>, ApplyFailure> {
    let pair = |a: &AdmittedApplication| {
        (
            a.envelope.payload.applicant.tax_code.to_string(),
            a.envelope.payload.benefit.clone(),
        )
    };
    let pairs: Vec<(String, String)> = group
        .iter()
        .filter_map(|item| application_of(item).map(pair))
        .collect();
    let mut known: HashMap<(String, String), (String, Option<String>)> =
        store::existing(&mut *conn, &pairs)
            .await
            .map_err(classify)?
            .into_iter()
            .map(|e| {
                (
                    (e.citizen_tax_code, e.benefit),
                    (e.fingerprint, Some(e.signature)),
                )
            })
            .collect();
    Ok(group
        .iter()
        .map(|item| {
            let application = application_of(item)?;
            let key = pair(application);
            let fingerprint = &application.checked.fingerprint;
            Some(match known.get(&key) {
                Some((earlier, _)) if earlier == fingerprint => Standing::Resubmitted,
                Some((_, signature)) => Standing::Conflict(format!(
                    "{} already applied for `{}`{}: one application per citizen and benefit; this one differs from it (category, fields or IBAN), so it is refused",
                    key.0,
                    key.1,
                    signature
                        .as_ref()
                        .map(|s| format!(" (registered as {s})"))
                        .unwrap_or_default()
                )),
                None => {
                    known.insert(key, (fingerprint.clone(), None));
                    Standing::Fresh
                }
            })
        })
        .collect())
}

/// The application row of a ticket just opened from an application.
pub(super) fn new_application(
    application: &AdmittedApplication,
    ticket: &NewTicket,
) -> Result<NewApplication, ApplyFailure> {
    let payload = &application.envelope.payload;
    Ok(NewApplication {
        id: Uuid::now_v7(),
        citizen_tax_code: payload.applicant.tax_code.to_string(),
        benefit: payload.benefit.clone(),
        category: payload.category.clone(),
        ticket_id: ticket.id,
        message_id: application.envelope.message_id,
        fingerprint: application.checked.fingerprint.clone(),
        applicant: json(&payload.applicant)?,
        fields: json(&payload.fields)?,
        iban: application.checked.iban.clone(),
        holders: json(&payload.payment.holders)?,
        channel: application.envelope.channel.as_str().to_owned(),
        submitted_by: json(&application.envelope.principal)?,
        credential: application
            .checked
            .credential
            .map(|c| c.as_str().to_owned()),
        pin_verification_id: match &application.envelope.principal {
            crate::contract::Principal::ContactCenterAgent {
                pin_verification_id,
                ..
            } => *pin_verification_id,
            _ => None,
        },
        submitted_at: application.envelope.occurred_at,
        registered_at: ticket.opened_at,
    })
}

fn json<T: serde::Serialize>(value: &T) -> Result<serde_json::Value, ApplyFailure> {
    serde_json::to_value(value).map_err(|e| ApplyFailure::Crashed(e.to_string()))
}
