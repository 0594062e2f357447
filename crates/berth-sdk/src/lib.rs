//! Client for Berth's KV and Blob APIs, which follow Temps' (`/api/kv/*`, `/api/blob*`), so
//! the same code works against either server.
//!
//! ```no_run
//! # async fn demo() -> berth_sdk::Result<()> {
//! let client = berth_sdk::Client::from_env()?; // BERTH_API_URL, BERTH_TOKEN
//! client.kv().set("greeting", &"hello", Default::default()).await?;
//! let greeting: Option<String> = client.kv().get("greeting").await?;
//! let blob = client.blob().put("notes/a.txt", "some text", Default::default()).await?;
//! let bytes = client.blob().get(&blob.url).await?.bytes().await?;
//! # Ok(()) }
//! ```
//!
//! A project token acts for its own project; an admin token must name one
//! ([`Client::with_project`], or `BERTH_PROJECT_ID` for [`Client::from_env`]).

mod blob;
mod error;
mod kv;

use std::sync::Arc;

pub use blob::{Blob, BlobDownload, BlobInfo, ListOptions, ListPage, PutOptions};
pub use error::{Error, Problem, Result};
pub use kv::{Kv, SetOptions};

/// A connection to one Berth (or Temps) server as one token. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Without a trailing slash.
    base_url: String,
    token: String,
    project_id: Option<i64>,
}

/// The environment variables [`Client::from_env`] reads, Berth's name first and Temps' SDK's
/// second (so an app deployed by either finds its settings).
const URL_VARS: [&str; 2] = ["BERTH_API_URL", "TEMPS_API_URL"];
const TOKEN_VARS: [&str; 2] = ["BERTH_TOKEN", "TEMPS_TOKEN"];
const PROJECT_VARS: [&str; 2] = ["BERTH_PROJECT_ID", "TEMPS_PROJECT_ID"];

impl Client {
    /// A client for the server at `base_url` (`http://127.0.0.1:8080`, without `/api`)
    /// authenticating with `token` (a project token, or an admin token with
    /// [`Client::with_project`]).
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self::with_http(reqwest::Client::new(), base_url, token)
    }

    /// Like [`Client::new`] with your own `reqwest::Client` (timeouts, proxies, TLS roots).
    pub fn with_http(
        http: reqwest::Client,
        base_url: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                token: token.into(),
                project_id: None,
            }),
        }
    }

    /// A client from the environment: `BERTH_API_URL` and `BERTH_TOKEN` (or Temps' names,
    /// `TEMPS_API_URL` and `TEMPS_TOKEN`), and optionally `BERTH_PROJECT_ID` /
    /// `TEMPS_PROJECT_ID`.
    pub fn from_env() -> Result<Self> {
        let url = first_var(&URL_VARS)
            .ok_or_else(|| Error::Config("set BERTH_API_URL to Berth's address".into()))?;
        let token = first_var(&TOKEN_VARS)
            .ok_or_else(|| Error::Config("set BERTH_TOKEN to an API token".into()))?;
        let client = Self::new(url, token);
        match first_var(&PROJECT_VARS) {
            None => Ok(client),
            Some(id) => {
                let id = id.trim().parse::<i64>().map_err(|_| {
                    Error::Config(format!("BERTH_PROJECT_ID is not a project id: {id:?}"))
                })?;
                Ok(client.with_project(id))
            }
        }
    }

    /// The same client acting for project `id` (sent as `project_id` with every KV and Blob
    /// call): required with an admin token; a project token may only name its own.
    pub fn with_project(&self, id: i64) -> Self {
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base_url: self.inner.base_url.clone(),
                token: self.inner.token.clone(),
                project_id: Some(id),
            }),
        }
    }

    /// The project this client names, if any.
    pub fn project_id(&self) -> Option<i64> {
        self.inner.project_id
    }

    /// The KV commands.
    pub fn kv(&self) -> Kv<'_> {
        Kv::new(self)
    }

    /// The blob store.
    pub fn blob(&self) -> Blob<'_> {
        Blob::new(self)
    }

    /// `path` (starting with `/api`) on this server.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.base_url)
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// A request with the token attached.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: impl reqwest::IntoUrl,
    ) -> reqwest::RequestBuilder {
        self.inner
            .http
            .request(method, url)
            .bearer_auth(&self.inner.token)
    }
}

impl std::fmt::Debug for Client {
    // Never the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("project_id", &self.inner.project_id)
            .finish_non_exhaustive()
    }
}

fn first_var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
}
