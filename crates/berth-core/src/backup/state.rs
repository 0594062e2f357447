//! Backups of Berth's own state (its state database, `secret.key`, instance id), sealed so that
//! only the holder of a passphrase can open them, and the server never could.
//!
//! The passphrase is stretched with Argon2id (a per-key random salt) into an X25519 secret
//! key; the server keeps only its public half (a [`Recipient`]) and seals each archive to it
//! with a libsodium sealed box (an ephemeral key pair per archive, XSalsa20-Poly1305). So a
//! stolen server, or a stolen bucket, gives nothing that opens a backup; the user rebuilds a
//! lost server from the passphrase and the object alone.
//!
//! An archive is one self-contained file:
//!
//! ```text
//! BERTH-STATE-BACKUP 1\n
//! {header as one JSON line}\n
//! sealed box of the payload (a tar of the files)
//! ```
//!
//! The header is in clear (it holds nothing secret: the salt and parameters to derive the key
//! again, the public key, row counts per table to check a restore by); it is what lets
//! `berth state restore` tell a wrong passphrase from a damaged file.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_box::aead::OsRng;
use crypto_box::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

/// The first line of every archive.
pub const MAGIC: &[u8] = b"BERTH-STATE-BACKUP 1\n";
/// The archive object's name inside its backup folder.
pub const ARCHIVE_NAME: &str = "state.berthstate";
/// A passphrase shorter than this is refused: it guards every credential Berth holds.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Longest header line read before giving up (a header is well under 4 KiB).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Argon2id's cost, recorded with each key so a later Berth with other defaults still opens
/// old archives. 64 MiB, 3 passes: OWASP's recommendation for Argon2id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always `argon2id`.
    pub algorithm: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Base64, 16 random bytes.
    pub salt: String,
}

impl Kdf {
    /// The default cost with a fresh random salt.
    pub fn generate() -> Self {
        let mut salt = [0u8; 16];
        rand::fill(&mut salt);
        Self {
            algorithm: "argon2id".into(),
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
            salt: B64.encode(salt),
        }
    }

    /// The X25519 secret key this passphrase gives under these parameters.
    fn derive(&self, passphrase: &str) -> Result<SecretKey, StateBackupError> {
        if self.algorithm != "argon2id" {
            return Err(StateBackupError::Format(format!(
                "unknown key derivation {:?}",
                self.algorithm
            )));
        }
        // A forged header must not make the restore allocate without bound or spin forever.
        if self.memory_kib > 4 * 1024 * 1024 || self.iterations > 100 || self.parallelism > 64 {
            return Err(StateBackupError::Format(
                "key derivation cost out of range".into(),
            ));
        }
        let salt = B64
            .decode(&self.salt)
            .map_err(|_| StateBackupError::Format("the salt is not base64".into()))?;
        let params = argon2::Params::new(
            self.memory_kib,
            self.iterations,
            self.parallelism,
            Some(crypto_box::KEY_SIZE),
        )
        .map_err(|e| StateBackupError::Format(format!("key derivation parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = [0u8; crypto_box::KEY_SIZE];
        argon
            .hash_password_into(passphrase.as_bytes(), &salt, &mut key)
            .map_err(|e| StateBackupError::Format(format!("key derivation: {e}")))?;
        Ok(SecretKey::from(key))
    }
}

/// What the server keeps to seal archives: a public key and how its secret half is derived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Base64 of the X25519 public key.
    pub public_key: String,
    pub kdf: Kdf,
}

impl Recipient {
    /// Derives the recipient for a passphrase (with a fresh salt). The passphrase itself is
    /// not kept anywhere.
    pub fn from_passphrase(passphrase: &str) -> Result<Self, StateBackupError> {
        check_passphrase(passphrase)?;
        let kdf = Kdf::generate();
        let secret = kdf.derive(passphrase)?;
        Ok(Self {
            public_key: B64.encode(secret.public_key().as_bytes()),
            kdf,
        })
    }

    /// A short, stable name for this key (first 16 hex digits of the public key's SHA-256),
    /// to tell keys apart without showing them.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.public_key.as_bytes());
        hex::encode(&digest[..8])
    }

    fn public(&self) -> Result<PublicKey, StateBackupError> {
        let bytes = B64
            .decode(&self.public_key)
            .map_err(|_| StateBackupError::Format("the public key is not base64".into()))?;
        PublicKey::from_slice(&bytes)
            .map_err(|_| StateBackupError::Format("the public key is not 32 bytes".into()))
    }
}

/// Refuses passphrases too short to guard the server's credentials.
pub fn check_passphrase(passphrase: &str) -> Result<(), StateBackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(StateBackupError::WeakPassphrase);
    }
    Ok(())
}

/// The archive's clear-text header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The Berth instance the state belongs to.
    pub instance_id: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub berth_version: String,
    pub recipient: Recipient,
    /// Rows per table of the state database, read from the snapshot that was sealed: a
    /// restore compares them with what it unpacked.
    pub table_rows: BTreeMap<String, u64>,
    /// The files in the payload (names only), e.g. `state.db`, `secret.key`.
    pub files: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateBackupError {
    #[error("the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters long")]
    WeakPassphrase,
    #[error("wrong passphrase: it does not derive the key this backup was sealed to")]
    WrongPassphrase,
    #[error("not a Berth state backup (it does not start with {:?})", String::from_utf8_lossy(MAGIC).trim_end())]
    NotAnArchive,
    #[error("damaged state backup: {0}")]
    Format(String),
    #[error(
        "damaged state backup: the sealed payload does not authenticate (altered or truncated)"
    )]
    Tampered,
}

