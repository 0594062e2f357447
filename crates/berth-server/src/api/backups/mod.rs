//! Temps' backup routes: destinations (`sources.rs`, Temps' "S3 sources") and runs
//! (`runs.rs`). Bodies in `json.rs`.

mod json;
pub mod restores;
pub mod runs;
pub mod sources;
