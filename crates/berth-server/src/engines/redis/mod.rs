//! Redis: the seed's parameter table, the default user's password set through an ACL file in
//! the volume (works with Berth's and the official image), append-only persistence, a probe
//! that authenticates and PINGs, and a watch on database 0 (readable by every tenant).
//!
//! The admin password never appears in the container's environment or command line: Berth
//! writes it to [`ADMIN_PASSWORD_FILE`] (root-only, outside the volume) before the first start,
//! and the start script puts only its SHA-256 into the ACL file in the volume.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{ParamKind, ParamSpec, Parameters};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::{ContainerFile, Engine, ImageRecipe, Tenancy};

mod backup;
mod rdb;
mod sync;
mod tenancy;

/// Berth's Redis images: one Dockerfile, the version the Debian suite carries. 8 (trixie) is
/// the default; 7 (bookworm) was, and stays buildable for the services made with it.
const IMAGE_FILES: &[(&str, &str)] = &[
    (
        "Dockerfile",
        include_str!("../../../../../images/redis/Dockerfile"),
    ),
    (
        "docker-entrypoint.sh",
        include_str!("../../../../../images/redis/docker-entrypoint.sh"),
    ),
];

const IMAGE_8: ImageRecipe = ImageRecipe {
    repository: "berth/redis",
    tag: "8",
    suite: "trixie",
    build_args: &[("REDIS_VERSION", "8.0")],
    files: IMAGE_FILES,
    host_files: &[],
};

const IMAGE_7: ImageRecipe = ImageRecipe {
    repository: "berth/redis",
    tag: "7",
    suite: "bookworm",
    build_args: &[("REDIS_VERSION", "7.0")],
    files: IMAGE_FILES,
    host_files: &[],
};

pub struct Redis;

/// Where Berth writes the admin password inside the container (not in the data volume, so a
/// copy of the volume carries only the hash).
pub const ADMIN_PASSWORD_FILE: &str = "/run/berth/admin-password";

/// Runs as root under the image's entrypoint (ours and the official one run a non-`redis-server`
/// command as is), reads the password file only when the volume has no ACL file yet (an
/// existing one, with the users of linked projects, is kept), then hands over to the
/// entrypoint, which drops to the redis user.
const START_SCRIPT: &str = r#"set -e
acl=/data/users.acl
if [ ! -s "$acl" ]; then
  secret=/run/berth/admin-password
  if [ ! -s "$secret" ]; then
    echo "berth: $secret is missing; recreate the container through Berth" >&2
    exit 1
  fi
  hash=$(sha256sum < "$secret" | cut -d" " -f1)
  echo "user default on #$hash ~* &* +@all" > "$acl.tmp"
  mv "$acl.tmp" "$acl"
fi
exec docker-entrypoint.sh redis-server --aclfile "$acl" --appendonly yes --dir /data"#;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "port",
        doc: "Host port on 127.0.0.1; auto-assigned from 6379",
        kind: ParamKind::Port { base: 6379 },
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "docker_image",
        doc: "Image accepting redis-server flags (official redis contract)",
        kind: ParamKind::Image,
        default: None,
        editable: true,
    },
    ParamSpec {
        name: "password",
        doc: "requirepass password (generated)",
        kind: ParamKind::Secret { length: 32 },
        default: None,
        editable: false,
    },
];

const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects as the default (admin) user through the published port on 127.0.0.1 (probes and
/// tenant provisioning both log in this way).
pub(super) async fn admin_connection(
    host_port: u16,
    params: &Parameters,
    timeout: Duration,
) -> Result<redis::aio::MultiplexedConnection, String> {
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), host_port)
        .into_connection_info()
        .map_err(|e| e.to_string())?
        .set_redis_settings(RedisConnectionInfo::default().set_password(password(params)));
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| "timed out connecting".to_string())?
        .map_err(|e| e.to_string())
}

/// The warning for `keys` keys found in database 0.
fn db0_warning(keys: i64) -> String {
    let unit = if keys == 1 { "key" } else { "keys" };
    format!("an application wrote to database 0, which every tenant can read ({keys} {unit})")
}

