//! The OpenAPI 3.1 document, generated from the `#[utoipa::path]` annotations next to each
//! handler and the `ToSchema` derives on the types they take and return.

use serde_json::{Value, json};
use utoipa::Modify;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Berth API",
        description = "Managed PostgreSQL, Redis, MongoDB and S3 on Docker. Route-compatible with the Temps \
                       managed-services API. Errors are RFC 7807 problem+json; long operations answer when done \
                       (201/200/204, as Temps), or 202 with a pollable operation on `Prefer: respond-async`."
    ),
    // Referenced by the 202 answers (`AcceptedResponse`), which do not register it themselves.
    components(schemas(super::services::Accepted)),
    modifiers(&BearerAuth),
    tags(
        (name = "services", description = "Managed services and their lifecycle"),
        (name = "links", description = "Linking services to projects and the injected variables"),
        (name = "projects", description = "Projects and environments"),
        (name = "operations", description = "Long-running operations"),
        (name = "tokens", description = "API tokens"),
        (name = "kv", description = "Key-value storage for projects, kept in a Redis service of its own"),
        (name = "backups", description = "Backups to S3-compatible destinations: streamed, verified on the destination, with manifests"),
        (name = "system", description = "Server status")
    )
)]
pub struct ApiDoc;

/// Every route requires `Authorization: Bearer <token>`, of a scope that allows it.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token (`POST /api/tokens`, `berth token create`). Its scope decides \
                         what it may call: `admin` every route, `read_only` every GET, `project` \
                         only the reads of its own project and its KV. Each operation lists the scopes that \
                         may call it in `x-token-scopes`; any other answers 403.",
                    ))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// What the derives cannot say, added to the generated document: positive ids, the service
/// types, and OpenAPI `links` from each create response to the routes that take its id (so
/// clients and fuzzers can follow a created resource through the API).
pub fn finish(document: OpenApi) -> OpenApi {
    let mut value = serde_json::to_value(&document).expect("the OpenAPI document serialises");
    positive_ids(&mut value);
    service_types(&mut value);
    environment_names(&mut value);
    token_scopes(&mut value);
    wildcard_names(&mut value);
    let links: Vec<_> = LINK_RULES
        .iter()
        .map(|rule| (rule, links_to_targets(&mut value, rule)))
        .collect();
    let mut document: OpenApi =
        serde_json::from_value(value).expect("the finished OpenAPI document deserialises");
    for (rule, links) in links {
        attach_links(&mut document, rule, links);
    }
    document
}

const METHODS: [&str; 6] = ["get", "head", "put", "post", "delete", "patch"];

fn operations(value: &mut Value) -> impl Iterator<Item = (&String, &str, &mut Value)> {
    value["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            item.as_object_mut()
                .into_iter()
                .flat_map(|item| item.iter_mut())
                .filter_map(move |(method, operation)| {
                    METHODS
                        .iter()
                        .find(|m| **m == method.as_str())
                        .map(|m| (path, *m, operation))
                })
        })
}

/// axum spells a catch-all segment `{*path}` (the route is registered with it); OpenAPI
/// names it `{path}`. Renamed last, after the policy has read the routes as axum has them.
fn wildcard_names(value: &mut Value) {
    let Some(paths) = value["paths"].as_object_mut() else {
        return;
    };
    let wild: Vec<String> = paths.keys().filter(|k| k.contains("{*")).cloned().collect();
    for key in wild {
        if let Some(item) = paths.remove(&key) {
            paths.insert(key.replace("{*", "{"), item);
        }
    }
}

/// Path ids are positive integers (`IdPath`, `parse_id`): anything else is a 404.
fn positive_ids(value: &mut Value) {
    for (_, _, operation) in operations(value) {
        let Some(parameters) = operation["parameters"].as_array_mut() else {
            continue;
        };
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default();
            if parameter["in"] == "path"
                && (name == "id" || name.ends_with("_id"))
                && parameter["schema"]["type"] == "integer"
            {
                parameter["schema"]["minimum"] = json!(1);
            }
        }
    }
}

/// The service types are the registered engines.
fn service_types(value: &mut Value) {
    let types = json!(crate::engines::service_types());
    value["components"]["schemas"]["CreateRequest"]["properties"]["service_type"]["enum"] =
        types.clone();
    for (_, _, operation) in operations(value) {
        let Some(parameters) = operation["parameters"].as_array_mut() else {
            continue;
        };
        for parameter in parameters {
            if parameter["in"] == "path" && parameter["name"] == "service_type" {
                parameter["schema"]["enum"] = types.clone();
            }
        }
    }
}

