//! Redis: the seed's parameter table, the default user's password set through an ACL file in
//! the volume (works with Berth's and the official image), append-only persistence, and a probe
//! that authenticates and PINGs.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::{ParamKind, ParamSpec, Parameters};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::{Engine, ImageRecipe, Tenancy};

mod tenancy;

pub struct Redis;

const START_SCRIPT: &str = r#"set -e
acl=/data/users.acl
if [ ! -s "$acl" ]; then
  hash=$(printf %s "$REDIS_PASSWORD" | sha256sum | cut -d" " -f1)
  echo "user default on #$hash ~* &* +@all" > "$acl"
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

pub(super) fn password(params: &Parameters) -> &str {
    params
        .get("password")
        .map(String::as_str)
        .unwrap_or_default()
}

#[async_trait]
impl Engine for Redis {
    fn service_type(&self) -> &'static str {
        "redis"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn image_recipe(&self) -> ImageRecipe {
        ImageRecipe {
            repository: "berth/redis",
            tag: "7",
            files: &[
                (
                    "Dockerfile",
                    include_str!("../../../../../images/redis/Dockerfile"),
                ),
                (
                    "docker-entrypoint.sh",
                    include_str!("../../../../../images/redis/docker-entrypoint.sh"),
                ),
            ],
        }
    }

    fn ports(&self) -> &'static [(u16, &'static str)] {
        &[(6379, "port")]
    }

    fn data_path(&self) -> &'static str {
        "/data"
    }

    fn container_env(&self, params: &Parameters) -> Vec<String> {
        vec![format!("REDIS_PASSWORD={}", password(params))]
    }

    /// A fixed script (the password comes from the environment, never from the script text):
    /// on first start it writes the ACL file with the default user's password hash, so ACL
    /// users made for linked projects survive restarts (`ACL SAVE` writes to the same file).
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

    fn tenancy(&self) -> Option<&dyn Tenancy> {
        Some(self)
    }
}
