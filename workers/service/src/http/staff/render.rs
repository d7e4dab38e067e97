//! What every staff page shares: the templates, the response headers, the
//! operator in the header, the error page, and dates and sizes as the
//! offices read them.

use std::sync::LazyLock;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use chrono::{DateTime, Utc};
use minijinja::{context, Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::domain::cron::TIME_ZONE;

/// The operator shown in the page header.
#[derive(Serialize)]
pub(super) struct OperatorView {
    pub(super) id: String,
    pub(super) office: String,
}

/// Our pages need nothing but their own inline style, their own forms and
/// our favicon (`/favicon.ico`); they are never framed (no clickjacking of
/// the action buttons).
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; \
     img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The templates, parsed once. `*.html` names switch on HTML auto-escaping;
/// a misspelt variable fails rendering (and the unit test) instead of
/// silently printing nothing.
pub(super) static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    for (name, source) in [
        (
            "base.html",
            include_str!("../../../templates/staff/base.html"),
        ),
        (
            "accesso.html",
            include_str!("../../../templates/staff/accesso.html"),
        ),
        (
            "errore.html",
            include_str!("../../../templates/staff/errore.html"),
        ),
        (
            "coda.html",
            include_str!("../../../templates/staff/coda.html"),
        ),
        (
            "quesito.html",
            include_str!("../../../templates/staff/quesito.html"),
        ),
        (
            "agenda.html",
            include_str!("../../../templates/staff/agenda.html"),
        ),
        (
            "richiamate.html",
            include_str!("../../../templates/staff/richiamate.html"),
        ),
    ] {
        if let Err(error) = env.add_template(name, source) {
            // Embedded at build time: only a defect of this crate gets here,
            // and rendering that template then answers 500 and logs it.
            tracing::error!(%error, name, "staff template does not parse");
        }
    }
    env
});

pub(super) fn render(status: StatusCode, template: &str, values: Value) -> HttpResponse {
    match TEMPLATES
        .get_template(template)
        .and_then(|t| t.render(values))
    {
        Ok(html) => secured(HttpResponse::build(status))
            .content_type("text/html; charset=utf-8")
            .body(html),
        Err(error) => {
            tracing::error!(
                error = format!("{error:#}"),
                template,
                "staff page failed to render"
            );
            secured(HttpResponse::InternalServerError())
                .content_type("text/plain; charset=utf-8")
                .body("Errore interno")
        }
    }
}

/// Headers every staff response carries: pages show personal data, so no
/// cache keeps them.
pub(super) fn secured(
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"));
    builder
}

pub(super) fn redirect(to: &str) -> HttpResponse {
    secured(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, to))
        .finish()
}

/// A page with only a message and the way back to the queue.
pub(super) fn error_page(
    status: StatusCode,
    operator: Option<&OperatorView>,
    message: &str,
) -> HttpResponse {
    render(
        status,
        "errore.html",
        context! { operator, error => message },
    )
}

/// Dates as the offices read them: Rome's wall clock.
pub(super) fn when(at: DateTime<Utc>) -> String {
    at.with_timezone(&TIME_ZONE)
        .format("%d/%m/%Y %H:%M")
        .to_string()
}

pub(super) fn size_label(bytes: i64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} byte"),
        b if b < 1024 * 1024 => format!("{:.1} kB", b as f64 / 1024.0).replace('.', ","),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)).replace('.', ","),
    }
}

#[cfg(test)]
mod tests {
    use super::super::errors::NOT_AN_OPERATOR;
    use super::super::queue::Row;
    use super::super::ticket::HistoryRow;
    use super::*;
    use crate::tickets::SearchQuery;
    use uuid::Uuid;

