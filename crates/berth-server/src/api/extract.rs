//! Extractors that fail with problem+json instead of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::problem::ApiError;

/// A JSON object body; malformed JSON, another JSON value, wrong content type and oversized
/// bodies get problem+json.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(json_problem(JsonRejection::MissingJsonContentType(
                Default::default(),
            )));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| json_problem(JsonRejection::from(e)))?;
        // Every Berth body is an object. serde would also fill a struct from an array of its
        // fields in order (`[null, null]` read as "no options"): refuse that, not guess.
        match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') | None => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid request body: expected a JSON object",
                ));
            }
        }
        axum::Json::<T>::from_bytes(&bytes)
            .map(|axum::Json(value)| JsonBody(value))
            .map_err(json_problem)
    }
}

/// `application/json` or any `application/*+json`, as axum's own `Json` accepts.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_problem(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a body with Content-Type: application/json",
        ),
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than {} bytes",
                    super::BODY_LIMIT_BYTES
                ),
            )
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::bad_request(format!("invalid request body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request(format!("malformed JSON: {}", e.body_text()))
        }
        other => ApiError::bad_request(other.body_text()),
    }
}

/// A numeric id in the path. Anything else is 404: no such resource can exist.
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw): axum::extract::Path<String> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))?;
        match raw.parse::<i64>() {
            Ok(id) if id > 0 => Ok(IdPath(id)),
            _ => Err(ApiError::not_found(format!(
                "no resource with id {raw:?} (ids are positive integers)"
            ))),
        }
    }
}

/// Two numeric ids in the path (`/external-services/{id}/projects/{project_id}`).
pub struct IdPair(pub i64, pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((a, b)): axum::extract::Path<(String, String)> =
            axum::extract::Path::from_request_parts(parts, state)
                .await
                .map_err(|e: PathRejection| ApiError::bad_request(e.body_text()))?;
        Ok(IdPair(parse_id(&a)?, parse_id(&b)?))
    }
}

pub fn parse_id(raw: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::not_found(format!(
            "no resource with id {raw:?} (ids are positive integers)"
        ))),
    }
}

/// `?wait=true|false`: the explicit choice between waiting for an operation and answering 202
/// at once. Absent, the `Prefer` header decides, and without it the request waits.
#[derive(Debug, Default, Deserialize)]
pub struct WaitQuery {
    #[serde(default)]
    pub wait: Option<bool>,
}

/// How a request that starts a long operation wants its answer. Synchronous by default, as
/// Temps: the final answer (201/200 with the service, 204) once the operation has finished,
/// within a bound. `Prefer: respond-async` (RFC 7240) or `?wait=false` asks for 202 + the
/// operation at once; an explicit `?wait=` wins over the header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Wait {
    /// Answer 202 with the operation at once.
    pub respond_async: bool,
    /// `Prefer: respond-async` was honoured: the answer says `Preference-Applied`.
    pub preference_applied: bool,
    /// `Prefer: wait=N` (RFC 7240): the longest the client wants to wait, in seconds.
    pub prefer_wait_secs: Option<u64>,
}

impl Wait {
    pub fn from_parts(query: Option<bool>, prefer: &Preferences) -> Self {
        let respond_async = match query {
            Some(wait) => !wait,
            None => prefer.respond_async,
        };
        Wait {
            respond_async,
            preference_applied: respond_async && prefer.respond_async,
            prefer_wait_secs: prefer.wait_secs,
        }
    }

    /// How long a synchronous request waits: the server's `sync_wait_secs`, or less with
    /// `Prefer: wait=N`.
    pub fn bound(&self, sync_wait_secs: u64) -> std::time::Duration {
        let secs = match self.prefer_wait_secs {
            Some(asked) => asked.min(sync_wait_secs),
            None => sync_wait_secs,
        };
        std::time::Duration::from_secs(secs)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Wait {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(query): Query<WaitQuery> = Query::from_request_parts(parts, state).await?;
        let prefer = Preferences::parse(parts.headers.get_all("prefer"));
        Ok(Wait::from_parts(query.wait, &prefer))
    }
}

/// The preferences of RFC 7240 that Berth honours. Unknown ones are ignored, as the RFC asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Preferences {
    pub respond_async: bool,
    pub wait_secs: Option<u64>,
}

