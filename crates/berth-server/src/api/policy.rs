//! Who may call what, decided in one place: the auth middleware asks [`authorize`] once per
//! request, from the token's scope, the method and the matched route (`MatchedPath`, e.g.
//! `/api/projects/{id}`) with its path parameters. Handlers check nothing themselves.
//!
//! - `admin` tokens may call every route.
//! - `read_only` tokens may call every read (GET, and HEAD, which axum answers with the GET
//!   handler) except the [`CREDENTIAL_READS`], which answer with passwords in clear: a
//!   monitoring or dashboard token must never be a way to the databases.
//! - `project` tokens may call only the routes in [`PROJECT_ROUTES`] (the reads of a project
//!   and the KV data routes), and only for their own project. Any route not listed there is refused, so a route added later is admin-only until
//!   someone allows it here. Another project's id is refused the same way whether or not that
//!   project exists: the answer never tells.
//!
//! Routes that take their project from the body or the query instead of the path (the KV data
//! routes, the blob routes to come) are listed with [`ProjectFrom::Acting`] and call
//! [`Principal::acting_project`].

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;

use super::problem::ApiError;
use crate::store::Scope;

/// The caller of an authenticated request (a request extension set by the auth middleware).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub token_id: i64,
    pub scope: Scope,
}

/// Where a route a project token may call names its project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectFrom {
    /// This path parameter holds the project id.
    Path(&'static str),
    /// The body or the query: the handler resolves it with [`Principal::acting_project`].
    Acting,
}

/// A route a project token may call.
pub struct ProjectRoute {
    pub method: &'static str,
    /// The route as axum matches it, `/api` included.
    pub path: &'static str,
    pub project: ProjectFrom,
}

const fn read(path: &'static str, project_param: &'static str) -> ProjectRoute {
    ProjectRoute {
        method: "GET",
        path,
        project: ProjectFrom::Path(project_param),
    }
}

/// A route whose handler takes the project from the body (see [`ProjectFrom::Acting`]).
const fn acting(method: &'static str, path: &'static str) -> ProjectRoute {
    ProjectRoute {
        method,
        path,
        project: ProjectFrom::Acting,
    }
}

/// Everything a project token may call: the reads of its own project, its KV and its Blob.
pub const PROJECT_ROUTES: &[ProjectRoute] = &[
    read("/api/projects/{id}", "id"),
    // The deploy-time contract `berth env` and `berth run` read.
    read(
        "/api/projects/{id}/environments/{environment}/variables",
        "id",
    ),
    read("/api/external-services/projects/{project_id}", "project_id"),
    read(
        "/api/external-services/projects/{project_id}/environment",
        "project_id",
    ),
    read(
        "/api/external-services/{id}/projects/{project_id}/environment",
        "project_id",
    ),
    read(
        "/api/external-services/{id}/projects/{project_id}/environment/{var_name}",
        "project_id",
    ),
    acting("POST", "/api/kv/get"),
    acting("POST", "/api/kv/set"),
    acting("POST", "/api/kv/del"),
    acting("POST", "/api/kv/incr"),
    acting("POST", "/api/kv/expire"),
    acting("POST", "/api/kv/ttl"),
    acting("POST", "/api/kv/keys"),
    acting("POST", "/api/blob"),
    acting("GET", "/api/blob"),
    acting("DELETE", "/api/blob"),
    acting("POST", "/api/blob/copy"),
    // GET and HEAD of one blob: the project is in the path.
    read("/api/blob/{project_id}/{*path}", "project_id"),
];

/// Reads whose answers carry credentials in clear (the reveal, and linked projects' variables).
/// Refused to `read_only` tokens; the masked previews stay open to them.
pub const CREDENTIAL_READS: &[&str] = &[
    "/api/external-services/{id}/reveal",
    "/api/projects/{id}/environments/{environment}/variables",
    "/api/external-services/projects/{project_id}/environment",
    "/api/external-services/{id}/projects/{project_id}/environment",
    "/api/external-services/{id}/projects/{project_id}/environment/{var_name}",
];

fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// Whether `scope` may call `method route` with these path parameters; the refusal says why
/// (a 403's detail).
pub fn authorize(
    scope: Scope,
    method: &Method,
    route: &str,
    params: &[(&str, &str)],
) -> Result<(), String> {
    match scope {
        Scope::Admin => Ok(()),
        Scope::ReadOnly if is_read(method) && CREDENTIAL_READS.contains(&route) => Err(format!(
            "this token's scope is read_only: it never sees credentials in clear ({route}); \
             the masked preview (/api/external-services/{{id}}/preview-environment-masked) is open to it"
        )),
        Scope::ReadOnly if is_read(method) => Ok(()),
        Scope::ReadOnly => Err(format!(
            "this token's scope is read_only: it may only read (GET), not {method} {route}"
        )),
        Scope::Project(own) => {
            let method = if method == Method::HEAD {
                Method::GET
            } else {
                method.clone()
            };
            let Some(allowed) = PROJECT_ROUTES
                .iter()
                .find(|r| r.method == method.as_str() && r.path == route)
            else {
                return Err(format!(
                    "this token's scope is project {own}: it may only read that project and \
                     its variables and use its KV and Blob, not {method} {route}"
                ));
            };
            match allowed.project {
                ProjectFrom::Acting => Ok(()),
                ProjectFrom::Path(name) => {
                    let named = params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
                    if named.and_then(|v| v.parse::<i64>().ok()) == Some(own) {
                        Ok(())
                    } else {
                        Err(not_own_project(own))
                    }
                }
            }
        }
    }
}

/// The same words for any project but the token's own, existing or not.
fn not_own_project(own: i64) -> String {
    format!("this token's scope is project {own}: it may not act for another project")
}

/// The scopes that may call `method route` (for some project id), as the API spells them.
pub fn scopes_allowed(method: &Method, route: &str) -> Vec<&'static str> {
    let mut scopes = vec!["admin"];
    if is_read(method) && !CREDENTIAL_READS.contains(&route) {
        scopes.push("read_only");
    }
    if PROJECT_ROUTES
        .iter()
        .any(|r| r.method == method.as_str() && r.path == route)
    {
        scopes.push("project");
    }
    scopes
}

impl Principal {
    /// The project this request acts for, on routes whose project comes from the body or the
    /// query: a project token acts for its own (naming another is 403), any other token must
    /// name one (400 without).
    pub fn acting_project(&self, requested: Option<i64>) -> Result<i64, ApiError> {
        match (self.scope, requested) {
            (Scope::Project(own), None) => Ok(own),
            (Scope::Project(own), Some(id)) if id == own => Ok(own),
            (Scope::Project(own), Some(_)) => Err(ApiError::forbidden(not_own_project(own))),
            (Scope::Admin | Scope::ReadOnly, Some(id)) if id > 0 => Ok(id),
            (Scope::Admin | Scope::ReadOnly, Some(id)) => Err(ApiError::bad_request(format!(
                "project_id must be a positive integer, not {id}"
            ))),
            (Scope::Admin | Scope::ReadOnly, None) => Err(ApiError::bad_request(
                "project_id is required (only a project-scoped token implies its project)",
            )),
        }
    }
}

