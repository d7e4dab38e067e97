//! Secret settings: each can also be read from a file named by `<NAME>_FILE`
//! (the convention of Docker and Kubernetes secrets), so no secret has to sit
//! in an environment listing or a compose file.
//!
//! Secrets never appear in `--help` (their arguments hide defaults and
//! environment values), in logs or in errors: these errors name the variable
//! and the file, never the content.

use std::path::Path;

/// Every setting holding a password, a key or a URL that may carry one.
pub const SECRET_SETTINGS: &[&str] = &[
    "JWT_SECRET",
    "AMQP_URL",
    "GATEWAY_AMQP_URL",
    "INTAKE_AMQP_URL",
    "OUTBOX_RELAY_AMQP_URL",
    "REGISTRATION_AMQP_URL",
    "NOTIFY_AMQP_URL",
    "APPOINTMENTS_AMQP_URL",
    "PIN_CHECKS_AMQP_URL",
    "API_AMQP_URL",
    "AMQP_URLS",
    "DATABASE_URL",
    "SMTP_URL",
    "SMS_PROVIDER_URL",
    "SMS_PROVIDER_PASSWORD",
    "VIDEO_LINK_SECRET",
    "PIN_SECRET",
    "TURN_SECRET",
    "BENCH_AMQP_URL",
    "BENCH_DATABASE_URL",
    "RABBITMQ_MANAGEMENT_URL",
];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SecretFileError {
    #[error("{name} and {name}_FILE are both set: set only one")]
    Both { name: &'static str },
    #[error("{name}_FILE: cannot read {path}: {reason}")]
    Unreadable {
        name: &'static str,
        path: String,
        reason: String,
    },
    #[error("{name}_FILE: {path} is empty")]
    Empty { name: &'static str, path: String },
}

/// The secrets to take from files: for each secret setting whose
/// `<NAME>_FILE` is set, its name and the file's content without the final
/// line break. `var` reads the environment, `read` a file.
pub fn from_files(
    var: impl Fn(&str) -> Option<String>,
    read: impl Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<(&'static str, String)>, SecretFileError> {
    let mut found = Vec::new();
    for &name in SECRET_SETTINGS {
        let Some(path) = var(&format!("{name}_FILE")).filter(|p| !p.is_empty()) else {
            continue;
        };
        if var(name).is_some() {
            return Err(SecretFileError::Both { name });
        }
        let content = read(Path::new(&path)).map_err(|error| SecretFileError::Unreadable {
            name,
            path: path.clone(),
            reason: error.kind().to_string(),
        })?;
        let value = content.trim_end_matches(['\n', '\r']);
        if value.is_empty() {
            return Err(SecretFileError::Empty { name, path });
        }
        found.push((name, value.to_owned()));
    }
    Ok(found)
}

/// Reads the `<NAME>_FILE` secrets into the process environment, where the
/// settings parser finds them. Call first thing in `main`, before any thread
/// starts (changing the environment is not thread-safe).
pub fn load_into_environment() -> Result<(), SecretFileError> {
    for (name, value) in from_files(
        |name| std::env::var(name).ok(),
        |path| std::fs::read_to_string(path),
    )? {
        std::env::set_var(name, value);
    }
    Ok(())
}

/// `url` with its password (if any) replaced by `***`, for messages.
pub fn redacted_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn environment(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn files(path: &Path) -> std::io::Result<String> {
        match path.to_str() {
            Some("/run/secrets/jwt") => Ok("s3cr3t\n".into()),
            Some("/run/secrets/db") => Ok("postgres://app:pw@db/sportello".into()),
            Some("/run/secrets/empty") => Ok("\n".into()),
            Some("/run/secrets/cluster") => {
                Ok("amqps://app:pw@rabbit-1/sportello,amqps://app:pw@rabbit-2/sportello\n".into())
            }
            _ => Err(std::io::ErrorKind::NotFound.into()),
        }
    }

    #[test]
    fn a_secret_is_read_from_its_file_without_the_line_break() {
        let found = from_files(
            environment(&[
                ("JWT_SECRET_FILE", "/run/secrets/jwt"),
                ("DATABASE_URL_FILE", "/run/secrets/db"),
                ("AMQP_URLS_FILE", "/run/secrets/cluster"),
                ("SMTP_URL", "smtp://relay"),
            ]),
            files,
        )
        .unwrap();
        assert_eq!(
            found,
            [
                ("JWT_SECRET", "s3cr3t".to_owned()),
                (
                    "AMQP_URLS",
                    "amqps://app:pw@rabbit-1/sportello,amqps://app:pw@rabbit-2/sportello"
                        .to_owned()
                ),
                ("DATABASE_URL", "postgres://app:pw@db/sportello".to_owned())
            ]
        );
        assert!(from_files(environment(&[]), files).unwrap().is_empty());
    }

    #[test]
    fn both_forms_a_missing_or_empty_file_are_refused_without_the_content() {
        let both = from_files(
            environment(&[
                ("JWT_SECRET_FILE", "/run/secrets/jwt"),
                ("JWT_SECRET", "inline"),
            ]),
            files,
        );
        assert_eq!(both, Err(SecretFileError::Both { name: "JWT_SECRET" }));
        let missing = from_files(environment(&[("AMQP_URL_FILE", "/nowhere")]), files)
            .unwrap_err()
            .to_string();
        assert!(
            missing.starts_with("AMQP_URL_FILE: cannot read /nowhere"),
            "{missing}"
        );
        let empty = from_files(
            environment(&[("JWT_SECRET_FILE", "/run/secrets/empty")]),
            files,
        );
        assert!(matches!(empty, Err(SecretFileError::Empty { .. })));
    }

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        assert_eq!(
            redacted_url("amqp://app:hunter2@broker:5672/sportello"),
            "amqp://app:***@broker:5672/sportello"
        );
        assert_eq!(redacted_url("smtp://relay:25"), "smtp://relay:25");
        assert_eq!(redacted_url("no url hunter2"), "(not a URL)");
    }
}
