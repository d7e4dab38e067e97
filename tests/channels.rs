//! A channel speaks only for itself.

use std::time::Duration;

use crate::support::*;
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, REASON_HEADER};
use sportello::broker::publisher::PublishError;
use sportello::workers::WorkerKind;

#[actix_rt::test]
async fn a_channel_user_is_refused_on_another_channels_routing_key() {
    let env = TestEnv::new().await;
    let message = request("cassetto", "impersonate-0001");
    let refused = env
        .publish("web", "cassetto.request.submitted", &bytes(&message))
        .await;
    let error = refused.expect_err("web must not publish as cassetto");
    assert!(matches!(error, PublishError::Amqp(_)), "{error}");
    assert!(error.to_string().contains("ACCESS_REFUSED"), "{error}");
    // Its own prefix is fine.
    env.publish("cassetto", "cassetto.request.submitted", &bytes(&message))
        .await
        .unwrap();
    env.cleanup().await;
}

#[actix_rt::test]
async fn an_envelope_claiming_another_channel_is_dead_lettered() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);
    // Allowed routing key for web, but the body says contact centre.
    let message = request("contact_center", "claims-cc-00001");
    env.publish("web", "web.request.submitted", &bytes(&message))
        .await
        .unwrap();
    let letter = dead
        .next(Duration::from_secs(20))
        .await
        .expect("dead letter");
    let reason = header(&letter, REASON_HEADER).unwrap();
    assert!(reason.contains("does not match channel"), "{reason}");
    assert_eq!(env.ticket_count().await, 0);
    assert!(workers.shutdown(Duration::from_secs(10)).await);
    env.cleanup().await;
}
