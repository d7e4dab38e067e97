//! The identity provider's published keys (a JWKS at `JWT_JWKS_URL`).
//!
//! Keys are fetched on first use and cached by key id (`kid`). A token naming
//! a key the cache lacks (the provider rotated) makes the cache refresh, at
//! most once per `MIN_REFRESH_INTERVAL` whatever arrives, so forged `kid`s
//! cannot turn us into a flood against the provider. The set is also
//! refreshed when older than `MAX_AGE` (a key withdrawn from the set stops
//! verifying by then); if the provider is unreachable then, the cached keys
//! go on verifying. No restart is ever needed.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, Header};

use super::{decode_checked, Claims, TokenError};

/// Fewest seconds between two fetches of the set.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// Oldest cached set used without trying to refresh it.
const MAX_AGE: Duration = Duration::from_secs(600);
/// Longest a fetch may take: a request waiting for it waits at most this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWT_JWKS_URL is not a valid URL")]
    InvalidUrl,
    #[error("fetching the keys: {0}")]
    Fetch(String),
    #[error("the keys are not a JWKS: {0}")]
    Invalid(String),
}

/// A verifying key and the one algorithm it verifies.
struct Key {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, std::sync::Arc<Key>>,
    fetched_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

/// The published keys of one identity provider (issuer).
pub struct PublishedKeys {
    url: String,
    issuer: String,
    client: reqwest::Client,
    min_refresh: Duration,
    cache: RwLock<Cache>,
    /// One fetch at a time; requests that needed it wait and then look again.
    refreshing: tokio::sync::Mutex<()>,
    /// Clock difference tolerated on `exp`, `nbf`, `iat` (seconds).
    leeway: u64,
}

impl PublishedKeys {
    /// Keys at `url` for tokens of `issuer`, fetched at most once per
    /// `min_refresh`. Nothing is fetched until the first token (a URL that
    /// does not parse fails then, as an unavailable set).
    pub fn new(url: &str, issuer: &str, min_refresh: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            url: url.to_owned(),
            issuer: issuer.to_owned(),
            client,
            min_refresh,
            cache: RwLock::new(Cache::default()),
            refreshing: tokio::sync::Mutex::new(()),
            leeway: super::DEFAULT_LEEWAY_SECONDS,
        }
    }

    /// The clock difference tolerated (at most `MAX_LEEWAY_SECONDS`).
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds.min(super::MAX_LEEWAY_SECONDS);
        self
    }

    /// The claims of a token signed (RS256/ES256) by the key its `kid` names,
    /// for us, of our issuer, unexpired.
    pub async fn verify_claims(&self, token: &str, header: &Header) -> Result<Claims, TokenError> {
        let kid = header.kid.as_deref().ok_or(TokenError::NoKeyId)?;
        let key = self.key(kid).await?;
        if key.algorithm != header.alg {
            return Err(TokenError::Algorithm(header.alg));
        }
        decode_checked(
            token,
            &key.decoding,
            key.algorithm,
            &self.issuer,
            self.leeway,
        )
    }

    /// How many keys are cached (for tests and diagnostics).
    pub fn cached_keys(&self) -> usize {
        self.read(|cache| cache.keys.len())
    }

    fn read<T>(&self, f: impl FnOnce(&Cache) -> T) -> T {
        // A panic while holding the lock cannot leave the cache half-written
        // (it is replaced whole), so a poisoned lock is still usable.
        f(&self.cache.read().unwrap_or_else(|e| e.into_inner()))
    }

    async fn key(&self, kid: &str) -> Result<std::sync::Arc<Key>, TokenError> {
        let (cached, stale) = self.read(|cache| {
            (
                cache.keys.get(kid).cloned(),
                cache.fetched_at.is_none_or(|at| at.elapsed() >= MAX_AGE),
            )
        });
        match cached {
            Some(key) if !stale => return Ok(key),
            Some(key) => {
                if let Err(error) = self.refresh().await {
                    tracing::warn!(%error, "identity provider keys not refreshed; using the cached ones");
                    return Ok(key);
                }
            }
            None => self.refresh().await?,
        }
        self.read(|cache| cache.keys.get(kid).cloned())
            .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))
    }

    /// Fetches the set unless it was tried within `min_refresh`.
    async fn refresh(&self) -> Result<(), JwksError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let recently = self.read(|cache| {
            cache
                .attempted_at
                .is_some_and(|at| at.elapsed() < self.min_refresh)
        });
        if recently {
            return Ok(());
        }
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .attempted_at = Some(Instant::now());
        let set = self.fetch().await?;
        let keys = usable_keys(&set);
        tracing::info!(keys = keys.len(), "identity provider keys fetched");
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        cache.keys = keys;
        cache.fetched_at = Some(Instant::now());
        Ok(())
    }

    async fn fetch(&self) -> Result<JwkSet, JwksError> {
        // Errors without the URL: it may carry credentials.
        let url = reqwest::Url::parse(&self.url).map_err(|_| JwksError::InvalidUrl)?;
        // Once more after a failure to send: a pooled connection the
        // provider had just closed fails the first try, not the second.
        let sent = match self.client.get(url.clone()).send().await {
            Err(error) if error.is_request() || error.is_connect() || error.is_timeout() => {
                tracing::debug!(error = %explain(error), "fetching the published keys again");
                self.client.get(url).send().await
            }
            sent => sent,
        };
        let response = sent
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| JwksError::Fetch(explain(e)))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| JwksError::Fetch(explain(e)))?;
        serde_json::from_slice(&body).map_err(|e| JwksError::Invalid(e.to_string()))
    }
}

