//! `berth backup schedule list|add|remove|enable|disable|run` and `berth backup prune`.

use anyhow::anyhow;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::backups::{follow, print_or, resolve_destination};
use super::{ApiClient, output, services};

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List schedules with their next and last runs.
    List,
    /// Add a schedule: back up one service (or every one) to a destination on a cron (UTC).
    Add {
        name: String,
        /// Destination name or id (`berth backup source list`).
        #[arg(long = "to", value_name = "DESTINATION")]
        destination: String,
        /// Cron in UTC: `0 3 * * *`, six fields with seconds first, or `@daily`.
        #[arg(long)]
        cron: String,
        /// Only this service (name or id); every service that can be backed up when left out.
        #[arg(long)]
        service: Option<String>,
        /// Back up Berth's own state instead of services (sealed to `berth state key set`).
        #[arg(long, conflicts_with_all = ["service", "verify"])]
        state: bool,
        /// Delete backups older than this many days (0: no age limit).
        #[arg(long, default_value_t = 0)]
        retention_days: i64,
        /// Keep the newest N succeeded backups whatever their age.
        #[arg(long)]
        keep_last: Option<i64>,
        /// Abort a backup still running after this many seconds.
        #[arg(long, value_name = "SECONDS")]
        max_runtime: Option<i64>,
        /// Verify each backup by restoring it into a throwaway service once it succeeded.
        #[arg(long)]
        verify: bool,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
        /// A tag for its backups (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a schedule (its backups stay).
    Remove { schedule: String },
    /// Enable a schedule from its next occurrence on.
    Enable { schedule: String },
    /// Disable a schedule.
    Disable { schedule: String },
    /// Run a schedule now and wait for its backups (its next run stays as it is).
    Run {
        schedule: String,
        /// Print the started backups without waiting.
        #[arg(long)]
        no_wait: bool,
    },
}

pub async fn run(command: &ScheduleCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        ScheduleCommand::List => {
            let schedules = api.get("/backups/schedules").await?;
            if as_json {
                output::json(&schedules);
            } else {
                let rows: Vec<Value> = schedules
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let mut row = s.clone();
                        row["next_run"] = json!(time_text(s.get("next_run")));
                        row["last_run"] = json!(time_text(s.get("last_run")));
                        row
                    })
                    .collect();
                output::table(
                    &rows,
                    &[
                        ("/id", "ID"),
                        ("/name", "NAME"),
                        ("/schedule_expression", "CRON"),
                        ("/enabled", "ENABLED"),
                        ("/service_id", "SERVICE"),
                        ("/s3_source_id", "DESTINATION"),
                        ("/retention_period", "DAYS"),
                        ("/keep_last", "KEEP"),
                        ("/next_run", "NEXT RUN"),
                        ("/last_run", "LAST RUN"),
                        ("/last_error", "ERROR"),
                    ],
                );
            }
        }
        ScheduleCommand::Add {
            name,
            destination,
            cron,
            service,
            state,
            retention_days,
            keep_last,
            max_runtime,
            verify,
            disabled,
            tags,
            description,
        } => {
            let mut body = json!({
                "name": name,
                "backup_type": "full",
                "retention_period": retention_days,
                "s3_source_id": resolve_destination(api, destination).await?,
                "schedule_expression": cron,
                "enabled": !disabled,
                "tags": tags,
                "verify": verify,
            });
            if let Some(service) = service {
                body["service_id"] = json!(services::resolve(api, service).await?);
            }
            if *state {
                body["target"] = json!("berth_state");
            }
            if let Some(n) = keep_last {
                body["keep_last"] = json!(n);
            }
            if let Some(secs) = max_runtime {
                body["max_runtime_secs"] = json!(secs);
            }
            if let Some(text) = description {
                body["description"] = json!(text);
            }
            let (_, created) = api.post("/backups/schedules", &body).await?;
            print_or(as_json, &created, || {
                eprintln!(
                    "Schedule {name:?} added (id {}); next run {}.",
                    output::cell(created.get("id")),
                    time_text(created.get("next_run"))
                )
            })?;
        }
        ScheduleCommand::Remove { schedule } => {
            let id = resolve_schedule(api, schedule).await?;
            api.send(
                Method::DELETE,
                &format!("/backups/schedules/{id}"),
                None::<&Value>,
            )
            .await?;
            if !as_json {
                eprintln!("Schedule {id} removed; its backups stay.");
            }
        }
        ScheduleCommand::Enable { schedule } | ScheduleCommand::Disable { schedule } => {
            let enable = matches!(command, ScheduleCommand::Enable { .. });
            let id = resolve_schedule(api, schedule).await?;
            let action = if enable { "enable" } else { "disable" };
            let (_, changed) = api
                .send(
                    Method::PATCH,
                    &format!("/backups/schedules/{id}/{action}"),
                    None::<&Value>,
                )
                .await?;
            print_or(as_json, &changed, || match enable {
                true => eprintln!(
                    "Schedule {id} enabled; next run {}.",
                    time_text(changed.get("next_run"))
                ),
                false => eprintln!("Schedule {id} disabled."),
            })?;
        }
        ScheduleCommand::Run { schedule, no_wait } => {
            let id = resolve_schedule(api, schedule).await?;
            let (_, started) = api
                .post(&format!("/backups/schedules/{id}/run"), &json!({}))
                .await?;
            for error in started
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                eprintln!(
                    "service {}: not started: {}",
                    output::cell(error.get("service_id")),
                    output::cell(error.get("error"))
                );
            }
            let ids: Vec<i64> = started
                .get("backups")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|b| b.get("id").and_then(Value::as_i64))
                .collect();
            if *no_wait {
                return print_or(as_json, &started, || {
                    for id in &ids {
                        println!("{id}");
                    }
                });
            }
            let mut done = Vec::new();
            let mut failed = 0;
            for backup in ids {
                match follow(api, backup).await {
                    Ok(b) => {
                        if !as_json {
                            eprintln!(
                                "Backup {backup} of {} verified at {}",
                                output::cell(b.get("service_name")),
                                output::cell(b.get("s3_location"))
                            );
                        }
                        done.push(b);
                    }
                    Err(e) => {
                        eprintln!("{e}");
                        failed += 1;
                    }
                }
            }
            if as_json {
                output::json(&Value::Array(done));
            }
            if failed > 0 {
                return Err(anyhow!("{failed} backup(s) of schedule {id} failed"));
            }
        }
    }
    Ok(())
}

