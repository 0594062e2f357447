//! Per-project isolation inside one service: what an engine must do to give a project
//! environment its own share (a database and role, a database number and ACL user, a bucket...)
//! and which variables a linked deployment gets. The manager decides names and numbers and
//! records them; engines only provision and render.

use async_trait::async_trait;
use berth_core::Parameters;
use berth_core::names::NameStyle;

use crate::docker::{ContainerFile, DockerClient, ExecOutput};

/// How an engine's tenants are told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// By name only (a PostgreSQL database).
    Named,
    /// By name (the ACL user) and a number from `first..capacity` (a Redis database).
    Numbered { first: i64 },
}

/// Where clients reach the service: the container name and internal port on the Docker
/// network (what deployments use), or 127.0.0.1 and the published port (for `berth run`).
#[derive(Debug, Clone)]
pub struct Address {
    pub host: String,
    pub port: u16,
}

/// What a client needs to log in to its share.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// Database name (PostgreSQL) or ACL user name (Redis).
    pub resource_name: String,
    pub resource_number: Option<i64>,
    pub username: String,
    pub password: String,
}

/// A running service as its tenancy sees it: the published port on 127.0.0.1 for admin
/// clients that speak the server's protocol, the parameters (secrets included), and the
/// container, for what can only be done inside it (a key file, a tool shipped in the image).
pub struct ServiceAccess<'a> {
    pub host_port: u16,
    pub params: &'a Parameters,
    pub container: &'a str,
    docker: &'a DockerClient,
}

impl<'a> ServiceAccess<'a> {
    pub fn new(
        docker: &'a DockerClient,
        container: &'a str,
        host_port: u16,
        params: &'a Parameters,
    ) -> Self {
        Self {
            host_port,
            params,
            container,
            docker,
        }
    }

    /// Runs `argv` in the container (no shell); secrets go through `stdin`, never argv.
    pub async fn exec(
        &self,
        argv: &[&str],
        user: Option<&str>,
        stdin: Option<Vec<u8>>,
    ) -> Result<ExecOutput, String> {
        self.docker
            .exec(self.container, argv, user, stdin)
            .await
            .map_err(|e| e.to_string())
    }

    /// Writes files into the container (owned by root; see [`ContainerFile`]).
    /// Runs `argv` in the container and streams its stdout (see `docker/exec_stream.rs`):
    /// for dump tools whose output may be any size.
    pub async fn exec_output_stream(
        &self,
        argv: &[&str],
        user: Option<&str>,
    ) -> Result<impl futures_util::Stream<Item = crate::docker::ExecChunk> + Send + 'static, String>
    {
        self.docker
            .exec_output_stream(self.container, argv, user, None)
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs `argv` in the container with `input` streamed into its stdin (restore tools);
    /// its stdout (capped) once it exits 0, else why not.
    pub async fn exec_with_input_stream<S>(
        &self,
        argv: &[&str],
        user: Option<&str>,
        input: S,
    ) -> Result<Vec<u8>, String>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, String>> + Unpin + Send,
    {
        self.docker
            .exec_with_input_stream(self.container, argv, user, input)
            .await
            .map_err(|e| e.to_string())?
    }

    /// Stops the container, runs `argv` on its volumes in a one-shot container of its image,
    /// starts it again (see `docker/offline.rs`); for data work the server must not see.
    pub async fn run_offline(&self, argv: &[&str], user: Option<&str>) -> Result<(), String> {
        self.docker
            .run_offline(self.container, argv, user, 30)
            .await
            .map_err(|e| e.to_string())?
    }

    pub async fn write_files(&self, files: &[ContainerFile]) -> Result<(), String> {
        self.docker
            .write_files(self.container, files)
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
pub trait Tenancy: Send + Sync {
    fn allocation(&self) -> Allocation;

    /// The alphabet of tenant names: identifiers (`web_shop_production`) unless the server
    /// needs DNS labels (S3 buckets: `web-shop-production`).
    fn name_style(&self) -> NameStyle {
        NameStyle::Identifier
    }

    /// How many numbered resources the running server offers (Redis `databases`).
    async fn capacity(&self, _service: &ServiceAccess<'_>) -> Result<i64, String> {
        Ok(i64::MAX)
    }

    /// Creates or repairs the tenant's resources as the service's admin user. Idempotent: run
    /// on every link, re-link and new environment, it converges to the recorded credentials.
    async fn provision(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String>;

    /// Whether the tenant's resources and login exist on the server as recorded (the
    /// reconciler re-provisions a live tenant that went missing, e.g. after a restore).
    async fn is_provisioned(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<bool, String>;

    /// Turns the tenant's login off and ends its open sessions; its data stays. Used when its
    /// project or environment is deleted and on `unlink?revoke=true`. Idempotent; `provision`
    /// turns the login back on with the same credentials.
    async fn revoke(&self, service: &ServiceAccess<'_>, tenant: &Credentials)
    -> Result<(), String>;

    /// Names already used in the server that a new tenant must not take: databases and roles
    /// Berth did not create (the admin's own, templates, anything made by hand). Named
    /// engines only; tenants recorded by Berth are avoided by the planner anyway.
    async fn names_in_use(
        &self,
        _service: &ServiceAccess<'_>,
    ) -> Result<std::collections::HashSet<String>, String> {
        Ok(Default::default())
    }

    /// Whether the engine reserves `name` for itself whatever exists (`pg_*`, `template*`).
    fn is_reserved_name(&self, _name: &str) -> bool {
        false
    }

    /// The variables a linked deployment gets, in a stable order.
    fn env(
        &self,
        params: &Parameters,
        address: &Address,
        tenant: &Credentials,
    ) -> Vec<(String, String)>;

    /// The service's own admin credentials, for the masked preview.
    fn admin_credentials(&self, params: &Parameters) -> Credentials;
}

/// Percent-encodes a URL userinfo component.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
