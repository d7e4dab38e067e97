//! Keys handed to a browser (a staff session, a video-room pass): 32 random
//! bytes, kept in the database only as their SHA-256, so a copy of the
//! table opens nothing.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new key, URL-safe; its only copy goes to the browser.
pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database keeps of a key.
pub(crate) fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}
