//! The video room end to end in headless Chromium with fake media devices:
//! the citizen enters with the SMS code (from the test SMS provider) and
//! waits, the operator admits, both peer connections reach "connected",
//! chat both ways, a PDF is uploaded and registered and its label turns
//! green, a third tab is refused, the call ends with the 72-hour window
//! (camera and microphone let go), the link reopened lands on the window's
//! page (documents, receipt, upload) without asking for the devices, and the
//! window then expires (its timer moved forward) with a page saying when.
//!
//! "Without asking for the devices" is read from Chromium itself: its
//! chrome://webrtc-internals lists every getUserMedia call of every tab,
//! which no page can hide or fake. The device check at the start is the
//! proof that the list sees this browser's calls.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::browser::{browser_with_fake_media, submit, text_of, type_into, WAIT};
use crate::support::gateway::{env_with_sms, last_code, link, video_appointment, Gateway, OFFICE};
use fantoccini::wd::WindowHandle;
use fantoccini::{Client, Locator};
use sportello::domain::video::Role;
use sportello::workers::WorkerKind;

async fn visible(client: &Client, css: &str) {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} never appeared: {e}"));
}

/// Clicks `css` once it can be clicked: a control is in the page before
/// the room's state shows it (the operator's section is hidden until the
/// first state arrives), and a loaded box takes longer to show it.
async fn click(client: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let element = client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        match element.click().await {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%e, css, "not clickable yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("click {css}: {e}"),
        }
    }
}

