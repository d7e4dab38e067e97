//! Protocol registration from a ticket's page, in headless Chromium: the
//! operator chooses the citizen's documents, gives a subject and sends them;
//! the page says "Protocollazione in corso" (orange) until the registration
//! worker numbers them, then "Protocollato" (green) with the signature. The
//! worker starts only once the orange state was seen, so that state is
//! always there to see. Refusals (another office, another site, nothing
//! chosen) and the resent form are checked with reqwest.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use super::Staff;
use crate::support::browser::*;
use crate::support::*;
use fantoccini::{Client, Locator};
use futures::FutureExt;
use reqwest::multipart::{Form, Part};
use reqwest::{redirect, StatusCode};
use serde_json::json;
use sportello::auth::TokenKeys;

use sportello::runtime::RunningWorkers;
use sportello::workers::WorkerKind;
use uuid::Uuid;

use crate::support::fixtures::{OTHER_PDF, PDF};

const CITIZEN: &str = "RSSMRA85T10A562S";

/// A ticket of Crema (1901) to which the citizen then uploaded these files
/// (`POST /cases/{id}/documents`): they are *uploaded*, not registered,
/// unlike the files a request brings, which intake registers with it.
async fn ticket_with(staff: &Staff<'_>, key: &str, files: &[(&str, &[u8])]) -> (Uuid, Vec<Uuid>) {
    let ticket = staff
        .open_ticket(&request_v2(
            citizen_json(CITIZEN),
            key,
            "uniemens",
            "4901234567",
            "Denuncia di marzo",
            json!({"province": "CR", "municipality": "Crema"}),
        ))
        .await;
    let mut form = Form::new().text("conformity", "true");
    for (name, bytes) in files {
        form = form.part(
            "file",
            Part::bytes(bytes.to_vec())
                .file_name(name.to_string())
                .mime_str("application/pdf")
                .unwrap(),
        );
    }
    let response = staff
        .http
        .post(format!("{}/cases/{ticket}/documents", staff.base))
        .bearer_auth(staff.token(&citizen(CITIZEN)))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "the citizen's upload"
    );
    let documents: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM documents WHERE case_id = $1 ORDER BY file_name")
            .bind(ticket)
            .fetch_all(&staff.env.pool)
            .await
            .unwrap();
    assert_eq!(documents.len(), files.len());
    (ticket, documents)
}

async fn states(staff: &Staff<'_>, documents: &[Uuid]) -> Vec<String> {
    sqlx::query_scalar("SELECT state FROM documents WHERE id = ANY($1) ORDER BY file_name")
        .bind(documents)
        .fetch_all(&staff.env.pool)
        .await
        .unwrap()
}

/// How many times the document was sent for registration.
async fn sendings(staff: &Staff<'_>, document: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM document_transitions
         WHERE document_id = $1 AND to_state = 'registration_in_progress'",
    )
    .bind(document)
    .fetch_one(&staff.env.pool)
    .await
    .unwrap()
}

