//! Secrets: generated from the OS CSPRNG, encrypted at rest with ChaCha20-Poly1305 under a
//! key kept in a 0600 file, and API tokens stored only as SHA-256 hashes.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngExt as _;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Prefix of every API token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "berth_";

/// An alphanumeric password from the OS CSPRNG (rand's thread RNG is a CSPRNG seeded by the OS).
pub fn generate_password(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

pub fn generate_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    rand::fill(&mut key);
    key
}

#[derive(Debug, Error)]
pub enum SecretError {
    #[error("secret key must be {KEY_LEN} bytes, got {0}")]
    KeyLength(usize),
    #[error("encrypted value is corrupt or was encrypted with another key")]
    Decrypt,
}

/// Encrypts and decrypts values stored in the state database.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8]) -> Result<Self, SecretError> {
        if key.len() != KEY_LEN {
            return Err(SecretError::KeyLength(key.len()));
        }
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(key)),
        })
    }

    /// `v1:` + base64(nonce || ciphertext). A fresh random nonce per value.
    pub fn encrypt(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("ChaCha20Poly1305 encryption cannot fail for in-memory data");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        format!("v1:{}", STANDARD.encode(blob))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let encoded = stored.strip_prefix("v1:").ok_or(SecretError::Decrypt)?;
        let blob = STANDARD.decode(encoded).map_err(|_| SecretError::Decrypt)?;
        if blob.len() < NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plaintext).map_err(|_| SecretError::Decrypt)
    }
}

/// A new API token: `berth_` + 32 random bytes, base64url.
pub fn generate_token() -> String {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw))
}

/// What we store for a token: hex SHA-256. Tokens carry 256 bits of entropy, so a fast hash
/// is enough (argon2 is for human passwords).
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two token hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_random_alphanumeric() {
        let a = generate_password(16);
        let b = generate_password(16);
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn secret_box_round_trips_and_hides_plaintext() {
        let sb = SecretBox::new(&generate_key()).unwrap();
        let stored = sb.encrypt("hunter2hunter2");
        assert!(!stored.contains("hunter2"));
        assert_ne!(stored, sb.encrypt("hunter2hunter2"), "nonces differ");
        assert_eq!(sb.decrypt(&stored).unwrap(), "hunter2hunter2");
        let other = SecretBox::new(&generate_key()).unwrap();
        assert!(other.decrypt(&stored).is_err());
        assert!(SecretBox::new(&[0u8; 3]).is_err());
    }

    #[test]
    fn tokens_hash_stably() {
        let t = generate_token();
        assert!(t.starts_with(TOKEN_PREFIX));
        assert!(hashes_equal(&hash_token(&t), &hash_token(&t)));
        assert!(!hashes_equal(&hash_token(&t), &hash_token("berth_x")));
    }
}
