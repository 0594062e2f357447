//! State store: SQLite by default, PostgreSQL with `--database-url postgres://...`. Queries are
//! runtime-checked (`sqlx::any`), written once in the dialect both accept (`$1` placeholders,
//! `RETURNING`); only the migrations differ per backend. Secret parameters are encrypted here,
//! on the way in, so no other module can store one in plain text by mistake.

mod backing;
mod backups;
mod destinations;
mod inspect;
mod links;
mod meta;
mod operations;
mod projects;
mod restores;
mod schedules;
mod services;
mod snapshot;
mod tokens;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_core::secrets::SecretBox;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};
use thiserror::Error;

pub use backing::Backing;
pub use backups::{
    BackupFilter, BackupOutcome, BackupRecord, BackupState, NewBackup, PendingUpload,
    STATE_SERVICE_TYPE,
};
pub use destinations::{Destination, DestinationFields};
pub use inspect::{StateFacts, state_facts};
pub use links::{Link, NewTenant, Tenant};
pub use operations::{OpKind, OpStatus, Operation};
pub use projects::{Environment, Project};
pub use restores::{NewRestoreRun, RestoreRun};
pub use schedules::{NewSchedule, RunKind, Schedule, ScheduleRun, ScheduleTarget};
pub use services::{NewService, Origin, Service};
pub use snapshot::sqlite_table_rows;
pub use tokens::{ApiToken, LiveToken, Scope, ScopeKind};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    /// The state database is SQLite (the default), not PostgreSQL.
    sqlite: bool,
    secrets: SecretBox,
    /// Bumped after every committed write to services, projects, links, tenants, tokens or the
    /// KV backing, so read caches (token checks, injected variables, KV's backing) know when
    /// they are stale. Berth is the only writer of its state database, so an in-process
    /// counter is enough.
    generation: Arc<AtomicU64>,
    token_cache: Arc<std::sync::Mutex<std::collections::HashMap<String, tokens::CachedToken>>>,
}

/// The SQLite state database's file name in the data directory.
pub const STATE_DB_FILE: &str = "berth.db";

/// RFC 3339 "now", the format every timestamp column holds.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

impl Store {
    /// Opens (creating if needed) the state database and runs the embedded migrations.
    pub async fn open(url: &str, secrets: SecretBox) -> StoreResult<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let mut options = AnyConnectOptions::from_str(url)?;
        options = options.disable_statement_logging();
        let pool = AnyPoolOptions::new()
            .max_connections(if is_sqlite { 4 } else { 8 })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if is_sqlite {
                        // WAL lets the reconciler read while a handler writes; busy_timeout
                        // turns lock contention into a short wait instead of an error.
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        if is_sqlite {
            sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        } else {
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        }
        Ok(Self {
            pool,
            sqlite: is_sqlite,
            secrets,
            generation: Arc::new(AtomicU64::new(0)),
            token_cache: Default::default(),
        })
    }

    /// `sqlite://{dir}/berth.db?mode=rwc`, the default state location.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join(STATE_DB_FILE).display()
        )
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The current write generation (see the field).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Maps "no rows" to `None` for lookups by id.
fn optional<T>(result: Result<T, sqlx::Error>) -> StoreResult<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(sqlx::Error::RowNotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether an error is a UNIQUE violation (duplicate name/slug), on either backend.
pub fn is_unique_violation(err: &StoreError) -> bool {
    match err {
        StoreError::Db(sqlx::Error::Database(db)) => {
            db.is_unique_violation()
                || db.message().contains("UNIQUE constraint failed")
                || db.code().as_deref() == Some("23505")
        }
        _ => false,
    }
}