impl Preferences {
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a axum::http::HeaderValue>) -> Self {
        let mut prefs = Preferences::default();
        for value in values {
            let Ok(value) = value.to_str() else { continue };
            for preference in value.split(',') {
                // `token [= value] *( ";" parameter )`: parameters are not used here.
                let head = preference.split(';').next().unwrap_or("");
                let (name, val) = match head.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                    None => (head.trim(), None),
                };
                if name.eq_ignore_ascii_case("respond-async") {
                    prefs.respond_async = true;
                } else if name.eq_ignore_ascii_case("wait")
                    && let Some(secs) = val.and_then(|v| v.parse::<u64>().ok())
                    && prefs.wait_secs.is_none()
                {
                    prefs.wait_secs = Some(secs);
                }
            }
        }
        prefs
    }
}

/// The OpenAPI parameters behind [`Wait`]: `?wait=` and the `Prefer` header.
pub struct WaitParams;

impl utoipa::IntoParams for WaitParams {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        vec![
            ParameterBuilder::new()
                .name("wait")
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(
                    "true: answer when the operation has finished (the default); false: answer                      202 with the operation at once. Wins over the Prefer header.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::Boolean)))
                .build(),
            ParameterBuilder::new()
                .name("Prefer")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "RFC 7240. `respond-async`: answer 202 + Location of the operation at once \
                     (the answer carries `Preference-Applied: respond-async`). `wait=N`: wait at \
                     most N seconds (never more than the server's bound, 120 s by default) \
                     before answering 202.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples(["respond-async"]),
                ))
                .build(),
        ]
    }
}

/// Query strings with problem+json errors.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::{Preferences, Wait};

    fn prefs(values: &[&'static str]) -> Preferences {
        let values: Vec<HeaderValue> = values.iter().map(|v| HeaderValue::from_static(v)).collect();
        Preferences::parse(values.iter())
    }

    #[test]
    fn prefer_header_is_parsed_as_rfc_7240() {
        assert_eq!(prefs(&[]), Preferences::default());
        assert!(prefs(&["respond-async"]).respond_async);
        assert!(prefs(&["Respond-Async"]).respond_async);
        assert!(prefs(&["return=minimal, respond-async; foo=bar"]).respond_async);
        assert!(prefs(&["return=minimal", "respond-async"]).respond_async);
        assert!(!prefs(&["respond-asynchronously"]).respond_async);
        assert_eq!(prefs(&["respond-async, wait=10"]).wait_secs, Some(10));
        assert_eq!(prefs(&["wait=\"7\""]).wait_secs, Some(7));
        assert_eq!(prefs(&["wait=soon"]).wait_secs, None);
        // The first occurrence of a preference wins (RFC 7240 section 2).
        assert_eq!(prefs(&["wait=3", "wait=9"]).wait_secs, Some(3));
    }

    #[test]
    fn explicit_query_wins_over_the_header() {
        let none = Preferences::default();
        let async_ = prefs(&["respond-async"]);
        // Default: synchronous.
        assert!(!Wait::from_parts(None, &none).respond_async);
        let w = Wait::from_parts(None, &async_);
        assert!(w.respond_async && w.preference_applied);
        // ?wait=true wins over the header: synchronous, preference not applied.
        let w = Wait::from_parts(Some(true), &async_);
        assert!(!w.respond_async && !w.preference_applied);
        // ?wait=false alone: 202 without Preference-Applied (nothing was preferred).
        let w = Wait::from_parts(Some(false), &none);
        assert!(w.respond_async && !w.preference_applied);
    }

    /// All-optional, like `PruneRequest`: the shape serde would fill from an array.
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Options {
        a: Option<i64>,
        b: Option<i64>,
    }

    async fn body(content_type: &str, text: &'static str) -> Result<Options, u16> {
        use axum::extract::FromRequest;
        let request = axum::http::Request::builder()
            .method("POST")
            .header("content-type", content_type)
            .body(axum::body::Body::from(text))
            .unwrap();
        super::JsonBody::<Options>::from_request(request, &())
            .await
            .map(|super::JsonBody(o)| o)
            .map_err(|e| e.status.as_u16())
    }

    #[tokio::test]
    async fn a_json_body_must_be_an_object() {
        let options = body("application/json", r#" {"a": 1}"#).await.unwrap();
        assert_eq!((options.a, options.b), (Some(1), None));
        assert!(body("application/merge-patch+json", "{}").await.is_ok());
        assert_eq!(
            body("application/json", "[null, null]").await.unwrap_err(),
            400
        );
        assert_eq!(body("application/json", "[1, 2]").await.unwrap_err(), 400);
        assert_eq!(body("application/json", "null").await.unwrap_err(), 400);
        assert_eq!(body("application/json", "").await.unwrap_err(), 400);
        assert_eq!(
            body("application/json", r#"{"c": 1}"#).await.unwrap_err(),
            400
        );
        assert_eq!(body("text/plain", "{}").await.unwrap_err(), 415);
    }
}