/// `CreateProject.environments` takes the names `AddEnvironment.name` takes, each once.
fn environment_names(value: &mut Value) {
    let schemas = &mut value["components"]["schemas"];
    let name = schemas["AddEnvironment"]["properties"]["name"].clone();
    let environments = &mut schemas["CreateProject"]["properties"]["environments"];
    if let Some(items) = environments["items"].as_object_mut() {
        for (key, constraint) in name.as_object().into_iter().flatten() {
            if key != "description" {
                items.insert(key.clone(), constraint.clone());
            }
        }
        environments["uniqueItems"] = json!(true);
    }
}

/// Which token scopes may call each route, from the policy that decides it (`x-token-scopes`),
/// and the 403 every route answers to the others (a project token naming another project
/// included).
fn token_scopes(value: &mut Value) {
    for (path, method, operation) in operations(value) {
        let method = axum::http::Method::from_bytes(method.to_uppercase().as_bytes())
            .expect("an HTTP method");
        operation["x-token-scopes"] = json!(super::policy::scopes_allowed(&method, path));
        operation["responses"]["403"] = json!({
            "description": "The token's scope does not allow this route, or this project",
            "content": {
                "application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}
                }
            }
        });
    }
}

/// Links from the responses of one operation that creates something to every operation whose
/// path takes its id.
struct LinkRule {
    /// The creating operation (method, path) and the answers that carry the created resource.
    method: &'static str,
    path: &'static str,
    statuses: &'static [&'static str],
    /// (path segment, parameter, runtime expression): a path containing the segment (followed
    /// by `/` or the end) gets its parameter from the response.
    targets: &'static [(&'static str, &'static str, &'static str)],
    /// Whether a target path must contain every segment (otherwise any one).
    all: bool,
}

const LINK_RULES: &[LinkRule] = &[
    LinkRule {
        method: "post",
        path: "/api/external-services",
        statuses: &["201", "200"],
        targets: &[("/api/external-services/{id}", "id", "$response.body#/id")],
        all: false,
    },
    LinkRule {
        method: "post",
        path: "/api/projects",
        statuses: &["201"],
        targets: &[
            ("/api/projects/{id}", "id", "$response.body#/id"),
            ("/projects/{project_id}", "project_id", "$response.body#/id"),
            (
                "/environments/{environment}",
                "environment",
                "$response.body#/environments/0/slug",
            ),
        ],
        all: false,
    },
    LinkRule {
        method: "post",
        path: "/api/projects/{id}/environments",
        statuses: &["201"],
        targets: &[("/api/projects/{id}", "id", "$response.body#/id")],
        all: false,
    },
    LinkRule {
        method: "post",
        path: "/api/tokens",
        statuses: &["201"],
        targets: &[("/api/tokens/{id}", "id", "$response.body#/id")],
        all: false,
    },
    LinkRule {
        method: "post",
        path: "/api/backups/schedules",
        statuses: &["201"],
        targets: &[("/api/backups/schedules/{id}", "id", "$response.body#/id")],
        all: false,
    },
    LinkRule {
        method: "post",
        path: "/api/external-services/{id}/projects",
        statuses: &["201", "200"],
        targets: &[
            (
                "/api/external-services/{id}",
                "id",
                "$response.body#/service_id",
            ),
            (
                "/projects/{project_id}",
                "project_id",
                "$response.body#/project_id",
            ),
        ],
        all: true,
    },
];

fn contains_segment(path: &str, segment: &str) -> bool {
    path.match_indices(segment)
        .any(|(at, _)| matches!(path[at + segment.len()..].chars().next(), None | Some('/')))
}

/// A JSON pointer to an operation (`#/paths/~1api~1tokens~1{id}/delete`), which stays exact
/// when two handlers share an operationId.
fn operation_ref(path: &str, method: &str) -> String {
    format!(
        "#/paths/{}/{method}",
        path.replace('~', "~0").replace('/', "~1")
    )
}

/// A link name from the method and path: `delete-tokens-id`.
fn link_name(path: &str, method: &str) -> String {
    let words = path
        .trim_start_matches("/api")
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        .filter(|w| !w.is_empty());
    std::iter::once(method)
        .chain(words)
        .collect::<Vec<_>>()
        .join("-")
}