/// A fetch's error with its causes (reqwest's own says only "error sending
/// request"), without the URL: it may carry credentials.
fn explain(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The set's signing keys we accept, by `kid`: RSA keys for RS256, P-256
/// keys for ES256 (the `alg` a key names must agree). Keys without a `kid`,
/// for encryption or of other kinds are left out.
fn usable_keys(set: &JwkSet) -> HashMap<String, std::sync::Arc<Key>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let key = usable_key(jwk)?;
            Some((kid, std::sync::Arc::new(key)))
        })
        .collect()
}

fn usable_key(jwk: &Jwk) -> Option<Key> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let algorithm = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let agrees = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => algorithm == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => algorithm == Algorithm::ES256,
        Some(_) => false,
    };
    if !agrees {
        return None;
    }
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        algorithm,
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(json: serde_json::Value) -> JwkSet {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn only_rsa_and_p256_signing_keys_with_an_id_are_used() {
        let rsa = serde_json::json!({"kty": "RSA", "n": "sXch", "e": "AQAB"});
        let ec = serde_json::json!({"kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let with = |base: &serde_json::Value, extra: serde_json::Value| {
            let mut jwk = base.clone();
            jwk.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            jwk
        };
        let keys = usable_keys(&set(serde_json::json!({"keys": [
            with(&rsa, serde_json::json!({"kid": "r1"})),
            with(&rsa, serde_json::json!({"kid": "r2", "alg": "RS256", "use": "sig"})),
            with(&ec, serde_json::json!({"kid": "e1", "alg": "ES256"})),
            rsa.clone(),
            with(&rsa, serde_json::json!({"kid": "enc", "use": "enc"})),
            with(&rsa, serde_json::json!({"kid": "ps", "alg": "PS256"})),
            with(&ec, serde_json::json!({"kid": "wrong", "alg": "RS256"})),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]})));
        let mut ids: Vec<_> = keys.keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["e1", "r1", "r2"]);
        assert_eq!(keys["e1"].algorithm, Algorithm::ES256);
        assert_eq!(keys["r1"].algorithm, Algorithm::RS256);
    }

    #[actix_rt::test]
    async fn a_bad_url_fails_without_echoing_it() {
        let keys = PublishedKeys::new("not a url:secret", "idp", MIN_REFRESH_INTERVAL);
        let error = keys.refresh().await.unwrap_err().to_string();
        assert!(!error.contains("secret"), "{error}");
        assert_eq!(keys.cached_keys(), 0);
    }
}
