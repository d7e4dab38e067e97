//! Refusals a citizen can read are in plain Italian, with the stable code
//! beside them: every route the access policy opens to citizens (or to
//! everybody) is called the ways a portal gets it wrong (no token, a weak
//! credential, ids that do not exist or do not parse, an empty body), and
//! every refusal's `message` must read as Italian; the video room's pages
//! and its documents panel likewise. Operators keep the English.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sportello::contract::{Authentication, CodiceFiscale, Principal};
use sportello::domain::access_policy::{AccessPolicy, Rule};
use sportello::domain::application::policy::PrincipalKind;
use sportello::domain::refusal::Code;

use crate::support::api::Api;
use crate::support::gateway::{client, env_with_sms, seated, video_room, Gateway, Seated};
use crate::support::{citizen, operator};

/// Words that betray English text; each padded so that Italian words
/// holding them ("invalido") do not count.
const ENGLISH: &[&str] = &[
    " the ", " not ", " is ", " must ", " found", " invalid", " missing", " request", " cannot",
    " try ", " again", " only ", " with ", " has ", " no ",
];
/// Words of which plain Italian has at least one.
const ITALIAN: &[&str] = &[
    " non ", " il ", " la ", " di ", " per ", " è ", " hai ", " devi ", " questo ", " questa ",
    " riprova", " un ", " una ", " del ", " della ",
];

/// Why `message` does not read as a citizen's Italian, if it does not.
fn not_italian(message: &str) -> Option<String> {
    let padded = format!(
        " {} ",
        message
            .to_lowercase()
            .replace(|c: char| c.is_ascii_punctuation() && c != '_', " ")
    );
    if let Some(word) = ENGLISH.iter().find(|word| padded.contains(*word)) {
        return Some(format!("English {word:?}"));
    }
    if !ITALIAN.iter().any(|word| padded.contains(word)) {
        return Some("no Italian word".into());
    }
    None
}

/// The refusal's problems: the code missing or unknown, the message not Italian.
fn check(what: &str, status: StatusCode, body: &Value, faults: &mut Vec<String>) {
    let code = body["error"].as_str().unwrap_or_default();
    if Code::parse(code).is_none() {
        faults.push(format!("{what}: {status} without a known code: {body}"));
    }
    match body["message"].as_str() {
        Some(message) => {
            if let Some(why) = not_italian(message) {
                faults.push(format!("{what}: {status} {code}: {why} in {message:?}"));
            }
        }
        None => faults.push(format!("{what}: {status} without a message: {body}")),
    }
}

fn weak_citizen() -> Principal {
    Principal::Citizen {
        tax_code: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
        authentication: Authentication::Spid { level: 1 },
    }
}

/// The routes a citizen may call: public ones and those admitting citizens.
fn citizen_routes() -> Vec<(String, String, bool)> {
    let policy = AccessPolicy::shipped().unwrap();
    let mut routes: Vec<(String, String, bool)> = policy
        .routes()
        // The staff pages are Italian pages of their own, not a citizen's.
        .filter(|(_, path)| !path.starts_with("/ufficio"))
        .filter_map(|(method, path)| match policy.route(method, path) {
            Some(Rule::Public) => Some((method.to_owned(), path.to_owned(), false)),
            Some(Rule::Principals(admission))
                if admission.profiles.contains(&PrincipalKind::Citizen) =>
            {
                Some((method.to_owned(), path.to_owned(), true))
            }
            _ => None,
        })
        .collect();
    routes.sort();
    routes
}

