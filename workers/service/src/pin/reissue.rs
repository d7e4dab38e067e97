//! A half that never arrived (issue 27): where the current PIN's halves
//! stand, for a contact-centre agent acting for the caller or an operator
//! of the office competent for the residence, and a new PIN (*nuovo PIN*)
//! in place of one whose half finally failed.
//!
//! A half is retried by the delivery workers (`NOTIFY_*` backoff); its
//! final failure rewrites its line in the citizen's centre
//! (`halves::finish`). A reissue is asked for by naming that half's
//! delivery: one reissue per failed half (`pin_reissues`, unique), so a
//! resend answers the first reissue instead of issuing a third PIN. The
//! old PIN is superseded in the same transaction (new hashes, its waiting
//! seals and letter dropped), and the new halves go to the contacts and
//! residence on record, never to an address from the request.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::halves::{self, Destination, Message};
use super::{crypto, event, hash, postal, state_of, PinError, PinService};
use crate::contract::{Channel, CodiceFiscale, Principal};
use crate::domain::pin::delivery::{
    may_act_for, reissue_allowed, reissue_medium, ContactsOnRecord, HalfDelivery,
};
use crate::domain::pin::{CredentialState, FirstHalfMedium, Residence};
use crate::store::outbox;
use crate::store::pin_halves::{self, HalfDeliveryRow};
use crate::store::pin_reissues::{self, ReissueRow};
use crate::store::pins::{self as store, CredentialRow};

/// Where one half's delivery stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HalfView {
    pub delivery_id: Uuid,
    /// `first` or `second` (a recovery sends both over contacts).
    pub half: &'static str,
    /// `sms:*********4567`: the medium and the end of the address.
    pub to: String,
    /// `pending` (queued, being sent, or waiting for its next try), `sent`
    /// or `failed` (after the last try, or refused for good).
    pub state: &'static str,
    /// What the agent reads out, in Italian.
    pub label: &'static str,
    pub attempts: i32,
    /// Pending after a failed try: when the next one is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The second half's letter, as far as Sportello knows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LetterView {
    /// `queued` (waiting for the postal service) or `handed_to_post`.
    pub state: &'static str,
    pub queued_at: DateTime<Utc>,
    pub handed_at: Option<DateTime<Utc>>,
}

/// Whether a new PIN may be issued now, and in place of which half.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReissueAdvice {
    pub possible: bool,
    /// The failed half to name in `POST /pin/reissues`.
    pub replaces: Option<Uuid>,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// A reissue as answered and listed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reissued {
    pub reissue_id: Uuid,
    pub tax_code: String,
    pub state: &'static str,
    /// The failed half's delivery this PIN replaced.
    pub replaces: Uuid,
    /// `sms:*********4567`.
    pub first_half_to: String,
    /// `post`: a new letter to the residence.
    pub second_half_to: &'static str,
    /// `contact_center_agent` or `operator`, and its id.
    pub requested_by_kind: String,
    pub requested_by: String,
    pub reissued_at: DateTime<Utc>,
    /// The same half was named before: this is that first reissue, and
    /// nothing was issued now.
    pub repeated: bool,
}

/// What an agent or an operator sees of a citizen's PIN halves.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HalvesView {
    pub tax_code: String,
    /// `issued`, `active` or `revoked`.
    pub state: &'static str,
    /// When the current initial PIN was issued (its halves are from then).
    pub issued_at: DateTime<Utc>,
    /// The current PIN's halves sent by SMS, email or PEC, newest first.
    pub halves: Vec<HalfView>,
    /// The current PIN's letter (none for a recovered PIN).
    pub letter: Option<LetterView>,
    pub reissue: ReissueAdvice,
    /// Every new PIN issued because a half never arrived, newest first.
    pub reissues: Vec<Reissued>,
}

/// `POST /pin/reissues`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReissueBody {
    /// The citizen; by default the one the token acts for (`on_behalf_of`).
    pub tax_code: Option<String>,
    /// The failed half's `delivery_id` (from `GET /pin/deliveries`): a
    /// resend naming it again answers the same reissue.
    pub replaces: Uuid,
    /// `sms`, `email` or `pec`, among the contacts on record; by default
    /// the medium whose half failed.
    pub first_half_to: Option<String>,
}

