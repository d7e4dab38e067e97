//! The phone call-back contract, from the agent's side: calls wait on the
//! office's desk queue; an agent takes one at a time; the outcome is
//! published (and confirmed) before the call is acked; a skip, silence or a
//! disconnection mid-call puts the call back, so nothing is lost.

use std::time::Duration;

use crate::support::*;
use serde_json::{json, Value};
use sportello::agent::{self, AgentSession};
use sportello::broker::{self, callbacks, names};
use uuid::Uuid;

const OFFICE: &str = "1901";
const DESK: &str = "conto_assicurativo";

fn call(attempt: u32) -> Value {
    let call_id = Uuid::now_v7();
    json!({
        "message_id": call_id,
        "type": "appointment.callback_due",
        "schema_version": 1,
        "occurred_at": chrono::Utc::now(),
        "correlation_id": format!("call-{call_id}"),
        "causation_id": null,
        "payload": {
            "call_id": call_id,
            "appointment_id": Uuid::now_v7(),
            "office_aoo": OFFICE,
            "desk": DESK,
            "desk_name": "conto assicurativo e pensioni",
            "starts_at": "2026-12-02T08:00:00Z",
            "ends_at": "2026-12-02T08:15:00Z",
            "citizen_tax_code": "RSSMRA85T10A562S",
            "phone": "+393331234567",
            "notes": "Pensione: chiarimenti sul ricalcolo.",
            "attempt": attempt
        }
    })
}

async fn queued_calls(env: &TestEnv) -> u64 {
    queue_length(env, &names::callback_queue(OFFICE, DESK)).await
}

/// Messages ready in `queue` (not those an agent holds).
async fn queue_length(env: &TestEnv, queue: &str) -> u64 {
    let connection = broker::connect(&env.user_url("sportello-app"), "test-count")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    let _ = connection.close(200, "counted".into()).await;
    u64::from(queue.message_count())
}

async fn declare_desk_queue(env: &TestEnv) {
    let connection = broker::connect(&env.user_url("sportello-app"), "test-declare")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    callbacks::declare_queue(&channel, OFFICE, DESK)
        .await
        .unwrap();
    let _ = connection.close(200, "declared".into()).await;
}

/// Runs the agent over `script` (the agent's typed answers), for at most
/// `calls` calls, answering within `within`.
async fn agent_answers(
    env: &TestEnv,
    script: &str,
    calls: Option<usize>,
    within: Duration,
) -> (usize, String) {
    let url = env.channel_url("contact_center");
    let session = AgentSession {
        amqp_url: &url,
        office: OFFICE,
        desk: DESK,
        agent_id: "CC-0042",
        answer_within: within,
        calls,
    };
    let mut input = tokio::io::BufReader::new(script.as_bytes());
    let mut output = Vec::new();
    let handled = agent::work(session, &mut input, &mut output).await.unwrap();
    (handled, String::from_utf8(output).unwrap())
}

#[actix_rt::test]
async fn an_agent_acks_a_call_only_after_its_outcome_is_confirmed_and_loses_none() {
    let env = TestEnv::new().await;
    declare_desk_queue(&env).await;
    let mut outcomes = env
        .probe(
            names::INTAKE_EXCHANGE,
            "contact_center.appointment.callback_outcome",
        )
        .await;
    let first = call(1);
    publish_as_app(
        &env,
        names::CALLBACKS_EXCHANGE,
        &callbacks::routing_key(OFFICE, DESK),
        &bytes(&first),
    )
    .await;
    assert!(
        eventually(Duration::from_secs(10), || async {
            queued_calls(&env).await == 1
        })
        .await
    );

    // Skipped: back in the queue, no outcome.
    let (handled, shown) = agent_answers(&env, "s\n", Some(1), Duration::from_secs(5)).await;
    assert_eq!(handled, 0);
    assert!(
        shown.contains("+393331234567") && shown.contains("rimessa in coda"),
        "{shown}"
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            queued_calls(&env).await == 1
        })
        .await
    );

    // The agent goes silent mid-call: the call goes back.
    let (handled, _) = agent_answers(&env, "", Some(1), Duration::from_millis(300)).await;
    assert_eq!(handled, 0);
    assert!(
        eventually(Duration::from_secs(10), || async {
            queued_calls(&env).await == 1
        })
        .await
    );
    assert!(outcomes.next(Duration::from_millis(200)).await.is_none());

    // The agent disconnects mid-call (the process dies): the broker hands
    // the unacknowledged call back.
    {
        let connection = broker::connect(&env.channel_url("contact_center"), "test-dying-agent")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let taken = channel
            .basic_get(
                names::callback_queue(OFFICE, DESK).as_str().into(),
                lapin::options::BasicGetOptions { no_ack: false },
            )
            .await
            .unwrap();
        assert!(taken.is_some());
        // The connection goes without a word about the call it held.
        drop(channel);
        let _ = connection.close(320, "agent died".into()).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            queued_calls(&env).await == 1
        })
        .await
    );

    // Nobody answered the phone: the outcome is published, then the call acked.
    let (handled, shown) = agent_answers(
        &env,
        "x\nn\nSquilla a vuoto.\n",
        Some(1),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(handled, 1);
    assert!(shown.contains("Risposte: f, n, r, s"), "{shown}");
    let outcome = outcomes.next_json(Duration::from_secs(10)).await.unwrap();
    assert_eq!(outcome["type"], "appointment.callback_outcome");
    assert_eq!(outcome["channel"], "contact_center");
    assert_eq!(outcome["principal"]["agent_id"], "CC-0042");
    assert_eq!(outcome["principal"]["on_behalf_of"], "RSSMRA85T10A562S");
    assert_eq!(outcome["payload"]["outcome"], "no_answer");
    assert_eq!(outcome["payload"]["note"], "Squilla a vuoto.");
    assert_eq!(outcome["payload"]["call_id"], first["payload"]["call_id"]);
    assert_eq!(
        outcome["idempotency_key"],
        format!("callback-{}", first["payload"]["call_id"].as_str().unwrap())
    );
    sportello::domain::booking::admit_command(
        "contact_center.appointment.callback_outcome",
        &bytes(&outcome),
    )
    .expect("the agent's outcome passes admission");
    assert!(
        eventually(Duration::from_secs(10), || async {
            queued_calls(&env).await == 0
        })
        .await
    );
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_call_for_a_desk_without_a_queue_is_kept_not_lost() {
    let env = TestEnv::new().await;
    publish_as_app(
        &env,
        names::CALLBACKS_EXCHANGE,
        &callbacks::routing_key("2300", "nessuno"),
        &bytes(&call(1)),
    )
    .await;
    let kept = eventually(Duration::from_secs(10), || async {
        queue_length(&env, names::UNROUTED_CALLBACKS_QUEUE).await == 1
    })
    .await;
    assert!(kept, "the unroutable call was not kept");
    env.cleanup().await;
}
