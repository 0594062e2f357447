//! Request and response bodies of the backup routes, in Temps' shapes: destinations
//! ("S3 sources") and backups carry epoch milliseconds, the run answer (Temps'
//! `ExternalServiceBackup`) RFC 3339 strings. Secret keys are always masked.

use berth_core::mask::MASK;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manager::backup::{
    DestinationRequest, ScheduleRequest, ServiceRetention, StateBackupKey,
};
use crate::store::{BackupRecord, BackupState, Destination, Schedule, ScheduleTarget};

/// `POST /backups/s3-sources` and `PATCH /backups/s3-sources/{id}` (every field optional on
/// PATCH). Either keys and (optionally) an endpoint, or `service_id` of a Berth-managed S3
/// service, whose address and keys are then used.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct S3SourceRequest {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(pattern = "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    pub bucket_name: Option<String>,
    /// Prefix inside the bucket ('' for its root).
    #[schema(max_length = 512)]
    pub bucket_path: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_key: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    /// `https://host:port` of an S3-compatible server; AWS's regional endpoint when absent.
    pub endpoint: Option<String>,
    /// Path-style addressing (`host/bucket`, the default: what self-hosted servers use);
    /// `false` for virtual-hosted style (`bucket.host`).
    pub force_path_style: Option<bool>,
    /// A Berth-managed S3 service keeping the bucket (Berth creates the bucket).
    pub service_id: Option<i64>,
}

impl From<S3SourceRequest> for DestinationRequest {
    fn from(r: S3SourceRequest) -> Self {
        Self {
            name: r.name,
            bucket_name: r.bucket_name,
            bucket_path: r.bucket_path,
            region: r.region,
            endpoint: r.endpoint,
            force_path_style: r.force_path_style,
            access_key_id: r.access_key_id,
            secret_key: r.secret_key,
            service_id: r.service_id,
        }
    }
}

/// Temps' S3Source; `secret_key` is masked (Temps returns it in clear; Berth never does).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct S3SourceView {
    pub id: i64,
    pub name: String,
    pub bucket_name: String,
    pub bucket_path: String,
    pub access_key_id: String,
    /// Always masked, `********` (empty for a Berth-managed service's destination: its keys are the
    /// service's).
    pub secret_key: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub service_id: Option<i64>,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Destination> for S3SourceView {
    fn from(d: &Destination) -> Self {
        Self {
            id: d.id,
            name: d.name.clone(),
            bucket_name: d.bucket_name.clone(),
            bucket_path: d.bucket_path.clone(),
            access_key_id: d.access_key_id.clone(),
            secret_key: if d.secret_key.is_empty() {
                String::new()
            } else {
                MASK.to_string()
            },
            region: d.region.clone(),
            endpoint: d.endpoint.clone(),
            force_path_style: d.force_path_style,
            service_id: d.service_id,
            created_at: epoch_ms(&d.created_at).unwrap_or_default(),
            updated_at: epoch_ms(&d.updated_at).unwrap_or_default(),
        }
    }
}

/// The answer of `POST /backups/s3-sources/{id}/test`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct S3SourceTest {
    pub success: bool,
    pub message: String,
}

/// `POST /backups/external-services/{id}/run`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBackupRequest {
    pub s3_source_id: i64,
    /// `full` (the only type for these engines; the default).
    pub backup_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Temps' Backup, plus Berth's `service_*`, `step`, `progress_bytes` and `verify`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BackupView {
    pub id: i64,
    /// `{service name} {backup id}`.
    pub name: String,
    pub backup_id: String,
    pub backup_type: String,
    /// `running`, `succeeded` (every object and the manifest checked on the destination and
    /// matched), `failed`, `deleted` (removed from the destination by retention: nothing to
    /// restore).
    pub state: BackupState,
    /// What a running backup is doing.
    pub step: String,
    /// Bytes read from the service so far, while it runs.
    pub progress_bytes: Option<u64>,
    pub started_at: i64,
    pub completed_at: Option<i64>,
    pub size_bytes: i64,
    pub file_count: i64,
    pub s3_source_id: i64,
    pub s3_location: String,
    /// SHA-256 of the manifest as stored.
    pub checksum: Option<String>,
    pub compression_type: String,
    pub error_message: Option<String>,
    pub expires_at: Option<i64>,
    pub schedule_id: Option<i64>,
    /// The manifest of a succeeded backup (objects, sizes, checksums, row counts).
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_by: String,
    pub tags: Vec<String>,
    pub service_id: Option<i64>,
    pub service_name: String,
    pub service_type: String,
    /// When retention deleted it (epoch milliseconds), and why.
    pub deleted_at: Option<i64>,
    pub deleted_reason: Option<String>,
}

