//! Join links: `<base>/stanza/<token>`, one per appointment and role. The
//! token is `<appointment id>.<c|o>.<expiry (unix seconds)>.<signature>`,
//! the signature an HMAC-SHA256 under `VIDEO_LINK_SECRET` of the first three
//! parts: nobody can make one for another appointment, another role or a
//! later expiry. The expiry is the latest the link could ever serve (the
//! slot's end plus the longest document window); whether it opens *now* is
//! `room::Schedule::landing`'s question, asked on every use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use super::{Role, WINDOW_HOURS};

/// The development key: `production::problems` refuses it.
pub const DEVELOPMENT_LINK_SECRET: &str = "sportello-development-video-link-secret";

/// A verified join token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinToken {
    pub appointment_id: Uuid,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
}

/// Why a token opens nothing. The gateway answers each the same way to the
/// browser (a forged token learns nothing), and logs which.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkRefusal {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    /// Authentic but past its expiry: what it names is kept, so that the
    /// page can say why it is over (the document window closed on ...).
    #[error("the link expired")]
    Expired(JoinToken),
}

/// Signs and verifies join tokens with one key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

impl LinkSigner {
    pub fn new(secret: &str) -> Self {
        Self {
            key: secret.as_bytes().to_vec(),
        }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(payload.as_bytes());
        mac
    }

    /// The token of `role` for the appointment ending at `slot_end`.
    pub fn sign(&self, appointment_id: Uuid, role: Role, slot_end: DateTime<Utc>) -> String {
        let expires_at = latest_use(slot_end);
        let payload = format!(
            "{}.{}.{}",
            appointment_id.simple(),
            role.letter(),
            expires_at.timestamp()
        );
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{payload}.{signature}")
    }

    /// The token's appointment and role, if it is ours, intact and unexpired.
    /// The signature is compared in constant time.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<JoinToken, LinkRefusal> {
        if token.len() > 200 {
            return Err(LinkRefusal::Malformed);
        }
        let (payload, signature) = token.rsplit_once('.').ok_or(LinkRefusal::Malformed)?;
        let mut parts = payload.split('.');
        let (Some(id), Some(role), Some(expiry), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LinkRefusal::Malformed);
        };
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LinkRefusal::Malformed)?;
        self.mac(payload)
            .verify_slice(&signature)
            .map_err(|_| LinkRefusal::BadSignature)?;
        let appointment_id = Uuid::try_parse(id).map_err(|_| LinkRefusal::Malformed)?;
        let role = Role::from_letter(role).ok_or(LinkRefusal::Malformed)?;
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or(LinkRefusal::Malformed)?;
        let token = JoinToken {
            appointment_id,
            role,
            expires_at,
        };
        if now >= expires_at {
            return Err(LinkRefusal::Expired(token));
        }
        Ok(token)
    }
}

/// The latest instant a link of a slot ending at `slot_end` can serve: the
/// end of the longest document window after it.
pub fn latest_use(slot_end: DateTime<Utc>) -> DateTime<Utc> {
    slot_end + chrono::Duration::hours(WINDOW_HOURS) + chrono::Duration::hours(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_link_opens_only_its_appointment_and_role() {
        let signer = LinkSigner::new("k");
        let id = Uuid::now_v7();
        let end = at("2026-12-03T10:20:00Z");
        let token = signer.sign(id, Role::Citizen, end);
        let verified = signer.verify(&token, at("2026-12-03T10:00:00Z")).unwrap();
        assert_eq!(verified.appointment_id, id);
        assert_eq!(verified.role, Role::Citizen);
        // Another role, another appointment, a later expiry: the signature breaks.
        let as_operator = token.replacen(".c.", ".o.", 1);
        assert_eq!(
            signer.verify(&as_operator, at("2026-12-03T10:00:00Z")),
            Err(LinkRefusal::BadSignature)
        );
        let other = token.replacen(
            &id.simple().to_string(),
            &Uuid::now_v7().simple().to_string(),
            1,
        );
        assert_eq!(
            signer.verify(&other, at("2026-12-03T10:00:00Z")),
            Err(LinkRefusal::BadSignature)
        );
        let parts: Vec<&str> = token.split('.').collect();
        let later = format!(
            "{}.{}.{}.{}",
            parts[0],
            parts[1],
            parts[2].parse::<i64>().unwrap() + 1,
            parts[3]
        );
        assert_eq!(
            signer.verify(&later, at("2026-12-03T10:00:00Z")),
            Err(LinkRefusal::BadSignature)
        );
        // Another key signs other links.
        assert_eq!(
            LinkSigner::new("other").verify(&token, at("2026-12-03T10:00:00Z")),
            Err(LinkRefusal::BadSignature)
        );
    }

    #[test]
    fn a_link_expires_after_the_longest_window() {
        let signer = LinkSigner::new("k");
        let end = at("2026-12-03T10:20:00Z");
        let id = Uuid::now_v7();
        let token = signer.sign(id, Role::Operator, end);
        assert!(signer.verify(&token, at("2026-12-06T10:19:00Z")).is_ok());
        // Expired, it still says which room it was for (never a forged one).
        match signer.verify(&token, at("2026-12-06T11:20:00Z")) {
            Err(LinkRefusal::Expired(expired)) => {
                assert_eq!((expired.appointment_id, expired.role), (id, Role::Operator));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let signer = LinkSigner::new("k");
        let now = at("2026-12-03T10:00:00Z");
        for token in [
            "",
            ".",
            "a.b.c.d",
            "x.c.1.",
            &"a".repeat(500),
            "0.c.99999999999999999999.AA",
        ] {
            assert!(signer.verify(token, now).is_err(), "{token}");
        }
    }
}