/// The citizen the request is about: named, else the token's.
fn subject(principal: &Principal, named: Option<&str>) -> Result<CodiceFiscale, PinError> {
    match named {
        Some(raw) => CodiceFiscale::parse(raw).map_err(|e| PinError::field("tax_code", e)),
        None => principal.subject_tax_code().cloned().ok_or_else(|| {
            PinError::field(
                "tax_code",
                "name the citizen (tax_code), or act for them (on_behalf_of)",
            )
        }),
    }
}

/// The office competent for the citizen's residence, as routing decides it
/// (triage for residents abroad).
async fn competent_office(
    conn: &mut PgConnection,
    row: &CredentialRow,
) -> Result<String, PinError> {
    let residence: Residence = serde_json::from_value(row.residence.clone())?;
    let table = crate::store::tickets::routing_table(conn).await?;
    Ok(table
        .route(super::conversion::AMBITO, None, Some(&residence.location()))
        .office_aoo)
}

/// The credential of `tax_code` if `principal` may act on it.
async fn authorised(
    conn: &mut PgConnection,
    principal: &Principal,
    tax_code: &CodiceFiscale,
    lock: bool,
) -> Result<CredentialRow, PinError> {
    let row = if lock {
        store::lock_credential(conn, tax_code.as_str()).await?
    } else {
        store::credential(conn, tax_code.as_str()).await?
    };
    let row = match row {
        Some(row) => row,
        None => {
            // Who may not ask is told so before learning whether a PIN
            // exists (an operator's office needs the residence to check).
            if !matches!(principal, Principal::Operator { .. }) {
                may_act_for(principal, tax_code, "")
                    .map_err(|e| PinError::Forbidden(e.to_string()))?;
            }
            return Err(PinError::NotFound(
                "this tax code has no PIN: request one (POST /pin/requests)".into(),
            ));
        }
    };
    let office = competent_office(conn, &row).await?;
    may_act_for(principal, tax_code, &office).map_err(|e| PinError::Forbidden(e.to_string()))?;
    Ok(row)
}

fn half_of(row: &HalfDeliveryRow) -> HalfDelivery {
    HalfDelivery::from_row(&row.state, row.attempts)
}

/// The medium a half went by: a PEC is an email to the PEC on record.
fn medium_of(half: &HalfDeliveryRow, credential: &CredentialRow) -> FirstHalfMedium {
    match half.medium.as_str() {
        "sms" => FirstHalfMedium::Sms,
        _ if credential.pec.as_deref() == Some(half.address.as_str()) => FirstHalfMedium::Pec,
        _ => FirstHalfMedium::Email,
    }
}

fn destination(medium: FirstHalfMedium, address: &str) -> Destination {
    match medium {
        FirstHalfMedium::Sms => Destination::sms(address),
        FirstHalfMedium::Email => Destination::email(address),
        FirstHalfMedium::Pec => Destination::pec(address),
    }
}

fn address_on_record(credential: &CredentialRow, medium: FirstHalfMedium) -> Option<&str> {
    match medium {
        FirstHalfMedium::Sms => credential.mobile.as_deref(),
        FirstHalfMedium::Email => credential.email.as_deref(),
        FirstHalfMedium::Pec => credential.pec.as_deref(),
    }
}

fn parse_medium(raw: &str) -> Result<FirstHalfMedium, PinError> {
    match raw.trim() {
        "sms" => Ok(FirstHalfMedium::Sms),
        "email" => Ok(FirstHalfMedium::Email),
        "pec" => Ok(FirstHalfMedium::Pec),
        _ => Err(PinError::field("first_half_to", "one of sms, email, pec")),
    }
}

fn reissued(row: &ReissueRow, credential: &CredentialRow, repeated: bool) -> Reissued {
    let medium = parse_medium(&row.first_half_to).unwrap_or(FirstHalfMedium::Sms);
    let first_half_to = address_on_record(credential, medium)
        .map(|address| destination(medium, address).masked())
        .unwrap_or_else(|| row.first_half_to.clone());
    Reissued {
        reissue_id: row.id,
        tax_code: row.tax_code.clone(),
        state: CredentialState::Issued.as_str(),
        replaces: row.replaces_delivery_id,
        first_half_to,
        second_half_to: "post",
        requested_by_kind: row.requested_by_kind.clone(),
        requested_by: row.requested_by.clone(),
        reissued_at: row.reissued_at,
        repeated,
    }
}

