//! `/api/kv`: Temps' KV routes over KV's Redis service (`manager/kv`). `data` holds the key
//! commands, `manage` enable/update/disable/status, `json` the bodies.

pub mod data;
mod json;
pub mod manage;

use super::AppState;
use super::policy::Principal;
use super::problem::{ApiError, ApiResult};
use crate::manager::kv::ProjectKv;
use crate::store::Scope;

/// The KV of the project this request acts for: the project token's own, or `project_id`
/// (which must exist) for other tokens.
async fn project_kv(
    state: &AppState,
    principal: Principal,
    requested: Option<i64>,
) -> ApiResult<ProjectKv<'_>> {
    let project_id = principal.acting_project(requested)?;
    // Authentication only accepts a project token while its project exists.
    let verified = matches!(principal.scope, Scope::Project(_));
    Ok(state.manager.kv(project_id, verified).await?)
}

/// 409 when service `id` is KV's backing: the ordinary routes may not delete it (KV's data
/// would go with it unannounced) or link it (its keys are every project's).
pub async fn refuse_backing(state: &AppState, id: i64, action: &str) -> ApiResult<()> {
    if state.manager.kv_backing_service().await? != Some(id) {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "service {id} is KV's Redis service (see GET /api/kv/status) and cannot be {action}: \
         it holds every project's KV data. To delete it with that data, use \
         DELETE /api/kv/disable?delete_data=true"
    )))
}
