//! `berth service importable` and `berth service import`: take over a container the user
//! already runs. In a terminal, a missing container is picked from a numbered list and missing
//! credentials are asked for without echo; otherwise everything comes from flags (secrets from
//! files, never the command line, where `ps` and shell history would keep them).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, anyhow};
use serde_json::{Map, Value, json};

use super::client::ApiClient;
use super::output;

const AVAILABLE: &str = "/external-services/available-containers";

/// What `berth service import` was given.
pub struct ImportArgs<'a> {
    pub container: Option<&'a str>,
    pub name: Option<&'a str>,
    pub service_type: Option<&'a str>,
    pub params: Map<String, Value>,
    /// `KEY=FILE` pairs: the parameter's value is the file's first line.
    pub param_files: &'a [String],
}

pub async fn list(api: &ApiClient, as_json: bool) -> anyhow::Result<()> {
    let list = api.get(AVAILABLE).await?;
    if as_json {
        output::json(&list);
    } else {
        output::table(
            list.as_array().map(Vec::as_slice).unwrap_or_default(),
            &[
                ("/container_name", "CONTAINER"),
                ("/service_type", "TYPE"),
                ("/version", "VERSION"),
                ("/image", "IMAGE"),
                ("/is_running", "RUNNING"),
                ("/exposed_ports", "PORTS"),
            ],
        );
    }
    Ok(())
}

pub async fn import(api: &ApiClient, args: ImportArgs<'_>, as_json: bool) -> anyhow::Result<()> {
    let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let candidates = api.get(AVAILABLE).await?;
    let candidates = candidates.as_array().cloned().unwrap_or_default();
    let chosen = match args.container {
        Some(given) => candidates
            .iter()
            .find(|c| {
                let id = c["container_id"].as_str().unwrap_or_default();
                c["container_name"] == given || (given.len() >= 4 && id.starts_with(given))
            })
            .cloned(),
        None if interactive => Some(pick(&candidates)?),
        None => {
            return Err(anyhow!(
                "give the container to import (`berth service importable` lists them)"
            ));
        }
    };
    let container = match (&chosen, args.container) {
        (Some(c), _) => c["container_name"].as_str().unwrap_or_default().to_string(),
        (None, Some(given)) => given.to_string(),
        (None, None) => unreachable!("picked or refused above"),
    };
    let service_type = match (args.service_type, &chosen) {
        (Some(t), _) => t.to_string(),
        (None, Some(c)) => c["service_type"].as_str().unwrap_or_default().to_string(),
        (None, None) => {
            return Err(anyhow!(
                "container {container:?} is not among the containers Berth recognises; give \
                 its type with --type"
            ));
        }
    };
    let name = match args.name {
        Some(n) => n.to_string(),
        None if interactive => ask(&format!("Name in Berth [{container}]: "))?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| container.clone()),
        None => container.clone(),
    };
    let mut params = args.params;
    for pair in args.param_files {
        let (key, file) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--param-file {pair:?} is not KEY=FILE"))?;
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let value = text.lines().next().unwrap_or_default().to_string();
        params.insert(key.to_string(), Value::String(value));
    }
    let schema = api
        .get(&format!(
            "/external-services/types/{service_type}/parameters"
        ))
        .await?;
    for (key, spec) in schema["properties"].as_object().into_iter().flatten() {
        if spec["x-secret"] != true || params.contains_key(key) {
            continue;
        }
        if !interactive {
            return Err(anyhow!(
                "the server's {key} is needed (Berth cannot read it from the container): give \
                 it with --param-file {key}=FILE"
            ));
        }
        let value = rpassword::prompt_password(format!("{key} of {container}: "))?;
        params.insert(key.clone(), Value::String(value));
    }
    let body = json!({
        "container_id": container,
        "name": name,
        "service_type": service_type,
        "parameters": params,
    });
    let (_, service) = api.post("/external-services/import", &body).await?;
    if as_json {
        output::json(&service);
    } else {
        eprintln!(
            "Imported container {container} as service {name}: Berth starts, stops, checks, \
             links and backs it up, and never recreates or removes it (`berth service delete \
             {name}` forgets it; --remove-container removes the container too)."
        );
        output::details(&service);
    }
    Ok(())
}

/// A numbered list of the candidates on stderr; the answer is read from stdin.
fn pick(candidates: &[Value]) -> anyhow::Result<Value> {
    if candidates.is_empty() {
        return Err(anyhow!(
            "no container running PostgreSQL, Redis, MongoDB or an S3 server was found that \
             Berth does not manage already"
        ));
    }
    for (n, c) in candidates.iter().enumerate() {
        eprintln!(
            "  {}) {}  {} {}  ({}){}",
            n + 1,
            output::cell(c.get("container_name")),
            output::cell(c.get("service_type")),
            output::cell(c.get("version")),
            output::cell(c.get("image")),
            if c["is_running"] == true {
                ""
            } else {
                "  [stopped]"
            }
        );
    }
    let answer = ask(&format!("Container to import [1-{}]: ", candidates.len()))?
        .ok_or_else(|| anyhow!("no container chosen"))?;
    let n: usize = answer
        .parse()
        .ok()
        .filter(|n| (1..=candidates.len()).contains(n))
        .ok_or_else(|| anyhow!("{answer:?} is not a number from 1 to {}", candidates.len()))?;
    Ok(candidates[n - 1].clone())
}

/// One line from stdin after `prompt` on stderr; `None` at end of input.
fn ask(prompt: &str) -> anyhow::Result<Option<String>> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_string()))
}
