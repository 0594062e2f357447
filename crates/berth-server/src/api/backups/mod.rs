//! Temps' backup routes: destinations (`sources.rs`, Temps' "S3 sources"), runs
//! (`runs.rs`) and schedules (`schedules.rs`), plus Berth's retention (`retention.rs`). Bodies
//! in `json.rs`.

mod json;
pub mod restores;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod sources;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// 202 with `body` and `Location: {location}` to poll (plus `Preference-Applied:
/// respond-async` when the request's `Prefer` header was honoured).
fn accepted(body: impl Serialize, location: &str, preference_applied: bool) -> Response {
    let mut response = (StatusCode::ACCEPTED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("ascii"),
    );
    if preference_applied {
        headers.insert(
            "preference-applied",
            HeaderValue::from_static("respond-async"),
        );
    }
    response
}
