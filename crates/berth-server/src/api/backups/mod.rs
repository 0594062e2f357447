//! Temps' backup routes: destinations (`sources.rs`, Temps' "S3 sources"), runs
//! (`runs.rs`) and schedules (`schedules.rs`), plus Berth's retention (`retention.rs`) and
//! backups of Berth's own state (`state.rs`). Bodies
//! in `json.rs`.

mod json;
pub mod restores;
pub mod retention;
pub mod runs;
pub mod schedules;
pub mod sources;
pub mod state;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use self::json::BackupView;
use super::AppState;
use super::problem::ApiResult;
use crate::store::BackupFilter;

/// The backups `filter` selects, newest first, as the API shows them (with the bytes a
/// running one has uploaded so far).
async fn backup_views(state: &AppState, filter: BackupFilter) -> ApiResult<Vec<BackupView>> {
    let records = state.store.list_backups(filter).await?;
    Ok(records
        .iter()
        .map(|b| BackupView::new(b, state.manager.backup_runs.bytes_done(b.id)))
        .collect())
}

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
