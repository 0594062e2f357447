//! `berth backup run|list|show`, `berth backup source list|add|test|remove`, and (in
//! `schedules.rs`) `berth backup schedule ...` and `berth backup prune`. A run shows a
//! progress bar in bytes read from the service while it dumps and uploads.

use std::time::Duration;

use anyhow::{anyhow, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, output, schedules, services};

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back a service up now; waits until the backup is verified on the destination.
    Run {
        /// Service name or id.
        service: String,
        /// Destination name or id (`berth backup source list`).
        #[arg(long = "to", value_name = "DESTINATION")]
        destination: String,
        /// Start it and print its id without waiting.
        #[arg(long)]
        no_wait: bool,
    },
    /// List backups, newest first.
    List {
        /// Only this service's (name or id).
        #[arg(long)]
        service: Option<String>,
        /// Only those in this destination (name or id).
        #[arg(long)]
        destination: Option<String>,
    },
    /// One backup with its manifest.
    Show { id: i64 },
    /// Restore a backup into a new service (`--new NAME`) or over a service (`--into`).
    Restore {
        /// Backup id.
        id: i64,
        /// Name of a new service to restore into.
        #[arg(long = "new", value_name = "NAME", conflicts_with = "into")]
        new_service: Option<String>,
        /// Restore over this service (name or id); a safety backup is taken first.
        #[arg(long, value_name = "SERVICE", required_unless_present = "new_service")]
        into: Option<String>,
        /// Only this database of the backup (one project's).
        #[arg(long)]
        database: Option<String>,
        /// Allow restoring another service's backup over this one.
        #[arg(long)]
        confirm_cross_service: bool,
    },
    /// Restore a backup into a throwaway service and compare it with its manifest.
    Verify { id: i64 },
    /// Backup destinations (S3-compatible endpoints or Berth S3 services).
    Source {
        #[command(subcommand)]
        command: SourceCommand,
    },
    /// Backup schedules (cron, UTC) and their retention.
    Schedule {
        #[command(subcommand)]
        command: schedules::ScheduleCommand,
    },
    /// Apply retention (each destination's schedules' `--retention-days` and `--keep-last`;
    /// the newest succeeded backup of a service is always kept).
    Prune {
        /// Only this destination (name or id); every one when left out.
        #[arg(long = "to", value_name = "DESTINATION")]
        destination: Option<String>,
        /// Only this service's backups (name or id).
        #[arg(long)]
        service: Option<String>,
        /// Show what would be deleted, and why, without deleting.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// List destinations (secret keys masked).
    List,
    /// Add a destination: `--service` for a Berth S3 service, or an endpoint and keys.
    Add {
        name: String,
        #[arg(long)]
        bucket: String,
        /// Prefix inside the bucket.
        #[arg(long, default_value = "")]
        path: String,
        /// A Berth-managed S3 service (name or id) holding the bucket.
        #[arg(long, conflicts_with_all = ["endpoint", "access_key"])]
        service: Option<String>,
        /// `https://host:port` of an S3-compatible server (AWS when left out).
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long, requires = "secret_key_env")]
        access_key: Option<String>,
        /// The environment variable holding the secret key (never a command-line argument,
        /// which `ps` and shell history would show).
        #[arg(long, value_name = "VARIABLE")]
        secret_key_env: Option<String>,
        /// Virtual-hosted addressing (`bucket.host`) instead of path style.
        #[arg(long)]
        virtual_hosted: bool,
    },
    /// Write, read back and delete a probe object.
    Test { destination: String },
    /// Remove a destination that holds no recorded backup.
    Remove { destination: String },
}

