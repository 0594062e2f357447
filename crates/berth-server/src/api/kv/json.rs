//! Bodies of the KV routes: Temps' requests and answers (`temps-kv` handlers), field for field,
//! with Berth's additions marked. Every data request may name `project_id`: required with an
//! admin token, optional with a project token (which may only name its own project).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::manager::kv::KvStatus;

/// Any JSON value, stated as every JSON type (a schema without `type` says the same, but the
/// typed OpenAPI document cannot read it back).
fn any_json(description: &str) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
            Type::Null,
        ]))
        .description(Some(description))
        .build()
}

fn stored_value() -> utoipa::openapi::schema::Object {
    any_json("The stored JSON value, or null if the key does not exist.")
}

fn value_to_store() -> utoipa::openapi::schema::Object {
    any_json("Any JSON value; stored as its JSON text.")
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetRequest {
    /// 1 to 1024 bytes of UTF-8 without control characters (NUL included); `*`, `?`, `[`, `:`
    /// and `..` are plain characters in a key.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "user:123"
    )]
    pub key: String,
    /// The project whose keys to use: required with an admin token; a project token implies
    /// its own.
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GetResponse {
    #[schema(schema_with = stored_value)]
    pub value: Option<Value>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRequest {
    /// 1 to 1024 bytes of UTF-8 without control characters (NUL included); `*`, `?`, `[`, `:`
    /// and `..` are plain characters in a key.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "user:123"
    )]
    pub key: String,
    #[schema(schema_with = value_to_store)]
    pub value: Value,
    /// Expire after this many seconds (not with `px`).
    #[schema(minimum = 1)]
    pub ex: Option<i64>,
    /// Expire after this many milliseconds (not with `ex`).
    #[schema(minimum = 1)]
    pub px: Option<i64>,
    /// Only set if the key does not exist (not with `xx`).
    #[serde(default)]
    pub nx: bool,
    /// Only set if the key exists (not with `nx`).
    #[serde(default)]
    pub xx: bool,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SetResponse {
    /// `OK`, or null when `nx`/`xx` kept the value from being written (Redis' answer, and
    /// what Temps' SDK documents).
    #[schema(example = "OK")]
    pub result: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DelRequest {
    /// At most 1000 keys (each as `key` in `/kv/get`).
    #[schema(max_items = 1000)]
    pub keys: Vec<String>,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DelResponse {
    /// How many of the keys existed.
    pub deleted: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrRequest {
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "counter"
    )]
    pub key: String,
    /// Added to the integer at `key` (absent: 0); default 1, may be negative.
    pub amount: Option<i64>,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncrResponse {
    /// The value after the increment.
    pub value: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpireRequest {
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "session:abc"
    )]
    pub key: String,
    /// Time to live in seconds; zero or less deletes the key now (Redis' rule).
    pub seconds: i64,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExpireResponse {
    /// Whether the key existed (and now expires).
    pub success: bool,
    /// The same as 1 or 0: Temps' SDK reads `result`, its server answers `success`.
    pub result: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TtlRequest {
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "session:abc"
    )]
    pub key: String,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TtlResponse {
    /// Seconds left; -1 without expiry, -2 if the key does not exist.
    pub ttl: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysRequest {
    /// Redis glob syntax (`*`, `?`, `[abc]`, `[^a]`, `\` escapes), matched within the
    /// project's own keys only.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$",
        example = "user:*"
    )]
    pub pattern: String,
    #[schema(minimum = 1)]
    pub project_id: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeysResponse {
    /// The matching keys (without any prefix), sorted; at most 10000.
    pub keys: Vec<String>,
}

/// Temps' `EnableKvResponse` and `UpdateKvResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KvChangeResponse {
    pub success: bool,
    pub message: String,
    pub status: KvStatus,
}

/// Temps' `DisableKvResponse`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DisableResponse {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DisableQuery {
    /// Also delete the backing Redis service with every project's KV data (default: keep it,
    /// stopped, for a later enable).
    #[serde(default)]
    pub delete_data: bool,
}
