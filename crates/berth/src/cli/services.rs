//! `berth service create|list|show|start|stop|health|update|upgrade|reveal|delete`.
//! Services are named by id or by name.

use anyhow::anyhow;
use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Create a service and wait until it accepts connections.
    Create {
        /// postgres, redis, mongodb or s3 (`GET /api/external-services/types` lists them)
        service_type: String,
        name: String,
        /// Parameter as key=value; repeat for several.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
    },
    /// List services.
    List,
    /// Show a service (secrets masked).
    Show { service: String },
    /// Show a service with its credentials in clear.
    Reveal { service: String },
    /// Start a stopped service.
    Start { service: String },
    /// Stop a service (its data is kept).
    Stop { service: String },
    /// Check that a service accepts connections (warnings too).
    Health { service: String },
    /// Start a service whose data volume is missing again, with EMPTY data (the only way
    /// out of `data_missing` besides restoring the volume).
    Recreate {
        service: String,
        /// Confirms that the service starts with empty data.
        #[arg(long)]
        yes_empty_data: bool,
    },
    /// Change editable parameters.
    Update {
        service: String,
        #[arg(long = "param", value_name = "KEY=VALUE", required = true)]
        params: Vec<String>,
    },
    /// Swap the image (same major version), keeping the data; with --dump-restore, move a
    /// PostgreSQL service to a newer major (the old data is kept until upgrade-finalize).
    Upgrade {
        service: String,
        docker_image: String,
        /// Dump and restore into a new volume, verified before the switch (PostgreSQL majors).
        #[arg(long)]
        dump_restore: bool,
    },
    /// Go back to the version before the last major upgrade.
    UpgradeRollback { service: String },
    /// Keep the last major upgrade: the old version's volume is removed.
    UpgradeFinalize { service: String },
    /// Delete a service, its container and (unless --keep-data) its volume. An imported
    /// service is only forgotten: its container and volumes stay (see --remove-container).
    Delete {
        service: String,
        #[arg(long)]
        keep_data: bool,
        /// Delete it even while projects are linked (they are unlinked; their databases go
        /// with the volume unless --keep-data).
        #[arg(long)]
        force: bool,
        /// For an imported service: also stop and remove the container it was imported from
        /// (never its volumes).
        #[arg(long)]
        remove_container: bool,
    },
    /// Hand an imported service over to Berth: its container is stopped and kept (renamed
    /// `<name>-before-berth`), and Berth runs its own on the same volume.
    Adopt { service: String },
    /// List containers Berth did not make that run PostgreSQL, Redis, MongoDB or an S3
    /// server, for `berth service import`.
    Importable,
    /// Import a container you already run as a service. Berth verifies the credentials by
    /// connecting, then starts, stops, checks, links and backs it up, but never recreates or
    /// removes it. In a terminal, asks for what is missing (a picker for the container,
    /// credentials without echo).
    Import {
        /// Container name or id (`berth service importable` lists them).
        container: Option<String>,
        /// The service's name in Berth (default: the container's name).
        #[arg(long)]
        name: Option<String>,
        /// postgres, redis, mongodb or s3 (default: what Berth recognised).
        #[arg(long = "type", value_name = "TYPE")]
        service_type: Option<String>,
        /// Parameter as key=value (`port`, `username`, `database`); repeat for several.
        #[arg(long = "param", value_name = "KEY=VALUE")]
        params: Vec<String>,
        /// Parameter read from a file's first line, for secrets (`password=/run/pg-pass`).
        #[arg(long = "param-file", value_name = "KEY=FILE")]
        param_files: Vec<String>,
    },
    /// List the service types and their parameters.
    Types,
    /// Link a service to a project: each environment gets its own database and credentials.
    Link { service: String, project: String },
    /// Stop injecting a service into a project (its data and credentials are kept).
    Unlink {
        service: String,
        project: String,
        /// Also turn the project's logins off now (running applications lose access).
        #[arg(long)]
        revoke: bool,
    },
    /// List the projects a service is linked to.
    Links { service: String },
}

const LIST_COLUMNS: &[(&str, &str)] = &[
    ("/id", "ID"),
    ("/name", "NAME"),
    ("/service_type", "TYPE"),
    ("/status", "STATUS"),
    ("/parameters/port", "PORT"),
    ("/parameters/docker_image", "IMAGE"),
    ("/host", "HOST"),
];

fn parse_params(raw: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut map = Map::new();
    for item in raw {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("--param {item:?} is not KEY=VALUE"))?;
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(map)
}

/// Resolves a service given by id or name to its id.
pub(super) async fn resolve(api: &ApiClient, service: &str) -> anyhow::Result<i64> {
    api.resolve_id(
        "/external-services",
        "name",
        service,
        format!("no service named {service:?}"),
    )
    .await
}

