//! Backups of Berth's own state: the state database (a `VACUUM INTO` snapshot), `secret.key`
//! and the instance id, in one tar sealed to the key derived from the user's passphrase
//! (`berth_core::backup::state`), stored on a destination like any backup and recorded as a
//! `backups` row with no service (`service_type` `berth-state`), so runs, schedules, retention,
//! crash cleanup and `/metrics` are the ones every backup has.
//!
//! The server keeps only the public half of the key (in `meta`): it can seal, never open. So
//! `secret.key` leaves the machine only inside a sealed archive, and opening one takes the
//! passphrase: `berth state restore`, offline, on the machine being rebuilt.

use std::sync::Arc;

use berth_core::backup::layout::{self, BackupId};
use berth_core::backup::manifest::{MANIFEST_FORMAT, rfc3339_utc};
use berth_core::backup::state::{self as sealed, ARCHIVE_NAME, Header, Recipient};
use berth_core::backup::{BackupManifest, ManifestObject, ManifestService, ObjectKind};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::super::{ManagerError, ManagerResult, ServiceManager};
use super::destination::Target;
use super::run::{StartedBackup, now_ms};
use super::upload::Stored;
use crate::store::{BackupRecord, NewBackup, STATE_DB_FILE, STATE_SERVICE_TYPE};

/// The folder name state backups are filed under (`berth/berth-state/berth-0/{backup}/`).
pub const STATE_SERVICE_NAME: &str = "berth";
/// The id state backups are filed (and retained, and reported in `/metrics`) under: no
/// service has it.
pub const STATE_FOLDER_ID: i64 = 0;
/// How the archive is packed: a tar, sealed (not compressed: the state database is small).
const COMPRESSION: &str = "sealed-tar";
/// Where the recipient (public key and derivation parameters) is kept in `meta`.
const RECIPIENT_META: &str = "state_backup_recipient";

/// What a user (or a schedule) asks for.
#[derive(Debug, Clone)]
pub struct StateBackupRequest {
    pub destination_id: i64,
    pub created_by: String,
    pub schedule_id: Option<i64>,
    pub tags: Vec<String>,
    pub expires_at: Option<String>,
}

/// The state backup key as stored: never anything that opens a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateBackupKey {
    pub recipient: Recipient,
    /// RFC 3339.
    pub set_at: String,
}

