//! The appointment staff pages end to end, in headless Chromium against the
//! real broker and database (as tests/staff_views.rs): the office's agenda
//! of a day, and "Richiamate", where an operator takes one phone call-back
//! from the desk's queue, records its outcome (acked only after the commit),
//! and an unanswered call goes back to the queue. Refusals and statuses a
//! browser cannot read are checked with reqwest.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::support::browser::*;
use crate::support::*;
use chrono::{Datelike, NaiveDate, Utc};
use fantoccini::{Client, Locator};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use reqwest::{redirect, StatusCode};
use sportello::appointments::{self, BookingSettings, HoldRequest};
use sportello::auth::TokenKeys;
use sportello::broker::{self, names};
use sportello::contract::Principal;
use sportello::domain::appointment::Mode;
use sportello::domain::video::link::{latest_use, LinkSigner};
use sportello::domain::video::{Role, WINDOW_HOURS};

use sportello::workers::WorkerKind;
use uuid::Uuid;

const CREMA: &str = "1901";
const CREMONA: &str = "1900";
const DESK: &str = "conto_assicurativo";
const CREMA_CITIZEN: &str = "RSSMRA85T10A562S";
/// The name Crema's citizen declares when booking.
const CREMA_CITIZEN_NAME: &str = "Mario Rossi";
const IN_PERSON_CITIZEN: &str = "FRRLCU75C41D969A";
const CREMONA_CITIZEN: &str = "BNCGVN70A41F205O";

/// The app, its workers and an HTTP client that follows no redirects.
struct Desk<'a> {
    env: &'a TestEnv,
    base: String,
    keys: TokenKeys,
    http: reqwest::Client,
}

impl Desk<'_> {
    fn token(&self, who: &Principal) -> String {
        self.keys.issue(who, chrono::Duration::minutes(30)).unwrap()
    }

    /// The session cookie an operator gets by signing in with their token.
    async fn cookie(&self, who: &Principal) -> String {
        let response = self
            .http
            .post(format!("{}/ufficio/accesso", self.base))
            .form(&[("token", self.token(who))])
            .send()
            .await
            .unwrap();
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned()
    }

    /// GET `path` with exactly this cookie header.
    async fn get_with_cookie(&self, path: &str, cookie: &str) -> (StatusCode, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    /// POST the form with this cookie header (none: `""`) and `Origin`.
    async fn post_with_cookie(
        &self,
        path: &str,
        cookie: &str,
        origin: Option<&str>,
        form: &[(&str, &str)],
    ) -> (StatusCode, String, String) {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if !cookie.is_empty() {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let response = request.send().await.unwrap();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status(), location, response.text().await.unwrap())
    }

    /// Books (and, if `confirm`, confirms) the first free slot of the day at
    /// the office's desk, as the citizen; returns the appointment's id.
    async fn book(
        &self,
        office: &str,
        mode: Mode,
        day: NaiveDate,
        citizen_tax_code: &str,
        confirm: bool,
    ) -> Uuid {
        let settings = BookingSettings::from_settings(&self.env.settings);
        let slot = first_free(self.env, office, mode, day)
            .await
            .unwrap_or_else(|| panic!("no free {mode:?} slot at {office} on {day}"));
        let who = citizen(citizen_tax_code);
        let request = HoldRequest {
            office: office.into(),
            desk: DESK.into(),
            mode: mode.as_str().into(),
            starts_at: slot,
            phone: "+393331234567".into(),
            notes: format!("Richiesta di {citizen_tax_code}"),
            ticket_id: None,
            on_behalf_of: None,
            matricola: None,
            gestione: None,
            channel: None,
            citizen_name: (citizen_tax_code == CREMA_CITIZEN).then(|| CREMA_CITIZEN_NAME.into()),
        };
        let hold = appointments::hold(&self.env.pool, &settings, &who, &request, None, "t")
            .await
            .unwrap();
        let id = hold.appointment.id;
        if confirm {
            appointments::confirm(&self.env.pool, &settings, &who, id, "t")
                .await
                .unwrap();
        }
        id
    }
}

async fn first_free(
    env: &TestEnv,
    office: &str,
    mode: Mode,
    day: NaiveDate,
) -> Option<chrono::DateTime<Utc>> {
    let mut conn = env.pool.acquire().await.unwrap();
    appointments::availability(&mut conn, office, DESK, mode, day, day, Utc::now())
        .await
        .ok()?
        .slots
        .first()
        .map(|slot| slot.starts_at)
}

