//! RFC 7807 problem+json: the one error type handlers return. Manager and store errors map to
//! statuses here and nowhere else: not found -> 404, conflicts -> 409, bad input -> 400,
//! Docker unreachable -> 503, anything else -> 500: the details (database or driver text) go
//! to the server log under a random correlation id, the client gets only that id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::manager::ManagerError;
use crate::store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// Extra members, e.g. the operation id of a failed operation.
    pub operation_id: Option<i64>,
    /// Set on 500s: the id of the server log line with the details.
    pub correlation_id: Option<String>,
}

/// RFC 7807 problem details.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The operation that failed, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<i64>,
    /// On internal errors (500): find the details in the server log under this id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The documented error responses, one type per status, so each handler's
/// `#[utoipa::path(responses(...))]` lists the errors it can return by name.
pub mod responses {
    use super::Problem;

    macro_rules! problem_response {
        ($name:ident, $status:literal, $description:literal) => {
            #[derive(utoipa::IntoResponses)]
            #[response(status = $status, description = $description, content_type = "application/problem+json")]
            #[allow(dead_code)] // only read by the OpenAPI derive
            pub struct $name(pub Problem);
        };
    }

    problem_response!(BadRequest, 400, "Bad input");
    problem_response!(Unauthorized, 401, "Missing, malformed or revoked token");
    problem_response!(NotFound, 404, "Not found");
    problem_response!(Conflict, 409, "Conflict");
    problem_response!(TooLarge, 413, "Body too large");
    problem_response!(NotJson, 415, "Body is not JSON");
    problem_response!(
        NotStarted,
        422,
        "The service did not start with these parameters; the change was undone"
    );
    problem_response!(OperationFailed, 500, "Operation failed");
    problem_response!(
        Unavailable,
        503,
        "Docker engine or state database unavailable"
    );
    problem_response!(
        KvNotFound,
        404,
        "The project does not exist, or KV is not enabled (or was disabled)"
    );
    problem_response!(
        KvUnavailable,
        503,
        "KV's Redis service is stopped or does not answer (the detail says which and what to \
         do), or the state database is unavailable"
    );
    problem_response!(
        BlobUnavailable,
        503,
        "Blob is not enabled, or its S3 service is stopped or does not answer (the detail says \
         which and what to do), or the state database is unavailable"
    );
    problem_response!(
        Forbidden,
        403,
        "The token's scope does not allow this (another project's blob)"
    );
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            operation_id: None,
            correlation_id: None,
        }
    }

    /// A 500. `details` (database, driver or Docker text) is logged with a fresh correlation
    /// id and never sent: the client gets a generic message and the id.
    pub fn internal(details: impl std::fmt::Display) -> Self {
        let id = correlation_id();
        tracing::error!(correlation_id = %id, "internal error: {details}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: format!("internal error; see the server log for correlation id {id}"),
            operation_id: None,
            correlation_id: Some(id),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// The token is valid but its scope does not allow the request (see `api/policy.rs`).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let body = Problem {
            kind: "about:blank".into(),
            title: title.into(),
            status: self.status.as_u16(),
            detail: self.detail,
            operation_id: self.operation_id,
            correlation_id: self.correlation_id,
        };
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::BadRequest(m) => Self::bad_request(m),
            ManagerError::NotFound(m) => Self::not_found(m),
            ManagerError::Conflict(m) | ManagerError::DataMissing(m) => Self::conflict(m),
            ManagerError::Unavailable(m) => Self::new(StatusCode::SERVICE_UNAVAILABLE, m),
            ManagerError::NotStarted(m) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, m),
            ManagerError::TooLarge(m) => Self::new(StatusCode::PAYLOAD_TOO_LARGE, m),
            ManagerError::Internal(m) => Self::internal(m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!("state store error: {e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state database is unavailable; see the server log",
        )
    }
}

pub async fn not_found_route() -> ApiError {
    ApiError::not_found("no such route")
}

/// 16 hex digits from the OS CSPRNG.
fn correlation_id() -> String {
    let mut bytes = [0u8; 8];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    async fn body_of(error: ApiError) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_log_details_and_send_only_a_correlation_id() {
        let driver_text = "error returned from database: no such table: services";
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let error = tracing::subscriber::with_default(subscriber, || {
            ApiError::from(ManagerError::Internal(driver_text.into()))
        });
        let (status, body) = body_of(error).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let text = body.to_string();
        assert!(!text.contains("no such table"), "driver text sent: {text}");
        assert!(!text.contains("database"), "driver text sent: {text}");
        let id = body["correlation_id"].as_str().expect("a correlation id");
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert!(body["detail"].as_str().unwrap().contains(id), "{body}");
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line = log
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("no log line with {id}: {log}"));
        assert!(line.contains(driver_text), "{line}");

        let (_, other) = body_of(ApiError::from(ManagerError::Internal("x".into()))).await;
        assert_ne!(
            other["correlation_id"], body["correlation_id"],
            "ids differ"
        );
    }

    #[tokio::test]
    async fn client_errors_and_unavailable_keep_their_details() {
        for (error, status) in [
            (ManagerError::Conflict("port 5432 is taken".into()), 409),
            (ManagerError::BadRequest("invalid name".into()), 400),
            (
                ManagerError::Unavailable("Docker engine is unreachable".into()),
                503,
            ),
        ] {
            let message = error.to_string();
            let (got, body) = body_of(ApiError::from(error)).await;
            assert_eq!(got.as_u16(), status);
            assert_eq!(body["detail"], message.as_str());
            assert!(body.get("correlation_id").is_none(), "{body}");
        }
    }
}
