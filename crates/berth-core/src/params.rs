//! Parameter specs: each engine declares its parameters once (default, editable, secret,
//! value kind) and this module validates create and update requests against them. The seed's
//! tables are the specs; the API, the CLI and the docs all read them from here.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::secrets;

/// Parameter values are strings on the wire, as in the seed (`"port": "5432"`).
pub type Parameters = BTreeMap<String, String>;

/// What values a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A TCP port published on 127.0.0.1; when absent, the first free port from `base` up.
    Port { base: u16 },
    /// An integer in `min..=max`.
    Integer { min: i64, max: i64 },
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
    /// A Docker image reference; when absent, the engine's (configurable) default image.
    Image,
    /// A SQL identifier such as a database or role name: `[a-z_][a-z0-9_]*`, at most 63 bytes.
    Identifier,
    /// A secret; when absent, generated from a CSPRNG with `length` alphanumeric characters.
    Secret { length: usize },
}

/// One parameter of an engine, as the seed's tables describe it.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    /// One line for users (CLI help, API docs).
    pub doc: &'static str,
    pub kind: ParamKind,
    /// Static default, if any (ports, images and secrets are filled elsewhere).
    pub default: Option<&'static str>,
    /// Whether `PUT /external-services/{id}` may change it.
    pub editable: bool,
}

impl ParamSpec {
    pub fn is_secret(&self) -> bool {
        matches!(self.kind, ParamKind::Secret { .. })
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParamError {
    #[error("unknown parameter {name:?}; this service type accepts: {allowed}")]
    Unknown { name: String, allowed: String },
    #[error("invalid value for parameter {name:?}: {reason}")]
    Invalid { name: String, reason: String },
    #[error("parameter {0:?} is read-only after creation")]
    ReadOnly(String),
    #[error("parameter {name:?} is required: {reason}")]
    Required { name: String, reason: String },
}

fn find<'a>(specs: &'a [ParamSpec], name: &str) -> Result<&'a ParamSpec, ParamError> {
    specs
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ParamError::Unknown {
            name: name.to_string(),
            allowed: specs.iter().map(|s| s.name).collect::<Vec<_>>().join(", "),
        })
}

/// The parameter every service type has (the seed lists it for each): the image its container
/// runs. The manager reads it to build, swap and version containers; engines list its spec.
pub const DOCKER_IMAGE: &str = "docker_image";

/// Validates a create request: every given parameter must exist and be valid. Static defaults
/// and generated secrets are added; ports and the image are left for the server to fill in,
/// because choosing them needs IO (free ports) or configuration (default images).
pub fn validate_create(specs: &[ParamSpec], given: &Parameters) -> Result<Parameters, ParamError> {
    let mut out = Parameters::new();
    for (name, value) in given {
        let spec = find(specs, name)?;
        validate_value(spec, value)?;
        out.insert(name.clone(), value.clone());
    }
    for spec in specs {
        if out.contains_key(spec.name) {
            continue;
        }
        if let Some(default) = spec.default {
            out.insert(spec.name.to_string(), default.to_string());
        } else if let ParamKind::Secret { length } = spec.kind {
            out.insert(spec.name.to_string(), secrets::generate_password(length));
        }
    }
    Ok(out)
}

/// Validates the parameters of an import: the credentials of a server someone else set up.
/// Every secret parameter must be given (Berth cannot read credentials out of a container,
/// and generating one would not match the server); a secret is taken as it is, whatever its
/// length, since it is not Berth's to choose. Other parameters are checked as on create, and
/// the static defaults fill the rest.
pub fn validate_import(specs: &[ParamSpec], given: &Parameters) -> Result<Parameters, ParamError> {
    let mut out = Parameters::new();
    for (name, value) in given {
        let spec = find(specs, name)?;
        if spec.is_secret() {
            if value.is_empty() || value.len() > 1024 || value.chars().any(char::is_control) {
                return Err(invalid(
                    spec,
                    "must be 1 to 1024 characters, none of them control characters",
                ));
            }
        } else {
            validate_value(spec, value)?;
        }
        out.insert(name.clone(), value.clone());
    }
    for spec in specs {
        if out.contains_key(spec.name) {
            continue;
        }
        if spec.is_secret() {
            return Err(ParamError::Required {
                name: spec.name.to_string(),
                reason: "Berth cannot read credentials out of a container; give the ones the \
                         server was set up with"
                    .into(),
            });
        }
        if let Some(default) = spec.default {
            out.insert(spec.name.to_string(), default.to_string());
        }
    }
    Ok(out)
}

