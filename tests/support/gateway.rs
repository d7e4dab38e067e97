//! Video gateways of a test (one or more processes' worth, each with its own
//! relay queue), a confirmed video appointment, and the steps of joining:
//! the citizen's SMS code (read from the test SMS provider), the operator's
//! token, and the room's WebSocket.

use std::net::TcpListener;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sportello::appointments::BookingSettings;
use sportello::auth::TokenKeys;
use sportello::domain::video::Role;
use sportello::gateway::{self, GatewayState};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::sms_provider::SmsGateway;
use super::TestEnv;

pub const PHONE: &str = "+393331234567";
pub const CITIZEN: &str = "RSSMRA85T10A562S";
/// The name the booking declared for `CITIZEN`.
pub const CITIZEN_NAME: &str = "Mario Rossi";
pub const OFFICE: &str = "4902";

pub struct Gateway {
    pub base: String,
    server: actix_web::dev::ServerHandle,
}

impl Gateway {
    /// A gateway process's worth: its own relay connection and queue.
    pub async fn start(env: &TestEnv) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = GatewayState::new(
            &env.settings,
            env.pool.clone(),
            &Uuid::new_v4().simple().to_string(),
        )
        .await
        .unwrap();
        let server = gateway::serve(state, listener).unwrap();
        let handle = server.handle();
        actix_rt::spawn(server);
        Gateway {
            base,
            server: handle,
        }
    }

    pub async fn stop(&self) {
        self.server.stop(false).await;
    }

    pub fn ws_base(&self) -> String {
        self.base.replacen("http://", "ws://", 1)
    }
}

/// A test environment whose SMS go to a fake provider.
pub async fn env_with_sms() -> (TestEnv, SmsGateway) {
    let sms = SmsGateway::start();
    let url = sms.url.clone();
    let env = TestEnv::new_with(|settings| {
        settings.sms_provider_url = Some(url);
        settings.sms_provider_user = super::sms_provider::USER.into();
        settings.sms_provider_password = super::sms_provider::PASSWORD.into();
        settings.gateway_max_frame_bytes = 16 * 1024;
    })
    .await;
    (env, sms)
}

/// A confirmed video appointment whose slot runs from `starts_in` minutes
/// from now for 20 minutes; returns its id.
pub async fn video_appointment(env: &TestEnv, starts_in: i64) -> Uuid {
    let id = Uuid::now_v7();
    let starts_at = chrono::Utc::now() + chrono::Duration::minutes(starts_in);
    let ends_at = starts_at + chrono::Duration::minutes(20);
    sqlx::query(
        "INSERT INTO appointment_slots (office_aoo, desk_kind, mode, starts_at, capacity, taken)
         VALUES ($1, 'conto_assicurativo', 'video', $2, 1, 1)",
    )
    .bind(OFFICE)
    .bind(starts_at)
    .execute(&env.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO appointments (id, subject_tax_code, booked_by, booked_by_key, channel,
             office_aoo, desk_kind, mode, starts_at, ends_at, state, hold_expires_at, phone, notes,
             request_sha256, correlation_id, created_at, updated_at, confirmed_at, citizen_name,
             gestione)
         VALUES ($1, $2, $3, $4, 'web', $5, 'conto_assicurativo', 'video', $6, $7, 'confirmed',
             now(), $8, 'Richiesta maggiori informazioni', 'x', 'test', now(), now(), now(), $9,
             'aziende_uniemens')",
    )
    .bind(id)
    .bind(CITIZEN)
    .bind(json!({"kind": "citizen", "tax_code": CITIZEN}))
    .bind(format!("citizen:{CITIZEN}"))
    .bind(OFFICE)
    .bind(starts_at)
    .bind(ends_at)
    .bind(PHONE)
    .bind(CITIZEN_NAME)
    .execute(&env.pool)
    .await
    .unwrap();
    id
}

/// The link path (`/stanza/<token>`) of `role` for the appointment.
pub async fn link(env: &TestEnv, id: Uuid, role: Role) -> String {
    let ends_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT ends_at FROM appointments WHERE id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    let full = BookingSettings::from_settings(&env.settings).room_link(id, role, ends_at);
    format!("/stanza/{}", full.rsplit_once("/stanza/").unwrap().1)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The pass cookie a response set (`name=value`).
pub fn pass_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("sportello_stanza="))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

