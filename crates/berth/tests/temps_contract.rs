//! Temps' managed-services contract: every route of Temps' "Managed services" table (except
//! `available-containers` and `import`, which come with the import issue) answers with Temps'
//! status code and the fields and JSON types Temps' clients read. The expectations are written
//! here, from Temps' handlers (`crates/temps-providers/src/handlers/{handlers,types}.rs`), so
//! the test needs nothing outside this repository. Berth may add fields; it may not drop or
//! retype these.
//!
//! Where Temps' code and its published OpenAPI document (`apps/temps-cli/openapi.json`)
//! disagree, Berth follows the code (what clients actually receive):
//! - `GET /external-services/{id}/projects/{project_id}/environment`: the code answers an object
//!   name -> value; the document says an array of `EnvironmentVariableInfo`. Berth: the object.
//! - `GET /external-services/{id}/health`: the code answers a JSON boolean; the document has no
//!   such route. Berth: the boolean.
//! - `GET /external-services/types/{service_type}/parameters`: the document gives no body; the
//!   code answers the JSON Schema (or `null` when a type has none). Berth: always a JSON Schema
//!   object.
//! - `GET /external-services/types`: the document's enum is mongodb|postgres|redis|s3; the code
//!   also lists kv, blob and rustfs. Berth lists the types it can run (a subset of both).
//! - `GET .../environment/{var_name}`: the document lists 403 for "encrypted" variables; the
//!   code never produces it. Berth: 200 with `sensitive`, or 404.
//! - `GET /external-services/projects/{project_id}/environment`: the document types the keys as
//!   int32; JSON object keys are strings, as the code sends them. Berth: service id as a string.
//!
//! Deliberate difference (issue 8): deleting a linked service is 409 in Berth (Temps: 400).
//!
//! Long operations are sent with `?wait=true`, so the walk checks Temps' final answers whether
//! or not the server's default is synchronous.

mod common;

use std::collections::BTreeMap;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The JSON types Temps' objects use.
#[derive(Debug, Clone, Copy)]
enum Ty {
    Int,
    Str,
    Bool,
    Obj,
    StrOrNull,
    ObjOrNull,
}

impl Ty {
    fn matches(self, v: &Value) -> bool {
        match self {
            Ty::Int => v.is_i64() || v.is_u64(),
            Ty::Str => v.is_string(),
            Ty::Bool => v.is_boolean(),
            Ty::Obj => v.is_object(),
            Ty::StrOrNull => v.is_string() || v.is_null(),
            Ty::ObjOrNull => v.is_object() || v.is_null(),
        }
    }
}

/// ExternalServiceInfo.
const SERVICE_INFO: &[(&str, Ty)] = &[
    ("id", Ty::Int),
    ("name", Ty::Str),
    ("service_type", Ty::Str),
    ("status", Ty::Str),
    ("version", Ty::StrOrNull),
    ("connection_info", Ty::StrOrNull),
    ("created_at", Ty::Str),
    ("updated_at", Ty::Str),
];

/// ExternalServiceDetails (`service` is checked as ExternalServiceInfo).
const SERVICE_DETAILS: &[(&str, Ty)] = &[
    ("service", Ty::Obj),
    ("current_parameters", Ty::ObjOrNull),
    ("parameter_schema", Ty::ObjOrNull),
];

/// ProjectServiceInfo (`project` as PROJECT_INFO, `service` as ExternalServiceInfo).
const PROJECT_SERVICE_INFO: &[(&str, Ty)] =
    &[("id", Ty::Int), ("project", Ty::Obj), ("service", Ty::Obj)];

const PROJECT_INFO: &[(&str, Ty)] = &[("id", Ty::Int), ("slug", Ty::Str), ("created_at", Ty::Str)];

/// EnvironmentVariableInfo.
const VARIABLE_INFO: &[(&str, Ty)] = &[
    ("name", Ty::Str),
    ("value", Ty::Str),
    ("sensitive", Ty::Bool),
];

/// ProviderMetadata.
const PROVIDER_METADATA: &[(&str, Ty)] = &[
    ("service_type", Ty::Str),
    ("display_name", Ty::Str),
    ("description", Ty::Str),
    ("icon_url", Ty::Str),
    ("color", Ty::Str),
];

/// Variables Temps injects on link.
const TEMPS_POSTGRES_VARS: &[&str] = &[
    "POSTGRES_URL",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DATABASE",
    "POSTGRES_NAME",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
];
const TEMPS_REDIS_VARS: &[&str] = &[
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_DATABASE",
];