impl BackupView {
    pub fn new(b: &BackupRecord, progress_bytes: Option<u64>) -> Self {
        Self {
            id: b.id,
            name: format!("{} {}", b.service_name, b.backup_id),
            backup_id: b.backup_id.clone(),
            backup_type: b.backup_type.clone(),
            state: b.state,
            step: b.step.clone(),
            progress_bytes,
            started_at: epoch_ms(&b.started_at).unwrap_or_default(),
            completed_at: b.finished_at.as_deref().and_then(epoch_ms),
            size_bytes: b.size_bytes,
            file_count: b.file_count,
            s3_source_id: b.destination_id,
            s3_location: b.location.clone(),
            checksum: b.checksum.clone(),
            compression_type: b.compression_type.clone(),
            error_message: b.error_message.clone(),
            expires_at: b.expires_at.as_deref().and_then(epoch_ms),
            schedule_id: b.schedule_id,
            metadata: metadata(b),
            created_by: b.created_by.clone(),
            tags: b.tags.clone(),
            service_id: b.service_id,
            service_name: b.service_name.clone(),
            service_type: b.service_type.clone(),
            deleted_at: b.deleted_at.as_deref().and_then(epoch_ms),
            deleted_reason: b.deleted_reason.clone(),
        }
    }
}

/// Temps' ExternalServiceBackup: the answer of a run (RFC 3339 times).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExternalServiceBackup {
    pub id: i64,
    pub service_id: Option<i64>,
    pub backup_id: String,
    pub backup_type: String,
    pub state: BackupState,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub size_bytes: Option<i64>,
    pub s3_location: String,
    pub checksum: Option<String>,
    pub compression_type: String,
    pub error_message: Option<String>,
    pub expires_at: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_by: String,
}

impl From<&BackupRecord> for ExternalServiceBackup {
    fn from(b: &BackupRecord) -> Self {
        Self {
            id: b.id,
            service_id: b.service_id,
            backup_id: b.backup_id.clone(),
            backup_type: b.backup_type.clone(),
            state: b.state,
            started_at: b.started_at.clone(),
            finished_at: b.finished_at.clone(),
            size_bytes: (b.state == BackupState::Succeeded).then_some(b.size_bytes),
            s3_location: b.location.clone(),
            checksum: b.checksum.clone(),
            compression_type: b.compression_type.clone(),
            error_message: b.error_message.clone(),
            expires_at: b.expires_at.clone(),
            metadata: metadata(b),
            created_by: b.created_by.clone(),
        }
    }
}

/// `GET /backups/s3-sources/{id}/backups`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceBackups {
    pub backups: Vec<BackupView>,
    /// Epoch milliseconds of the newest change among them.
    pub last_updated: Option<i64>,
}

fn metadata(b: &BackupRecord) -> Value {
    let manifest = b
        .manifest
        .as_deref()
        .and_then(|m| serde_json::from_str::<Value>(m).ok());
    let mut meta = serde_json::json!({ "manifest": manifest });
    if let Some(state) = &b.verify_state {
        meta["verify"] = serde_json::json!({
            "state": state,
            "message": b.verify_message,
            "verified_at": b.verified_at,
        });
    }
    meta
}

