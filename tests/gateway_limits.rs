//! The gateway's limits against the real broker and database: a room
//! WebSocket sending faster than its token bucket is closed alone (1008
//! `rate_limited`) while the ICE candidates' burst of a real call passes;
//! and the gateway's broker user (`sportello-gateway`, which every gateway
//! test connects with) may use the relay and nothing else.

use crate::support::gateway::{
    admit, env_with_sms, next_of, seated, send, socket, video_room, Gateway, Seated, Socket,
};
use crate::support::TestEnv;
use futures::{SinkExt, StreamExt};
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::json;
use sportello::broker::names::{EVENTS_EXCHANGE, INTAKE_EXCHANGE};
use sportello::broker::publisher::{OutgoingMessage, PublishError, Publisher};
use sportello::broker::{self};
use sportello::domain::video::rate::MESSAGE_BURST;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// The close frame's code and reason, skipping messages before it.
async fn close_frame(socket: &mut Socket) -> Option<(u16, String)> {
    loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[actix_rt::test]
async fn a_burst_of_ice_candidates_passes_a_flood_closes_only_that_connection() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    let Seated {
        citizen_pass: citizen,
        operator: mut o,
        citizen: mut c,
        ..
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;
    admit(&mut o, &mut c, id).await;

    // A call starting: the full burst of ICE candidates at once, every one
    // relayed to the operator.
    let burst = MESSAGE_BURST as usize;
    for i in 0..burst {
        send(
            &mut c,
            json!({"type": "ice", "room": id, "candidate": {"candidate": format!("candidate:{i} 1 udp 1 10.0.0.1 {} typ host", 9000 + i)}}),
        )
        .await;
    }
    for i in 0..burst {
        let ice = next_of(&mut o, "ice").await;
        assert!(
            ice["candidate"]["candidate"]
                .as_str()
                .unwrap()
                .starts_with(&format!("candidate:{i} ")),
            "{ice}"
        );
    }

    // A flood (of messages answered to the sender only, so the operator's
    // socket stays readable): the citizen's connection is closed with 1008
    // and a reason.
    let flood = json!({"type": "not-a-message", "room": id}).to_string();
    for _ in 0..(4 * burst) {
        if c.send(Message::Text(flood.clone().into())).await.is_err() {
            break;
        }
    }
    let (code, reason) = close_frame(&mut c).await.expect("a close frame");
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.starts_with("rate_limited"), "{reason}");
    assert!(reason.contains("50 messages per second"), "{reason}");

    // Only that connection: the operator is told and goes on, the citizen
    // comes back with a fresh bucket.
    assert_eq!(next_of(&mut o, "peer").await["present"], false);
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "chat_on"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "state").await["chat_enabled"], true);
    let mut c = socket(&gateway, &citizen_link, &citizen, false)
        .await
        .unwrap();
    assert_eq!(
        next_of(&mut c, "welcome").await["state"]["phase"],
        "admitted"
    );
    send(
        &mut c,
        json!({"type": "chat", "room": id, "text": "Eccomi"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "chat").await["body"], "Eccomi");

    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

/// Publishes one message as the broker user of `url`, with a confirm.
async fn publish_as(url: &str, exchange: &str, routing_key: &str) -> Result<(), PublishError> {
    let connection = broker::connect(url, "test-gateway-rights").await?;
    let publisher = Publisher::open(&connection).await?;
    let message = OutgoingMessage {
        exchange: exchange.into(),
        routing_key: routing_key.into(),
        message_id: Uuid::now_v7(),
        message_type: "test".into(),
        correlation_id: "test".into(),
        body: b"{}".to_vec(),
        headers: FieldTable::default(),
        mandatory: false,
    };
    let result = match publisher.send(&message).await {
        Ok(pending) => pending.wait().await,
        Err(error) => Err(error),
    };
    let _ = connection.close(200, "done".into()).await;
    result
}

fn refused(result: Result<(), impl std::fmt::Display>, what: &str) {
    match result {
        Ok(()) => panic!("the gateway's user could {what}"),
        Err(error) => assert!(
            error.to_string().contains("ACCESS_REFUSED"),
            "{what}: {error}"
        ),
    }
}

#[actix_rt::test]
async fn the_gateway_broker_user_may_relay_and_nothing_else() {
    let env = TestEnv::new().await;
    let url = env.user_url("sportello-gateway");
    assert_eq!(
        env.settings
            .broker_addresses_for(sportello::broker::users::BrokerUser::Gateway),
        url,
        "gateway tests run as the gateway's own user"
    );
    let room = format!("room.{}", Uuid::now_v7().simple());

    // What relay.rs needs: its exchange, room keys, its private queue.
    publish_as(&url, "sportello.gateway", &room).await.unwrap();
    let gateway = Gateway::start(&env).await;

    // Nothing else: no intake, no events, no other routing keys.
    refused(
        publish_as(&url, INTAKE_EXCHANGE, "web.request.submitted").await,
        "publish to sportello.intake",
    );
    refused(
        publish_as(&url, EVENTS_EXCHANGE, "ticket.opened").await,
        "publish to sportello.events",
    );
    refused(
        publish_as(&url, "sportello.gateway", "ticket.opened").await,
        "publish a non-room key on sportello.gateway",
    );
    let connection = broker::connect(&url, "test-gateway-rights").await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    refused(
        channel
            .basic_consume(
                "sportello.intake.requests".into(),
                "thief".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map(|_| ()),
        "consume the intake queue",
    );
    let channel = connection.create_channel().await.unwrap();
    refused(
        channel
            .queue_declare(
                "sportello.gateway.not-a-gateway".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|_| ()),
        "declare a queue outside its own names",
    );
    let _ = connection.close(200, "done".into()).await;

    gateway.stop().await;
    env.cleanup().await;
}

/// A citizen waiting in silence keeps the room: a WebSocket is not a request
/// body, so the HTTP edge's 15-second idle limit for bodies never closes it.
#[actix_rt::test]
async fn a_silent_participant_stays_connected_past_the_body_idle_limit() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    let Seated {
        operator: mut o,
        citizen: mut c,
        ..
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;
    admit(&mut o, &mut c, id).await;

    // Longer than the edge's idle limit for a body (15 s), shorter than the
    // gateway's ping interval (20 s): nothing at all comes from the citizen.
    tokio::time::sleep(std::time::Duration::from_secs(17)).await;
    send(
        &mut o,
        json!({"type": "ice", "room": id, "candidate": {"candidate": "candidate:1 1 udp 1 10.0.0.2 9100 typ host"}}),
    )
    .await;
    let ice = next_of(&mut c, "ice").await;
    assert!(ice["candidate"]["candidate"]
        .as_str()
        .unwrap()
        .starts_with("candidate:1 "));
}
