//! Signed tokens (JWT) from the identity provider: they carry the principal
//! of the message envelope. In production the identity provider signs them
//! (RS256 or ES256) with keys it publishes as a JWKS (`jwks.rs`); in
//! development `sportello token` signs them locally with a shared key (HS256),
//! which only development accepts. `Verifier` picks by the token's algorithm.

mod jwks;

use chrono::{Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::contract::{Authentication, CodiceFiscale, Identification, Principal};
use crate::domain::protocol::Aoo;

pub use jwks::{JwksError, PublishedKeys};

/// The audience our tokens must name: a token the identity provider signed
/// for another service of the institute (same key, same issuer) is refused.
pub const AUDIENCE: &str = "sportello";

pub use crate::config::{DEFAULT_LEEWAY_SECONDS, DEVELOPMENT_SECRET, MAX_LEEWAY_SECONDS};

/// The issuer of the tokens Sportello itself signs after a PIN sign-in
/// (`pin::sign_in`), and the `kid` their header names.
pub const PIN_ISSUER: &str = "sportello-pin";
pub const PIN_KEY_ID: &str = "sportello-pin";

/// Who the token is about, for whom and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    /// Issued at (seconds since the epoch); required.
    pub iat: i64,
    /// Not valid before, when the identity provider says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    pub principal: Principal,
}

/// How long a token of each kind of principal may live (`exp - iat`): a
/// citizen's or an intermediary's session an hour, an operator's or a
/// contact-centre agent's a working day. A longer token is refused, however
/// validly signed: a stolen ten-year token must not be a key for life.
pub fn max_lifetime(principal: &Principal) -> Duration {
    match principal {
        Principal::Citizen { .. } | Principal::Intermediary { .. } => Duration::hours(1),
        Principal::Operator { .. } | Principal::ContactCenterAgent { .. } => Duration::hours(12),
    }
}

/// Why a token's times refuse it (after `exp` and `nbf`, which the decoder
/// checks with the same leeway).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    #[error("the token was issued in the future (`iat` {iat}, now {now})")]
    IssuedInTheFuture { iat: i64, now: i64 },
    #[error("the token lives {seconds} s; tokens of this kind live at most {max} s")]
    TooLong { seconds: i64, max: i64 },
}

/// The `iat` and lifetime rules, at `now` (seconds), with `leeway` seconds.
pub fn check_lifetime(claims: &Claims, now: i64, leeway: u64) -> Result<(), LifetimeError> {
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    if claims.iat > now.saturating_add(leeway) {
        return Err(LifetimeError::IssuedInTheFuture {
            iat: claims.iat,
            now,
        });
    }
    let seconds = claims.exp.saturating_sub(claims.iat);
    let max = max_lifetime(&claims.principal).num_seconds();
    if seconds > max {
        return Err(LifetimeError::TooLong { seconds, max });
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is invalid: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    #[error("the token is signed with {0:?}, which is not accepted here")]
    Algorithm(Algorithm),
    #[error("the token names no key (`kid`)")]
    NoKeyId,
    #[error("the token's key `{0}` is not among the identity provider's keys")]
    UnknownKey(String),
    #[error("the identity provider's keys are unavailable: {0}")]
    KeysUnavailable(#[from] JwksError),
    #[error("the token is refused: {0}")]
    Lifetime(#[from] LifetimeError),
    #[error("a PIN token is only for a citizen authenticated by PIN")]
    NotAPinCitizen,
}

/// The checks every token passes whoever signed it: our issuer, our
/// audience, not expired and already valid (`nbf`), within `leeway`
/// seconds; then [`check_lifetime`] on the decoded claims.
fn validation(algorithm: Algorithm, issuer: &str, leeway: u64) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = leeway.min(MAX_LEEWAY_SECONDS);
    validation.validate_nbf = true;
    validation
}

/// Decodes and checks a token with `key`: signature, issuer, audience,
/// `exp`, `nbf`, `iat` and lifetime.
fn decode_checked(
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
    issuer: &str,
    leeway: u64,
) -> Result<Claims, TokenError> {
    let validation = validation(algorithm, issuer, leeway);
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)?.claims;
    check_lifetime(&claims, Utc::now().timestamp(), validation.leeway)?;
    Ok(claims)
}

/// Verifies tokens: RS256/ES256 with the identity provider's published keys
/// when `JWT_JWKS_URL` is set; HS256 with the shared key in development only.
#[derive(Clone)]
pub struct Verifier {
    shared: Option<TokenKeys>,
    published: Option<std::sync::Arc<PublishedKeys>>,
    /// Sportello's own PIN tokens (`kid` [`PIN_KEY_ID`]), in every
    /// environment: a key derived from `PIN_SECRET`.
    pin: Option<TokenKeys>,
}

impl Verifier {
    pub fn from_settings(settings: &Settings) -> Self {
        let leeway = settings.jwt_leeway_seconds;
        let published = settings
            .jwt_jwks_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .map(|url| {
                std::sync::Arc::new(
                    PublishedKeys::new(url, &settings.jwt_issuer, jwks::MIN_REFRESH_INTERVAL)
                        .with_leeway(leeway),
                )
            });
        let shared = (!settings.is_production()).then(|| {
            TokenKeys::new(&settings.jwt_secret, &settings.jwt_issuer).with_leeway(leeway)
        });
        let pin = Some(pin_token_keys(
            &crate::pin::crypto::PinKeys::new(&settings.pin_secret),
            leeway,
        ));
        Self {
            shared,
            published,
            pin,
        }
    }

    /// Tokens of the identity provider publishing its keys at `jwks_url`
    /// only, refreshed at most once per `min_refresh`.
    pub fn published(jwks_url: &str, issuer: &str, min_refresh: std::time::Duration) -> Self {
        Self {
            shared: None,
            published: Some(std::sync::Arc::new(PublishedKeys::new(
                jwks_url,
                issuer,
                min_refresh,
            ))),
            pin: None,
        }
    }

    /// Shared-key (HS256) tokens only: development and tests.
    pub fn shared(keys: TokenKeys) -> Self {
        Self {
            shared: Some(keys),
            published: None,
            pin: None,
        }
    }

    /// The principal of a valid, unexpired token of our issuer, for us.
    pub async fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        Ok(self.verify_claims(token).await?.principal)
    }

    /// The claims of a valid, unexpired token of our issuer, for us.
    pub async fn verify_claims(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        if header.kid.as_deref() == Some(PIN_KEY_ID) {
            return match (header.alg, &self.pin) {
                (Algorithm::HS256, Some(pin)) => {
                    let claims = pin.verify_claims(token)?;
                    match &claims.principal {
                        Principal::Citizen {
                            authentication: Authentication::Pin { .. },
                            ..
                        } => Ok(claims),
                        _ => Err(TokenError::NotAPinCitizen),
                    }
                }
                (other, _) => Err(TokenError::Algorithm(other)),
            };
        }
        match (header.alg, &self.shared, &self.published) {
            (Algorithm::HS256, Some(shared), _) => shared.verify_claims(token),
            (Algorithm::RS256 | Algorithm::ES256, _, Some(published)) => {
                published.verify_claims(token, &header).await
            }
            (other, _, _) => Err(TokenError::Algorithm(other)),
        }
    }
}