/// The getUserMedia calls Chromium recorded (their ids), read in the
/// webrtc-internals tab once `enough` holds of them (or after `within`: the
/// tab learns of calls a moment later); the test comes back to `back`.
async fn media_requests(
    client: &Client,
    internals: &WindowHandle,
    back: &WindowHandle,
    within: Duration,
    enough: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeSet<String> {
    client.switch_to_window(internals.clone()).await.unwrap();
    let deadline = tokio::time::Instant::now() + within;
    let ids = loop {
        let ids: BTreeSet<String> = serde_json::from_value(
            client
                .execute(
                    "return Array.prototype.map.call(document.querySelectorAll(\
                     '#user-media-tab-id .user-media-request-div-class'), \
                     function (e) { return e.id; });",
                    vec![],
                )
                .await
                .unwrap(),
        )
        .unwrap();
        if enough(&ids) || tokio::time::Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    client.switch_to_window(back.clone()).await.unwrap();
    ids
}

async fn absent(client: &Client, css: &str) {
    assert!(
        client.find(Locator::Css(css)).await.is_err(),
        "{css} is on the page"
    );
}

#[actix_rt::test]
async fn a_video_call_from_the_sms_code_to_the_expired_window() {
    let (env, sms) = env_with_sms().await;
    let workers = env.start(&[
        WorkerKind::OutboxRelay,
        WorkerKind::Registration,
        WorkerKind::Timers,
    ]);
    let gateway = Gateway::start(&env).await;
    let id = video_appointment(&env, 0).await;
    let citizen_link = format!("{}{}", gateway.base, link(&env, id, Role::Citizen).await);
    let operator_link = format!("{}{}", gateway.base, link(&env, id, Role::Operator).await);
    let (_citizen_driver, citizen) = match browser_with_fake_media().await {
        Ok(session) => session,
        Err(error) => panic!("{error}"),
    };
    let (_operator_driver, operator) = browser_with_fake_media().await.unwrap();

    // Chromium's own record of getUserMedia calls, open in a tab of its own
    // before any page of ours.
    citizen.goto("chrome://webrtc-internals").await.unwrap();
    let internals = citizen.window().await.unwrap();
    let call_tab = citizen.new_window(true).await.unwrap().handle;
    citizen.switch_to_window(call_tab.clone()).await.unwrap();

    // The citizen: welcome, code by SMS, device check, waiting room.
    citizen.goto(&citizen_link).await.unwrap();
    assert!(text_of(&citizen, "h1").await.contains("Benvenuto"));
    submit(&citizen, "form button[type=submit]").await;
    type_into(&citizen, "#codice", &last_code(&sms)).await;
    submit(&citizen, "#conferma-codice").await;
    visible(&citizen, "#stanza[data-devices=ok]").await;
    let during_call =
        media_requests(&citizen, &internals, &call_tab, WAIT, |ids| !ids.is_empty()).await;
    assert!(
        !during_call.is_empty(),
        "webrtc-internals must see the device check's getUserMedia"
    );
    click(&citizen, "#entra").await;
    visible(&citizen, "#attesa:not([hidden])").await;
    assert_eq!(
        text_of(&citizen, "#messaggio-attesa").await,
        "A breve sarai accolto da un nostro operatore"
    );

    // The operator signs in and admits; chat and documents on.
    operator.goto(&operator_link).await.unwrap();
    let keys = sportello::auth::TokenKeys::new(&env.settings.jwt_secret, &env.settings.jwt_issuer);
    let token = keys
        .issue(
            &crate::support::operator(OFFICE),
            chrono::Duration::minutes(30),
        )
        .unwrap();
    type_into(&operator, "#token", &token).await;
    submit(&operator, "form button[type=submit]").await;
    visible(&operator, "#stanza[data-devices=ok]").await;
    click(&operator, "#entra").await;
    visible(&operator, "#ammetti").await;
    click(&operator, "#ammetti").await;
    click(&operator, "#chat-on").await;
    click(&operator, "#documenti-on").await;

    // Both peer connections connect (fake media, host candidates).
    visible(&citizen, "#stato-connessione[data-state=connected]").await;
    visible(&operator, "#stato-connessione[data-state=connected]").await;

    // Chat both ways.
    visible(&citizen, "#chat:not([hidden])").await;
    type_into(&operator, "#testo-chat", "Salve, mi sente?").await;
    click(&operator, "#modulo-chat button").await;
    visible(&citizen, "#messaggi li.messaggio-operator").await;
    assert!(text_of(&citizen, "#messaggi")
        .await
        .contains("Salve, mi sente?"));
    type_into(&citizen, "#testo-chat", "Sì, la sento").await;
    click(&citizen, "#modulo-chat button").await;
    visible(&operator, "#messaggi li.messaggio-citizen").await;
    assert!(text_of(&operator, "#messaggi")
        .await
        .contains("Sì, la sento"));

    // A PDF upload, registered by the operator: its label turns green.
    visible(&citizen, "#documenti:not([hidden])").await;
    let pdf = std::env::temp_dir().join(format!("busta-paga-{}.pdf", id.simple()));
    std::fs::write(&pdf, crate::support::fixtures::PDF).unwrap();
    type_into(&citizen, "#file", pdf.to_str().unwrap()).await;
    click(&citizen, "#conformita").await;
    click(&citizen, "#invia-file").await;
    visible(&operator, "#inviati .da-protocollare").await;
    click(&operator, "#inviati .da-protocollare").await;
    click(&operator, "#protocolla").await;
    visible(&citizen, "#inviati .label-orange, #inviati .label-green").await;
    visible(&citizen, "#inviati .label-green").await;
    assert_eq!(
        text_of(&citizen, "#inviati .label-green").await,
        "Protocollato"
    );
    visible(&citizen, "#protocollati li a").await;
    assert!(text_of(&citizen, "#protocollati").await.contains("INPS."));

    // A third participant (another tab of the citizen) is refused.
    let first = citizen.window().await.unwrap();
    let tab = citizen.new_window(true).await.unwrap();
    citizen.switch_to_window(tab.handle.clone()).await.unwrap();
    citizen.goto(&citizen_link).await.unwrap();
    visible(&citizen, "#stanza[data-devices=ok]").await;
    click(&citizen, "#entra").await;
    visible(&citizen, "#occupata:not([hidden])").await;
    assert!(text_of(&citizen, "#messaggio-occupata")
        .await
        .contains("già aperta"));
    citizen.close_window().await.unwrap();
    citizen.switch_to_window(first).await.unwrap();
    assert!(citizen
        .find(Locator::Css("#stato-connessione[data-state=connected]"))
        .await
        .is_ok());

    // The operator ends the call granting the window.
    click(&operator, "#estendi").await;
    visible(&citizen, "#terminata:not([hidden])").await;
    visible(&citizen, "#finestra:not([hidden])").await;
    assert_eq!(
        text_of(&citizen, "#finestra").await,
        "Questa pagina sarà disponibile per altre 72 ore"
    );
    assert!(text_of(&citizen, "#terminata h1")
        .await
        .contains("Chiamata terminata"));
    // The call is over: camera and microphone are let go.
    let released = citizen
        .execute(
            "return document.getElementById('anteprima').srcObject === null \
             && document.getElementById('locale').srcObject === null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(released, serde_json::json!(true));

    // Reopening the link during the window: straight onto the window's
    // page, with no device check and not one getUserMedia call.
    let before = media_requests(&citizen, &internals, &call_tab, Duration::ZERO, |_| true).await;
    citizen.goto(&citizen_link).await.unwrap();
    visible(&citizen, "#finestra-documenti").await;
    visible(&citizen, "#documenti[data-loaded=true]").await;
    absent(&citizen, "#verifica").await;
    absent(&citizen, "video").await;
    let scripts = citizen
        .execute(
            "return Array.prototype.map.call(document.scripts, function (s) { return new URL(s.src).pathname; });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(["/static/documenti.js"]));
    assert!(text_of(&citizen, "#scadenza-finestra")
        .await
        .contains("Puoi integrare i documenti mancanti fino al"));
    // Documents, receipt and upload work there.
    assert!(text_of(&citizen, "#inviati").await.contains("busta-paga"));
    assert!(text_of(&citizen, "#protocollati").await.contains("INPS."));
    let receipt = citizen
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             fetch(document.querySelector('#protocollati li a').href)\
               .then(function (r) { done(r.status + ' ' + r.headers.get('content-type')); });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(receipt, serde_json::json!("200 application/pdf"));
    let missing = std::env::temp_dir().join(format!("integrazione-{}.pdf", id.simple()));
    std::fs::write(&missing, crate::support::fixtures::PDF).unwrap();
    type_into(&citizen, "#file", missing.to_str().unwrap()).await;
    click(&citizen, "#conformita").await;
    click(&citizen, "#invia-file").await;
    citizen
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#inviati li:nth-child(2)"))
        .await
        .expect("the window page's upload is listed");
    assert!(text_of(&citizen, "#inviati")
        .await
        .contains("integrazione-"));
    assert_eq!(text_of(&citizen, "#esito-documenti").await, "File inviati.");
    let _ = std::fs::remove_file(&pdf);
    let _ = std::fs::remove_file(&missing);
    // A few seconds for a call to show up, had there been one.
    let after = media_requests(
        &citizen,
        &internals,
        &call_tab,
        Duration::from_secs(3),
        |ids| !ids.is_subset(&before),
    )
    .await;
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "the window's page called getUserMedia: {new:?}"
    );

    // 72 hours later: the timer closes the window, the link has expired.
    sqlx::query("UPDATE timers SET fire_at = now() WHERE kind = 'video.window' AND key = $1")
        .bind(id.to_string())
        .execute(&env.pool)
        .await
        .unwrap();
    assert!(
        crate::support::eventually(Duration::from_secs(20), || async {
            sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
                "SELECT window_closed_at FROM video_rooms WHERE appointment_id = $1",
            )
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap()
            .is_some()
        })
        .await
    );
    citizen.goto(&citizen_link).await.unwrap();
    assert_eq!(text_of(&citizen, "h1").await, "Collegamento scaduto");
    assert!(text_of(&citizen, "#motivo")
        .await
        .starts_with("La finestra di 72 ore per inviare i documenti si è chiusa il "));

    let _ = citizen.close().await;
    let _ = operator.close().await;
    workers.shutdown(Duration::from_secs(5)).await;
    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}
