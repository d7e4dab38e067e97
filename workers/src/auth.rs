//! Signed tokens (JWT, HS256) from the identity provider: they carry the
//! principal of the message envelope. `sportello token` issues one locally for
//! development; in production the identity provider signs with the shared key.

use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::contract::{Authentication, CodiceFiscale, Principal};
use crate::domain::protocol::Aoo;

/// The audience our tokens must name: a token the identity provider signed
/// for another service of the institute (same key, same issuer) is refused.
pub const AUDIENCE: &str = "sportello";

/// Who the token is about, for whom and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub iat: i64,
    pub exp: i64,
    pub principal: Principal,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

/// Signs and checks tokens with one shared secret and issuer.
#[derive(Clone)]
pub struct TokenKeys {
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    pub fn new(secret: &str, issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
        }
    }

    pub fn issue(&self, principal: &Principal, valid_for: Duration) -> Result<String, TokenError> {
        let now = Utc::now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: principal.actor_key(),
            iat: now.timestamp(),
            exp: (now + valid_for).timestamp(),
            principal: principal.clone(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The principal of a valid, unexpired token of our issuer, for us.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        Ok(self.verify_claims(token)?.principal)
    }

    /// The claims of a valid, unexpired token of our issuer, for us.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)?.claims)
    }
}

/// Kinds of principal `sportello token` can issue for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DevelopmentPrincipal {
    Citizen,
    Intermediary,
    Operator,
}

impl DevelopmentPrincipal {
    pub fn principal(self, id: &str, office: Option<&str>) -> Result<Principal, String> {
        let tax_code = || CodiceFiscale::parse(id).map_err(|e| format!("`{id}`: {e}"));
        // A development identity provider: CIE, the strongest method.
        Ok(match self {
            DevelopmentPrincipal::Citizen => Principal::Citizen {
                tax_code: tax_code()?,
                authentication: Authentication::Cie,
            },
            DevelopmentPrincipal::Intermediary => Principal::Intermediary {
                tax_code: tax_code()?,
                authentication: Authentication::Cie,
            },
            DevelopmentPrincipal::Operator => Principal::Operator {
                operator_id: id.to_owned(),
                office: Aoo::parse(office.ok_or("an operator needs --office")?)
                    .map_err(|e| e.to_string())?
                    .to_string(),
                on_behalf_of: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn citizen() -> Principal {
        Principal::Citizen {
            tax_code: CodiceFiscale::parse("RSSMRA85T10A562S").unwrap(),
            authentication: Authentication::Cie,
        }
    }

    #[test]
    fn a_token_round_trips_its_principal() {
        let keys = TokenKeys::new("secret", "idp");
        let token = keys.issue(&citizen(), Duration::minutes(5)).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), citizen());
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let keys = TokenKeys::new("secret", "idp");
        let forged = TokenKeys::new("other", "idp")
            .issue(&citizen(), Duration::minutes(5))
            .unwrap();
        assert!(keys.verify(&forged).is_err());
        let expired = keys.issue(&citizen(), Duration::minutes(-5)).unwrap();
        assert!(keys.verify(&expired).is_err());
        let foreign = TokenKeys::new("secret", "elsewhere")
            .issue(&citizen(), Duration::minutes(5))
            .unwrap();
        assert!(keys.verify(&foreign).is_err());
        assert!(keys.verify("not.a.token").is_err());
    }

    #[test]
    fn a_token_for_another_audience_or_none_is_refused() {
        let keys = TokenKeys::new("secret", "idp");
        let now = Utc::now().timestamp();
        let sign = |claims: serde_json::Value| {
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"secret"),
            )
            .unwrap()
        };
        let mut claims = serde_json::json!({
            "iss": "idp", "aud": "another-service", "sub": "citizen:RSSMRA85T10A562S",
            "iat": now, "exp": now + 300, "principal": citizen(),
        });
        assert!(keys.verify(&sign(claims.clone())).is_err());
        claims.as_object_mut().unwrap().remove("aud");
        assert!(keys.verify(&sign(claims.clone())).is_err());
        claims["aud"] = serde_json::json!(AUDIENCE);
        assert_eq!(keys.verify(&sign(claims)).unwrap(), citizen());
    }
}
