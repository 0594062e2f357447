//! Berth's server: state store, Docker access, engines, the service manager, the reconciler and
//! the HTTP API. `berth serve` calls [`app::run`].

pub mod api;
pub mod app;
pub mod config;
pub mod crashpoint;
pub mod docker;
pub mod engines;
pub mod image_builder;
pub mod manager;
pub mod metrics;
pub mod reconciler;
pub mod s3client;
pub mod scheduler;
pub mod store;
pub mod tls;