/// Where the halves of the citizen's current PIN stand.
pub async fn deliveries(
    pool: &PgPool,
    principal: &Principal,
    tax_code: Option<&str>,
) -> Result<HalvesView, PinError> {
    let tax_code = subject(principal, tax_code)?;
    let mut conn = pool.acquire().await?;
    let row = authorised(&mut conn, principal, &tax_code, false).await?;
    let state = state_of(&row)?;
    let halves = pin_halves::of_citizen(&mut conn, tax_code.as_str(), row.issued_at).await?;
    let letters =
        pin_halves::letters_of_citizen(&mut conn, tax_code.as_str(), row.issued_at).await?;
    let reissues = pin_reissues::of_citizen(&mut conn, tax_code.as_str()).await?;
    let states: Vec<HalfDelivery> = halves.iter().map(half_of).collect();
    let failed = halves
        .iter()
        .find(|h| matches!(half_of(h), HalfDelivery::Failed { .. }));
    let advice = match reissue_allowed(Some(state), &states, failed.map(half_of)) {
        Ok(()) => ReissueAdvice {
            possible: true,
            replaces: failed.map(|h| h.delivery_id),
            reason: None,
        },
        Err(refusal) => ReissueAdvice {
            possible: false,
            replaces: None,
            reason: Some(refusal.to_string()),
        },
    };
    let halves = halves
        .iter()
        .map(|h| {
            let delivery = half_of(h);
            let medium = medium_of(h, &row);
            HalfView {
                delivery_id: h.delivery_id,
                half: if h.rule == "pin-recovery-second-half" {
                    "second"
                } else {
                    "first"
                },
                to: destination(medium, &h.address).masked(),
                state: delivery.as_str(),
                label: delivery.label(),
                attempts: h.attempts,
                next_attempt_at: (h.state == "queued" && h.attempts > 0).then_some(h.due_at),
                queued_at: h.created_at,
                sent_at: h.sent_at,
            }
        })
        .collect();
    let letter = letters.first().map(|l| LetterView {
        state: if l.taken_at.is_some() {
            "handed_to_post"
        } else {
            "queued"
        },
        queued_at: l.queued_at,
        handed_at: l.taken_at,
    });
    Ok(HalvesView {
        tax_code: tax_code.to_string(),
        state: state.as_str(),
        issued_at: row.issued_at,
        halves,
        letter,
        reissue: advice,
        reissues: reissues.iter().map(|r| reissued(r, &row, false)).collect(),
    })
}

/// The first-half message of a new PIN issued in place of the old one.
fn reissue_message(medium: FirstHalfMedium) -> Message<'static> {
    let text = match medium {
        FirstHalfMedium::Sms => "INPS: la prima parte del tuo nuovo PIN è [[PIN]]. Sostituisce il PIN precedente. La seconda parte arriverà con una nuova lettera all'indirizzo di residenza.",
        FirstHalfMedium::Email | FirstHalfMedium::Pec => "Gentile cittadino,\n\nla prima parte (8 caratteri) del tuo nuovo PIN INPS è: [[PIN]]\n\nIl nuovo PIN sostituisce quello precedente, di cui una parte non ti è arrivata. I secondi 8 caratteri ti arriveranno con una nuova lettera all'indirizzo di residenza: usa quelli della nuova lettera. Al primo utilizzo, il PIN iniziale di 16 caratteri sarà sostituito con uno di 8 caratteri scelto da te.\n\nINPS",
    };
    Message {
        rule: "pin-first-half",
        title: "PIN INPS: nuovo PIN, prima parte inviata",
        centre_body: "Ti abbiamo inviato la prima parte di un nuovo PIN, che sostituisce il precedente. La seconda parte arriverà con una nuova lettera: usa quella.",
        subject: "INPS - Il tuo nuovo PIN: prima parte",
        text,
    }
}

