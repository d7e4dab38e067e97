//! The phone call-backs staff hold on the "Richiamate" page: a staff
//! session takes ONE call from its office desk's queue
//! (`sportello.callbacks.<aoo>.<desk>`) with `basic_get` and no auto-ack,
//! on a channel of its own, and holds the delivery here, in memory, until
//! the operator records the outcome (acked after the commit) or the call
//! goes back to the queue: the answer did not come within `answer_within`,
//! the operator signed out, or the process died (its connection closes and
//! the broker hands every unacknowledged call back).
//!
//! The API process opens its own AMQP connection (`AMQP_URL`) at the first
//! call taken or counted, and again if it was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicRejectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Acker;
use lapin::{Channel, Connection};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::contract::appointments::CallbackDue;
use crate::contract::Event;

/// A held call, as the page shows it.
#[derive(Debug, Clone)]
pub struct HeldCall {
    pub call: Event<CallbackDue>,
    /// When it goes back to the queue unless answered.
    pub expires_at: DateTime<Utc>,
}

/// What becomes of a held call's delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Its outcome is committed: the call leaves the queue.
    Ack,
    /// Back to the queue for someone else.
    Requeue,
    /// Not a call for this office or not readable: to the dead letters.
    DeadLetter,
}

/// What taking a call found.
pub enum Taken {
    Call(Box<HeldCall>),
    /// The queue has no call waiting.
    Empty,
    /// The session already holds a call (or is taking one): that one first.
    AlreadyHolding,
    /// A call whose message cannot be read: dead-lettered.
    Unreadable,
}

/// A delivery a session holds, with the channel it came on.
pub struct Delivery {
    pub held: HeldCall,
    channel: Channel,
    acker: Acker,
}

impl Delivery {
    /// Acks, requeues or dead-letters the call, then closes its channel
    /// (which would hand it back anyway).
    pub async fn settle(self, how: Settle) -> Result<(), lapin::Error> {
        settle(&self.channel, &self.acker, how).await
    }
}

async fn settle(channel: &Channel, acker: &Acker, how: Settle) -> Result<(), lapin::Error> {
    let settled = match how {
        Settle::Ack => acker.ack(BasicAckOptions::default()).await,
        Settle::Requeue => acker.reject(BasicRejectOptions { requeue: true }).await,
        Settle::DeadLetter => acker.reject(BasicRejectOptions { requeue: false }).await,
    };
    let _ = channel.close(200, "call settled".into()).await;
    settled.map(|_| ())
}

enum Slot {
    /// A `basic_get` is under way for this session.
    Taking,
    Holding(Box<Delivery>),
}

/// The calls held by the staff sessions of this process, keyed by the
/// SHA-256 of the session key (the key itself is the browser's secret).
pub struct HeldCalls {
    amqp_url: String,
    answer_within: Duration,
    connection: tokio::sync::Mutex<Option<Connection>>,
    slots: Mutex<HashMap<String, Slot>>,
}

fn session_id(session_key: &str) -> String {
    hex::encode(Sha256::digest(session_key.as_bytes()))
}

impl HeldCalls {
    pub fn new(amqp_url: &str, answer_within: Duration) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            answer_within,
            connection: tokio::sync::Mutex::new(None),
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding the map leaves plain data: keep using it.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new channel on this process's connection, (re)connecting if needed.
    async fn channel(&self) -> Result<Channel, lapin::Error> {
        let mut connection = self.connection.lock().await;
        if let Some(open) = connection.as_ref().filter(|c| c.status().connected()) {
            return open.create_channel().await;
        }
        let opened = crate::broker::connect(&self.amqp_url, "sportello-api-richiamate").await?;
        let channel = opened.create_channel().await?;
        *connection = Some(opened);
        Ok(channel)
    }

    /// Calls waiting (ready, not held by anyone) on `queue`.
    pub async fn waiting(&self, queue: &str) -> Result<u32, lapin::Error> {
        let channel = self.channel().await?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        if channel.status().connected() {
            let _ = channel.close(200, "counted".into()).await;
        }
        Ok(declared?.message_count())
    }