#[actix_rt::test]
async fn an_operator_sends_a_tickets_documents_for_registration() {
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

    // As in the other staff scenario: cleanup runs whatever happened.
    let mut registration = None;
    let session = browser().await;
    let outcome = match &session {
        Ok((_, client)) => {
            AssertUnwindSafe(scenario(&staff, client, &mut registration))
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
    if let Some(registration) = registration {
        registration.shutdown(Duration::from_secs(10)).await;
    }
    workers.shutdown(Duration::from_secs(10)).await;
    env.cleanup().await;
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("{error}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn scenario(
    staff: &Staff<'_>,
    client: &Client,
    registration: &mut Option<RunningWorkers>,
) -> Result<(), String> {
    let base = staff.base.as_str();
    let crema = operator("1901");
    let cremona = operator("1900");
    let (ticket, documents) = ticket_with(
        staff,
        "registration-1",
        &[("busta-paga.pdf", PDF), ("denuncia.pdf", OTHER_PDF)],
    )
    .await;
    let (resent, resent_documents) =
        ticket_with(staff, "registration-2", &[("ricevuta.pdf", PDF)]).await;
    let path = format!("/ufficio/quesiti/{ticket}/protocollazione");
    let first = documents[0].to_string();
    let second = documents[1].to_string();
    let all = [
        ("document_ids", first.as_str()),
        ("document_ids", second.as_str()),
        ("subject", "Documenti del cittadino"),
    ];

    // --- Refusals: nothing changes.
    // An operator of another office: 403, and the page says why.
    let refused = staff.post(&cremona, &path, &all).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "another office");
    let page = refused.text().await.unwrap();
    assert!(page.contains("altra sede"), "{page}");
    // The form posted from another site.
    let response = staff
        .http
        .post(format!("{base}{path}"))
        .header("cookie", staff.cookie(&crema).await)
        .header("origin", "https://evil.example")
        .form(&all)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "cross-site form");
    // No session: the sign-in.
    let response = staff
        .http
        .post(format!("{base}{path}"))
        .form(&all)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "no session");
    // Nothing chosen, no subject, another ticket's document.
    let nothing = staff.post(&crema, &path, &[("subject", "Documenti")]).await;
    assert_eq!(nothing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = nothing.text().await.unwrap();
    assert!(
        page.contains("Scegli almeno un documento") && page.contains("id=\"storico\""),
        "{page}"
    );
    let untitled = staff
        .post(
            &crema,
            &path,
            &[("document_ids", first.as_str()), ("subject", " ")],
        )
        .await;
    assert_eq!(untitled.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(untitled.text().await.unwrap().contains("oggetto"));
    let elsewhere = resent_documents[0].to_string();
    let foreign = staff
        .post(
            &crema,
            &path,
            &[
                ("document_ids", elsewhere.as_str()),
                ("subject", "Documenti"),
            ],
        )
        .await;
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND, "another ticket's");
    assert_eq!(states(staff, &documents).await, ["uploaded", "uploaded"]);
    assert_eq!(states(staff, &resent_documents).await, ["uploaded"]);

    // --- The same form twice (one session) is one request; its key used
    // again for something else is refused.
    let resent_path = format!("/ufficio/quesiti/{resent}/protocollazione");
    let cookie = staff.cookie(&crema).await;
    let post = |subject: &'static str| {
        let cookie = cookie.clone();
        let elsewhere = elsewhere.clone();
        let url = format!("{base}{resent_path}");
        async move {
            staff
                .http
                .post(url)
                .header("cookie", cookie)
                .form(&[
                    ("action_key", "form-reg"),
                    ("document_ids", elsewhere.as_str()),
                    ("subject", subject),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        let response = post("Ricevuta").await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "sent, or resent");
        assert_eq!(
            response.headers()["location"],
            format!("/ufficio/quesiti/{resent}").as_str()
        );
    }
    assert_eq!(sendings(staff, resent_documents[0]).await, 1);
    let reused = post("Altro oggetto").await;
    assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reused.text().await.unwrap().contains("già stato usato"));

    // --- In the browser: sign in, open the ticket, choose both documents.
    client.goto(&format!("{base}/ufficio")).await.unwrap();
    type_into(client, "#token", &staff.token(&crema)).await;
    submit(client, "#accedi").await;
    client
        .goto(&format!("{base}/ufficio/quesiti/{ticket}"))
        .await
        .unwrap();
    let attachments = text_of(client, "#allegati").await;
    assert!(
        attachments.contains("busta-paga.pdf") && !attachments.contains("Protocoll"),
        "not sent yet: {attachments}"
    );
    // Every input of the form is labelled.
    for id in [
        format!("protocolla-{first}"),
        format!("protocolla-{second}"),
        "oggetto-protocollo".to_owned(),
    ] {
        let label = client
            .find(Locator::XPath(&format!(
                "//label[@for='{id}' or .//input[@id='{id}']]"
            )))
            .await
            .map_err(|e| format!("no label for #{id}: {e}"))?;
        assert!(!label.text().await.unwrap().trim().is_empty(), "#{id}");
    }
    for document in [&first, &second] {
        client
            .find(Locator::Id(&format!("protocolla-{document}")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    type_into(client, "#oggetto-protocollo", "Documenti del cittadino").await;
    submit(client, "#protocolla").await;
    assert_eq!(path_of(client).await, format!("/ufficio/quesiti/{ticket}"));
    let labels = labels_of(client).await;
    assert_eq!(
        labels,
        [
            ("Protocollazione in corso".to_owned(), "orange".to_owned()),
            ("Protocollazione in corso".to_owned(), "orange".to_owned()),
        ],
        "orange until the worker numbers them"
    );
    assert!(
        client
            .find(Locator::Id("form-protocollazione"))
            .await
            .is_err(),
        "nothing left to send"
    );

    // --- The registration worker numbers them; the page, reloaded, shows it.
    *registration = Some(staff.env.start(&[WorkerKind::Registration]));
    let green = eventually(WAIT, move || async move {
        client.refresh().await.unwrap();
        let labels = labels_of(client).await;
        labels.len() == 2
            && labels
                .iter()
                .all(|(text, colour)| text == "Protocollato" && colour == "green")
    })
    .await;
    assert!(green, "still {:?}", labels_of(client).await);
    let signature: String = sqlx::query_scalar(
        "SELECT r.signature FROM registrations r JOIN documents d ON d.registration_id = r.id
         WHERE d.id = $1",
    )
    .bind(documents[0])
    .fetch_one(&staff.env.pool)
    .await
    .unwrap();
    assert!(signature.contains("1901"), "{signature}");
    let numbers: Vec<String> = {
        let mut numbers = Vec::new();
        for element in client
            .find_all(Locator::Css("#allegati .protocollo"))
            .await
            .unwrap()
        {
            numbers.push(element.text().await.unwrap());
        }
        numbers
    };
    let expected = format!("n. {signature}");
    assert_eq!(
        numbers,
        [expected.as_str(), expected.as_str()],
        "one registration"
    );
    let subject: String = sqlx::query_scalar(
        "SELECT r.subject FROM registrations r JOIN documents d ON d.registration_id = r.id
         WHERE d.id = $1",
    )
    .bind(documents[1])
    .fetch_one(&staff.env.pool)
    .await
    .unwrap();
    assert_eq!(subject, "Documenti del cittadino");

    // The resent form was registered once.
    let resent_registrations = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM registrations WHERE subject = $1")
            .bind("Ricevuta")
            .fetch_one(&staff.env.pool)
            .await
            .unwrap()
    };
    assert!(eventually(WAIT, || async { resent_registrations().await == 1 }).await);
    assert_eq!(states(staff, &resent_documents).await, ["registered"]);
    Ok(())
}

/// Each attachment's label: its text and colour.
async fn labels_of(client: &Client) -> Vec<(String, String)> {
    let mut labels = Vec::new();
    for label in client
        .find_all(Locator::Css("#allegati .etichetta"))
        .await
        .unwrap()
    {
        let style = label.attr("style").await.unwrap().unwrap_or_default();
        let colour = style
            .split_once(':')
            .map(|(_, colour)| colour.trim().trim_end_matches(';').to_owned())
            .unwrap_or_default();
        labels.push((label.text().await.unwrap(), colour));
    }
    labels
}
