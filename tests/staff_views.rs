//! The staff pages end to end, in Debian's headless Chromium driven through
//! chromedriver, against the real broker and database: tickets opened the
//! real way (v2 requests through intake and routing), sign-in, the office's
//! queue and its filters, a ticket's detail, take in charge, internal note,
//! close with an outcome. Status codes a browser cannot read (refusals, the
//! error statuses, double submits, reassignment) are checked with reqwest.
//! `registration` sends a ticket's documents for protocol registration.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use crate::support::browser::*;
use crate::support::*;
use base64::Engine;
use fantoccini::{Client, Locator};
use futures::FutureExt;
use reqwest::{redirect, StatusCode};
use serde_json::{json, Value};
use sportello::auth::TokenKeys;
use sportello::contract::{Authentication, CodiceFiscale, Principal};

use sportello::workers::WorkerKind;
use uuid::Uuid;

mod registration;

const CITIZEN: &str = "RSSMRA85T10A562S";
const PDF: &[u8] = crate::support::fixtures::PDF;

/// Everything the scenario reaches.
struct Staff<'a> {
    env: &'a TestEnv,
    base: String,
    keys: TokenKeys,
    /// Follows no redirects, so that 303s can be asserted.
    http: reqwest::Client,
}

impl Staff<'_> {
    fn token(&self, who: &Principal) -> String {
        self.keys.issue(who, chrono::Duration::minutes(30)).unwrap()
    }

    /// The session cookie an operator gets by signing in with their token.
    /// Anyone else cannot sign in: they get a cookie holding their raw token,
    /// which is what they could forge.
    async fn cookie(&self, who: &Principal) -> String {
        let token = self.token(who);
        let response = self.sign_in(&token, None).await;
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(str::to_owned);
        cookie.unwrap_or_else(|| format!("sportello_sessione={token}"))
    }

    /// Posts the sign-in form with `token`, from a browser holding `cookie`.
    async fn sign_in(&self, token: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(format!("{}/ufficio/accesso", self.base));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.form(&[("token", token)]).send().await.unwrap()
    }

    /// GET `path` with exactly this cookie header.
    async fn get_with_cookie(&self, path: &str, cookie: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, who: Option<&Principal>, path: &str) -> (StatusCode, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(who) = who {
            request = request.header("cookie", self.cookie(who).await);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.text().await.unwrap())
    }

    async fn post(&self, who: &Principal, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie(who).await)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Publishes a v2 request on the `cassetto` channel and waits for its ticket.
    async fn open_ticket(&self, request: &Value) -> Uuid {
        self.env
            .publish("cassetto", "cassetto.request.submitted", &bytes(request))
            .await
            .unwrap();
        let message_id: Uuid = request["message_id"].as_str().unwrap().parse().unwrap();
        let find = || async {
            sqlx::query_scalar::<_, Uuid>("SELECT id FROM tickets WHERE request_message_id = $1")
                .bind(message_id)
                .fetch_optional(&self.env.pool)
                .await
                .unwrap()
        };
        assert!(
            eventually(WAIT, || async { find().await.is_some() }).await,
            "no ticket for request {message_id}"
        );
        find().await.unwrap()
    }

    async fn ticket_row(&self, id: Uuid) -> (String, String, Option<String>, String) {
        sqlx::query_as(
            "SELECT t.office_aoo, t.state::text, t.outcome, r.signature
             FROM tickets t JOIN registrations r ON r.id = t.registration_id WHERE t.id = $1",
        )
        .bind(id)
        .fetch_one(&self.env.pool)
        .await
        .unwrap()
    }
}

/// The history table's rows, one string (cells joined by `|`) per entry.
async fn history_rows(client: &Client) -> Vec<String> {
    let mut rows = Vec::new();
    for row in client
        .find_all(Locator::Css("#storico tbody tr"))
        .await
        .unwrap()
    {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await.unwrap() {
            cells.push(cell.text().await.unwrap());
        }
        rows.push(cells.join("|"));
    }
    rows
}

