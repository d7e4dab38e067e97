//! Messages of the citizen's side on their tickets (`request.message_added`):
//! who may write and what is kept is `tickets::add_citizen_message`; here the
//! inbox and the savepoint around each.

use sqlx::Connection;

use super::{classify, ApplyFailure, Item, ItemOutcome};
use crate::domain::intake::IntakeMessage;
use crate::domain::refusal::Code;
use crate::domain::submission::Refusal;
use crate::store::inbox::{self, InboxOutcome};
use crate::store::outbox;
use crate::tickets::TicketError;

/// Messages of the citizen's side on their tickets, in ticket order (two
/// consumers lock shared tickets in the same order). Each is tried in a
/// savepoint: a refused one leaves no inbox row, so a corrected resend works.
pub(super) async fn add_messages(
    tx: &mut sqlx::PgConnection,
    group: &[&Item<'_>],
) -> Result<Vec<ItemOutcome>, ApplyFailure> {
    let mut order = Vec::with_capacity(group.len());
    for (position, item) in group.iter().enumerate() {
        match &item.admitted.message {
            IntakeMessage::MessageAdded(message) => order.push((position, message)),
            _ => return Err(ApplyFailure::Crashed("not a message on a ticket".into())),
        }
    }
    order.sort_by_key(|(_, message)| message.payload.ticket_id);
    let mut outcomes: Vec<Option<ItemOutcome>> = group.iter().map(|_| None).collect();
    let mut events = Vec::new();
    for (position, message) in order {
        let mut savepoint = tx.begin().await.map_err(classify)?;
        let identity = &group[position].admitted.idempotency;
        let recorded = inbox::record(&mut savepoint, &[identity])
            .await
            .map_err(classify)?
            .pop()
            .ok_or_else(|| ApplyFailure::Crashed("inbox returned no outcome".into()))?;
        if recorded != InboxOutcome::New {
            savepoint.commit().await.map_err(classify)?;
            outcomes[position] = Some(ItemOutcome::Inbox(recorded));
            continue;
        }
        let files = group[position].attachments;
        match crate::tickets::add_citizen_message(&mut savepoint, message, files).await {
            Ok(Some(written)) => {
                savepoint.commit().await.map_err(classify)?;
                events.extend(group[position].traced(written));
                outcomes[position] = Some(ItemOutcome::Inbox(InboxOutcome::New));
            }
            // Kept before, and its inbox row purged since.
            Ok(None) => {
                savepoint.commit().await.map_err(classify)?;
                outcomes[position] = Some(ItemOutcome::Inbox(InboxOutcome::Duplicate));
            }
            Err(TicketError::Database(error)) => return Err(classify(error)),
            Err(TicketError::Encoding(error)) => {
                return Err(ApplyFailure::Crashed(error.to_string()))
            }
            Err(refusal) => {
                savepoint.rollback().await.map_err(classify)?;
                outcomes[position] = Some(ItemOutcome::Refused(Refusal::new(
                    Code::MessageRefused,
                    refusal.to_string(),
                )));
            }
        }
    }
    outbox::enqueue(tx, &events).await.map_err(classify)?;
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| ApplyFailure::Crashed("a message without outcome".into()))
        })
        .collect()
}
