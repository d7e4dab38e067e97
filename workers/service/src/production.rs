//! Production mode (`SPORTELLO_ENV=production`): the process refuses to
//! start while any development secret or insecure default is in its
//! settings, naming every problem at once. Development needs none of this.
//!
//! A pure function over the settings, so each refusal is a unit test.

use crate::broker::users::BrokerUser;
use crate::config::{is_https, Settings};

/// Something production must not run with. The messages name the setting,
/// never its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error(
        "tokens would be verified with JWT_SECRET, the development key published in the \
         repository (anyone could sign an operator's token): set JWT_JWKS_URL to the identity \
         provider's published keys"
    )]
    DevelopmentJwtKey,
    #[error(
        "JWT_JWKS_URL is not set: in production tokens are verified with the identity \
         provider's published keys (RS256/ES256); shared-key HS256 tokens are for development"
    )]
    NoIdentityProviderKeys,
    #[error("JWT_JWKS_URL must be https:// (keys fetched in clear could be replaced on the way)")]
    PlainJwksUrl,
    #[error(
        "{setting} carries a password from the repository (user `{user}`): give the service a \
         password of its own"
    )]
    RepositoryPassword { setting: &'static str, user: String },
    #[error(
        "{setting} is not set: in production each worker kind connects as its own broker \
         user (`{user}` of broker-config/definitions.json), never as AMQP_URL's"
    )]
    NoBrokerUserOfItsOwn {
        setting: &'static str,
        user: &'static str,
    },
    #[error("{setting} is not a valid URL")]
    InvalidUrl { setting: &'static str },
    #[error(
        "SMTP_URL sends mail in plain text: use smtps:// or ?tls=required, or set \
         SMTP_ALLOW_PLAINTEXT=true for a relay on a trusted network"
    )]
    PlainTextSmtp,
    #[error(
        "the staff session cookie would not be Secure: set PUBLIC_BASE_URL to the https:// \
         address operators use"
    )]
    InsecureCookie,
    #[error(
        "SMS_PROVIDER_URL must be https:// (the provider's credentials would travel in clear)"
    )]
    PlainSmsProvider,
    #[error(
        "VIDEO_LINK_SECRET is the development key published in the repository (anyone could \
         sign a join link to any video room): give the gateway a key of its own"
    )]
    DevelopmentVideoLinkSecret,
    #[error(
        "TURN_SECRET is coturn's development secret from the repository (anyone could mint \
         relay credentials): set the static-auth-secret your coturn uses"
    )]
    DevelopmentTurnSecret,
    #[error(
        "PIN_SECRET is the development key published in the repository (anyone could open a \
         PIN half waiting to be sent, or sign a PIN token): give the PIN a key of its own"
    )]
    DevelopmentPinSecret,
}

