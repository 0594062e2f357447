//! Linking: `/external-services/{id}/projects` (link, list, unlink), the seed's environment
//! previews, and the deploy-time contract `/projects/{id}/environments/{env}/variables`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::extract::{IdPair, IdPath, JsonBody, Query, parse_id};
use super::problem::{ApiError, ApiResult};
use crate::manager::{AddressKind, LinkView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    pub project_id: i64,
}

/// 201 with the link when new, 200 when it already existed (linking is idempotent).
pub async fn link(
    State(state): State<AppState>,
    IdPath(id): IdPath,
    JsonBody(body): JsonBody<LinkRequest>,
) -> ApiResult<(StatusCode, Json<LinkView>)> {
    if body.project_id <= 0 {
        return Err(ApiError::not_found(format!(
            "project {} does not exist",
            body.project_id
        )));
    }
    let (view, created) = state.manager.link(id, body.project_id).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

pub async fn list(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<LinkView>>> {
    Ok(Json(state.manager.links(id).await?))
}

pub async fn unlink(
    State(state): State<AppState>,
    IdPair(id, project_id): IdPair,
) -> ApiResult<StatusCode> {
    state.manager.unlink(id, project_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn preview_names(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<Vec<String>>> {
    let vars = state.manager.preview_environment(id).await?;
    Ok(Json(vars.into_iter().map(|(k, _)| k).collect()))
}

pub async fn preview_masked(
    State(state): State<AppState>,
    IdPath(id): IdPath,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    Ok(Json(
        state
            .manager
            .preview_environment(id)
            .await?
            .into_iter()
            .collect(),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentQuery {
    /// Environment slug; default `production`.
    pub environment: Option<String>,
    /// `network` (default: container name, internal port) or `host` (127.0.0.1, published port).
    pub address: Option<String>,
}

fn address_kind(raw: Option<&str>) -> ApiResult<AddressKind> {
    match raw {
        None | Some("network") => Ok(AddressKind::Network),
        Some("host") => Ok(AddressKind::Host),
        Some(other) => Err(ApiError::bad_request(format!(
            "address must be `network` or `host`, not {other:?}"
        ))),
    }
}

/// The real values for one project environment. Secrets in clear: this is what deploys use.
pub async fn environment(
    State(state): State<AppState>,
    IdPair(id, project_id): IdPair,
    Query(q): Query<EnvironmentQuery>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let kind = address_kind(q.address.as_deref())?;
    let vars = state
        .manager
        .tenant_environment(id, project_id, q.environment.as_deref(), kind)
        .await?;
    Ok(Json(vars.into_iter().collect()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariablesQuery {
    pub address: Option<String>,
    /// `json` (default) or `dotenv`.
    pub format: Option<String>,
}

/// Everything all linked services inject into one project environment.
pub async fn project_variables(
    State(state): State<AppState>,
    axum::extract::Path((project, environment)): axum::extract::Path<(String, String)>,
    Query(q): Query<VariablesQuery>,
) -> ApiResult<Response> {
    let project_id = parse_id(&project)?;
    let kind = address_kind(q.address.as_deref())?;
    let vars = state
        .manager
        .project_variables(project_id, &environment, kind)
        .await?;
    match q.format.as_deref() {
        None | Some("json") => Ok(Json(vars).into_response()),
        Some("dotenv") => {
            let body: String = vars
                .iter()
                .map(|(k, v)| format!("{k}={}\n", dotenv_quote(v)))
                .collect();
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
        }
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be `json` or `dotenv`, not {other:?}"
        ))),
    }
}

/// Double-quoted dotenv value with `\`, `"`, `$` and newlines escaped.
pub fn dotenv_quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