/// Seals `payload` to `header.recipient`: the archive's bytes.
pub fn seal(header: &Header, payload: &[u8]) -> Result<Vec<u8>, StateBackupError> {
    let public = header.recipient.public()?;
    let sealed = public
        .seal(&mut OsRng, payload)
        .map_err(|_| StateBackupError::Format("sealing failed".into()))?;
    let json = serde_json::to_vec(header).expect("a header serialises");
    let mut out = Vec::with_capacity(MAGIC.len() + json.len() + 1 + sealed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&json);
    out.push(b'\n');
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Splits an archive into its header and sealed payload, without a passphrase.
pub fn read_header(archive: &[u8]) -> Result<(Header, &[u8]), StateBackupError> {
    let rest = archive
        .strip_prefix(MAGIC)
        .ok_or(StateBackupError::NotAnArchive)?;
    let end = rest
        .iter()
        .take(MAX_HEADER_BYTES)
        .position(|b| *b == b'\n')
        .ok_or_else(|| StateBackupError::Format("the header line never ends".into()))?;
    let header: Header = serde_json::from_slice(&rest[..end])
        .map_err(|e| StateBackupError::Format(format!("header: {e}")))?;
    Ok((header, &rest[end + 1..]))
}

/// Opens an archive with the passphrase: its header and the payload. A passphrase that does
/// not derive the header's public key is told apart from a payload that was altered.
pub fn open(archive: &[u8], passphrase: &str) -> Result<(Header, Vec<u8>), StateBackupError> {
    let (header, sealed) = read_header(archive)?;
    let secret = header.recipient.kdf.derive(passphrase)?;
    if secret.public_key() != header.recipient.public()? {
        return Err(StateBackupError::WrongPassphrase);
    }
    let payload = secret
        .unseal(sealed)
        .map_err(|_| StateBackupError::Tampered)?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSPHRASE: &str = "correct horse battery staple";

    /// A cheap KDF for tests (the default costs 64 MiB and a noticeable fraction of a second).
    fn cheap_recipient(passphrase: &str) -> Recipient {
        let kdf = Kdf {
            memory_kib: 1024,
            iterations: 1,
            ..Kdf::generate()
        };
        let secret = kdf.derive(passphrase).unwrap();
        Recipient {
            public_key: B64.encode(secret.public_key().as_bytes()),
            kdf,
        }
    }

    fn header(recipient: Recipient) -> Header {
        Header {
            instance_id: "abc123".into(),
            created_at: "2026-12-07T18:00:00Z".into(),
            berth_version: "0.1.0".into(),
            recipient,
            table_rows: BTreeMap::from([("services".into(), 3)]),
            files: vec!["state.db".into(), "secret.key".into()],
        }
    }

    #[test]
    fn the_right_passphrase_opens_what_was_sealed() {
        let header = header(cheap_recipient(PASSPHRASE));
        let payload = b"the state database and the secret key".to_vec();
        let archive = seal(&header, &payload).unwrap();
        let (read, opened) = open(&archive, PASSPHRASE).unwrap();
        assert_eq!(read, header);
        assert_eq!(opened, payload);
    }

    #[test]
    fn the_payload_is_not_in_clear() {
        let header = header(cheap_recipient(PASSPHRASE));
        let secret = b"0123456789abcdef-secret-key-bytes";
        let archive = seal(&header, secret).unwrap();
        assert!(!archive.windows(secret.len()).any(|w| w == secret));
    }

    #[test]
    fn a_wrong_passphrase_is_named_as_such() {
        let archive = seal(&header(cheap_recipient(PASSPHRASE)), b"payload").unwrap();
        assert_eq!(
            open(&archive, "another long passphrase").unwrap_err(),
            StateBackupError::WrongPassphrase
        );
    }

    #[test]
    fn an_altered_or_truncated_payload_is_refused() {
        let mut archive = seal(&header(cheap_recipient(PASSPHRASE)), b"payload").unwrap();
        let last = archive.len() - 1;
        archive[last] ^= 1;
        assert_eq!(
            open(&archive, PASSPHRASE).unwrap_err(),
            StateBackupError::Tampered
        );
        archive.truncate(last - 5);
        assert_eq!(
            open(&archive, PASSPHRASE).unwrap_err(),
            StateBackupError::Tampered
        );
    }

    #[test]
    fn other_files_are_not_archives() {
        assert_eq!(
            open(b"SQLite format 3\0", PASSPHRASE).unwrap_err(),
            StateBackupError::NotAnArchive
        );
        let mut no_end = MAGIC.to_vec();
        no_end.extend_from_slice(b"{\"instance_id\":");
        assert!(matches!(
            read_header(&no_end).unwrap_err(),
            StateBackupError::Format(_)
        ));
    }

    #[test]
    fn a_forged_cost_is_refused_before_deriving() {
        let mut recipient = cheap_recipient(PASSPHRASE);
        recipient.kdf.memory_kib = u32::MAX;
        let archive = seal(&header(recipient), b"payload").unwrap();
        assert!(matches!(
            open(&archive, PASSPHRASE).unwrap_err(),
            StateBackupError::Format(_)
        ));
    }

    #[test]
    fn short_passphrases_are_refused_and_salts_differ() {
        assert_eq!(
            Recipient::from_passphrase("short").unwrap_err(),
            StateBackupError::WeakPassphrase
        );
        assert_ne!(Kdf::generate().salt, Kdf::generate().salt);
    }

    #[test]
    fn the_same_passphrase_and_salt_derive_the_same_key() {
        let recipient = cheap_recipient(PASSPHRASE);
        let again = recipient.kdf.derive(PASSPHRASE).unwrap();
        assert_eq!(
            B64.encode(again.public_key().as_bytes()),
            recipient.public_key
        );
        assert_eq!(recipient.fingerprint().len(), 16);
    }
}