/// Long operations wait for their outcome (see the module comment).
const WAIT: &str = "?wait=true";

fn fields(value: &Value, expected: &[(&str, Ty)], what: &str) {
    assert!(value.is_object(), "{what} is an object: {value}");
    for (name, ty) in expected {
        let field = value
            .get(*name)
            .unwrap_or_else(|| panic!("{what} lacks `{name}`: {value}"));
        assert!(
            ty.matches(field),
            "{what}.{name} should be {ty:?}, is {field}"
        );
    }
}

fn service_info(value: &Value, what: &str) {
    fields(value, SERVICE_INFO, what);
}

fn details(value: &Value, what: &str) {
    fields(value, SERVICE_DETAILS, what);
    service_info(&value["service"], &format!("{what}.service"));
    if let Some(params) = value["current_parameters"].as_object() {
        for (k, v) in params {
            assert!(v.is_string(), "{what}.current_parameters.{k} is a string");
        }
    }
}

fn project_service_info(value: &Value, what: &str) {
    fields(value, PROJECT_SERVICE_INFO, what);
    fields(&value["project"], PROJECT_INFO, &format!("{what}.project"));
    service_info(&value["service"], &format!("{what}.service"));
}

fn string_map(value: &Value, what: &str) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} is an object of strings ({e}): {value}"))
}

