//! The fate of a message a channel published (`GET /submissions`): the
//! answer to "did my request arrive?" that seed 004's citizens looked for
//! by pressing F5. Read from what the intake writes anyway (the inbox, the
//! tickets and applications) and from what it keeps for this (resends and
//! refusals, rare): nothing is added to the path of a first delivery.

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::contract::schemas::SCHEMA_FILES;
use crate::contract::Principal;
use crate::domain::refusal::Code;
use crate::domain::submission::{
    inbox_scope, may_read, submitter_of_scope, Fate, Outcome, Parties, Refusal,
};
use crate::store::submissions as store;

#[derive(Debug, thiserror::Error)]
pub enum SubmissionError {
    /// Known, but not the caller's: read as unknown would be a lie, so 404.
    #[error("no submission of yours has this id or key")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// What is asked about: one of the caller's messages.
#[derive(Debug, Clone)]
pub enum Asked {
    MessageId(Uuid),
    /// The caller's own idempotency key for a message type (keys are
    /// scoped per publisher and type, as the inbox scopes them).
    IdempotencyKey {
        message_type: String,
        key: String,
    },
}

/// The answer, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FateView {
    /// Absent when asked by a key nothing was received under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_id: Option<Uuid>,
    /// `queued`, `applied`, `duplicate_of` or `refused`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The message this one repeated (state `duplicate_of`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<RefusalView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RefusalView {
    /// Stable: what a channel's program decides on.
    pub code: &'static str,
    /// Plain Italian, for the citizen.
    pub message: &'static str,
    /// The English reason of the dead letter, for the channel's developers.
    pub reason: String,
}

impl FateView {
    fn of(message_id: Option<Uuid>, fate: Fate) -> FateView {
        let mut view = FateView {
            message_id,
            state: "queued",
            ticket_id: None,
            application_id: None,
            signature: None,
            duplicate_of: None,
            refusal: None,
        };
        match fate {
            Fate::Queued => {}
            Fate::Applied(Outcome {
                ticket_id,
                application_id,
                signature,
            }) => {
                view.state = "applied";
                view.ticket_id = ticket_id;
                view.application_id = application_id;
                view.signature = signature;
            }
            Fate::DuplicateOf(original) => {
                view.state = "duplicate_of";
                view.duplicate_of = Some(original);
            }
            Fate::Refused(Refusal { code, reason }) => {
                view.state = "refused";
                view.refusal = Some(RefusalView {
                    code: code.as_str(),
                    message: code.italian(),
                    reason,
                });
            }
        }
        view
    }
}

/// The fate of the caller's message, or of a message about the calling
/// citizen. Applied wins over refused: a refusal replayed and applied since
/// is applied.
pub async fn fate(
    pool: &PgPool,
    caller: &Principal,
    asked: &Asked,
) -> Result<FateView, SubmissionError> {
    let mut conn = pool.acquire().await?;
    let message_id = match asked {
        Asked::MessageId(id) => *id,
        Asked::IdempotencyKey { message_type, key } => {
            if key.is_empty() || key.len() > 200 {
                return Err(SubmissionError::Invalid(
                    "idempotency_key must be 1 to 200 characters".into(),
                ));
            }
            if !SCHEMA_FILES.iter().any(|f| f.message_type == message_type) {
                return Err(SubmissionError::Invalid(format!(
                    "unknown message type `{message_type}` (see schemas/)"
                )));
            }
            let submitter = caller.actor_key();
            let scope = inbox_scope(message_type, &submitter);
            match crate::store::inbox::message_under_key(&mut conn, &scope, key).await? {
                Some(id) => id,
                None => {
                    // Never applied under this key: refused, or not yet seen.
                    let refused =
                        store::refused_under_key(&mut conn, &submitter, message_type, key).await?;
                    return Ok(match refused {
                        Some(letter) => FateView::of(Some(letter.message_id), refusal_of(&letter)),
                        None => FateView::of(None, Fate::Queued),
                    });
                }
            }
        }
    };

    if let Some(applied) = store::applied(&mut conn, message_id).await? {
        let parties = Parties {
            submitter: submitter_of(&applied),
            subject: applied.subject_tax_code.clone(),
        };
        authorize(caller, &parties)?;
        let outcome = Outcome {
            ticket_id: applied.ticket_id,
            application_id: applied.application_id,
            signature: applied.signature,
        };
        return Ok(FateView::of(Some(message_id), Fate::Applied(outcome)));
    }
    if let Some(original) = store::resend_of(&mut conn, message_id).await? {
        // The resend had the first one's content and key: the same parties.
        if let Some(first) = store::applied(&mut conn, original).await? {
            let parties = Parties {
                submitter: submitter_of(&first),
                subject: first.subject_tax_code,
            };
            authorize(caller, &parties)?;
            return Ok(FateView::of(Some(message_id), Fate::DuplicateOf(original)));
        }
    }
    if let Some(letter) = store::refused(&mut conn, message_id).await? {
        let parties = Parties {
            submitter: letter.submitter.clone(),
            subject: letter.subject_tax_code.clone(),
        };
        authorize(caller, &parties)?;
        return Ok(FateView::of(Some(message_id), refusal_of(&letter)));
    }
    Ok(FateView::of(Some(message_id), Fate::Queued))
}

fn authorize(caller: &Principal, parties: &Parties) -> Result<(), SubmissionError> {
    if may_read(caller, parties) {
        Ok(())
    } else {
        Err(SubmissionError::NotFound)
    }
}

fn refusal_of(letter: &store::Refused) -> Fate {
    Fate::Refused(Refusal::new(
        Code::parse(&letter.code).unwrap_or(Code::Unspecified),
        letter.reason.clone(),
    ))
}

/// The publisher of an applied message: the inbox's scope names it, or,
/// once the inbox forgot it, the ticket its request opened.
fn submitter_of(applied: &store::Applied) -> String {
    let from_scope = applied
        .scope
        .as_deref()
        .and_then(submitter_of_scope)
        .map(str::to_owned);
    from_scope
        .or_else(|| {
            let submitted_by = applied.ticket_submitted_by.clone()?;
            let principal: Principal = serde_json::from_value(submitted_by).ok()?;
            Some(principal.actor_key())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_shows_its_code_its_italian_sentence_and_its_reason() {
        let view = FateView::of(
            Some(Uuid::nil()),
            Fate::Refused(Refusal::new(Code::NoDelegation, "no delegation for X")),
        );
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["state"], "refused");
        assert_eq!(json["refusal"]["code"], "no_delegation");
        assert!(json["refusal"]["message"]
            .as_str()
            .unwrap()
            .contains("delega attiva"));
        assert_eq!(json["refusal"]["reason"], "no delegation for X");
        assert!(json.get("ticket_id").is_none());
    }
}