impl ServiceManager {
    /// The key state backups are sealed to, if one was set.
    pub async fn state_backup_key(&self) -> ManagerResult<Option<StateBackupKey>> {
        let Some(json) = self.store.meta(RECIPIENT_META).await? else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| ManagerError::Internal(format!("stored state backup key: {e}")))
    }

    /// Derives the key from `passphrase` (Argon2id, fresh salt) and keeps its public half; the
    /// passphrase is dropped here. Backups sealed to an earlier key still open with the
    /// earlier passphrase (each archive names its own key).
    pub async fn set_state_backup_key(&self, passphrase: String) -> ManagerResult<StateBackupKey> {
        sealed::check_passphrase(&passphrase)
            .map_err(|e| ManagerError::BadRequest(e.to_string()))?;
        // Argon2id at 64 MiB is deliberate CPU work: off the async workers.
        let recipient =
            tokio::task::spawn_blocking(move || Recipient::from_passphrase(&passphrase))
                .await
                .map_err(|e| ManagerError::Internal(format!("deriving the key: {e}")))?
                .map_err(|e| ManagerError::BadRequest(e.to_string()))?;
        let key = StateBackupKey {
            recipient,
            set_at: crate::store::now(),
        };
        let json = serde_json::to_string(&key).expect("a key serialises");
        self.store.set_meta(RECIPIENT_META, &json).await?;
        tracing::info!(
            fingerprint = %key.recipient.fingerprint(),
            "state backup key set"
        );
        Ok(key)
    }

    /// Checks the request, records the run and starts it (as [`Self::start_backup`] does for
    /// a service).
    pub async fn start_state_backup(
        self: &Arc<Self>,
        request: StateBackupRequest,
    ) -> ManagerResult<StartedBackup> {
        self.refuse_if_shutting_down()?;
        self.check_state_backup_possible().await?;
        let destination = self.destination(request.destination_id).await?;
        let target = self.destination_target(&destination).await?;
        let started = self
            .record_and_spawn(
                target,
                STATE_FOLDER_ID,
                NewBackup {
                    backup_id: "",
                    service_id: None,
                    service_name: STATE_SERVICE_NAME,
                    service_type: STATE_SERVICE_TYPE,
                    destination_id: destination.id,
                    schedule_id: request.schedule_id,
                    backup_type: "full",
                    location: "",
                    compression_type: COMPRESSION,
                    created_by: &request.created_by,
                    tags: &request.tags,
                    expires_at: request.expires_at.as_deref(),
                },
            )
            .await?;
        tracing::info!(backup = %started.record.backup_id, "state backup started");
        Ok(started)
    }

    /// Why a state backup cannot be made here, if it cannot.
    pub async fn check_state_backup_possible(&self) -> ManagerResult<()> {
        if !self.store.is_sqlite() {
            return Err(ManagerError::BadRequest(
                "Berth's state database is PostgreSQL here: back it up with that server's own \
                 tools (pg_dump); state backups snapshot the default SQLite state database"
                    .into(),
            ));
        }
        if self.state_backup_key().await?.is_none() {
            return Err(ManagerError::BadRequest(
                "no state backup key is set: set a passphrase first (`berth state key set`, or \
                 PUT /api/backups/state/key with {\"passphrase\": ...})"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Snapshots, seals and uploads Berth's state; the manifest last, as for a service.
    pub(super) async fn run_state_backup(
        &self,
        record: &BackupRecord,
        target: &Target,
        folder: &str,
        backup_id: &BackupId,
        started_ms: i64,
    ) -> ManagerResult<(BackupManifest, Stored)> {
        let key = self
            .state_backup_key()
            .await?
            .ok_or_else(|| ManagerError::BadRequest("the state backup key was removed".into()))?;
        self.backup_step(record.id, "checking the destination")
            .await;
        Self::check_bucket(target).await?;

        self.backup_step(record.id, "snapshotting the state database")
            .await;
        let scratch = tempfile::Builder::new()
            .prefix(".state-backup-")
            .tempdir_in(&self.config.data_dir)
            .map_err(|e| ManagerError::Internal(format!("scratch directory: {e}")))?;
        let snapshot = scratch.path().join(STATE_DB_FILE);
        self.store.snapshot_into(&snapshot).await?;
        let table_rows = crate::store::sqlite_table_rows(&snapshot).await?;

        self.backup_step(record.id, "sealing the archive").await;
        let data_dir = self.config.data_dir.clone();
        let header = Header {
            instance_id: self.instance_id.clone(),
            created_at: rfc3339_utc(started_ms).unwrap_or_default(),
            berth_version: env!("CARGO_PKG_VERSION").to_string(),
            recipient: key.recipient,
            table_rows: table_rows.clone(),
            files: Vec::new(),
        };
        let archive = tokio::task::spawn_blocking(move || seal_state(&data_dir, &snapshot, header))
            .await
            .map_err(|e| ManagerError::Internal(format!("sealing: {e}")))??;
        drop(scratch);

        self.backup_step(record.id, &format!("uploading {ARCHIVE_NAME}"))
            .await;
        let key_name = layout::object_key(folder, ARCHIVE_NAME)
            .map_err(|e| ManagerError::Internal(format!("object key: {e}")))?;
        let stream = Box::pin(futures_util::stream::iter([Ok::<_, String>(Bytes::from(
            archive,
        ))]));
        let stored = self
            .upload_verified(
                record.id,
                target,
                &key_name,
                "application/octet-stream",
                stream,
            )
            .await?;

        self.backup_step(record.id, "writing the manifest").await;
        let manifest = BackupManifest {
            format: MANIFEST_FORMAT,
            backup_id: backup_id.to_string(),
            service: ManifestService {
                id: STATE_FOLDER_ID,
                name: STATE_SERVICE_NAME.into(),
                service_type: STATE_SERVICE_TYPE.into(),
                image: String::new(),
                version: Some(env!("CARGO_PKG_VERSION").to_string()),
            },
            started_at: rfc3339_utc(started_ms).unwrap_or_default(),
            finished_at: rfc3339_utc(now_ms()).unwrap_or_default(),
            compression: COMPRESSION.into(),
            objects: vec![ManifestObject {
                key: ARCHIVE_NAME.into(),
                kind: ObjectKind::Snapshot,
                database: None,
                size_bytes: stored.size,
                sha256: stored.sha256,
                compression: Some(COMPRESSION.into()),
                counts: table_rows,
            }],
        };
        self.upload_manifest(record.id, target, folder, manifest)
            .await
    }
}

/// The files a state backup carries, by their name in the data directory. `admin-token` only
/// if it is still there (it holds the first admin token, which the state database keeps only
/// as a hash).
const CARRIED_FILES: [&str; 3] = [
    crate::app::KEY_FILE,
    crate::app::INSTANCE_FILE,
    crate::app::ADMIN_TOKEN_FILE,
];

/// The tar of the snapshot and the key files, sealed: the archive's bytes.
fn seal_state(
    data_dir: &std::path::Path,
    snapshot: &std::path::Path,
    mut header: Header,
) -> ManagerResult<Vec<u8>> {
    let io = |what: &str, e: std::io::Error| ManagerError::Internal(format!("{what}: {e}"));
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut entry = tar::Header::new_gnu();
        entry.set_size(bytes.len() as u64);
        entry.set_mode(0o600);
        entry.set_mtime(0);
        entry.set_cksum();
        tar.append_data(&mut entry, name, bytes)
    };
    let db = std::fs::read(snapshot).map_err(|e| io("reading the snapshot", e))?;
    add(STATE_DB_FILE, &db).map_err(|e| io("archiving", e))?;
    header.files.push(STATE_DB_FILE.into());
    for name in CARRIED_FILES {
        match std::fs::read(data_dir.join(name)) {
            Ok(bytes) => {
                add(name, &bytes).map_err(|e| io("archiving", e))?;
                header.files.push(name.into());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && name != crate::app::KEY_FILE => {}
            Err(e) => return Err(io(&format!("reading {name}"), e)),
        }
    }
    let payload = tar.into_inner().map_err(|e| io("archiving", e))?;
    sealed::seal(&header, &payload).map_err(|e| ManagerError::Internal(e.to_string()))
}
