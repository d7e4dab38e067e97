//! The protocol register: gapless numbers under concurrency and failure,
//! annulment, immutability, and the daily register's hash chain.

use std::time::Duration;

use crate::support::*;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use serde_json::json;
use sportello::broker::names::EVENTS_EXCHANGE;
use sportello::domain::cron::TIME_ZONE;
use sportello::domain::protocol::{self, Aoo, RegisteredFile};
use sportello::store::protocol::{self as register, AnnulOutcome, RegistrationRequest};
use sportello::store::timers::{self, TimerRequest};
use sportello::workers::timers::CRON_KIND_PREFIX;
use sportello::workers::{cron_jobs, WorkerKind, DAILY_REGISTER_JOB};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn request(aoo: &str) -> RegistrationRequest {
    RegistrationRequest {
        id: Uuid::now_v7(),
        request_id: Uuid::now_v7(),
        aoo: Aoo::parse(aoo).unwrap(),
        subject: "Documenti inviati in videochiamata".into(),
        registered_by: json!({"kind": "operator", "operator_id": "E0013609", "office": aoo}),
        files: vec![RegisteredFile {
            name: "carta-identita.pdf".into(),
            sha256: "ab".repeat(32),
            size: 123_456,
        }],
        correlation_id: "room-42".into(),
    }
}

async fn numbers(env: &TestEnv, aoo: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT number FROM registrations WHERE aoo = $1 AND year = $2 ORDER BY number",
    )
    .bind(aoo)
    .bind(protocol::numbering_year(Utc::now()))
    .fetch_all(&env.pool)
    .await
    .unwrap()
}

#[actix_rt::test]
async fn numbers_stay_gapless_with_four_concurrent_registrars_and_one_killed_mid_transaction() {
    let env = TestEnv::new().await;
    const PER_WORKER: usize = 150;

    // The victim takes numbers and holds them, uncommitted, until killed.
    let victim_pool = sportello::store::connect(&env.settings.database_url, 1)
        .await
        .unwrap();
    let mut victim = victim_pool.begin().await.unwrap();
    let held = register::register(&mut victim, &[request("0040"), request("0040")])
        .await
        .unwrap();
    assert_eq!(held[0].number, 1);
    let victim_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .unwrap();

    let mut workers = Vec::new();
    for worker in 0..4 {
        let url = env.settings.database_url.clone();
        workers.push(tokio::spawn(async move {
            let pool = sportello::store::connect(&url, 1).await.unwrap();
            let mut done = 0;
            let mut attempt = worker;
            while done < PER_WORKER {
                attempt += 1;
                let batch = 1 + attempt % 4;
                let requests: Vec<_> = (0..batch).map(|_| request("0040")).collect();
                let mut tx = pool.begin().await.unwrap();
                register::register(&mut tx, &requests).await.unwrap();
                // Every fifth transaction rolls back: its numbers must be reused.
                if attempt % 5 == 0 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    done += batch;
                }
            }
            done
        }));
    }
    // Let the others queue up behind the victim's lock, then kill its session.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let admin = sportello::store::connect(&env.admin_database_url(), 1)
        .await
        .unwrap();
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(victim_pid)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert!(killed);
    assert!(
        victim.commit().await.is_err(),
        "a killed session cannot commit"
    );

    let mut total = 0;
    for worker in workers {
        total += worker.await.unwrap();
    }
    let numbers = numbers(&env, "0040").await;
    assert_eq!(numbers.len(), total);
    assert_eq!(
        numbers,
        (1..=total as i64).collect::<Vec<_>>(),
        "unique, increasing, gapless"
    );

    // Signatures follow the seed's format and time order follows number order.
    let rows: Vec<(String, chrono::DateTime<Utc>)> =
        sqlx::query_as("SELECT signature, registered_at FROM registrations ORDER BY number")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert!(rows.windows(2).all(|w| w[0].1 <= w[1].1));
    let date = protocol::registration_date(rows[0].1)
        .format("%d/%m/%Y")
        .to_string();
    assert_eq!(rows[0].0, format!("INPS.0040.{date}.0000001"));
    admin.close().await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn each_unit_and_year_has_its_own_sequence() {
    let env = TestEnv::new().await;
    let this_year = protocol::numbering_year(Utc::now());
    // Last year's register ended at 1631; this year starts again at 1.
    sqlx::query("INSERT INTO protocol_counters (aoo, year, last_number) VALUES ('0040', $1, 1631)")
        .bind(this_year - 1)
        .execute(&env.pool)
        .await
        .unwrap();
    let mut tx = env.pool.begin().await.unwrap();
    let a = register::register(
        &mut tx,
        &[request("0040"), request("0041"), request("0040")],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        a.iter()
            .map(|r| (r.aoo.as_str(), r.number))
            .collect::<Vec<_>>(),
        vec![("0040", 1), ("0041", 1), ("0040", 2)]
    );
    assert!(a.iter().all(|r| r.year == this_year));
    env.cleanup().await;
}