/// A request with its status, Content-Type and JSON body (Null when empty).
async fn send(
    berth: &Berth,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut req = reqwest::Client::new()
        .request(method, berth.url(path))
        .bearer_auth(&berth.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (status, content_type, value)
}

/// `status` and a JSON body.
async fn expect(
    berth: &Berth,
    method: Method,
    path: &str,
    body: Option<Value>,
    status: StatusCode,
) -> Value {
    let (got, content_type, value) = send(berth, method.clone(), path, body).await;
    assert_eq!(
        got,
        status,
        "{method} {path}: {value}\nlog tail:\n{}",
        tail(&berth.log())
    );
    if status != StatusCode::NO_CONTENT {
        assert!(
            content_type.starts_with("application/json"),
            "{method} {path}: Content-Type {content_type}"
        );
    }
    value
}

/// An RFC 7807 problem with `status`.
async fn expect_problem(berth: &Berth, method: Method, path: &str, status: StatusCode) -> Value {
    let (got, content_type, value) = send(berth, method.clone(), path, None).await;
    assert_eq!(got, status, "{method} {path}: {value}");
    assert_eq!(content_type, "application/problem+json", "{method} {path}");
    assert_eq!(value["status"], status.as_u16(), "{value}");
    assert!(
        value["title"].is_string() && value["detail"].is_string(),
        "{value}"
    );
    value
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test]
async fn every_managed_services_route_answers_as_temps() {
    let berth = Berth::start().await;

    // GET /external-services/types: an array of type names.
    let types = expect(
        &berth,
        Method::GET,
        "/api/external-services/types",
        None,
        StatusCode::OK,
    )
    .await;
    let names: Vec<&str> = types
        .as_array()
        .unwrap_or_else(|| panic!("types is an array: {types}"))
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap_or_else(|| panic!("type names are strings: {types}"))
        })
        .collect();
    assert_eq!(names, ["postgres", "redis", "mongodb", "s3"]);

    // Provider metadata, all of it and by type; 404 for an unknown type.
    let all = expect(
        &berth,
        Method::GET,
        "/api/external-services/providers/metadata",
        None,
        StatusCode::OK,
    )
    .await;
    let all = all.as_array().unwrap_or_else(|| panic!("{all}"));
    assert_eq!(all.len(), names.len(), "one entry per type");
    for (meta, name) in all.iter().zip(&names) {
        fields(meta, PROVIDER_METADATA, "ProviderMetadata");
        assert_eq!(meta["service_type"], *name);
        let one = expect(
            &berth,
            Method::GET,
            &format!("/api/external-services/providers/metadata/{name}"),
            None,
            StatusCode::OK,
        )
        .await;
        assert_eq!(&one, meta);
        let icon = meta["icon_url"].as_str().unwrap();
        assert!(icon.starts_with("data:image/svg+xml,"), "{icon}");
        let color = meta["color"].as_str().unwrap();
        assert!(
            color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{color}"
        );
    }
    assert_eq!(all[0]["display_name"], "PostgreSQL");
    expect_problem(
        &berth,
        Method::GET,
        "/api/external-services/providers/metadata/cassandra",
        StatusCode::NOT_FOUND,
    )
    .await;

    // The JSON Schema of a type's parameters; 404 for an unknown type.
    let schema = expect(
        &berth,
        Method::GET,
        "/api/external-services/types/postgres/parameters",
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(schema["type"], "object", "{schema}");
    let props = schema["properties"].as_object().unwrap();
    for (name, editable) in [
        ("port", true),
        ("docker_image", true),
        ("max_connections", true),
        ("ssl_mode", true),
        ("database", false),
        ("username", false),
        ("password", false),
    ] {
        assert_eq!(
            props[name]["x-editable"], editable,
            "{name}: {}",
            props[name]
        );
        assert!(props[name]["description"].is_string(), "{name}");
    }
    assert_eq!(props["max_connections"]["minimum"], 1);
    assert_eq!(props["max_connections"]["maximum"], 10000);
    assert_eq!(props["max_connections"]["default"], 100);
    assert!(
        props["ssl_mode"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("verify-full"))
    );
    assert_eq!(props["database"]["pattern"], "^[a-z_][a-z0-9_]*$");
    assert_eq!(props["database"]["maxLength"], 63);
    assert_eq!(props["docker_image"]["default"], "berth/postgres:17");
    assert_eq!(props["password"]["x-secret"], true);
    assert_eq!(schema["x-versions"], json!(["17", "15"]));
    for path in [
        "/api/external-services/types/mysql/parameters",
        "/api/external-services/types/Postgres/parameters",
    ] {
        expect_problem(&berth, Method::GET, path, StatusCode::NOT_FOUND).await;
    }

    // POST /external-services {name, service_type, parameters, version?}: 201 with the service.
    // Parameter values as Temps' clients send them: numbers too.
    let pg_name = unique("contract-pg");
    let port = free_port();
    let pg = expect(
        &berth,
        Method::POST,
        &format!("/api/external-services{WAIT}"),
        Some(json!({
            "name": pg_name,
            "service_type": "postgres",
            "version": "15",
            "parameters": {"port": port, "max_connections": 120},
        })),
        StatusCode::CREATED,
    )
    .await;
    service_info(&pg, "created service");
    assert_eq!(pg["status"], "running", "{pg}");
    assert_eq!(pg["parameters"]["port"], port.to_string());
    assert_eq!(pg["parameters"]["max_connections"], "120");
    assert_eq!(pg["parameters"]["docker_image"], "berth/postgres:15");
    let id = pg["id"].as_i64().unwrap();
    let redis = expect(
        &berth,
        Method::POST,
        &format!("/api/external-services{WAIT}"),
        Some(json!({
            "name": unique("contract-redis"),
            "service_type": "redis",
            "version": "7.x",
            "parameters": {},
        })),
        StatusCode::CREATED,
    )
    .await;
    service_info(&redis, "created service");
    let redis_id = redis["id"].as_i64().unwrap();

    // GET /external-services: an array of ExternalServiceInfo.
    let list = expect(
        &berth,
        Method::GET,
        "/api/external-services",
        None,
        StatusCode::OK,
    )
    .await;
    let list = list.as_array().unwrap_or_else(|| panic!("{list}"));
    assert_eq!(list.len(), 2);
    for s in list {
        service_info(s, "listed service");
    }

    // GET /external-services/{id} and /by-slug/{slug}: ExternalServiceDetails.
    let by_id = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/{id}"),
        None,
        StatusCode::OK,
    )
    .await;
    details(&by_id, "details");
    assert_eq!(by_id["service"]["id"], id);
    assert_eq!(
        by_id["current_parameters"]["password"], "********",
        "secrets masked"
    );
    assert_eq!(by_id["current_parameters"]["max_connections"], "120");
    assert_eq!(by_id["parameter_schema"], schema, "the type's schema");
    assert!(
        by_id["service"]["warnings"].is_array(),
        "Berth's warnings stay in `service`"
    );
    let by_slug = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/by-slug/{pg_name}"),
        None,
        StatusCode::OK,
    )
    .await;
    details(&by_slug, "details by slug");
    assert_eq!(by_slug["service"]["id"], id);
    for slug in ["no-such-service", "Not_A_Name", "x%20y"] {
        expect_problem(
            &berth,
            Method::GET,
            &format!("/api/external-services/by-slug/{slug}"),
            StatusCode::NOT_FOUND,
        )
        .await;
    }

    // GET /external-services/{id}/health: a JSON boolean.
    let health = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/{id}/health"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(health, Value::Bool(true), "health is a JSON boolean");

    // PUT /external-services/{id} {parameters, docker_image?}: 200 with the service.
    let updated = expect(
        &berth,
        Method::PUT,
        &format!("/api/external-services/{id}{WAIT}"),
        Some(json!({"parameters": {"max_connections": 150}, "docker_image": "berth/postgres:15"})),
        StatusCode::OK,
    )
    .await;
    service_info(&updated, "updated service");
    assert_eq!(updated["parameters"]["max_connections"], "150");

    // POST /external-services/{id}/upgrade {docker_image}: 200 with the service.
    let upgraded = expect(
        &berth,
        Method::POST,
        &format!("/api/external-services/{id}/upgrade{WAIT}"),
        Some(json!({"docker_image": "berth/postgres:15"})),
        StatusCode::OK,
    )
    .await;
    service_info(&upgraded, "upgraded service");

    // POST /external-services/{id}/stop and /start: 200 with the service.
    for (action, status) in [("stop", "stopped"), ("start", "running")] {
        let s = expect(
            &berth,
            Method::POST,
            &format!("/api/external-services/{id}/{action}{WAIT}"),
            None,
            StatusCode::OK,
        )
        .await;
        service_info(&s, action);
        assert_eq!(s["status"], status, "{s}");
    }

    // Previews: names, and names -> masked values.
    let preview = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/{id}/preview-environment-names"),
        None,
        StatusCode::OK,
    )
    .await;
    let preview: Vec<String> = serde_json::from_value(preview.clone())
        .unwrap_or_else(|e| panic!("an array of names ({e}): {preview}"));
    for name in TEMPS_POSTGRES_VARS {
        assert!(
            preview.iter().any(|n| n == name),
            "{name} is injected: {preview:?}"
        );
    }
    let masked = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/{id}/preview-environment-masked"),
        None,
        StatusCode::OK,
    )
    .await;
    let masked = string_map(&masked, "masked preview");
    assert_eq!(masked.keys().collect::<Vec<_>>(), {
        let mut sorted: Vec<&String> = preview.iter().collect();
        sorted.sort();
        sorted
    });

    // POST /external-services/{id}/projects {project_id}: 201 with ProjectServiceInfo.
    let project_slug = unique("contract-proj");
    let (status, project) = berth
        .call(
            Method::POST,
            "/api/projects",
            Some(json!({"name": project_slug, "environments": ["production", "staging"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let pid = project["id"].as_i64().unwrap();
    let link = expect(
        &berth,
        Method::POST,
        &format!("/api/external-services/{id}/projects"),
        Some(json!({"project_id": pid})),
        StatusCode::CREATED,
    )
    .await;
    project_service_info(&link, "link");
    assert_eq!(link["project"]["id"], pid);
    assert_eq!(link["project"]["slug"], project["slug"]);
    assert_eq!(link["service"]["id"], id);
    assert_eq!(
        link["environments"].as_array().unwrap().len(),
        2,
        "Berth's tenants alongside"
    );
    let redis_link = expect(
        &berth,
        Method::POST,
        &format!("/api/external-services/{redis_id}/projects"),
        Some(json!({"project_id": pid})),
        StatusCode::CREATED,
    )
    .await;
    project_service_info(&redis_link, "redis link");
    assert_ne!(redis_link["id"], link["id"], "each link has its own id");

    // GET /external-services/{id}/projects: an array of ProjectServiceInfo.
    let links = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/{id}/projects"),
        None,
        StatusCode::OK,
    )
    .await;
    let links = links.as_array().unwrap_or_else(|| panic!("{links}"));
    assert_eq!(links.len(), 1);
    project_service_info(&links[0], "listed link");
    assert_eq!(links[0]["id"], link["id"]);

    // GET /external-services/projects/{project_id}: the project's links; 404 unknown project.
    let of_project = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/projects/{pid}"),
        None,
        StatusCode::OK,
    )
    .await;
    let of_project = of_project
        .as_array()
        .unwrap_or_else(|| panic!("{of_project}"));
    assert_eq!(of_project.len(), 2);
    for l in of_project {
        project_service_info(l, "project link");
    }
    let mut service_ids: Vec<i64> = of_project
        .iter()
        .map(|l| l["service"]["id"].as_i64().unwrap())
        .collect();
    service_ids.sort();
    assert_eq!(service_ids, [id, redis_id]);
    for path in [
        "/api/external-services/projects/999999",
        "/api/external-services/projects/abc",
        "/api/external-services/projects/999999/environment",
    ] {
        expect_problem(&berth, Method::GET, path, StatusCode::NOT_FOUND).await;
    }

    // GET /external-services/{id}/projects/{project_id}/environment: an object name -> value.
    let env_path = format!("/api/external-services/{id}/projects/{pid}/environment");
    let env = expect(&berth, Method::GET, &env_path, None, StatusCode::OK).await;
    let env = string_map(&env, "environment");
    for name in TEMPS_POSTGRES_VARS {
        assert!(env.contains_key(*name), "{name} is injected: {env:?}");
    }
    assert_eq!(env["POSTGRES_NAME"], env["POSTGRES_DATABASE"]);
    let staging = expect(
        &berth,
        Method::GET,
        &format!("{env_path}?environment=staging"),
        None,
        StatusCode::OK,
    )
    .await;
    let staging = string_map(&staging, "staging environment");
    assert_ne!(staging["POSTGRES_DATABASE"], env["POSTGRES_DATABASE"]);

    // .../environment/{var_name}: EnvironmentVariableInfo; 404 for a variable it does not inject.
    for (name, sensitive) in [
        ("POSTGRES_PASSWORD", true),
        ("POSTGRES_URL", true),
        ("POSTGRES_HOST", false),
        ("POSTGRES_NAME", false),
    ] {
        let var = expect(
            &berth,
            Method::GET,
            &format!("{env_path}/{name}"),
            None,
            StatusCode::OK,
        )
        .await;
        fields(&var, VARIABLE_INFO, "EnvironmentVariableInfo");
        assert_eq!(var["name"], name);
        assert_eq!(var["value"], env[name].as_str());
        assert_eq!(var["sensitive"], sensitive, "{var}");
    }
    let var = expect(
        &berth,
        Method::GET,
        &format!("{env_path}/POSTGRES_DATABASE?environment=staging"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(var["value"], staging["POSTGRES_DATABASE"].as_str());
    for name in ["NO_SUCH_VAR", "postgres_url", "BAD-NAME"] {
        expect_problem(
            &berth,
            Method::GET,
            &format!("{env_path}/{name}"),
            StatusCode::NOT_FOUND,
        )
        .await;
    }
    expect_problem(
        &berth,
        Method::GET,
        &format!("{env_path}/POSTGRES_URL?environment=nosuch"),
        StatusCode::NOT_FOUND,
    )
    .await;

    // GET /external-services/projects/{project_id}/environment: service id -> name -> value.
    let by_service = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/projects/{pid}/environment"),
        None,
        StatusCode::OK,
    )
    .await;
    let by_service: BTreeMap<String, BTreeMap<String, String>> =
        serde_json::from_value(by_service.clone())
            .unwrap_or_else(|e| panic!("an object of objects of strings ({e}): {by_service}"));
    assert_eq!(by_service.keys().cloned().collect::<Vec<_>>(), {
        let mut keys = vec![id.to_string(), redis_id.to_string()];
        keys.sort();
        keys
    });
    assert_eq!(by_service[&id.to_string()], env);
    for name in TEMPS_REDIS_VARS {
        assert!(
            by_service[&redis_id.to_string()].contains_key(*name),
            "{name} is injected by redis"
        );
    }

    // Deleting a linked service: 409 (Temps: 400; see the module comment).
    expect_problem(
        &berth,
        Method::DELETE,
        &format!("/api/external-services/{id}{WAIT}"),
        StatusCode::CONFLICT,
    )
    .await;

    // DELETE /external-services/{id}/projects/{project_id}: 204.
    for service in [id, redis_id] {
        let body = expect(
            &berth,
            Method::DELETE,
            &format!("/api/external-services/{service}/projects/{pid}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
        assert_eq!(body, Value::Null);
    }
    let of_project = expect(
        &berth,
        Method::GET,
        &format!("/api/external-services/projects/{pid}"),
        None,
        StatusCode::OK,
    )
    .await;
    assert_eq!(of_project, json!([]));

    // DELETE /external-services/{id}: 204.
    for service in [id, redis_id] {
        let body = expect(
            &berth,
            Method::DELETE,
            &format!("/api/external-services/{service}{WAIT}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await;
        assert_eq!(body, Value::Null);
    }
    expect_problem(
        &berth,
        Method::GET,
        &format!("/api/external-services/by-slug/{pg_name}"),
        StatusCode::NOT_FOUND,
    )
    .await;
}
