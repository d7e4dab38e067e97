//! `sportello agent`: a contact-centre agent's terminal for phone call-backs
//! (*ricontatto telefonico*), and the reference client of the call-back
//! contract (docs/integrators.md, "Phone call-backs").
//!
//! One call at a time (prefetch 1) from `sportello.callbacks.<aoo>.<desk>`.
//! The call stays unacknowledged while the agent is on the phone; the outcome
//! is published as `appointment.callback_outcome` and only after the broker
//! confirmed it is the call acked. An agent who skips, goes silent past
//! `answer_within`, or disconnects hands the call back to the queue.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::FieldTable;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use uuid::Uuid;

use crate::broker::names::{callback_queue, INTAKE_EXCHANGE};
use crate::broker::publisher::{OutgoingMessage, PublishError, Publisher};
use crate::contract::appointments::{CallbackDue, CallbackOutcome, CallbackResult};
use crate::contract::{Channel, Envelope, Event, Principal};
use crate::domain::booking::CALLBACK_OUTCOME;
use crate::domain::cron::TIME_ZONE;

/// Where the agent works and how.
pub struct AgentSession<'a> {
    /// The contact centre's broker user.
    pub amqp_url: &'a str,
    pub office: &'a str,
    pub desk: &'a str,
    pub agent_id: &'a str,
    /// Longest wait for the agent's answer before the call goes back.
    pub answer_within: Duration,
    /// Stop after this many calls (`None`: until the input ends).
    pub calls: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

/// What the agent answered for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Outcome(CallbackResult),
    /// Put the call back for someone else.
    Skip,
    /// The input ended or went silent: put the call back and stop.
    Gone,
}

fn parse_answer(line: &str) -> Option<Answer> {
    match line.trim().to_lowercase().as_str() {
        "f" | "fatto" | "done" => Some(Answer::Outcome(CallbackResult::Done)),
        "n" | "nessuna risposta" | "no_answer" => Some(Answer::Outcome(CallbackResult::NoAnswer)),
        "r" | "riprogrammato" | "rescheduled" => Some(Answer::Outcome(CallbackResult::Rescheduled)),
        "s" | "salta" | "skip" => Some(Answer::Skip),
        _ => None,
    }
}

/// Works calls until the input ends (or `calls` were handled), reading the
/// agent's answers from `input` and writing to `output`.
pub async fn work(
    session: AgentSession<'_>,
    input: &mut (impl AsyncBufRead + Unpin),
    output: &mut (impl AsyncWrite + Unpin),
) -> Result<usize, AgentError> {
    let connection = crate::broker::connect(session.amqp_url, "sportello-agent").await?;
    let publisher = Publisher::open(&connection).await?;
    let channel = connection.create_channel().await?;
    channel.basic_qos(1, BasicQosOptions::default()).await?;
    let queue = callback_queue(session.office, session.desk);
    let mut calls = channel
        .basic_consume(
            queue.as_str().into(),
            format!("agent-{}", session.agent_id).as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    output
        .write_all(format!("In attesa di richiamate su {queue}\n").as_bytes())
        .await?;
    let mut handled = 0;
    while session.calls.is_none_or(|limit| handled < limit) {
        let Some(delivery) = calls.next().await else {
            break;
        };
        let delivery = delivery?;
        let call: Event<CallbackDue> = match serde_json::from_slice(&delivery.data) {
            Ok(call) => call,
            Err(error) => {
                // Not a call this tool understands: leave it to someone who
                // does rather than lose it.
                output
                    .write_all(
                        format!("messaggio non leggibile ({error}): rimesso in coda\n").as_bytes(),
                    )
                    .await?;
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: true })
                    .await?;
                break;
            }
        };
        output.write_all(describe(&call.payload).as_bytes()).await?;
        let answer = ask(input, output, session.answer_within).await?;
        let Answer::Outcome(result) = answer else {
            delivery
                .acker
                .reject(BasicRejectOptions { requeue: true })
                .await?;
            output.write_all(b"Richiamata rimessa in coda.\n").await?;
            if answer == Answer::Gone {
                break;
            }
            continue;
        };
        let note = read_line(input, session.answer_within)
            .await?
            .filter(|n| !n.trim().is_empty());
        let outcome = outcome_message(&session, &call, result, note)?;
        // The outcome first, confirmed; then the call may go.
        publisher.send(&outcome).await?.wait().await?;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        output.write_all(b"Esito registrato.\n").await?;
        handled += 1;
    }
    crate::broker::close_quietly(&connection, "agent done").await;
    Ok(handled)
}