#[actix_rt::test]
async fn registering_the_same_request_twice_returns_the_same_registration() {
    let env = TestEnv::new().await;
    let once = request("0040");
    let mut tx = env.pool.begin().await.unwrap();
    let first = register::register(&mut tx, std::slice::from_ref(&once))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = env.pool.begin().await.unwrap();
    let again = register::register(&mut tx, &[once.clone(), request("0040")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again[0], first[0]);
    assert_eq!(again[1].number, 2, "no number was spent on the repeat");
    env.cleanup().await;
}

#[actix_rt::test]
async fn registrations_are_never_edited_only_annulled() {
    let env = TestEnv::new().await;
    let mut tx = env.pool.begin().await.unwrap();
    let registration = register::register(&mut tx, &[request("0040")])
        .await
        .unwrap()
        .remove(0);
    tx.commit().await.unwrap();

    let edit = sqlx::query("UPDATE registrations SET subject = 'altro' WHERE id = $1")
        .bind(registration.id)
        .execute(&env.pool)
        .await;
    assert!(edit.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM registrations WHERE id = $1")
        .bind(registration.id)
        .execute(&env.pool)
        .await;
    assert!(delete.is_err());

    let operator = json!({"kind": "operator", "operator_id": "E0013609", "office": "0040"});
    let mut conn = env.pool.acquire().await.unwrap();
    assert_eq!(
        register::annul(&mut conn, registration.id, "documento errato", &operator)
            .await
            .unwrap(),
        AnnulOutcome::Annulled
    );
    assert_eq!(
        register::annul(&mut conn, registration.id, "di nuovo", &operator)
            .await
            .unwrap(),
        AnnulOutcome::AlreadyAnnulled
    );
    assert_eq!(
        register::annul(&mut conn, Uuid::now_v7(), "?", &operator)
            .await
            .unwrap(),
        AnnulOutcome::NotFound
    );
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM registration_annulments WHERE registration_id = $1")
            .bind(registration.id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(reason, "documento errato");
    drop(conn);
    env.cleanup().await;
}

/// Noon of a Rome calendar day, in UTC.
fn noon_in_rome(day: NaiveDate) -> DateTime<Utc> {
    TIME_ZONE
        .from_local_datetime(&day.and_time(NaiveTime::from_hms_opt(12, 0, 0).unwrap()))
        .unwrap()
        .with_timezone(&Utc)
}

/// A registration made on an earlier day, written as if by an earlier run
/// (the register only ever looks back). Its signature is returned.
async fn insert_registration_on(env: &TestEnv, day: NaiveDate, number: i64) -> String {
    let signature = format!("INPS.0099.{}.{number:07}", day.format("%d/%m/%Y"));
    sqlx::query(
        "INSERT INTO registrations (id, aoo, year, number, signature, registered_at, registered_by, subject, files, request_id, correlation_id)
         VALUES ($1, '0099', 2000, $2, $3, $4, '{}', 'vecchio', '[]', $5, 'c')",
    )
    .bind(Uuid::now_v7())
    .bind(number)
    .bind(&signature)
    .bind(noon_in_rome(day))
    .bind(Uuid::now_v7())
    .execute(&env.pool)
    .await
    .unwrap();
    signature
}

/// Someone with database rights edits a day's stored register.
async fn tamper_with_register(env: &TestEnv, day: NaiveDate) {
    let mut conn = env.pool.acquire().await.unwrap();
    sqlx::query("ALTER TABLE daily_registers DISABLE TRIGGER daily_registers_append_only")
        .execute(&mut *conn)
        .await
        .unwrap();
    let edited = sqlx::query("UPDATE daily_registers SET content = convert_to(replace(convert_from(content, 'UTF8'), 'vecchio', 'nuovo'), 'UTF8') WHERE day = $1")
        .bind(day)
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(edited.rows_affected(), 1);
    sqlx::query("ALTER TABLE daily_registers ENABLE TRIGGER daily_registers_append_only")
        .execute(&mut *conn)
        .await
        .unwrap();
}

async fn register_days(env: &TestEnv) -> Vec<NaiveDate> {
    sqlx::query_scalar("SELECT day FROM daily_registers ORDER BY day")
        .fetch_all(&env.pool)
        .await
        .unwrap()
}

#[actix_rt::test]
async fn the_daily_register_chain_verifies_and_detects_an_edited_day() {
    let env = TestEnv::new().await;
    let mut tx = env.pool.begin().await.unwrap();
    register::register(&mut tx, &[request("0040"), request("0040")])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let today = protocol::registration_date(Utc::now());
    // Registrations made "yesterday" and the day before.
    for days_ago in [2, 1] {
        insert_registration_on(&env, today - Days::new(days_ago), days_ago as i64).await;
    }
    let mut tx = env.pool.begin().await.unwrap();
    let produced = register::produce_daily_registers(&mut tx, today)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(produced.len(), 3, "{produced:?}");
    let mut tx = env.pool.begin().await.unwrap();
    assert!(
        register::produce_daily_registers(&mut tx, today)
            .await
            .unwrap()
            .is_empty(),
        "made once"
    );
    tx.commit().await.unwrap();
    let mut conn = env.pool.acquire().await.unwrap();
    let registers = register::daily_registers(&mut conn).await.unwrap();
    assert!(protocol::verify_chain(&registers).is_empty());
    assert!(String::from_utf8_lossy(&registers[2].content).contains("INPS.0040."));

    // Someone with database rights edits yesterday's register.
    let yesterday = registers[1].day;
    tamper_with_register(&env, yesterday).await;
    let breaks = protocol::verify_chain(&register::daily_registers(&mut conn).await.unwrap());
    assert_eq!(
        breaks,
        vec![protocol::ChainBreak::ContentEdited { day: yesterday }]
    );
    drop(conn);
    env.cleanup().await;
}

/// `sportello register verify`, the real binary, against this test's database.
async fn verify_command(env: &TestEnv) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["register", "verify", "--database-url"])
        .arg(&env.settings.database_url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[actix_rt::test]
async fn register_verify_passes_an_intact_chain_and_fails_naming_an_edited_day() {
    let env = TestEnv::new().await;
    let today = protocol::registration_date(Utc::now());
    let days: Vec<NaiveDate> = (1..=3).rev().map(|n| today - Days::new(n)).collect();
    for (number, day) in days.iter().enumerate() {
        insert_registration_on(&env, *day, number as i64 + 1).await;
    }
    let mut tx = env.pool.begin().await.unwrap();
    let produced = register::produce_daily_registers(&mut tx, days[2])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(produced, days);

    let (ok, output) = verify_command(&env).await;
    assert!(ok, "an intact chain verifies:\n{output}");
    for day in &days {
        assert!(output.contains(&format!("{day}  entries")), "{output}");
    }
    assert!(output.contains("checked 3 daily registers"), "{output}");
    assert!(output.contains("0 break(s)"), "{output}");
    assert!(!output.contains("BROKEN"), "{output}");

    tamper_with_register(&env, days[1]).await;
    let (ok, output) = verify_command(&env).await;
    assert!(!ok, "a broken chain fails:\n{output}");
    assert!(
        output.contains(&format!("break: {}: content does not match", days[1])),
        "{output}"
    );
    assert!(
        output.contains(&format!("first on {}", days[1])),
        "{output}"
    );
    // The other days are still reported intact.
    assert!(
        output.contains(&format!("{}  entries", days[0])),
        "{output}"
    );
    assert_eq!(output.matches("BROKEN").count(), 1, "{output}");
    env.cleanup().await;
}

#[actix_rt::test]
async fn register_verify_fails_when_the_database_is_unreachable() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["register", "verify", "--database-url"])
        .arg("postgres://sportello:sportello@127.0.0.1:1/none")
        .env("RUST_LOG", "off")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
}

#[actix_rt::test]
async fn the_daily_register_cron_job_produces_yesterdays_register() {
    let env = TestEnv::new().await;
    let today = protocol::registration_date(Utc::now());
    let yesterday = today - Days::new(1);
    let signature = insert_registration_on(&env, yesterday, 1).await;
    // Today's registrations wait for tomorrow's register.
    let mut tx = env.pool.begin().await.unwrap();
    register::register(&mut tx, &[request("0040")])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // The system's job, its occurrence come due (as if it were 00:30 now).
    let job = cron_jobs(&env.settings)
        .into_iter()
        .find(|job| job.name == DAILY_REGISTER_JOB)
        .expect("the daily register job is registered");
    let kind = format!("{CRON_KIND_PREFIX}{}", job.name);
    let due = Utc::now() - chrono::Duration::seconds(1);
    let mut conn = env.pool.acquire().await.unwrap();
    timers::schedule(
        &mut conn,
        &TimerRequest {
            kind: kind.clone(),
            key: job.occurrence_key(due),
            fire_at: due,
            data: json!({ "job": job.name }),
            correlation_id: format!("cron-{}", job.name),
        },
    )
    .await
    .unwrap();
    let mut fired = env
        .probe(EVENTS_EXCHANGE, &format!("timer.fired.{kind}"))
        .await;
    let workers = env.start(&[WorkerKind::Timers, WorkerKind::OutboxRelay]);
    assert!(
        eventually(WAIT, || async { !register_days(&env).await.is_empty() }).await,
        "the cron job produced no register"
    );
    let event = fired.next_json(WAIT).await.expect("timer.fired of the job");
    assert!(workers.shutdown(WAIT).await);
    assert_eq!(event["payload"]["kind"], kind.as_str());

    assert_eq!(register_days(&env).await, vec![yesterday]);
    let registers = register::daily_registers(&mut conn).await.unwrap();
    let content = String::from_utf8_lossy(&registers[0].content);
    assert!(content.contains(&signature), "{content}");
    assert!(
        !content.contains("INPS.0040."),
        "today is not in yesterday's register"
    );
    assert!(protocol::verify_chain(&registers).is_empty());

    // The job stays scheduled once, at the next 00:30 in Rome.
    let pending: Vec<DateTime<Utc>> =
        sqlx::query_scalar("SELECT fire_at FROM timers WHERE kind = $1 AND state = 'scheduled'")
            .bind(&kind)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    let next = pending[0].with_timezone(&TIME_ZONE);
    assert_eq!(next.time(), NaiveTime::from_hms_opt(0, 30, 0).unwrap());
    assert!(pending[0] > Utc::now());
    drop(conn);
    env.cleanup().await;
}
