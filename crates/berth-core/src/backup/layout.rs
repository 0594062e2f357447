//! Where a backup lives on a destination:
//! `{prefix}/berth/{service_type}/{service_name}-{service_id}/{backup_id}/`, holding
//! `manifest.json` and the backup's objects.
//!
//! The layout is the only index: retention and restore work from the destination's listing,
//! so a destination keeps making sense after Berth's own database is lost. Hence the id in
//! the service's folder (a service deleted and created again under the same name does not
//! mix its backups with the old one's), a backup id that sorts by time and carries it, and a
//! [`parse_listing`] that ignores every key not in this exact shape (the bucket may hold other
//! things, under the prefix or not).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::names::{self, NameError};

/// The manifest's name inside a backup's folder.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The folder under the user's prefix that Berth owns.
const ROOT: &str = "berth";

#[derive(Debug, PartialEq, Eq, Error)]
pub enum LayoutError {
    #[error("time {0} ms is outside the years 1970 to 9999")]
    Time(i64),
    #[error(
        "invalid backup id {0:?}: expected YYYYMMDDTHHMMSSZ-xxxxxx (UTC time, 6 lowercase hex digits)"
    )]
    BackupId(String),
    #[error("invalid service type or name for a backup path: {0}")]
    Name(#[from] NameError),
    #[error("invalid service id {0}: must not be negative")]
    ServiceId(i64),
    #[error("invalid object name {name:?}: {reason}")]
    ObjectName { name: String, reason: String },
}

/// A backup's id: its UTC start time to the second and a random suffix,
/// `20261128T051700Z-a1b2c3`. Ids sort by time as plain strings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BackupId(String);

