//! The keys berth-s3d accepts: one admin pair, fixed for the life of the process, and tenant
//! pairs that Berth adds, replaces and removes while the server runs, one JSON file each:
//! `keys.d/<access_key>.json` = `{"access_key": "...", "secret_key": "...", "buckets": [...]}`.
//!
//! A tenant file is found by the name the request's access key gives it and is re-checked on
//! every lookup (open + fstat: inode, size, mtime): a new, replaced or removed file takes effect
//! on the next request, without a restart and without a directory scan per unknown key (anyone
//! can send unknown keys). A file that does not load (half-written, hand-edited, unreadable) is
//! logged once per version and treated as absent; it never stops the server. Writers should
//! still write a temporary name and rename it over the real one, so no reader sees half a file.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

/// Larger key files are refused rather than read: a real one is a few hundred bytes.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
/// S3 and RustFS require secrets of at least 8 characters; so do we.
pub const MIN_SECRET_LEN: usize = 8;

/// An access key and its secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct KeyPair {
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Who signed a request.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The admin key: may do anything.
    Admin,
    /// A project's key: may work inside its buckets only.
    Tenant(Arc<TenantKey>),
}

/// A tenant key as loaded from its file.
pub struct TenantKey {
    pub access_key: String,
    secret_key: String,
    pub buckets: BTreeSet<String>,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("access_key", &self.access_key)
            .field("buckets", &self.buckets)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    access_key: String,
    secret_key: String,
    buckets: Vec<String>,
}

/// Identity of one version of a key file: a rename gives a new inode, an edit in place a new
/// size or mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
}

/// The last version of a file seen, and what it held (`None`: it did not load).
struct Cached {
    stamp: Stamp,
    key: Option<Arc<TenantKey>>,
}

pub struct KeyStore {
    admin: KeyPair,
    dir: PathBuf,
    cache: Mutex<HashMap<String, Cached>>,
}