/// The last code the fake provider delivered to the phone.
pub fn last_code(sms: &SmsGateway) -> String {
    let text = sms.delivered_to(PHONE).last().expect("an SMS").text.clone();
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .expect("a six-digit code")
        .to_owned()
}

/// A video appointment starting in `starts_in` minutes, with its citizen's
/// and its operator's join links.
pub async fn video_room(env: &TestEnv, starts_in: i64) -> (Uuid, String, String) {
    let id = video_appointment(env, starts_in).await;
    let citizen_link = link(env, id, Role::Citizen).await;
    let operator_link = link(env, id, Role::Operator).await;
    (id, citizen_link, operator_link)
}

/// Asks for a code and types it: the citizen's pass cookie.
pub async fn citizen_pass(gateway: &Gateway, sms: &SmsGateway, link: &str) -> String {
    let http = client();
    let sent = http
        .post(format!("{}{link}/codice", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sent.status(),
        StatusCode::OK,
        "{}",
        sent.text().await.unwrap()
    );
    let code = last_code(sms);
    let answer = http
        .post(format!("{}{link}/accesso", gateway.base))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    pass_of(&answer).expect("a pass")
}

/// Signs the operator (of `office`) in with a token: their pass cookie.
pub async fn operator_pass(
    env: &TestEnv,
    gateway: &Gateway,
    link: &str,
    office: &str,
) -> Result<String, StatusCode> {
    let keys = TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer);
    let token = keys
        .issue(&super::operator(office), chrono::Duration::minutes(30))
        .unwrap();
    let answer = client()
        .post(format!("{}{link}/operatore", gateway.base))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    match pass_of(&answer) {
        Some(pass) => Ok(pass),
        None => Err(answer.status()),
    }
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the room's WebSocket with `pass`; the HTTP status when refused.
pub async fn socket(
    gateway: &Gateway,
    link: &str,
    pass: &str,
    replace: bool,
) -> Result<Socket, u16> {
    let url = format!(
        "{}{link}/ws{}",
        gateway.ws_base(),
        if replace { "?replace=true" } else { "" }
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", pass.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("websocket: {error}"),
    }
}

/// The next JSON message, skipping pings; `None` when closed or silent.
pub async fn next(socket: &mut Socket) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// The next message of `kind`, skipping others.
pub async fn next_of(socket: &mut Socket, kind: &str) -> Value {
    for _ in 0..50 {
        match next(socket).await {
            Some(message) if message["type"] == kind => return message,
            Some(_) => continue,
            None => break,
        }
    }
    panic!("no `{kind}` message");
}

/// The close frame's code, after any messages.
pub async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::Text(message.to_string().into()))
        .await
        .unwrap();
}

/// The operator admits the citizen (grants them permission to publish);
/// the citizen's `state` message that follows.
pub async fn admit(operator: &mut Socket, citizen: &mut Socket, room: Uuid) -> Value {
    send(
        operator,
        json!({"type": "control", "room": room, "action": "admit"}),
    )
    .await;
    next_of(citizen, "state").await
}

/// Both seats of a room taken, each socket past its welcome, with the passes
/// that opened them (for a second tab or an upload).
pub struct Seated {
    pub citizen_pass: String,
    pub operator_pass: String,
    pub operator: Socket,
    pub citizen: Socket,
}

/// The citizen's code typed and the operator (of [`OFFICE`]) signed in, then
/// the operator's socket and the citizen's, each welcomed: where most room
/// tests start.
pub async fn seated(
    env: &TestEnv,
    gateway: &Gateway,
    sms: &SmsGateway,
    citizen_link: &str,
    operator_link: &str,
) -> Seated {
    let citizen_pass = citizen_pass(gateway, sms, citizen_link).await;
    let operator_pass = operator_pass(env, gateway, operator_link, OFFICE)
        .await
        .unwrap();
    let mut operator = socket(gateway, operator_link, &operator_pass, false)
        .await
        .unwrap();
    next_of(&mut operator, "welcome").await;
    let mut citizen = socket(gateway, citizen_link, &citizen_pass, false)
        .await
        .unwrap();
    next_of(&mut citizen, "welcome").await;
    Seated {
        citizen_pass,
        operator_pass,
        operator,
        citizen,
    }
}