/// `POST /backups/schedules`: Temps' fields, plus Berth's `service_id`, `keep_last` and
/// `max_runtime_secs`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScheduleRequest {
    /// Unique.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `full` (the default; the only type these engines have).
    pub backup_type: Option<String>,
    /// Days a backup is kept (its `expires_at`); 0 or absent: no age limit.
    #[schema(minimum = 0, maximum = 36500)]
    pub retention_period: Option<i64>,
    /// The destination.
    pub s3_source_id: i64,
    /// Cron, in UTC: 5 fields (minute hour day-of-month month day-of-week), 6 with seconds
    /// first, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. At most once a minute.
    #[schema(example = "0 3 * * *")]
    pub schedule_expression: String,
    /// Default true.
    pub enabled: Option<bool>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// Back up this service only; absent: every service that can be backed up (and is meant
    /// to run), the destination's own S3 service excepted.
    pub service_id: Option<i64>,
    /// Keep the newest N succeeded backups whatever their age. With `retention_period`, a
    /// backup is kept if either keeps it; the newest succeeded backup is always kept.
    #[schema(minimum = 0, maximum = 10000)]
    pub keep_last: Option<i64>,
    /// A backup still running after this many seconds (a wait for an earlier backup of the
    /// service included) is aborted and recorded failed.
    #[schema(minimum = 1, maximum = 604800)]
    pub max_runtime_secs: Option<i64>,
    /// Verify each backup a run makes by restoring it into a throwaway service once it
    /// succeeded, as `POST /backups/{id}/verify` does (default false).
    #[serde(default)]
    pub verify: bool,
    /// `services` (the default), or `berth_state`: Berth's own state database and secret key,
    /// sealed to the state backup key (`PUT /backups/state/key`); then no `service_id`.
    #[serde(default)]
    pub target: BackupTarget,
}

/// What a schedule backs up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupTarget {
    #[default]
    Services,
    BerthState,
}

impl From<BackupTarget> for ScheduleTarget {
    fn from(t: BackupTarget) -> Self {
        match t {
            BackupTarget::Services => ScheduleTarget::Services,
            BackupTarget::BerthState => ScheduleTarget::BerthState,
        }
    }
}

impl From<ScheduleTarget> for BackupTarget {
    fn from(t: ScheduleTarget) -> Self {
        match t {
            ScheduleTarget::Services => BackupTarget::Services,
            ScheduleTarget::BerthState => BackupTarget::BerthState,
        }
    }
}

impl From<CreateScheduleRequest> for ScheduleRequest {
    fn from(r: CreateScheduleRequest) -> Self {
        Self {
            name: r.name,
            backup_type: r.backup_type,
            retention_period: r.retention_period,
            s3_source_id: r.s3_source_id,
            schedule_expression: r.schedule_expression,
            enabled: r.enabled,
            tags: r.tags,
            description: r.description,
            service_id: r.service_id,
            keep_last: r.keep_last,
            max_runtime_secs: r.max_runtime_secs,
            verify: r.verify,
            target: r.target.into(),
        }
    }
}

/// Temps' Schedule, plus Berth's `service_id`, `keep_last`, `max_runtime_secs`, `verify` and
/// `last_error`. Times are epoch milliseconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: i64,
    pub name: String,
    pub backup_type: String,
    /// Days; 0: no age limit.
    pub retention_period: i64,
    pub s3_source_id: i64,
    pub schedule_expression: String,
    pub enabled: bool,
    pub tags: Vec<String>,
    pub description: Option<String>,
    /// When it last ran (scheduled or asked for).
    pub last_run: Option<i64>,
    /// When it runs next; absent while disabled.
    pub next_run: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The one service it backs up; absent: every service that can be backed up.
    pub service_id: Option<i64>,
    pub keep_last: Option<i64>,
    pub max_runtime_secs: Option<i64>,
    /// Whether each backup a run makes is verified by a restore once it succeeded.
    pub verify: bool,
    /// Why its last run could not start a backup of some service.
    pub last_error: Option<String>,
    /// `services`, or `berth_state` (Berth's own state).
    pub target: BackupTarget,
}

