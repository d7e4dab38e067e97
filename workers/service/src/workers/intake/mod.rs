//! Intake worker (one per consumer): turns channel messages into state.
//!
//! Per batch of deliveries: admit each (schema, signature rules), apply the
//! admitted ones in one PostgreSQL transaction (inbox + effects + outbox), and
//! only after the commit ack them. Rejected messages are dead-lettered with
//! their reason; nothing is acked before its fate is durable somewhere.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::broker::dead_letter;
use crate::broker::names::INTAKE_REQUESTS_QUEUE;
use crate::broker::publisher::Publisher;
use crate::broker::trace::{self, TraceContext};
use crate::broker::users::BrokerUser;
use crate::config::Settings;
use crate::documents::storage::{BlobStore, LocalBlobStore};
use crate::documents::StoredFile;
use crate::domain::intake::{admit, check_attachments, Admitted, CheckedAttachment, IntakeMessage};
use crate::domain::refusal::Code;
use crate::domain::submission::{Refusal, Submitted};
use crate::pin::crypto::PinKeys;
use crate::runtime::{Worker, WorkerError};
use crate::store;
use crate::store::inbox::InboxOutcome;
use crate::store::outbox::OutboxMessage;
use crate::store::submissions::NewRefusal;

mod applications;
mod delegations;
mod messages;
mod pins;
mod requests;
mod spans;

use spans::{delivery_ids, message_span};

/// How long a batch waits for more messages after its first one.
const BATCH_LINGER: Duration = Duration::from_millis(5);

pub struct IntakeWorker {
    /// Seals the first half of a PIN requested at the contact centre.
    pin_keys: PinKeys,
    settings: Arc<Settings>,
    blobs: Arc<dyn BlobStore>,
}

impl IntakeWorker {
    pub fn new(settings: Arc<Settings>) -> Self {
        let blobs = Arc::new(LocalBlobStore::new(&settings.document_store_dir));
        let pin_keys = PinKeys::new(&settings.pin_secret);
        Self {
            pin_keys,
            settings,
            blobs,
        }
    }
}

impl Worker for IntakeWorker {
    fn name(&self) -> String {
        "intake".into()
    }

    fn run(
        self: Arc<Self>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, Result<(), WorkerError>> {
        let span = tracing::info_span!("intake", worker = %self.name());
        Box::pin(self.consume(shutdown).instrument(span))
    }
}

/// What happens to one delivery once its batch is settled.
#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// Applied now: ack.
    Applied,
    /// Applied before (redelivery, resend): ack.
    Duplicate,
    DeadLetter(Refusal),
    /// Handler failed in a way a retry might fix; the broker redelivers it.
    Requeue,
}

impl Verdict {
    /// The `outcome` label of `sportello_intake_messages_total`.
    fn outcome(&self) -> &'static str {
        match self {
            Verdict::Applied => "applied",
            Verdict::Duplicate => "duplicate",
            Verdict::DeadLetter(_) => "dead_lettered",
            Verdict::Requeue => "requeued",
        }
    }
}

/// Why applying a group of messages failed.
enum ApplyFailure {
    /// Database or network: retry the same group later.
    Transient(String),
    /// No connection to the database: retry later, and say why.
    Unreachable(sqlx::Error),
    /// The data itself was refused (constraint, invalid value): never retry.
    Refused(String),
    /// Bug or unexpected error, including a panic: retry a bounded number of times.
    Crashed(String),
}

struct Item<'a> {
    index: usize,
    admitted: &'a Admitted,
    attachments: &'a [StoredFile],
    previous_deliveries: u64,
    /// This message's span: it continues the trace the message carries.
    span: &'a tracing::Span,
    /// That span's context, which the events it causes carry.
    trace: Option<TraceContext>,
}

impl Item<'_> {
    /// `events`, caused by this message, continuing its trace.
    fn traced(&self, events: Vec<OutboxMessage>) -> impl Iterator<Item = OutboxMessage> + '_ {
        events.into_iter().map(|mut event| {
            event.trace = self.trace.clone();
            event
        })
    }
}

