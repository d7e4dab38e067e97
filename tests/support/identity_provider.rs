//! A test identity provider: signing keys made in the test (RSA for RS256,
//! P-256 for ES256) and a local HTTP server publishing the chosen ones as a
//! JWKS, counting how often it is fetched.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::rand_core::OsRng;
use sportello::auth::{Claims, AUDIENCE};
use sportello::contract::Principal;

pub const ISSUER: &str = "test-idp";

/// One signing key of the provider.
pub struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    encoding: EncodingKey,
}

impl SigningKey {
    pub fn rsa(kid: &str) -> SigningKey {
        let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).unwrap();
        SigningKey {
            kid: kid.into(),
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes()),
        }
    }

    pub fn ec(kid: &str) -> SigningKey {
        let key = p256::SecretKey::random(&mut OsRng);
        SigningKey {
            kid: kid.into(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(key.to_pkcs8_der().unwrap().as_bytes()),
        }
    }

    /// The public half, as the provider publishes it.
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.algorithm).unwrap();
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk
    }

    /// A token for `principal`, valid for 10 minutes, of `issuer` for `audience`.
    pub fn sign_for(&self, principal: &Principal, issuer: &str, audience: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: issuer.into(),
            aud: audience.into(),
            sub: principal.actor_key(),
            iat: now,
            nbf: None,
            exp: now + 600,
            principal: principal.clone(),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).unwrap()
    }

    pub fn sign(&self, principal: &Principal) -> String {
        self.sign_for(principal, ISSUER, AUDIENCE)
    }
}

/// The provider's JWKS endpoint on a free local port.
pub struct IdentityProvider {
    pub jwks_url: String,
    published: Arc<Mutex<JwkSet>>,
    fetches: Arc<AtomicUsize>,
    handle: actix_web::dev::ServerHandle,
}

impl IdentityProvider {
    /// Must run inside an actix system (an `actix_rt::test`).
    pub fn start(keys: &[&SigningKey]) -> IdentityProvider {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let jwks_url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        let published = Arc::new(Mutex::new(JwkSet::default()));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (set, count) = (published.clone(), fetches.clone());
        let server = HttpServer::new(move || {
            let (set, count) = (set.clone(), count.clone());
            App::new().route(
                "/.well-known/jwks.json",
                web::get().to(move || {
                    let body = set.lock().unwrap().clone();
                    count.fetch_add(1, Ordering::SeqCst);
                    async move { HttpResponse::Ok().json(body) }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        let provider = IdentityProvider {
            jwks_url,
            published,
            fetches,
            handle,
        };
        provider.publish(keys);
        provider
    }

    /// Publishes exactly `keys` from now on (a rotation).
    pub fn publish(&self, keys: &[&SigningKey]) {
        self.published.lock().unwrap().keys = keys.iter().map(|k| k.jwk()).collect();
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}
