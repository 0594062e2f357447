//! The HTTP API, route-compatible with the seed (`/api/external-services/...`). Every `/api`
//! route requires `Authorization: Bearer <token>`; errors are RFC 7807 problem+json. Routes
//! are all listed here, once; handlers live one resource per module.

mod auth;
mod extract;
mod links;
mod operations;
mod problem;
mod projects;
mod services;
mod system;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::manager::ServiceManager;
use crate::reconciler::Reconciler;
use crate::store::Store;

pub use problem::ApiError;

/// Request bodies are small JSON documents; anything larger is refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub manager: Arc<ServiceManager>,
    pub reconciler: Arc<Reconciler>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/external-services",
            post(services::crud::create).get(services::crud::list),
        )
        .route("/external-services/types", get(services::crud::types))
        .route(
            "/external-services/{id}",
            get(services::crud::get)
                .put(services::crud::update)
                .delete(services::crud::delete),
        )
        .route(
            "/external-services/{id}/reveal",
            get(services::crud::reveal),
        )
        .route(
            "/external-services/{id}/start",
            post(services::lifecycle::start),
        )
        .route(
            "/external-services/{id}/stop",
            post(services::lifecycle::stop),
        )
        .route(
            "/external-services/{id}/upgrade",
            post(services::lifecycle::upgrade),
        )
        .route(
            "/external-services/{id}/health",
            get(services::lifecycle::health),
        )
        .route(
            "/external-services/{id}/projects",
            post(links::link).get(links::list),
        )
        .route(
            "/external-services/{id}/projects/{project_id}",
            axum::routing::delete(links::unlink),
        )
        .route(
            "/external-services/{id}/projects/{project_id}/environment",
            get(links::environment),
        )
        .route(
            "/external-services/{id}/preview-environment-names",
            get(links::preview_names),
        )
        .route(
            "/external-services/{id}/preview-environment-masked",
            get(links::preview_masked),
        )
        .route(
            "/projects/{id}/environments/{environment}/variables",
            get(links::project_variables),
        )
        .route(
            "/external-services/{id}/operations",
            get(operations::list_for_service),
        )
        .route("/operations/{id}", get(operations::get))
        .route("/projects", post(projects::create).get(projects::list))
        .route(
            "/projects/{id}",
            get(projects::get).delete(projects::delete),
        )
        .route(
            "/projects/{id}/environments",
            post(projects::add_environment),
        )
        .route("/tokens", post(tokens::create).get(tokens::list))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/system/status", get(system::status))
        .fallback(problem::not_found_route)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(system::healthz))
        .fallback(problem::not_found_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}
