//! The manifest a backup writes last, as `manifest.json` in its folder: what was backed up
//! (service, engine version, databases), each object's size and SHA-256 so a restore can
//! check what it reads, and the row/key counts taken inside the dump's own snapshot so a
//! restore can be compared against them.
//!
//! A backup without a valid manifest is incomplete, whatever objects it has. Reading is
//! forward-compatible: unknown fields are ignored and an unknown object kind reads as
//! [`ObjectKind::Other`], so an older Berth can still list and prune what a newer one wrote;
//! an incompatible change bumps [`MANIFEST_FORMAT`], which older readers refuse.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::layout::{BackupId, MANIFEST_NAME};

/// The manifest format this Berth writes and the newest it reads.
pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for this format: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest format {0} is newer than this Berth reads (up to {MANIFEST_FORMAT})")]
    TooNew(u32),
    #[error("manifest format {0} is not a valid format")]
    BadFormat(u32),
    #[error("manifest names an invalid backup id: {0}")]
    BackupId(String),
    #[error("manifest object key {key:?} is invalid: {reason}")]
    Key { key: String, reason: String },
    #[error("manifest lists object {0:?} twice")]
    DuplicateKey(String),
    #[error("manifest object {0:?} has an invalid sha256 (expected 64 lowercase hex digits)")]
    Sha256(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`MANIFEST_FORMAT`] when written.
    pub format: u32,
    pub backup_id: String,
    pub service: ManifestService,
    /// RFC 3339, UTC.
    pub started_at: String,
    /// RFC 3339, UTC.
    pub finished_at: String,
    /// How objects are compressed unless one says otherwise (`zstd`).
    pub compression: String,
    pub objects: Vec<ManifestObject>,
}

/// The service as it was when backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestService {
    pub id: i64,
    pub name: String,
    pub service_type: String,
    pub image: String,
    /// The engine's version as the server reported it (e.g. `17.2`), if it did.
    pub version: Option<String>,
}

/// One object of the backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Relative to the backup's folder (e.g. `db/app.dump.zst`).
    pub key: String,
    pub kind: ObjectKind,
    /// The database (PostgreSQL, MongoDB) or bucket (S3) the object holds; `None` for globals
    /// and whole-server snapshots.
    pub database: Option<String>,
    /// Size as stored (compressed).
    pub size_bytes: u64,
    /// SHA-256 of the stored bytes, lowercase hex.
    pub sha256: String,
    /// How this object is compressed, when it differs from the manifest's `compression`
    /// (`pg_custom`: pg_dump's own format, compressed by pg_dump; never compressed twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Rows per table, documents per collection, keys per keyspace or objects per bucket,
    /// counted inside the same snapshot the dump was taken from.
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
}

/// What an object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// Server-wide definitions outside any database (PostgreSQL roles and tablespaces).
    Globals,
    /// One logical database (a `pg_dump` or `mongodump` of one database).
    Database,
    /// The whole server at once (a Redis RDB file).
    Snapshot,
    /// One bucket's objects (S3).
    Bucket,
    /// A kind written by a newer Berth; read so the backup can still be listed and pruned.
    #[serde(other)]
    Other,
}

impl BackupManifest {
    /// Parses and validates a manifest read from a destination.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        let manifest: Self = serde_json::from_slice(bytes)?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The bytes to upload as `manifest.json`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }

    /// Checks what a restore relies on: a format this Berth reads, a valid backup id, and
    /// objects with distinct relative keys and well-formed checksums.
    pub fn validate(&self) -> Result<(), ManifestError> {
        match self.format {
            0 => return Err(ManifestError::BadFormat(0)),
            f if f > MANIFEST_FORMAT => return Err(ManifestError::TooNew(f)),
            _ => {}
        }
        BackupId::parse(&self.backup_id)
            .map_err(|_| ManifestError::BackupId(self.backup_id.clone()))?;
        let mut keys = HashSet::new();
        for object in &self.objects {
            let key = &object.key;
            crate::blob_path::validate(key).map_err(|e| ManifestError::Key {
                key: key.clone(),
                reason: e.to_string(),
            })?;
            if key == MANIFEST_NAME {
                return Err(ManifestError::Key {
                    key: key.clone(),
                    reason: "the manifest's own name".into(),
                });
            }
            if !keys.insert(key.as_str()) {
                return Err(ManifestError::DuplicateKey(key.clone()));
            }
            let sha = object.sha256.as_bytes();
            if sha.len() != 64 || !sha.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(ManifestError::Sha256(key.clone()));
            }
        }
        Ok(())
    }

    /// Bytes stored for the whole backup (without the manifest itself).
    pub fn total_size(&self) -> u64 {
        self.objects
            .iter()
            .fold(0u64, |sum, o| sum.saturating_add(o.size_bytes))
    }

    /// The object with this key (relative to the backup's folder).
    pub fn object(&self, key: &str) -> Option<&ManifestObject> {
        self.objects.iter().find(|o| o.key == key)
    }

    /// The databases (or buckets) backed up, sorted, each once.
    pub fn databases(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self
            .objects
            .iter()
            .filter_map(|o| o.database.as_deref())
            .collect();
        names.into_iter().collect()
    }
}

