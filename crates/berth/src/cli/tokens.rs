//! `berth token create|list|revoke`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; it is printed once, now.
    Create { name: String },
    /// List tokens (never their values).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

pub async fn run(command: &TokenCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { name } => {
            let (_, token) = api.post("/tokens", &json!({ "name": name })).await?;
            if as_json {
                output::json(&token);
            } else {
                eprintln!(
                    "Token {:?} created (id {}). It is shown only once:",
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
