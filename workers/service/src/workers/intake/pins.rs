//! PINs requested at the contact centre (`pin.requested`): each in a
//! savepoint with its inbox row, issued as over HTTP (`pin::issue`). A tax
//! code that already has a PIN is refused (dead-lettered with the reason)
//! and leaves no inbox row; a redelivery finds its inbox row and issues
//! nothing again.

use sqlx::Connection;
use tracing::Instrument;

use super::{classify, ApplyFailure, Item, ItemOutcome};
use crate::domain::intake::IntakeMessage;
use crate::domain::refusal::Code;
use crate::domain::submission::Refusal;
use crate::pin::crypto::PinKeys;
use crate::pin::PinError;
use crate::store::inbox::{self, InboxOutcome};

pub(super) async fn apply(
    tx: &mut sqlx::PgConnection,
    keys: &PinKeys,
    group: &[&Item<'_>],
) -> Result<Vec<ItemOutcome>, ApplyFailure> {
    let mut outcomes = Vec::with_capacity(group.len());
    for item in group {
        let IntakeMessage::PinRequested(admitted) = &item.admitted.message else {
            return Err(ApplyFailure::Crashed("not a PIN request".into()));
        };
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
        let envelope = &admitted.envelope;
        match crate::pin::issue(
            &mut savepoint,
            keys,
            &admitted.request,
            envelope.channel,
            &envelope.correlation_id,
        )
        // Its events (written inside) continue the request's trace.
        .instrument(item.span.clone())
        .await
        {
            Ok(_) => {
                savepoint.commit().await.map_err(classify)?;
                outcomes.push(ItemOutcome::Inbox(InboxOutcome::New));
            }
            Err(PinError::Database(error)) => return Err(classify(error)),
            Err(refusal @ (PinError::AlreadyIssued | PinError::Invalid(_))) => {
                savepoint.rollback().await.map_err(classify)?;
                outcomes.push(ItemOutcome::Refused(Refusal::new(
                    Code::PinRequestRefused,
                    refusal.to_string(),
                )));
            }
            Err(other) => return Err(ApplyFailure::Crashed(other.to_string())),
        }
    }
    Ok(outcomes)
}
