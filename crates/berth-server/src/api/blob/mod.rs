//! `/api/blob`: Temps' Blob routes over Blob's S3 service (`manager/blob`). `data` holds put,
//! list, delete and copy, `download` get and head of one blob, `manage` enable/update/disable/
//! status, `json` the bodies, `range`
//! which Range headers a download honours.

pub mod data;
pub mod download;
mod json;
pub mod manage;
mod range;

use super::AppState;
use super::policy::Principal;
use super::problem::ApiResult;
use crate::manager::blob::ProjectBlob;

/// The Blob of the project this request acts for: the project token's own, or `project_id`
/// (which must exist) for other tokens.
async fn project_blob(
    state: &AppState,
    principal: Principal,
    requested: Option<i64>,
) -> ApiResult<ProjectBlob> {
    let project_id = principal.acting_project(requested)?;
    Ok(state.manager.blob(project_id).await?)
}
