//! The SDK's one error type. Berth answers every failure as RFC 7807 problem+json; that answer
//! is kept whole in [`Problem`] so callers can match on the status and show the detail.

use std::fmt;

use serde::Deserialize;

/// What went wrong in a call to Berth.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Berth answered with an error status (its problem+json).
    #[error("{0}")]
    Api(Problem),
    /// The request did not get an answer (connection refused, timeout, body stream failed).
    #[error("request to Berth failed: {0}")]
    Http(#[from] reqwest::Error),
    /// Berth answered 2xx with a body this SDK does not understand.
    #[error("unexpected answer from Berth: {0}")]
    Decode(String),
    /// The client is missing something it needs (a URL, a token, a project id).
    #[error("{0}")]
    Config(String),
}

impl Error {
    /// The HTTP status of an [`Error::Api`] (`None` for the other kinds).
    pub fn status(&self) -> Option<u16> {
        self.problem().map(|p| p.status)
    }

    /// The problem+json of an [`Error::Api`].
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            Error::Api(problem) => Some(problem),
            _ => None,
        }
    }
}

/// An RFC 7807 problem as Berth sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// The HTTP status.
    pub status: u16,
    /// Short, fixed text for the status (`Not Found`).
    #[serde(default)]
    pub title: String,
    /// What happened and, where Berth knows, what to do about it.
    #[serde(default)]
    pub detail: String,
    /// The problem type URI (`about:blank` for plain HTTP statuses).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// On 500s: the id under which Berth logged the details.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The operation that failed, when a long operation did.
    #[serde(default)]
    pub operation_id: Option<i64>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        if let Some(id) = &self.correlation_id {
            write!(f, " (correlation id {id})")?;
        }
        Ok(())
    }
}

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a non-2xx answer into [`Error::Api`]; a body that is not problem+json (a proxy's
/// page, an empty HEAD answer) becomes its detail.
pub(crate) async fn check(response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let problem = serde_json::from_str::<Problem>(&text).unwrap_or_else(|_| Problem {
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or_default().to_string(),
        detail: text.trim().chars().take(500).collect(),
        kind: None,
        correlation_id: None,
        operation_id: None,
    });
    Err(Error::Api(problem))
}

/// Reads a 2xx JSON answer.
pub(crate) async fn json<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let bytes = check(response).await?.bytes().await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
}