/// A day at least two days ahead when Crema and Cremona both take phone
/// call-backs and Crema in-person visits at the desk (no holiday, no video day).
async fn common_day(env: &TestEnv) -> NaiveDate {
    let mut day = Utc::now().date_naive() + chrono::Duration::days(2);
    for _ in 0..30 {
        if day.weekday().number_from_monday() <= 5
            && first_free(env, CREMA, Mode::Phone, day).await.is_some()
            && first_free(env, CREMA, Mode::InPerson, day).await.is_some()
            && first_free(env, CREMONA, Mode::Phone, day).await.is_some()
        {
            return day;
        }
        day += chrono::Duration::days(1);
    }
    panic!("no day with phone call-backs at both offices");
}

/// A day at least two days ahead with a free video slot at Crema's desk.
async fn video_day(env: &TestEnv) -> NaiveDate {
    let mut day = Utc::now().date_naive() + chrono::Duration::days(2);
    for _ in 0..30 {
        if first_free(env, CREMA, Mode::Video, day).await.is_some() {
            return day;
        }
        day += chrono::Duration::days(1);
    }
    panic!("no video day at Crema");
}

/// Calls ready on the desk's queue of `office` (not those someone holds).
async fn waiting(env: &TestEnv, office: &str) -> u32 {
    let connection = broker::connect(&env.user_url("sportello-app"), "test-count")
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let count = channel
        .queue_declare(
            names::callback_queue(office, DESK).as_str().into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .map(|queue| queue.message_count())
        .unwrap_or(u32::MAX);
    let _ = connection.close(200, "counted".into()).await;
    count
}

async fn waiting_becomes(env: &TestEnv, office: &str, count: u32) -> bool {
    eventually(WAIT, || async { waiting(env, office).await == count }).await
}

/// Makes the pending call-back timers due now (time passing, in a test).
async fn calls_due_now(env: &TestEnv) {
    sqlx::query(
        "UPDATE timers SET fire_at = now()
         WHERE kind = 'appointment.callback' AND state = 'scheduled'",
    )
    .execute(&env.pool)
    .await
    .unwrap();
}

/// Runs `scenario` with an app (API + `kinds`) and a browser, cleaning up
/// whatever happened.
async fn with_app<F>(
    adjust: impl FnOnce(&mut sportello::config::Settings),
    kinds: &[WorkerKind],
    scenario: F,
) where
    F: for<'a> FnOnce(&'a Desk<'a>, &'a Client) -> LocalBoxFuture<'a, ()>,
{
    let env = TestEnv::new_with(adjust).await;
    let workers = env.start(kinds);
    let (base, server_handle) = crate::support::api::serve(&env);
    let desk = Desk {
        env: &env,
        base,
        keys: TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer),
        http: reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
    };
    let session = browser().await;
    let outcome = match &session {
        Ok((_, client)) => Ok(AssertUnwindSafe(scenario(&desk, client))
            .catch_unwind()
            .await),
        Err(error) => Err(error.clone()),
    };
    if let Ok((driver, client)) = session {
        let _ = client.close().await;
        drop(driver);
    }
    server_handle.stop(true).await;
    workers.shutdown(Duration::from_secs(10)).await;
    env.cleanup().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(error) => panic!("{error}"),
    }
}

async fn sign_in(desk: &Desk<'_>, client: &Client, who: &Principal) {
    client
        .goto(&format!("{}/ufficio/accesso", desk.base))
        .await
        .unwrap();
    type_into(client, "#token", &desk.token(who)).await;
    submit(client, "#accedi").await;
    assert_eq!(path_of(client).await, "/ufficio");
}

