//! `berth kv get|set|del|keys|status|enable|disable`: a project's keys and KV's Redis service.
//! With an admin token the project is named (`--project SLUG_OR_ID`); a project token implies
//! its own.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiClient, output};

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print a key's JSON value (`null` if it does not exist).
    Get {
        key: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Set a key. VALUE is read as JSON (`42`, `{"a":1}`, `"text"`); anything that is not JSON
    /// is stored as a string.
    Set {
        key: String,
        value: String,
        /// Store VALUE as a string even if it reads as JSON (`007`, `true`).
        #[arg(long)]
        string: bool,
        /// Expire after this many seconds.
        #[arg(long, conflicts_with = "px")]
        ex: Option<i64>,
        /// Expire after this many milliseconds.
        #[arg(long)]
        px: Option<i64>,
        /// Only if the key does not exist.
        #[arg(long, conflicts_with = "xx")]
        nx: bool,
        /// Only if the key exists.
        #[arg(long)]
        xx: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete keys; prints how many existed.
    Del {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// List the project's keys matching a glob pattern (default `*`).
    Keys {
        #[arg(default_value = "*")]
        pattern: String,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Whether KV is enabled and healthy, and its Redis service.
    Status,
    /// Enable KV: creates its Redis service (or starts it again) and waits until it answers.
    Enable {
        /// Image for the Redis service (default: Berth's own Redis image).
        #[arg(long)]
        image: Option<String>,
    },
    /// Disable KV: stops its Redis service, keeping every project's keys.
    Disable {
        /// Delete the Redis service and every project's KV data instead.
        #[arg(long)]
        delete_data: bool,
    },
}

#[derive(Debug, Args)]
pub struct ProjectArg {
    /// The project (slug or id); required with an admin token.
    #[arg(long, value_name = "SLUG_OR_ID")]
    project: Option<String>,
}

impl ProjectArg {
    /// The named project's id, if one was named.
    pub async fn id(&self, api: &ApiClient) -> anyhow::Result<Option<i64>> {
        match &self.project {
            Some(project) => Ok(Some(super::env::project_id(api, project).await?)),
            None => Ok(None),
        }
    }

    /// The request body with `project_id` when a project was named.
    async fn body(&self, api: &ApiClient, mut body: Value) -> anyhow::Result<Value> {
        if let Some(project) = &self.project {
            body["project_id"] = json!(super::env::project_id(api, project).await?);
        }
        Ok(body)
    }
}

/// A command-line value as JSON: as written if it parses, else a string.
fn json_value(raw: &str, string: bool) -> Value {
    if string {
        return Value::String(raw.to_string());
    }
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

pub async fn run(command: &KvCommand, api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    match command {
        KvCommand::Get { key, project } => {
            let body = project.body(api, json!({ "key": key })).await?;
            let (_, answer) = api.post("/kv/get", &body).await?;
            print_field(&answer, "value", as_json);
        }
        KvCommand::Set {
            key,
            value,
            string,
            ex,
            px,
            nx,
            xx,
            project,
        } => {
            let mut body =
                json!({ "key": key, "value": json_value(value, *string), "nx": nx, "xx": xx });
            if let Some(ex) = ex {
                body["ex"] = json!(ex);
            }
            if let Some(px) = px {
                body["px"] = json!(px);
            }
            let body = project.body(api, body).await?;
            let (_, answer) = api.post("/kv/set", &body).await?;
            if as_json {
                output::json(&answer);
            } else if answer["result"].is_null() {
                eprintln!(
                    "not set: the key {}",
                    if *nx { "exists" } else { "does not exist" }
                );
            }
        }
        KvCommand::Del { keys, project } => {
            let body = project.body(api, json!({ "keys": keys })).await?;
            let (_, answer) = api.post("/kv/del", &body).await?;
            print_field(&answer, "deleted", as_json);
        }
        KvCommand::Keys { pattern, project } => {
            let body = project.body(api, json!({ "pattern": pattern })).await?;
            let (_, answer) = api.post("/kv/keys", &body).await?;
            if as_json {
                output::json(&answer);
            } else {
                for key in answer["keys"].as_array().into_iter().flatten() {
                    println!("{}", key.as_str().unwrap_or_default());
                }
            }
        }
        KvCommand::Status => output::print(&api.get("/kv/status").await?, as_json),
        KvCommand::Enable { image } => {
            let mut body = json!({});
            if let Some(image) = image {
                body["docker_image"] = json!(image);
            }
            let (_, answer) = api.post("/kv/enable", &body).await?;
            changed(&answer, as_json);
        }
        KvCommand::Disable { delete_data } => {
            let path = format!("/kv/disable?delete_data={delete_data}");
            let (_, answer) = api.send(Method::DELETE, &path, None::<&Value>).await?;
            changed(&answer, as_json);
        }
    }
    Ok(())
}

/// One field of the answer as JSON (the whole answer with `--json`).
fn print_field(answer: &Value, field: &str, as_json: bool) {
    if as_json {
        output::json(answer);
    } else {
        println!("{}", answer.get(field).unwrap_or(&Value::Null));
    }
}

/// The message of an enable or disable, then the status it left.
fn changed(answer: &Value, as_json: bool) {
    if as_json {
        output::json(answer);
        return;
    }
    if let Some(message) = answer.get("message").and_then(Value::as_str) {
        eprintln!("{message}");
    }
    if let Some(status) = answer.get("status") {
        output::details(status);
    }
}

#[cfg(test)]
mod tests {
    use super::json_value;
    use serde_json::json;

    #[test]
    fn values_are_json_when_they_parse() {
        assert_eq!(json_value("42", false), json!(42));
        assert_eq!(json_value("{\"a\":1}", false), json!({"a": 1}));
        assert_eq!(json_value("hello", false), json!("hello"));
        assert_eq!(json_value("42", true), json!("42"));
    }
}
