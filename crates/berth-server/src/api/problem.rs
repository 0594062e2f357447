//! RFC 7807 problem+json: the one error type handlers return. Manager and store errors map to
//! statuses here and nowhere else: not found -> 404, conflicts -> 409, bad input -> 400,
//! Docker unreachable -> 503, anything else -> 500 (with details logged, not leaked).

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
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            operation_id: None,
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
            ManagerError::Internal(m) => {
                tracing::error!("internal error: {m}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
            }
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