/// `berth backup prune [--to DEST] [--service S] [--dry-run]`.
pub async fn prune(
    api: &ApiClient,
    destination: Option<&str>,
    service: Option<&str>,
    dry_run: bool,
    as_json: bool,
) -> anyhow::Result<()> {
    let destination_id = match destination {
        Some(destination) => Some(resolve_destination(api, destination).await?),
        None => None,
    };
    let service_id = match service {
        Some(service) => Some(services::resolve(api, service).await?),
        None => None,
    };
    let result = if dry_run {
        let query: Vec<String> = [("s3_source_id", destination_id), ("service_id", service_id)]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
            .collect();
        api.get(&format!("/backups/retention?{}", query.join("&")))
            .await?
    } else {
        let body = json!({ "s3_source_id": destination_id, "service_id": service_id });
        api.post("/backups/retention", &body).await?.1
    };
    if as_json {
        output::json(&result);
        return Ok(());
    }
    let verb = if dry_run { "would delete" } else { "deleted" };
    let mut errors = 0;
    for destination in result
        .get("destinations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = output::cell(destination.get("s3_source_id"));
        if let Some(error) = destination.get("error").and_then(Value::as_str) {
            eprintln!("destination {id}: {error}");
            errors += 1;
            continue;
        }
        for service in destination
            .get("services")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let deleted = service.get("delete").and_then(Value::as_array);
            let kept = service.get("keep").and_then(Value::as_array);
            eprintln!(
                "destination {id}, {} (service {}): keeps {}, {verb} {}",
                output::cell(service.get("service_name")),
                output::cell(service.get("service_id")),
                kept.map_or(0, Vec::len),
                deleted.map_or(0, Vec::len)
            );
            for (list, word) in [(deleted, verb), (kept, "keeps")] {
                for b in list.into_iter().flatten() {
                    eprintln!(
                        "  {word} {} ({}): {}",
                        output::cell(b.get("backup_id")),
                        output::cell(b.get("state")),
                        output::cell(b.get("reason"))
                    );
                }
            }
            for error in service
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                eprintln!("  error: {}", output::cell(Some(error)));
                errors += 1;
            }
        }
    }
    if errors > 0 {
        return Err(anyhow!(
            "{errors} problem(s) while pruning; the next prune tries again"
        ));
    }
    Ok(())
}

async fn resolve_schedule(api: &ApiClient, schedule: &str) -> anyhow::Result<i64> {
    api.resolve_id(
        "/backups/schedules",
        "name",
        schedule,
        format!("no backup schedule named {schedule:?}"),
    )
    .await
}

/// Epoch milliseconds as RFC 3339 (UTC), `-` when absent.
fn time_text(ms: Option<&Value>) -> String {
    ms.and_then(Value::as_i64)
        .and_then(berth_core::backup::manifest::rfc3339_utc)
        .unwrap_or_else(|| "-".into())
}
