//! Short-lived TURN credentials, the "TURN REST API" scheme coturn
//! implements with `use-auth-secret`: the username is
//! `<expiry unix seconds>:<user>`, the password
//! `base64(HMAC-SHA1(static-auth-secret, username))`. The relay checks both
//! itself; the gateway only hands them out with the room's configuration.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;

/// How long TURN credentials are valid.
pub const TURN_CREDENTIAL_LIFETIME: Duration = Duration::hours(1);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TurnCredential {
    pub username: String,
    pub credential: String,
}

/// Credentials for `user` valid until `now + TURN_CREDENTIAL_LIFETIME`.
pub fn credential(secret: &str, user: &str, now: DateTime<Utc>) -> TurnCredential {
    let username = format!("{}:{user}", (now + TURN_CREDENTIAL_LIFETIME).timestamp());
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(username.as_bytes());
    TurnCredential {
        credential: STANDARD.encode(mac.finalize().into_bytes()),
        username,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_coturns_turn_rest_scheme() {
        // Reference value: printf '%s' '1764410400:user' | openssl dgst -sha1 -hmac secret -binary | base64
        let now: DateTime<Utc> = "2025-11-29T09:00:00Z".parse().unwrap();
        let c = credential("secret", "user", now);
        assert_eq!(c.username, "1764410400:user");
        assert_eq!(c.credential, REFERENCE);
    }

    const REFERENCE: &str = "jYITEghP7/fX+lR1ecPDOKI50Mo=";
}
