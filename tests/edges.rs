//! The HTTP boundary as an outsider meets it: NUL characters refused in
//! every text input, stalled bodies timed out, statuses that say what
//! happened (403, 405 with Allow, JSON 404, 413, one boolean rule), and the
//! headers every answer carries.

use std::time::Duration;

use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::store::documents::{self as store, NewCase};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const CITIZEN: &str = "RSSMRA85T10A562S";
const PDF: &[u8] = crate::support::fixtures::PDF;

fn crema() -> Value {
    json!({"province": "CR", "municipality": "Crema"})
}

async fn a_ticket_of_1901(api: &Api) -> Uuid {
    submit_and_wait(
        &api.env,
        &request_v2(
            citizen_json(CITIZEN),
            &Uuid::new_v4().to_string(),
            "uniemens",
            "4901234567",
            "Denuncia di marzo",
            crema(),
        ),
    )
    .await
}

/// The session cookie of `who`, signed in on the staff pages.
async fn staff_cookie(api: &Api, who: &sportello::contract::Principal) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = api.keys.issue(who, chrono::Duration::minutes(10)).unwrap();
    let response = client
        .post(format!("{}/ufficio/accesso", api.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    response
        .headers()
        .get("set-cookie")
        .and_then(|c| c.to_str().ok())
        .and_then(|c| c.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// The English says NUL: in `detail` for a citizen, `message` for the office.
fn says_nul(body: &Value) -> bool {
    body["detail"]
        .as_str()
        .or(body["message"].as_str())
        .unwrap_or_default()
        .contains("NUL")
}

#[actix_rt::test]
async fn nul_characters_are_refused_in_every_text_input() {
    let api = Api::start().await;
    let ticket = a_ticket_of_1901(&api).await;
    let office = operator("1901");

    let refusals = [
        (
            Method::POST,
            format!("/tickets/{ticket}/comments"),
            Some(json!({"text": "prima\u{0}dopo", "visibility": "public"})),
        ),
        (
            Method::POST,
            format!("/tickets/{ticket}/reassign"),
            Some(json!({"office": "1900", "reason": "compet\u{0}enza"})),
        ),
        (
            Method::POST,
            format!("/tickets/{ticket}/reassign"),
            Some(json!({"office": "19\u{0}00", "reason": "competenza"})),
        ),
        (
            Method::POST,
            format!("/tickets/{ticket}/take-in-charge"),
            Some(json!({"comment": "\u{0}"})),
        ),
        (Method::GET, "/tickets?q=a%00b".to_owned(), None),
        (Method::GET, "/tickets?matricola=49%00".to_owned(), None),
        (
            Method::PUT,
            "/me/contacts".to_owned(),
            Some(json!({"email": "a\u{0}@example.it"})),
        ),
    ];
    for (method, path, body) in refusals {
        let who = if path == "/me/contacts" {
            citizen(CITIZEN)
        } else {
            office.clone()
        };
        let (status, answer) = api.call(method.clone(), &path, Some(&who), body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {answer}");
        assert!(says_nul(&answer), "{method} {path}: {answer}");
    }

    // The staff pages: the search form and the comment form.
    let cookie = staff_cookie(&api, &office).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = client
        .get(format!("{}/ufficio?q=x%00", api.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = client
        .post(format!("{}/ufficio/quesiti/{ticket}/commento", api.base))
        .header("cookie", &cookie)
        .form(&[
            ("action_key", Uuid::new_v4().to_string().as_str()),
            ("text", "nota\u{0}"),
            ("visibility", "internal"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.text().await.unwrap().contains("NUL"));

    // Nothing was written.
    let (_, detail) = api.get(&format!("/tickets/{ticket}"), &office).await;
    assert_eq!(
        detail["history"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    api.stop().await;
}

/// Sends `head` and `part` of a body it declares longer, then waits: the
/// answer must come within `within`, and the connection must close.
async fn stall(api: &Api, head: &str, part: &[u8], within: Duration) -> String {
    let address = api.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(part).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    String::from_utf8_lossy(&answer).into_owned()
}

#[actix_rt::test]
async fn a_stalled_body_is_answered_408_and_its_connection_closed() {
    let env = TestEnv::new_with(|s| s.http_body_timeout_seconds = 2).await;
    let api = Api::start_with(env, &[]);
    let token = api
        .keys
        .issue(&citizen(CITIZEN), chrono::Duration::minutes(10))
        .unwrap();

    let json_head = format!(
        "PUT /me/contacts HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    let answer = stall(&api, &json_head, b"{\"email\"", Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    let case_id = Uuid::now_v7();
    let upload_head = format!(
        "POST /cases/{case_id}/documents HTTP/1.1\r\nHost: test\r\n\
         Authorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n"
    );
    let part = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\
        Content-Type: application/pdf\r\n\r\n%PDF-1.7\n";
    let answer = stall(&api, &upload_head, part, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    api.stop().await;
}

#[actix_rt::test]
async fn statuses_say_what_happened() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let me = citizen(CITIZEN);
    let token = api.keys.issue(&me, chrono::Duration::minutes(10)).unwrap();

    // A known path with a method it does not serve: 405 and what it serves.
    let response = api
        .client
        .put(format!("{}/tickets", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|a| a.to_str().ok()),
        Some("GET")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed", "{body}");

    // An unknown route: a JSON problem, not an empty body.
    let (status, body) = api.call(Method::GET, "/nessuna/strada", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found", "{body}");

    // JSON over the limit.
    let big = json!({"email": "a".repeat(80 * 1024)});
    let (status, body) = api.put("/me/contacts", &me, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");

    // One boolean rule for `conformity`; and deleting what the other side
    // sent is a matter of rights (403), not of state.
    let case_id = Uuid::now_v7();
    store::insert_case(
        &mut api.env.pool.acquire().await.unwrap(),
        &NewCase {
            id: case_id,
            citizen_tax_code: CITIZEN.into(),
            matricola: None,
            office_aoo: "0040".into(),
            subject: "Videochiamata".into(),
        },
    )
    .await
    .unwrap();
    let upload = |who: sportello::contract::Principal, conformity: &'static str| {
        let token = api.keys.issue(&who, chrono::Duration::minutes(10)).unwrap();
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(PDF.to_vec())
                    .file_name("carta.pdf")
                    .mime_str("application/pdf")
                    .unwrap(),
            )
            .text("conformity", conformity);
        api.client
            .post(format!("{}/cases/{case_id}/documents", api.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
    };
    let response = upload(me.clone(), "1").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = upload(me.clone(), "TRUE").await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = upload(operator("0040"), "true").await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let sent: Value = response.json().await.unwrap();
    let sent_id = sent[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/documents/{sent_id}"),
            Some(&me),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    api.stop().await;
}

#[actix_rt::test]
async fn answers_are_not_cached_nor_sniffed() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let token = api
        .keys
        .issue(&citizen(CITIZEN), chrono::Duration::minutes(10))
        .unwrap();
    for (path, token) in [
        ("/tickets", Some(&token)),
        ("/notifications", Some(&token)),
        ("/tickets", None),
        ("/nessuna/strada", None),
    ] {
        let mut request = api.client.get(format!("{}{path}", api.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
        assert_eq!(
            header("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
    }
    api.stop().await;
}

/// Issue 27 point 9: `/favicon.ico` is served (no token), cached, and the
/// staff pages link it under a policy that lets it load.
#[actix_rt::test]
async fn the_favicon_is_served_cached_and_linked_by_the_staff_pages() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let icon = api
        .client
        .get(format!("{}/favicon.ico", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(icon.status(), StatusCode::OK);
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header(&icon, "content-type"), "image/x-icon");
    assert_eq!(header(&icon, "cache-control"), "public, max-age=86400");
    assert_eq!(header(&icon, "x-content-type-options"), "nosniff");
    assert!(icon.bytes().await.unwrap().starts_with(&[0, 0, 1, 0, 1, 0]));

    let page = api
        .client
        .get(format!("{}/ufficio/accesso", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header(&page, "content-security-policy");
    assert!(
        policy.split(';').any(|d| d.trim() == "img-src 'self'"),
        "{policy}"
    );
    assert!(page
        .text()
        .await
        .unwrap()
        .contains(r#"<link rel="icon" href="/favicon.ico""#));
    api.stop().await;
}

#[actix_rt::test]
async fn uploads_are_named_and_checked_by_what_they_are() {
    let api = Api::start_with(TestEnv::new().await, &[]);
    let me = citizen(CITIZEN);
    let token = api.keys.issue(&me, chrono::Duration::minutes(10)).unwrap();
    let case_id = Uuid::now_v7();
    store::insert_case(
        &mut api.env.pool.acquire().await.unwrap(),
        &NewCase {
            id: case_id,
            citizen_tax_code: CITIZEN.into(),
            matricola: None,
            office_aoo: "0040".into(),
            subject: "Videochiamata".into(),
        },
    )
    .await
    .unwrap();
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes)
                    .file_name(name)
                    .mime_str("text/html")
                    .unwrap(),
            )
            .text("conformity", "true");
        api.client
            .post(format!("{}/cases/{case_id}/documents", api.base))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };

    // A PDF named .html is stored and served as .pdf.
    let response = upload("ricevuta.html", PDF.to_vec()).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored[0]["file_name"], "ricevuta.pdf", "{stored}");
    let id = stored[0]["id"].as_str().unwrap();
    let served = api
        .client
        .get(format!("{}/documents/{id}/content", api.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let disposition = served
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(disposition.contains("ricevuta.pdf"), "{disposition}");
    assert_eq!(
        served
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/pdf")
    );

    // JPEG magic bytes followed by HTML, or a PDF header followed by HTML,
    // are not what they claim.
    let mut fake_jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    fake_jpeg.extend_from_slice(b"<html><script>alert(1)</script></html>");
    let mut fake_pdf = b"%PDF-1.7\n".to_vec();
    fake_pdf.extend_from_slice(b"<html><script>alert(1)</script></html>");
    for (name, bytes, kind) in [
        ("foto.jpg", fake_jpeg, "JPEG"),
        ("atto.pdf", fake_pdf, "PDF"),
    ] {
        let response = upload(name, bytes).await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        let body: Value = response.json().await.unwrap();
        // The citizen reads Italian; the English reason is the detail.
        assert_eq!(body["error"], "refused", "{body}");
        let message = body["detail"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("not a valid {kind}")),
            "{message}"
        );
    }
    api.stop().await;
}

#[actix_rt::test]
async fn a_staff_form_key_counts_only_in_its_own_session() {
    let api = Api::start().await;
    let ticket = a_ticket_of_1901(&api).await;
    let office = operator("1901");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let key = Uuid::new_v4().to_string();
    let comment = |cookie: String, text: &'static str| {
        client
            .post(format!("{}/ufficio/quesiti/{ticket}/commento", api.base))
            .header("cookie", cookie)
            .form(&[
                ("action_key", key.as_str()),
                ("text", text),
                ("visibility", "internal"),
            ])
            .send()
    };
    let mine = staff_cookie(&api, &office).await;
    let theirs = staff_cookie(&api, &office).await;
    assert_ne!(mine, theirs);
    for (cookie, text) in [(&mine, "prima"), (&mine, "prima"), (&theirs, "seconda")] {
        let response = comment(cookie.clone(), text).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    let (_, detail) = api.get(&format!("/tickets/{ticket}"), &office).await;
    let comments: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["comment"].as_str())
        .collect();
    // The resubmitted form is applied once; the same key from another
    // session is another action.
    assert_eq!(comments, vec!["prima", "seconda"], "{detail}");
    api.stop().await;
}

#[actix_rt::test]
async fn the_staff_cookie_is_secure_when_served_over_tls() {
    // Reached over plain HTTP on a loopback address (as a TLS-terminating
    // proxy that does not say so would), with an https PUBLIC_BASE_URL.
    let env = TestEnv::new_with(|settings| {
        settings.public_base_url = Some("https://sportello.example".into())
    })
    .await;
    let api = Api::start_with(env, &[]);
    let cookie = {
        let token = api
            .keys
            .issue(&operator("1901"), chrono::Duration::minutes(10))
            .unwrap();
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .post(format!("{}/ufficio/accesso", api.base))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        response
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .expect("a session cookie")
            .to_owned()
    };
    assert!(
        cookie.split(';').any(|part| part.trim() == "Secure"),
        "{cookie}"
    );
    api.stop().await;
}