impl IntakeWorker {
    /// One connection, `intake_consumers` channels consuming side by side.
    /// Channels on one connection share its I/O thread; acks stay per channel.
    async fn consume(self: Arc<Self>, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let (connection, publisher) = super::connect_publisher(
            &self.settings.broker_addresses_for(BrokerUser::Intake),
            &self.name(),
        )
        .await?;
        // A pool of this run's own: its connections live on this worker's thread.
        let pool = store::connect_lazy(
            &self.settings.database_url,
            self.settings.database_pool_size,
        )?;
        let consumers = (0..self.settings.intake_consumers.max(1))
            .map(|_| self.consume_on_channel(&connection, &publisher, &pool, &shutdown));
        let outcome = futures::future::try_join_all(consumers).await;
        pool.close().await;
        outcome?;
        connection.close(200, "shutdown".into()).await?;
        Ok(())
    }

    async fn consume_on_channel(
        &self,
        connection: &lapin::Connection,
        publisher: &Publisher,
        pool: &PgPool,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.settings.intake_prefetch, BasicQosOptions::default())
            .await?;
        let tag = format!("{}-{}", self.name(), uuid::Uuid::new_v4());
        let mut consumer = channel
            .basic_consume(
                INTAKE_REQUESTS_QUEUE.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = INTAKE_REQUESTS_QUEUE, consumer = %tag, "consuming");

        while let Some(batch) = super::batch::gather(
            &mut consumer,
            self.settings.intake_batch_size,
            BATCH_LINGER,
            shutdown,
        )
        .await?
        {
            self.handle_batch(publisher, pool, batch, shutdown).await?;
        }

