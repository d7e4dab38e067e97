//! The video-room gateway against the real broker and database: joining
//! with the SMS code, admission, the two seats, signalling relayed between
//! two gateway processes, chat kept both ways, every refusal (tampered or
//! expired link, wrong code, another room's signalling, an oversized
//! frame), and the 72-hour document window opening and expiring.

use crate::support::eventually;
use crate::support::gateway::{
    admit, citizen_pass, client, close_code, env_with_sms, last_code, link, next, next_of,
    operator_pass, seated, send, socket, video_appointment, video_room, Gateway, Seated, PHONE,
};
use reqwest::StatusCode;
use serde_json::json;
use sportello::domain::video::Role;
use sportello::workers::WorkerKind;

const WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[actix_rt::test]
async fn the_citizen_enters_with_the_sms_code_waits_and_is_admitted_chat_is_kept_both_ways() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let (id, citizen_link, operator_link) = video_room(&env, 5).await;
    let http = client();

    // Welcome page, no pass yet: the WebSocket is refused.
    let welcome = http
        .get(format!("{}{citizen_link}", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(welcome.status(), StatusCode::OK);
    assert!(welcome
        .text()
        .await
        .unwrap()
        .contains("Invia il codice via SMS"));
    assert_eq!(
        socket(&gateway, &citizen_link, "sportello_stanza=forged", false)
            .await
            .err(),
        Some(401)
    );

    // The code by SMS; a wrong one is refused with the attempts left.
    let sent = http
        .post(format!("{}{citizen_link}/codice", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::OK);
    let code = last_code(&sms);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = http
        .post(format!("{}{citizen_link}/accesso", gateway.base))
        .form(&[("code", wrong)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("restano 4 tentativi"));
    // Asking again at once is rate limited; the first code still works.
    let again = http
        .post(format!("{}{citizen_link}/codice", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sms.delivered_to(PHONE).len(), 1);
    let accepted = http
        .post(format!("{}{citizen_link}/accesso", gateway.base))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let citizen = crate::support::gateway::pass_of(&accepted).unwrap();
    // The code is spent.
    let replayed = http
        .post(format!("{}{citizen_link}/accesso", gateway.base))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    // The citizen's pass does not open the operator's link.
    assert_eq!(
        socket(&gateway, &operator_link, &citizen, false)
            .await
            .err(),
        Some(401)
    );

    // An operator of another office is refused; of this office, let in.
    assert_eq!(
        operator_pass(&env, &gateway, &operator_link, "0040").await,
        Err(StatusCode::FORBIDDEN)
    );
    let operator = operator_pass(
        &env,
        &gateway,
        &operator_link,
        crate::support::gateway::OFFICE,
    )
    .await
    .unwrap();

    let mut c = socket(&gateway, &citizen_link, &citizen, false)
        .await
        .unwrap();
    let welcome = next_of(&mut c, "welcome").await;
    assert_eq!(welcome["state"]["phase"], "waiting");
    assert_eq!(welcome["role"], "citizen");
    // Not admitted: the citizen may not publish.
    send(&mut c, json!({"type": "offer", "room": id, "sdp": "v=0"})).await;
    assert_eq!(next_of(&mut c, "error").await["code"], "not_admitted");

    let mut o = socket(&gateway, &operator_link, &operator, false)
        .await
        .unwrap();
    let welcome = next_of(&mut o, "welcome").await;
    assert_eq!(welcome["peer_present"], true);
    assert_eq!(next_of(&mut c, "peer").await["present"], true);
    assert_eq!(admit(&mut o, &mut c, id).await["phase"], "admitted");
    assert_eq!(next_of(&mut o, "state").await["phase"], "admitted");

    // Signalling both ways.
    send(
        &mut o,
        json!({"type": "offer", "room": id, "sdp": "v=0 offer"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "offer").await["sdp"], "v=0 offer");
    send(
        &mut c,
        json!({"type": "answer", "room": id, "sdp": "v=0 answer"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "answer").await["sdp"], "v=0 answer");
    send(&mut c, json!({"type": "ice", "room": id, "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}})).await;
    assert!(next_of(&mut o, "ice").await["candidate"]["candidate"]
        .as_str()
        .unwrap()
        .contains("typ host"));

    // Chat only while enabled; kept both ways.
    send(&mut c, json!({"type": "chat", "room": id, "text": "Salve"})).await;
    assert_eq!(next_of(&mut c, "error").await["code"], "chat_off");
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "chat_on"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "state").await["chat_enabled"], true);
    // Each message, once kept, reaches both (its author too: the id).
    send(
        &mut o,
        json!({"type": "chat", "room": id, "text": "Salve, mi sente?"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "chat").await["body"], "Salve, mi sente?");
    assert_eq!(next_of(&mut o, "chat").await["body"], "Salve, mi sente?");
    send(&mut c, json!({"type": "chat", "room": id, "text": "Sì"})).await;
    let received = next_of(&mut o, "chat").await;
    assert_eq!(
        (received["body"].as_str(), received["author_role"].as_str()),
        (Some("Sì"), Some("citizen"))
    );
    let kept: Vec<(String, String, uuid::Uuid)> = sqlx::query_as(
        "SELECT author_role, body, case_id FROM video_chat_messages WHERE appointment_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(
        kept.iter()
            .map(|(r, b, _)| (r.as_str(), b.as_str()))
            .collect::<Vec<_>>(),
        [("operator", "Salve, mi sente?"), ("citizen", "Sì")]
    );
    assert!(kept.iter().all(|(_, _, case)| *case == id));
    // The citizen may not control the room.
    send(
        &mut c,
        json!({"type": "control", "room": id, "action": "documents_on"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "error").await["code"], "refused");

    // Session information on the room page.
    let page = http
        .get(format!("{}{operator_link}", gateway.base))
        .header("cookie", &operator)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "Informazioni sulla sessione telematica",
        "Milano",
        "Richiesta maggiori informazioni",
        &format!(
            "Cittadino: {}, codice fiscale {}",
            crate::support::gateway::CITIZEN_NAME,
            crate::support::gateway::CITIZEN
        ),
        "Operatore E49020001",
    ] {
        assert!(page.contains(expected), "{expected} missing");
    }

    // The operator ends the call: "Chiamata terminata" for both, and the
    // appointment took place (done, with its event, in its history).
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "end_call"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "state").await["phase"], "ended");
    let state: String = sqlx::query_scalar("SELECT state FROM appointments WHERE id = $1")
        .bind(id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(state, "done");
    let completed: Vec<serde_json::Value> = sqlx::query_scalar(
        "SELECT convert_from(body, 'UTF8')::jsonb FROM outbox
         WHERE routing_key = 'appointment.completed'",
    )
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(completed.len(), 1);
    let event = &completed[0];
    sportello::contract::schemas::catalogue()
        .validate(event)
        .expect("appointment.completed validates against its schema");
    assert_eq!(event["payload"]["appointment_id"], id.to_string());
    assert_eq!(event["payload"]["completed_by"], "video_call_ended");
    assert_eq!(event["payload"]["actor_id"], "E49020001");
    let history = sportello::appointments::list(
        &env.pool,
        &crate::support::citizen(crate::support::gateway::CITIZEN),
    )
    .await
    .unwrap();
    let json = serde_json::to_value(&history).unwrap();
    assert_eq!(json[0]["id"], id.to_string());
    assert_eq!(json[0]["state"], "done");
    assert_eq!(
        json[0]["citizen_name"],
        crate::support::gateway::CITIZEN_NAME
    );
    // Ending it again is refused; nothing is announced twice.
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "end_call"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "error").await["code"], "refused");
    let announced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE routing_key = 'appointment.completed'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(announced, 1);
    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn links_codes_and_signalling_are_refused_clearly_and_nothing_else_is_disturbed() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let http = client();
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;

    // A tampered link (another appointment's id, same signature).
    let other = uuid::Uuid::now_v7();
    let tampered = citizen_link.replacen(&id.simple().to_string(), &other.simple().to_string(), 1);
    let page = http
        .get(format!("{}{tampered}", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    assert!(page
        .text()
        .await
        .unwrap()
        .contains("Collegamento non valido"));
    // A past appointment: expired. A later one: not yet.
    let past = video_appointment(&env, -60).await;
    let page = http
        .get(format!(
            "{}{}",
            gateway.base,
            link(&env, past, Role::Citizen).await
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains("Collegamento scaduto"));
    let later = video_appointment(&env, 120).await;
    let page = http
        .get(format!(
            "{}{}",
            gateway.base,
            link(&env, later, Role::Citizen).await
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::FORBIDDEN);

    // Five wrong codes spend the code: even the right one is refused then.
    http.post(format!("{}{citizen_link}/codice", gateway.base))
        .send()
        .await
        .unwrap();
    let code = last_code(&sms);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let answer = http
            .post(format!("{}{citizen_link}/accesso", gateway.base))
            .form(&[("code", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let text = answer.text().await.unwrap();
        if left > 0 {
            assert!(
                text.contains(&format!("restano {left} tentativi")),
                "{text}"
            );
        } else {
            assert!(text.contains("chiedine uno nuovo"), "{text}");
        }
    }
    let answer = http
        .post(format!("{}{citizen_link}/accesso", gateway.base))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    // A new code (after the minute) works; move the last issue back.
    sqlx::query("UPDATE video_codes SET issued_at = issued_at - interval '2 minutes'")
        .execute(&env.pool)
        .await
        .unwrap();
    let Seated {
        citizen_pass: citizen,
        operator: mut o,
        citizen: mut c,
        ..
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;
    admit(&mut o, &mut c, id).await;

    // Signalling naming another room: refused, the connection goes on.
    send(
        &mut o,
        json!({"type": "offer", "room": other, "sdp": "v=0 replayed"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "error").await["code"], "wrong_room");
    send(&mut o, json!({"type": "not-a-message", "room": id})).await;
    assert_eq!(next_of(&mut o, "error").await["code"], "invalid");
    send(
        &mut o,
        json!({"type": "offer", "room": id, "sdp": "v=0 good"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "offer").await["sdp"], "v=0 good");

    // An oversized frame closes that connection with 1009; the other stays.
    send(
        &mut c,
        json!({"type": "chat", "room": id, "text": "x".repeat(20 * 1024)}),
    )
    .await;
    assert_eq!(close_code(&mut c).await, Some(1009));
    assert_eq!(next_of(&mut o, "peer").await["present"], false);
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "chat_on"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "state").await["chat_enabled"], true);
    // The citizen comes back (the seat was released).
    let mut c = socket(&gateway, &citizen_link, &citizen, false)
        .await
        .unwrap();
    assert_eq!(
        next_of(&mut c, "welcome").await["state"]["phase"],
        "admitted"
    );

    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn a_room_never_holds_more_than_two_a_third_is_refused_or_replaces_by_choice() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    let Seated {
        citizen_pass: citizen,
        operator_pass: operator,
        operator: mut o,
        citizen: mut first,
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;

    // A second tab: refused with a clear message, closed with 1008.
    let mut second = socket(&gateway, &citizen_link, &citizen, false)
        .await
        .unwrap();
    let refused = next(&mut second).await.unwrap();
    assert_eq!(refused["code"], "occupied");
    assert_eq!(close_code(&mut second).await, Some(1008));
    // A second operator tab too.
    let mut other_operator = socket(&gateway, &operator_link, &operator, false)
        .await
        .unwrap();
    assert_eq!(next(&mut other_operator).await.unwrap()["code"], "occupied");
    let seats: i64 =
        sqlx::query_scalar("SELECT count(*) FROM video_seats WHERE appointment_id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(seats, 2);

    // By explicit choice the new tab replaces the first.
    let mut third = socket(&gateway, &citizen_link, &citizen, true)
        .await
        .unwrap();
    next_of(&mut third, "welcome").await;
    assert_eq!(next_of(&mut first, "replaced").await["type"], "replaced");
    assert_eq!(close_code(&mut first).await, Some(1008));
    admit(&mut o, &mut third, id).await;
    send(
        &mut o,
        json!({"type": "offer", "room": id, "sdp": "v=0 to the new tab"}),
    )
    .await;
    assert_eq!(
        next_of(&mut third, "offer").await["sdp"],
        "v=0 to the new tab"
    );
    let seats: i64 =
        sqlx::query_scalar("SELECT count(*) FROM video_seats WHERE appointment_id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(seats, 2);

    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn participants_on_two_gateway_processes_reach_each_other_through_the_broker() {
    let (env, sms) = env_with_sms().await;
    let one = Gateway::start(&env).await;
    let two = Gateway::start(&env).await;
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    let citizen = citizen_pass(&one, &sms, &citizen_link).await;
    let operator = operator_pass(&env, &two, &operator_link, crate::support::gateway::OFFICE)
        .await
        .unwrap();

    let mut c = socket(&one, &citizen_link, &citizen, false).await.unwrap();
    next_of(&mut c, "welcome").await;
    let mut o = socket(&two, &operator_link, &operator, false)
        .await
        .unwrap();
    assert_eq!(next_of(&mut o, "welcome").await["peer_present"], true);
    assert_eq!(next_of(&mut c, "peer").await["present"], true);
    assert_eq!(admit(&mut o, &mut c, id).await["phase"], "admitted");
    send(
        &mut o,
        json!({"type": "offer", "room": id, "sdp": "v=0 across"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "offer").await["sdp"], "v=0 across");
    send(
        &mut c,
        json!({"type": "answer", "room": id, "sdp": "v=0 back"}),
    )
    .await;
    assert_eq!(next_of(&mut o, "answer").await["sdp"], "v=0 back");
    // The seat is the room's, whichever process: a second citizen tab on
    // the other gateway is refused too.
    let mut second = socket(&two, &citizen_link, &citizen, false).await.unwrap();
    assert_eq!(next(&mut second).await.unwrap()["code"], "occupied");

    one.stop().await;
    two.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

#[actix_rt::test]
async fn the_document_window_opens_after_the_call_and_its_timer_closes_it() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let http = client();
    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    let Seated {
        citizen_pass: citizen,
        operator: mut o,
        citizen: mut c,
        ..
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;

    let upload = |pass: String| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(crate::support::fixtures::PDF.to_vec())
                    .file_name("busta-paga.pdf"),
            )
            .text("conformity", "true");
        http.post(format!("{}{citizen_link}/documenti", gateway.base))
            .header("cookie", pass)
            .multipart(form)
            .send()
    };
    // Documents off: refused.
    assert_eq!(
        upload(citizen.clone()).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    send(
        &mut o,
        json!({"type": "control", "room": id, "action": "grant_window"}),
    )
    .await;
    let state = next_of(&mut c, "state").await;
    assert_eq!(state["phase"], "window_open");
    // Uploads only, within the window.
    assert_eq!(
        upload(citizen.clone()).await.unwrap().status(),
        StatusCode::CREATED
    );
    send(
        &mut c,
        json!({"type": "chat", "room": id, "text": "ancora qui?"}),
    )
    .await;
    assert_eq!(next_of(&mut c, "error").await["code"], "chat_off");
    // Reopened during the window, the link lands on the window's page:
    // documents only, no device check, no script that could ask for them.
    let page = http
        .get(format!("{}{citizen_link}", gateway.base))
        .header("cookie", &citizen)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(r#"id="finestra-documenti""#), "{page}");
    assert!(page.contains(r#"data-window="true""#));
    assert!(page.contains("Puoi integrare i documenti mancanti fino al"));
    assert!(!page.contains(r#"id="verifica""#) && !page.contains("/static/stanza.js"));
    // Without a pass (another browser): the welcome page says what is left.
    let welcome = http
        .get(format!("{}{citizen_link}", gateway.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(welcome.contains("puoi integrare i documenti mancanti fino al"));
    let listed = http
        .get(format!("{}{citizen_link}/documenti", gateway.base))
        .header("cookie", &citizen)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    let opened: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE routing_key = 'documents.window_opened'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(opened, 1);

    // 72 hours later (the timer moved forward): closed, the link expired.
    sqlx::query("UPDATE timers SET fire_at = now() WHERE kind = 'video.window' AND key = $1")
        .bind(id.to_string())
        .execute(&env.pool)
        .await
        .unwrap();
    let timers = env.start(&[WorkerKind::Timers]);
    assert!(
        eventually(WAIT, || async {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT window_closed_at FROM video_rooms WHERE appointment_id = $1",
            )
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap()
            .is_some()
        })
        .await,
        "the window closed"
    );
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE routing_key = 'documents.window_closed'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(closed, 1);
    let page = http
        .get(format!("{}{citizen_link}", gateway.base))
        .header("cookie", &citizen)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    let page = page.text().await.unwrap();
    assert!(page.contains("Collegamento scaduto"));
    let today = chrono::Utc::now()
        .with_timezone(&sportello::domain::cron::TIME_ZONE)
        .format("%d&#x2f;%m&#x2f;%Y")
        .to_string(); // as HTML-escaped in the page
    let closed_on =
        format!("La finestra di 72 ore per inviare i documenti si è chiusa il {today} alle ");
    assert!(page.contains(&closed_on), "{page}");
    assert_eq!(
        upload(citizen.clone()).await.unwrap().status(),
        StatusCode::GONE
    );
    // An authentic link past its own expiry still says why.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(4);
    let full = sportello::appointments::BookingSettings::from_settings(&env.settings).room_link(
        id,
        Role::Citizen,
        long_ago,
    );
    let expired_link = format!("/stanza/{}", full.rsplit_once("/stanza/").unwrap().1);
    let page = http
        .get(format!("{}{expired_link}", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::GONE);
    assert!(page.text().await.unwrap().contains(&closed_on));

    timers.shutdown(std::time::Duration::from_secs(5)).await;
    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}

/// Issue 27 point 9: the gateway serves the favicon, cached, and every
/// page links it under a policy that lets it load.
#[actix_rt::test]
async fn the_favicon_is_served_cached_and_linked_by_every_room_page() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let (_, citizen_link, _) = video_room(&env, 5).await;
    let http = client();
    let icon = http
        .get(format!("{}/favicon.ico", gateway.base))
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
    assert!(icon.bytes().await.unwrap().starts_with(&[0, 0, 1, 0, 1, 0]));
    for path in [citizen_link.clone(), "/stanza/manomesso".to_owned()] {
        let page = http
            .get(format!("{}{path}", gateway.base))
            .send()
            .await
            .unwrap();
        let policy = header(&page, "content-security-policy");
        assert!(policy.contains("img-src 'self'"), "{policy}");
        assert!(page
            .text()
            .await
            .unwrap()
            .contains(r#"<link rel="icon" href="/favicon.ico""#));
    }
    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}