/// Why the process refuses to start: every problem, one per line.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("refusing to start in production:{}", list(.0))]
pub struct Refused(pub Vec<Problem>);

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// The problems of `settings` in production; none in development.
pub fn problems(settings: &Settings) -> Vec<Problem> {
    if !settings.is_production() {
        return Vec::new();
    }
    let mut found = Vec::new();
    match settings.jwt_jwks_url.as_deref() {
        None | Some("") if settings.jwt_secret == crate::config::DEVELOPMENT_SECRET => {
            found.push(Problem::DevelopmentJwtKey)
        }
        None | Some("") => found.push(Problem::NoIdentityProviderKeys),
        Some(url) if !is_https(url) && !is_loopback_http(url) => found.push(Problem::PlainJwksUrl),
        Some(_) => {}
    }
    // A cluster's nodes (AMQP_URLS, or a list in a kind's URL such as
    // GATEWAY_AMQP_URL) are checked one by one, like AMQP_URL.
    let kind_urls = BrokerUser::ALL.into_iter().flat_map(|user| {
        settings
            .own_broker_url(user)
            .map(crate::broker::nodes::split)
            .unwrap_or_default()
            .into_iter()
            .map(move |url| (user.setting(), url.to_owned()))
    });
    let urls = settings
        .broker_urls()
        .into_iter()
        .chain(kind_urls)
        .chain([("DATABASE_URL", settings.database_url.clone())]);
    for (setting, url) in urls {
        match url::Url::parse(&url) {
            Err(_) => found.push(Problem::InvalidUrl { setting }),
            Ok(parsed) => {
                if parsed.password().is_some_and(is_repository_password) {
                    found.push(Problem::RepositoryPassword {
                        setting,
                        user: parsed.username().to_owned(),
                    });
                }
            }
        }
    }
    // Three nodes with one bad password are one problem, said once.
    found.dedup();
    if !settings.smtp_allow_plaintext && !smtp_is_encrypted(&settings.smtp_url) {
        found.push(Problem::PlainTextSmtp);
    }
    if !settings.public_base_url.as_deref().is_some_and(is_https) {
        found.push(Problem::InsecureCookie);
    }
    if let Some(url) = &settings.sms_provider_url {
        if !is_https(url) && !is_loopback_http(url) {
            found.push(Problem::PlainSmsProvider);
        }
    }
    if settings.video_link_secret == crate::domain::video::link::DEVELOPMENT_LINK_SECRET
        || settings.video_link_secret.len() < 16
    {
        found.push(Problem::DevelopmentVideoLinkSecret);
    }
    if settings.pin_secret == crate::config::DEVELOPMENT_PIN_SECRET
        || settings.pin_secret.len() < 32
    {
        found.push(Problem::DevelopmentPinSecret);
    }
    if !settings.turn_urls.trim().is_empty()
        && settings.turn_secret == crate::config::DEVELOPMENT_TURN_SECRET
    {
        found.push(Problem::DevelopmentTurnSecret);
    }
    found
}

/// The problems of a process whose workers connect as `users`, and which
/// declares the topology as AMQP_URL's user or not (`up` does, `worker`
/// does not): those of its settings, and each user whose URL is not set (in
/// development it would be derived from AMQP_URL; production names every
/// URL itself). A process that does not declare never uses AMQP_URL, so it
/// is not asked for one: no worker process need hold the operators' user.
pub fn problems_running(
    settings: &Settings,
    users: &[BrokerUser],
    declares_topology: bool,
) -> Vec<Problem> {
    let mut found = problems(settings);
    if !declares_topology {
        found.retain(|problem| {
            !matches!(
                problem,
                Problem::RepositoryPassword {
                    setting: "AMQP_URL" | "AMQP_URLS",
                    ..
                } | Problem::InvalidUrl {
                    setting: "AMQP_URL" | "AMQP_URLS"
                }
            )
        });
    }
    if settings.is_production() {
        for user in BrokerUser::ALL {
            if users.contains(&user) && settings.own_broker_url(user).is_none() {
                found.push(Problem::NoBrokerUserOfItsOwn {
                    setting: user.setting(),
                    user: user.name(),
                });
            }
        }
    }
    found
}

/// `Err` naming every problem of a process running workers as `users`.
pub fn check_running(
    settings: &Settings,
    users: &[BrokerUser],
    declares_topology: bool,
) -> Result<(), Refused> {
    let found = problems_running(settings, users, declares_topology);
    if found.is_empty() {
        Ok(())
    } else {
        Err(Refused(found))
    }
}

/// `Err` naming every problem when production settings are unsafe.
pub fn check(settings: &Settings) -> Result<(), Refused> {
    let found = problems(settings);
    if found.is_empty() {
        Ok(())
    } else {
        Err(Refused(found))
    }
}

/// Plain HTTP to this very host (a sidecar): nothing travels on a network.
fn is_loopback_http(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    parsed.scheme() == "http"
        && match parsed.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

/// `smtps://`, or `smtp://` with STARTTLS required (opportunistic STARTTLS
/// can be stripped by anyone on the way).
fn smtp_is_encrypted(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "smtps" => true,
        "smtp" => parsed
            .query_pairs()
            .any(|(key, value)| key == "tls" && value == "required"),
        _ => false,
    }
}

/// Passwords anyone can read in this repository: the broker users'
/// `<user>-dev` (broker-config/definitions.json), RabbitMQ's `guest`, the
/// compose file's `admin` and the development database's `sportello`.
fn is_repository_password(password: &str) -> bool {
    let password = percent_decoded(password);
    if ["guest", "admin", "sportello"].contains(&password.as_str()) {
        return true;
    }
    let users = crate::broker::topology::Definitions::embedded()
        .map(|d| d.users)
        .unwrap_or_default();
    users
        .iter()
        .filter_map(|user| user["name"].as_str())
        .any(|name| password == format!("{name}-dev"))
}

