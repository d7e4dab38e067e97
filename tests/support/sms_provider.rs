//! A stand-in for the third-party SMS gateway, behind the same HTTP interface
//! the real adapter speaks (`notifications::sms`): `POST /messages` with basic
//! credentials and a JSON submission; 2xx answers `{"id": ...}`; a repeated
//! `reference` is accepted once. Tests script failures per recipient.

use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::json;
use sportello::notifications::sms::SmsSubmission;

pub const USER: &str = "sportello";
pub const PASSWORD: &str = "sms-secret";

#[derive(Default)]
struct Book {
    /// Accepted submissions, in order; one per reference.
    delivered: Vec<SmsSubmission>,
    /// Every request that reached the gateway, accepted or not.
    requests: Vec<SmsSubmission>,
    /// Statuses to answer, in turn, to a recipient before accepting.
    scripted: HashMap<String, VecDeque<u16>>,
    /// Recipients always refused with this status.
    refused: HashMap<String, u16>,
    /// Refusals quote the text refused, as some gateways do.
    echo_refused: bool,
}

#[derive(Clone)]
pub struct SmsGateway {
    pub url: String,
    book: Arc<Mutex<Book>>,
    server: actix_web::dev::ServerHandle,
}

impl SmsGateway {
    pub fn start() -> SmsGateway {
        let book = Arc::new(Mutex::new(Book::default()));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/messages", listener.local_addr().unwrap());
        let state = web::Data::from(book.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/messages", web::post().to(submit))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        SmsGateway {
            url,
            book,
            server: handle,
        }
    }

    /// `recipient` gets these statuses, one per attempt, before it is accepted.
    pub fn fail_first(&self, recipient: &str, statuses: &[u16]) {
        self.book
            .lock()
            .unwrap()
            .scripted
            .insert(recipient.to_owned(), statuses.iter().copied().collect());
    }

    /// `recipient` is always refused with `status`.
    pub fn refuse(&self, recipient: &str, status: u16) {
        self.book
            .lock()
            .unwrap()
            .refused
            .insert(recipient.to_owned(), status);
    }

    /// `recipient` is accepted again.
    pub fn recover(&self, recipient: &str) {
        let mut book = self.book.lock().unwrap();
        book.refused.remove(recipient);
        book.scripted.remove(recipient);
    }

    /// From now on every refusal quotes the refused text in its body.
    pub fn echo_refused_text(&self) {
        self.book.lock().unwrap().echo_refused = true;
    }

    /// Every submission to `recipient` that reached the gateway, in order.
    pub fn requests_to(&self, recipient: &str) -> Vec<SmsSubmission> {
        let book = self.book.lock().unwrap();
        book.requests
            .iter()
            .filter(|s| s.recipient == recipient)
            .cloned()
            .collect()
    }

    pub fn delivered_to(&self, recipient: &str) -> Vec<SmsSubmission> {
        let book = self.book.lock().unwrap();
        book.delivered
            .iter()
            .filter(|s| s.recipient == recipient)
            .cloned()
            .collect()
    }

    pub fn requests_for(&self, recipient: &str) -> usize {
        let book = self.book.lock().unwrap();
        book.requests
            .iter()
            .filter(|s| s.recipient == recipient)
            .count()
    }

    pub async fn stop(&self) {
        self.server.stop(true).await;
    }
}

fn authorised(request: &HttpRequest) -> bool {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str())
}

async fn submit(
    request: HttpRequest,
    book: web::Data<Mutex<Book>>,
    body: web::Json<SmsSubmission>,
) -> HttpResponse {
    if !authorised(&request) {
        return HttpResponse::Unauthorized().json(json!({"error": "bad credentials"}));
    }
    let submission = body.into_inner();
    let mut book = book.lock().unwrap();
    book.requests.push(submission.clone());
    let echo = book.echo_refused.then(|| submission.text.clone());
    if let Some(status) = book.refused.get(&submission.recipient).copied() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"error": "recipient refused", "text": echo}));
    }
    if let Some(status) = book
        .scripted
        .get_mut(&submission.recipient)
        .and_then(VecDeque::pop_front)
    {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
            .json(json!({"error": "scripted failure", "text": echo}));
    }
    let id = format!("sms-{}", submission.reference);
    if !book
        .delivered
        .iter()
        .any(|s| s.reference == submission.reference)
    {
        book.delivered.push(submission);
    }
    HttpResponse::Accepted().json(json!({"id": id}))
}
