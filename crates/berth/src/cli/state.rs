//! `berth state`: backups of Berth's own state. `key set|show` and `backup` and `list` talk
//! to the server; `restore` works offline, on the machine being rebuilt, from the sealed
//! archive (a file, or `s3://bucket/key` read with the destination's keys) and the passphrase.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use berth_core::backup::state::{self as sealed, ARCHIVE_NAME};
use berth_server::s3client::{S3Client, S3Endpoint};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::backups::{print_or, resolve_destination, run_and_follow};
use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// The key state backups are sealed to.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Back up Berth's own state now (state database, secret key, instance id), sealed to the
    /// key; schedule it with `berth backup schedule add --state`.
    Backup {
        /// Destination name or id; best off this server, since it is what rebuilds it.
        #[arg(long = "to", value_name = "DESTINATION")]
        destination: String,
        /// Start it and print its id without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// List backups of Berth's own state, newest first.
    List,
    /// Restore Berth's state from a sealed backup into the data directory (offline: stop
    /// `berth serve` first). SOURCE is a file or `s3://bucket/key-or-prefix` (the newest backup
    /// under a prefix); S3 keys come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    Restore {
        source: String,
        /// Read the passphrase from this file (`-`: standard input) instead of asking.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
        /// Only open and check the backup (passphrase, integrity, row counts); write nothing.
        #[arg(long)]
        check: bool,
        /// Replace an existing state (kept beside it as `*.before-restore-<time>`).
        #[arg(long)]
        force: bool,
        /// S3 endpoint for an `s3://` SOURCE (`https://host:port`).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value = "us-east-1")]
        region: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Set the passphrase backups are sealed for. Only the public half of the key it derives
    /// is kept by the server: keep the passphrase safe, a lost one cannot be recovered.
    Set {
        /// Read the passphrase from this file (`-`: standard input) instead of asking twice.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },
    /// Show whether a key is set, and its fingerprint.
    Show,
}

pub async fn run(
    command: &StateCommand,
    api: Option<&ApiClient>,
    data_dir: &Path,
    as_json: bool,
) -> anyhow::Result<()> {
    let api = || api.ok_or_else(|| anyhow!("no API token: pass --token or --data-dir"));
    match command {
        StateCommand::Key {
            command: KeyCommand::Set { passphrase_file },
        } => {
            let passphrase = match passphrase_file {
                Some(path) => read_passphrase_file(path)?,
                None => ask_twice()?,
            };
            let (_, key) = api()?
                .send(
                    Method::PUT,
                    "/backups/state/key",
                    Some(&json!({ "passphrase": passphrase })),
                )
                .await?;
            print_or(as_json, &key, || {
                eprintln!(
                    "State backups are now sealed to key {} (keep the passphrase: it alone opens them).",
                    output::cell(key.get("fingerprint"))
                )
            })
        }
        StateCommand::Key {
            command: KeyCommand::Show,
        } => {
            let key = api()?.get("/backups/state/key").await?;
            print_or(as_json, &key, || {
                match key.get("configured").and_then(Value::as_bool) {
                    Some(true) => println!(
                        "key {} ({}), set {}",
                        output::cell(key.get("fingerprint")),
                        output::cell(key.get("kdf")),
                        output::cell(key.get("set_at"))
                    ),
                    _ => println!("no key set: `berth state key set`"),
                }
            })
        }
        StateCommand::Backup {
            destination,
            no_wait,
        } => {
            let api = api()?;
            let destination_id = resolve_destination(api, destination).await?;
            let body = json!({ "s3_source_id": destination_id });
            run_and_follow(
                api,
                "/backups/state/run",
                &body,
                *no_wait,
                as_json,
                |id, done| {
                    eprintln!(
                        "State backup {id} sealed and verified at {}",
                        output::cell(done.get("s3_location"))
                    )
                },
            )
            .await
        }
        StateCommand::List => {
            let backups = api()?.get("/backups/state").await?;
            if as_json {
                output::json(&backups);
            } else {
                output::table(
                    &backups.as_array().cloned().unwrap_or_default(),
                    &[
                        ("/id", "ID"),
                        ("/state", "STATE"),
                        ("/s3_location", "LOCATION"),
                        ("/size_bytes", "BYTES"),
                        ("/error_message", "ERROR"),
                    ],
                );
            }
            Ok(())
        }
        StateCommand::Restore {
            source,
            passphrase_file,
            check,
            force,
            endpoint,
            region,
        } => {
            let archive = read_archive(source, endpoint.as_deref(), region).await?;
            let (header, _) = sealed::read_header(&archive)?;
            eprintln!(
                "Backup of Berth instance {} taken {} by Berth {}, sealed to key {}",
                header.instance_id,
                header.created_at,
                header.berth_version,
                header.recipient.fingerprint()
            );
            let passphrase = match passphrase_file {
                Some(path) => read_passphrase_file(path)?,
                None => ask("Passphrase: ")?,
            };
            let restored = super::state_restore::restore(
                &archive,
                &passphrase,
                data_dir,
                super::state_restore::Mode {
                    check_only: *check,
                    force: *force,
                },
            )
            .await?;
            print_or(as_json, &json!(restored), || {
                let verb = if *check { "Checked" } else { "Restored" };
                eprintln!(
                    "{verb}: {} ({} services, {} projects); {}",
                    restored.files.join(", "),
                    restored.table_rows.get("services").copied().unwrap_or(0),
                    restored.table_rows.get("projects").copied().unwrap_or(0),
                    if *check {
                        "nothing was written".to_string()
                    } else {
                        format!(
                            "now start `berth serve` with --data-dir {}",
                            data_dir.display()
                        )
                    }
                )
            })
        }
    }
}

/// The archive's bytes, from a file or an S3 object (the newest state backup under a prefix).
async fn read_archive(
    source: &str,
    endpoint: Option<&str>,
    region: &str,
) -> anyhow::Result<Vec<u8>> {
    let Some(rest) = source.strip_prefix("s3://") else {
        return std::fs::read(source).with_context(|| format!("reading {source}"));
    };
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let endpoint = endpoint.ok_or_else(|| anyhow!("an s3:// source needs --endpoint"))?;
    let env = |name: &str| {
        std::env::var(name).map_err(|_| anyhow!("an s3:// source needs {name} in the environment"))
    };
    let client = S3Client::new(S3Endpoint {
        url: endpoint.to_string(),
        region: region.to_string(),
        access_key: env("AWS_ACCESS_KEY_ID")?,
        secret_key: env("AWS_SECRET_ACCESS_KEY")?,
    });
    let key = if key.ends_with(ARCHIVE_NAME) {
        key.to_string()
    } else {
        newest_archive(&client, bucket, key).await?
    };
    eprintln!("Reading s3://{bucket}/{key}");
    let response = client
        .get_object(bucket, &key, None)
        .await
        .map_err(|e| anyhow!("reading s3://{bucket}/{key}: {e}"))?
        .ok_or_else(|| anyhow!("s3://{bucket}/{key} does not exist"))?;
    Ok(response
        .bytes()
        .await
        .with_context(|| format!("reading s3://{bucket}/{key}"))?
        .to_vec())
}

/// The newest whole (manifest written) state backup under a destination's prefix.
async fn newest_archive(client: &S3Client, bucket: &str, prefix: &str) -> anyhow::Result<String> {
    use berth_core::backup::layout;
    let folder = layout::service_folder(
        prefix,
        berth_server::store::STATE_SERVICE_TYPE,
        berth_server::manager::backup::STATE_SERVICE_NAME,
        0,
    )?;
    let keys: Vec<String> = client
        .list_all(bucket, &folder)
        .await
        .map_err(|e| anyhow!("listing s3://{bucket}/{folder}: {e}"))?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let newest = layout::parse_listing(prefix, keys.iter().map(String::as_str))
        .into_iter()
        .filter(|b| b.has_manifest)
        .max_by(|a, b| a.backup_id.as_str().cmp(b.backup_id.as_str()))
        .ok_or_else(|| anyhow!("no finished state backup under s3://{bucket}/{folder}"))?;
    Ok(layout::object_key(&newest.folder, ARCHIVE_NAME)?)
}

fn read_passphrase_file(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text)?;
    } else {
        text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    // One trailing newline is the file's, not the passphrase's.
    let text = text.strip_suffix('\n').unwrap_or(&text);
    Ok(text.strip_suffix('\r').unwrap_or(text).to_string())
}

fn ask(prompt: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the passphrase on: pass --passphrase-file");
    }
    Ok(rpassword::prompt_password(prompt)?)
}

fn ask_twice() -> anyhow::Result<String> {
    let first = ask("New state backup passphrase: ")?;
    sealed::check_passphrase(&first)?;
    if ask("Again: ")? != first {
        bail!("the two passphrases differ; nothing was changed");
    }
    Ok(first)
}