/// A link to add: its name, operationRef and (parameter, runtime expression) pairs.
type PlannedLink = (String, String, Vec<(&'static str, &'static str)>);

/// The links a rule gives.
fn links_to_targets(value: &mut Value, rule: &LinkRule) -> Vec<PlannedLink> {
    let mut links = Vec::new();
    for (path, method, _) in operations(value) {
        if method == rule.method && path == rule.path {
            continue;
        }
        let matching: Vec<_> = rule
            .targets
            .iter()
            .filter(|(segment, _, _)| contains_segment(path, segment))
            .map(|(_, name, expression)| (*name, *expression))
            .collect();
        if matching.is_empty() || (rule.all && matching.len() < rule.targets.len()) {
            continue;
        }
        links.push((
            link_name(path, method),
            operation_ref(path, method),
            matching,
        ));
    }
    links
}

/// Built on the typed document: utoipa serialises `Link`s but cannot read them back.
fn attach_links(document: &mut OpenApi, rule: &LinkRule, links: Vec<PlannedLink>) {
    let operation = document
        .paths
        .paths
        .get_mut(rule.path)
        .and_then(|item| match rule.method {
            "post" => item.post.as_mut(),
            "put" => item.put.as_mut(),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!(
                "link rule for a missing operation {} {}",
                rule.method, rule.path
            )
        });
    for status in rule.statuses {
        let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) else {
            continue;
        };
        for (name, reference, parameters) in &links {
            let link = parameters
                .iter()
                .fold(
                    LinkBuilder::new().operation_ref(reference),
                    |link, (name, expression)| link.parameter(*name, *expression),
                )
                .build();
            response.links.insert(name.clone(), RefOr::T(link));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Value {
        serde_json::to_value(crate::api::openapi_document()).unwrap()
    }

    #[test]
    fn service_create_links_to_every_route_taking_its_id() {
        let doc = document();
        let links = &doc["paths"]["/api/external-services"]["post"]["responses"]["201"]["links"];
        for method in ["get", "put", "delete"] {
            let link = &links[format!("{method}-external-services-id")];
            assert_eq!(
                link["operationRef"],
                format!("#/paths/~1api~1external-services~1{{id}}/{method}")
            );
            assert_eq!(link["parameters"]["id"], "$response.body#/id");
        }
        let mut targets = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/external-services/{id}") {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                let reference = operation_ref(path, method);
                assert!(
                    links
                        .as_object()
                        .unwrap()
                        .values()
                        .any(|l| l["operationRef"] == reference.as_str()
                            && l["parameters"]["id"] == "$response.body#/id"),
                    "no link from the service create to {method} {path}"
                );
                targets += 1;
            }
        }
        assert!(targets >= 10, "only {targets} routes take a service id");
        // Every operationRef resolves.
        for link in links.as_object().unwrap().values() {
            let pointer = link["operationRef"]
                .as_str()
                .unwrap()
                .trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "{pointer}");
        }
    }

    #[test]
    fn other_creates_link_to_their_routes() {
        let doc = document();
        let project = &doc["paths"]["/api/projects"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            project["get-projects-id"]["parameters"]["id"],
            "$response.body#/id"
        );
        assert_eq!(
            project["get-external-services-projects-project_id"]["parameters"]["project_id"],
            "$response.body#/id"
        );
        let token = &doc["paths"]["/api/tokens"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            token["delete-tokens-id"]["operationRef"],
            "#/paths/~1api~1tokens~1{id}/delete"
        );
        let link = &doc["paths"]["/api/external-services/{id}/projects"]["post"]["responses"]["201"]
            ["links"];
        let environment = &link["get-external-services-id-projects-project_id-environment"];
        assert_eq!(
            environment["parameters"]["id"],
            "$response.body#/service_id"
        );
        assert_eq!(
            environment["parameters"]["project_id"],
            "$response.body#/project_id"
        );
    }

    #[test]
    fn constraints_are_stated() {
        let doc = document();
        let create = &doc["components"]["schemas"]["CreateRequest"]["properties"];
        assert_eq!(
            create["service_type"]["enum"],
            json!(crate::engines::service_types())
        );
        assert_eq!(
            create["name"]["maxLength"],
            berth_core::names::MAX_SERVICE_NAME_LEN
        );
        let id = &doc["paths"]["/api/external-services/{id}"]["get"]["parameters"][0];
        assert_eq!(id["schema"]["minimum"], 1);
    }
}