/// Validates an update request: unknown parameters and read-only ones are refused, by name.
pub fn validate_update(specs: &[ParamSpec], given: &Parameters) -> Result<(), ParamError> {
    for (name, value) in given {
        let spec = find(specs, name)?;
        if !spec.editable {
            return Err(ParamError::ReadOnly(name.clone()));
        }
        validate_value(spec, value)?;
    }
    Ok(())
}

fn invalid(spec: &ParamSpec, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        name: spec.name.to_string(),
        reason: reason.into(),
    }
}

/// Parses a decimal integer strictly: no sign, no leading zeros, no spaces ("01" is refused so
/// that what the user wrote is what we store).
fn parse_strict(spec: &ParamSpec, value: &str) -> Result<i64, ParamError> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'))
        && value.len() <= 18;
    if !canonical {
        return Err(invalid(
            spec,
            format!("{value:?} is not a plain decimal number"),
        ));
    }
    Ok(value.parse().expect("checked digits"))
}

pub fn validate_value(spec: &ParamSpec, value: &str) -> Result<(), ParamError> {
    match spec.kind {
        ParamKind::Port { .. } => {
            let port = parse_strict(spec, value)?;
            if !(1..=65535).contains(&port) {
                return Err(invalid(spec, format!("port {port} is outside 1-65535")));
            }
        }
        ParamKind::Integer { min, max } => {
            let n = parse_strict(spec, value)?;
            if !(min..=max).contains(&n) {
                return Err(invalid(spec, format!("{n} is outside {min}-{max}")));
            }
        }
        ParamKind::Choice(choices) => {
            if !choices.contains(&value) {
                return Err(invalid(
                    spec,
                    format!("{value:?} is not one of: {}", choices.join(", ")),
                ));
            }
        }
        ParamKind::Image => validate_image(value).map_err(|reason| invalid(spec, reason))?,
        ParamKind::Identifier => {
            let ok = !value.is_empty()
                && value.len() <= 63
                && value
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
                && value
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !ok {
                return Err(invalid(
                    spec,
                    "use lowercase letters, digits and '_', starting with a letter or '_', at most 63 bytes",
                ));
            }
        }
        ParamKind::Secret { .. } => {
            if value.len() < 8 || value.len() > 128 {
                return Err(invalid(spec, "must be 8 to 128 characters"));
            }
            if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(invalid(
                    spec,
                    "must not contain whitespace or control characters",
                ));
            }
        }
    }
    Ok(())
}

/// A Docker image reference, `[registry[:port]/]path[:tag][@digest]`, checked against Docker's
/// grammar (path components lowercase, tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`), so Docker
/// never has to reject what we accepted.
pub fn validate_image(value: &str) -> Result<(), String> {
    let bad = || format!("{value:?} is not a valid Docker image reference");
    if value.is_empty() || value.len() > 255 {
        return Err(bad());
    }
    let (name_tag, digest) = match value.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        let (algo, hex) = digest.split_once(':').ok_or_else(bad)?;
        let algo_ok = !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b));
        if !algo_ok || hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
    }
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(bad());
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            let port_ok = port.is_none_or(|p| {
                !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
            });
            if !host_ok || !port_ok {
                return Err(bad());
            }
            components.remove(0);
        }
    }
    let component_ok = |c: &str| {
        // [a-z0-9]+ separated by single '.', '_', '__' or runs of '-'.
        !c.is_empty()
            && c.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && c.bytes()
                .last()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !c.contains("..")
            && !c.contains("___")
    };
    if components.is_empty() || !components.iter().all(|c| component_ok(c)) {
        return Err(bad());
    }
    Ok(())
}