/// Signs and checks tokens with one shared secret and issuer.
#[derive(Clone)]
pub struct TokenKeys {
    issuer: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    leeway: u64,
    /// The `kid` issued tokens name (Sportello's PIN tokens).
    key_id: Option<String>,
}

impl TokenKeys {
    pub fn new(secret: &str, issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            leeway: DEFAULT_LEEWAY_SECONDS,
            key_id: None,
        }
    }

    /// Issued tokens name `kid` in their header.
    pub fn with_key_id(mut self, kid: &str) -> Self {
        self.key_id = Some(kid.to_owned());
        self
    }

    /// The clock difference tolerated (at most [`MAX_LEEWAY_SECONDS`]).
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds.min(MAX_LEEWAY_SECONDS);
        self
    }

    pub fn issue(&self, principal: &Principal, valid_for: Duration) -> Result<String, TokenError> {
        let now = Utc::now();
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
            sub: principal.actor_key(),
            iat: now.timestamp(),
            nbf: None,
            exp: (now + valid_for).timestamp(),
            principal: principal.clone(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = self.key_id.clone();
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// The principal of a valid, unexpired token of our issuer, for us.
    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        Ok(self.verify_claims(token)?.principal)
    }

    /// The claims of a valid, unexpired token of our issuer, for us.
    pub fn verify_claims(&self, token: &str) -> Result<Claims, TokenError> {
        decode_checked(
            token,
            &self.decoding,
            Algorithm::HS256,
            &self.issuer,
            self.leeway,
        )
    }
}

/// Kinds of principal `sportello token` can issue for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DevelopmentPrincipal {
    Citizen,
    Intermediary,
    Operator,
    /// A contact-centre agent (`--for` the caller, `--identified-by` how).
    Agent,
}

/// What some kinds of development principal need beside their id.
#[derive(Debug, Clone, Default)]
pub struct DevelopmentOptions<'a> {
    /// An operator's office (AOO).
    pub office: Option<&'a str>,
    /// The caller an agent acts for.
    pub on_behalf_of: Option<&'a str>,
    /// How the agent identified the caller (`spid`, `cie`, `cns`, `pin`, `pin_simplified`).
    pub identified_by: Option<&'a str>,
}

impl DevelopmentPrincipal {
    pub fn principal(self, id: &str, options: &DevelopmentOptions) -> Result<Principal, String> {
        let office = options.office;
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
            DevelopmentPrincipal::Agent => {
                let caller = options.on_behalf_of.ok_or("an agent needs --for TAXCODE")?;
                Principal::ContactCenterAgent {
                    agent_id: id.to_owned(),
                    on_behalf_of: CodiceFiscale::parse(caller)
                        .map_err(|e| format!("`{caller}`: {e}"))?,
                    identified_by: options
                        .identified_by
                        .map(|raw| {
                            Identification::parse(raw).ok_or_else(|| {
                                format!("--identified-by is spid, cie, cns, pin or pin_simplified, not `{raw}`")
                            })
                        })
                        .transpose()?,
                    pin_verification_id: None,
                }
            }
        })
    }
}

