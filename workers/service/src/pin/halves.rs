//! Sending a half (or a recovery link) without keeping it: the delivery's
//! stored body holds [`SEALED_MARKER`] where the secret goes, and the
//! secret itself waits sealed in `pin_sealed_halves`, bound to the
//! delivery's id. The sender (`workers::delivery`) puts it in just before
//! sending; once the delivery is sent or failed the seal is deleted in the
//! transaction that records the outcome. Events, logs, metrics, the
//! operators' delivery log and the notification centre only ever see the
//! marker.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::crypto::{PinKeys, Revealed};
use crate::domain::notification::{Medium, Tab};
use crate::store::notifications::{
    self as notifications, ClaimedDelivery, NewDelivery, NewNotification,
};
use crate::store::pins;

/// Where a sealed secret goes in a delivery's body.
pub const SEALED_MARKER: &str = "[[PIN]]";

/// One contact a secret goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub medium: Medium,
    pub address: String,
    /// `sms`, `email` or `pec`, as events and answers name it.
    pub label: &'static str,
}

impl Destination {
    pub fn sms(phone: &str) -> Self {
        Self {
            medium: Medium::Sms,
            address: phone.to_owned(),
            label: "sms",
        }
    }
    pub fn email(address: &str) -> Self {
        Self {
            medium: Medium::Email,
            address: address.to_owned(),
            label: "email",
        }
    }
    pub fn pec(address: &str) -> Self {
        Self {
            medium: Medium::Email,
            address: address.to_owned(),
            label: "pec",
        }
    }

    /// `sms:+39…`, as a recovery row keeps it.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.label, self.address)
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (label, address) = raw.split_once(':')?;
        Some(match label {
            "sms" => Self::sms(address),
            "email" => Self::email(address),
            "pec" => Self::pec(address),
            _ => return None,
        })
    }

    /// The address as an answer shows it: the last characters only.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.address.chars().collect();
        let shown = chars.len().min(4);
        let hidden = chars.len() - shown;
        format!(
            "{}:{}{}",
            self.label,
            "*".repeat(hidden),
            chars[hidden..].iter().collect::<String>()
        )
    }
}

/// What the citizen reads: the centre's line and the message around the
/// secret (`text` must hold [`SEALED_MARKER`]).
pub struct Message<'a> {
    pub rule: &'a str,
    pub title: &'a str,
    pub centre_body: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
}

#[allow(clippy::too_many_arguments)]
/// Queues `secret` to `to` in the caller's transaction: a notification, one
/// delivery whose body has the marker, the sealed secret.
pub async fn queue(
    conn: &mut PgConnection,
    keys: &PinKeys,
    tax_code: &str,
    to: &Destination,
    message: &Message<'_>,
    secret: &str,
    correlation_id: &str,
    now: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    debug_assert!(message.text.contains(SEALED_MARKER));
    let notification = NewNotification {
        id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        rule: message.rule.to_owned(),
        tax_code: tax_code.to_owned(),
        tab: Tab::Messages,
        title: message.title.to_owned(),
        body: message.centre_body.to_owned(),
        subject_kind: Some("pin".into()),
        subject_id: None,
        due_at: None,
        link: None,
        link_on_due_day: false,
        unreachable: None,
        withdrawn: false,
        office_aoo: None,
        correlation_id: correlation_id.to_owned(),
        created_at: now,
    };
    let delivery = NewDelivery {
        id: Uuid::now_v7(),
        medium: to.medium,
        address: to.address.clone(),
        subject: (to.medium == Medium::Email).then(|| message.subject.to_owned()),
        text_body: message.text.to_owned(),
        html_body: None,
    };
    notifications::insert(conn, &notification, std::slice::from_ref(&delivery)).await?;
    let (nonce, sealed) = keys.seal(secret, delivery.id.as_bytes());
    pins::insert_sealed_half(conn, delivery.id, &nonce, &sealed).await?;
    Ok(delivery.id)
}

/// Puts the sealed secrets into the claimed deliveries that carry the
/// marker (in memory only), and returns each secret by its delivery, so
/// that whatever is said about the attempt can be [`redacted`]. A delivery
/// whose seal is gone (already sent, or undecipherable) keeps its marker
/// and is failed by [`unrevealed`].
pub async fn reveal(
    conn: &mut PgConnection,
    keys: &PinKeys,
    claimed: &mut [ClaimedDelivery],
) -> Result<Vec<(Uuid, Revealed)>, sqlx::Error> {
    let ids: Vec<Uuid> = claimed
        .iter()
        .filter(|d| d.text_body.contains(SEALED_MARKER))
        .map(|d| d.id)
        .collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sealed = pins::sealed_halves(conn, &ids).await?;
    let mut revealed = Vec::new();
    for delivery in claimed.iter_mut() {
        let Some((_, nonce, seal)) = sealed.iter().find(|(id, _, _)| *id == delivery.id) else {
            continue;
        };
        match keys.open(nonce, seal, delivery.id.as_bytes()) {
            Ok(secret) => {
                delivery.text_body = delivery.text_body.replace(SEALED_MARKER, secret.expose());
                revealed.push((delivery.id, secret));
            }
            Err(error) => {
                tracing::error!(delivery_id = %delivery.id, %error, "a sealed PIN secret does not open");
            }
        }
    }
    Ok(revealed)
}

/// `reason` (a provider's or SMTP server's answer, which may echo the
/// message it refused) with the secret put back behind the marker: it is
/// logged, kept in the attempt log and shown to operators.
pub fn redacted(reason: &str, secret: Option<&Revealed>) -> String {
    match secret {
        Some(secret) => {
            crate::domain::pin::delivery::redact(reason, secret.expose(), SEALED_MARKER)
        }
        None => reason.to_owned(),
    }
}

/// Ends the sealed secrets of deliveries that are over, in the caller's
/// transaction: a half whose last try failed gets its centre line saying so
/// (unread again; an agent sees it too, and can have a new PIN issued),
/// and every seal of a sent or failed delivery is deleted.
pub async fn finish(conn: &mut PgConnection, delivery_ids: &[Uuid]) -> Result<(), sqlx::Error> {
    if delivery_ids.is_empty() {
        return Ok(());
    }
    let failed = crate::store::pin_halves::mark_failed(
        conn,
        delivery_ids,
        crate::domain::pin::delivery::FAILED_TITLE,
        crate::domain::pin::delivery::FAILED_BODY,
    )
    .await?;
    if !failed.is_empty() {
        tracing::warn!(
            halves = failed.len(),
            "PIN halves finally failed; the citizens' centres say so"
        );
    }
    pins::scrub_finished_halves(conn, delivery_ids).await?;
    Ok(())
}

/// Why a claimed delivery cannot be sent: it still carries the marker.
pub fn unrevealed(delivery: &ClaimedDelivery) -> Option<&'static str> {
    delivery.text_body.contains(SEALED_MARKER).then_some(
        "the PIN secret of this delivery is no longer held (sent before, or its seal does not open): the citizen must request a new PIN",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_round_trip_and_mask() {
        let to = Destination::sms("+393331234567");
        assert_eq!(Destination::decode(&to.encode()), Some(to.clone()));
        assert_eq!(to.masked(), "sms:*********4567");
        assert_eq!(Destination::decode("fax:1"), None);
    }
}