/// The major version in an image tag: `postgres:15.4-bookworm` -> 15. `None` when the tag
/// does not start with a number (`latest`), in which case callers must find out otherwise.
pub fn image_major(image: &str) -> Option<u32> {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let tag = last.split_once(':')?.1;
    let digits: String = tag.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// Deserialises request parameters the way Temps' clients send them: values may be strings
/// (`"port": "5432"`), numbers (`"port": 5432`) or booleans, and are stored as their text.
/// Objects, arrays and null are refused, naming the parameter. Use with
/// `#[serde(default, deserialize_with = "berth_core::params::deserialize_loose")]`.
pub fn deserialize_loose<'de, D>(deserializer: D) -> Result<Parameters, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize as _;
    let raw = BTreeMap::<String, serde_json::Value>::deserialize(deserializer)?;
    raw.into_iter()
        .map(|(name, value)| {
            let text = loose_value(&value).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "parameter {name:?} must be a string, a number or a boolean, not {}",
                    json_kind(&value)
                ))
            })?;
            Ok((name, text))
        })
        .collect()
}

/// The text a JSON parameter value stands for: strings as they are, numbers and booleans as
/// written (`5432`, `true`); `None` for objects, arrays and null.
pub fn loose_value(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Object(_) => "an object",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::Bool(_) => "a boolean",
    }
}

/// Pattern of the plain decimal integers [`validate_value`] accepts as strings.
const DECIMAL_PATTERN: &str = "^(0|[1-9][0-9]{0,17})$";

