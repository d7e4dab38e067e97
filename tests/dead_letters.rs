//! `sportello dead-letters` with more than a page of dead letters: the
//! listing gives the total and the pages in a stable order and never touches
//! a broker message; show, replay (once) and discard.

use std::time::Duration;

use crate::support::*;
use serde_json::json;
use sportello::dead_letters as tools;
use sportello::workers::WorkerKind;

const LETTERS: usize = 25;

#[actix_rt::test]
async fn more_than_a_page_of_dead_letters_is_listed_shown_replayed_and_discarded() {
    let env = TestEnv::new().await;
    let _workers = env.start(&[WorkerKind::Intake]);
    for n in 0..LETTERS {
        // Not a request: dead-lettered by its schema.
        let body = json!({"numero": n, "message_id": format!("not-a-uuid-{n}")});
        env.publish("web", "web.request.submitted", &bytes(&body))
            .await
            .unwrap();
    }
    let amqp_url = env.settings.amqp_url.clone();
    let collected = eventually(Duration::from_secs(30), || async {
        tools::collect(&amqp_url, &env.pool).await.unwrap();
        tools::list(&env.pool, 1, 20, false).await.unwrap().total == LETTERS as i64
    })
    .await;
    assert!(collected, "the dead letters were not all collected");

    let first = tools::list(&env.pool, 1, 20, false).await.unwrap();
    assert_eq!((first.total, first.letters.len()), (LETTERS as i64, 20));
    let text = tools::render_listing(&first);
    assert!(
        text.starts_with("25 open dead letters, 1-20 shown"),
        "{text}"
    );
    assert!(
        text.contains("more: sportello dead-letters list --page 2"),
        "{text}"
    );
    let second = tools::list(&env.pool, 2, 20, false).await.unwrap();
    assert_eq!(second.letters.len(), 5);
    assert!(!tools::render_listing(&second).contains("more:"));

    // The same order on every call, and nothing is left in (or returned to)
    // the broker's queue: looking raises no delivery count.
    let ids = |listing: &tools::Listing| listing.letters.iter().map(|l| l.id).collect::<Vec<_>>();
    for _ in 0..3 {
        tools::collect(&amqp_url, &env.pool).await.unwrap();
        let again = tools::list(&env.pool, 1, 20, false).await.unwrap();
        assert_eq!(ids(&again), ids(&first));
    }
    let numbers: Vec<u64> = first
        .letters
        .iter()
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(&l.body).unwrap()["numero"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Two intake consumers dead-letter side by side, so the arrival order
    // (the listing's) need not be the publishing order: a page holds 20
    // different letters of the 25, in the order they were collected.
    let distinct: std::collections::BTreeSet<u64> = numbers.iter().copied().collect();
    assert_eq!(distinct.len(), 20, "{numbers:?}");
    assert!(numbers.iter().all(|n| *n < 25), "{numbers:?}");

    let letter = &first.letters[0];
    let shown = tools::show(&env.pool, letter.id).await.unwrap();
    assert!(shown.contains("web.request.submitted"), "{shown}");
    assert!(
        shown.contains(&format!("\"numero\": {}", numbers[0])),
        "{shown}"
    );
    assert!(!letter.reason.is_empty());

    // Replayed once, back to the intake (where it fails again: a new letter).
    tools::replay(&env.pool, &amqp_url, letter.id)
        .await
        .unwrap();
    assert!(matches!(
        tools::replay(&env.pool, &amqp_url, letter.id).await,
        Err(tools::DeadLetterError::AlreadyReplayed { .. })
    ));
    let back = eventually(Duration::from_secs(30), || async {
        tools::collect(&amqp_url, &env.pool).await.unwrap();
        tools::list(&env.pool, 1, 100, true).await.unwrap().total == LETTERS as i64 + 1
    })
    .await;
    assert!(back, "the replayed message did not reach the intake again");
    let open = tools::list(&env.pool, 1, 100, false).await.unwrap();
    assert_eq!(open.total, LETTERS as i64);
    assert!(!ids(&open).contains(&letter.id));

    let discarded = first.letters[1].id;
    tools::discard(&env.pool, discarded).await.unwrap();
    let open = tools::list(&env.pool, 1, 100, false).await.unwrap();
    assert_eq!(open.total, LETTERS as i64 - 1);
    assert!(matches!(
        tools::replay(&env.pool, &amqp_url, discarded).await,
        Err(tools::DeadLetterError::Discarded { .. })
    ));
    assert!(matches!(
        tools::show(&env.pool, 999_999).await,
        Err(tools::DeadLetterError::NotFound(999_999))
    ));
    env.cleanup().await;
}
