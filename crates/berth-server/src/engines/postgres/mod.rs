//! PostgreSQL: the seed's parameter table, the official image's env contract (the admin
//! password as `POSTGRES_PASSWORD_FILE`, written into the container, never in its environment),
//! and a probe that logs in with the generated password over the published port.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{ParamKind, ParamSpec, Parameters};
use sqlx::ConnectOptions;
use sqlx::Connection;
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use super::{ContainerFile, Engine, ImageRecipe, Tenancy};

mod backup;
mod restore;
mod tenancy;

pub struct Postgres;

pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "port",
        doc: "Host port on 127.0.0.1; auto-assigned from 5432",
        kind: ParamKind::Port { base: 5432 },
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "docker_image",
        doc: "Image honouring the official postgres env contract",
        kind: ParamKind::Image,
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "max_connections",
        doc: "Server max_connections",
        kind: ParamKind::Integer { min: 1, max: 10000 },
        default: Some("100"),
        editable: true,
    },
    ParamSpec {
        name: "ssl_mode",
        doc: "sslmode clients use; anything but disable turns on TLS in the server",
        kind: ParamKind::Choice(SSL_MODES),
        default: Some("disable"),
        editable: true,
    },
    ParamSpec {
        name: "tenant_connection_limit",
        doc: "Most connections one linked project environment's role may hold at once \
              (CONNECTION LIMIT; applied to every tenant role when it is provisioned)",
        kind: ParamKind::Integer { min: 1, max: 10000 },
        default: Some(DEFAULT_TENANT_CONNECTION_LIMIT),
        editable: true,
    },
    ParamSpec {
        name: "database",
        doc: "Initial database",
        kind: ParamKind::Identifier,
        default: Some("postgres"),
        editable: false,
    },
    ParamSpec {
        name: "username",
        doc: "Superuser name",
        kind: ParamKind::Identifier,
        default: Some("postgres"),
        editable: false,
    },
    ParamSpec {
        name: "password",
        doc: "Superuser password (generated, 16 characters)",
        kind: ParamKind::Secret { length: 16 },
        default: None,
        editable: false,
    },
];

/// Berth's PostgreSQL images: one Dockerfile, the major a build argument, each on the Debian
/// suite that carries it. 17 (trixie, Debian's newest stable major) is the default; 15
/// (bookworm) was, and stays buildable for the services made with it.
const IMAGE_FILES: &[(&str, &str)] = &[
    (
        "Dockerfile",
        include_str!("../../../../../images/postgres/Dockerfile"),
    ),
    (
        "docker-entrypoint.sh",
        include_str!("../../../../../images/postgres/docker-entrypoint.sh"),
    ),
];

const IMAGE_17: ImageRecipe = ImageRecipe {
    repository: "berth/postgres",
    tag: "17",
    suite: "trixie",
    build_args: &[("PG_MAJOR", "17")],
    files: IMAGE_FILES,
    host_files: &[],
};

const IMAGE_15: ImageRecipe = ImageRecipe {
    repository: "berth/postgres",
    tag: "15",
    suite: "bookworm",
    build_args: &[("PG_MAJOR", "15")],
    files: IMAGE_FILES,
    host_files: &[],
};

/// A fifth of the default max_connections: one project cannot starve the others.
const DEFAULT_TENANT_CONNECTION_LIMIT: &str = "20";

/// Where the admin password is written inside the container: outside the data directory (which
/// initdb wants empty and physical backups copy) and out of `docker inspect`.
pub const PASSWORD_FILE: &str = "/run/berth/postgres-password";

/// The CONNECTION LIMIT of tenant roles; services created before the parameter existed get
/// the default.
pub(super) fn tenant_connection_limit(params: &Parameters) -> i64 {
    params
        .get("tenant_connection_limit")
        .and_then(|v| v.parse().ok())
        .or_else(|| DEFAULT_TENANT_CONNECTION_LIMIT.parse().ok())
        .expect("default limit is a number")
}

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects as the service's admin user through the published port on 127.0.0.1 (probes and
/// tenant provisioning both log in this way). Statement logging is off: SQL may carry secrets.
pub(super) async fn admin_connection(
    host_port: u16,
    params: &Parameters,
    timeout: Duration,
) -> Result<PgConnection, String> {
    admin_connection_to(host_port, params, get(params, "database"), timeout).await
}

/// [`admin_connection`] to another database of the server.
pub(super) async fn admin_connection_to(
    host_port: u16,
    params: &Parameters,
    database: &str,
    timeout: Duration,
) -> Result<PgConnection, String> {
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(host_port)
        .username(get(params, "username"))
        .password(get(params, "password"))
        .database(database)
        .ssl_mode(PgSslMode::Prefer)
        .disable_statement_logging();
    tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|_| "timed out connecting".to_string())?
        .map_err(|e| e.to_string())
}

pub(super) fn get<'a>(params: &'a Parameters, name: &str) -> &'a str {
    params.get(name).map(String::as_str).unwrap_or_default()
}