impl From<&Schedule> for ScheduleView {
    fn from(s: &Schedule) -> Self {
        Self {
            id: s.id,
            name: s.name.clone(),
            backup_type: s.backup_type.clone(),
            retention_period: s.retention_period,
            s3_source_id: s.s3_source_id,
            schedule_expression: s.schedule_expression.clone(),
            enabled: s.enabled,
            tags: s.tags.clone(),
            description: s.description.clone(),
            last_run: s.last_run.as_deref().and_then(epoch_ms),
            next_run: s.next_run.as_deref().and_then(epoch_ms),
            created_at: epoch_ms(&s.created_at).unwrap_or_default(),
            updated_at: epoch_ms(&s.updated_at).unwrap_or_default(),
            service_id: s.service_id,
            keep_last: s.keep_last,
            max_runtime_secs: s.max_runtime_secs,
            verify: s.verify,
            last_error: s.last_error.clone(),
            target: s.target.into(),
        }
    }
}

/// The answer of `POST /backups/schedules/{id}/run`: the backups it started (running; poll
/// `GET /backups/{id}`), and the services it could not start one for.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleRunView {
    pub schedule_id: i64,
    pub backups: Vec<BackupView>,
    pub errors: Vec<ScheduleRunError>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleRunError {
    pub service_id: i64,
    pub error: String,
}

/// `GET /backups/retention`: what retention would delete.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RetentionQuery {
    /// Only this destination (default: every one).
    pub s3_source_id: Option<i64>,
    /// Only this service's backups (default: every service with backups there).
    pub service_id: Option<i64>,
}

/// `POST /backups/retention`: apply retention now.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Only this destination (default: every one).
    pub s3_source_id: Option<i64>,
    /// Only this service's backups (default: every service with backups there).
    pub service_id: Option<i64>,
}

/// Retention on destinations: what is kept and what is (or, on a dry run, would be) deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetentionView {
    /// True for `GET` (nothing was deleted).
    pub dry_run: bool,
    pub destinations: Vec<DestinationRetention>,
}

/// Retention on one destination, per service, each backup with the reason.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DestinationRetention {
    pub s3_source_id: i64,
    pub services: Vec<ServiceRetention>,
    /// Why this destination could not be looked at (listing every destination: the others
    /// still are); named alone, such a destination answers 503 instead.
    pub error: Option<String>,
}

/// RFC 3339 (as stored) to epoch milliseconds.
pub fn epoch_ms(rfc3339: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(rfc3339).ok()?;
    let since = at.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

/// `PUT /backups/state/key`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateKeyRequest {
    /// At least 12 characters. Only the public half of the key it derives is kept; the
    /// passphrase is needed again, and only, to restore (`berth state restore`).
    #[schema(min_length = 12)]
    pub passphrase: String,
}

/// The key state backups are sealed to (nothing that opens them).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StateKeyView {
    pub configured: bool,
    /// First 16 hex digits of the public key's SHA-256: which key a backup was sealed to.
    pub fingerprint: Option<String>,
    /// Base64 X25519 public key.
    pub public_key: Option<String>,
    /// `argon2id`, with its cost (memory in KiB, iterations, parallelism).
    pub kdf: Option<String>,
    /// When it was set (epoch ms).
    pub set_at: Option<i64>,
}

impl From<Option<&StateBackupKey>> for StateKeyView {
    fn from(key: Option<&StateBackupKey>) -> Self {
        Self {
            configured: key.is_some(),
            fingerprint: key.map(|k| k.recipient.fingerprint()),
            public_key: key.map(|k| k.recipient.public_key.clone()),
            kdf: key.map(|k| {
                let kdf = &k.recipient.kdf;
                format!(
                    "{} m={} KiB t={} p={}",
                    kdf.algorithm, kdf.memory_kib, kdf.iterations, kdf.parallelism
                )
            }),
            set_at: key.and_then(|k| epoch_ms(&k.set_at)),
        }
    }
}

/// `POST /backups/state/run`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunStateBackupRequest {
    /// The destination; best one off this server, since the backup is what rebuilds it.
    pub s3_source_id: i64,
    #[serde(default)]
    pub tags: Vec<String>,
}
