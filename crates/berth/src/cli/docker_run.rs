//! `berth docker run --project P -- <docker run arguments>`: the user's container on Berth's
//! network with the project environment's variables. The variables reach `docker` through an
//! env file readable only by this user and removed when `docker` exits, never through argv, so
//! `ps` and shell history never show a secret.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{Context, anyhow, bail};
use clap::Args;

use super::ApiClient;
use super::env::{berth_variables, variables};

#[derive(Debug, Args)]
pub struct DockerRunArgs {
    /// Project id or slug.
    #[arg(long)]
    pub project: String,
    /// Environment slug.
    #[arg(long, default_value = "production")]
    pub environment: String,
    /// Berth's Docker network (the server's `network`).
    #[arg(long, env = "BERTH_NETWORK", default_value = "berth")]
    pub network: String,
    /// `docker run`'s own arguments, after `--` (image, command, its flags).
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub docker_args: Vec<String>,
}

pub async fn run(args: &DockerRunArgs, api: &ApiClient) -> anyhow::Result<()> {
    // Container names and in-network ports: the container joins Berth's network.
    let vars = variables(api, &args.project, &args.environment, false).await?;
    if vars.is_empty() {
        eprintln!(
            "berth: note: no services are linked to {}/{}",
            args.project, args.environment
        );
    }
    let scratch = tempfile::Builder::new()
        .prefix("berth-docker-run-")
        .tempdir()
        .context("creating a private scratch directory")?;
    let env_file = scratch.path().join("env");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&env_file)
        .context("writing the env file")?;
    file.write_all(env_file_text(&vars)?.as_bytes())?;
    file.sync_all()?;
    drop(file);

    let mut command = tokio::process::Command::new("docker");
    command
        .arg("run")
        .arg("--network")
        .arg(&args.network)
        .arg("--env-file")
        .arg(&env_file)
        .args(&args.docker_args);
    for key in berth_variables(std::env::vars_os().map(|(k, _)| k)) {
        command.env_remove(key);
    }
    let status = command
        .status()
        .await
        .map_err(|e| anyhow!("cannot run docker: {e}"))?;
    drop(scratch);
    std::process::exit(status.code().unwrap_or(1));
}

/// Docker's env-file format: `KEY=value` per line, taken literally (no quotes, no escapes),
/// so a value cannot hold a line break.
pub fn env_file_text(vars: &[(String, String)]) -> anyhow::Result<String> {
    let mut text = String::new();
    for (key, value) in vars {
        if value.contains(['\n', '\r']) || key.contains(['\n', '\r', '=']) {
            bail!("variable {key} cannot be written to an env file (line break or '=' in it)");
        }
        text.push_str(&format!("{key}={value}\n"));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_literal_and_refuse_line_breaks() {
        let vars = vec![("A".to_string(), "p$a\"ss'w=rd".to_string())];
        assert_eq!(env_file_text(&vars).unwrap(), "A=p$a\"ss'w=rd\n");
        let broken = vec![("A".to_string(), "x\ny".to_string())];
        assert!(env_file_text(&broken).is_err());
    }
}
