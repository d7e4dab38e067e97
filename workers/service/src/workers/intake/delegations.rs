//! Delegations granted and revoked by messages (`delegation.granted`,
//! `delegation.revoked`): what each changes is `crate::delegations`; here
//! the inbox and the savepoint around each, as for messages on tickets.

use sqlx::Connection;

use super::{classify, ApplyFailure, Item, ItemOutcome};
use crate::delegations::{self as operations, DelegationError};
use crate::domain::intake::IntakeMessage;
use crate::domain::refusal::Code;
use crate::domain::submission::Refusal;
use crate::store::inbox::{self, InboxOutcome};
use crate::store::outbox;

/// Each in a savepoint, in publishing order: a refused one (unknown or
/// closed scheme, nothing to revoke) leaves no inbox row, so a corrected
/// resend works; a repeated one finds its inbox row and changes nothing.
pub(super) async fn apply(
    tx: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<ItemOutcome>, ApplyFailure> {
    let mut outcomes = Vec::with_capacity(group.len());
    let mut events = Vec::new();
    for item in group {
        let mut savepoint = tx.begin().await.map_err(classify)?;
        let recorded = inbox::record(&mut savepoint, &[&item.admitted.idempotency])
            .await
            .map_err(classify)?
            .pop()
            .ok_or_else(|| ApplyFailure::Crashed("inbox returned no outcome".into()))?;
        if recorded != InboxOutcome::New {
            savepoint.commit().await.map_err(classify)?;
            outcomes.push(ItemOutcome::Inbox(recorded));
            continue;
        }
        let applied = match &item.admitted.message {
            IntakeMessage::DelegationGranted(envelope) => {
                operations::grant(&mut savepoint, envelope).await
            }
            IntakeMessage::DelegationRevoked(envelope) => {
                operations::revoke(&mut savepoint, envelope).await
            }
            _ => return Err(ApplyFailure::Crashed("not a delegation message".into())),
        };
        match applied {
            Ok(written) => {
                savepoint.commit().await.map_err(classify)?;
                events.extend(item.traced(written));
                outcomes.push(ItemOutcome::Inbox(InboxOutcome::New));
            }
            Err(DelegationError::Database(error)) => return Err(classify(error)),
            Err(DelegationError::Encoding(error)) => {
                return Err(ApplyFailure::Crashed(error.to_string()))
            }
            Err(refusal) => {
                savepoint.rollback().await.map_err(classify)?;
                outcomes.push(ItemOutcome::Refused(Refusal::new(
                    Code::DelegationRefused,
                    refusal.to_string(),
                )));
            }
        }
    }
    outbox::enqueue(tx, &events).await.map_err(classify)?;
    Ok(outcomes)
}
