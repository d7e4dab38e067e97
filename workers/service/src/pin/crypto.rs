//! The PIN's cryptography: argon2id hashes (slow, salted) for what is kept,
//! AES-256-GCM seals for a half only until it leaves, constant-time
//! comparison of the recovery link's secret, and Sportello's own PIN
//! tokens. Every key is derived from `PIN_SECRET` with HMAC-SHA256 and a
//! label, so one secret setting serves them all and none is reused.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::pin::secret::{PinHalf, HALF_LENGTH};
use crate::domain::pin::InitialPin;

pub use crate::config::DEVELOPMENT_PIN_SECRET;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("a sealed PIN half does not open (wrong PIN_SECRET, or altered)")]
    Unseal,
    #[error("hashing failed: {0}")]
    Hash(String),
}

/// The keys derived from `PIN_SECRET`.
#[derive(Clone)]
pub struct PinKeys {
    seal: std::sync::Arc<LessSafeKey>,
    token_secret: String,
}

fn derive(secret: &str, label: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(label.as_bytes());
    mac.finalize().into_bytes().into()
}

impl PinKeys {
    pub fn new(pin_secret: &str) -> Self {
        let seal_key = derive(pin_secret, "sportello pin seal v1");
        let unbound = UnboundKey::new(&AES_256_GCM, &seal_key)
            .unwrap_or_else(|_| unreachable!("32 bytes is an AES-256 key"));
        Self {
            seal: std::sync::Arc::new(LessSafeKey::new(unbound)),
            token_secret: hex::encode(derive(pin_secret, "sportello pin token v1")),
        }
    }

    /// The HS256 key of Sportello's PIN tokens.
    pub fn token_secret(&self) -> &str {
        &self.token_secret
    }

    /// Seals `plain`, bound to `context` (the delivery or letter id): a
    /// sealed half copied onto another row does not open.
    pub fn seal(&self, plain: &str, context: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = plain.as_bytes().to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut sealed,
            )
            .unwrap_or_else(|_| unreachable!("a half is far below AES-GCM's limit"));
        (nonce.to_vec(), sealed)
    }

    pub fn open(
        &self,
        nonce: &[u8],
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Revealed, CryptoError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Unseal)?;
        let mut buffer = sealed.to_vec();
        let plain = self
            .seal
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut buffer,
            )
            .map_err(|_| CryptoError::Unseal)?;
        let text = std::str::from_utf8(plain).map_err(|_| CryptoError::Unseal)?;
        Ok(Revealed(text.to_owned()))
    }
}

/// A secret just unsealed (a half, or a recovery link's secret); its
/// `Debug` masks it.
pub struct Revealed(String);

impl Revealed {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Revealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Revealed(********)")
    }
}

/// A new initial PIN from the operating system's CSPRNG (via `rand`'s
/// thread generator, reseeded from it).
pub fn generate_initial() -> InitialPin {
    let draw = || {
        let mut indexes = [0u8; HALF_LENGTH];
        // 31 characters: rejection sampling keeps every one equally likely.
        for slot in indexes.iter_mut() {
            *slot = loop {
                let byte = (rand::rng().next_u32() & 0xff) as u8;
                if usize::from(byte) < 248 {
                    break byte;
                }
            };
        }
        PinHalf::from_indexes(indexes)
    };
    InitialPin {
        first: draw(),
        second: draw(),
    }
}

/// An argon2id PHC string of `secret` with a fresh 16-byte salt (default
/// parameters: 19 MiB, 2 passes). CPU-heavy: call it off the async threads.
pub fn hash(secret: &str) -> Result<String, CryptoError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| CryptoError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| CryptoError::Hash(e.to_string()))
}

/// Whether `secret` matches the PHC string (argon2 compares the outputs in
/// constant time). A malformed stored hash matches nothing.
pub fn verify(phc: &str, secret: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(secret.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash nothing matches, verified when there is no credential so that an
/// unknown tax code takes as long as a wrong PIN.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy-never-a-pin").unwrap_or_default())
}

/// A recovery link's secret: 32 random bytes, hex; and its SHA-256, kept.
pub fn new_link_secret() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let digest = Sha256::digest(secret.as_bytes()).to_vec();
    (secret, digest)
}

/// Whether a presented link secret is the one whose SHA-256 was kept, in
/// time independent of where they differ.
pub fn link_secret_matches(presented: &str, kept_digest: &[u8]) -> bool {
    let digest = Sha256::digest(presented.as_bytes());
    digest.as_slice().ct_eq(kept_digest).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_is_sealed_bound_to_its_row() {
        let keys = PinKeys::new("a secret");
        let half = generate_initial().first;
        let (nonce, sealed) = keys.seal(half.expose(), b"row-1");
        assert!(!sealed
            .windows(HALF_LENGTH)
            .any(|w| w == half.expose().as_bytes()));
        assert_eq!(
            keys.open(&nonce, &sealed, b"row-1").unwrap().expose(),
            half.expose()
        );
        assert!(keys.open(&nonce, &sealed, b"row-2").is_err());
        assert!(PinKeys::new("another")
            .open(&nonce, &sealed, b"row-1")
            .is_err());
    }

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let a = hash("ABCD2345").unwrap();
        let b = hash("ABCD2345").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(verify(&a, "ABCD2345"));
        assert!(!verify(&a, "ABCD2346"));
        assert!(!verify("not a hash", "ABCD2345"));
        assert!(!verify(decoy_hash(), "ABCD2345"));
    }

    #[test]
    fn link_secrets_compare_in_constant_time_by_digest() {
        let (secret, digest) = new_link_secret();
        assert!(link_secret_matches(&secret, &digest));
        assert!(!link_secret_matches(&secret[1..], &digest));
        assert!(!link_secret_matches("", &digest));
        assert!(!link_secret_matches(&secret, &digest[..31]));
    }

    #[test]
    fn generated_pins_have_two_halves_of_eight() {
        let pin = generate_initial();
        assert_eq!(pin.whole().len(), 16);
        assert_ne!(generate_initial().whole(), pin.whole());
    }
}