/// A JSON Schema (draft 2020-12) of an engine's parameters, generated from its specs so it
/// says exactly what [`validate_create`] and [`validate_update`] enforce: types (integers may
/// be sent as JSON numbers or as decimal strings), ranges, choices, name patterns and lengths,
/// defaults. Extensions: `x-editable` (Temps' name: whether `PUT` may change it; the others are
/// read-only after creation), `x-secret` (masked in every answer but `reveal`), `x-generated`
/// (filled in by the server when absent: ports, secrets, the image).
pub fn json_schema(title: &str, specs: &[ParamSpec]) -> serde_json::Value {
    use serde_json::{Value, json};
    let mut properties = serde_json::Map::new();
    for spec in specs {
        let mut prop = match spec.kind {
            ParamKind::Port { base } => json!({
                "type": ["integer", "string"],
                "minimum": 1,
                "maximum": 65535,
                "pattern": DECIMAL_PATTERN,
                "x-generated": format!("the first free port from {base} up"),
            }),
            ParamKind::Integer { min, max } => json!({
                "type": ["integer", "string"],
                "minimum": min,
                "maximum": max,
                "pattern": DECIMAL_PATTERN,
            }),
            ParamKind::Choice(choices) => json!({
                "type": "string",
                "enum": choices,
            }),
            ParamKind::Image => json!({
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$",
                "x-generated": "the service type's default image",
            }),
            ParamKind::Identifier => json!({
                "type": "string",
                "minLength": 1,
                "maxLength": 63,
                "pattern": "^[a-z_][a-z0-9_]*$",
            }),
            ParamKind::Secret { length } => json!({
                "type": "string",
                "minLength": 8,
                "maxLength": 128,
                "pattern": "^[^\\s\\x00-\\x1f\\x7f-\\x9f]+$",
                "x-secret": true,
                "x-generated": format!("{length} random alphanumeric characters"),
            }),
        };
        let obj = prop.as_object_mut().expect("object literal");
        obj.insert("description".into(), Value::from(spec.doc));
        obj.insert("x-editable".into(), Value::from(spec.editable));
        if let Some(default) = spec.default {
            let typed = match spec.kind {
                ParamKind::Integer { .. } | ParamKind::Port { .. } => default
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(default)),
                _ => Value::from(default),
            };
            obj.insert("default".into(), typed);
        }
        properties.insert(spec.name.to_string(), prop);
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": title,
        "type": "object",
        "properties": properties,
        "required": [],
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "port",
            doc: "",
            kind: ParamKind::Port { base: 5432 },
            default: None,
            editable: true,
        },
        ParamSpec {
            name: "max_connections",
            doc: "",
            kind: ParamKind::Integer { min: 1, max: 10000 },
            default: Some("100"),
            editable: true,
        },
        ParamSpec {
            name: "ssl_mode",
            doc: "",
            kind: ParamKind::Choice(&["disable", "require"]),
            default: Some("disable"),
            editable: true,
        },
        ParamSpec {
            name: "password",
            doc: "",
            kind: ParamKind::Secret { length: 16 },
            default: None,
            editable: false,
        },
    ];

    fn params(pairs: &[(&str, &str)]) -> Parameters {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_fills_defaults_and_generates_secrets() {
        let out = validate_create(SPECS, &params(&[("max_connections", "200")])).unwrap();
        assert_eq!(out["max_connections"], "200");
        assert_eq!(out["ssl_mode"], "disable");
        assert_eq!(out["password"].len(), 16);
        assert!(!out.contains_key("port"), "ports are chosen by the server");
    }

    #[test]
    fn create_rejects_unknown_and_invalid() {
        assert!(matches!(
            validate_create(SPECS, &params(&[("bogus", "1")])),
            Err(ParamError::Unknown { .. })
        ));
        for bad in ["abc", "0", "65536", "-1", "01", " 5432", "5432.0", ""] {
            assert!(
                matches!(
                    validate_create(SPECS, &params(&[("port", bad)])),
                    Err(ParamError::Invalid { .. })
                ),
                "{bad:?}"
            );
        }
        assert!(validate_create(SPECS, &params(&[("port", "65535")])).is_ok());
        assert!(validate_create(SPECS, &params(&[("ssl_mode", "maybe")])).is_err());
    }

    #[test]
    fn update_refuses_read_only_by_name() {
        assert_eq!(
            validate_update(SPECS, &params(&[("password", "abcdefgh1")])),
            Err(ParamError::ReadOnly("password".into()))
        );
        assert!(validate_update(SPECS, &params(&[("max_connections", "300")])).is_ok());
    }

    #[test]
    fn image_majors() {
        assert_eq!(image_major("berth/postgres:15"), Some(15));
        assert_eq!(image_major("gotempsh/postgres-walg:18-bookworm"), Some(18));
        assert_eq!(image_major("localhost:5000/postgres:16.2"), Some(16));
        assert_eq!(image_major("postgres"), None);
        assert_eq!(image_major("postgres:latest"), None);
        for ok in [
            "berth/postgres:15",
            "postgres",
            "gotempsh/postgres-walg:18-bookworm",
            "localhost:5000/team/app:V1.2_rc",
            "Registry.Example.com/x/y:latest",
            "rustfs/rustfs:1.0.0-alpha.78",
            "redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(validate_image(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a b",
            "x;rm",
            "COM1",
            "Upper/case:1",
            "a//b",
            "a:",
            ":tag",
            "a:-x",
            "-a",
            "a/",
            "a@sha256:xyz",
            "a..b",
        ] {
            assert!(validate_image(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loose_values_become_text_and_structures_are_refused() {
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "deserialize_loose")]
            parameters: Parameters,
        }
        let body: Body = serde_json::from_str(
            r#"{"parameters": {"port": 5432, "max_connections": "200", "flag": true}}"#,
        )
        .unwrap();
        assert_eq!(body.parameters["port"], "5432");
        assert_eq!(body.parameters["max_connections"], "200");
        assert_eq!(body.parameters["flag"], "true");
        let body: Body = serde_json::from_str("{}").unwrap();
        assert!(body.parameters.is_empty());
        for bad in [
            r#"{"port": null}"#,
            r#"{"port": [1]}"#,
            r#"{"port": {"a": 1}}"#,
        ] {
            let err = serde_json::from_str::<Body>(&format!(r#"{{"parameters": {bad}}}"#))
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(err.to_string().contains("\"port\""), "{err}");
        }
        // A float stays as written, and a port refuses it.
        let body: Body = serde_json::from_str(r#"{"parameters": {"port": 5432.5}}"#).unwrap();
        assert!(validate_create(SPECS, &body.parameters).is_err());
    }

    #[test]
    fn schema_states_what_validation_enforces() {
        let schema = json_schema("test", SPECS);
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], false);
        let props = &schema["properties"];
        assert_eq!(props.as_object().unwrap().len(), SPECS.len());
        assert_eq!(props["max_connections"]["minimum"], 1);
        assert_eq!(props["max_connections"]["maximum"], 10000);
        assert_eq!(props["max_connections"]["default"], 100);
        assert_eq!(props["max_connections"]["x-editable"], true);
        assert_eq!(props["port"]["maximum"], 65535);
        assert_eq!(
            props["ssl_mode"]["enum"],
            serde_json::json!(["disable", "require"])
        );
        assert_eq!(props["ssl_mode"]["default"], "disable");
        assert_eq!(props["password"]["x-secret"], true);
        assert_eq!(props["password"]["x-editable"], false);
        assert!(props["password"].get("default").is_none());
    }
}