#[actix_rt::test]
async fn the_agenda_shows_the_office_appointments_of_a_day_and_no_other_office() {
    with_app(
        |_| {},
        &[],
        |desk, client| {
            Box::pin(async move {
                let day = common_day(desk.env).await;
                desk.book(CREMA, Mode::Phone, day, CREMA_CITIZEN, true)
                    .await;
                desk.book(CREMA, Mode::InPerson, day, IN_PERSON_CITIZEN, false)
                    .await;
                desk.book(CREMONA, Mode::Phone, day, CREMONA_CITIZEN, true)
                    .await;
                let giorno = day.format("%Y-%m-%d").to_string();

                sign_in(desk, client, &operator(CREMA)).await;
                client
                    .find(Locator::Css("#nav-agenda"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                assert_eq!(path_of(client).await, "/ufficio/agenda");
                client
                    .goto(&format!("{}/ufficio/agenda?giorno={giorno}", desk.base))
                    .await
                    .unwrap();
                let agenda = text_of(client, "#appuntamenti").await;
                assert!(
                    agenda.contains(CREMA_CITIZEN) && agenda.contains(IN_PERSON_CITIZEN),
                    "{agenda}"
                );
                assert!(
                    agenda.contains("ricontatto telefonico")
                        && agenda.contains("in presenza")
                        && agenda.contains("confermato")
                        && agenda.contains("prenotato")
                        && agenda.contains("+393331234567"),
                    "{agenda}"
                );
                assert!(
                    !agenda.contains(CREMONA_CITIZEN),
                    "another office's: {agenda}"
                );
                assert!(agenda.contains(CREMA_CITIZEN_NAME), "{agenda}");
                // No video appointment that day: no room to enter.
                assert!(!agenda.contains("Entra nella stanza"), "{agenda}");

                // The next day has none of them; back to the day by its link.
                submit_link(client, "#giorno-successivo").await;
                assert!(text_of(client, "#appuntamenti")
                    .await
                    .contains("Nessun appuntamento"));
                submit_link(client, "#giorno-precedente").await;
                assert!(text_of(client, "#appuntamenti")
                    .await
                    .contains(CREMA_CITIZEN));

                // Another desk of the office: none there.
                let cookie = desk.cookie(&operator(CREMA)).await;
                let (status, page) = desk
                    .get_with_cookie(
                        &format!("/ufficio/agenda?giorno={giorno}&sportello=ammortizzatori"),
                        &cookie,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK);
                assert!(page.contains("Nessun appuntamento"), "{page}");
                // Cremona's operator sees Cremona's, not Crema's.
                let cookie = desk.cookie(&operator(CREMONA)).await;
                let (_, page) = desk
                    .get_with_cookie(&format!("/ufficio/agenda?giorno={giorno}"), &cookie)
                    .await;
                assert!(
                    page.contains(CREMONA_CITIZEN) && !page.contains(CREMA_CITIZEN),
                    "{page}"
                );
                // Bad input and no session.
                let (status, page) = desk
                    .get_with_cookie("/ufficio/agenda?giorno=2026-02-30", &cookie)
                    .await;
                assert_eq!(status, StatusCode::BAD_REQUEST);
                assert!(page.contains("non è una data valida"), "{page}");
                let (status, _) = desk.get_with_cookie("/ufficio/agenda", "").await;
                assert_eq!(status, StatusCode::SEE_OTHER);

                // A confirmed video appointment has the operator's join link,
                // for its room and the operator's role only; a held one none.
                let video = day_of_video(desk, client).await;
                assert!(video.is_ok(), "{video:?}");
            })
        },
    )
    .await;
}

/// Books a confirmed and a held video appointment on Crema's video day and
/// reads the agenda of that day: the confirmed one's "Entra nella stanza"
/// link must be the operator's link to its room, signed as the video link
/// rules say (valid to the slot's end plus the document window).
async fn day_of_video(desk: &Desk<'_>, client: &Client) -> Result<(), String> {
    let day = video_day(desk.env).await;
    let confirmed = desk
        .book(CREMA, Mode::Video, day, CREMA_CITIZEN, true)
        .await;
    desk.book(CREMA, Mode::Video, day, IN_PERSON_CITIZEN, false)
        .await;
    client
        .goto(&format!(
            "{}/ufficio/agenda?giorno={}",
            desk.base,
            day.format("%Y-%m-%d")
        ))
        .await
        .map_err(|e| e.to_string())?;
    let links = client
        .find_all(Locator::Css("#appuntamenti a.entra"))
        .await
        .map_err(|e| e.to_string())?;
    if links.len() != 1 {
        return Err(format!("{} join links, not 1", links.len()));
    }
    let text = links[0].text().await.map_err(|e| e.to_string())?;
    let href = links[0]
        .attr("href")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    if text.trim() != "Entra nella stanza" {
        return Err(format!("link text `{text}`"));
    }
    let ends_at: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT ends_at FROM appointments WHERE id = $1")
            .bind(confirmed)
            .fetch_one(&desk.env.pool)
            .await
            .map_err(|e| e.to_string())?;
    let settings = &desk.env.settings;
    let expected =
        BookingSettings::from_settings(settings).room_link(confirmed, Role::Operator, ends_at);
    if href != expected {
        return Err(format!("href {href}, expected {expected}"));
    }
    let token = href
        .rsplit_once("/stanza/")
        .map(|(_, t)| t)
        .unwrap_or_default();
    let verified = LinkSigner::new(&settings.video_link_secret)
        .verify(token, Utc::now())
        .map_err(|e| e.to_string())?;
    if (verified.appointment_id, verified.role) != (confirmed, Role::Operator) {
        return Err(format!("{verified:?}"));
    }
    // Valid to the slot's end plus the longest document window.
    if verified.expires_at.timestamp() != latest_use(ends_at).timestamp()
        || latest_use(ends_at) < ends_at + chrono::Duration::hours(WINDOW_HOURS)
    {
        return Err(format!("expires {}", verified.expires_at));
    }
    // The citizen's link is not on the operator's page.
    let citizen_link = BookingSettings::from_settings(settings).video_link(confirmed, ends_at);
    let page = client.source().await.map_err(|e| e.to_string())?;
    let citizen_token = citizen_link
        .rsplit_once("/stanza/")
        .map(|(_, t)| t)
        .unwrap_or_default();
    if page.contains(citizen_token) {
        return Err("the citizen's link is on the agenda".into());
    }
    Ok(())
}

/// Clicks a link and waits for the page it leads to.
async fn submit_link(client: &Client, css: &str) {
    submit(client, css).await;
}

#[actix_rt::test]
async fn an_operator_takes_a_call_back_records_it_and_an_unanswered_one_goes_back() {
    let kinds = [
        WorkerKind::Appointments,
        WorkerKind::Timers,
        WorkerKind::OutboxRelay,
    ];
    with_app(
        |settings| settings.staff_call_answer_seconds = 6,
        &kinds,
        |desk, client| {
            Box::pin(async move {
                let env = desk.env;
                let day = common_day(env).await;
                let crema_call = desk
                    .book(CREMA, Mode::Phone, day, CREMA_CITIZEN, true)
                    .await;
                desk.book(CREMONA, Mode::Phone, day, CREMONA_CITIZEN, true)
                    .await;
                calls_due_now(env).await;
                assert!(
                    waiting_becomes(env, CREMA, 1).await,
                    "Crema's call not queued"
                );
                assert!(
                    waiting_becomes(env, CREMONA, 1).await,
                    "Cremona's call not queued"
                );

                // --- Taken in the browser, no answer recorded: attempt 2 is scheduled.
                sign_in(desk, client, &operator(CREMA)).await;
                client
                    .goto(&format!("{}/ufficio/richiamate", desk.base))
                    .await
                    .unwrap();
                let desks = text_of(client, "#sportelli").await;
                assert_eq!(
                    text_of(client, &format!("#sportello-{DESK} .in-attesa")).await,
                    "1",
                    "{desks}"
                );
                submit(client, &format!("#prendi-{DESK}")).await;
                assert_eq!(text_of(client, "#cittadino").await, CREMA_CITIZEN);
                assert_eq!(text_of(client, "#telefono").await, "+393331234567");
                assert!(text_of(client, "#richiamata")
                    .await
                    .contains("tentativo n. 1"));
                assert_eq!(waiting(env, CREMA).await, 0, "held, not waiting");
                client
                    .find(Locator::Css("#esito-nessuna-risposta"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                type_into(client, "#nota", "Squilla a vuoto.").await;
                submit(client, "#registra").await;
                assert_eq!(text_of(client, "#messaggio").await, "Esito registrato.");
                assert!(text_of(client, "#esiti").await.contains("nessuna risposta"));
                let (outcome, agent, note): (String, String, String) = sqlx::query_as(
                    "SELECT outcome, agent, note FROM appointment_calls
                 WHERE appointment_id = $1 AND attempt = 1",
                )
                .bind(crema_call)
                .fetch_one(&env.pool)
                .await
                .unwrap();
                assert_eq!(
                    (outcome.as_str(), agent.as_str(), note.as_str()),
                    ("no_answer", "E19010001", "Squilla a vuoto.")
                );
                let retry: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM timers WHERE kind = 'appointment.callback'
                 AND key = $1 AND state = 'scheduled'",
                )
                .bind(format!("{crema_call}:2"))
                .fetch_one(&env.pool)
                .await
                .unwrap();
                assert_eq!(retry, 1, "no_answer schedules attempt 2");
                // Acked: past the answer timeout, nothing comes back.
                tokio::time::sleep(Duration::from_secs(7)).await;
                assert_eq!(
                    waiting(env, CREMA).await,
                    0,
                    "the answered call left the queue"
                );

                // --- Attempt 2 is taken and left unanswered: back to the queue.
                calls_due_now(env).await;
                assert!(waiting_becomes(env, CREMA, 1).await, "attempt 2 not queued");
                client
                    .goto(&format!("{}/ufficio/richiamate", desk.base))
                    .await
                    .unwrap();
                submit(client, &format!("#prendi-{DESK}")).await;
                assert!(text_of(client, "#richiamata")
                    .await
                    .contains("tentativo n. 2"));
                assert_eq!(waiting(env, CREMA).await, 0);
                assert!(
                    waiting_becomes(env, CREMA, 1).await,
                    "the unanswered call did not go back"
                );
                client
                    .find(Locator::Css("#esito-fatto"))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap();
                submit(client, "#registra").await;
                assert!(
                    text_of(client, "#errore")
                        .await
                        .contains("non è più in corso"),
                    "a late answer is refused"
                );
                let open: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM appointment_calls
                 WHERE appointment_id = $1 AND attempt = 2 AND outcome IS NULL",
                )
                .bind(crema_call)
                .fetch_one(&env.pool)
                .await
                .unwrap();
                assert_eq!(open, 1, "the late answer recorded nothing");

                // --- Another office's operator neither sees nor takes Crema's call.
                let cremona = desk.cookie(&operator(CREMONA)).await;
                let (status, page) = desk.get_with_cookie("/ufficio/richiamate", &cremona).await;
                assert_eq!(status, StatusCode::OK);
                assert!(!page.contains(CREMA_CITIZEN), "{page}");
                let (status, location, _) = desk
                    .post_with_cookie(
                        "/ufficio/richiamate/prendi",
                        &cremona,
                        None,
                        &[("sportello", DESK)],
                    )
                    .await;
                assert_eq!(
                    (status, location.as_str()),
                    (StatusCode::SEE_OTHER, "/ufficio/richiamate")
                );
                let (_, page) = desk.get_with_cookie("/ufficio/richiamate", &cremona).await;
                assert!(
                    page.contains(CREMONA_CITIZEN) && !page.contains(CREMA_CITIZEN),
                    "{page}"
                );
                assert_eq!(
                    waiting(env, CREMA).await,
                    1,
                    "Crema's call stays in Crema's queue"
                );
                let crema_call_id: Uuid = sqlx::query_scalar(
                "SELECT call_id FROM appointment_calls WHERE appointment_id = $1 AND attempt = 2",
            )
            .bind(crema_call)
            .fetch_one(&env.pool)
            .await
            .unwrap();
                let (status, _, _) = desk
                    .post_with_cookie(
                        "/ufficio/richiamate/esito",
                        &cremona,
                        None,
                        &[("call_id", &crema_call_id.to_string()), ("esito", "fatto")],
                    )
                    .await;
                assert_eq!(
                    status,
                    StatusCode::CONFLICT,
                    "not a call this session holds"
                );
                let (status, _, _) = desk
                    .post_with_cookie(
                        "/ufficio/richiamate/prendi",
                        &cremona,
                        None,
                        &[("sportello", "nessuno")],
                    )
                    .await;
                assert_eq!(status, StatusCode::NOT_FOUND);
                // Cross-site, and without a session.
                let (status, _, _) = desk
                    .post_with_cookie(
                        "/ufficio/richiamate/prendi",
                        &cremona,
                        Some("http://evil.example"),
                        &[("sportello", DESK)],
                    )
                    .await;
                assert_eq!(status, StatusCode::FORBIDDEN);
                let (status, location, _) = desk
                    .post_with_cookie(
                        "/ufficio/richiamate/prendi",
                        "",
                        None,
                        &[("sportello", DESK)],
                    )
                    .await;
                assert_eq!(
                    (status, location.as_str()),
                    (StatusCode::SEE_OTHER, "/ufficio/accesso")
                );
                // Signing out hands the held call back.
                assert_eq!(waiting(env, CREMONA).await, 0);
                let (status, _, _) = desk
                    .post_with_cookie("/ufficio/uscita", &cremona, None, &[])
                    .await;
                assert_eq!(status, StatusCode::SEE_OTHER);
                assert!(
                    waiting_becomes(env, CREMONA, 1).await,
                    "sign-out kept the call"
                );
            })
        },
    )
    .await;
}
