//! The staff pages end to end in Debian's headless Chromium (driven through
//! chromedriver): sign in, the office's queue and its filters, a ticket's
//! detail, take in charge, internal note, close with an outcome; and the
//! refusals (no session, a citizen's token, another office).

mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::{redirect, StatusCode};
use serde_json::json;
use sportello::auth::TokenKeys;
use sportello::contract::{Authentication, CodiceFiscale, Principal};
use sportello::http::{self, ApiState};
use sportello::workers::WorkerKind;
use support::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver for one test, killed when dropped (even on a failed assert).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver (Debian package chromium-driver; scripts/services.sh installs it)",
            ),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]}),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return (driver, client),
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("no browser session: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn operator(office: &str) -> Principal {
    Principal::Operator {
        operator_id: format!("E{office}0001"),
        office: office.into(),
        on_behalf_of: None,
    }
}

async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

async fn type_into(client: &Client, locator: Locator<'_>, text: &str) {
    client
        .find(locator)
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(client: &Client, base: &str, token: &str) {
    client
        .goto(&format!("{base}/ufficio/accesso"))
        .await
        .unwrap();
    type_into(client, Locator::Id("token"), token).await;
    click(client, Locator::Id("accedi")).await;
}

#[actix_rt::test]
async fn an_operator_works_a_ticket_through_the_staff_pages() {
    let env = TestEnv::new().await;
    let _workers = env.start(&[WorkerKind::Intake, WorkerKind::OutboxRelay]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = http::serve(ApiState::new(&env.settings, env.pool.clone()), listener).unwrap();
    let handle = server.handle();
    actix_rt::spawn(server);
    let keys = TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer);
    let token = |who: &Principal| keys.issue(who, chrono::Duration::minutes(30)).unwrap();

    let citizen = citizen_json("RSSMRA85T10A562S");
    let crema = json!({"province": "CR", "municipality": "Crema"});
    let ticket = submit_and_wait(
        &env,
        &request_v2(
            citizen.clone(),
            "staff-1",
            "uniemens",
            "4901234567",
            "Denuncia di marzo",
            crema.clone(),
        ),
    )
    .await;
    let other = submit_and_wait(
        &env,
        &request_v2(
            citizen.clone(),
            "staff-2",
            "versamenti",
            "4901234567",
            "Versamento F24",
            crema,
        ),
    )
    .await;
    let triage = submit_and_wait(
        &env,
        &request_v2(
            citizen,
            "staff-3",
            "uniemens",
            "4901234567",
            "Senza sede",
            json!({"province": "MI", "postal_code": "20121"}),
        ),
    )
    .await;

    // Refusals, read as status codes.
    let plain = reqwest::Client::builder()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap();
    let response = plain.get(format!("{base}/ufficio")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()["location"], "/ufficio/accesso");
    let citizen_token = token(&Principal::Citizen {
        tax_code: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
        authentication: Authentication::Spid { level: 2 },
    });
    let response = plain
        .post(format!("{base}/ufficio/accesso"))
        .form(&[("token", &citizen_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "citizens cannot sign in"
    );
    let as_citizen = plain
        .get(format!("{base}/ufficio/quesiti/{ticket}"))
        .header("cookie", format!("sportello_sessione={citizen_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        as_citizen.status(),
        StatusCode::FORBIDDEN,
        "a citizen's session is not an operator's"
    );
    let response = plain
        .post(format!("{base}/ufficio/accesso"))
        .form(&[("token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let cremona = plain
        .get(format!("{base}/ufficio/quesiti/{ticket}"))
        .header(
            "cookie",
            format!("sportello_sessione={}", token(&operator("1900"))),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        cremona.status(),
        StatusCode::FORBIDDEN,
        "another office's ticket"
    );
    let cross_site = plain
        .post(format!("{base}/ufficio/quesiti/{ticket}/presa-in-carico"))
        .header(
            "cookie",
            format!("sportello_sessione={}", token(&operator("1901"))),
        )
        .header("origin", "https://evil.example")
        .form(&[("comment", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        cross_site.status(),
        StatusCode::FORBIDDEN,
        "a form from another origin"
    );

    let (_driver, client) = browser().await;
    let outcome = async {
        sign_in(&client, &base, &token(&operator("1901"))).await;
        assert!(client
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ufficio"));
        let queue = text_of(&client, "#quesiti").await;
        assert!(
            queue.contains("UniEmens - Denuncia di marzo")
                && queue.contains("Versamenti - Versamento F24"),
            "{queue}"
        );
        assert!(
            !queue.contains("Senza sede"),
            "triage tickets are not Crema's"
        );
        assert!(
            queue.contains("INPS.1901."),
            "the protocol signature is shown"
        );

        // Filters: a word of the subject, then a state.
        type_into(&client, Locator::Id("testo"), "denuncia").await;
        click(&client, Locator::Id("cerca")).await;
        let filtered = text_of(&client, "#quesiti").await;
        assert!(
            filtered.contains("Denuncia di marzo") && !filtered.contains("Versamento F24"),
            "{filtered}"
        );
        client
            .goto(&format!("{base}/ufficio?state=chiusa"))
            .await
            .unwrap();
        assert!(text_of(&client, "#quesiti")
            .await
            .contains("Nessun quesito"));

        // Detail, take in charge with a comment, an internal note, close.
        client
            .goto(&format!("{base}/ufficio?state=aperta&q=denuncia"))
            .await
            .unwrap();
        click(&client, Locator::Css("a.quesito")).await;
        assert_eq!(
            text_of(&client, "#oggetto").await,
            "UniEmens - Denuncia di marzo"
        );
        assert_eq!(text_of(&client, "#stato").await, "aperta");
        type_into(
            &client,
            Locator::Css("#form-presa textarea"),
            "Lo verifichiamo noi.",
        )
        .await;
        click(&client, Locator::Id("prendi")).await;
        assert_eq!(text_of(&client, "#stato").await, "in carico");
        type_into(
            &client,
            Locator::Id("commento"),
            "Controllare la denuncia di febbraio",
        )
        .await;
        click(&client, Locator::Id("interna")).await;
        click(&client, Locator::Id("commenta")).await;
        client
            .find(Locator::Id("esito"))
            .await
            .unwrap()
            .select_by_value("evasa")
            .await
            .unwrap();
        type_into(
            &client,
            Locator::Id("commento-chiusura"),
            "Denuncia acquisita.",
        )
        .await;
        click(&client, Locator::Id("chiudi")).await;
        assert_eq!(text_of(&client, "#stato").await, "chiusa - esito: evasa");
        let history = text_of(&client, "#storico").await;
        for expected in [
            "aperto",
            "preso in carico",
            "Lo verifichiamo noi.",
            "nota interna",
            "Controllare la denuncia di febbraio",
            "chiuso",
            "esito: evasa",
            "Denuncia acquisita.",
        ] {
            assert!(
                history.contains(expected),
                "{expected} missing from {history}"
            );
        }
        assert!(
            client.find(Locator::Id("form-presa")).await.is_err(),
            "no more actions on a closed ticket"
        );
    };
    outcome.await;

    // An illegal transition shows its reason with 409: the form for taking in
    // charge posted to a closed ticket.
    let cookie = format!("sportello_sessione={}", token(&operator("1901")));
    let late = plain
        .post(format!("{base}/ufficio/quesiti/{ticket}/presa-in-carico"))
        .header("cookie", &cookie)
        .form(&[("comment", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert!(late
        .text()
        .await
        .unwrap()
        .contains("cannot be taken in charge"));
    // The same form token twice is applied once.
    for _ in 0..2 {
        let response = plain
            .post(format!("{base}/ufficio/quesiti/{other}/commento"))
            .header("cookie", &cookie)
            .form(&[
                ("action_key", "form-abc"),
                ("text", "Una volta sola"),
                ("visibility", "public"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }

    let (state, outcome): (String, Option<String>) =
        sqlx::query_as("SELECT state::text, outcome FROM tickets WHERE id = $1")
            .bind(ticket)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), outcome.as_deref()),
        ("chiusa", Some("evasa"))
    );
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM ticket_history WHERE ticket_id = $1 ORDER BY id")
            .bind(ticket)
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["opened", "taken_in_charge", "commented", "closed"]);
    let once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM ticket_history WHERE ticket_id = $1 AND kind = 'commented'",
    )
    .bind(other)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(once, 1);
    let untouched: String = sqlx::query_scalar("SELECT state::text FROM tickets WHERE id = $1")
        .bind(triage)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(untouched, "aperta");

    let _ = client.close().await;
    handle.stop(true).await;
    env.cleanup().await;
}
