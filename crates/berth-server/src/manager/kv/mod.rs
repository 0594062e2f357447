//! KV: a key-value store for projects (Temps' `/kv/*`) kept in a Redis service of its own,
//! an ordinary Berth service (health, start/stop, upgrade and the reconciler apply to it)
//! recorded as KV's backing in the store (`backing_services`, feature `kv`). Never a tenant's database: projects
//! share the backing, each confined to its own key prefix (`namespace.rs`).
//!
//! - `backing.rs`: enable, update, disable and status of the backing service.
//! - `ops.rs`: the data commands, for one project.
//! - here: what requests share — the backing as the store last said (re-read only when the
//!   store's write generation moved), the projects known to exist, and one pooled, multiplexed
//!   admin connection to the backing, rebuilt when its port or password changes or when it
//!   breaks (the container was recreated or restarted). No request opens a connection of its
//!   own, and a request never waits on SQL while nothing was written.

mod backing;
mod namespace;
mod ops;

use std::collections::HashSet;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use super::backing::KV;
use super::{ManagerError, ManagerResult, ServiceManager};

pub use backing::{EnableRequest, KvChange, KvStatus};
pub use namespace::{MAX_DEL_KEYS, MAX_KEY_BYTES};
pub use ops::{ProjectKv, SetOptions};

/// Statuses of a service while an operation brings it up or changes it.
const IN_FLIGHT: &[&str] = &["creating", "starting", "updating"];

/// Connecting (TCP + AUTH) to the backing; beyond it the request answers 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One command's answer; beyond it the request answers 503 and the connection is rebuilt.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared by every KV request (a field of the manager).
#[derive(Default)]
pub struct KvState {
    view: StdMutex<Option<View>>,
    pool: StdMutex<Option<Pooled>>,
    /// Held while connecting, so a burst of requests after a restart opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

/// What the store said at `generation`.
struct View {
    generation: u64,
    backing: Option<Arc<Backing>>,
    /// Projects seen to exist at `generation` (deleting one moves the generation).
    projects: HashSet<i64>,
}

/// KV's backing service as the store records it.
#[derive(Debug)]
pub(crate) struct Backing {
    service_id: i64,
    name: String,
    enabled: bool,
    desired_state: String,
    status: String,
    /// `None` while the service has no port recorded (never in practice).
    endpoint: Option<Endpoint>,
}

/// Where and as whom KV connects: the service's published port on 127.0.0.1, as its admin.
#[derive(Clone, PartialEq, Eq)]
struct Endpoint {
    service_id: i64,
    port: u16,
    password: String,
}

impl std::fmt::Debug for Endpoint {
    /// Never the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "service {} on 127.0.0.1:{}", self.service_id, self.port)
    }
}

struct Pooled {
    endpoint: Endpoint,
    conn: MultiplexedConnection,
}

impl ServiceManager {
    /// KV's backing at the store's current generation (read from the store only after a write).
    async fn kv_backing_view(&self) -> ManagerResult<Option<Arc<Backing>>> {
        let generation = self.store.generation();
        if let Some(view) = self.kv_state.view.lock().expect("kv view").as_ref()
            && view.generation == generation
        {
            return Ok(view.backing.clone());
        }
        let backing = self.load_kv_backing().await?.map(Arc::new);
        *self.kv_state.view.lock().expect("kv view") = Some(View {
            generation,
            backing: backing.clone(),
            projects: HashSet::new(),
        });
        Ok(backing)
    }

    async fn load_kv_backing(&self) -> ManagerResult<Option<Backing>> {
        let Some(recorded) = self.store.backing(super::backing::KV.key).await? else {
            return Ok(None);
        };
        let Some(service) = self.store.service(recorded.service_id).await? else {
            // The row goes with its service (ON DELETE CASCADE): a deleted service never stays.
            return Ok(None);
        };
        let endpoint = service
            .param("port")
            .and_then(|p| p.parse().ok())
            .map(|port| Endpoint {
                service_id: service.id,
                port,
                password: service.param("password").unwrap_or_default().to_string(),
            });
        Ok(Some(Backing {
            service_id: service.id,
            name: service.name,
            enabled: recorded.enabled,
            desired_state: service.desired_state,
            status: service.status,
            endpoint,
        }))
    }