    /// Every page links the favicon, and the policy lets it load.
    #[test]
    fn pages_link_the_favicon_the_policy_allows() {
        let login = TEMPLATES
            .get_template("accesso.html")
            .and_then(|t| t.render(context! { error => "" }))
            .unwrap();
        assert!(login.contains(r#"<link rel="icon" href="/favicon.ico""#));
        assert!(CONTENT_SECURITY_POLICY
            .split(';')
            .any(|directive| directive.trim() == "img-src 'self'"));
    }

    /// Every template renders with the values its handler gives it (a
    /// misspelt variable fails here, under SemiStrict).
    #[test]
    fn templates_render() {
        let operator = OperatorView {
            id: "E0013609".into(),
            office: "1901".into(),
        };
        let login = TEMPLATES
            .get_template("accesso.html")
            .and_then(|t| t.render(context! { error => "<b>no</b>" }))
            .unwrap();
        assert!(
            login.contains("&lt;b&gt;no&lt;") && !login.contains("<b>"),
            "auto-escaped: {login}"
        );
        TEMPLATES
            .get_template("errore.html")
            .and_then(|t| t.render(context! { operator, error => NOT_AN_OPERATOR }))
            .unwrap();
        let queue = TEMPLATES
            .get_template("coda.html")
            .and_then(|t| {
                t.render(context! {
                    operator, states => vec![("aperta", "aperta")], message => None::<String>,
                    query => SearchQuery { q: Some("\"><script>".into()), ..Default::default() },
                    tickets => vec![Row {
                        id: Uuid::nil(), signature: "INPS.1901.2026.0000001".into(),
                        subject: "UniEmens - <i>marzo</i>".into(), matricola: "4901234567".into(),
                        state: "aperta", opened_at: "01/03/2026 10:00".into(),
                        updated_at: "01/03/2026 10:00".into(), assigned_operator: String::new(),
                    }],
                    page => 1, previous_page => None::<String>, next_page => Some("/ufficio?page=2"),
                })
            })
            .unwrap();
        assert!(
            !queue.contains("<script>") && !queue.contains("<i>"),
            "{queue}"
        );
        let view = context! {
            id => Uuid::nil(), subject => "s", signature => "x", state => "in carico",
            outcome => None::<String>, office => "1901 - Crema", desk => "d", ambito => "uniemens",
            matricola => "", subject_tax_code => "RSSMRA85T10A562S", channel => "cassetto",
            contact => "", opened_at => "", updated_at => "", assigned_operator => "",
            routing_note => Some("nota"), body => "b",
        };
        let history = vec![HistoryRow {
            at: "01/03/2026 10:00".into(),
            what: "riassegnazione".into(),
            who: "operatore E1 (sede 1901)".into(),
            internal: true,
            comment: "c".into(),
            outcome: None,
            offices: Some("dalla sede 1901 alla sede 1900".into()),
        }];
        let detail = TEMPLATES
            .get_template("quesito.html")
            .and_then(|t| {
                t.render(context! {
                    operator, t => view, history, error => None::<String>,
                    attachments => vec![context! { id => Uuid::nil(), file_name => "a.pdf", media_type => "application/pdf", size => "1 byte", label => crate::domain::document::DocumentState::RegistrationInProgress.label() }],
                    offices => Vec::<Value>::new(), outcomes => vec!["evasa"],
                    keys => context! { take => "k1", comment => "k2", close => "k3", reassign => "k4" },
                    can_take => true, can_comment => true, can_close => true, can_reassign => true,
                })
            })
            .unwrap();
        assert!(
            detail.contains("nota interna") && detail.contains("alla sede 1900"),
            "{detail}"
        );
        assert!(
            detail.contains("color: orange\">Protocollazione in corso</span>"),
            "{detail}"
        );
        let agenda = TEMPLATES
            .get_template("agenda.html")
            .and_then(|t| {
                t.render(context! {
                    operator, desks => vec![("ammortizzatori", "<b>ammortizzatori</b>")],
                    appointments => vec![super::super::agenda::Row {
                        time: "14:00-14:15".into(), desk: "d".into(), mode: "ricontatto telefonico",
                        citizen: "RSSMRA85T10A562S".into(), citizen_name: "<i>Mario</i>".into(),
                        phone: "+393331234567".into(),
                        notes: "<script>".into(), state: "confermato",
                        join_link: Some("https://video.example/stanza/a\"b".into()),
                    }],
                    day => "2026-12-02", day_label => "02/12/2026", desk => "ammortizzatori",
                    previous_day => "/ufficio/agenda?giorno=2026-12-01", next_day => None::<String>,
                })
            })
            .unwrap();
        assert!(
            agenda.contains("ricontatto telefonico")
                && !agenda.contains("<script>")
                && !agenda.contains("<i>Mario")
                && !agenda.contains("a\"b")
                && agenda.contains("Entra nella stanza"),
            "{agenda}"
        );
        let callbacks = TEMPLATES
            .get_template("richiamate.html")
            .and_then(|t| {
                t.render(context! {
                    operator, message => None::<String>, error => None::<String>,
                    desks => vec![super::super::callbacks::DeskRow {
                        kind: "ammortizzatori".into(), name: "a".into(), waiting: None,
                    }],
                    outcomes => Vec::<Value>::new(),
                    call => super::super::callbacks::CallView {
                        call_id: Uuid::nil(), desk: "d".into(), citizen: "RSSMRA85T10A562S".into(),
                        phone: "+393331234567".into(), notes: "n".into(), time: "t".into(),
                        attempt: 2, state: "confermato", answer_by: "t".into(),
                    },
                })
            })
            .unwrap();
        assert!(
            callbacks.contains("tentativo n. 2") && callbacks.contains("non disponibile"),
            "{callbacks}"
        );
    }

    #[test]
    fn dates_are_rome_wall_clock() {
        let summer = DateTime::parse_from_rfc3339("2026-07-01T08:05:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(summer), "01/07/2026 10:05");
        let winter = DateTime::parse_from_rfc3339("2026-12-31T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(winter), "01/01/2027 00:30");
    }

    #[test]
    fn sizes_read_in_italian() {
        assert_eq!(size_label(12), "12 byte");
        assert_eq!(size_label(1536), "1,5 kB");
        assert_eq!(size_label(3 * 1024 * 1024), "3,0 MB");
    }
}