/// Handlers take the caller as an argument; every `/api` route has one.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Principal>().copied().ok_or_else(|| {
            ApiError::internal("a handler outside the auth middleware asked for the caller")
        })
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    fn principal(scope: Scope) -> Principal {
        Principal { token_id: 7, scope }
    }

    #[test]
    fn admin_and_read_only() {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            assert!(authorize(Scope::Admin, &method, "/api/tokens", &[]).is_ok());
        }
        assert!(authorize(Scope::ReadOnly, &Method::GET, "/api/tokens", &[]).is_ok());
        assert!(authorize(Scope::ReadOnly, &Method::HEAD, "/api/projects", &[]).is_ok());
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            let refused = authorize(Scope::ReadOnly, &method, "/api/tokens", &[]).unwrap_err();
            assert!(refused.contains("read_only"), "{refused}");
        }
    }

    #[test]
    fn project_tokens_read_their_own_project_only() {
        let scope = Scope::Project(3);
        let route = "/api/external-services/{id}/projects/{project_id}/environment";
        let own = [("id", "9"), ("project_id", "3")];
        assert!(authorize(scope, &Method::GET, route, &own).is_ok());
        assert!(authorize(scope, &Method::HEAD, route, &own).is_ok());
        // The service id is not a project id: `{id}` here names the service.
        let service_3 = [("id", "3"), ("project_id", "4")];
        assert!(authorize(scope, &Method::GET, route, &service_3).is_err());
        for other in ["4", "03x", "", "-3"] {
            let refused = authorize(
                scope,
                &Method::GET,
                route,
                &[("id", "9"), ("project_id", other)],
            )
            .unwrap_err();
            assert_eq!(refused, not_own_project(3), "{other:?}");
        }
        assert!(authorize(scope, &Method::GET, route, &[]).is_err());
        assert!(authorize(scope, &Method::GET, "/api/projects/{id}", &[("id", "3")]).is_ok());
        // Writes to its own project, and unlisted routes, are refused.
        for (method, route) in [
            (Method::DELETE, "/api/projects/{id}"),
            (Method::POST, "/api/projects/{id}/environments"),
            (Method::GET, "/api/projects"),
            (Method::GET, "/api/tokens"),
            (Method::POST, "/api/tokens"),
            (Method::GET, "/api/external-services/{id}/reveal"),
            (Method::GET, "/api/some/route/added/later/{project_id}"),
        ] {
            let refused =
                authorize(scope, &method, route, &[("id", "3"), ("project_id", "3")]).unwrap_err();
            assert!(refused.contains("scope is project 3"), "{refused}");
        }
    }

    #[test]
    fn every_listed_route_exists_and_names_its_project_parameter() {
        let document = serde_json::to_value(crate::api::openapi_document()).unwrap();
        for route in PROJECT_ROUTES {
            // The document spells axum's wildcard `{*path}` the OpenAPI way, `{path}`.
            let documented = route.path.replace("{*", "{");
            let operation = &document["paths"][documented.as_str()][route.method.to_lowercase()];
            assert!(
                operation.is_object(),
                "{} {} is not a route",
                route.method,
                route.path
            );
            if let ProjectFrom::Path(name) = route.project {
                assert!(
                    route.path.contains(&format!("{{{name}}}")),
                    "{} has no parameter {name}",
                    route.path
                );
            }
        }
    }

    #[test]
    fn kv_data_routes_take_the_project_from_the_body() {
        let scope = Scope::Project(3);
        for route in ["/api/kv/get", "/api/kv/set", "/api/kv/keys"] {
            assert!(
                authorize(scope, &Method::POST, route, &[]).is_ok(),
                "{route}"
            );
            assert!(authorize(Scope::ReadOnly, &Method::POST, route, &[]).is_err());
            assert_eq!(
                scopes_allowed(&Method::POST, route),
                ["admin", "project"],
                "{route}"
            );
        }
        // Managing KV is the administrator's.
        for (method, route) in [
            (Method::POST, "/api/kv/enable"),
            (Method::PATCH, "/api/kv/update"),
            (Method::DELETE, "/api/kv/disable"),
            (Method::GET, "/api/kv/status"),
        ] {
            assert!(authorize(scope, &method, route, &[]).is_err(), "{route}");
        }
    }

    #[test]
    fn the_acting_project() {
        let project = principal(Scope::Project(5));
        assert_eq!(project.acting_project(None).unwrap(), 5);
        assert_eq!(project.acting_project(Some(5)).unwrap(), 5);
        let refused = project.acting_project(Some(6)).unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.detail.contains("scope"), "{}", refused.detail);
        for scope in [Scope::Admin, Scope::ReadOnly] {
            assert_eq!(principal(scope).acting_project(Some(6)).unwrap(), 6);
            for missing in [None, Some(0), Some(-1)] {
                let refused = principal(scope).acting_project(missing).unwrap_err();
                assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{missing:?}");
            }
        }
    }

    #[test]
    fn documented_scopes() {
        assert_eq!(scopes_allowed(&Method::POST, "/api/tokens"), ["admin"]);
        assert_eq!(
            scopes_allowed(&Method::GET, "/api/tokens"),
            ["admin", "read_only"]
        );
        assert_eq!(
            scopes_allowed(&Method::GET, "/api/projects/{id}"),
            ["admin", "read_only", "project"]
        );
    }
}
