//! The room's WebSocket (`GET /stanza/<token>/ws`): WebRTC signalling
//! (offer, answer, ICE candidates) between the two participants, the chat,
//! and the operator's controls. JSON text messages; every client message
//! names its room, and one naming another room is refused (an error
//! message; the connection and the room go on). A message larger than
//! `GATEWAY_MAX_FRAME_BYTES` closes the connection with 1009; one sending
//! faster than its token bucket allows (`GATEWAY_MESSAGES_PER_SECOND`,
//! burst `GATEWAY_MESSAGE_BURST`) is closed with 1008 `rate_limited`. Either
//! way only that connection ends; the room and its other participant go on.
//!
//! The citizen may signal only once the operator admitted them: admission
//! is the server granting the citizen's connection permission to publish,
//! never a secret handed to the browser.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use chrono::Utc;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::relay::{Outbound, Relayed};
use super::{authenticate, GatewayState, Problem};
use crate::domain::video::rate::TokenBucket;
use crate::domain::video::room::{self, Act, Control, RoomState};
use crate::domain::video::Role;
use crate::video::{self, Seating};

/// Most characters in one chat message.
pub const MAX_CHAT_CHARS: usize = 2000;

/// What a browser sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    Offer {
        room: Uuid,
        sdp: String,
    },
    Answer {
        room: Uuid,
        sdp: String,
    },
    Ice {
        room: Uuid,
        candidate: Value,
    },
    Chat {
        room: Uuid,
        text: String,
    },
    Control {
        room: Uuid,
        action: String,
    },
    /// Latency probe (bench): relayed to the peer as is.
    Echo {
        room: Uuid,
        payload: Value,
    },
}

impl ClientMessage {
    fn room(&self) -> Uuid {
        match self {
            ClientMessage::Offer { room, .. }
            | ClientMessage::Answer { room, .. }
            | ClientMessage::Ice { room, .. }
            | ClientMessage::Chat { room, .. }
            | ClientMessage::Control { room, .. }
            | ClientMessage::Echo { room, .. } => *room,
        }
    }
}

#[derive(Deserialize)]
pub struct SocketQuery {
    /// Take the seat from another tab of the same role, by explicit choice.
    #[serde(default)]
    replace: bool,
}

/// The room's state as the browsers read it.
pub fn state_message(state: &RoomState) -> Value {
    let now = Utc::now();
    json!({
        "type": "state",
        "phase": state.phase(now),
        "admitted": state.admitted,
        "chat_enabled": state.chat_enabled,
        "documents_enabled": state.documents_enabled,
        "window": state.window,
    })
}

