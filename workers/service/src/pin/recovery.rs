//! *Hai smarrito il PIN?*: the tax code and at least two contacts given at
//! registration (mobile, email, PEC). When they match, an email to the
//! address on record carries a link to confirm; confirming issues a new
//! 16-character PIN, half on one contact and half on the other (first half
//! by SMS when a mobile was given, second by email), to be replaced at
//! first use. Only for a PIN whose first use was completed: otherwise
//! revoke and request again. Recovery also lifts a lock.

use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use super::halves::{self, Destination, Message};
use super::{crypto, event, hash, PinError, PinService};
use crate::contract::CodiceFiscale;
use crate::domain::pin::request::FieldError;
use crate::domain::pin::CredentialState;
use crate::domain::sms::normalize_phone;
use crate::store::outbox;
use crate::store::pins as store;

/// How long the confirmation link lives.
pub const LINK_HOURS: i64 = 24;

/// What the citizen types on "Hai smarrito il PIN?".
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    pub tax_code: Option<String>,
    pub mobile: Option<String>,
    pub email: Option<String>,
    pub pec: Option<String>,
}

fn given(raw: &Option<String>) -> Option<String> {
    raw.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn same_phone(given: &str, kept: Option<&str>) -> bool {
    normalize_phone(given)
        .ok()
        .as_deref()
        .is_some_and(|p| Some(p) == kept)
}

fn same_mail(given: &str, kept: Option<&str>) -> bool {
    kept.is_some_and(|k| k.eq_ignore_ascii_case(given))
}

/// Starts a recovery: the answer says only that an email was sent.
pub async fn request(
    pool: &PgPool,
    service: &PinService,
    raw: &RecoveryRequest,
    correlation_id: &str,
) -> Result<(), PinError> {
    let tax_code = given(&raw.tax_code)
        .ok_or_else(|| PinError::field("tax_code", "required"))
        .and_then(|t| CodiceFiscale::parse(&t).map_err(|e| PinError::field("tax_code", e)))?;
    let (mobile, email, pec) = (given(&raw.mobile), given(&raw.email), given(&raw.pec));
    let count = [&mobile, &email, &pec]
        .iter()
        .filter(|c| c.is_some())
        .count();
    if count < 2 {
        return Err(PinError::Invalid(vec![FieldError::new(
            "contacts",
            "give at least two of mobile, email and PEC, as given at registration",
        )]));
    }
    let now = Utc::now();
    let mut tx = pool.begin().await?;
    let Some(row) = store::lock_credential(&mut tx, tax_code.as_str()).await? else {
        return Err(PinError::ContactsMismatch);
    };
    if row.state != CredentialState::Active.as_str() {
        return Err(PinError::RecoveryNotAvailable);
    }
    let matches = mobile
        .as_deref()
        .is_none_or(|m| same_phone(m, row.mobile.as_deref()))
        && email
            .as_deref()
            .is_none_or(|e| same_mail(e, row.email.as_deref()))
        && pec
            .as_deref()
            .is_none_or(|p| same_mail(p, row.pec.as_deref()));
    if !matches {
        return Err(PinError::ContactsMismatch);
    }
    // First half by SMS when a mobile was given, else by email; the second
    // on the other contact given.
    let mut contacts = Vec::new();
    if mobile.is_some() {
        contacts.extend(row.mobile.as_deref().map(Destination::sms));
    }
    if email.is_some() {
        contacts.extend(row.email.as_deref().map(Destination::email));
    }
    if pec.is_some() {
        contacts.extend(row.pec.as_deref().map(Destination::pec));
    }
    let (Some(first), Some(second)) = (contacts.first(), contacts.get(1)) else {
        return Err(PinError::ContactsMismatch);
    };
    // The confirmation goes to a mailbox on record (email, else PEC).
    let confirm_to = row
        .email
        .as_deref()
        .map(Destination::email)
        .or(row.pec.as_deref().map(Destination::pec))
        .ok_or(PinError::ContactsMismatch)?;
    let id = Uuid::now_v7();
    let (secret, digest) = crypto::new_link_secret();
    store::insert_recovery(
        &mut tx,
        id,
        tax_code.as_str(),
        &digest,
        &first.encode(),
        &second.encode(),
        now,
        now + Duration::hours(LINK_HOURS),
    )
    .await?;
    let text = format!(
        "Gentile cittadino,\n\nè stato chiesto il ripristino del tuo PIN INPS. Per confermarlo apri questo collegamento entro {LINK_HOURS} ore:\n\n{}/pin/ripristino?token={}.[[PIN]]\n\nSe non sei stato tu, ignora questo messaggio: il tuo PIN resta valido.\n\nINPS",
        service.recovery_base.trim_end_matches('/'),
        id
    );
    halves::queue(
        &mut tx,
        &service.keys,
        tax_code.as_str(),
        &confirm_to,
        &Message {
            rule: "pin-recovery-link",
            title: "Ripristino del PIN: conferma",
            centre_body: "Ti abbiamo inviato per email il collegamento per confermare il ripristino del PIN.",
            subject: "INPS - Conferma il ripristino del PIN",
            text: &text,
        },
        &secret,
        correlation_id,
        now,
    )
    .await?;
    outbox::enqueue(
        &mut tx,
        &[event(
            tax_code.as_str(),
            "recovery_requested",
            None,
            CredentialState::Active,
            Some(confirm_to.label),
            None,
            correlation_id,
            now,
        )?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(recovery_id = %id, correlation_id, "PIN recovery requested");
    Ok(())
}

/// Confirms a recovery with the link's token (`<id>.<secret>`): a new
/// initial PIN, split over the two contacts.
pub async fn confirm(
    pool: &PgPool,
    service: &PinService,
    token: &str,
    correlation_id: &str,
) -> Result<(), PinError> {
    let (id, secret) = token.trim().split_once('.').ok_or(PinError::LinkInvalid)?;
    let id = Uuid::parse_str(id).map_err(|_| PinError::LinkInvalid)?;
    let now = Utc::now();
    let initial = crypto::generate_initial();
    let initial_hash = hash(initial.whole()).await?;
    let mut tx = pool.begin().await?;
    let recovery = store::lock_recovery(&mut tx, id)
        .await?
        .ok_or(PinError::LinkInvalid)?;
    if !crypto::link_secret_matches(secret, &recovery.secret_hash)
        || recovery.confirmed_at.is_some()
        || recovery.expires_at <= now
    {
        return Err(PinError::LinkInvalid);
    }
    let row = store::lock_credential(&mut tx, &recovery.tax_code)
        .await?
        .ok_or(PinError::LinkInvalid)?;
    if row.state != CredentialState::Active.as_str() {
        return Err(PinError::RecoveryNotAvailable);
    }
    let first = Destination::decode(&recovery.first_to).ok_or(PinError::LinkInvalid)?;
    let second = Destination::decode(&recovery.second_to).ok_or(PinError::LinkInvalid)?;
    store::reissue(&mut tx, &recovery.tax_code, &initial_hash, now).await?;
    store::confirm_recovery(&mut tx, id).await?;
    for (to, half, ordinal) in [
        (&first, &initial.first, "prima"),
        (&second, &initial.second, "seconda"),
    ] {
        let text = format!(
            "INPS: {ordinal} parte del tuo nuovo PIN: [[PIN]]. L'altra parte ti è stata inviata sull'altro recapito. Al primo accesso inserisci i 16 caratteri e scegli il tuo nuovo PIN."
        );
        let title = format!("Ripristino del PIN: {ordinal} parte inviata");
        halves::queue(
            &mut tx,
            &service.keys,
            &recovery.tax_code,
            to,
            &Message {
                rule: if ordinal == "prima" {
                    "pin-recovery-first-half"
                } else {
                    "pin-recovery-second-half"
                },
                title: &title,
                centre_body:
                    "Ti abbiamo inviato il nuovo PIN, metà su un recapito e metà sull'altro.",
                subject: "INPS - Il tuo nuovo PIN",
                text: &text,
            },
            half.expose(),
            correlation_id,
            now,
        )
        .await?;
    }
    let issued = CredentialState::Issued;
    outbox::enqueue(
        &mut tx,
        &[
            event(
                &recovery.tax_code,
                "recovery_confirmed",
                None,
                issued,
                None,
                None,
                correlation_id,
                now,
            )?,
            event(
                &recovery.tax_code,
                "first_half_queued",
                None,
                issued,
                Some(first.label),
                None,
                correlation_id,
                now,
            )?,
            event(
                &recovery.tax_code,
                "second_half_queued",
                None,
                issued,
                Some(second.label),
                None,
                correlation_id,
                now,
            )?,
        ],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(recovery_id = %id, correlation_id, "PIN recovered: a new initial PIN was issued");
    Ok(())
}