#[async_trait]
impl Engine for Postgres {
    fn display_name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn description(&self) -> &'static str {
        "Relational database (one database and role per linked project environment)"
    }

    fn color(&self) -> &'static str {
        "#336791"
    }

    fn icon_svg(&self) -> String {
        super::badge_svg(self.color(), "PG")
    }

    fn service_type(&self) -> &'static str {
        "postgres"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn image_recipe(&self) -> Option<ImageRecipe> {
        Some(IMAGE_17)
    }

    fn older_images(&self) -> &'static [(&'static str, ImageRecipe)] {
        &[("postgres-15", IMAGE_15)]
    }

    fn signature(&self) -> Option<super::recognize::Signature> {
        Some(super::recognize::Signature {
            executables: &["postgres", "postmaster"],
            env_names: &[
                "PG_MAJOR",
                "PG_VERSION",
                "POSTGRES_PASSWORD",
                "POSTGRES_PASSWORD_FILE",
                "PGDATA",
            ],
            image_words: &["postgres", "postgis", "timescale", "pgvector"],
        })
    }

    fn ports(&self) -> &'static [(u16, &'static str)] {
        &[(5432, "port")]
    }

    fn data_path(&self) -> &'static str {
        "/var/lib/postgresql/data"
    }

    fn container_env(&self, params: &Parameters) -> Vec<String> {
        vec![
            format!("POSTGRES_USER={}", get(params, "username")),
            format!("POSTGRES_PASSWORD_FILE={PASSWORD_FILE}"),
            format!("POSTGRES_DB={}", get(params, "database")),
            "PGDATA=/var/lib/postgresql/data".into(),
        ]
    }

    /// The admin password behind `POSTGRES_PASSWORD_FILE`. Readable by every user of the
    /// container because the official image reads it after dropping to its `postgres` user (of
    /// an image-specific uid); Berth's own entrypoint narrows it to `postgres`, mode 0400.
    fn secret_files(&self, params: &Parameters) -> Vec<ContainerFile> {
        vec![ContainerFile {
            path: PASSWORD_FILE.to_string(),
            contents: get(params, "password").as_bytes().to_vec(),
            mode: 0o444,
        }]
    }

    fn container_cmd(&self, params: &Parameters) -> Vec<String> {
        let mut cmd = vec![
            "postgres".to_string(),
            "-c".into(),
            format!("max_connections={}", get(params, "max_connections")),
        ];
        if get(params, "ssl_mode") != "disable" {
            // Debian's ssl-cert snakeoil pair (Berth's image; official images need their own).
            for setting in [
                "ssl=on",
                "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
                "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key",
            ] {
                cmd.push("-c".into());
                cmd.push(setting.into());
            }
        }
        cmd
    }

    async fn probe(&self, host_port: u16, params: &Parameters) -> Result<(), String> {
        let attempt = async {
            let mut conn = admin_connection(host_port, params, PROBE_TIMEOUT).await?;
            sqlx::query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            conn.close().await.map_err(|e| e.to_string())
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .map_err(|_| "timed out connecting".to_string())?
    }

    fn version_env(&self) -> Option<&'static str> {
        Some("PG_MAJOR")
    }

    fn connection_info(&self, host: &str, params: &Parameters) -> Option<String> {
        let user = params.get("username").map_or("postgres", String::as_str);
        let database = params.get("database").map_or("postgres", String::as_str);
        let port = self.ports()[0].0;
        Some(format!("postgres://{user}:***@{host}:{port}/{database}"))
    }

    fn backup(&self) -> Option<&dyn crate::engines::backup::BackupEngine> {
        Some(self)
    }

    fn tenancy(&self) -> Option<&dyn Tenancy> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Parameters {
        Parameters::from([
            ("username".to_string(), "admin".to_string()),
            ("database".to_string(), "app".to_string()),
            ("password".to_string(), "Secret123Secret1".to_string()),
        ])
    }

    #[test]
    fn admin_password_goes_into_a_file_not_the_environment() {
        let params = params();
        let env = Postgres.container_env(&params);
        assert!(env.iter().all(|e| !e.contains("Secret123")), "{env:?}");
        assert!(env.contains(&format!("POSTGRES_PASSWORD_FILE={PASSWORD_FILE}")));
        let files = Postgres.secret_files(&params);
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, PASSWORD_FILE);
        assert_eq!(files[0].contents, b"Secret123Secret1");
        assert!(
            !PASSWORD_FILE.starts_with(Postgres.data_path()),
            "outside the data directory"
        );
    }

    #[test]
    fn connection_info_names_user_host_and_database_never_the_password() {
        let info = Postgres
            .connection_info("berth-postgres-db", &params())
            .unwrap();
        assert_eq!(info, "postgres://admin:***@berth-postgres-db:5432/app");
        assert!(!info.contains("Secret123"));
    }

    #[test]
    fn tenant_connection_limit_defaults_for_older_services() {
        let mut params = params();
        assert_eq!(tenant_connection_limit(&params), 20);
        params.insert("tenant_connection_limit".into(), "3".into());
        assert_eq!(tenant_connection_limit(&params), 3);
    }
}