/// `ms` since the epoch as RFC 3339 in UTC with milliseconds (`2026-11-28T05:17:00.123Z`),
/// the form of `started_at` and `finished_at`; `None` outside years 0..=9999.
pub fn rfc3339_utc(ms: i64) -> Option<String> {
    let t = DateTime::<Utc>::from_timestamp_millis(ms)?;
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.timestamp_subsec_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BackupManifest {
        let object = |key: &str, kind, database: Option<&str>, size, counts: &[(&str, u64)]| {
            ManifestObject {
                key: key.into(),
                kind,
                database: database.map(Into::into),
                size_bytes: size,
                sha256: "ab".repeat(32),
                compression: None,
                counts: counts.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            }
        };
        BackupManifest {
            format: MANIFEST_FORMAT,
            backup_id: "20261128T051700Z-a1b2c3".into(),
            service: ManifestService {
                id: 7,
                name: "main-db".into(),
                service_type: "postgres".into(),
                image: "postgres:17".into(),
                version: Some("17.2".into()),
            },
            started_at: rfc3339_utc(1_795_843_020_000).unwrap(),
            finished_at: rfc3339_utc(1_795_843_081_250).unwrap(),
            compression: "zstd".into(),
            objects: vec![
                object("globals.sql.zst", ObjectKind::Globals, None, 10, &[]),
                object(
                    "db/shop.dump.zst",
                    ObjectKind::Database,
                    Some("shop"),
                    300,
                    &[("public.orders", 1200), ("public.users", 40)],
                ),
                object("db/app.dump.zst", ObjectKind::Database, Some("app"), 2, &[]),
            ],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let manifest = sample();
        let bytes = manifest.to_json();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\"kind\": \"database\""), "{text}");
        assert!(
            text.contains("\"started_at\": \"2026-11-28T05:17:00.000Z\""),
            "{text}"
        );
        assert_eq!(BackupManifest::from_json(&bytes).unwrap(), manifest);
    }

    #[test]
    fn helpers() {
        let manifest = sample();
        assert_eq!(manifest.total_size(), 312);
        assert_eq!(manifest.databases(), ["app", "shop"]);
        let shop = manifest.object("db/shop.dump.zst").unwrap();
        assert_eq!(shop.counts["public.orders"], 1200);
        assert!(manifest.object("db/nope.dump.zst").is_none());
    }

    #[test]
    fn newer_writers_are_read_where_compatible() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["added_later"] = serde_json::json!({"x": 1});
        value["objects"][0]["kind"] = "wal_segment".into();
        value["objects"][0]["checksum_algo"] = "blake3".into();
        value["objects"][0]
            .as_object_mut()
            .unwrap()
            .remove("counts");
        let read = BackupManifest::from_json(value.to_string().as_bytes()).unwrap();
        assert_eq!(read.objects[0].kind, ObjectKind::Other);
        assert!(read.objects[0].counts.is_empty());

        value["format"] = 2.into();
        let err = BackupManifest::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, ManifestError::TooNew(2)), "{err}");
    }

    #[test]
    fn invalid_manifests_are_refused() {
        let check = |edit: fn(&mut BackupManifest)| {
            let mut m = sample();
            edit(&mut m);
            BackupManifest::from_json(&m.to_json()).unwrap_err()
        };
        assert!(matches!(
            check(|m| m.format = 0),
            ManifestError::BadFormat(0)
        ));
        assert!(matches!(
            check(|m| m.backup_id = "x".into()),
            ManifestError::BackupId(_)
        ));
        assert!(matches!(
            check(|m| m.objects[0].key = "../x".into()),
            ManifestError::Key { .. }
        ));
        assert!(matches!(
            check(|m| m.objects[0].key = "/x".into()),
            ManifestError::Key { .. }
        ));
        assert!(matches!(
            check(|m| m.objects[0].key = MANIFEST_NAME.into()),
            ManifestError::Key { .. }
        ));
        assert!(matches!(
            check(|m| m.objects[1].key = m.objects[2].key.clone()),
            ManifestError::DuplicateKey(_)
        ));
        assert!(matches!(
            check(|m| m.objects[0].sha256 = "AB".repeat(32)),
            ManifestError::Sha256(_)
        ));
        assert!(matches!(
            check(|m| m.objects[0].sha256.pop().map(drop).unwrap()),
            ManifestError::Sha256(_)
        ));
        assert!(matches!(
            BackupManifest::from_json(b"{\"format\": 1}").unwrap_err(),
            ManifestError::Json(_)
        ));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_utc(0).unwrap(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339_utc(1_795_843_081_250).unwrap(),
            "2026-11-28T05:18:01.250Z"
        );
        assert_eq!(rfc3339_utc(-1).unwrap(), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_utc(i64::MAX), None);
    }
}
