//! Intake end to end: channel message -> ticket + event, exactly once.

use std::time::Duration;

use crate::support::*;
use serde_json::json;
use sportello::broker::names::{DEAD_LETTER_EXCHANGE, EVENTS_EXCHANGE, REASON_HEADER};
use sportello::workers::WorkerKind;

const WAIT: Duration = Duration::from_secs(20);

#[actix_rt::test]
async fn a_request_opens_one_ticket_and_emits_ticket_opened() {
    let env = TestEnv::new().await;
    let mut events = env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    let workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);

    let message = request("web", "happy-path-0001");
    env.publish("web", "web.request.submitted", &bytes(&message))
        .await
        .unwrap();

    let event = events.next_json(WAIT).await.expect("ticket.opened event");
    assert_eq!(event["type"], "ticket.opened");
    assert_eq!(event["causation_id"], message["message_id"]);
    assert_eq!(event["correlation_id"], "corr-happy-path-0001");
    assert_eq!(event["payload"]["subject_tax_code"], "RSSMRA85T10A562S");
    sportello::contract::schemas::catalogue()
        .validate(&event)
        .unwrap();

    let (state, channel, matricola): (String, String, Option<String>) =
        sqlx::query_as("SELECT state::text, channel, matricola FROM tickets")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), channel.as_str()), ("aperta", "web"));
    assert_eq!(matricola.as_deref(), Some("4901234567"));
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn the_same_message_delivered_twice_or_resent_gives_one_ticket() {
    let env = TestEnv::new().await;
    let workers = env.start(&[WorkerKind::Intake]);

    let message = request("app", "f5-pressed-0001");
    // A redelivery: the very same message.
    env.publish("app", "app.request.submitted", &bytes(&message))
        .await
        .unwrap();
    env.publish("app", "app.request.submitted", &bytes(&message))
        .await
        .unwrap();
    // A resend after an error page: new message id, same idempotency key and content.
    let mut resent = message.clone();
    resent["message_id"] = json!(uuid::Uuid::now_v7());
    env.publish("app", "app.request.submitted", &bytes(&resent))
        .await
        .unwrap();
    // A different request is still processed, proving the queue drained past them.
    env.publish(
        "app",
        "app.request.submitted",
        &bytes(&request("app", "another-0002")),
    )
    .await
    .unwrap();

    assert!(eventually(WAIT, || async { env.ticket_count().await == 2 }).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.ticket_count().await, 2);
    let inbox: i64 = sqlx::query_scalar("SELECT count(*) FROM inbox")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(inbox, 2);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn an_idempotency_key_reused_for_different_content_is_dead_lettered() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);

    let first = request("web", "reused-key-0001");
    let mut second = request("web", "reused-key-0001");
    second["payload"]["subject"] = json!("Tutt'altra domanda");
    env.publish("web", "web.request.submitted", &bytes(&first))
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);
    env.publish("web", "web.request.submitted", &bytes(&second))
        .await
        .unwrap();

    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, REASON_HEADER).unwrap();
    assert!(
        reason.contains("idempotency key `reused-key-0001` was already used by this principal"),
        "{reason}"
    );
    assert_eq!(env.ticket_count().await, 1);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_different_message_reusing_a_message_id_is_dead_lettered_for_what_it_did() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);

    let first = request("web", "first-of-two-0001");
    // Another request (its own key, its own subject) under the first's id.
    let mut second = request("web", "second-of-two-0002");
    second["message_id"] = first["message_id"].clone();
    second["payload"]["subject"] = json!("Tutt'altra domanda");
    env.publish("web", "web.request.submitted", &bytes(&first))
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);
    env.publish("web", "web.request.submitted", &bytes(&second))
        .await
        .unwrap();

    let letter = dead.next(WAIT).await.expect("dead letter");
    let reason = header(&letter, REASON_HEADER).unwrap();
    let id = first["message_id"].as_str().unwrap();
    assert!(
        reason.contains(&format!(
            "message_id {id} was already used by a different message"
        )),
        "{reason}"
    );
    assert!(!reason.contains("idempotency key `"), "{reason}");
    assert_eq!(env.ticket_count().await, 1);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn invalid_messages_are_dead_lettered_with_a_reason_and_the_queue_keeps_flowing() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);

    let mut bad_tax_code = request("web", "bad-tax-code-01");
    bad_tax_code["principal"]["tax_code"] = json!("RSSMRA85T10A562T");
    let mut missing_subject = request("web", "no-subject-0001");
    missing_subject["payload"]
        .as_object_mut()
        .unwrap()
        .remove("subject");
    env.publish("web", "web.request.submitted", b"{ this is not json")
        .await
        .unwrap();
    env.publish("web", "web.request.submitted", &bytes(&bad_tax_code))
        .await
        .unwrap();
    env.publish("web", "web.request.submitted", &bytes(&missing_subject))
        .await
        .unwrap();
    env.publish(
        "web",
        "web.request.submitted",
        &bytes(&request("web", "valid-after-0001")),
    )
    .await
    .unwrap();

    let mut reasons = Vec::new();
    for _ in 0..3 {
        let letter = dead.next(WAIT).await.expect("dead letter");
        reasons.push(header(&letter, REASON_HEADER).unwrap());
        assert_eq!(
            header(&letter, "x-sportello-original-queue").as_deref(),
            Some("sportello.intake.requests")
        );
    }
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("control character"), "{reasons:?}");
    assert!(reasons[2].contains("subject"), "{reasons:?}");
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);

    // They stay inspectable: `sportello dead-letters` collects and lists them.
    sportello::dead_letters::collect(&env.settings.amqp_url, &env.pool)
        .await
        .unwrap();
    let listed = sportello::dead_letters::list(&env.pool, 1, 20, false)
        .await
        .unwrap();
    assert_eq!(listed.total, 3, "{listed:?}");
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn processing_resumes_after_the_broker_closes_every_connection() {
    let env = TestEnv::new().await;
    let workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    env.publish(
        "web",
        "web.request.submitted",
        &bytes(&request("web", "before-close-01")),
    )
    .await
    .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);

    // The management API lists connections a few seconds after they open.
    let mut closed = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while closed < 3 && tokio::time::Instant::now() < deadline {
        closed += env.management.close_connections(&env.vhost).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        closed >= 3,
        "expected the workers' three connections, closed {closed}"
    );

    let mut events = env.probe(EVENTS_EXCHANGE, "ticket.opened").await;
    env.publish(
        "web",
        "web.request.submitted",
        &bytes(&request("web", "after-close-001")),
    )
    .await
    .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 2 }).await);
    // The relay reconnected too: the new ticket's event goes out.
    let event = events.next_json(WAIT).await.expect("event after reconnect");
    assert_eq!(event["correlation_id"], "corr-after-close-001");
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn processing_resumes_after_the_database_drops_every_connection() {
    let env = TestEnv::new().await;
    let workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    env.publish(
        "web",
        "web.request.submitted",
        &bytes(&request("web", "before-db-cut-01")),
    )
    .await
    .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);

    // Cut this test's database off: no new connections, existing ones killed.
    let admin = sportello::store::connect(&env.admin_database_url(), 1)
        .await
        .unwrap();
    let database = env.database.clone();
    sqlx::query(&format!("ALTER DATABASE {database} CONNECTION LIMIT 0"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(&database)
        .execute(&admin)
        .await
        .unwrap();
    env.publish(
        "web",
        "web.request.submitted",
        &bytes(&request("web", "during-db-cut-1")),
    )
    .await
    .unwrap();
    // Longer than the pool's acquire timeout, so the worker sees the failure.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"
        ))
        .fetch_one(&admin)
        .await
        .unwrap(),
        0,
        "nobody reached the database during the cut"
    );
    sqlx::query(&format!("ALTER DATABASE {database} CONNECTION LIMIT -1"))
        .execute(&admin)
        .await
        .unwrap();

    // The held message is applied once the database is back, exactly once.
    assert!(eventually(WAIT, || async { env.ticket_count().await == 2 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.ticket_count().await, 2);
    admin.close().await;
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn concurrent_consumers_number_each_office_without_gaps() {
    // Small batches on three consumers: many transactions register in the
    // same offices at once.
    let env = TestEnv::new_with(|settings| {
        settings.intake_consumers = 3;
        settings.intake_batch_size = 15;
        settings.intake_prefetch = 30;
    })
    .await;
    let workers = env.start(&[WorkerKind::Intake]);
    let locations = [
        json!({"province": "CR", "municipality": "Crema"}),
        json!({"province": "LO", "municipality": "Lodi"}),
        json!({"province": "GE", "municipality": "Genova"}),
        json!({"province": "MI", "municipality": "Milano", "postal_code": "20125"}),
        json!({"province": "ZZ", "municipality": "Altrove"}),
    ];
    let connection = sportello::broker::connect(&env.channel_url("cassetto"), "test-load")
        .await
        .unwrap();
    let publisher = sportello::broker::publisher::Publisher::open(&connection)
        .await
        .unwrap();
    const REQUESTS: usize = 300;
    for i in 0..REQUESTS {
        let request = request_v2(
            citizen_json("RSSMRA85T10A562S"),
            &format!("load-{i}"),
            "versamenti",
            "4901234567",
            "F24 non abbinato",
            locations[i % locations.len()].clone(),
        );
        publish_on(&publisher, "cassetto.request.submitted", &bytes(&request))
            .await
            .unwrap();
    }
    let _ = connection.close(200, "done".into()).await;
    assert!(
        eventually(WAIT, || async {
            env.ticket_count().await == REQUESTS as i64
        })
        .await,
        "every request became a ticket"
    );

    // Every ticket points at the registration of its own request, in its office.
    let (matching,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM tickets t JOIN registrations r
           ON r.id = t.registration_id AND r.request_id = t.request_message_id
          AND r.aoo = t.office_aoo",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(matching, REQUESTS as i64);
    // Each office's numbers are 1..n: none skipped, none taken twice.
    let per_office: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT aoo, count(*), min(number), max(number) FROM registrations GROUP BY aoo",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(per_office.len(), locations.len());
    for (aoo, count, first, last) in per_office {
        assert_eq!((first, last), (1, count), "office {aoo}");
    }
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_request_redelivered_after_its_inbox_row_was_purged_is_still_a_duplicate() {
    let env = TestEnv::new().await;
    let mut dead = env.probe(DEAD_LETTER_EXCHANGE, "#").await;
    let workers = env.start(&[WorkerKind::Intake]);
    let message = request("web", "purged-0001");
    env.publish("web", "web.request.submitted", &bytes(&message))
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { env.ticket_count().await == 1 }).await);
    // The retention job forgot it; then the broker redelivers it.
    sqlx::query("DELETE FROM inbox")
        .execute(&env.pool)
        .await
        .unwrap();
    env.publish("web", "web.request.submitted", &bytes(&message))
        .await
        .unwrap();
    assert!(
        eventually(WAIT, || async {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM inbox")
                .fetch_one(&env.pool)
                .await
                .unwrap()
                == 1
        })
        .await,
        "the redelivery was handled"
    );
    assert!(
        dead.next(Duration::from_millis(500)).await.is_none(),
        "not dead-lettered"
    );
    assert_eq!(env.ticket_count().await, 1);
    assert!(workers.shutdown(WAIT).await);
    env.cleanup().await;
}

/// Every session of ours plans each statement afresh: a generic plan made
/// while a table was empty would stay a sequential scan for as long as the
/// table's statistics do not change (docs/operations.md "Production mode").
#[actix_rt::test]
async fn every_session_plans_each_statement_afresh() {
    let env = TestEnv::new().await;
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(mode, "force_custom_plan");
    env.cleanup().await;
}
