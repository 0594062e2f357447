//! Engines: one module per service type implementing [`Engine`], and the registry that maps a
//! `service_type` string to its engine. Nothing outside this folder matches on service types,
//! so adding an engine means one new module and one line in [`registry`].

pub mod backup;
pub mod mongodb;
mod postgres;
pub mod recognize;
mod redis;
mod s3;
pub mod tenancy;

use async_trait::async_trait;
use berth_core::{ParamSpec, Parameters};

pub use crate::docker::ContainerFile;
pub use tenancy::Tenancy;

/// Berth's own image for an engine: a Dockerfile and the files it copies, embedded in the
/// binary so `berth images build` works offline, and any files taken from the machine at build
/// time (an executable shipped beside `berth`).
#[derive(Debug, Clone, Copy)]
pub struct ImageRecipe {
    pub repository: &'static str,
    pub tag: &'static str,
    /// The Debian suite of the base image it is built on (`bookworm`, `trixie`): Berth
    /// bootstraps one base per suite from the machine's own mirror.
    pub suite: &'static str,
    /// `ARG`s the Dockerfile is built with (`PG_MAJOR=17`), part of the input hash: one
    /// Dockerfile serves several versions.
    pub build_args: &'static [(&'static str, &'static str)],
    /// `(name in the build context, contents)`, embedded in the binary.
    pub files: &'static [(&'static str, &'static str)],
    /// Files read from the machine when the image is built.
    pub host_files: &'static [HostFile],
}

/// A file an image takes from the machine rather than from `berth` itself.
#[derive(Debug, Clone, Copy)]
pub enum HostFile {
    /// An executable built and shipped together with `berth`, in the directory of the running
    /// `berth` executable; it goes into the build context under the same name (mode 0755).
    Executable(&'static str),
}

impl ImageRecipe {
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// What an engine must say about its service type.
#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// The `service_type` on the wire (`postgres`, `redis`, ...).
    fn service_type(&self) -> &'static str;

    /// The name people know the service by (`PostgreSQL`), for provider metadata.
    fn display_name(&self) -> &'static str;

    /// One line on what the service is, for provider metadata.
    fn description(&self) -> &'static str;

    /// The brand colour, `#rrggbb`, for provider metadata.
    fn color(&self) -> &'static str;

    /// A small SVG icon, served inline as a `data:` URL (see [`icon_url`]) so clients need
    /// neither a token nor a second request to show it.
    fn icon_svg(&self) -> String {
        let letters: String = self.display_name().chars().take(2).collect();
        badge_svg(self.color(), &letters)
    }

    /// The parameter table from the seed.
    fn params(&self) -> &'static [ParamSpec];

    /// Berth's own image for this type, built locally by `berth images build`; `None` for an
    /// engine that only runs images from elsewhere.
    fn image_recipe(&self) -> Option<ImageRecipe>;