        // Graceful stop: no new deliveries; unconsumed prefetched ones go back
        // to the queue when the channel closes.
        channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await?;
        channel.close(200, "shutdown".into()).await?;
        Ok(())
    }

    /// One span per message, continuing the trace it carries (or starting
    /// one), and one for the batch, linked to each: the transaction is the
    /// batch's, each message's effects are its own.
    async fn handle_batch(
        &self,
        publisher: &Publisher,
        pool: &PgPool,
        batch: Vec<Delivery>,
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let spans: Vec<tracing::Span> = batch.iter().map(message_span).collect();
        let traces: Vec<Option<TraceContext>> = spans.iter().map(TraceContext::of).collect();
        let batch_span = trace::batch_span(INTAKE_REQUESTS_QUEUE, &spans);
        self.handle_traced_batch(publisher, pool, &batch, &spans, &traces, shutdown)
            .instrument(batch_span)
            .await
    }

    async fn handle_traced_batch(
        &self,
        publisher: &Publisher,
        pool: &PgPool,
        batch: &[Delivery],
        spans: &[tracing::Span],
        traces: &[Option<TraceContext>],
        shutdown: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let admitting = std::time::Instant::now();
        // Each delivery's verdict is set below: refused at admission, not
        // stored, or settled with its group.
        let mut verdicts = vec![Verdict::Requeue; batch.len()];
        let mut admitted = Vec::with_capacity(batch.len());
        for (index, delivery) in batch.iter().enumerate() {
            let admission =
                admit(delivery.routing_key.as_str(), &delivery.data).and_then(|message| {
                    let attachments = match &message.message {
                        IntakeMessage::RequestSubmitted(request) => check_attachments(
                            &request.payload.attachments,
                            self.settings.document_max_bytes,
                        )?,
                        IntakeMessage::MessageAdded(message) => check_attachments(
                            &message.payload.attachments,
                            self.settings.document_max_bytes,
                        )?,
                        IntakeMessage::DelegationGranted(_)
                        | IntakeMessage::DelegationRevoked(_)
                        | IntakeMessage::ApplicationSubmitted(_)
                        | IntakeMessage::PinRequested(_) => Vec::new(),
                    };
                    Ok((message, attachments))
                });
            match admission {
                Ok((message, attachments)) => match self.store_attachments(attachments).await {
                    Ok(stored) => admitted.push((index, message, stored)),
                    Err(error) => {
                        tracing::warn!(%error, "could not store attachments; requeueing");
                        verdicts[index] = Verdict::Requeue;
                    }
                },
                Err(rejection) => {
                    let (message_id, correlation_id) = delivery_ids(delivery);
                    tracing::warn!(
                        routing_key = %delivery.routing_key,
                        %message_id,
                        %correlation_id,
                        %rejection,
                        "message rejected"
                    );
                    let code = rejection.refusal_code();
                    verdicts[index] =
                        Verdict::DeadLetter(Refusal::new(code, format!("rejected: {rejection}")));
                }
            }
        }
        let items: Vec<Item> = admitted
            .iter()
            .map(|(index, admitted, attachments)| Item {
                index: *index,
                admitted,
                attachments,
                previous_deliveries: dead_letter::previous_deliveries(&batch[*index]),
                span: &spans[*index],
                trace: traces[*index].clone(),
            })
            .collect();
        let admit_ms = admitting.elapsed().as_millis() as u64;
        let applying = std::time::Instant::now();
        for (index, verdict) in self.settle(pool, items, shutdown).await? {
            verdicts[index] = verdict;
        }
        let metrics = crate::metrics::metrics();
        metrics
            .intake_batch_seconds
            .observe(applying.elapsed().as_secs_f64());
        for verdict in &verdicts {
            metrics
                .intake_messages
                .get_or_create(&crate::metrics::OutcomeLabel {
                    outcome: verdict.outcome(),
                })
                .inc();
        }

        keep_refusals(pool, batch, &verdicts).await?;
        let mut confirms = Vec::new();
        for (delivery, verdict) in batch.iter().zip(&verdicts) {
            if let Verdict::DeadLetter(refusal) = verdict {
                let copy = dead_letter::dead_letter_copy(
                    delivery,
                    INTAKE_REQUESTS_QUEUE,
                    Some(refusal.code.as_str()),
                    &refusal.reason,
                );
                confirms.push(publisher.send(&copy).await?);
            }
        }
        for confirm in confirms {
            confirm.wait().await?;
        }
        // One ack covers the whole batch: everything up to its last tag is
        // either committed, or dead-lettered with a confirm, or nacked.
        let requeue: Vec<bool> = verdicts.iter().map(|v| *v == Verdict::Requeue).collect();
        super::batch::acknowledge(batch, &requeue).await?;
        tracing::debug!(
            size = batch.len(),
            admit_ms,
            apply_ms = applying.elapsed().as_millis() as u64,
            "batch settled"
        );
        Ok(())
    }

    /// Attachment bytes go to the blob store before the transaction: content
    /// addressed, so a retry or a redelivery writes the same file again.
    async fn store_attachments(
        &self,
        attachments: Vec<CheckedAttachment>,
    ) -> std::io::Result<Vec<StoredFile>> {
        let mut stored = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let size = attachment.bytes.len();
            let sha256 = self.blobs.put(attachment.bytes).await?;
            stored.push(StoredFile {
                file_name: attachment.file_name,
                media_type: attachment.media_type,
                sha256,
                size,
            });
        }
        Ok(stored)
    }

    /// Applies the admitted messages, isolating the ones that fail.
    async fn settle(
        &self,
        pool: &PgPool,
        items: Vec<Item<'_>>,
        shutdown: &CancellationToken,
    ) -> Result<Vec<(usize, Verdict)>, WorkerError> {
        let mut verdicts = Vec::with_capacity(items.len());
        let mut groups = vec![items];
        while let Some(group) = groups.pop() {
            if group.is_empty() {
                continue;
            }
            let mut backoff = Duration::from_millis(100);
            let mut refused_before = false;
            loop {
                let attempt = AssertUnwindSafe(apply(pool, &self.pin_keys, &group))
                    .catch_unwind()
                    .await;
                let failure = match attempt {
                    Ok(Ok(outcomes)) => {
                        for (item, outcome) in group.iter().zip(outcomes) {
                            verdicts.push((item.index, verdict_for(item, outcome)));
                        }
                        break;
                    }
                    Ok(Err(failure)) => failure,
                    Err(panic) => ApplyFailure::Crashed(panic_message(&panic)),
                };
                match failure {
                    ApplyFailure::Unreachable(error) => {
                        let error = store::outage::explain(pool, &error).await;
                        hold_batch(&error, &mut backoff, shutdown).await?;
                    }
                    ApplyFailure::Transient(error) => {
                        hold_batch(&error, &mut backoff, shutdown).await?;
                    }
                    // Find the culprit: retry each message on its own.
                    ApplyFailure::Refused(_) | ApplyFailure::Crashed(_) if group.len() > 1 => {
                        groups.extend(group.into_iter().map(|item| vec![item]));
                        break;
                    }
                    // A key another consumer's transaction took first (the
                    // same application in two batches at once) reads as a
                    // refusal; once that one committed, a second try finds
                    // its row. A fault of the data is refused again.
                    ApplyFailure::Refused(reason) if !refused_before => {
                        tracing::debug!(message_id = %group[0].admitted.idempotency.message_id, %reason, "refused by the database; trying once more");
                        refused_before = true;
                    }
                    ApplyFailure::Refused(reason) => {
                        verdicts.push((
                            group[0].index,
                            Verdict::DeadLetter(Refusal::new(
                                Code::RefusedByDatabase,
                                format!("refused by the database: {reason}"),
                            )),
                        ));
                        break;
                    }
                    ApplyFailure::Crashed(reason) => {
                        let item = &group[0];
                        let deliveries = item.previous_deliveries + 1;
                        let verdict = if deliveries >= self.settings.handler_max_attempts {
                            Verdict::DeadLetter(Refusal::new(
                                Code::ProcessingFailed,
                                format!("handler failed {deliveries} times, last: {reason}"),
                            ))
                        } else {
                            tracing::warn!(message_id = %item.admitted.idempotency.message_id, %reason, deliveries, "handler failed; requeueing");
                            Verdict::Requeue
                        };
                        verdicts.push((item.index, verdict));
                        break;
                    }
                }
            }
        }
        Ok(verdicts)
    }
}

