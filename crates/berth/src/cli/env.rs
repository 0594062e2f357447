//! `berth env` prints a project environment's variables; `berth run` runs a local command with
//! them, pointed at 127.0.0.1 and the published ports so it works on the server itself.

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::ApiClient;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Dotenv,
    Json,
    Shell,
    /// Docker's `--env-file` and Compose's `env_file:` format: `KEY=value`, taken literally.
    EnvFile,
    /// A Compose `environment:` block to paste under a service (`$` doubled, as Compose
    /// interpolates).
    Compose,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// Project id or slug.
    #[arg(short, long)]
    pub project: String,
    /// Environment slug.
    #[arg(short, long, default_value = "production")]
    pub environment: String,
    #[arg(long, value_enum, default_value = "dotenv")]
    pub format: Format,
    /// Use 127.0.0.1 and published ports instead of container names (for tools on the server).
    #[arg(long)]
    pub host: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Project id or slug.
    #[arg(short, long)]
    pub project: String,
    /// Environment slug.
    #[arg(short, long, default_value = "production")]
    pub environment: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Resolves a project given by id or slug to its id.
pub async fn project_id(api: &ApiClient, project: &str) -> anyhow::Result<i64> {
    api.resolve_id(
        "/projects",
        "slug",
        project,
        format!("no project with slug {project:?}"),
    )
    .await
}

pub(super) async fn variables(
    api: &ApiClient,
    project: &str,
    environment: &str,
    host: bool,
) -> anyhow::Result<Vec<(String, String)>> {
    let id = project_id(api, project).await?;
    let address = if host { "host" } else { "network" };
    let vars = api
        .get(&format!(
            "/projects/{id}/environments/{environment}/variables?address={address}"
        ))
        .await?;
    Ok(vars
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect())
}

fn single_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn double_quote(value: &str) -> String {
    let escaped = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('$', "\\$")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// `environment:` with one double-quoted YAML scalar per variable (JSON string escapes are
/// valid YAML); `$` doubled so Compose does not interpolate it.
fn compose_environment(vars: &[(String, String)]) -> String {
    let mut out = String::from("environment:\n");
    for (k, v) in vars {
        let quoted = serde_json::to_string(&v.replace('$', "$$")).expect("a string serialises");
        out.push_str(&format!("  {k}: {quoted}\n"));
    }
    out
}

/// Prints the variables. They are secrets: printing them is what this command is for.
pub async fn print(args: &EnvArgs, api: &ApiClient) -> anyhow::Result<()> {
    let vars = variables(api, &args.project, &args.environment, args.host).await?;
    match args.format {
        Format::Json => {
            let map: serde_json::Map<String, Value> = vars
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            println!("{}", serde_json::to_string_pretty(&map)?);
        }
        Format::Dotenv => vars
            .iter()
            .for_each(|(k, v)| println!("{k}={}", double_quote(v))),
        Format::Shell => vars
            .iter()
            .for_each(|(k, v)| println!("export {k}={}", single_quote(v))),
        Format::EnvFile => print!("{}", super::docker_run::env_file_text(&vars)?),
        Format::Compose => print!("{}", compose_environment(&vars)),
    }
    Ok(())
}

/// Runs the command with the variables added to its environment; exits with its exit code.
pub async fn run(args: &RunArgs, api: &ApiClient) -> anyhow::Result<()> {
    let vars = variables(api, &args.project, &args.environment, true).await?;
    if vars.is_empty() {
        eprintln!(
            "berth: note: no services are linked to {}/{}",
            args.project, args.environment
        );
    }
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    // The program gets the project's variables, not Berth's own settings: BERTH_TOKEN (an API
    // credential, often the admin token), BERTH_API_URL, BERTH_DATABASE_URL, ... stay here.
    for key in berth_variables(std::env::vars_os().map(|(k, _)| k)) {
        command.env_remove(key);
    }
    let status = command
        .envs(vars)
        .status()
        .await
        .map_err(|e| anyhow!("cannot run {program:?}: {e}"))?;
    std::process::exit(status.code().unwrap_or(1));
}

/// Names of Berth's own variables (`BERTH_*`) among `keys`.
pub(super) fn berth_variables(
    keys: impl Iterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    keys.filter(|k| k.as_encoded_bytes().starts_with(b"BERTH_"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berth_variables_are_withheld() {
        let keys = ["BERTH_TOKEN", "BERTH_API_URL", "PATH", "MY_BERTH_X", "HOME"]
            .map(std::ffi::OsString::from);
        assert_eq!(
            berth_variables(keys.into_iter()),
            ["BERTH_TOKEN", "BERTH_API_URL"].map(std::ffi::OsString::from)
        );
    }

    #[test]
    fn compose_blocks_quote_and_escape_interpolation() {
        let vars = vec![(
            "DATABASE_URL".to_string(),
            "postgres://u:p$w\"d@h/db".to_string(),
        )];
        assert_eq!(
            compose_environment(&vars),
            "environment:\n  DATABASE_URL: \"postgres://u:p$$w\\\"d@h/db\"\n"
        );
    }

    #[test]
    fn quoting_survives_shell_metacharacters() {
        assert_eq!(single_quote("a'b"), "'a'\\''b'");
        assert_eq!(double_quote("p$a\"ss"), "\"p\\$a\\\"ss\"");
    }
}