fn describe(call: &CallbackDue) -> String {
    let at = call.starts_at.with_timezone(&TIME_ZONE);
    format!(
        "\nRichiamata n. {} - {} ({})\n  cittadino: {}\n  telefono:  {}\n  orario:    {}\n  note:      {}\n\
         Esito? [f]atto, [n]essuna risposta, [r]iprogrammato, [s]alta; poi una nota (facoltativa)\n",
        call.attempt,
        call.desk_name,
        call.office_aoo,
        call.citizen_tax_code,
        call.phone,
        at.format("%d/%m/%Y %H:%M"),
        call.notes,
    )
}

async fn ask(
    input: &mut (impl AsyncBufRead + Unpin),
    output: &mut (impl AsyncWrite + Unpin),
    within: Duration,
) -> Result<Answer, AgentError> {
    loop {
        let Some(line) = read_line(input, within).await? else {
            return Ok(Answer::Gone);
        };
        match parse_answer(&line) {
            Some(answer) => return Ok(answer),
            None => output.write_all(b"Risposte: f, n, r, s\n").await?,
        }
    }
}

/// One line, or `None` when the input ended or stayed silent `within`.
async fn read_line(
    input: &mut (impl AsyncBufRead + Unpin),
    within: Duration,
) -> Result<Option<String>, AgentError> {
    let mut line = String::new();
    match tokio::time::timeout(within, input.read_line(&mut line)).await {
        Ok(Ok(0)) | Err(_) => Ok(None),
        Ok(Ok(_)) => Ok(Some(line.trim_end().to_owned())),
        Ok(Err(error)) => Err(error.into()),
    }
}

fn outcome_message(
    session: &AgentSession<'_>,
    call: &Event<CallbackDue>,
    outcome: CallbackResult,
    note: Option<String>,
) -> Result<OutgoingMessage, AgentError> {
    let envelope = Envelope {
        message_id: Uuid::now_v7(),
        message_type: CALLBACK_OUTCOME.into(),
        schema_version: 1,
        channel: Channel::ContactCenter,
        occurred_at: Utc::now(),
        correlation_id: call.correlation_id.clone(),
        // One outcome per call: a resend after a lost confirm is the same.
        idempotency_key: format!("callback-{}", call.payload.call_id),
        principal: Principal::ContactCenterAgent {
            agent_id: session.agent_id.to_owned(),
            on_behalf_of: call.payload.citizen_tax_code.clone(),
            identified_by: None,
            pin_verification_id: None,
        },
        payload: CallbackOutcome {
            appointment_id: call.payload.appointment_id,
            call_id: call.payload.call_id,
            outcome,
            retry_after_minutes: None,
            note,
        },
    };
    let body = serde_json::to_vec(&envelope)
        .map_err(|e| AgentError::Terminal(std::io::Error::other(e)))?;
    Ok(OutgoingMessage {
        exchange: INTAKE_EXCHANGE.into(),
        routing_key: format!("{}.{CALLBACK_OUTCOME}", Channel::ContactCenter.as_str()),
        message_id: envelope.message_id,
        message_type: CALLBACK_OUTCOME.into(),
        correlation_id: envelope.correlation_id,
        body,
        headers: FieldTable::default(),
        mandatory: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_in_italian_or_english() {
        assert_eq!(
            parse_answer(" F "),
            Some(Answer::Outcome(CallbackResult::Done))
        );
        assert_eq!(
            parse_answer("nessuna risposta"),
            Some(Answer::Outcome(CallbackResult::NoAnswer))
        );
        assert_eq!(
            parse_answer("rescheduled"),
            Some(Answer::Outcome(CallbackResult::Rescheduled))
        );
        assert_eq!(parse_answer("s"), Some(Answer::Skip));
        assert_eq!(parse_answer("boh"), None);
    }
}