#[actix_rt::test]
async fn an_operator_works_a_ticket_through_the_staff_pages() {
    let env = TestEnv::new().await;
    let workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    let (base, server_handle) = crate::support::api::serve(&env);
    let staff = Staff {
        env: &env,
        base,
        keys: TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer),
        http: reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap(),
    };

    // Cleanup runs whatever the scenario did: the browser session is closed
    // (so Chromium removes its profile), then chromedriver's group is killed.
    let session = browser().await;
    let outcome = match &session {
        Ok((_, client)) => {
            AssertUnwindSafe(scenario(&staff, client))
                .catch_unwind()
                .await
        }
        Err(error) => Ok(Err(error.clone())),
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
        Ok(Err(error)) => panic!("{error}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn scenario(staff: &Staff<'_>, client: &Client) -> Result<(), String> {
    let base = staff.base.as_str();
    let crema = operator("1901");
    let cremona = operator("1900");
    let triage_office = operator("0001");

    // Three tickets, opened through intake: two routed to Crema (1901), one
    // that no rule places (Milan) to the triage office 0001.
    let citizen = citizen_json(CITIZEN);
    let mut with_attachment = request_v2(
        citizen.clone(),
        "staff-1",
        "uniemens",
        "4901234567",
        "Denuncia di marzo",
        json!({"province": "CR", "municipality": "Crema"}),
    );
    with_attachment["payload"]["attachments"] = json!([{
        "file_name": "denuncia-marzo.pdf",
        "content_base64": base64::engine::general_purpose::STANDARD.encode(PDF),
    }]);
    let ticket = staff.open_ticket(&with_attachment).await;
    let other = staff
        .open_ticket(&request_v2(
            citizen.clone(),
            "staff-2",
            "versamenti",
            "4901234567",
            "Versamento F24",
            json!({"province": "CR", "municipality": "Crema"}),
        ))
        .await;
    let triage = staff
        .open_ticket(&request_v2(
            citizen,
            "staff-3",
            "uniemens",
            "4907654321",
            "Senza sede",
            json!({"province": "MI", "municipality": "Milano", "postal_code": "20121"}),
        ))
        .await;
    let (office, _, _, signature) = staff.ticket_row(ticket).await;
    assert_eq!(office, "1901");
    assert_eq!(staff.ticket_row(other).await.0, "1901");
    assert_eq!(
        staff.ticket_row(triage).await.0,
        "0001",
        "Milan is nobody's: triage"
    );
    let attachment: Uuid = sqlx::query_scalar("SELECT id FROM documents WHERE case_id = $1")
        .bind(ticket)
        .fetch_one(&staff.env.pool)
        .await
        .unwrap();

    // --- Refusals, read as status codes.
    for path in ["/ufficio".to_owned(), format!("/ufficio/quesiti/{ticket}")] {
        let response = staff
            .http
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{path} without a session"
        );
        assert_eq!(response.headers()["location"], "/ufficio/accesso");
    }
    let a_citizen = Principal::Citizen {
        tax_code: CodiceFiscale::parse(CITIZEN).unwrap(),
        authentication: Authentication::Spid { level: 2 },
    };
    let response = staff.sign_in(&staff.token(&a_citizen), None).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "citizens do not sign in"
    );
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Accesso riservato agli operatori di sede"));
    // A cookie is a session key, not a token: a token put there by hand
    // (here a citizen's) is no session.
    for path in ["/ufficio".to_owned(), format!("/ufficio/quesiti/{ticket}")] {
        let response = staff
            .get_with_cookie(&path, &staff.cookie(&a_citizen).await)
            .await;
        assert_eq!(
            response.status(),
            StatusCode::SEE_OTHER,
            "{path} with a citizen's token as cookie"
        );
        assert_eq!(response.headers()["location"], "/ufficio/accesso");
    }
    let operator_token = staff.token(&crema);
    let response = staff
        .get_with_cookie("/ufficio", &format!("sportello_sessione={operator_token}"))
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "an operator's token as cookie"
    );

    // Signing out ends the session: the same cookie, replayed, is refused.
    let session = staff.cookie(&crema).await;
    let queue = |cookie: String| async move { staff.get_with_cookie("/ufficio", &cookie).await };
    assert_eq!(queue(session.clone()).await.status(), StatusCode::OK);
    let response = staff
        .http
        .post(format!("{base}/ufficio/uscita"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/ufficio/accesso");
    let replayed = queue(session).await;
    assert_eq!(
        replayed.status(),
        StatusCode::SEE_OTHER,
        "a session signed out of"
    );
    assert_eq!(replayed.headers()["location"], "/ufficio/accesso");
    // Signing in again from the same browser ends the session it held.
    let first = staff.cookie(&crema).await;
    let response = staff.sign_in(&staff.token(&crema), Some(&first)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        queue(first).await.status(),
        StatusCode::SEE_OTHER,
        "the session before the new sign-in"
    );
    let response = staff.sign_in("forged.token.value", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // Another office: a 403 page on the ticket and its attachment, an empty queue.
    let (status, page) = staff
        .get(Some(&cremona), &format!("/ufficio/quesiti/{ticket}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        page.contains("altra sede") && !page.contains("Denuncia di marzo"),
        "{page}"
    );
    let (status, _) = staff
        .get(Some(&cremona), &format!("/ufficio/documenti/{attachment}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page) = staff.get(Some(&cremona), "/ufficio").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Nessun quesito") && !page.contains("Denuncia"),
        "{page}"
    );

    // A form posted from another site is refused and changes nothing.
    let response = staff
        .http
        .post(format!("{base}/ufficio/quesiti/{ticket}/presa-in-carico"))
        .header("cookie", staff.cookie(&crema).await)
        .header("origin", "https://evil.example")
        .form(&[("comment", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "cross-site form");
    assert_eq!(staff.ticket_row(ticket).await.1, "aperta");

    // Invalid filters: the queue with the reason (in Italian), 400.
    for (query, reason) in [
        (
            "opened_from=ieri",
            "«Aperti dal»: «ieri» non è una data valida",
        ),
        ("state=persa", "Stato «persa» sconosciuto"),
        ("page=abc", ""),
    ] {
        let (status, page) = staff.get(Some(&crema), &format!("/ufficio?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            page.contains("id=\"errore\"") && page.contains("id=\"filtri\""),
            "{page}"
        );
        assert!(page.contains(reason), "{query}: {page}");
    }

    // The triage office sees why the ticket came to it.
    let (status, page) = staff
        .get(Some(&triage_office), &format!("/ufficio/quesiti/{triage}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Nota di smistamento"), "{page}");

    // --- In the browser: no session leads to the sign-in form.
    client.goto(&format!("{base}/ufficio")).await.unwrap();
    assert_eq!(path_of(client).await, "/ufficio/accesso");
    type_into(client, "#token", &staff.token(&crema)).await;
    submit(client, "#accedi").await;
    assert_eq!(path_of(client).await, "/ufficio");
    let queue = text_of(client, "#quesiti").await;
    assert!(
        queue.contains("UniEmens - Denuncia di marzo")
            && queue.contains("Versamenti - Versamento F24"),
        "{queue}"
    );
    assert!(
        !queue.contains("Senza sede"),
        "the triage ticket is not Crema's: {queue}"
    );
    assert!(
        queue.contains(&signature),
        "the protocol signature {signature}: {queue}"
    );

    // Filters: state and a word of the subject.
    client
        .find(Locator::Id("stato"))
        .await
        .unwrap()
        .select_by_value("aperta")
        .await
        .unwrap();
    type_into(client, "#testo", "denuncia").await;
    submit(client, "#cerca").await;
    let filtered = text_of(client, "#quesiti").await;
    assert!(
        filtered.contains("Denuncia di marzo") && !filtered.contains("Versamento F24"),
        "{filtered}"
    );
    let url = client.current_url().await.unwrap();
    assert!(
        url.query()
            .is_some_and(|q| q.contains("state=aperta") && q.contains("q=denuncia")),
        "{url}"
    );
    client
        .goto(&format!("{base}/ufficio?state=chiusa"))
        .await
        .unwrap();
    assert!(text_of(client, "#quesiti").await.contains("Nessun quesito"));
    client.back().await.unwrap();

    // The detail.
    submit(client, "a.quesito").await;
    assert_eq!(path_of(client).await, format!("/ufficio/quesiti/{ticket}"));
    assert_eq!(
        text_of(client, "#oggetto").await,
        "UniEmens - Denuncia di marzo"
    );
    assert_eq!(text_of(client, "#stato").await, "aperta");
    assert_eq!(text_of(client, "#segnatura").await, signature);
    assert!(text_of(client, "#sede").await.starts_with("1901"));
    assert_eq!(text_of(client, "#testo").await, "Testo della richiesta.");
    let attachments = text_of(client, "#allegati").await;
    assert!(
        attachments.contains("denuncia-marzo.pdf") && attachments.contains("application/pdf"),
        "{attachments}"
    );
    let href = client
        .find(Locator::Css("a.allegato"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap();
    assert_eq!(
        href.as_deref(),
        Some(format!("/ufficio/documenti/{attachment}").as_str())
    );
    assert!(
        client.find(Locator::Id("form-chiusura")).await.is_err(),
        "an open ticket is not closed yet"
    );

    // Take in charge with a comment, an internal note, close as evasa.
    type_into(client, "#commento-presa", "Lo verifichiamo noi.").await;
    submit(client, "#prendi").await;
    assert_eq!(text_of(client, "#stato").await, "in carico");
    assert_eq!(text_of(client, "#assegnato").await, "E19010001");
    assert!(client.find(Locator::Id("form-presa")).await.is_err());
    type_into(client, "#commento", "Controllare la denuncia di febbraio").await;
    client
        .find(Locator::Id("interno"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    submit(client, "#commenta").await;
    client
        .find(Locator::Id("esito"))
        .await
        .unwrap()
        .select_by_value("evasa")
        .await
        .unwrap();
    type_into(client, "#commento-chiusura", "Denuncia acquisita.").await;
    submit(client, "#chiudi").await;
    assert_eq!(text_of(client, "#stato").await, "chiusa - esito: evasa");
    let history = history_rows(client).await;
    assert_eq!(history.len(), 4, "{history:#?}");
    let expected: [&[&str]; 4] = [
        &["aperta", "cittadino", "pubblica"],
        &[
            "presa in carico",
            "operatore E19010001",
            "pubblica",
            "Lo verifichiamo noi.",
        ],
        &[
            "commento",
            "nota interna",
            "Controllare la denuncia di febbraio",
        ],
        &[
            "chiusura",
            "pubblica",
            "Denuncia acquisita.",
            "esito: evasa",
        ],
    ];
    for (row, parts) in history.iter().zip(expected) {
        for part in parts {
            assert!(
                row.contains(part),
                "`{part}` missing from the history row {row}"
            );
        }
        let when = row.split('|').next().unwrap_or_default();
        assert!(
            chrono::NaiveDateTime::parse_from_str(when, "%d/%m/%Y %H:%M").is_ok(),
            "dd/mm/yyyy HH:MM: {when}"
        );
    }
    for form in [
        "form-presa",
        "form-commento",
        "form-chiusura",
        "form-riassegnazione",
    ] {
        assert!(
            client.find(Locator::Id(form)).await.is_err(),
            "{form} on a closed ticket"
        );
    }

    // Sign out: the queue asks for the sign-in again.
    submit(client, "#esci").await;
    assert_eq!(path_of(client).await, "/ufficio/accesso");
    client.goto(&format!("{base}/ufficio")).await.unwrap();
    assert_eq!(path_of(client).await, "/ufficio/accesso");

    // --- What the database says.
    let (_, state, outcome, _) = staff.ticket_row(ticket).await;
    assert_eq!(
        (state.as_str(), outcome.as_deref()),
        ("chiusa", Some("evasa"))
    );
    let entries: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, visibility, comment FROM ticket_history WHERE ticket_id = $1 ORDER BY id",
    )
    .bind(ticket)
    .fetch_all(&staff.env.pool)
    .await
    .unwrap();
    let entries: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|(k, v, c)| (k.as_str(), v.as_str(), c.as_deref()))
        .collect();
    assert_eq!(
        entries,
        [
            ("opened", "public", None),
            ("taken_in_charge", "public", Some("Lo verifichiamo noi.")),
            (
                "commented",
                "internal",
                Some("Controllare la denuncia di febbraio")
            ),
            ("closed", "public", Some("Denuncia acquisita.")),
        ]
    );

    // --- Errors on the detail page carry their statuses.
    let path = format!("/ufficio/quesiti/{ticket}/presa-in-carico");
    let late = staff.post(&crema, &path, &[("comment", "")]).await;
    assert_eq!(
        late.status(),
        StatusCode::CONFLICT,
        "taking a closed ticket"
    );
    let page = late.text().await.unwrap();
    assert!(
        page.contains("non può essere preso in carico") && page.contains("id=\"storico\""),
        "{page}"
    );
    let path = format!("/ufficio/quesiti/{other}/commento");
    let empty = staff
        .post(&crema, &path, &[("text", "  "), ("visibility", "public")])
        .await;
    assert_eq!(
        empty.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "an empty comment"
    );
    let path = format!("/ufficio/quesiti/{other}/riassegnazione");
    let nowhere = staff
        .post(&crema, &path, &[("office", "9999"), ("reason", "prova")])
        .await;
    assert_eq!(
        nowhere.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "an unknown office"
    );
    let path = format!("/ufficio/quesiti/{other}/chiusura");
    let bad = staff
        .post(&crema, &path, &[("outcome", "persa"), ("comment", "x")])
        .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "an unknown outcome");

    // The same form twice (one session: its key is bound to it) is applied
    // once; the correlation id is kept.
    let cookie = staff.cookie(&crema).await;
    for _ in 0..2 {
        let response = staff
            .http
            .post(format!("{base}/ufficio/quesiti/{other}/commento"))
            .header("cookie", &cookie)
            .header("x-correlation-id", "corr-staff-double")
            .form(&[
                ("action_key", "form-abc"),
                ("text", "Una volta sola"),
                ("visibility", "public"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()["location"],
            format!("/ufficio/quesiti/{other}").as_str()
        );
    }
    let comments: Vec<String> = sqlx::query_scalar(
        "SELECT correlation_id FROM ticket_history WHERE ticket_id = $1 AND kind = 'commented'",
    )
    .bind(other)
    .fetch_all(&staff.env.pool)
    .await
    .unwrap();
    assert_eq!(comments, ["corr-staff-double"]);

    // The attachment, with the operator's cookie.
    let response = staff
        .http
        .get(format!("{base}/ufficio/documenti/{attachment}"))
        .header("cookie", staff.cookie(&crema).await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(response.bytes().await.unwrap().as_ref(), PDF);

    // Reassignment: back to the queue with a notice; the ticket is Cremona's now.
    let path = format!("/ufficio/quesiti/{other}/riassegnazione");
    let moved = staff
        .post(
            &crema,
            &path,
            &[("office", "1900"), ("reason", "Competenza di Cremona")],
        )
        .await;
    assert_eq!(moved.status(), StatusCode::SEE_OTHER);
    let to = moved.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(to, "/ufficio?riassegnato=1900");
    let (_, page) = staff.get(Some(&crema), &to).await;
    assert!(
        page.contains("Quesito riassegnato alla sede 1900") && !page.contains("Versamento F24"),
        "{page}"
    );
    let (_, page) = staff.get(Some(&cremona), "/ufficio").await;
    assert!(page.contains("Versamento F24"), "{page}");
    let (status, _) = staff
        .get(Some(&crema), &format!("/ufficio/quesiti/{other}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no longer Crema's");
    let (status, page) = staff
        .get(Some(&cremona), &format!("/ufficio/quesiti/{other}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("dalla sede 1901 alla sede 1900") && page.contains("Competenza di Cremona"),
        "{page}"
    );

    assert_eq!(
        staff.ticket_row(triage).await.1,
        "aperta",
        "nobody touched the triage ticket"
    );
    Ok(())
}
