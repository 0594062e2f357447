//! `berth project create|list|show|delete|env-add`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project (environment `production` unless --env is given).
    Create {
        name: String,
        #[arg(long)]
        slug: Option<String>,
        /// Environment name; repeat for several.
        #[arg(long = "env")]
        environments: Vec<String>,
    },
    /// List projects.
    List,
    /// Show one project.
    Show { id: i64 },
    /// Delete a project.
    Delete { id: i64 },
    /// Add an environment to a project.
    EnvAdd { id: i64, name: String },
}

pub async fn run(command: &ProjectCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create {
            name,
            slug,
            environments,
        } => {
            let mut body = json!({ "name": name });
            if let Some(slug) = slug {
                body["slug"] = json!(slug);
            }
            if !environments.is_empty() {
                body["environments"] = json!(environments);
            }
            let (_, project) = api.post("/projects", &body).await?;
            output::print(&project, as_json);
        }
        ProjectCommand::List => {
            let projects = api.get("/projects").await?;
            if as_json {
                output::json(&projects);
            } else {
                output::table(
                    projects.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("/id", "ID"),
                        ("/name", "NAME"),
                        ("/slug", "SLUG"),
                        ("/environments", "ENVIRONMENTS"),
                        ("/created_at", "CREATED"),
                    ],
                );
            }
        }
        ProjectCommand::Show { id } => {
            output::print(&api.get(&format!("/projects/{id}")).await?, as_json)
        }
        ProjectCommand::Delete { id } => {
            api.send(Method::DELETE, &format!("/projects/{id}"), None::<&Value>)
                .await?;
            if !as_json {
                eprintln!("Project {id} deleted.");
            }
        }
        ProjectCommand::EnvAdd { id, name } => {
            let (_, project) = api
                .post(
                    &format!("/projects/{id}/environments"),
                    &json!({ "name": name }),
                )
                .await?;
            output::print(&project, as_json);
        }
    }
    Ok(())
}