pub(super) fn password(params: &Parameters) -> &str {
    params
        .get("password")
        .map(String::as_str)
        .unwrap_or_default()
}

#[async_trait]
impl Engine for Redis {
    fn display_name(&self) -> &'static str {
        "Redis"
    }

    fn description(&self) -> &'static str {
        "In-memory key-value store (one database number and ACL user per linked project environment)"
    }

    fn color(&self) -> &'static str {
        "#DC382D"
    }

    fn icon_svg(&self) -> String {
        super::badge_svg(self.color(), "R")
    }

    fn service_type(&self) -> &'static str {
        "redis"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn image_recipe(&self) -> Option<ImageRecipe> {
        Some(IMAGE_8)
    }

    fn older_images(&self) -> &'static [(&'static str, ImageRecipe)] {
        &[("redis-7", IMAGE_7)]
    }

    /// An RDB file loads into the same or a newer Redis (7 -> 8 by a plain image swap keeps
    /// the data); an older one cannot read it.
    fn check_major_change(&self, from: u32, to: u32) -> Result<(), String> {
        if to >= from {
            return Ok(());
        }
        Err(format!(
            "the data was written by Redis {from}, whose RDB files Redis {to} cannot read: \
             Berth does not downgrade. Restore a backup taken on Redis {to} into a new \
             service instead"
        ))
    }

    fn signature(&self) -> Option<super::recognize::Signature> {
        Some(super::recognize::Signature {
            executables: &["redis-server", "valkey-server", "keydb-server"],
            env_names: &["REDIS_VERSION", "VALKEY_VERSION"],
            image_words: &["redis", "valkey", "keydb"],
        })
    }

    fn ports(&self) -> &'static [(u16, &'static str)] {
        &[(6379, "port")]
    }

    fn data_path(&self) -> &'static str {
        "/data"
    }

    fn container_env(&self, _params: &Parameters) -> Vec<String> {
        Vec::new()
    }

    fn secret_files(&self, params: &Parameters) -> Vec<ContainerFile> {
        vec![ContainerFile {
            path: ADMIN_PASSWORD_FILE.into(),
            contents: password(params).as_bytes().to_vec(),
            mode: 0o400,
        }]
    }

    /// Keys in database 0: every connection starts there before its `SELECT`, and ACLs cannot
    /// keep a tenant out of it, so whatever an application wrote there is readable (and
    /// deletable) by every tenant.
    async fn data_warnings(&self, host_port: u16, params: &Parameters) -> Vec<String> {
        let count = async {
            let mut conn = admin_connection(host_port, params, PROBE_TIMEOUT).await?;
            let (_, keys): ((), i64) = redis::pipe()
                .cmd("SELECT")
                .arg(0)
                .cmd("DBSIZE")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(keys)
        };
        match tokio::time::timeout(PROBE_TIMEOUT, count).await {
            Ok(Ok(keys)) if keys > 0 => vec![db0_warning(keys)],
            _ => Vec::new(),
        }
    }

    /// A fixed script, no secret in it (see [`START_SCRIPT`]): on first start it writes the
    /// ACL file with the default user's password hash, so ACL users made for linked projects
    /// survive restarts (`ACL SAVE` writes to the same file).
    fn container_cmd(&self, _params: &Parameters) -> Vec<String> {
        vec!["sh".into(), "-c".into(), START_SCRIPT.into()]
    }

    async fn probe(&self, host_port: u16, params: &Parameters) -> Result<(), String> {
        let attempt = async {
            let mut conn = admin_connection(host_port, params, PROBE_TIMEOUT).await?;
            let pong: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(format!("unexpected PING reply {pong:?}"))
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, attempt)
            .await
            .map_err(|_| "timed out connecting".to_string())?
    }

    fn version_env(&self) -> Option<&'static str> {
        Some("REDIS_VERSION")
    }

    fn connection_info(&self, host: &str, _params: &Parameters) -> Option<String> {
        let port = self.ports()[0].0;
        Some(format!("redis://:***@{host}:{port}"))
    }

    fn backup(&self) -> Option<&dyn crate::engines::backup::BackupEngine> {
        Some(self)
    }

    fn tenancy(&self) -> Option<&dyn Tenancy> {
        Some(self)
    }
}
