//! Delegations (*deleghe*) granted and revoked by messages: the publisher
//! was checked at admission (`domain::delegation`); here the scheme is
//! checked against the `gestioni` table, the change decided by
//! `domain::delegation` and written, with its event, in the caller's
//! transaction (the intake's, with the message's inbox row). Effective for
//! every read and request as soon as it commits.

use chrono::Utc;
use uuid::Uuid;

use crate::contract::{
    DelegationGranted, DelegationGrantedEvent, DelegationRevoked, DelegationRevokedEvent, Envelope,
    Event, Principal,
};
use crate::domain::access::Delegation;
use crate::domain::delegation::{grant_effect, to_revoke, GrantEffect, GRANTED, REVOKED};
use crate::store::delegations as store;
use crate::store::outbox::OutboxMessage;

/// Why a grant or revocation is not applied (the message is dead-lettered
/// with it), or what failed.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error("unknown scheme (gestione) `{0}`")]
    UnknownGestione(String),
    #[error("scheme (gestione) `{0}` is not open to delegations (gestioni.open_to_delegations)")]
    ClosedGestione(String),
    #[error("the delegation would already have expired (valid_to is in the past)")]
    AlreadyExpired,
    #[error("nothing to revoke: no active delegation from {citizen} to {intermediary} for scheme {gestione}{position} (none was granted, or it was already revoked or expired)")]
    NothingToRevoke {
        citizen: String,
        intermediary: String,
        gestione: String,
        position: String,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event encoding: {0}")]
    Encoding(#[from] serde_json::Error),
}

/// Applies a grant; returns its `delegation.granted` event for the outbox.
pub async fn grant(
    conn: &mut sqlx::PgConnection,
    envelope: &Envelope<DelegationGranted>,
) -> Result<Vec<OutboxMessage>, DelegationError> {
    let payload = &envelope.payload;
    match store::gestione_open(conn, &payload.gestione).await? {
        None => return Err(DelegationError::UnknownGestione(payload.gestione.clone())),
        Some(false) => return Err(DelegationError::ClosedGestione(payload.gestione.clone())),
        Some(true) => {}
    }
    let now = Utc::now();
    if payload.valid_to <= now {
        return Err(DelegationError::AlreadyExpired);
    }
    let (citizen, intermediary) = (
        payload.citizen_tax_code.as_str(),
        payload.intermediary_tax_code.as_str(),
    );
    store::lock_pair(conn, citizen, intermediary).await?;
    let same_scope: Vec<(Uuid, Delegation)> =
        store::of_scheme(conn, citizen, intermediary, &payload.gestione)
            .await?
            .into_iter()
            .filter(|(_, d)| d.matricola == payload.matricola)
            .collect();
    let existing: Vec<Delegation> = same_scope.iter().map(|(_, d)| d.clone()).collect();
    let valid_from = payload.valid_from.unwrap_or(now);
    let granted_by = serde_json::to_value(&envelope.principal)?;
    let (id, renewed) = match grant_effect(&existing, now) {
        GrantEffect::Renew(index) => {
            let id = same_scope[index].0;
            store::renew(
                conn,
                id,
                valid_from,
                payload.valid_to,
                &granted_by,
                envelope.message_id,
            )
            .await?;
            (id, true)
        }
        GrantEffect::New => {
            let id = Uuid::now_v7();
            let delegation = Delegation {
                citizen_tax_code: citizen.to_owned(),
                gestione: payload.gestione.clone(),
                matricola: payload.matricola.clone(),
                valid_from,
                valid_to: payload.valid_to,
                revoked_at: None,
            };
            store::insert(
                conn,
                id,
                intermediary,
                &delegation,
                Some(&granted_by),
                Some(envelope.message_id),
            )
            .await?;
            (id, false)
        }
    };
    tracing::info!(
        delegation_id = %id,
        gestione = %payload.gestione,
        renewed,
        correlation_id = %envelope.correlation_id,
        "delegation granted"
    );
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: GRANTED.into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: envelope.correlation_id.clone(),
        causation_id: Some(envelope.message_id),
        payload: DelegationGrantedEvent {
            delegation_id: id,
            citizen_tax_code: payload.citizen_tax_code.clone(),
            intermediary_tax_code: payload.intermediary_tax_code.clone(),
            gestione: payload.gestione.clone(),
            matricola: payload.matricola.clone(),
            valid_from,
            valid_to: payload.valid_to,
            granted_by: envelope.principal.kind().into(),
            renewed,
        },
    };
    Ok(vec![OutboxMessage::event(&event, None)?])
}

/// Applies a revocation; returns its `delegation.revoked` event.
pub async fn revoke(
    conn: &mut sqlx::PgConnection,
    envelope: &Envelope<DelegationRevoked>,
) -> Result<Vec<OutboxMessage>, DelegationError> {
    let payload = &envelope.payload;
    // A closed scheme may still hold delegations (opened, then closed again).
    if store::gestione_open(conn, &payload.gestione)
        .await?
        .is_none()
    {
        return Err(DelegationError::UnknownGestione(payload.gestione.clone()));
    }
    let (citizen, intermediary) = (
        payload.citizen_tax_code.as_str(),
        payload.intermediary_tax_code.as_str(),
    );
    store::lock_pair(conn, citizen, intermediary).await?;
    let scheme = store::of_scheme(conn, citizen, intermediary, &payload.gestione).await?;
    let delegations: Vec<Delegation> = scheme.iter().map(|(_, d)| d.clone()).collect();
    let now = Utc::now();
    let ids: Vec<Uuid> = to_revoke(&delegations, payload.matricola.as_deref(), now)
        .into_iter()
        .map(|index| scheme[index].0)
        .collect();
    if ids.is_empty() {
        return Err(DelegationError::NothingToRevoke {
            citizen: citizen.to_owned(),
            intermediary: intermediary.to_owned(),
            gestione: payload.gestione.clone(),
            position: payload
                .matricola
                .as_ref()
                .map(|m| format!(", position {m}"))
                .unwrap_or_default(),
        });
    }
    let revoked_by = serde_json::to_value(&envelope.principal)?;
    store::revoke(
        conn,
        &ids,
        now,
        &revoked_by,
        envelope.message_id,
        payload.reason.as_deref(),
    )
    .await?;
    tracing::info!(
        delegations = ids.len(),
        gestione = %payload.gestione,
        correlation_id = %envelope.correlation_id,
        "delegations revoked"
    );
    let revoked_by = match &envelope.principal {
        Principal::Intermediary { .. } => "intermediary",
        other => other.kind(),
    };
    let event = Event {
        message_id: Uuid::now_v7(),
        message_type: REVOKED.into(),
        schema_version: 1,
        occurred_at: now,
        correlation_id: envelope.correlation_id.clone(),
        causation_id: Some(envelope.message_id),
        payload: DelegationRevokedEvent {
            delegation_ids: ids,
            citizen_tax_code: payload.citizen_tax_code.clone(),
            intermediary_tax_code: payload.intermediary_tax_code.clone(),
            gestione: payload.gestione.clone(),
            matricola: payload.matricola.clone(),
            revoked_at: now,
            revoked_by: revoked_by.into(),
            reason: payload.reason.clone(),
        },
    };
    Ok(vec![OutboxMessage::event(&event, None)?])
}