/// The keys of Sportello's PIN tokens (issue and verify), derived from
/// `PIN_SECRET`.
pub fn pin_token_keys(keys: &crate::pin::crypto::PinKeys, leeway: u64) -> TokenKeys {
    TokenKeys::new(keys.token_secret(), PIN_ISSUER)
        .with_leeway(leeway)
        .with_key_id(PIN_KEY_ID)
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

    fn sign(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    fn claims_at(iat: i64, exp: i64, principal: Principal) -> serde_json::Value {
        serde_json::json!({
            "iss": "idp", "aud": AUDIENCE, "sub": principal.actor_key(),
            "iat": iat, "exp": exp, "principal": principal,
        })
    }

    #[test]
    fn an_expired_token_is_refused_after_a_few_seconds_not_a_minute() {
        let keys = TokenKeys::new("secret", "idp");
        let now = Utc::now().timestamp();
        let expired_20s_ago = sign(claims_at(now - 600, now - 20, citizen()));
        assert!(keys.verify(&expired_20s_ago).is_err());
        let expired_2s_ago = sign(claims_at(now - 600, now - 2, citizen()));
        assert!(keys.verify(&expired_2s_ago).is_ok(), "within the leeway");
        let strict = TokenKeys::new("secret", "idp").with_leeway(0);
        assert!(strict.verify(&expired_2s_ago).is_err());
        let generous = TokenKeys::new("secret", "idp").with_leeway(3600);
        assert!(generous.verify(&expired_20s_ago).is_ok(), "capped at 30 s");
        let expired_60s_ago = sign(claims_at(now - 600, now - 60, citizen()));
        assert!(generous.verify(&expired_60s_ago).is_err());
    }

    #[test]
    fn nbf_and_a_future_iat_are_honoured() {
        let keys = TokenKeys::new("secret", "idp");
        let now = Utc::now().timestamp();
        let mut not_yet = claims_at(now, now + 600, citizen());
        not_yet["nbf"] = serde_json::json!(now + 120);
        assert!(keys.verify(&sign(not_yet.clone())).is_err());
        not_yet["nbf"] = serde_json::json!(now - 1);
        assert!(keys.verify(&sign(not_yet)).is_ok());
        let from_the_future = sign(claims_at(now + 300, now + 900, citizen()));
        assert!(matches!(
            keys.verify(&from_the_future),
            Err(TokenError::Lifetime(
                LifetimeError::IssuedInTheFuture { .. }
            ))
        ));
    }

    #[test]
    fn each_kind_of_principal_has_a_longest_lifetime() {
        let keys = TokenKeys::new("secret", "idp");
        let now = Utc::now().timestamp();
        let ten_years = sign(claims_at(now, now + 10 * 365 * 86_400, citizen()));
        assert!(matches!(
            keys.verify(&ten_years),
            Err(TokenError::Lifetime(LifetimeError::TooLong { .. }))
        ));
        let hour = sign(claims_at(now, now + 3600, citizen()));
        assert!(keys.verify(&hour).is_ok());
        let two_hours = sign(claims_at(now, now + 7200, citizen()));
        assert!(keys.verify(&two_hours).is_err());
        let operator = Principal::Operator {
            operator_id: "E0013609".into(),
            office: "1901".into(),
            on_behalf_of: None,
        };
        let shift = sign(claims_at(now, now + 8 * 3600, operator.clone()));
        assert!(keys.verify(&shift).is_ok());
        let week = sign(claims_at(now, now + 7 * 86_400, operator));
        assert!(keys.verify(&week).is_err());
    }

    #[actix_rt::test]
    async fn production_refuses_shared_key_tokens_development_accepts_them() {
        let development = Settings::local_defaults();
        let keys = TokenKeys::new(&development.jwt_secret, &development.jwt_issuer);
        let token = keys.issue(&citizen(), Duration::minutes(5)).unwrap();
        let verifier = Verifier::from_settings(&development);
        assert_eq!(verifier.verify(&token).await.unwrap(), citizen());
        let production = Settings {
            environment: crate::config::Environment::Production,
            ..Settings::local_defaults()
        };
        let verifier = Verifier::from_settings(&production);
        assert!(matches!(
            verifier.verify(&token).await,
            Err(TokenError::Algorithm(Algorithm::HS256))
        ));
        // No published keys configured: RS256 tokens have nothing to match.
        let rs256 = format!(
            "{}.e30.sig",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"alg":"RS256","kid":"k1"}"#
            )
        );
        assert!(matches!(
            Verifier::from_settings(&development).verify(&rs256).await,
            Err(TokenError::Algorithm(Algorithm::RS256))
        ));
    }
}