/// Access keys name files, so only a safe alphabet is accepted (no `/`, no `..`); it is also
/// what S3 clients and SigV4's credential scope (split on `/`) cope with.
pub fn valid_access_key(key: &str) -> bool {
    (3..=128).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Secrets are signed with, never sent; they only need to be long enough and printable.
pub fn valid_secret_key(secret: &str) -> bool {
    secret.len() >= MIN_SECRET_LEN
        && secret.len() <= 256
        && secret.bytes().all(|b| b.is_ascii_graphic())
}

impl KeyStore {
    pub fn new(admin: KeyPair, dir: PathBuf) -> Self {
        Self {
            admin,
            dir,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Who `access_key` belongs to and its secret, or `None` if no valid key has that name.
    /// The admin key wins over a tenant file of the same name.
    pub fn lookup(&self, access_key: &str) -> Option<(Principal, String)> {
        if access_key == self.admin.access_key {
            return Some((Principal::Admin, self.admin.secret_key.clone()));
        }
        let key = self.tenant(access_key)?;
        let secret = key.secret_key.clone();
        Some((Principal::Tenant(key), secret))
    }

    /// Who `access_key` belongs to.
    pub fn principal(&self, access_key: &str) -> Option<Principal> {
        self.lookup(access_key).map(|(p, _)| p)
    }

    fn tenant(&self, access_key: &str) -> Option<Arc<TenantKey>> {
        if !valid_access_key(access_key) {
            return None;
        }
        let path = self.dir.join(format!("{access_key}.json"));
        // Stamp and contents come from one open file, so they always belong together.
        let opened = File::open(&path).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, meta))
        });
        let (file, meta) = match opened {
            Ok((f, meta)) if meta.is_file() => (f, meta),
            _ => {
                self.cache().remove(access_key);
                return None;
            }
        };
        let stamp = Stamp::of(&meta);
        if let Some(cached) = self.cache().get(access_key)
            && cached.stamp == stamp
        {
            return cached.key.clone();
        }
        let key = match load(file, &meta, access_key) {
            Ok(key) => Some(Arc::new(key)),
            Err(reason) => {
                tracing::warn!(file = %path.display(), "ignoring key file: {reason}");
                None
            }
        };
        self.cache().insert(
            access_key.to_string(),
            Cached {
                stamp,
                key: key.clone(),
            },
        );
        key
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic elsewhere cannot leave the map half-updated: every change is one insert or
        // remove.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Reads and checks one key file. The reason never quotes the file: it holds a secret.
fn load(file: File, meta: &std::fs::Metadata, access_key: &str) -> Result<TenantKey, String> {
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!("larger than {MAX_KEY_FILE_BYTES} bytes"));
    }
    let mut text = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("cannot read it: {e}"))?;
    let parsed: KeyFile = serde_json::from_slice(&text).map_err(|e| {
        format!(
            "not a key file ({:?} error at line {}, column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    if parsed.access_key != access_key {
        return Err("its access_key differs from its file name".into());
    }
    if !valid_secret_key(&parsed.secret_key) {
        return Err(format!(
            "secret_key must be {MIN_SECRET_LEN} to 256 printable ASCII characters"
        ));
    }
    if let Some(bad) = parsed
        .buckets
        .iter()
        .find(|b| !s3s::path::check_bucket_name(b))
    {
        return Err(format!("{bad:?} is not a valid bucket name"));
    }
    Ok(TenantKey {
        access_key: parsed.access_key,
        secret_key: parsed.secret_key,
        buckets: parsed.buckets.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> KeyStore {
        KeyStore::new(
            KeyPair {
                access_key: "admin-key".into(),
                secret_key: "admin-secret".into(),
            },
            dir.to_path_buf(),
        )
    }

    /// Writes like Berth does: a temporary name renamed over the real one.
    fn write_key(dir: &Path, name: &str, text: &str) {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }

    fn tenant_buckets(store: &KeyStore, key: &str) -> Option<Vec<String>> {
        match store.principal(key)? {
            Principal::Tenant(t) => Some(t.buckets.iter().cloned().collect()),
            Principal::Admin => panic!("{key} is not a tenant"),
        }
    }

    #[test]
    fn admin_key_is_known_without_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let (principal, secret) = store.lookup("admin-key").unwrap();
        assert!(matches!(principal, Principal::Admin));
        assert_eq!(secret, "admin-secret");
        assert!(store.lookup("nobody-here").is_none());
    }

    #[test]
    fn tenant_file_added_later_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        assert!(store.lookup("tenant1").is_none());
        write_key(
            dir.path(),
            "tenant1.json",
            r#"{"access_key":"tenant1","secret_key":"s3cret-s3cret","buckets":["web-prod"]}"#,
        );
        let (principal, secret) = store.lookup("tenant1").unwrap();
        assert_eq!(secret, "s3cret-s3cret");
        let Principal::Tenant(t) = principal else {
            panic!("not a tenant")
        };
        assert_eq!(t.buckets.iter().collect::<Vec<_>>(), ["web-prod"]);
    }

    #[test]
    fn replaced_file_is_picked_up_and_removed_file_revokes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let v1 = r#"{"access_key":"tenant1","secret_key":"secret-one","buckets":["aaa"]}"#;
        let v2 = r#"{"access_key":"tenant1","secret_key":"secret-two","buckets":["aaa","bbb"]}"#;
        write_key(dir.path(), "tenant1.json", v1);
        assert_eq!(tenant_buckets(&store, "tenant1").unwrap(), ["aaa"]);
        write_key(dir.path(), "tenant1.json", v2);
        assert_eq!(tenant_buckets(&store, "tenant1").unwrap(), ["aaa", "bbb"]);
        assert_eq!(store.lookup("tenant1").unwrap().1, "secret-two");
        std::fs::remove_file(dir.path().join("tenant1.json")).unwrap();
        assert!(store.lookup("tenant1").is_none());
    }

    #[test]
    fn file_edited_in_place_with_a_new_mtime_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let path = dir.path().join("tenant1.json");
        // Same length, same inode: only the mtime tells the versions apart.
        let v1 = r#"{"access_key":"tenant1","secret_key":"secret-one","buckets":["aaa"]}"#;
        let v2 = r#"{"access_key":"tenant1","secret_key":"secret-two","buckets":["bbb"]}"#;
        assert_eq!(v1.len(), v2.len());
        std::fs::write(&path, v1).unwrap();
        let file = File::options().write(true).open(&path).unwrap();
        file.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000),
        )
        .unwrap();
        assert_eq!(tenant_buckets(&store, "tenant1").unwrap(), ["aaa"]);
        std::fs::write(&path, v2).unwrap();
        file.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000),
        )
        .unwrap();
        assert_eq!(tenant_buckets(&store, "tenant1").unwrap(), ["bbb"]);
    }

    #[test]
    fn invalid_files_are_ignored_and_a_fixed_file_is_then_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let cases = [
            // half-written
            r#"{"access_key":"tenant1","secret_key":"secr"#,
            // the name inside differs from the file name
            r#"{"access_key":"tenant2","secret_key":"secret-one","buckets":["aaa"]}"#,
            // secret too short
            r#"{"access_key":"tenant1","secret_key":"short","buckets":["aaa"]}"#,
            // bucket name S3 would refuse (and that could name a path)
            r#"{"access_key":"tenant1","secret_key":"secret-one","buckets":["../keys.d"]}"#,
            // unknown field: a typo must not silently grant nothing or everything
            r#"{"access_key":"tenant1","secret_key":"secret-one","bucket":["aaa"]}"#,
            "",
        ];
        for text in cases {
            write_key(dir.path(), "tenant1.json", text);
            assert!(store.lookup("tenant1").is_none(), "accepted {text:?}");
        }
        write_key(
            dir.path(),
            "tenant1.json",
            r#"{"access_key":"tenant1","secret_key":"secret-one","buckets":["aaa"]}"#,
        );
        assert_eq!(tenant_buckets(&store, "tenant1").unwrap(), ["aaa"]);
    }

    #[test]
    fn access_keys_that_could_name_other_paths_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys.d");
        std::fs::create_dir(&keys).unwrap();
        // A valid key file outside keys.d must stay unreachable.
        std::fs::write(
            dir.path().join("outside.json"),
            r#"{"access_key":"outside","secret_key":"secret-one","buckets":["aaa"]}"#,
        )
        .unwrap();
        let store = store(&keys);
        for bad in [
            "../outside",
            "a/b",
            "..",
            "",
            "x",
            "key.with.dots",
            "ünïcode",
        ] {
            assert!(store.lookup(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn admin_key_wins_over_a_tenant_file_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        write_key(
            dir.path(),
            "admin-key.json",
            r#"{"access_key":"admin-key","secret_key":"tenant-secret","buckets":["aaa"]}"#,
        );
        let (principal, secret) = store.lookup("admin-key").unwrap();
        assert!(matches!(principal, Principal::Admin));
        assert_eq!(secret, "admin-secret");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let pair = KeyPair {
            access_key: "ak".into(),
            secret_key: "very-secret".into(),
        };
        assert!(!format!("{pair:?}").contains("very-secret"));
    }
}
