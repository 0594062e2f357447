//! SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677) in PostgreSQL's storage format:
//! `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64). Handing PostgreSQL a
//! verifier instead of the password means no statement Berth sends ever carries a password,
//! so a failed or logged statement cannot write one into the server log.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};

/// PostgreSQL's default (`scram_iterations`) and salt length.
pub const ITERATIONS: u32 = 4096;
pub const SALT_LEN: usize = 16;

const BLOCK: usize = 64;

/// HMAC-SHA-256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block_key = [0u8; BLOCK];
    if key.len() > BLOCK {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block_key.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// SCRAM's `Hi()`: the first 32-byte block of PBKDF2-HMAC-SHA-256 (RFC 8018).
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac_sha256(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac_sha256(password, &u);
        for (o, b) in out.iter_mut().zip(u) {
            *o ^= b;
        }
    }
    out
}

/// `(StoredKey, ServerKey)` for a password.
pub fn keys(password: &str, salt: &[u8], iterations: u32) -> ([u8; 32], [u8; 32]) {
    let salted = salted_password(password.as_bytes(), salt, iterations);
    let client_key = hmac_sha256(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = hmac_sha256(&salted, b"Server Key");
    (stored_key, server_key)
}

/// Why a password cannot be turned into a verifier PostgreSQL would match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// PostgreSQL applies SASLprep to non-ASCII passwords; Berth does not implement it, and
    /// only ever generates ASCII passwords.
    #[error("password has characters outside printable ASCII; cannot compute its SCRAM verifier")]
    NotPrintableAscii,
}

/// The verifier PostgreSQL would store for `password` with this salt and iteration count.
/// Printable ASCII only (SASLprep is the identity there, so PostgreSQL derives the same keys).
pub fn verifier_with_salt(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<String, ScramError> {
    if !password.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ScramError::NotPrintableAscii);
    }
    let (stored_key, server_key) = keys(password, salt, iterations);
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        B64.encode(salt),
        B64.encode(stored_key),
        B64.encode(server_key)
    ))
}

/// A verifier with a fresh random salt from the OS CSPRNG and PostgreSQL's default iterations.
pub fn verifier(password: &str) -> Result<String, ScramError> {
    let mut salt = [0u8; SALT_LEN];
    rand::fill(&mut salt);
    verifier_with_salt(password, &salt, ITERATIONS)
}

/// Whether `verifier` (as stored in `pg_authid.rolpassword`) accepts `password`. Anything that
/// is not a well-formed SCRAM-SHA-256 verifier (MD5, none) does not.
pub fn verifier_matches(verifier: &str, password: &str) -> bool {
    let parse = || -> Option<bool> {
        let rest = verifier.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys_part) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys_part.split_once(':')?;
        let iterations: u32 = iterations.parse().ok()?;
        if iterations == 0 {
            return None;
        }
        let salt = B64.decode(salt).ok()?;
        let expected = verifier_with_salt(password, &salt, iterations).ok()?;
        let (stored_expected, server_expected) = expected.rsplit_once('$')?.1.split_once(':')?;
        // Not secret-dependent timing that matters: both sides are derived keys, not the password.
        Some(stored == stored_expected && server == server_expected)
    };
    parse().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn pbkdf2_matches_rfc_7914() {
        // PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1), first 32 of its 64 bytes.
        assert_eq!(
            hex::encode(salted_password(b"passwd", b"salt", 1)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
    }

    /// RFC 7677's example exchange (user "user", password "pencil"): keys derived from our
    /// verifier reproduce the client proof and the server signature of the RFC.
    #[test]
    fn keys_reproduce_rfc_7677_exchange() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(b"pencil", &salt, 4096);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let (stored_key, server_key) = keys("pencil", &salt, 4096);
        assert_eq!(stored_key, <[u8; 32]>::from(Sha256::digest(client_key)));
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
            c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let client_signature = hmac_sha256(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            B64.encode(hmac_sha256(&server_key, auth_message.as_bytes())),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let v = verifier_with_salt("pencil", &salt, 4096).unwrap();
        assert_eq!(
            v,
            format!(
                "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==${}:{}",
                B64.encode(stored_key),
                B64.encode(server_key)
            )
        );
    }

    #[test]
    fn random_salts_and_matching() {
        let a = verifier("s3cret-Pass").unwrap();
        let b = verifier("s3cret-Pass").unwrap();
        assert_ne!(a, b, "fresh salt each time");
        assert!(!a.contains("s3cret"), "{a}");
        assert!(verifier_matches(&a, "s3cret-Pass"));
        assert!(verifier_matches(&b, "s3cret-Pass"));
        assert!(!verifier_matches(&a, "s3cret-Pasz"));
        assert!(!verifier_matches("md5abc", "s3cret-Pass"));
        assert!(!verifier_matches("SCRAM-SHA-256$0:AA==$AA==:AA==", "x"));
        assert_eq!(verifier("pässword"), Err(ScramError::NotPrintableAscii));
        assert_eq!(verifier("tab\there"), Err(ScramError::NotPrintableAscii));
    }
}
