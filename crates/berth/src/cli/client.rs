//! A small HTTP client for the Berth API. Problem+json errors become one-line messages.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// An HTTP client builder that, for an `https://` API, trusts the certificates in `ca_cert`
/// (`--ca-cert`, `BERTH_CA_CERT`: a PEM file, such as a self-signed server certificate or the
/// CA that issued it) or else the system's CA bundle (`SSL_CERT_FILE`, or the usual places).
pub fn http_builder(https: bool, ca_cert: Option<&Path>) -> anyhow::Result<reqwest::ClientBuilder> {
    let builder = reqwest::Client::builder();
    if !https {
        return Ok(builder);
    }
    let (bundle, from) = match ca_cert {
        Some(path) => (
            std::fs::read(path)
                .with_context(|| format!("reading the CA certificate {}", path.display()))?,
            path.display().to_string(),
        ),
        None => (
            berth_server::image_builder::host_ca_bundle(),
            "the system's CA bundle".to_string(),
        ),
    };
    let certs = reqwest::Certificate::from_pem_bundle(&bundle)
        .with_context(|| format!("reading certificates from {from}"))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate in {from}; pass the API's CA with --ca-cert FILE");
    }
    Ok(certs.into_iter().fold(
        builder.use_rustls_tls().tls_built_in_root_certs(false),
        |builder, cert| builder.add_root_certificate(cert),
    ))
}

impl ApiClient {
    pub fn new(base: &str, token: String, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let https = base
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("https://");
        let http = http_builder(https, ca_cert)?
            .timeout(Duration::from_secs(600))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// A request to `/api{path}` with the token, for bodies that are streamed (Blob).
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/api{}", self.base, path);
        self.http.request(method, &url).bearer_auth(&self.token)
    }

    /// Sends a request; returns the status and parsed JSON body (Null when empty).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send_with(method, path, body, false).await
    }

    /// Starts a long operation asking for `202` + the operation at once
    /// (`Prefer: respond-async`), so [`Self::follow_operation`] can show its progress.
    pub async fn send_async(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        self.send_with(method, path, body, true).await
    }

    async fn send_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        respond_async: bool,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}/api{}", self.base, path);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if respond_async {
            request = request.header("Prefer", "respond-async");
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the Berth API at {} ({e}); is `berth serve` running?",
                self.base
            )
        })?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_client_error() || status.is_server_error() {
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            let detail = super::wording::cli_wording(&detail);
            return Err(anyhow!("{detail} (HTTP {})", status.as_u16()));
        }
        Ok((status, value))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.send(Method::GET, path, None::<&Value>).await?.1)
    }

    /// Resolves a resource given by numeric id or by `key` (name, slug) to its id, looking it up
    /// in the list at `list_path`; `missing` is the error when nothing matches.
    pub async fn resolve_id(
        &self,
        list_path: &str,
        key: &str,
        value: &str,
        missing: String,
    ) -> anyhow::Result<i64> {
        if let Ok(id) = value.parse::<i64>() {
            return Ok(id);
        }
        let list = self.get(list_path).await?;
        list.as_array()
            .into_iter()
            .flatten()
            .find(|item| item.get(key).and_then(Value::as_str) == Some(value))
            .and_then(|item| item.get("id").and_then(Value::as_i64))
            .ok_or_else(|| anyhow!(missing))
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(StatusCode, Value)> {
        self.send(Method::POST, path, Some(body)).await
    }

    /// Follows a 202 operation to its end with a spinner showing its step; returns the final
    /// operation, or the operation's error.
    pub async fn follow_operation(&self, accepted: &Value, action: &str) -> anyhow::Result<Value> {
        let op_id = accepted
            .pointer("/operation/id")
            .and_then(Value::as_i64)
            .ok_or_else(|| anyhow!("the server did not return an operation"))?;
        let spinner = ProgressBar::new_spinner();
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid template"),
        );
        spinner.enable_steady_tick(Duration::from_millis(100));
        loop {
            let op = self.get(&format!("/operations/{op_id}")).await?;
            let step = op.get("step").and_then(Value::as_str).unwrap_or("");
            spinner.set_message(format!("{action}: {step}"));
            match op.get("status").and_then(Value::as_str) {
                Some("queued" | "running") => tokio::time::sleep(Duration::from_millis(200)).await,
                Some("succeeded") => {
                    spinner.finish_and_clear();
                    return Ok(op);
                }
                _ => {
                    spinner.finish_and_clear();
                    let error = op
                        .get("error")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error");
                    return Err(anyhow!("{action} failed: {error}"));
                }
            }
        }
    }
}