fn percent_decoded(raw: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", raw.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    /// Settings a production deployment would have: nothing to refuse.
    fn proper() -> Settings {
        Settings {
            environment: Environment::Production,
            amqp_url: "amqps://sportello-app:Zq8v%2Bp@broker.internal:5671/sportello".into(),
            database_url: "postgres://sportello:n0t-in-the-repo@db.internal/sportello".into(),
            jwt_secret: crate::config::DEVELOPMENT_SECRET.into(),
            jwt_jwks_url: Some("https://idp.inps.example/.well-known/jwks.json".into()),
            public_base_url: Some("https://sportello.inps.example".into()),
            smtp_url: "smtps://notifiche:pw@smtp.inps.example:465".into(),
            sms_provider_url: Some("https://sms.example/v1/messages".into()),
            video_link_secret: "a-video-link-key-of-its-own".into(),
            pin_secret: "a-pin-key-of-its-own-at-least-32-bytes".into(),
            turn_urls: "turn:turn.inps.example:3478".into(),
            turn_secret: "coturn-secret-of-its-own".into(),
            ..Settings::local_defaults()
        }
    }

    #[test]
    fn the_development_video_link_and_turn_secrets_are_refused() {
        let link = Settings {
            video_link_secret: crate::domain::video::link::DEVELOPMENT_LINK_SECRET.into(),
            ..proper()
        };
        assert_eq!(problems(&link), [Problem::DevelopmentVideoLinkSecret]);
        let short = Settings {
            video_link_secret: "short".into(),
            ..proper()
        };
        assert_eq!(problems(&short), [Problem::DevelopmentVideoLinkSecret]);
        let turn = Settings {
            turn_secret: crate::config::DEVELOPMENT_TURN_SECRET.into(),
            ..proper()
        };
        assert_eq!(problems(&turn), [Problem::DevelopmentTurnSecret]);
        // Without TURN servers its secret is unused.
        let no_turn = Settings {
            turn_urls: String::new(),
            ..turn
        };
        assert_eq!(problems(&no_turn), []);
    }

    #[test]
    fn development_accepts_every_default() {
        let settings = Settings {
            environment: Environment::Development,
            ..Settings::local_defaults()
        };
        assert_eq!(problems(&settings), []);
        assert!(check(&settings).is_ok());
    }

    #[test]
    fn proper_production_settings_start() {
        assert_eq!(problems(&proper()), []);
        // STARTTLS required, or an explicit opt-out, are fine too; a JWKS
        // served on this very host may be plain HTTP.
        let starttls = Settings {
            smtp_url: "smtp://notifiche:pw@smtp.inps.example:587?tls=required".into(),
            jwt_jwks_url: Some("http://127.0.0.1:8181/jwks.json".into()),
            ..proper()
        };
        assert_eq!(problems(&starttls), []);
        let relay = Settings {
            smtp_url: "smtp://127.0.0.1:25".into(),
            smtp_allow_plaintext: true,
            ..proper()
        };
        assert_eq!(problems(&relay), []);
    }

    #[test]
    fn production_defaults_are_refused_naming_each_problem() {
        let settings = Settings {
            environment: Environment::Production,
            ..Settings::local_defaults()
        };
        let refused = check(&settings).unwrap_err();
        assert_eq!(
            refused.0,
            [
                Problem::DevelopmentJwtKey,
                Problem::RepositoryPassword {
                    setting: "AMQP_URL",
                    user: "sportello-app".into()
                },
                Problem::RepositoryPassword {
                    setting: "DATABASE_URL",
                    user: "sportello".into()
                },
                Problem::PlainTextSmtp,
                Problem::InsecureCookie,
                Problem::DevelopmentVideoLinkSecret,
                Problem::DevelopmentPinSecret,
            ]
        );
        let message = refused.to_string();
        assert!(message.contains("JWT_SECRET") && message.contains("PUBLIC_BASE_URL"));
        assert!(!message.contains("sportello-app-dev") && !message.contains(":sportello@"));
    }

    #[test]
    fn the_development_jwt_key_or_any_shared_key_is_refused() {
        let shared_dev = Settings {
            jwt_jwks_url: None,
            ..proper()
        };
        assert_eq!(problems(&shared_dev), [Problem::DevelopmentJwtKey]);
        let shared = Settings {
            jwt_secret: "a-long-random-key".into(),
            ..shared_dev
        };
        assert_eq!(problems(&shared), [Problem::NoIdentityProviderKeys]);
        let plain = Settings {
            jwt_jwks_url: Some("http://idp.inps.example/jwks.json".into()),
            ..proper()
        };
        assert_eq!(problems(&plain), [Problem::PlainJwksUrl]);
    }

    #[test]
    fn a_cluster_s_urls_are_checked_like_amqp_url_and_win_over_it() {
        let cluster = Settings {
            amqp_urls: Some(
                "amqps://sportello-app:Zq8v%2Bp@rabbit-1:5671/sportello,\
                 amqps://sportello-app:sportello-app-dev@rabbit-2:5671/sportello,\
                 amqps://sportello-app:sportello-app-dev@rabbit-3:5671/sportello"
                    .into(),
            ),
            ..proper()
        };
        assert_eq!(
            problems(&cluster),
            [Problem::RepositoryPassword {
                setting: "AMQP_URLS",
                user: "sportello-app".into()
            }]
        );
        let broken = Settings {
            amqp_urls: Some(
                "amqps://sportello-app:Zq8v%2Bp@rabbit-1:5671/sportello, not a url".into(),
            ),
            ..proper()
        };
        assert_eq!(
            problems(&broken),
            [Problem::InvalidUrl {
                setting: "AMQP_URLS"
            }]
        );
        // AMQP_URLS wins: a development AMQP_URL beside it is not used.
        let beside = Settings {
            amqp_url: crate::config::DEVELOPMENT_AMQP_URL.into(),
            amqp_urls: Some("amqps://sportello-app:Zq8v%2Bp@rabbit-1:5671/sportello".into()),
            ..proper()
        };
        assert_eq!(problems(&beside), []);
    }

    #[test]
    fn every_repository_password_is_refused_in_broker_and_database_urls() {
        for (amqp, user) in [
            ("amqp://guest:guest@broker/sportello", "guest"),
            (
                "amqp://channel-web:channel-web-dev@broker/sportello",
                "channel-web",
            ),
            ("amqp://admin:admin@broker/sportello", "admin"),
            // Percent-encoded, still the same password.
            (
                "amqp://sportello-app:sportello%2Dapp-dev@broker/sportello",
                "sportello-app",
            ),
        ] {
            let settings = Settings {
                amqp_url: amqp.into(),
                ..proper()
            };
            assert_eq!(
                problems(&settings),
                [Problem::RepositoryPassword {
                    setting: "AMQP_URL",
                    user: user.into()
                }],
                "{amqp}"
            );
        }
        let database = Settings {
            database_url: "postgres://sportello:sportello@db/sportello".into(),
            ..proper()
        };
        assert_eq!(
            problems(&database),
            [Problem::RepositoryPassword {
                setting: "DATABASE_URL",
                user: "sportello".into()
            }]
        );
        let garbled = Settings {
            database_url: "db.internal/sportello".into(),
            ..proper()
        };
        assert_eq!(
            problems(&garbled),
            [Problem::InvalidUrl {
                setting: "DATABASE_URL"
            }]
        );
    }

    #[test]
    fn the_gateway_broker_users_repository_password_is_refused() {
        let development = Settings {
            gateway_amqp_url: Some(
                "amqp://sportello-gateway:sportello-gateway-dev@broker/sportello".into(),
            ),
            ..proper()
        };
        assert_eq!(
            problems(&development),
            [Problem::RepositoryPassword {
                setting: "GATEWAY_AMQP_URL",
                user: "sportello-gateway".into()
            }]
        );
        assert!(!Problem::RepositoryPassword {
            setting: "GATEWAY_AMQP_URL",
            user: "sportello-gateway".into()
        }
        .to_string()
        .contains("sportello-gateway-dev"));
        let own = Settings {
            gateway_amqp_url: Some("amqps://sportello-gateway:Jq4%2Fz@broker/sportello".into()),
            ..proper()
        };
        assert_eq!(problems(&own), []);
        assert_eq!(
            own.broker_addresses_for(BrokerUser::Gateway),
            "amqps://sportello-gateway:Jq4%2Fz@broker/sportello"
        );
        let garbled = Settings {
            gateway_amqp_url: Some("broker/sportello".into()),
            ..proper()
        };
        assert_eq!(
            problems(&garbled),
            [Problem::InvalidUrl {
                setting: "GATEWAY_AMQP_URL"
            }]
        );
    }

    #[test]
    fn each_kind_needs_its_own_broker_user_in_production() {
        let running = [BrokerUser::Intake, BrokerUser::Api];
        assert_eq!(
            problems_running(&proper(), &running, true),
            [
                Problem::NoBrokerUserOfItsOwn {
                    setting: "INTAKE_AMQP_URL",
                    user: "sportello-intake"
                },
                Problem::NoBrokerUserOfItsOwn {
                    setting: "API_AMQP_URL",
                    user: "sportello-api"
                },
            ]
        );
        let own = Settings {
            intake_amqp_url: Some("amqps://sportello-intake:Tq7%2Bw@broker/sportello".into()),
            api_amqp_url: Some("amqps://sportello-api:Lm3%2Bq@broker/sportello".into()),
            ..proper()
        };
        assert_eq!(problems_running(&own, &running, true), []);
        // A process of timers or senders connects to no broker: nothing asked.
        assert_eq!(problems_running(&proper(), &[], true), []);
        // The repository's password of a kind's user is refused like the others.
        let development = Settings {
            notify_amqp_url: Some(
                "amqp://sportello-notify:sportello-notify-dev@broker/sportello".into(),
            ),
            ..proper()
        };
        assert_eq!(
            problems_running(&development, &[BrokerUser::Notify], false),
            [Problem::RepositoryPassword {
                setting: "NOTIFY_AMQP_URL",
                user: "sportello-notify".into()
            }]
        );
        // A worker process declares nothing: AMQP_URL may stay unset (its
        // development default), while `up` must have one of its own.
        let worker = Settings {
            amqp_url: crate::config::DEVELOPMENT_AMQP_URL.into(),
            ..own.clone()
        };
        assert_eq!(problems_running(&worker, &running, false), []);
        assert_eq!(
            problems_running(&worker, &running, true),
            [Problem::RepositoryPassword {
                setting: "AMQP_URL",
                user: "sportello-app".into()
            }]
        );
        // Development derives each kind's user from AMQP_URL's.
        let settings = Settings::local_defaults();
        assert_eq!(problems_running(&settings, &BrokerUser::ALL, true), []);
        assert_eq!(
            settings.broker_addresses_for(BrokerUser::Appointments),
            "amqp://sportello-appointments:sportello-appointments-dev@127.0.0.1:5672/sportello"
        );
    }

    #[test]
    fn plain_text_smtp_is_refused_without_the_opt_out() {
        for smtp in [
            "smtp://smtp.inps.example:25",
            "smtp://u:p@smtp.inps.example:587?tls=opportunistic",
        ] {
            let settings = Settings {
                smtp_url: smtp.into(),
                ..proper()
            };
            assert_eq!(problems(&settings), [Problem::PlainTextSmtp], "{smtp}");
        }
    }

    #[test]
    fn a_cookie_that_would_not_be_secure_is_refused() {
        for base in [
            None,
            Some("http://sportello.inps.example"),
            Some("sportello"),
        ] {
            let settings = Settings {
                public_base_url: base.map(str::to_owned),
                ..proper()
            };
            assert_eq!(problems(&settings), [Problem::InsecureCookie], "{base:?}");
        }
        assert!(proper().always_secure_cookie());
        let development = Settings {
            public_base_url: Some("https://sportello.test".into()),
            environment: Environment::Development,
            ..proper()
        };
        assert!(development.always_secure_cookie());
        assert!(!Settings::local_defaults().always_secure_cookie());
    }

    #[test]
    fn a_plain_http_sms_provider_is_refused() {
        let settings = Settings {
            sms_provider_url: Some("http://sms.example/v1".into()),
            ..proper()
        };
        assert_eq!(problems(&settings), [Problem::PlainSmsProvider]);
    }
}