    /// The call the session holds, if any.
    pub fn current(&self, session_key: &str) -> Option<HeldCall> {
        match self.slots().get(&session_id(session_key)) {
            Some(Slot::Holding(delivery)) => Some(delivery.held.clone()),
            _ => None,
        }
    }

    /// Takes one call from `queue` for the session, which holds it until
    /// `settle`d, given back, or `answer_within` passes.
    pub async fn take(
        self: &Arc<Self>,
        session_key: &str,
        queue: &str,
    ) -> Result<Taken, lapin::Error> {
        let id = session_id(session_key);
        {
            let mut slots = self.slots();
            if slots.contains_key(&id) {
                return Ok(Taken::AlreadyHolding);
            }
            slots.insert(id.clone(), Slot::Taking);
        }
        let got = async {
            let channel = self.channel().await?;
            let message = channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await?;
            Ok::<_, lapin::Error>((channel, message))
        }
        .await;
        let (channel, message) = match got {
            Ok(got) => got,
            Err(error) => {
                self.slots().remove(&id);
                return Err(error);
            }
        };
        let Some(message) = message else {
            self.slots().remove(&id);
            let _ = channel.close(200, "no call".into()).await;
            return Ok(Taken::Empty);
        };
        let acker = message.delivery.acker.clone();
        let Ok(call) = serde_json::from_slice::<Event<CallbackDue>>(&message.delivery.data) else {
            self.slots().remove(&id);
            tracing::error!(queue, "unreadable call-back message: dead-lettered");
            settle(&channel, &acker, Settle::DeadLetter).await?;
            return Ok(Taken::Unreadable);
        };
        let held = HeldCall {
            call,
            expires_at: Utc::now()
                + chrono::Duration::from_std(self.answer_within)
                    .unwrap_or(chrono::Duration::minutes(15)),
        };
        let delivery = Delivery {
            held: held.clone(),
            channel,
            acker,
        };
        let signed_out = {
            let mut slots = self.slots();
            match slots.get(&id) {
                // Signed out while the call was being taken: it goes back.
                None => Some(delivery),
                Some(_) => {
                    slots.insert(id.clone(), Slot::Holding(Box::new(delivery)));
                    None
                }
            }
        };
        if let Some(delivery) = signed_out {
            delivery.settle(Settle::Requeue).await?;
            return Ok(Taken::Empty);
        }
        let calls = Arc::clone(self);
        let call_id = held.call.payload.call_id;
        let within = self.answer_within;
        tokio::spawn(async move {
            tokio::time::sleep(within).await;
            if let Some(delivery) = calls.remove_by_id(&id, call_id) {
                tracing::info!(%call_id, "call-back not answered in time: back to the queue");
                if let Err(error) = delivery.settle(Settle::Requeue).await {
                    // The channel is gone, and with it the call went back.
                    tracing::warn!(%error, %call_id, "could not requeue an unanswered call");
                }
            }
        });
        tracing::info!(%call_id, queue, "call-back taken by a staff session");
        Ok(Taken::Call(Box::new(held)))
    }

    fn remove_by_id(&self, id: &str, call_id: Uuid) -> Option<Delivery> {
        let mut slots = self.slots();
        match slots.get(id) {
            Some(Slot::Holding(delivery)) if delivery.held.call.payload.call_id == call_id => {
                match slots.remove(id) {
                    Some(Slot::Holding(delivery)) => Some(*delivery),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The session's delivery of `call_id`, no longer held (the caller
    /// settles it): `None` when it went back to the queue meanwhile.
    pub fn remove(&self, session_key: &str, call_id: Uuid) -> Option<Delivery> {
        self.remove_by_id(&session_id(session_key), call_id)
    }

    /// The session ended: its call (if any) goes back to the queue.
    pub async fn give_back(&self, session_key: &str) {
        let slot = self.slots().remove(&session_id(session_key));
        if let Some(Slot::Holding(delivery)) = slot {
            let delivery = *delivery;
            let call_id = delivery.held.call.payload.call_id;
            tracing::info!(%call_id, "staff session ended: call-back back to the queue");
            if let Err(error) = delivery.settle(Settle::Requeue).await {
                tracing::warn!(%error, %call_id, "could not requeue a call at sign-out");
            }
        }
    }
}