    /// Whether project `id` exists, answered from memory while nothing was written.
    async fn kv_project_exists(&self, id: i64) -> ManagerResult<bool> {
        let generation = self.store.generation();
        if let Some(view) = self.kv_state.view.lock().expect("kv view").as_ref()
            && view.generation == generation
            && view.projects.contains(&id)
        {
            return Ok(true);
        }
        if self.store.project(id).await?.is_none() {
            return Ok(false);
        }
        if let Some(view) = self.kv_state.view.lock().expect("kv view").as_mut()
            && view.generation == generation
        {
            view.projects.insert(id);
        }
        Ok(true)
    }

    /// The enabled backing and a connection to it, or the 404/503 saying why there is none.
    async fn kv_connection(&self) -> ManagerResult<(Arc<Backing>, MultiplexedConnection)> {
        let mut backing = self.usable_backing().await?;
        if IN_FLIGHT.contains(&backing.status.as_str()) {
            // Being created, started or updated (an enable answered 202, an update): wait for
            // that operation, as a request on the service itself would, rather than fail.
            let lock = self.claim_lock(backing.service_id);
            let bound = Duration::from_secs(self.config.sync_wait_secs);
            if tokio::time::timeout(bound, lock.read()).await.is_err() {
                return Err(ManagerError::Unavailable(format!(
                    "KV's Redis service {:?} has been {} for {} s; retry later",
                    backing.name,
                    backing.status,
                    bound.as_secs()
                )));
            }
            backing = self.usable_backing().await?;
        }
        let Some(endpoint) = backing.endpoint.as_ref() else {
            return Err(ManagerError::Internal(format!(
                "KV's Redis service {} has no port recorded",
                backing.service_id
            )));
        };
        if let Some(pooled) = self.kv_state.pool.lock().expect("kv pool").as_ref()
            && pooled.endpoint == *endpoint
        {
            return Ok((backing.clone(), pooled.conn.clone()));
        }
        let _connecting = self.kv_state.connecting.lock().await;
        if let Some(pooled) = self.kv_state.pool.lock().expect("kv pool").as_ref()
            && pooled.endpoint == *endpoint
        {
            return Ok((backing.clone(), pooled.conn.clone()));
        }
        let endpoint = endpoint.clone();
        let conn = connect(&endpoint)
            .await
            .map_err(|e| unreachable(&backing, &redis_detail(&e, &endpoint)))?;
        tracing::debug!(service_id = endpoint.service_id, ?endpoint, "KV connected");
        *self.kv_state.pool.lock().expect("kv pool") = Some(Pooled {
            endpoint,
            conn: conn.clone(),
        });
        Ok((backing, conn))
    }

    /// The backing if KV is on and its service should run.
    async fn usable_backing(&self) -> ManagerResult<Arc<Backing>> {
        let backing = self.kv_backing_view().await?.ok_or_else(not_enabled)?;
        if !backing.enabled {
            return Err(ManagerError::NotFound(format!(
                "KV is disabled; its data is kept in Redis service {:?}. Enable it again with \
                 POST /api/kv/enable (`berth kv enable`)",
                backing.name
            )));
        }
        if backing.desired_state == "stopped" {
            return Err(stopped(&backing));
        }
        Ok(backing)
    }

    /// Runs one command on the backing; errors become the answer the client should get.
    async fn kv_query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> ManagerResult<T> {
        self.kv_query_once(cmd).await.map_err(|(_, e)| e)
    }

