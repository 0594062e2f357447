//! The HTTP API, route-compatible with the seed (`/api/external-services/...`). Every `/api`
//! route requires `Authorization: Bearer <token>` whose scope allows it (`policy.rs`); errors
//! are RFC 7807 problem+json. Routes are all listed here, once; handlers live one resource per
//! module.

mod auth;
mod backing;
mod backups;
mod blob;
mod extract;
mod kv;
mod links;
mod openapi;
mod operations;
pub mod policy;
mod problem;
mod projects;
mod services;
mod system;
mod tokens;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::manager::ServiceManager;
use crate::reconciler::Reconciler;
use crate::store::Store;

pub use policy::Principal;
pub use problem::ApiError;

/// Request bodies are small JSON documents; anything larger is refused with 413.
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub manager: Arc<ServiceManager>,
    pub reconciler: Arc<Reconciler>,
}

/// Every documented `/api` route, registered once, with its OpenAPI path item.
pub fn api_routes() -> OpenApiRouter<AppState> {
    use services::{catalog, crud, import, lifecycle};
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(crud::create, crud::list))
        .routes(routes!(import::available_containers))
        .routes(routes!(import::import))
        .routes(routes!(import::adopt))
        .routes(routes!(catalog::types))
        .routes(routes!(catalog::type_parameters))
        .routes(routes!(catalog::providers))
        .routes(routes!(catalog::provider))
        .routes(routes!(crud::get, crud::update, crud::delete))
        .routes(routes!(crud::by_slug))
        .routes(routes!(crud::reveal))
        .routes(routes!(lifecycle::start))
        .routes(routes!(lifecycle::stop))
        .routes(routes!(lifecycle::upgrade))
        .routes(routes!(lifecycle::upgrade_rollback))
        .routes(routes!(lifecycle::upgrade_finalize))
        .routes(routes!(lifecycle::health))
        .routes(routes!(lifecycle::recreate))
        .routes(routes!(operations::list_for_service))
        .routes(routes!(links::link, links::list))
        .routes(routes!(links::unlink))
        .routes(routes!(links::environment))
        .routes(routes!(links::variable))
        .routes(routes!(links::project_links))
        .routes(routes!(links::project_environment))
        .routes(routes!(links::preview_names))
        .routes(routes!(links::preview_masked))
        .routes(routes!(links::project_variables))
        .routes(routes!(operations::list))
        .routes(routes!(operations::get))
        .routes(routes!(projects::create, projects::list))
        .routes(routes!(projects::get, projects::delete))
        .routes(routes!(projects::add_environment))
        .routes(routes!(projects::delete_environment))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(kv::data::get))
        .routes(routes!(kv::data::set))
        .routes(routes!(kv::data::del))
        .routes(routes!(kv::data::incr))
        .routes(routes!(kv::data::expire))
        .routes(routes!(kv::data::ttl))
        .routes(routes!(kv::data::keys))
        .routes(routes!(kv::manage::status))
        .routes(routes!(kv::manage::enable))
        .routes(routes!(kv::manage::update))
        .routes(routes!(kv::manage::disable))
        .routes(routes!(
            blob::data::put,
            blob::data::list,
            blob::data::delete
        ))
        .routes(routes!(blob::data::copy))
        .routes(routes!(blob::download::get, blob::download::head))
        .routes(routes!(blob::manage::status))
        .routes(routes!(blob::manage::enable))
        .routes(routes!(blob::manage::update))
        .routes(routes!(blob::manage::disable))
        .routes(routes!(backups::sources::list, backups::sources::create))
        .routes(routes!(
            backups::sources::get,
            backups::sources::update,
            backups::sources::delete
        ))
        .routes(routes!(backups::sources::test))
        .routes(routes!(backups::sources::backups))
        .routes(routes!(backups::runs::run))
        .routes(routes!(backups::runs::get))
        .routes(routes!(backups::runs::verify))
        .routes(routes!(backups::runs::for_service))
        .routes(routes!(backups::restores::start))
        .routes(routes!(backups::restores::start_from_backup))
        .routes(routes!(backups::restores::get))
        .routes(routes!(backups::restores::cancel))
        .routes(routes!(backups::restores::for_service))
        .routes(routes!(backups::restores::capabilities))
        .routes(routes!(
            backups::schedules::list,
            backups::schedules::create
        ))
        .routes(routes!(backups::schedules::get, backups::schedules::delete))
        .routes(routes!(backups::schedules::backups))
        .routes(routes!(backups::schedules::enable))
        .routes(routes!(backups::schedules::disable))
        .routes(routes!(backups::schedules::run))
        .routes(routes!(backups::retention::plan, backups::retention::prune))
        .routes(routes!(backups::state::get_key, backups::state::set_key))
        .routes(routes!(backups::state::run))
        .routes(routes!(backups::state::list))
        .routes(routes!(system::status))
}

/// The whole OpenAPI document, paths under `/api`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    openapi::finish(
        OpenApiRouter::<AppState>::new()
            .nest("/api", api_routes())
            .into_openapi(),
    )
}

pub fn router(state: AppState) -> Router {
    let document = openapi_document()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    let (api, _) = api_routes().split_for_parts();
    let api = api
        .route(
            "/openapi.json",
            get(move || async move { ([(header::CONTENT_TYPE, "application/json")], document) }),
        )
        .fallback(problem::not_found_route)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(system::healthz))
        .route("/metrics", get(system::metrics))
        .fallback(problem::not_found_route)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}
