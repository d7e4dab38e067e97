//! Production readiness: the identity provider's published keys (JWKS, with
//! a rotation mid-test), production mode refusing development secrets and
//! starting cleanly with proper ones (the real binary; its log must not carry
//! a secret), the health probes, and the notifications' in-doubt count.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::identity_provider::{IdentityProvider, SigningKey, ISSUER};
use crate::support::mail::{sink, wait_for_mail};
use crate::support::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::auth::{TokenError, TokenKeys, Verifier, AUDIENCE, DEVELOPMENT_SECRET};
use sportello::broker::users::BrokerUser;
use sportello::domain::notification::Medium;
use sportello::http::{self, ApiState};
use sportello::workers::WorkerKind;
use uuid::Uuid;

const BINARY: &str = env!("CARGO_BIN_EXE_sportello");

fn free_address() -> String {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

#[actix_rt::test]
async fn tokens_are_verified_by_the_published_keys_through_a_rotation() {
    let (first, ec) = (SigningKey::rsa("rsa-2026-01"), SigningKey::ec("ec-2026-01"));
    let idp = IdentityProvider::start(&[&first, &ec]);
    let min_refresh = Duration::from_millis(1500);
    let verifier = Verifier::published(&idp.jwks_url, ISSUER, min_refresh);
    let who = citizen("RSSMRA85T10A562S");

    // RS256 and ES256, one fetch for both (cached by kid).
    assert_eq!(verifier.verify(&first.sign(&who)).await.unwrap(), who);
    assert_eq!(verifier.verify(&ec.sign(&who)).await.unwrap(), who);
    assert_eq!(idp.fetches(), 1);

    // Audience and issuer are still checked.
    let foreign = first.sign_for(&who, ISSUER, "another-service");
    assert!(verifier.verify(&foreign).await.is_err());
    let elsewhere = first.sign_for(&who, "another-idp", AUDIENCE);
    assert!(verifier.verify(&elsewhere).await.is_err());

    // A key not in the set: refused, whether its kid is unknown or borrowed.
    let stranger = SigningKey::rsa("rsa-stranger");
    assert!(matches!(
        verifier.verify(&stranger.sign(&who)).await,
        Err(TokenError::UnknownKey(_))
    ));
    let impostor = SigningKey::rsa("rsa-2026-01");
    assert!(matches!(
        verifier.verify(&impostor.sign(&who)).await,
        Err(TokenError::Invalid(_))
    ));
    // Shared-key tokens are not accepted next to published keys.
    let hs256 = TokenKeys::new(DEVELOPMENT_SECRET, ISSUER)
        .issue(&who, chrono::Duration::minutes(5))
        .unwrap();
    assert!(verifier.verify(&hs256).await.is_err());

    // The provider rotates: the new key is found without a restart, but
    // unknown kids refresh the set at most once per interval.
    tokio::time::sleep(min_refresh).await;
    let second = SigningKey::rsa("rsa-2026-02");
    idp.publish(&[&second, &ec]);
    let fetches = idp.fetches();
    assert_eq!(verifier.verify(&second.sign(&who)).await.unwrap(), who);
    assert_eq!(idp.fetches(), fetches + 1);
    for _ in 0..20 {
        let forged = SigningKey::ec(&format!("forged-{}", Uuid::new_v4().simple()));
        assert!(verifier.verify(&forged.sign(&who)).await.is_err());
    }
    assert_eq!(
        idp.fetches(),
        fetches + 1,
        "unknown kids hammered the provider"
    );
    // The withdrawn key no longer verifies.
    assert!(matches!(
        verifier.verify(&first.sign(&who)).await,
        Err(TokenError::UnknownKey(_))
    ));
    idp.stop().await;
}

/// Runs the binary with only `vars` (plus PATH) in its environment.
fn sportello(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    command
}

#[test]
fn production_refuses_development_secrets_naming_each_problem() {
    let started = Instant::now();
    let output = sportello(&["up"], &[("SPORTELLO_ENV", "production")])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused before touching a service"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for problem in [
        "refusing to start in production",
        "JWT_SECRET, the development key",
        "AMQP_URL carries a password from the repository",
        "DATABASE_URL carries a password from the repository",
        "SMTP_URL sends mail in plain text",
        "staff session cookie would not be Secure",
    ] {
        assert!(
            stderr.contains(problem),
            "{problem} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("sportello-app-dev"), "{stderr}");

    // Every worker kind's own broker user is asked for.
    for user in BrokerUser::ALL {
        assert!(
            stderr.contains(&format!("{} is not set", user.setting())),
            "{} missing from:\n{stderr}",
            user.setting()
        );
    }

    // The same through the flag, one problem left: only that one is named.
    let own_urls: Vec<(&str, String)> = BrokerUser::ALL
        .iter()
        .map(|user| {
            let url = format!("amqp://{}:Xy7-prod@127.0.0.1:1/sportello", user.name());
            (user.setting(), url)
        })
        .collect();
    let mut vars: Vec<(&str, &str)> = own_urls.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend([
        ("JWT_JWKS_URL", "https://idp.inps.example/jwks.json"),
        ("AMQP_URL", "amqp://app:Xy7-prod@127.0.0.1:1/sportello"),
        (
            "DATABASE_URL",
            "postgres://app:Xy7-prod@127.0.0.1:1/sportello",
        ),
        ("SMTP_URL", "smtps://relay.inps.example"),
        ("VIDEO_LINK_SECRET", "a-video-link-key-of-its-own"),
        ("PIN_SECRET", "a-pin-key-of-its-own-of-at-least-32-bytes"),
    ]);
    let output = sportello(&["up", "--env", "production"], &vars)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert_eq!(stderr.matches("\n  - ").count(), 1, "{stderr}");
    assert!(stderr.contains("PUBLIC_BASE_URL"), "{stderr}");
    assert!(!stderr.contains("Xy7-prod"), "{stderr}");

    // A worker process needs its own kind's URL alone: without AMQP_URL
    // (the operators' user, which it never uses) or any other kind's, it
    // passes the checks and goes on to connect (and here, retries).
    let intake_url = "amqp://sportello-intake:Xy7-prod@127.0.0.1:1/sportello";
    let mut vars: Vec<(&str, &str)> = vec![("INTAKE_AMQP_URL", intake_url)];
    vars.extend([
        ("JWT_JWKS_URL", "https://idp.inps.example/jwks.json"),
        (
            "DATABASE_URL",
            "postgres://app:Xy7-prod@127.0.0.1:1/sportello",
        ),
        ("SMTP_URL", "smtps://relay.inps.example"),
        ("VIDEO_LINK_SECRET", "a-video-link-key-of-its-own"),
        ("PIN_SECRET", "a-pin-key-of-its-own-of-at-least-32-bytes"),
        ("PUBLIC_BASE_URL", "https://sportello.inps.example"),
        ("METRICS_ADDRESS", ""),
    ]);
    let mut worker = sportello(&["worker", "intake", "--env", "production"], &vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let exited = worker.try_wait().unwrap();
    let _ = worker.kill();
    let output = worker.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(exited.is_none(), "the intake worker stopped:\n{log}");
    assert!(!log.contains("refusing to start"), "{log}");
    assert!(!log.contains("Xy7-prod"), "{log}");
}

#[test]
fn help_shows_no_secret_and_secret_files_are_read() {
    let secret = format!("help-{}", Uuid::new_v4().simple());
    let url = format!("amqp://app:{secret}@broker/sportello");
    let output = sportello(
        &["up", "--help"],
        &[
            ("AMQP_URL", url.as_str()),
            ("DATABASE_URL", url.as_str()),
            ("JWT_SECRET", secret.as_str()),
            ("SMTP_URL", url.as_str()),
            ("SMS_PROVIDER_URL", url.as_str()),
            ("SMS_PROVIDER_PASSWORD", secret.as_str()),
        ],
    )
    .output()
    .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("JWT_JWKS_URL") && help.contains("SPORTELLO_ENV"));
    for leaked in [
        &secret,
        "sportello-app-dev",
        DEVELOPMENT_SECRET,
        ":sportello@",
    ] {
        assert!(!help.contains(leaked), "{leaked} in --help:\n{help}");
    }

    // A secret file that cannot be read: named, not shown.
    let output = sportello(&["up"], &[("JWT_SECRET_FILE", "/nonexistent/jwt")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("JWT_SECRET_FILE: cannot read /nonexistent/jwt"),
        "{stderr}"
    );
    // Both forms at once are refused.
    let output = sportello(
        &["up"],
        &[("JWT_SECRET_FILE", "/etc/hostname"), ("JWT_SECRET", "x")],
    )
    .output()
    .unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("both set"));
}

#[actix_rt::test]
async fn a_proper_production_start_is_ready_accepts_only_published_keys_and_logs_no_secret() {
    let env = TestEnv::new().await;
    let key = SigningKey::ec("ec-prod");
    let idp = IdentityProvider::start(&[&key]);
    let dir = std::env::temp_dir().join(format!("sportello-prod-{}", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, value: &str| {
        let path = dir.join(name);
        std::fs::write(&path, format!("{value}\n")).unwrap();
        path.to_string_lossy().into_owned()
    };
    // Secrets only in files. The broker user's password is the test's own;
    // the test database's role is the development one, so its password comes
    // through libpq's PGPASSWORD and the URL carries none.
    let amqp_url = env.user_url("sportello-app");
    let jwt_secret = format!("jwt-{}", Uuid::new_v4().simple());
    let sms_password = format!("sms-{}", Uuid::new_v4().simple());
    let smtp_password = format!("smtp-{}", Uuid::new_v4().simple());
    let database_url = env
        .settings
        .database_url
        .replacen("sportello:sportello@", "sportello@", 1);
    let smtp_url = sink()
        .url
        .replacen("smtp://", &format!("smtp://notifiche:{smtp_password}@"), 1);
    let (http_address, metrics_address) = (free_address(), free_address());
    let gateway_address = free_address();
    let files = [
        ("AMQP_URL_FILE", write("amqp", &amqp_url)),
        ("DATABASE_URL_FILE", write("database", &database_url)),
        ("JWT_SECRET_FILE", write("jwt", &jwt_secret)),
        ("SMTP_URL_FILE", write("smtp", &smtp_url)),
        ("SMS_PROVIDER_PASSWORD_FILE", write("sms", &sms_password)),
        (
            "VIDEO_LINK_SECRET_FILE",
            write("video", "a-video-link-key-of-this-test-only"),
        ),
        (
            "PIN_SECRET_FILE",
            write("pin", "a-pin-key-of-this-test-only-32-bytes-long"),
        ),
    ];
    // Each worker kind as its own broker user, from its own file.
    let own_files: Vec<(String, String)> = BrokerUser::ALL
        .iter()
        .map(|user| {
            let name = format!("{}_FILE", user.setting());
            (name, write(user.name(), &env.user_url(user.name())))
        })
        .collect();
    let documents = dir.join("documents").to_string_lossy().into_owned();
    let mut vars: Vec<(&str, &str)> = files.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.extend(own_files.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    vars.extend([
        ("SPORTELLO_ENV", "production"),
        ("PGPASSWORD", "sportello"),
        ("JWT_JWKS_URL", idp.jwks_url.as_str()),
        ("JWT_ISSUER", ISSUER),
        ("PUBLIC_BASE_URL", "https://sportello.inps.example"),
        ("SMTP_ALLOW_PLAINTEXT", "true"),
        ("SMS_PROVIDER_URL", "https://127.0.0.1:9/sms"),
        ("HTTP_ADDRESS", http_address.as_str()),
        ("METRICS_ADDRESS", metrics_address.as_str()),
        ("GATEWAY_ADDRESS", gateway_address.as_str()),
        ("DOCUMENT_STORE_DIR", documents.as_str()),
        ("RUST_LOG", "debug"),
    ]);
    let child = sportello(&["up"], &vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let base = format!("http://{http_address}");
    let ready = eventually(Duration::from_secs(60), || async {
        client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
    })
    .await;
    let live = client.get(format!("{base}/health/live")).send().await;
    // Probes answer from the cached verdict.
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let status = client
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .map(|r| r.status());
        slowest = slowest.max(started.elapsed());
        assert_eq!(status.ok(), Some(StatusCode::OK));
    }
    println!("slowest of 20 readiness probes: {slowest:?}");
    let who = citizen("RSSMRA85T10A562S");
    let tickets = |token: String| {
        let request = client.get(format!("{base}/tickets")).bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    let published = tickets(key.sign(&who)).await;
    let shared = tickets(
        TokenKeys::new(&jwt_secret, ISSUER)
            .issue(&who, chrono::Duration::minutes(5))
            .unwrap(),
    )
    .await;
    let development = tickets(
        TokenKeys::new(DEVELOPMENT_SECRET, ISSUER)
            .issue(&who, chrono::Duration::minutes(5))
            .unwrap(),
    )
    .await;

    // Stop it gracefully, then read everything it logged.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(ready, "never ready:\n{log}");
    assert_eq!(live.map(|r| r.status()).ok(), Some(StatusCode::OK));
    assert!(slowest < Duration::from_millis(200), "{slowest:?}");
    assert_eq!(published, StatusCode::OK, "{log}");
    assert_eq!(shared, StatusCode::UNAUTHORIZED);
    assert_eq!(development, StatusCode::UNAUTHORIZED);
    assert!(log.contains("production mode"), "{log}");
    let broker_password = amqp_url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, password)| password.to_owned())
        .unwrap();
    // The startup log warns of what PostgreSQL's vacuuming needs (this
    // box's server runs with autovacuum off).
    if env.autovacuum_is_off().await {
        assert!(
            log.contains("PostgreSQL autovacuum is off"),
            "no startup warning:\n{log}"
        );
    }
    for secret in [&broker_password, &jwt_secret, &sms_password, &smtp_password] {
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the log:\n{log}"
        );
    }
    idp.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    env.cleanup().await;
}

#[actix_rt::test]
async fn readiness_names_an_unreachable_broker_and_a_missing_migration() {
    let env = TestEnv::new().await;
    let serve = |settings: &sportello::config::Settings| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = http::serve(ApiState::new(settings, env.pool.clone()), listener).unwrap();
        let handle = server.handle();
        actix_rt::spawn(server);
        (base, handle)
    };
    let ready = |base: String| async move {
        let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
        (response.status(), response.json::<Value>().await.unwrap())
    };
    let (good, good_server) = serve(&env.settings);
    assert_eq!(ready(good.clone()).await.0, StatusCode::OK);

    let wrong_password = sportello::config::Settings {
        amqp_url: env.settings.amqp_url.replace("-pw@", "-wrong@"),
        ..(*env.settings).clone()
    };
    let (bad, bad_server) = serve(&wrong_password);
    let (status, body) = ready(bad).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["problems"][0]
            .as_str()
            .unwrap()
            .contains("broker unreachable"),
        "{body}"
    );
    assert!(!body.to_string().contains("-wrong"), "{body}");

    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT max(version) FROM _sqlx_migrations)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    // The verdict is cached for two seconds.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = ready(good).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"status": "not_ready", "problems": ["1 database migration(s) not applied"]})
    );
    good_server.stop(true).await;
    bad_server.stop(true).await;
    env.cleanup().await;
}