    /// [`Self::kv_query`] for a command that may run twice without harm (a read, a plain SET,
    /// EXPIRE): once more on a fresh connection if the pooled one turned out broken. After the
    /// backing restarts (an update, the reconciler), the pooled connection is dead and only a
    /// command finds out; this way no read fails for it.
    async fn kv_query_idempotent<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> ManagerResult<T> {
        match self.kv_query_once(cmd).await {
            Err((true, _)) => self.kv_query(cmd).await,
            outcome => outcome.map_err(|(_, e)| e),
        }
    }

    /// The error side says whether the connection broke (and was dropped from the pool).
    async fn kv_query_once<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, (bool, ManagerError)> {
        let (backing, mut conn) = self.kv_connection().await.map_err(|e| (false, e))?;
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| self.kv_error(&backing, e))
    }

    /// A Redis error as the client's answer, and whether the connection broke. A broken
    /// connection is dropped from the pool, so the next command connects again (to a
    /// recreated container, a new port ...).
    fn kv_error(&self, backing: &Backing, e: redis::RedisError) -> (bool, ManagerError) {
        use redis::{ErrorKind, ServerErrorKind};
        let broken = e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error();
        if broken {
            let mut pool = self.kv_state.pool.lock().expect("kv pool");
            if pool.as_ref().map(|p| &p.endpoint) == backing.endpoint.as_ref() {
                *pool = None;
            }
            drop(pool);
            let detail = match &backing.endpoint {
                Some(endpoint) => redis_detail(&e, endpoint),
                None => "no endpoint".into(),
            };
            return (true, unreachable(backing, &detail));
        }
        let detail = e.detail().unwrap_or_default().to_string();
        let error = match e.kind() {
            ErrorKind::Server(ServerErrorKind::BusyLoading) => ManagerError::Unavailable(format!(
                "KV's Redis service {:?} is loading its data; retry shortly",
                backing.name
            )),
            _ if detail.contains("not an integer") || detail.contains("overflow") => {
                ManagerError::BadRequest(
                    "the key's value is not an integer, or the result would not fit a 64-bit \
                     signed integer"
                        .into(),
                )
            }
            _ if detail.contains("invalid expire time") => {
                ManagerError::BadRequest("the expiry is out of range for Redis".into())
            }
            _ if e.code() == Some("OOM") => ManagerError::Unavailable(format!(
                "KV's Redis service {:?} is out of memory; delete keys or give it more",
                backing.name
            )),
            _ if e.code() == Some("WRONGTYPE") => ManagerError::Conflict(
                "the key holds a Redis type other than a string (written outside KV)".into(),
            ),
            _ => ManagerError::Internal(format!(
                "KV command failed on Redis service {}: {e}",
                backing.service_id
            )),
        };
        (false, error)
    }
}

/// 404 as in Temps ("not configured"): KV is off, not out of order.
fn not_enabled() -> ManagerError {
    KV.not_enabled()
}

fn stopped(backing: &Backing) -> ManagerError {
    KV.stopped(&backing.name, backing.service_id)
}

fn unreachable(backing: &Backing, detail: &str) -> ManagerError {
    ManagerError::Unavailable(format!(
        "KV's Redis service {name:?} (id {id}, status {status}) does not answer ({detail}); \
         Berth restarts it if it should run: see `berth service health {name}`",
        name = backing.name,
        id = backing.service_id,
        status = backing.status
    ))
}

/// The error's text without the password (drivers may echo what they were given).
fn redis_detail(e: &redis::RedisError, endpoint: &Endpoint) -> String {
    let text = e.to_string();
    if endpoint.password.is_empty() {
        text
    } else {
        text.replace(&endpoint.password, berth_core::mask::MASK)
    }
}

/// One multiplexed connection: every request's commands are pipelined on it.
async fn connect(endpoint: &Endpoint) -> redis::RedisResult<MultiplexedConnection> {
    let info = ConnectionAddr::Tcp("127.0.0.1".into(), endpoint.port)
        .into_connection_info()?
        .set_redis_settings(RedisConnectionInfo::default().set_password(&endpoint.password));
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    redis::Client::open(info)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
