//! `berth blob put|get|ls|rm`: a project's blobs. Files are streamed both ways, never read
//! whole into memory. With an admin token the project is named (`--project SLUG_OR_ID`); a
//! project token implies its own.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::ApiClient;
use super::kv::ProjectArg;

#[derive(Debug, Subcommand)]
pub enum BlobCommand {
    /// Upload FILE as PATHNAME; prints the blob (with its url).
    Put {
        file: PathBuf,
        pathname: String,
        #[arg(long)]
        content_type: Option<String>,
        /// Insert a random suffix before the extension.
        #[arg(long)]
        random_suffix: bool,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Download PATHNAME into FILE (`-`: standard output); `--project` is required.
    Get {
        pathname: String,
        file: PathBuf,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// List blobs (one page; `--cursor` for the next).
    Ls {
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
    /// Delete blobs; prints how many existed.
    Rm {
        #[arg(required = true)]
        pathnames: Vec<String>,
        #[command(flatten)]
        project: ProjectArg,
    },
}

pub async fn run(command: &BlobCommand, api: &ApiClient) -> anyhow::Result<()> {
    match command {
        BlobCommand::Put {
            file,
            pathname,
            content_type,
            random_suffix,
            project,
        } => {
            let body = tokio::fs::File::open(file)
                .await
                .with_context(|| format!("opening {}", file.display()))?;
            let mut query = vec![
                ("pathname", pathname.clone()),
                ("add_random_suffix", random_suffix.to_string()),
            ];
            if let Some(t) = content_type {
                query.push(("content_type", t.clone()));
            }
            if let Some(id) = project.id(api).await? {
                query.push(("project_id", id.to_string()));
            }
            let response = api
                .request(Method::POST, "/blob")
                .query(&query)
                .body(reqwest::Body::from(body))
                .send()
                .await?;
            print_json(response).await
        }
        BlobCommand::Get {
            pathname,
            file,
            project,
        } => {
            // The download's URL names the project, so it must be known here.
            let id = project
                .id(api)
                .await?
                .context("name the project with --project (its id or slug)")?;
            let encoded: Vec<String> = pathname.split('/').map(urlencode).collect();
            let mut response = api
                .request(Method::GET, &format!("/blob/{id}/{}", encoded.join("/")))
                .send()
                .await?;
            if !response.status().is_success() {
                bail!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
            }
            let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = if file.as_os_str() == "-" {
                Box::new(tokio::io::stdout())
            } else {
                Box::new(tokio::fs::File::create(file).await?)
            };
            while let Some(chunk) = response.chunk().await? {
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            Ok(())
        }
        BlobCommand::Ls {
            prefix,
            cursor,
            project,
        } => {
            let mut query = vec![("prefix", prefix.clone())];
            if let Some(c) = cursor {
                query.push(("cursor", c.clone()));
            }
            if let Some(id) = project.id(api).await? {
                query.push(("project_id", id.to_string()));
            }
            let response = api
                .request(Method::GET, "/blob")
                .query(&query)
                .send()
                .await?;
            print_json(response).await
        }
        BlobCommand::Rm { pathnames, project } => {
            let mut body = json!({ "pathnames": pathnames });
            if let Some(id) = project.id(api).await? {
                body["project_id"] = json!(id);
            }
            let response = api
                .request(Method::DELETE, "/blob")
                .json(&body)
                .send()
                .await?;
            print_json(response).await
        }
    }
}

async fn print_json(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{status}: {}", value["detail"].as_str().unwrap_or_default());
    }
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}

fn urlencode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
