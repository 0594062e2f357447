//! `berth token create|list|revoke`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, now. Admin unless --read-only or --project.
    Create {
        name: String,
        /// The token may only read (GET), on every route.
        #[arg(long, conflicts_with = "project")]
        read_only: bool,
        /// Bind the token to one project: it may only read that project and its variables.
        #[arg(long, value_name = "SLUG_OR_ID")]
        project: Option<String>,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run(command: &TokenCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create {
            name,
            read_only,
            project,
        } => {
            let mut body = json!({ "name": name });
            if *read_only {
                body["scope"] = json!("read_only");
            }
            if let Some(project) = project {
                body["scope"] = json!("project");
                body["project_id"] = json!(super::env::project_id(api, project).await?);
            }
            let (_, token) = api.post("/tokens", &body).await?;
            if as_json {
                output::json(&token);
            } else {
                let scope = match token.get("project_id").and_then(Value::as_i64) {
                    Some(project) => format!("project {project}"),
                    None => output::cell(token.get("scope")),
                };
                eprintln!(
                    "Token {:?} created (id {}, scope {scope}). It is shown only once:",
                    name,
                    output::cell(token.get("id"))
                );
                println!("{}", output::cell(token.get("token")));
            }
        }
        TokenCommand::List => {
            let tokens = api.get("/tokens").await?;
            if as_json {
                output::json(&tokens);
            } else {
                output::table(
                    tokens.as_array().map(Vec::as_slice).unwrap_or_default(),
                    &[
                        ("/id", "ID"),
                        ("/name", "NAME"),
                        ("/scope", "SCOPE"),
                        ("/project_id", "PROJECT"),
                        ("/created_at", "CREATED"),
                        ("/last_used_at", "LAST USED"),
                        ("/revoked_at", "REVOKED"),
                    ],
                );
            }
        }
        TokenCommand::Revoke { id } => {
            api.send(Method::DELETE, &format!("/tokens/{id}"), None::<&Value>)
                .await?;
            if !as_json {
                eprintln!("Token {id} revoked.");
            }
        }
    }
    Ok(())
}