/// `path` with each `{parameter}` replaced by `value`.
fn filled(path: &str, value: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                out.push_str(value);
                rest = &rest[open + close + 1..];
            }
            None => {
                rest = &rest[open..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[actix_rt::test]
async fn every_refusal_of_a_citizen_route_is_italian_with_its_code() {
    let api = Api::start().await;
    let me = citizen("RSSMRA85T10A562S");
    let weak = weak_citizen();
    let mut faults = Vec::new();
    let mut refusals = 0;
    let routes = citizen_routes();
    assert!(routes.len() >= 20, "{routes:?}");
    for (method, path, needs_token) in &routes {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method != Method::GET).then(|| json!({}));
        let unknown = filled(path, &uuid::Uuid::now_v7().to_string());
        let unparsed = filled(path, "x");
        let mut calls: Vec<(String, Option<&Principal>)> = vec![
            (unknown.clone(), Some(&me)),
            (unparsed, Some(&me)),
            (unknown.clone(), Some(&weak)),
        ];
        if *needs_token {
            calls.push((unknown.clone(), None));
        }
        for (target, who) in calls {
            let (status, answer) = api.call(method.clone(), &target, who, body.clone()).await;
            if status.is_success() || status.is_redirection() {
                continue;
            }
            refusals += 1;
            let what = format!(
                "{method} {target} as {}",
                who.map_or("nobody", |p| p.kind())
            );
            check(&what, status, &answer, &mut faults);
        }
    }
    // The edge's own refusals: an unknown path, NUL in a query string.
    for (target, who) in [
        ("/non-esiste", Some(&me)),
        ("/tickets?q=a%00b", Some(&me)),
        ("/non-esiste", None),
    ] {
        let (status, answer) = api.call(Method::GET, target, who, None).await;
        refusals += 1;
        check(target, status, &answer, &mut faults);
    }
    assert!(
        faults.is_empty(),
        "{} of {refusals}:\n{}",
        faults.len(),
        faults.join("\n")
    );
    assert!(refusals >= 60, "only {refusals} refusals walked");

    // The English stays, as `detail`; specifics help in Italian.
    let (status, answer) = api.call(Method::GET, "/tickets", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer["error"], "unauthenticated");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.contains("Bearer")),
        "{answer}"
    );
    let (status, answer) = api
        .call(Method::GET, "/appointments", Some(&weak), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"], "credential_required");
    assert!(
        answer["message"].as_str().unwrap().contains("CIE"),
        "{answer}"
    );
    assert!(answer["requires"].is_array(), "{answer}");

    // Operators and their programs keep the English, and no `detail`.
    let (status, answer) = api
        .get(
            &format!("/tickets/{}", uuid::Uuid::now_v7()),
            &operator("1901"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "not_found");
    assert!(
        not_italian(answer["message"].as_str().unwrap()).is_some(),
        "{answer}"
    );
    assert!(answer.get("detail").is_none(), "{answer}");
    // Without a token, a route only operators use stays English too.
    let (status, answer) = api.call(Method::GET, "/agent-reads", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(answer.get("detail").is_none(), "{answer}");
    api.stop().await;
}

#[actix_rt::test]
async fn the_video_room_refuses_in_italian_with_the_code_beside() {
    let (env, sms) = env_with_sms().await;
    let gateway = Gateway::start(&env).await;
    let http = client();
    let mut faults = Vec::new();

    // A link that opens nothing: the page says why, and the code.
    let page = http
        .get(format!("{}/stanza/non-un-collegamento", gateway.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let page = page.text().await.unwrap();
    assert!(page.contains("Il collegamento non è valido"), "{page}");
    assert!(
        page.contains(r#"<code id="codice-motivo">invalid_link</code>"#),
        "{page}"
    );

    let (id, citizen_link, operator_link) = video_room(&env, 0).await;
    // The panel without a pass: JSON, Italian.
    let answer = http
        .get(format!("{}{citizen_link}/documenti", gateway.base))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "no_pass", "{body}");
    check("documents without a pass", status, &body, &mut faults);

    let Seated {
        citizen_pass,
        operator: mut o,
        citizen: mut c,
        ..
    } = seated(&env, &gateway, &sms, &citizen_link, &operator_link).await;
    // A wrong SMS code: the page's error, and its code (the code sent for
    // the pass above was used, so this one is wrong or no longer valid).
    let page = http
        .post(format!("{}{citizen_link}/accesso", gateway.base))
        .form(&[("code", "000000")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<code>wrong_code</code>") || page.contains("<code>no_code</code>"),
        "{page}"
    );
    assert!(
        page.contains("Il codice") || page.contains("Codice errato"),
        "{page}"
    );
    let upload = |name: &'static str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(bytes).file_name(name),
            )
            .text("conformity", "true");
        http.post(format!("{}{citizen_link}/documenti", gateway.base))
            .header("cookie", citizen_pass.clone())
            .multipart(form)
            .send()
    };
    // Documents off: refused in Italian.
    let answer = upload("busta-paga.pdf", crate::support::fixtures::PDF.to_vec())
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("documents_off"))
    );
    check("upload with documents off", status, &body, &mut faults);
    crate::support::gateway::send(
        &mut o,
        json!({"type": "control", "room": id, "action": "grant_window"}),
    )
    .await;
    let state = crate::support::gateway::next_of(&mut c, "state").await;
    assert_eq!(state["phase"], "window_open");
    // A file that is not what it claims: the documents' refusal, in Italian.
    let answer = upload("atto.pdf", b"%PDF-1.7\n<html></html>".to_vec())
        .await
        .unwrap();
    let status = answer.status();
    let body: Value = answer.json().await.unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"], "refused", "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("PDF")),
        "{body}"
    );
    check("a fake PDF", status, &body, &mut faults);

    assert!(faults.is_empty(), "{}", faults.join("\n"));
    gateway.stop().await;
    sms.stop().await;
    env.cleanup().await;
}
