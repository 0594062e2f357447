//! Unpacking a sealed state backup into a data directory, all or nothing: the archive is
//! opened (wrong passphrase and damage told apart), its files staged in a scratch directory
//! inside the data directory, the staged state database's row counts compared with those
//! sealed in the header, and only then moved into place. A state already there is never
//! overwritten without `--force`, and even then kept beside it.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, bail};
use berth_core::backup::state as sealed;
use serde::Serialize;

use berth_server::app::{ADMIN_TOKEN_FILE, INSTANCE_FILE, KEY_FILE};
use berth_server::store::{STATE_DB_FILE as DB_FILE, sqlite_table_rows};

/// The files a state backup may carry (what the server seals); anything else is refused.
const KNOWN_FILES: [&str; 4] = [DB_FILE, KEY_FILE, INSTANCE_FILE, ADMIN_TOKEN_FILE];

/// SQLite's companions of the state database: stale ones must never sit beside a new one.
const DB_COMPANIONS: [&str; 2] = ["berth.db-wal", "berth.db-shm"];

pub struct Mode {
    /// Open and check only; write nothing to the data directory.
    pub check_only: bool,
    /// Replace an existing state (moved aside, not deleted).
    pub force: bool,
}

#[derive(Debug, Serialize)]
pub struct Restored {
    pub instance_id: String,
    pub created_at: String,
    pub files: Vec<String>,
    pub table_rows: BTreeMap<String, u64>,
    pub data_dir: String,
    /// Files of a replaced state, kept under these names.
    pub moved_aside: Vec<String>,
}

pub async fn restore(
    archive: &[u8],
    passphrase: &str,
    data_dir: &Path,
    mode: Mode,
) -> anyhow::Result<Restored> {
    let (header, payload) = sealed::open(archive, passphrase)?;
    if !mode.check_only && !mode.force {
        for name in [DB_FILE, KEY_FILE] {
            let path = data_dir.join(name);
            if path.exists() {
                bail!(
                    "{} already holds a Berth state ({name}); stop `berth serve` and pass --force \
                     to replace it (the current files are kept beside it)",
                    data_dir.display()
                );
            }
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    // Staged inside the data directory: the final moves are renames on one filesystem.
    let staging = tempfile::Builder::new()
        .prefix(".state-restore-")
        .tempdir_in(data_dir)
        .with_context(|| format!("creating a scratch directory in {}", data_dir.display()))?;
    let files = unpack(&payload, staging.path())?;
    if !files.iter().any(|f| f == DB_FILE) || !files.iter().any(|f| f == KEY_FILE) {
        bail!("damaged state backup: it lacks the state database or the secret key");
    }
    let db = staging.path().join(DB_FILE);
    let rows = sqlite_table_rows(&db)
        .await
        .with_context(|| format!("reading {}", db.display()))?;
    if rows != header.table_rows {
        bail!(
            "damaged state backup: the unpacked state database's row counts ({rows:?}) differ \
             from those sealed with it ({:?})",
            header.table_rows
        );
    }
    let mut restored = Restored {
        instance_id: header.instance_id,
        created_at: header.created_at,
        files: files.clone(),
        table_rows: rows,
        data_dir: data_dir.display().to_string(),
        moved_aside: Vec::new(),
    };
    if mode.check_only {
        return Ok(restored);
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for name in KNOWN_FILES.iter().chain(DB_COMPANIONS.iter()) {
        let current = data_dir.join(name);
        if current.exists() {
            let aside = data_dir.join(format!("{name}.before-restore-{stamp}"));
            std::fs::rename(&current, &aside)
                .with_context(|| format!("moving {} aside", current.display()))?;
            restored.moved_aside.push(aside.display().to_string());
        }
    }
    for name in &files {
        let to = data_dir.join(name);
        std::fs::rename(staging.path().join(name), &to)
            .with_context(|| format!("writing {}", to.display()))?;
    }
    Ok(restored)
}

/// Unpacks the payload's tar into `dir` (0600 files): only the known names, regular files.
fn unpack(payload: &[u8], dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut archive = tar::Archive::new(payload);
    let mut files = Vec::new();
    for entry in archive.entries().context("damaged state backup")? {
        let mut entry = entry.context("damaged state backup")?;
        let path = entry.path().context("damaged state backup")?;
        let name = path.to_string_lossy().to_string();
        if !entry.header().entry_type().is_file() || !KNOWN_FILES.contains(&name.as_str()) {
            bail!("damaged state backup: unexpected entry {name:?}");
        }
        if files.contains(&name) {
            bail!("damaged state backup: {name:?} twice");
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let target = dir.join(&name);
        std::fs::write(&target, &bytes).with_context(|| format!("writing {}", target.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))?;
        files.push(name);
    }
    Ok(files)
}
