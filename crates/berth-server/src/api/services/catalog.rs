//! What Berth offers, from the engine registry: the service types (Temps' array of names), each
//! type's parameters as a JSON Schema, and provider metadata (display name, description, icon,
//! colour). Nothing here names an engine: a new engine appears by being registered.

use axum::Json;
use axum::extract::{Path, State};
use berth_core::params::DOCKER_IMAGE;
use serde::Serialize;

use crate::api::AppState;
use crate::api::problem::responses as errors;
use crate::api::problem::{ApiError, ApiResult};
use crate::engines::{self, Engine};

/// The engine of a `{service_type}` path parameter; 404 for anything not registered.
fn engine_of(service_type: &str) -> ApiResult<&'static dyn Engine> {
    engines::engine(service_type).ok_or_else(|| {
        ApiError::not_found(format!(
            "unknown service type {service_type:?}; supported: {}",
            engines::service_types().join(", ")
        ))
    })
}

/// The JSON Schema of an engine's parameters (see `berth_core::params::json_schema`), with the
/// default image this server uses and the versions a create's `version` may name.
pub fn parameter_schema(state: &AppState, engine: &dyn Engine) -> serde_json::Value {
    let mut schema = berth_core::params::json_schema(
        &format!("{} parameters", engine.display_name()),
        engine.params(),
    );
    let default_image = state.manager.default_image(engine);
    if let Some(image) = schema["properties"].get_mut(DOCKER_IMAGE)
        && let Some(image) = image.as_object_mut()
    {
        image.insert("default".into(), default_image.into());
    }
    let versions: Vec<String> = state
        .manager
        .available_versions(engine)
        .into_iter()
        .map(|(major, _)| major.to_string())
        .collect();
    if let Some(schema) = schema.as_object_mut() {
        schema.insert("x-service-type".into(), engine.service_type().into());
        schema.insert("x-versions".into(), versions.into());
    }
    schema
}

/// Temps' `GET /external-services/types`: the names of the service types.
#[utoipa::path(
    get,
    path = "/external-services/types",
    tag = "services",
    summary = "Service type names (their parameters: /types/{service_type}/parameters)",
    responses(
        (status = 200, body = Vec<String>, example = json!(["postgres", "redis"])),
        errors::Unauthorized
    )
)]
pub async fn types() -> Json<Vec<&'static str>> {
    Json(engines::service_types())
}

/// A JSON Schema (draft 2020-12) object: `properties` has one entry per parameter with its
/// type, range, `enum`, `pattern`, `default`, `description`, and `x-editable` (whether `PUT`
/// may change it; the others are read-only after creation), `x-secret`, `x-generated`.
#[utoipa::path(
    get,
    path = "/external-services/types/{service_type}/parameters",
    tag = "services",
    summary = "JSON Schema of a service type's parameters",
    params(("service_type" = String, Path, description = "Service type, e.g. postgres")),
    responses(
        (status = 200, description = "JSON Schema of the parameters", body = Object),
        errors::Unauthorized,
        errors::NotFound
    )
)]
pub async fn type_parameters(
    State(state): State<AppState>,
    Path(service_type): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let engine = engine_of(&service_type)?;
    Ok(Json(parameter_schema(&state, engine)))
}

/// Temps' `ProviderMetadata`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProviderMetadata {
    pub service_type: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    /// A `data:image/svg+xml` URL of a small icon: usable in `<img src>` with no token.
    pub icon_url: String,
    /// `#rrggbb`.
    pub color: &'static str,
}

impl ProviderMetadata {
    fn of(engine: &dyn Engine) -> Self {
        Self {
            service_type: engine.service_type(),
            display_name: engine.display_name(),
            description: engine.description(),
            icon_url: engines::icon_url(engine),
            color: engine.color(),
        }
    }
}

#[utoipa::path(
    get,
    path = "/external-services/providers/metadata",
    tag = "services",
    summary = "How each service type presents itself (name, description, icon, colour)",
    responses(
        (status = 200, body = Vec<ProviderMetadata>),
        errors::Unauthorized
    )
)]
pub async fn providers() -> Json<Vec<ProviderMetadata>> {
    Json(
        engines::registry()
            .iter()
            .map(|e| ProviderMetadata::of(*e))
            .collect(),
    )
}

#[utoipa::path(
    get,
    path = "/external-services/providers/metadata/{service_type}",
    tag = "services",
    summary = "How one service type presents itself",
    params(("service_type" = String, Path, description = "Service type, e.g. postgres")),
    responses(
        (status = 200, body = ProviderMetadata),
        errors::Unauthorized,
        errors::NotFound
    )
)]
pub async fn provider(Path(service_type): Path<String>) -> ApiResult<Json<ProviderMetadata>> {
    Ok(Json(ProviderMetadata::of(engine_of(&service_type)?)))
}