impl BackupId {
    /// The id of a backup started at `started_at_ms`; `random` comes from the caller's CSPRNG
    /// (keeping this pure), and only tells apart backups started in the same second.
    pub fn new(started_at_ms: i64, random: [u8; 3]) -> Result<Self, LayoutError> {
        let t = DateTime::<Utc>::from_timestamp_millis(started_at_ms)
            .filter(|t| (1970..=9999).contains(&t.year()))
            .ok_or(LayoutError::Time(started_at_ms))?;
        Ok(Self(format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            hex::encode(random)
        )))
    }

    /// Accepts exactly the form [`BackupId::new`] writes, with a real date and time.
    pub fn parse(s: &str) -> Result<Self, LayoutError> {
        Self::started_at(s)
            .map(|_| Self(s.to_string()))
            .ok_or_else(|| LayoutError::BackupId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The start time the id carries, in ms (whole seconds).
    pub fn started_at_ms(&self) -> i64 {
        Self::started_at(&self.0).expect("a BackupId is valid")
    }

    fn started_at(s: &str) -> Option<i64> {
        let b = s.as_bytes();
        let digits = |range: std::ops::Range<usize>| -> Option<u32> {
            let part = b.get(range)?;
            part.iter()
                .all(u8::is_ascii_digit)
                .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let shape = b.len() == 23 && b[8] == b'T' && b[15] == b'Z' && b[16] == b'-';
        let suffix = b
            .get(17..)?
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
        if !shape || !suffix {
            return None;
        }
        let year = i32::try_from(digits(0..4)?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, digits(4..6)?, digits(6..8)?)?;
        let time = date.and_hms_opt(digits(9..11)?, digits(11..13)?, digits(13..15)?)?;
        (year >= 1970).then(|| time.and_utc().timestamp_millis())
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for BackupId {
    type Error = LayoutError;
    fn try_from(s: String) -> Result<Self, LayoutError> {
        Self::parse(&s)
    }
}

impl From<BackupId> for String {
    fn from(id: BackupId) -> String {
        id.0
    }
}

/// The user's prefix without empty segments: no leading, trailing or doubled `/`.
pub fn normalize_prefix(prefix: &str) -> String {
    prefix
        .split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// Berth's folder on the destination (`{prefix}/berth/`), the prefix to list for all backups.
pub fn destination_root(prefix: &str) -> String {
    match normalize_prefix(prefix).as_str() {
        "" => format!("{ROOT}/"),
        p => format!("{p}/{ROOT}/"),
    }
}

/// One service's folder, the prefix to list for its backups.
pub fn service_folder(
    prefix: &str,
    service_type: &str,
    service_name: &str,
    service_id: i64,
) -> Result<String, LayoutError> {
    names::validate_name(service_type)?;
    names::validate_name(service_name)?;
    if service_id < 0 {
        return Err(LayoutError::ServiceId(service_id));
    }
    Ok(format!(
        "{}{service_type}/{service_name}-{service_id}/",
        destination_root(prefix)
    ))
}

/// One backup's folder (ends with `/`).
pub fn backup_folder(
    prefix: &str,
    service_type: &str,
    service_name: &str,
    service_id: i64,
    backup_id: &BackupId,
) -> Result<String, LayoutError> {
    let service = service_folder(prefix, service_type, service_name, service_id)?;
    Ok(format!("{service}{backup_id}/"))
}

/// The manifest's key in a backup's folder.
pub fn manifest_key(folder: &str) -> String {
    format!("{}/{MANIFEST_NAME}", folder.trim_end_matches('/'))
}

/// An object's key in a backup's folder; `name` is relative (`db/app.dump.zst`) and may not
/// climb out of the folder or take the manifest's name.
pub fn object_key(folder: &str, name: &str) -> Result<String, LayoutError> {
    let refuse = |reason: String| LayoutError::ObjectName {
        name: name.to_string(),
        reason,
    };
    crate::blob_path::validate(name).map_err(|e| refuse(e.to_string()))?;
    if name == MANIFEST_NAME {
        return Err(refuse("the manifest's own name".into()));
    }
    Ok(format!("{}/{name}", folder.trim_end_matches('/')))
}

/// One backup found in a destination's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedBackup {
    pub service_type: String,
    pub service_name: String,
    pub service_id: i64,
    pub backup_id: BackupId,
    /// The backup's folder (ends with `/`).
    pub folder: String,
    /// A `manifest.json` is present (not yet read). Without one the backup is still running
    /// or was never finished.
    pub has_manifest: bool,
    /// Every key of the backup, the manifest's included, sorted.
    pub keys: Vec<String>,
}

/// Groups a listing of the destination (full keys, as LIST returns them) into backups, sorted
/// by service type, name, id, then backup id (oldest first). Keys outside Berth's layout under
/// `prefix` are ignored.
pub fn parse_listing<'a>(
    prefix: &str,
    keys: impl IntoIterator<Item = &'a str>,
) -> Vec<ListedBackup> {
    let root = destination_root(prefix);
    let mut found: BTreeMap<(String, String, i64, BackupId), ListedBackup> = BTreeMap::new();
    for key in keys {
        let Some((service_type, service_name, service_id, backup_id, name)) =
            key.strip_prefix(root.as_str()).and_then(split_backup_key)
        else {
            continue;
        };
        let entry = found
            .entry((
                service_type.into(),
                service_name.into(),
                service_id,
                backup_id.clone(),
            ))
            .or_insert_with(|| ListedBackup {
                service_type: service_type.into(),
                service_name: service_name.into(),
                service_id,
                folder: format!("{root}{service_type}/{service_name}-{service_id}/{backup_id}/"),
                backup_id,
                has_manifest: false,
                keys: Vec::new(),
            });
        entry.has_manifest |= name == MANIFEST_NAME;
        entry.keys.push(key.to_string());
    }
    found
        .into_values()
        .map(|mut backup| {
            backup.keys.sort();
            backup.keys.dedup();
            backup
        })
        .collect()
}

/// `{type}/{name}-{id}/{backup_id}/{object name}` -> its parts, if every part is valid.
fn split_backup_key(rest: &str) -> Option<(&str, &str, i64, BackupId, &str)> {
    let mut parts = rest.splitn(4, '/');
    let (service_type, service, backup_id, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (service_name, id_text) = service.rsplit_once('-')?;
    let service_id: i64 = id_text.parse().ok()?;
    // One spelling per id: no sign, no leading zeros.
    if service_id < 0 || service_id.to_string() != id_text {
        return None;
    }
    names::validate_name(service_type).ok()?;
    names::validate_name(service_name).ok()?;
    crate::blob_path::validate(name).ok()?;
    let backup_id = BackupId::parse(backup_id).ok()?;
    Some((service_type, service_name, service_id, backup_id, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-28T05:17:00.250Z.
    const T: i64 = 1_795_843_020_250;

    fn id(s: &str) -> BackupId {
        BackupId::parse(s).unwrap()
    }

    #[test]
    fn backup_ids_carry_their_time_and_sort_by_it() {
        let a = BackupId::new(T, [0xa1, 0xb2, 0xc3]).unwrap();
        assert_eq!(a.as_str(), "20261128T051700Z-a1b2c3");
        assert_eq!(a.started_at_ms(), T - 250);
        assert_eq!(BackupId::parse(a.as_str()).unwrap(), a);
        let later = BackupId::new(T + 1_000, [0, 0, 0]).unwrap();
        assert!(later > a && later.as_str() > a.as_str());
        assert_eq!(
            BackupId::new(0, [0; 3]).unwrap().as_str(),
            "19700101T000000Z-000000"
        );
        assert_eq!(BackupId::new(-1, [0; 3]), Err(LayoutError::Time(-1)));
        assert_eq!(
            BackupId::new(i64::MAX, [0; 3]),
            Err(LayoutError::Time(i64::MAX))
        );
    }

    #[test]
    fn backup_ids_are_parsed_strictly() {
        for bad in [
            "",
            "20261128T051700Z",
            "20261128T051700Z-A1B2C3",
            "20261128T051700Z-a1b2c",
            "20261128T051700Z-a1b2c3d",
            "20261128 051700Z-a1b2c3",
            "20261128T051700-za1b2c3",
            "20260230T051700Z-a1b2c3",
            "20261128T245900Z-a1b2c3",
            "19691231T235959Z-a1b2c3",
            "+0261128T051700Z-a1b2c3",
            "２0261128T051700Z-a1b2c",
        ] {
            assert_eq!(
                BackupId::parse(bad),
                Err(LayoutError::BackupId(bad.into())),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&id("20261128T051700Z-a1b2c3")).unwrap();
        assert_eq!(json, "\"20261128T051700Z-a1b2c3\"");
        assert!(serde_json::from_str::<BackupId>("\"nope\"").is_err());
    }

    #[test]
    fn prefixes_are_normalised_without_double_slashes() {
        let bid = id("20261128T051700Z-a1b2c3");
        let folder = |prefix| backup_folder(prefix, "postgres", "main-db", 7, &bid).unwrap();
        let tail = "berth/postgres/main-db-7/20261128T051700Z-a1b2c3/";
        assert_eq!(folder(""), tail);
        assert_eq!(folder("/"), tail);
        assert_eq!(folder("//"), tail);
        assert_eq!(folder("backups"), format!("backups/{tail}"));
        assert_eq!(folder("backups/"), format!("backups/{tail}"));
        assert_eq!(folder("/a//b/"), format!("a/b/{tail}"));
        assert_eq!(manifest_key(&folder("x")), format!("x/{tail}manifest.json"));
        assert_eq!(
            object_key(&folder(""), "db/app.dump.zst").unwrap(),
            format!("{tail}db/app.dump.zst")
        );
        assert_eq!(object_key("f", "a").unwrap(), "f/a");
        assert_eq!(destination_root("/p/"), "p/berth/");
    }

    #[test]
    fn bad_path_parts_are_refused() {
        let bid = id("20261128T051700Z-a1b2c3");
        assert!(matches!(
            backup_folder("", "postgres", "a/b", 1, &bid),
            Err(LayoutError::Name(_))
        ));
        assert!(matches!(
            backup_folder("", "", "a", 1, &bid),
            Err(LayoutError::Name(_))
        ));
        assert_eq!(
            backup_folder("", "redis", "a", -1, &bid),
            Err(LayoutError::ServiceId(-1))
        );
        for name in ["", "../x", "/x", "a//b", "a/", MANIFEST_NAME] {
            assert!(
                matches!(object_key("f/", name), Err(LayoutError::ObjectName { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn listings_group_keys_into_backups() {
        let root = "p/berth";
        let keys = [
            format!("{root}/postgres/db-1/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/postgres/db-1/20261128T051700Z-a1b2c3/db/app.dump.zst"),
            format!("{root}/postgres/db-1/20261128T051700Z-a1b2c3/globals.sql.zst"),
            format!("{root}/postgres/db-1/20261127T051700Z-000000/db/app.dump.zst"),
            // Another service whose folder starts the same way, and one named like it.
            format!("{root}/postgres/db-12/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/postgres/db-1-2/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/redis/db-1/20261128T051700Z-a1b2c3/dump.rdb.zst"),
            // Foreign keys: outside the prefix, wrong shapes, bad ids, folder markers.
            "berth/postgres/db-1/20261128T051700Z-a1b2c3/manifest.json".into(),
            "p2/berth/postgres/db-1/20261128T051700Z-a1b2c3/manifest.json".into(),
            "p/notes.txt".into(),
            format!("{root}/postgres/db-1/manifest.json"),
            format!("{root}/postgres/db/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/postgres/db-01/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/postgres/db--1/20261128T051700Z-a1b2c3/manifest.json"),
            format!("{root}/postgres/db-1/latest/manifest.json"),
            format!("{root}/postgres/db-1/20261128T051700Z-a1b2c3/"),
            format!("{root}/postgres/db-1/20261128T051700Z-a1b2c3/a//b"),
            format!("{root}/Postgres/db-1/20261128T051700Z-a1b2c3/manifest.json"),
        ];
        let listed = parse_listing("/p/", keys.iter().map(String::as_str));
        let summary: Vec<(&str, &str, i64, &str, bool, usize)> = listed
            .iter()
            .map(|b| {
                let (t, n, i, id) = (&b.service_type, &b.service_name, b.service_id, &b.backup_id);
                (
                    t.as_str(),
                    n.as_str(),
                    i,
                    id.as_str(),
                    b.has_manifest,
                    b.keys.len(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("postgres", "db", 1, "20261127T051700Z-000000", false, 1),
                ("postgres", "db", 1, "20261128T051700Z-a1b2c3", true, 3),
                ("postgres", "db", 12, "20261128T051700Z-a1b2c3", true, 1),
                ("postgres", "db-1", 2, "20261128T051700Z-a1b2c3", true, 1),
                ("redis", "db", 1, "20261128T051700Z-a1b2c3", false, 1),
            ]
        );
        let full = &listed[1];
        assert_eq!(
            full.folder,
            "p/berth/postgres/db-1/20261128T051700Z-a1b2c3/"
        );
        assert_eq!(
            full.keys,
            [
                "p/berth/postgres/db-1/20261128T051700Z-a1b2c3/db/app.dump.zst",
                "p/berth/postgres/db-1/20261128T051700Z-a1b2c3/globals.sql.zst",
                "p/berth/postgres/db-1/20261128T051700Z-a1b2c3/manifest.json",
            ]
        );
        let bid = id("20261128T051700Z-a1b2c3");
        assert_eq!(
            full.folder,
            backup_folder("p", "postgres", "db", 1, &bid).unwrap()
        );
    }

    #[test]
    fn an_empty_prefix_lists_from_the_bucket_root() {
        let keys = [
            "berth/s3/files-3/20261128T051700Z-a1b2c3/manifest.json",
            "other/berth/s3/files-3/20261128T051700Z-a1b2c3/manifest.json",
        ];
        let listed = parse_listing("", keys);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].folder,
            "berth/s3/files-3/20261128T051700Z-a1b2c3/"
        );
        assert!(parse_listing("other/", keys).len() == 1);
        assert!(parse_listing("oth", keys).is_empty());
    }
}
