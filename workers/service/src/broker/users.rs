//! The broker users of the worker kinds: each kind that talks to RabbitMQ
//! connects as its own user of `broker-config/definitions.json`, whose
//! permissions allow what that kind does and nothing else. Timers and the
//! email and SMS senders never connect to the broker, so they have none.
//!
//! The topology (exchanges, queues, bindings) is declared by a privileged
//! step, not by the workers: `sportello declare-topology` (and `up`) as
//! `AMQP_URL`'s user, `sportello-app`, or the definitions' import. So no
//! worker needs to configure a shared object; only the objects a kind makes
//! for itself (the gateway's relay queues, the appointments worker's
//! call-back queues, which follow the calendars) are in its configure
//! permission.
//!
//! Each kind's URL is a setting of its own (`<KIND>_AMQP_URL`, a secret;
//! required in production). In development an unset one is derived from
//! `AMQP_URL` (or `AMQP_URLS`) by the repository's naming: `sportello-app`
//! in the user name and the password becomes the kind's user, so
//! `sportello-app:sportello-app-dev@host/vhost` gives
//! `sportello-intake:sportello-intake-dev@host/vhost`. A URL of another user
//! (a bench's `guest`) is used as it is.

/// A broker user of a worker kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerUser {
    Intake,
    OutboxRelay,
    Registration,
    Notify,
    Appointments,
    Api,
    Gateway,
    PinChecks,
}

/// The user of `AMQP_URL` in development: the operators' one, which
/// declares the topology and runs the tools (`dead-letters`, `events`).
pub const APP_USER: &str = "sportello-app";

impl BrokerUser {
    pub const ALL: [BrokerUser; 8] = [
        BrokerUser::Intake,
        BrokerUser::OutboxRelay,
        BrokerUser::Registration,
        BrokerUser::Notify,
        BrokerUser::Appointments,
        BrokerUser::Api,
        BrokerUser::Gateway,
        BrokerUser::PinChecks,
    ];

    /// Its name in the definitions.
    pub fn name(self) -> &'static str {
        match self {
            BrokerUser::Intake => "sportello-intake",
            BrokerUser::OutboxRelay => "sportello-outbox-relay",
            BrokerUser::Registration => "sportello-registration",
            BrokerUser::Notify => "sportello-notify",
            BrokerUser::Appointments => "sportello-appointments",
            BrokerUser::Api => "sportello-api",
            BrokerUser::Gateway => "sportello-gateway",
            BrokerUser::PinChecks => "sportello-pin-checks",
        }
    }

    /// The setting holding its URL (also `<SETTING>_FILE`).
    pub fn setting(self) -> &'static str {
        match self {
            BrokerUser::Intake => "INTAKE_AMQP_URL",
            BrokerUser::OutboxRelay => "OUTBOX_RELAY_AMQP_URL",
            BrokerUser::Registration => "REGISTRATION_AMQP_URL",
            BrokerUser::Notify => "NOTIFY_AMQP_URL",
            BrokerUser::Appointments => "APPOINTMENTS_AMQP_URL",
            BrokerUser::Api => "API_AMQP_URL",
            BrokerUser::Gateway => "GATEWAY_AMQP_URL",
            BrokerUser::PinChecks => "PIN_CHECKS_AMQP_URL",
        }
    }
}

/// `addresses` (one AMQP URL or a cluster's, comma separated) as `user`'s:
/// in each URL naming the app user, `sportello-app` in the user name and
/// in the password becomes `user`; any other URL stays as it is.
pub fn derived_addresses(addresses: &str, user: BrokerUser) -> String {
    super::nodes::split(addresses)
        .into_iter()
        .map(|url| derived_url(url, user.name()))
        .collect::<Vec<_>>()
        .join(",")
}

fn derived_url(url: &str, user: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user information ends at the last `@` before the path.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let (user_info, host_and_path) = (&rest[..at], &rest[at..]);
    let (name, password) = match user_info.split_once(':') {
        Some((name, password)) => (name, Some(password)),
        None => (user_info, None),
    };
    if !name.contains(APP_USER) {
        return url.to_owned();
    }
    // `sportello-app` has only unreserved characters: replacing it in the
    // percent-encoded text is replacing it in the decoded one.
    let name = name.replace(APP_USER, user);
    match password {
        Some(password) => format!(
            "{scheme}://{name}:{}{host_and_path}",
            password.replace(APP_USER, user)
        ),
        None => format!("{scheme}://{name}{host_and_path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topology::Definitions;

    #[test]
    fn the_development_app_user_becomes_the_kind_s_user() {
        assert_eq!(
            derived_addresses(
                "amqp://sportello-app:sportello-app-dev@127.0.0.1:5672/sportello",
                BrokerUser::Intake
            ),
            "amqp://sportello-intake:sportello-intake-dev@127.0.0.1:5672/sportello"
        );
        // A cluster: every node; a test's prefixed user and password too.
        assert_eq!(
            derived_addresses(
                "amqp://sportello-app:sportello-app-dev@rabbit-1/sportello, \
                 amqp://sportello-app:sportello-app-dev@rabbit-2/sportello",
                BrokerUser::Api
            ),
            "amqp://sportello-api:sportello-api-dev@rabbit-1/sportello,\
             amqp://sportello-api:sportello-api-dev@rabbit-2/sportello"
        );
        assert_eq!(
            derived_addresses(
                "amqp://1a2b-sportello-app:sportello-app-pw@127.0.0.1:5672/test-1a2b",
                BrokerUser::OutboxRelay
            ),
            "amqp://1a2b-sportello-outbox-relay:sportello-outbox-relay-pw@127.0.0.1:5672/test-1a2b"
        );
    }

    #[test]
    fn another_user_s_url_is_kept() {
        for url in [
            "amqp://guest:guest@127.0.0.1:5672/sportello-bench-x",
            "amqp://127.0.0.1:5672/%2f",
            "not a url",
            // An `@` in the path is no user information.
            "amqp://127.0.0.1:5672/sportello-app@vhost",
        ] {
            assert_eq!(derived_addresses(url, BrokerUser::Notify), url);
        }
    }

    #[test]
    fn every_kind_s_user_is_in_the_definitions_with_permissions() {
        let definitions = Definitions::embedded().unwrap();
        for user in BrokerUser::ALL {
            assert!(
                definitions.users.iter().any(|u| u["name"] == user.name()),
                "{} is not a user of broker-config/definitions.json",
                user.name()
            );
            let permission = definitions
                .permissions
                .iter()
                .find(|p| p["user"] == user.name())
                .unwrap_or_else(|| panic!("{} has no permissions", user.name()));
            // No kind's user may configure what the topology declares.
            let configure = permission["configure"].as_str().unwrap();
            assert_ne!(configure, "^sportello\\.", "{}", user.name());
            assert!(!configure.contains(".*"), "{}", user.name());
        }
    }
}
