//! `/api/kv`: Temps' KV routes over KV's Redis service (`manager/kv`). `data` holds the key
//! commands, `manage` enable/update/disable/status, `json` the bodies.

pub mod data;
mod json;
pub mod manage;

use super::AppState;
use super::policy::Principal;
use super::problem::ApiResult;
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
