//! Backups of Berth's services, the part without IO: where a backup lives on a destination
//! ([`layout`]), what its manifest records ([`manifest`]), when scheduled backups run
//! ([`schedule`]) and which backups a retention policy deletes ([`retention`]). The server
//! does the dumping, uploading and listing; every decision it makes about them is here, so it
//! can be tested without Docker or S3.

pub mod layout;
pub mod manifest;
pub mod retention;
pub mod schedule;
pub mod state;

pub use layout::{BackupId, LayoutError, ListedBackup};
pub use manifest::{BackupManifest, ManifestError, ManifestObject, ManifestService, ObjectKind};
pub use retention::{BackupState, Decision, RetainedBackup, RetentionPlan, RetentionPolicy};
pub use schedule::{CronSchedule, ScheduleError, Tick};
