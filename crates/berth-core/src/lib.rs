//! Berth's domain vocabulary, free of IO: parameter specs and their validation, the names
//! that reach Docker and SQL, secrets (generation, encryption at rest, API tokens) and
//! masking, and the decisions about backups (layout, manifests, schedules, retention).
//! Everything here is pure so it can be unit-tested without Docker or a database.

pub mod backup;
pub mod blob_path;
pub mod mask;
pub mod names;
pub mod params;
pub mod scram;
pub mod secrets;

pub use params::{ParamError, ParamKind, ParamSpec, Parameters};