    /// Berth's earlier default images for this type, still buildable by name (`postgres-15`):
    /// services created with them keep them, a create's `version` can ask for them, and they
    /// are the old side of an upgrade.
    fn older_images(&self) -> &'static [(&'static str, ImageRecipe)] {
        &[]
    }

    /// The `docker_image` a create gets when it names none (the configuration's `[images]`
    /// can override it): Berth's own image where there is one.
    fn default_image(&self) -> String {
        self.image_recipe()
            .map(|r| r.reference())
            .unwrap_or_default()
    }

    /// What a user must know about running `image` for this type, shown on create and on the
    /// service view: a test stand-in that is not the real server, say. `None` for most.
    fn image_notice(&self, _image: &str) -> Option<String> {
        None
    }

    /// Container ports and the parameter holding the host port each is published on.
    fn ports(&self) -> &'static [(u16, &'static str)];

    /// Where the data volume is mounted inside the container.
    fn data_path(&self) -> &'static str;

    /// Environment for the container (the official image's contract). Never a secret:
    /// `docker inspect` shows the environment to anyone with the Docker socket; secrets go
    /// through [`Engine::secret_files`].
    fn container_env(&self, params: &Parameters) -> Vec<String>;

    /// Files written into the container after it is created and before it first starts
    /// (outside the data volume): the secrets its entrypoint reads, e.g. the admin password
    /// behind `POSTGRES_PASSWORD_FILE`. Unlike env and cmd they are not shown by
    /// `docker inspect`.
    fn secret_files(&self, _params: &Parameters) -> Vec<ContainerFile> {
        Vec::new()
    }

    /// Conditions of the running server's data a user should know about without the service
    /// being unhealthy (Redis: keys in database 0, readable by every tenant). Empty when all
    /// is well; a failed check is not a warning.
    async fn data_warnings(&self, _host_port: u16, _params: &Parameters) -> Vec<String> {
        Vec::new()
    }

    /// Arguments to the image's entrypoint.
    fn container_cmd(&self, params: &Parameters) -> Vec<String>;

    /// Connects from the host through the published port as a real client and runs a trivial
    /// command. `Ok` means the service accepts work; `Err` says why not.
    async fn probe(&self, host_port: u16, params: &Parameters) -> Result<(), String>;

    /// The image environment variable that carries the server version (`PG_MAJOR`), used to
    /// refuse cross-major image swaps that would not start on the existing data.
    fn version_env(&self) -> Option<&'static str> {
        None
    }

    /// Whether data written by major version `from` can be served by an image of major
    /// `to` after a plain image swap on the same volume. `Err` says why not and what to do
    /// instead. The default allows only the same major (PostgreSQL's rule); an engine whose
    /// data files load forward (Redis RDB) says so.
    fn check_major_change(&self, from: u32, to: u32) -> Result<(), String> {
        if from == to {
            return Ok(());
        }
        Err(format!(
            "the data was written by major version {from}; an image swap to major version {to} cannot change \
             major versions (dump and restore into a new service instead)"
        ))
    }

    /// Temps' `connection_info`: where the service answers on the Docker network, as a URL
    /// with the password masked (`postgres://postgres:***@host:5432/postgres`). Never a secret.
    fn connection_info(&self, _host: &str, _params: &Parameters) -> Option<String> {
        None
    }

    /// What marks a container Berth did not make as running this engine's server, for
    /// import (`recognize.rs` weighs it); `None` if such containers cannot be imported.
    fn signature(&self) -> Option<recognize::Signature> {
        None
    }

    /// Per-project isolation for linking; `None` if this engine cannot be linked.
    fn tenancy(&self) -> Option<&dyn Tenancy> {
        None
    }

    /// How services of this type are backed up; `None` if they cannot be (yet).
    fn backup(&self) -> Option<&dyn backup::BackupEngine> {
        None
    }

    /// For a service that stores objects over the S3 API: how Berth reaches it as its admin
    /// through the published port (a backup destination can be such a service). `None` for
    /// every other engine.
    fn object_store(
        &self,
        _host_port: u16,
        _params: &Parameters,
    ) -> Option<crate::s3client::S3Endpoint> {
        None
    }
}

/// The registry: one line per engine.
static ENGINES: &[&dyn Engine] = &[
    &postgres::Postgres,
    &redis::Redis,
    &mongodb::MongoDb,
    &s3::S3,
];

/// All engines, in display order.
pub fn registry() -> &'static [&'static dyn Engine] {
    ENGINES
}

/// The engine for a service type, if it exists.
pub fn engine(service_type: &str) -> Option<&'static dyn Engine> {
    ENGINES
        .iter()
        .copied()
        .find(|e| e.service_type() == service_type)
}

/// The names of all service types, for error messages.
pub fn service_types() -> Vec<&'static str> {
    ENGINES.iter().map(|e| e.service_type()).collect()
}

/// A rounded square in `color` with `letters` on it: the default engine icon.
pub fn badge_svg(color: &str, letters: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\" width=\"32\" height=\"32\">\
         <rect width=\"32\" height=\"32\" rx=\"7\" fill=\"{color}\"/>\
         <text x=\"16\" y=\"21\" font-family=\"sans-serif\" font-size=\"13\" font-weight=\"bold\" \
         fill=\"#fff\" text-anchor=\"middle\">{letters}</text></svg>"
    )
}

/// The engine's icon as a `data:image/svg+xml` URL (percent-encoded, no external request).
pub fn icon_url(engine: &dyn Engine) -> String {
    format!(
        "data:image/svg+xml,{}",
        tenancy::url_encode(&engine.icon_svg())
    )
}

/// The major version an image carries: from the engine's version env var when the image is
/// present, else from its tag.
pub fn image_major(engine: &dyn Engine, image: &str, image_env: Option<&[String]>) -> Option<u32> {
    if let (Some(var), Some(env)) = (engine.version_env(), image_env) {
        let prefix = format!("{var}=");
        if let Some(value) = env.iter().find_map(|e| e.strip_prefix(&prefix)) {
            let digits: String = value.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(major) = digits.parse() {
                return Some(major);
            }
        }
    }
    berth_core::params::image_major(image)
}
