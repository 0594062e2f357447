//! What an engine provides for backups: the parts a backup of a service consists of (one per
//! database, plus what is shared, so one project's database restores alone) and a stream of
//! each, produced by the server's own dump tool or protocol, never through a temporary file.
//! Berth's backup pipeline (`manager/backup/`) does the rest — compression when the tool does
//! not compress, checksums, the upload, verification and the manifest — the same for all.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;

use super::tenancy::ServiceAccess;

/// What a part holds, as recorded in the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    /// Server-wide definitions shared by every database (PostgreSQL roles).
    Globals,
    /// One database (a project's, or the admin one).
    Database,
    /// The whole server's data in one file (a Redis RDB snapshot).
    Snapshot,
}

/// One object of a backup.
#[derive(Debug, Clone)]
pub struct DumpPart {
    /// Its file name inside the backup's folder (`globals.sql`, `db-shop_production.pgdump`).
    pub file: String,
    pub kind: PartKind,
    pub database: Option<String>,
    /// How the tool already compresses its output (`pg_custom`: pg_dump's custom format);
    /// `None`: Berth compresses it with zstd. Nothing is compressed twice.
    pub compressed_by_tool: Option<&'static str>,
}

impl DumpPart {
    /// A part holding one database (or bucket) named `name`, in file `file`, which Berth
    /// compresses.
    pub fn database(file: String, name: String) -> Self {
        Self {
            file,
            kind: PartKind::Database,
            database: Some(name),
            compressed_by_tool: None,
        }
    }
}

/// A part being dumped: its bytes, and what it holds counted in the dump's own snapshot
/// (table -> rows, database -> keys), known once the stream has ended.
pub struct Dump {
    pub stream: Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>,
    pub counts: BoxFuture<'static, Result<BTreeMap<String, u64>, String>>,
}

/// Where a producer task writes a part's bytes (see [`Dump::produced_by`]).
pub type DumpSender = tokio::sync::mpsc::Sender<Result<Bytes, String>>;

impl Dump {
    /// A dump written by a task of its own, for engines that dump over a protocol (no tool's
    /// stdout to stream): `produce` sends the bytes (at most `channel` chunks wait, which
    /// bounds memory) and returns the counts. An error ends the stream with `Err`, never as a
    /// short success.
    pub fn produced_by<F, Fut>(what: &'static str, channel: usize, produce: F) -> Dump
    where
        F: FnOnce(DumpSender) -> Fut,
        Fut: Future<Output = Result<BTreeMap<String, u64>, String>> + Send + 'static,
    {
        let (sender, mut receiver) = tokio::sync::mpsc::channel(channel);
        let errors = sender.clone();
        let producing = produce(sender);
        let producer = tokio::spawn(async move {
            let result = producing.await;
            if let Err(e) = &result {
                let _ = errors.send(Err(e.clone())).await;
            }
            result
        });
        let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
        Dump {
            stream: Box::pin(stream),
            counts: Box::pin(async move { producer.await.map_err(|e| format!("{what}: {e}"))? }),
        }
    }
}

/// A part's bytes on their way back into a service (decompressed; the tool's own format).
pub type RestoreStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

#[async_trait]
pub trait BackupEngine: Send + Sync {
    /// The parts a backup of the service consists of right now.
    async fn plan(&self, service: &ServiceAccess<'_>) -> Result<Vec<DumpPart>, String>;

    /// Starts dumping one part. A tool that fails half-way makes the stream end with `Err`,
    /// never with a short success.
    async fn dump(&self, service: &ServiceAccess<'_>, part: &DumpPart) -> Result<Dump, String>;

    /// Loads one part into the service, replacing what the part holds (a database is dropped
    /// and created again from the dump; shared definitions are added, never the service's
    /// own admin credentials, which stay Berth's). Only the database the part names is
    /// touched.
    async fn restore(
        &self,
        service: &ServiceAccess<'_>,
        part: &DumpPart,
        stream: RestoreStream,
    ) -> Result<(), String>;

    /// What a database holds now, counted as [`Dump::counts`] counts it, to compare a
    /// restore with its manifest.
    async fn counts(
        &self,
        service: &ServiceAccess<'_>,
        database: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, String>;

    /// Whether [`BackupEngine::block_writes`] works for this engine (a major upgrade by dump
    /// and restore needs it).
    fn can_hold_writes(&self) -> bool {
        false
    }

    /// Turns writes off (`blocked`) or on again server-wide, ending the transactions in
    /// flight, so that a dump taken next holds every write the server will ever accept: a
    /// major upgrade by dump and restore holds writes from its first dump to its switch. The
    /// setting survives a restart of the server. `Err` for an engine that cannot.
    async fn block_writes(&self, service: &ServiceAccess<'_>, blocked: bool) -> Result<(), String> {
        let _ = (service, blocked);
        Err("this engine cannot hold writes during an upgrade".into())
    }

    /// Whether a restore holds what the backup counted; `Err` says what differs. Exact by
    /// default; an engine whose data may expire on its own (Redis keys with a TTL) allows it.
    fn counts_match(
        &self,
        backed_up: &BTreeMap<String, u64>,
        now: &BTreeMap<String, u64>,
    ) -> Result<(), String> {
        let mut differences = Vec::new();
        for (table, want) in backed_up {
            match now.get(table) {
                Some(got) if got == want => {}
                Some(got) => differences.push(format!("{table}: {got}, the backup counted {want}")),
                None => differences.push(format!("{table}: missing, the backup counted {want}")),
            }
        }
        for table in now.keys().filter(|t| !backed_up.contains_key(*t)) {
            differences.push(format!("{table}: not in the backup"));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join("; "))
        }
    }
}