pub async fn run(command: &BackupCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        BackupCommand::Run {
            service,
            destination,
            no_wait,
        } => {
            let service_id = services::resolve(api, service).await?;
            let destination_id = resolve_destination(api, destination).await?;
            let path = format!("/backups/external-services/{service_id}/run");
            let body = json!({ "s3_source_id": destination_id });
            run_and_follow(api, &path, &body, *no_wait, as_json, |id, done| {
                eprintln!(
                    "Backup {id} of {} verified: {} in {} object(s) at {}",
                    output::cell(done.get("service_name")),
                    human_bytes(done.get("size_bytes").and_then(Value::as_u64).unwrap_or(0)),
                    output::cell(done.get("file_count")),
                    output::cell(done.get("s3_location"))
                )
            })
            .await
        }
        BackupCommand::List {
            service,
            destination,
        } => {
            let backups = match (service, destination) {
                (Some(service), _) => {
                    let id = services::resolve(api, service).await?;
                    api.get(&format!("/external-services/{id}/backups")).await?
                }
                (None, Some(destination)) => {
                    let id = resolve_destination(api, destination).await?;
                    api.get(&format!("/backups/s3-sources/{id}/backups"))
                        .await?
                        .get("backups")
                        .cloned()
                        .unwrap_or(Value::Null)
                }
                (None, None) => all_backups(api).await?,
            };
            if as_json {
                output::json(&backups);
            } else {
                output::table(
                    backups.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("/id", "ID"),
                        ("/service_name", "SERVICE"),
                        ("/state", "STATE"),
                        ("/size_bytes", "BYTES"),
                        ("/compression_type", "COMPRESSION"),
                        ("/s3_location", "LOCATION"),
                        ("/error_message", "ERROR"),
                    ],
                );
            }
            Ok(())
        }
        BackupCommand::Show { id } => {
            let backup = api.get(&format!("/backups/{id}")).await?;
            output::print(&backup, as_json);
            Ok(())
        }
        BackupCommand::Restore {
            id,
            new_service,
            into,
            database,
            confirm_cross_service,
        } => {
            let (path, mut body) = match (new_service, into) {
                (Some(name), _) => (
                    format!("/backups/{id}/restore"),
                    json!({"mode": "new_service", "name": name}),
                ),
                (None, Some(service)) => {
                    let service_id = services::resolve(api, service).await?;
                    (
                        format!("/external-services/{service_id}/restore"),
                        json!({"backup_id": id, "mode": "in_place",
                               "confirm_cross_service": confirm_cross_service}),
                    )
                }
                (None, None) => bail!("give --new NAME or --into SERVICE"),
            };
            if let Some(database) = database {
                body["database"] = json!(database);
            }
            let (_, run) = api.post(&path, &body).await?;
            let run_id = run
                .get("id")
                .and_then(Value::as_i64)
                .ok_or_else(|| anyhow!("the server did not return a restore run"))?;
            let done = follow_restore(api, run_id).await?;
            print_or(as_json, &done, || {
                eprintln!(
                    "Restore run {run_id} succeeded into service {}.",
                    output::cell(done.get("target_service_name"))
                )
            })
        }
        BackupCommand::Verify { id } => {
            api.send_async(
                Method::POST,
                &format!("/backups/{id}/verify"),
                None::<&Value>,
            )
            .await?;
            let bar = spinner();
            let done = loop {
                let backup = api.get(&format!("/backups/{id}")).await?;
                let verify = backup
                    .pointer("/metadata/verify")
                    .cloned()
                    .unwrap_or(Value::Null);
                bar.set_message(format!(
                    "verifying backup {id}: {}",
                    output::cell(verify.get("message"))
                ));
                if verify.get("state").and_then(Value::as_str) != Some("running") {
                    break verify;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            bar.finish_and_clear();
            if done.get("state").and_then(Value::as_str) != Some("succeeded") {
                bail!(
                    "backup {id} did not verify: {}",
                    output::cell(done.get("message"))
                );
            }
            print_or(as_json, &done, || {
                eprintln!("{}", output::cell(done.get("message")))
            })
        }
        BackupCommand::Source { command } => source(command, api, as_json).await,
        BackupCommand::Schedule { command } => schedules::run(command, api, as_json).await,
        BackupCommand::Prune {
            destination,
            service,
            dry_run,
        } => {
            let (destination, service) = (destination.as_deref(), service.as_deref());
            schedules::prune(api, destination, service, *dry_run, as_json).await
        }
    }
}

/// Follows a restore run to its end with a spinner showing its phase.
async fn follow_restore(api: &ApiClient, id: i64) -> anyhow::Result<Value> {
    let bar = spinner();
    loop {
        let run = api.get(&format!("/restore-runs/{id}")).await?;
        bar.set_message(format!("restore {id}: {}", output::cell(run.get("phase"))));
        match run.get("status").and_then(Value::as_str) {
            Some("running") => tokio::time::sleep(Duration::from_millis(250)).await,
            Some("succeeded") => {
                bar.finish_and_clear();
                return Ok(run);
            }
            _ => {
                bar.finish_and_clear();
                bail!(
                    "restore run {id} {}: {}",
                    output::cell(run.get("status")),
                    output::cell(run.get("error_message"))
                );
            }
        }
    }
}

fn spinner() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

