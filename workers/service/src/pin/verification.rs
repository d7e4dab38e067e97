//! A contact-centre agent checks the first half the caller reads out
//! (`POST /pin/agent-verifications`): counted and locked like a sign-in
//! (`checked_as`, under the credential's row lock), and limited per client
//! address by the handler. A match is recorded (`pin_agent_verifications`)
//! and its id is what the agent's later requests carry; the half is
//! compared with its argon2 hash and dropped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::limits::Step;
use super::{checked_as, event, PinError, PinService};
use crate::contract::Principal;
use crate::domain::pin::verification::{self as rules, Verification, VerificationRefusal};
use crate::domain::pin::{CredentialState, PresentedPin};
use crate::store::outbox;
use crate::store::pin_verifications::{self as store, VerificationRow};

/// A verification's answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verified {
    /// Send it as `X-Pin-Verification` with what you do for this caller.
    pub verification_id: Uuid,
    pub tax_code: String,
    pub verified_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Checks `half` for the caller `principal` (an agent) acts for.
pub async fn verify_half(
    pool: &PgPool,
    service: &PinService,
    principal: &Principal,
    half: &str,
    correlation_id: &str,
) -> Result<Verified, PinError> {
    let Principal::ContactCenterAgent {
        agent_id,
        on_behalf_of,
        ..
    } = principal
    else {
        return Err(PinError::Forbidden(
            "only a contact-centre agent checks a caller's PIN half, for the caller its token acts for (on_behalf_of)".into(),
        ));
    };
    let presented = PresentedPin::parse(half).map_err(|e| PinError::secret("pin", e))?;
    if !matches!(presented, PresentedPin::Eight(_)) {
        return Err(PinError::field(
            "pin",
            "the caller reads out the first half only: 8 characters",
        ));
    }
    let checked = checked_as(
        pool,
        service,
        on_behalf_of,
        &presented,
        correlation_id,
        Step::AgentCheck,
        |state, row| rules::agent_check(state, row.ever_activated),
    )
    .await;
    let (mut tx, _row, _check) = checked?;
    let now = Utc::now();
    let verification = Verification::new(Uuid::now_v7(), agent_id, on_behalf_of.as_str(), now);
    store::insert(
        &mut tx,
        &VerificationRow {
            id: verification.id,
            agent_id: verification.agent_id.clone(),
            tax_code: verification.tax_code.clone(),
            verified_at: verification.verified_at,
            expires_at: verification.expires_at,
        },
        correlation_id,
    )
    .await?;
    outbox::enqueue(
        &mut tx,
        &[event(
            on_behalf_of.as_str(),
            "agent_verified",
            Some(crate::contract::Channel::ContactCenter),
            CredentialState::Issued,
            None,
            None,
            correlation_id,
            now,
        )?],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(agent = %agent_id, verification_id = %verification.id, correlation_id, "caller's PIN half verified");
    Ok(Verified {
        verification_id: verification.id,
        tax_code: verification.tax_code,
        verified_at: verification.verified_at,
        expires_at: verification.expires_at,
    })
}

/// Whether `raw` (the id the agent sent, if any) verifies `principal`'s
/// simplified-PIN claim at `at` (now over HTTP; when the agent acted, for
/// a command that waited in a queue). `Ok(None)`: no verification is needed.
pub async fn required(
    conn: &mut PgConnection,
    principal: &Principal,
    raw: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Option<Uuid>, VerifiedError> {
    if !rules::needs_verification(principal) {
        return Ok(None);
    }
    let raw = raw.ok_or(VerificationRefusal::Missing)?;
    let id = rules::parse_id(raw)?;
    let found = store::find(conn, id).await?.map(|row| Verification {
        id: row.id,
        agent_id: row.agent_id,
        tax_code: row.tax_code,
        verified_at: row.verified_at,
        expires_at: row.expires_at,
    });
    rules::judge(principal, found.as_ref(), at)?;
    Ok(Some(id))
}

/// A verification refused, or the database failing while looking.
#[derive(Debug, thiserror::Error)]
pub enum VerifiedError {
    #[error(transparent)]
    Refused(#[from] VerificationRefusal),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}