/// A database that refuses connections (nothing listens on the port): the
/// log says so once with the cause, each failure carries it, and readiness
/// names it, where sqlx alone says only "pool timed out".
#[actix_rt::test]
async fn a_database_outage_is_logged_once_with_its_cause() {
    let closed = free_address();
    let database_url = format!("postgres://sportello:sportello@{closed}/sportello");
    let mut worker = sportello(
        &["worker", "timers"],
        &[
            ("DATABASE_URL", database_url.as_str()),
            ("METRICS_ADDRESS", ""),
            ("RUST_LOG", "info"),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Two failed runs: each waits out the pool's 5 s acquire timeout.
    tokio::time::sleep(Duration::from_secs(13)).await;
    worker.kill().unwrap();
    let output = worker.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let lost: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("PostgreSQL unreachable"))
        .collect();
    assert_eq!(lost.len(), 1, "{log}");
    assert!(lost[0].contains("connection refused"), "{log}");
    assert!(lost[0].contains(&format!("{closed}/sportello")), "{log}");
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("worker failed; restarting"))
        .collect();
    assert!(failures.len() >= 2, "{log}");
    for failure in failures {
        assert!(
            failure.contains("is unreachable: connection refused"),
            "{failure}"
        );
    }
    assert!(!log.contains("sportello:sportello@"), "{log}");

    // Readiness names the cause too.
    let env = TestEnv::new().await;
    let settings = sportello::config::Settings {
        database_url: database_url.clone(),
        ..(*env.settings).clone()
    };
    let pool = sportello::store::connect_lazy(&database_url, 2).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = http::serve(ApiState::new(&settings, pool), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["problems"].as_array().unwrap().iter().any(|p| p
            .as_str()
            .unwrap()
            .starts_with("database unreachable: connection refused")),
        "{body}"
    );
    handle.stop(true).await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_delivery_left_sending_by_a_dead_sender_is_counted_in_doubt_and_resent_after_the_setting()
{
    let env = TestEnv::new_with(|settings| {
        settings.smtp_url = sink().url.clone();
        settings.notify_in_doubt_seconds = 2;
    })
    .await;
    let workers = env.start(&[
        WorkerKind::Intake,
        WorkerKind::OutboxRelay,
        WorkerKind::Notify,
    ]);
    let address = format!("in-doubt.{}@example.it", Uuid::new_v4().simple());
    let mut request = request_v2(
        citizen_json("RSSMRA85T10A562S"),
        "in-doubt-1",
        "uniemens",
        "4901234567",
        "Denuncia di marzo",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    request["payload"]["contact"] = json!({"email": address});
    submit_and_wait(&env, &request).await;
    let queued = eventually(Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deliveries WHERE medium = 'email'")
            .fetch_one(&env.pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert!(queued);
    // A sender claims it and dies before recording anything.
    let mut conn = env.pool.acquire().await.unwrap();
    let claimed = sportello::store::notifications::claim_due(
        &mut conn,
        Medium::Email,
        10,
        env.settings.notify_in_doubt(),
        8,
    )
    .await
    .unwrap();
    assert_eq!(claimed.len(), 1);
    drop(conn);
    let crashed_at = Instant::now();

    let sender = env.start(&[WorkerKind::EmailSender]);
    let mail = wait_for_mail(&address, Duration::from_secs(20)).await;
    let waited = crashed_at.elapsed();
    assert_eq!(mail.len(), 1);
    assert!(
        waited >= Duration::from_secs(2),
        "resent before the window: {waited:?}"
    );
    let counted = sportello::metrics::metrics().encode();
    assert!(
        counted.contains("sportello_deliveries_in_doubt_total{medium=\"email\"} 1"),
        "{counted}"
    );
    let log: Vec<(i32, String, Option<String>)> =
        sqlx::query_as("SELECT attempt, outcome, detail FROM delivery_attempts ORDER BY attempt")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0].2.as_deref().unwrap_or("").contains("lost"),
        "{log:?}"
    );
    assert_eq!(log[1].1, "sent");
    sender.shutdown(Duration::from_secs(5)).await;
    workers.shutdown(Duration::from_secs(5)).await;
    env.cleanup().await;
}