async fn source(command: &SourceCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        SourceCommand::List => {
            let sources = api.get("/backups/s3-sources").await?;
            if as_json {
                output::json(&sources);
            } else {
                output::table(
                    sources.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("/id", "ID"),
                        ("/name", "NAME"),
                        ("/bucket_name", "BUCKET"),
                        ("/bucket_path", "PATH"),
                        ("/endpoint", "ENDPOINT"),
                        ("/service_id", "SERVICE"),
                    ],
                );
            }
        }
        SourceCommand::Add {
            name,
            bucket,
            path,
            service,
            endpoint,
            region,
            access_key,
            secret_key_env,
            virtual_hosted,
        } => {
            let mut body = json!({
                "name": name,
                "bucket_name": bucket,
                "bucket_path": path,
                "region": region,
                "force_path_style": !virtual_hosted,
            });
            match service {
                Some(service) => body["service_id"] = json!(services::resolve(api, service).await?),
                None => {
                    let (Some(key), Some(variable)) = (access_key, secret_key_env) else {
                        bail!("give --service, or --access-key and --secret-key-env");
                    };
                    let secret = std::env::var(variable)
                        .map_err(|_| anyhow!("environment variable {variable} is not set"))?;
                    body["access_key_id"] = json!(key);
                    body["secret_key"] = json!(secret);
                    if let Some(endpoint) = endpoint {
                        body["endpoint"] = json!(endpoint);
                    }
                }
            }
            let (_, created) = api.post("/backups/s3-sources", &body).await?;
            print_or(as_json, &created, || {
                eprintln!(
                    "Destination {name:?} added (id {}).",
                    output::cell(created.get("id"))
                )
            })?;
        }
        SourceCommand::Test { destination } => {
            let id = resolve_destination(api, destination).await?;
            let (_, tested) = api
                .post(&format!("/backups/s3-sources/{id}/test"), &json!({}))
                .await?;
            print_or(as_json, &tested, || {
                eprintln!("{}", output::cell(tested.get("message")))
            })?;
        }
        SourceCommand::Remove { destination } => {
            let id = resolve_destination(api, destination).await?;
            api.send(
                Method::DELETE,
                &format!("/backups/s3-sources/{id}"),
                None::<&Value>,
            )
            .await?;
            if !as_json {
                eprintln!("Destination {id} removed.");
            }
        }
    }
    Ok(())
}

/// Starts a backup run (`POST path` with `body`) and, unless `no_wait`, follows it to its end
/// with a progress bar; `done` says what succeeded (the JSON goes out as is with `--json`).
pub(super) async fn run_and_follow(
    api: &ApiClient,
    path: &str,
    body: &Value,
    no_wait: bool,
    as_json: bool,
    done: impl FnOnce(i64, &Value),
) -> anyhow::Result<()> {
    let (_, started) = api.send_async(Method::POST, path, Some(body)).await?;
    let id = started
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| anyhow!("the server did not return a backup"))?;
    if no_wait {
        return print_or(as_json, &started, || println!("{id}"));
    }
    let ended = follow(api, id).await?;
    print_or(as_json, &ended, || done(id, &ended))
}

/// Polls a running backup with a byte counter until it ends; its error if it failed.
pub(super) async fn follow(api: &ApiClient, id: i64) -> anyhow::Result<Value> {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} read ({bytes_per_sec}) [{elapsed}]")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    loop {
        let backup = api.get(&format!("/backups/{id}")).await?;
        if let Some(bytes) = backup.get("progress_bytes").and_then(Value::as_u64) {
            bar.set_position(bytes);
        }
        bar.set_message(output::cell(backup.get("step")));
        match backup.get("state").and_then(Value::as_str) {
            Some("running") => tokio::time::sleep(Duration::from_millis(250)).await,
            Some("succeeded") => {
                bar.finish_and_clear();
                return Ok(backup);
            }
            _ => {
                bar.finish_and_clear();
                bail!(
                    "backup {id} failed: {}",
                    output::cell(backup.get("error_message"))
                );
            }
        }
    }
}

pub(super) async fn resolve_destination(api: &ApiClient, destination: &str) -> anyhow::Result<i64> {
    api.resolve_id(
        "/backups/s3-sources",
        "name",
        destination,
        format!("no backup destination named {destination:?}"),
    )
    .await
}

/// Every destination's backups, newest first.
async fn all_backups(api: &ApiClient) -> anyhow::Result<Value> {
    let mut all = Vec::new();
    for source in api
        .get("/backups/s3-sources")
        .await?
        .as_array()
        .into_iter()
        .flatten()
    {
        let Some(id) = source.get("id").and_then(Value::as_i64) else {
            continue;
        };
        let listed = api
            .get(&format!("/backups/s3-sources/{id}/backups"))
            .await?;
        all.extend(
            listed
                .get("backups")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    all.sort_by_key(|b| std::cmp::Reverse(b.get("started_at").and_then(Value::as_i64)));
    Ok(Value::Array(all))
}

pub(super) fn print_or(as_json: bool, value: &Value, human: impl FnOnce()) -> anyhow::Result<()> {
    if as_json {
        output::json(value);
    } else {
        human();
    }
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}