fn error_message(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

pub async fn socket(
    state: web::Data<GatewayState>,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SocketQuery>,
    body: web::Payload,
) -> Result<HttpResponse, Problem> {
    let (opened, role, principal) = authenticate(&state, &request, &path).await?;
    let room_id = opened.appointment.id;
    let (response, session, stream) =
        actix_ws::handle(&request, body).map_err(|e| Problem::bad_request(&e.to_string()))?;
    let stream = stream.max_frame_size(state.max_frame_bytes);
    let author_id = match &principal {
        crate::contract::Principal::Operator { operator_id, .. } => operator_id.clone(),
        _ => opened.appointment.subject_tax_code.clone(),
    };
    let citizen_link = state
        .links_settings
        .video_link(room_id, opened.appointment.ends_at);
    let state = state.into_inner();
    actix_rt::spawn(async move {
        let connection = Connection {
            state,
            room: room_id,
            role,
            author_id,
            citizen_link,
            id: Uuid::now_v7(),
            may_signal: role == Role::Operator,
        };
        connection.run(session, stream, query.replace).await;
    });
    Ok(response)
}

struct Connection {
    state: Arc<GatewayState>,
    room: Uuid,
    role: Role,
    author_id: String,
    citizen_link: String,
    id: Uuid,
    /// Cached once the room's state allowed it (operators always).
    may_signal: bool,
}

impl Connection {
    async fn run(
        mut self,
        mut session: actix_ws::Session,
        mut stream: actix_ws::MessageStream,
        replace: bool,
    ) {
        let relay = self.state.relay.clone();
        let seating = video::take_seat(
            &self.state.pool,
            self.room,
            self.role,
            self.id,
            &relay.gateway_id,
            replace,
        )
        .await;
        match seating {
            Ok(Seating::Occupied) => {
                let _ = session
                    .text(error_message(
                        "occupied",
                        "La stanza è già aperta in un'altra finestra o su un altro dispositivo.",
                    ))
                    .await;
                let _ = session
                    .close(Some(CloseReason {
                        code: CloseCode::Policy,
                        description: Some("occupied".into()),
                    }))
                    .await;
                return;
            }
            Ok(Seating::Replaced { connection_id, .. }) => {
                let _ = relay
                    .publish(&Relayed {
                        room: self.room,
                        from: self.id,
                        to_role: None,
                        replace: Some(connection_id),
                        body: None,
                    })
                    .await;
            }
            Ok(Seating::Seated) => {}
            Err(error) => {
                tracing::error!(%error, room = %self.room, "could not seat a connection");
                let _ = session.close(Some(CloseCode::Error.into())).await;
                return;
            }
        }
        let (sender, mut outbound) = mpsc::unbounded_channel();
        if let Err(error) = relay.join(self.room, self.id, self.role, sender).await {
            tracing::error!(%error, "relay unavailable");
            let _ = crate::store::video::leave(&self.state.pool, self.id).await;
            let _ = session.close(Some(CloseCode::Error.into())).await;
            return;
        }
        crate::metrics::metrics().gateway_connections.inc();
        if self.welcome(&mut session).await.is_ok() {
            self.broadcast(
                Some(self.role.peer()),
                json!({"type": "peer", "role": self.role, "present": true}),
            )
            .await;
            let reason = self.serve(&mut session, &mut stream, &mut outbound).await;
            let _ = session.close(reason).await;
        }
        crate::metrics::metrics().gateway_connections.dec();
        relay.leave(self.room, self.id).await;
        if let Err(error) = crate::store::video::leave(&self.state.pool, self.id).await {
            tracing::warn!(%error, "seat not released (it goes stale in 30 s)");
        }
        self.broadcast(
            Some(self.role.peer()),
            json!({"type": "peer", "role": self.role, "present": false}),
        )
        .await;
    }

    async fn welcome(&mut self, session: &mut actix_ws::Session) -> Result<(), actix_ws::Closed> {
        let room = video::state(&self.state.pool, self.room).await;
        let chat = crate::store::video::chat(&self.state.pool, self.room)
            .await
            .unwrap_or_default();
        let present = crate::store::video::seated_roles(&self.state.pool, self.room)
            .await
            .unwrap_or_default()
            .contains(&self.role.peer());
        let Ok(room) = room else {
            return Err(actix_ws::Closed);
        };
        if self.role == Role::Citizen {
            self.may_signal = room::may(&room.state, self.role, Act::Signal, Utc::now()).is_ok();
        }
        let welcome = json!({
            "type": "welcome",
            "room": self.room,
            "role": self.role,
            "connection": self.id,
            "state": state_message(&room.state),
            "peer_present": present,
            "ice_servers": self.state.ice_servers(self.room, self.role),
            "chat": chat,
        });
        session.text(welcome.to_string()).await
    }

    /// Until the browser leaves, is replaced, or breaks a rule that ends it.
    async fn serve(
        &mut self,
        session: &mut actix_ws::Session,
        stream: &mut actix_ws::MessageStream,
        outbound: &mut mpsc::UnboundedReceiver<Outbound>,
    ) -> Option<CloseReason> {
        let mut ping = tokio::time::interval(std::time::Duration::from_secs(20));
        let mut bucket = TokenBucket::new(self.state.message_rate, std::time::Instant::now());
        loop {
            tokio::select! {
                incoming = stream.next() => match incoming {
                    None => return None,
                    Some(Ok(Message::Text(_) | Message::Binary(_) | Message::Ping(_)))
                        if !bucket.try_take(std::time::Instant::now()) =>
                    {
                        let limit = bucket.limit();
                        tracing::warn!(room = %self.room, role = self.role.as_str(),
                            per_second = limit.per_second, burst = limit.burst,
                            "WebSocket over its message rate: closed");
                        crate::metrics::metrics().gateway_rate_limited.inc();
                        let _ = session
                            .text(error_message(
                                "rate_limited",
                                &format!(
                                    "troppi messaggi: al massimo {} al secondo (picchi di {})",
                                    limit.per_second, limit.burst
                                ),
                            ))
                            .await;
                        return Some(CloseReason {
                            code: CloseCode::Policy,
                            description: Some(format!(
                                "rate_limited: at most {} messages per second, bursts of {}",
                                limit.per_second, limit.burst
                            )),
                        });
                    }
                    Some(Err(actix_ws::ProtocolError::Overflow)) => {
                        tracing::info!(room = %self.room, "oversized WebSocket message: closed");
                        return Some(CloseReason {
                            code: CloseCode::Size,
                            description: Some(format!("messages are limited to {} bytes", self.state.max_frame_bytes)),
                        });
                    }
                    Some(Err(error)) => {
                        tracing::info!(%error, room = %self.room, "WebSocket protocol error: closed");
                        return Some(CloseReason { code: CloseCode::Protocol, description: None });
                    }
                    Some(Ok(Message::Text(text))) => {
                        if let Some(answer) = self.handle(&text).await {
                            if session.text(answer).await.is_err() {
                                return None;
                            }
                        }
                    }
                    Some(Ok(Message::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(Message::Close(reason))) => return reason,
                    Some(Ok(Message::Binary(_))) => {
                        if session.text(error_message("unsupported", "messages are JSON text")).await.is_err() {
                            return None;
                        }
                    }
                    Some(Ok(_)) => {}
                },
                out = outbound.recv() => match out {
                    Some(Outbound::Text(text)) => {
                        if text.starts_with("{\"type\":\"state\"") || text.contains("\"type\":\"state\"") {
                            self.refresh_permission().await;
                        }
                        if session.text(text).await.is_err() {
                            return None;
                        }
                    }
                    Some(Outbound::Replaced) => {
                        let _ = session.text(json!({"type": "replaced"}).to_string()).await;
                        return Some(CloseReason { code: CloseCode::Policy, description: Some("replaced".into()) });
                    }
                    None => return None,
                },
                _ = ping.tick() => {
                    if session.ping(b"").await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    async fn refresh_permission(&mut self) {
        if self.role == Role::Citizen {
            if let Ok(room) = video::state(&self.state.pool, self.room).await {
                self.may_signal =
                    room::may(&room.state, self.role, Act::Signal, Utc::now()).is_ok();
            }
        }
    }

    /// Handles one browser message; the answer (an error) goes back to it.
    async fn handle(&mut self, text: &str) -> Option<String> {
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                return Some(error_message(
                    "invalid",
                    &format!("unreadable message: {error}"),
                ))
            }
        };
        if message.room() != self.room {
            tracing::warn!(room = %self.room, named = %message.room(), "signalling for another room refused");
            return Some(error_message(
                "wrong_room",
                "this connection belongs to another room",
            ));
        }
        let peer = Some(self.role.peer());
        match message {
            ClientMessage::Offer { sdp, .. } | ClientMessage::Answer { sdp, .. }
                if !self.may_signal =>
            {
                let _ = sdp;
                Some(error_message(
                    "not_admitted",
                    "l'operatore non ti ha ancora accolto",
                ))
            }
            ClientMessage::Ice { .. } if !self.may_signal => Some(error_message(
                "not_admitted",
                "l'operatore non ti ha ancora accolto",
            )),
            ClientMessage::Offer { sdp, .. } => {
                self.relay(
                    peer,
                    json!({"type": "offer", "room": self.room, "sdp": sdp}),
                )
                .await
            }
            ClientMessage::Answer { sdp, .. } => {
                self.relay(
                    peer,
                    json!({"type": "answer", "room": self.room, "sdp": sdp}),
                )
                .await
            }
            ClientMessage::Ice { candidate, .. } => {
                self.relay(
                    peer,
                    json!({"type": "ice", "room": self.room, "candidate": candidate}),
                )
                .await
            }
            ClientMessage::Echo { payload, .. } => {
                self.relay(
                    peer,
                    json!({"type": "echo", "room": self.room, "payload": payload}),
                )
                .await
            }
            ClientMessage::Chat { text, .. } => self.chat(text).await,
            ClientMessage::Control { action, .. } => self.control(&action).await,
        }
    }

    async fn relay(&self, to_role: Option<Role>, body: Value) -> Option<String> {
        let message = Relayed {
            room: self.room,
            from: self.id,
            to_role,
            replace: None,
            body: Some(body),
        };
        match self.state.relay.publish(&message).await {
            Ok(()) => None,
            Err(error) => {
                tracing::error!(%error, "relay publish failed");
                Some(error_message(
                    "unavailable",
                    "servizio momentaneamente non disponibile",
                ))
            }
        }
    }

    /// To everyone in the room (`to_role` only), this connection included
    /// when it is that role.
    async fn broadcast(&self, to_role: Option<Role>, body: Value) {
        let message = Relayed {
            room: self.room,
            from: Uuid::nil(),
            to_role,
            replace: None,
            body: Some(body),
        };
        if let Err(error) = self.state.relay.publish(&message).await {
            tracing::error!(%error, "relay publish failed");
        }
    }

    async fn chat(&self, text: String) -> Option<String> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > MAX_CHAT_CHARS || text.contains('\0') {
            return Some(error_message(
                "invalid",
                "un messaggio va da 1 a 2000 caratteri",
            ));
        }
        let room = match video::state(&self.state.pool, self.room).await {
            Ok(room) => room,
            Err(error) => return Some(error_message("unavailable", &error.to_string())),
        };
        if let Err(refusal) = room::may(&room.state, self.role, Act::Chat, Utc::now()) {
            return Some(error_message("chat_off", &refusal.to_string()));
        }
        match crate::store::video::insert_chat(
            &self.state.pool,
            &room,
            self.role,
            &self.author_id,
            text,
        )
        .await
        {
            Ok(message) => {
                let mut body = json!({"type": "chat"});
                if let (Some(target), Ok(Value::Object(fields))) =
                    (body.as_object_mut(), serde_json::to_value(&message))
                {
                    target.extend(fields);
                }
                self.broadcast(None, body).await;
                None
            }
            Err(error) => {
                tracing::error!(%error, "chat message not kept");
                Some(error_message(
                    "unavailable",
                    "messaggio non salvato: riprova",
                ))
            }
        }
    }

    async fn control(&self, action: &str) -> Option<String> {
        let Some(control) = Control::parse(action) else {
            return Some(error_message("invalid", "unknown control"));
        };
        match video::control(
            &self.state.pool,
            self.room,
            self.role,
            &self.author_id,
            control,
            &self.citizen_link,
            &video::correlation_id(self.room),
        )
        .await
        {
            Ok(next) => {
                self.broadcast(None, state_message(&next)).await;
                None
            }
            Err(error) => Some(error_message("refused", &error.to_string())),
        }
    }
}