/// Issues a new PIN in place of the one whose half `body.replaces` finally
/// failed: once per failed half (a repeat answers the first reissue), by an
/// agent acting for the caller or an operator of the competent office.
pub async fn reissue(
    pool: &PgPool,
    service: &PinService,
    principal: &Principal,
    body: &ReissueBody,
    correlation_id: &str,
) -> Result<Reissued, PinError> {
    let tax_code = subject(principal, body.tax_code.as_deref())?;
    let asked = body
        .first_half_to
        .as_deref()
        .map(parse_medium)
        .transpose()?;
    let (requested_by_kind, requested_by, office_aoo, channel) = match principal {
        Principal::ContactCenterAgent { agent_id, .. } => (
            "contact_center_agent",
            agent_id.clone(),
            None,
            Some(Channel::ContactCenter),
        ),
        Principal::Operator {
            operator_id,
            office,
            ..
        } => ("operator", operator_id.clone(), Some(office.clone()), None),
        _ => {
            return Err(PinError::Forbidden(
                crate::domain::pin::delivery::HalvesRefusal::NotStaff.to_string(),
            ))
        }
    };
    let mut tx = pool.begin().await?;
    // Serialises reissues (and sign-ins) of this PIN: two agents at once
    // make one reissue.
    let row = authorised(&mut tx, principal, &tax_code, true).await?;
    if let Some(done) = pin_reissues::replacing(&mut tx, body.replaces).await? {
        if done.tax_code != tax_code.as_str() {
            return Err(crate::domain::pin::delivery::ReissueRefusal::NotCurrentHalf.into());
        }
        tracing::info!(reissue_id = %done.id, correlation_id, "PIN reissue asked again: the first answers");
        return Ok(reissued(&done, &row, true));
    }
    let state = state_of(&row)?;
    let halves = pin_halves::of_citizen(&mut tx, tax_code.as_str(), row.issued_at).await?;
    let states: Vec<HalfDelivery> = halves.iter().map(half_of).collect();
    let replaced = halves.iter().find(|h| h.delivery_id == body.replaces);
    reissue_allowed(Some(state), &states, replaced.map(half_of))?;
    let failed_medium = replaced
        .map(|h| medium_of(h, &row))
        .unwrap_or(FirstHalfMedium::Sms);
    let medium = reissue_medium(
        asked,
        failed_medium,
        ContactsOnRecord {
            mobile: row.mobile.is_some(),
            email: row.email.is_some(),
            pec: row.pec.is_some(),
        },
    )?;
    let address = address_on_record(&row, medium).ok_or(PinError::Reissue(
        crate::domain::pin::delivery::ReissueRefusal::NoContact(medium.as_str()),
    ))?;
    let to = destination(medium, address);
    let residence: Residence = serde_json::from_value(row.residence.clone())?;
    // Argon2 under the credential's lock, only once the reissue is sure to
    // happen: refusals and repeats cost no hashing, and a reissue is rare.
    let initial = crypto::generate_initial();
    let first_half_hash = hash(initial.first.expose().to_owned()).await?;
    let initial_hash = hash(initial.whole()).await?;
    let now = Utc::now();

    store::supersede(
        &mut tx,
        tax_code.as_str(),
        &first_half_hash,
        &initial_hash,
        now,
    )
    .await?;
    let delivery_id = halves::queue(
        &mut tx,
        &service.keys,
        tax_code.as_str(),
        &to,
        &reissue_message(medium),
        initial.first.expose(),
        correlation_id,
        now,
    )
    .await?;
    let recipient = format!("{} {}", row.name, row.surname);
    let letter_id = postal::queue(
        &mut tx,
        &service.keys,
        tax_code.as_str(),
        &recipient,
        &residence,
        &initial.second,
        now,
    )
    .await?;
    let done = ReissueRow {
        id: Uuid::now_v7(),
        tax_code: tax_code.to_string(),
        replaces_delivery_id: body.replaces,
        requested_by_kind: requested_by_kind.to_owned(),
        requested_by,
        office_aoo,
        first_half_to: to.label.to_owned(),
        first_half_delivery_id: delivery_id,
        letter_id,
        correlation_id: correlation_id.to_owned(),
        reissued_at: now,
    };
    pin_reissues::insert(&mut tx, &done).await?;
    let issued = CredentialState::Issued;
    let events = [
        event(
            tax_code.as_str(),
            "reissued",
            channel,
            issued,
            Some(to.label),
            None,
            correlation_id,
            now,
        )?,
        event(
            tax_code.as_str(),
            "first_half_queued",
            channel,
            issued,
            Some(to.label),
            None,
            correlation_id,
            now,
        )?,
        event(
            tax_code.as_str(),
            "second_half_queued",
            channel,
            issued,
            Some("post"),
            None,
            correlation_id,
            now,
        )?,
    ];
    outbox::enqueue(&mut tx, &events).await?;
    tx.commit().await?;
    tracing::info!(
        reissue_id = %done.id,
        by = requested_by_kind,
        first_half = to.label,
        correlation_id,
        "a new PIN was issued in place of one whose half never arrived"
    );
    Ok(reissued(&done, &row, false))
}