/// Runs a long operation with a spinner, then prints the service.
async fn operation(
    api: &ApiClient,
    method: Method,
    path: &str,
    body: Option<&Value>,
    action: &str,
    id: Option<i64>,
    as_json: bool,
) -> anyhow::Result<()> {
    let (status, answer) = api.send_async(method, path, body).await?;
    let id = if status == StatusCode::ACCEPTED {
        api.follow_operation(&answer, action).await?;
        id.or_else(|| answer.pointer("/service/id").and_then(Value::as_i64))
    } else {
        // Answered synchronously after all (a server without Prefer support): the service.
        id.or_else(|| answer.get("id").and_then(Value::as_i64))
    };
    match id {
        Some(id) => {
            let details = api.get(&format!("/external-services/{id}")).await?;
            output::print(service_of(&details), as_json);
        }
        None => eprintln!("{action}: done"),
    }
    Ok(())
}

pub async fn run(command: &ServiceCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        ServiceCommand::Create {
            service_type,
            name,
            params,
        } => {
            let body = json!({ "name": name, "service_type": service_type, "parameters": parse_params(params)? });
            operation(
                api,
                Method::POST,
                "/external-services",
                Some(&body),
                &format!("creating {name}"),
                None,
                as_json,
            )
            .await
        }
        ServiceCommand::List => {
            let list = api.get("/external-services").await?;
            if as_json {
                output::json(&list);
            } else {
                output::table(
                    list.as_array().map(Vec::as_slice).unwrap_or_default(),
                    LIST_COLUMNS,
                );
            }
            Ok(())
        }
        ServiceCommand::Show { service } => {
            let id = resolve(api, service).await?;
            let details = api.get(&format!("/external-services/{id}")).await?;
            if as_json {
                output::json(&details);
            } else {
                output::details(service_of(&details));
            }
            Ok(())
        }
        ServiceCommand::Reveal { service } => {
            let id = resolve(api, service).await?;
            output::print(
                &api.get(&format!("/external-services/{id}/reveal")).await?,
                as_json,
            );
            Ok(())
        }
        ServiceCommand::Start { service } => {
            let id = resolve(api, service).await?;
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/start"),
                None,
                &format!("starting {service}"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::Stop { service } => {
            let id = resolve(api, service).await?;
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/stop"),
                None,
                &format!("stopping {service}"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::Recreate {
            service,
            yes_empty_data,
        } => {
            if !yes_empty_data {
                return Err(anyhow!(
                    "recreate starts {service} with EMPTY data; pass --yes-empty-data to confirm"
                ));
            }
            let id = resolve(api, service).await?;
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/recreate"),
                None,
                &format!("recreating {service} with empty data"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::Health { service } => {
            let id = resolve(api, service).await?;
            let report = api
                .get(&format!("/external-services/{id}/health?detail=true"))
                .await?;
            output::print(&report, as_json);
            if let Some(warnings) = report.get("warnings").and_then(Value::as_array) {
                for warning in warnings {
                    eprintln!("warning: {}", output::cell(Some(warning)));
                }
            }
            if report.get("healthy") != Some(&Value::Bool(true)) {
                return Err(anyhow!(
                    "{service} is {}: {}",
                    output::cell(report.get("status")),
                    output::cell(report.get("message"))
                ));
            }
            Ok(())
        }
        ServiceCommand::Update { service, params } => {
            let id = resolve(api, service).await?;
            let body = json!({ "parameters": parse_params(params)? });
            operation(
                api,
                Method::PUT,
                &format!("/external-services/{id}"),
                Some(&body),
                &format!("updating {service}"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::UpgradeRollback { service } => {
            let id = resolve(api, service).await?;
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/upgrade/rollback"),
                None,
                &format!("rolling {service} back"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::UpgradeFinalize { service } => {
            let id = resolve(api, service).await?;
            let (_, view) = api
                .post(
                    &format!("/external-services/{id}/upgrade/finalize"),
                    &json!({}),
                )
                .await?;
            output::print(&view, as_json);
            Ok(())
        }
        ServiceCommand::Upgrade {
            service,
            docker_image,
            dump_restore,
        } => {
            let id = resolve(api, service).await?;
            let mode = if *dump_restore {
                "dump_restore"
            } else {
                "image_swap"
            };
            let body = json!({ "docker_image": docker_image, "mode": mode });
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/upgrade"),
                Some(&body),
                &format!("upgrading {service}"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::Adopt { service } => {
            let id = resolve(api, service).await?;
            operation(
                api,
                Method::POST,
                &format!("/external-services/{id}/adopt"),
                None,
                &format!("adopting {service}"),
                Some(id),
                as_json,
            )
            .await
        }
        ServiceCommand::Importable => super::import::list(api, as_json).await,
        ServiceCommand::Import {
            container,
            name,
            service_type,
            params,
            param_files,
        } => {
            let args = super::import::ImportArgs {
                container: container.as_deref(),
                name: name.as_deref(),
                service_type: service_type.as_deref(),
                params: parse_params(params)?,
                param_files,
            };
            super::import::import(api, args, as_json).await
        }
        ServiceCommand::Delete {
            service,
            keep_data,
            force,
            remove_container,
        } => {
            let id = resolve(api, service).await?;
            let path = format!(
                "/external-services/{id}?keep_data={keep_data}&force={force}\
                 &remove_container={remove_container}"
            );
            let (status, accepted) = api
                .send_async(Method::DELETE, &path, None::<&Value>)
                .await?;
            if status == StatusCode::ACCEPTED {
                api.follow_operation(&accepted, &format!("deleting {service}"))
                    .await?;
            }
            if !as_json {
                eprintln!(
                    "Service {service} deleted{}.",
                    if *keep_data { " (volume kept)" } else { "" }
                );
            }
            Ok(())
        }
        ServiceCommand::Link { service, project } => {
            let id = resolve(api, service).await?;
            let project_id = super::env::project_id(api, project).await?;
            let (_, link) = api
                .post(
                    &format!("/external-services/{id}/projects"),
                    &json!({ "project_id": project_id }),
                )
                .await?;
            if as_json {
                output::json(&link);
            } else {
                eprintln!("Linked {service} to {project}.");
                output::table(
                    link.get("environments")
                        .and_then(Value::as_array)
                        .map(Vec::as_slice)
                        .unwrap_or_default(),
                    &[
                        ("/environment", "ENVIRONMENT"),
                        ("/resource_name", "DATABASE/USER"),
                        ("/resource_number", "NUMBER"),
                        ("/provisioned", "PROVISIONED"),
                    ],
                );
            }
            Ok(())
        }
        ServiceCommand::Unlink {
            service,
            project,
            revoke,
        } => {
            let id = resolve(api, service).await?;
            let project_id = super::env::project_id(api, project).await?;
            let query = if *revoke { "?revoke=true" } else { "" };
            api.send(
                Method::DELETE,
                &format!("/external-services/{id}/projects/{project_id}{query}"),
                None::<&Value>,
            )
            .await?;
            if !as_json {
                eprintln!(
                    "Unlinked {service} from {project}; its data and credentials are kept for a re-link{}.",
                    if *revoke {
                        " (logins turned off until then)"
                    } else {
                        ""
                    }
                );
            }
            Ok(())
        }
        ServiceCommand::Links { service } => {
            let id = resolve(api, service).await?;
            let links = api
                .get(&format!("/external-services/{id}/projects"))
                .await?;
            if as_json {
                output::json(&links);
            } else {
                output::table(
                    links.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("/project/id", "PROJECT ID"),
                        ("/project/slug", "PROJECT"),
                        ("/linked_at", "LINKED"),
                        ("/environments", "ENVIRONMENTS"),
                    ],
                );
            }
            Ok(())
        }
        ServiceCommand::Types => {
            let names = api.get("/external-services/types").await?;
            let mut schemas = serde_json::Map::new();
            for name in names
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let schema = api
                    .get(&format!("/external-services/types/{name}/parameters"))
                    .await?;
                schemas.insert(name.to_string(), schema);
            }
            if as_json {
                output::json(&Value::Object(schemas));
                return Ok(());
            }
            for (name, schema) in &schemas {
                println!(
                    "{name} (default image {})",
                    output::cell(schema.pointer("/properties/docker_image/default"))
                );
                let rows: Vec<Value> = schema
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(param, spec)| {
                        json!({
                            "name": param,
                            "default": spec.get("default"),
                            "editable": spec.get("x-editable"),
                            "secret": spec.get("x-secret").unwrap_or(&Value::Bool(false)),
                            "description": spec.get("description"),
                        })
                    })
                    .collect();
                output::table(
                    &rows,
                    &[
                        ("/name", "PARAMETER"),
                        ("/default", "DEFAULT"),
                        ("/editable", "EDITABLE"),
                        ("/secret", "SECRET"),
                        ("/description", "DESCRIPTION"),
                    ],
                );
            }
            Ok(())
        }
    }
}

/// The service object of a `GET /external-services/{id}` answer (`{service, current_parameters,
/// parameter_schema}`).
fn service_of(details: &Value) -> &Value {
    details.get("service").unwrap_or(details)
}