/// Keeps each refusal whose envelope can be read, for its publisher and the
/// citizen it concerns (`GET /submissions`), before its dead letter is sent:
/// a crash in between redelivers the message, refused and kept again.
async fn keep_refusals(
    pool: &PgPool,
    batch: &[Delivery],
    verdicts: &[Verdict],
) -> Result<(), WorkerError> {
    let refused: Vec<(Submitted, &Refusal)> = batch
        .iter()
        .zip(verdicts)
        .filter_map(|(delivery, verdict)| match verdict {
            Verdict::DeadLetter(refusal) => {
                Submitted::of_body(&delivery.data).map(|submitted| (submitted, refusal))
            }
            _ => None,
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewRefusal> = refused
        .iter()
        .map(|(submitted, refusal)| NewRefusal {
            message_id: submitted.message_id,
            submitter: &submitted.parties.submitter,
            message_type: &submitted.message_type,
            idempotency_key: &submitted.idempotency_key,
            subject_tax_code: submitted.parties.subject.as_deref(),
            code: refusal.code.as_str(),
            reason: &refusal.reason,
        })
        .collect();
    let mut conn = pool.acquire().await?;
    store::submissions::record_refusals(&mut conn, &rows).await?;
    Ok(())
}

/// Waits `backoff` (doubled for next time, up to 10 s) before the batch is
/// tried again; stopping meanwhile leaves its messages unacked.
async fn hold_batch(
    error: &str,
    backoff: &mut Duration,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    tracing::warn!(%error, retry_in = ?backoff, "database unavailable; holding batch");
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = shutdown.cancelled() => {
            return Err(WorkerError::Other(
                "stopped while the database was unavailable; unacked messages return to the queue".into(),
            ));
        }
    }
    *backoff = (*backoff * 2).min(Duration::from_secs(10));
    Ok(())
}

fn verdict_for(item: &Item, outcome: ItemOutcome) -> Verdict {
    match outcome {
        ItemOutcome::Inbox(InboxOutcome::New) => Verdict::Applied,
        ItemOutcome::Inbox(InboxOutcome::Duplicate) => Verdict::Duplicate,
        ItemOutcome::Refused(refusal) => Verdict::DeadLetter(Refusal::new(
            refusal.code,
            format!("rejected: {}", refusal.reason),
        )),
        ItemOutcome::Inbox(reused @ (InboxOutcome::KeyReused | InboxOutcome::MessageIdReused)) => {
            let code = match reused {
                InboxOutcome::MessageIdReused => Code::MessageIdReused,
                _ => Code::IdempotencyKeyReused,
            };
            Verdict::DeadLetter(Refusal::new(
                code,
                reused
                    .refusal(&item.admitted.idempotency)
                    .unwrap_or_else(|| "refused by the inbox".into()),
            ))
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| format!("panic: {s}"))
        .or_else(|| {
            panic
                .downcast_ref::<String>()
                .map(|s| format!("panic: {s}"))
        })
        .unwrap_or_else(|| "panic".into())
}

/// What became of one message of a group.
enum ItemOutcome {
    Inbox(InboxOutcome),
    /// Refused on what the database knows (e.g. no delegation): dead-letter
    /// it; no inbox row is written, so a corrected resend is processed.
    Refused(Refusal),
}

/// One transaction for the group: delegations are granted or revoked, new
/// requests open tickets, messages are added to theirs.
async fn apply(
    pool: &PgPool,
    pin_keys: &PinKeys,
    group: &[Item<'_>],
) -> Result<Vec<ItemOutcome>, ApplyFailure> {
    let mut tx = pool.begin().await.map_err(classify)?;
    let (mut requests, mut messages, mut grants_and_revocations, mut pin_requests): (
        Positioned,
        Positioned,
        Positioned,
        Positioned,
    ) = Default::default();
    for (position, item) in group.iter().enumerate() {
        match item.admitted.message {
            IntakeMessage::RequestSubmitted(_) | IntakeMessage::ApplicationSubmitted(_) => {
                requests.push((position, item))
            }
            IntakeMessage::MessageAdded(_) => messages.push((position, item)),
            IntakeMessage::DelegationGranted(_) | IntakeMessage::DelegationRevoked(_) => {
                grants_and_revocations.push((position, item))
            }
            IntakeMessage::PinRequested(_) => pin_requests.push((position, item)),
        }
    }
    let pin_items: Vec<&Item> = pin_requests.iter().map(|(_, item)| *item).collect();
    let request_items: Vec<&Item> = requests.iter().map(|(_, item)| *item).collect();
    let message_items: Vec<&Item> = messages.iter().map(|(_, item)| *item).collect();
    let delegation_items: Vec<&Item> = grants_and_revocations
        .iter()
        .map(|(_, item)| *item)
        .collect();
    // Delegations first, in publishing order: a request behind its grant in
    // the same batch finds it. Then messages: opening tickets ends by taking
    // the offices' counter locks, held to the commit. (A message cannot be
    // about a ticket of this batch: ticket ids are made here and known only
    // after the commit.)
    let changed = delegations::apply(&mut tx, &delegation_items).await?;
    let added = messages::add_messages(&mut tx, &message_items).await?;
    let issued = pins::apply(&mut tx, pin_keys, &pin_items).await?;
    let opened = requests::open_tickets(&mut tx, &request_items).await?;
    tx.commit().await.map_err(classify)?;

    let mut outcomes: Vec<Option<ItemOutcome>> = group.iter().map(|_| None).collect();
    let placed = requests
        .iter()
        .zip(opened)
        .chain(messages.iter().zip(added))
        .chain(grants_and_revocations.iter().zip(changed))
        .chain(pin_requests.iter().zip(issued));
    for ((position, _), outcome) in placed {
        outcomes[*position] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.ok_or_else(|| ApplyFailure::Crashed("an item without outcome".into()))
        })
        .collect()
}

/// Items of a group with their position in it.
type Positioned<'g, 'a> = Vec<(usize, &'g Item<'a>)>;

fn classify(error: sqlx::Error) -> ApplyFailure {
    if store::outage::is_connection_failure(&error) {
        return ApplyFailure::Unreachable(error);
    }
    if store::is_transient(&error) {
        return ApplyFailure::Transient(error.to_string());
    }
    match &error {
        // 22: data exception; 23: integrity constraint violation.
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
        {
            ApplyFailure::Refused(db.message().to_owned())
        }
        _ => ApplyFailure::Crashed(error.to_string()),
    }
}
