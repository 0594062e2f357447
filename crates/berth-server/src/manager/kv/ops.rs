//! The data commands of one project's KV, with Temps' semantics: values are JSON documents
//! stored as their JSON text (so `incr` works on a number `set` wrote, and `get` returns what
//! `set` was given), keys live under the project's prefix (`namespace.rs`). Input is checked
//! before KV's backing is looked at, so bad input is a 400 whatever state KV is in.

use std::collections::BTreeSet;

use serde_json::Value;

use super::namespace::{self, MAX_DEL_KEYS, validate_key, validate_pattern};
use super::{ManagerError, ManagerResult, ServiceManager};

/// Most keys one `keys` call returns; a pattern matching more is refused (narrow it).
pub const MAX_KEYS_LISTED: usize = 10_000;
/// Keys Redis examines per SCAN step.
const SCAN_COUNT: usize = 1000;

/// `set`'s options, as Temps names them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SetOptions {
    /// Expire after this many seconds.
    pub ex: Option<i64>,
    /// Expire after this many milliseconds.
    pub px: Option<i64>,
    /// Only if the key does not exist.
    pub nx: bool,
    /// Only if the key exists.
    pub xx: bool,
}

impl SetOptions {
    fn validate(&self) -> ManagerResult<()> {
        let refuse = |m: &str| Err(ManagerError::BadRequest(m.into()));
        if self.ex.is_some() && self.px.is_some() {
            return refuse("give ex (seconds) or px (milliseconds), not both");
        }
        if self.nx && self.xx {
            return refuse("give nx (only if absent) or xx (only if present), not both");
        }
        if self.ex.is_some_and(|s| s <= 0) || self.px.is_some_and(|ms| ms <= 0) {
            return refuse("ex and px must be positive");
        }
        Ok(())
    }
}

/// One project's KV: every key it names is inside that project's prefix.
pub struct ProjectKv<'a> {
    manager: &'a ServiceManager,
    project_id: i64,
}

impl ServiceManager {
    /// The KV of `project_id`. `verified`: the caller's token is bound to this project, which
    /// authentication already found alive; otherwise the project must exist (404).
    pub async fn kv(&self, project_id: i64, verified: bool) -> ManagerResult<ProjectKv<'_>> {
        if !verified && !self.kv_project_exists(project_id).await? {
            return Err(ManagerError::NotFound(format!(
                "project {project_id} does not exist"
            )));
        }
        Ok(ProjectKv {
            manager: self,
            project_id,
        })
    }

    /// Removes every KV key of a deleted project (its id is never given again, so they could
    /// only waste memory). Best effort: KV off or unreachable leaves them, logged.
    pub async fn kv_forget_project(&self, project_id: i64) {
        let kv = ProjectKv {
            manager: self,
            project_id,
        };
        let outcome = async {
            let keys = kv.scan("*", usize::MAX).await?;
            let mut removed = 0;
            for batch in keys.chunks(MAX_DEL_KEYS) {
                removed += kv.del(batch).await?;
            }
            Ok::<_, ManagerError>(removed)
        };
        match outcome.await {
            Ok(0) => {}
            Ok(removed) => tracing::info!(project_id, removed, "removed the project's KV keys"),
            // KV never enabled: nothing to remove.
            Err(ManagerError::NotFound(why)) if why.starts_with("KV is not enabled") => {}
            Err(e) => tracing::warn!(project_id, "the project's KV keys stay: {e}"),
        }
    }
}

fn bad_input(why: String) -> ManagerError {
    ManagerError::BadRequest(why)
}

impl ProjectKv<'_> {
    fn stored(&self, key: &str) -> ManagerResult<String> {
        validate_key(key).map_err(bad_input)?;
        Ok(namespace::stored_key(self.project_id, key))
    }

    /// The value, or `None` if the key does not exist (or expired).
    pub async fn get(&self, key: &str) -> ManagerResult<Option<Value>> {
        let stored = self.stored(key)?;
        let raw: Option<Vec<u8>> = self
            .manager
            .kv_query_idempotent(redis::cmd("GET").arg(&stored))
            .await?;
        // Text that is not JSON (written outside KV) comes back as a JSON string, as in Temps.
        Ok(raw.map(|bytes| {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        }))
    }

    /// Stores `value`; `false` when `nx`/`xx` kept it from being written.
    pub async fn set(&self, key: &str, value: &Value, options: SetOptions) -> ManagerResult<bool> {
        let stored = self.stored(key)?;
        options.validate()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(&stored).arg(value.to_string());
        if let Some(seconds) = options.ex {
            cmd.arg("EX").arg(seconds);
        }
        if let Some(millis) = options.px {
            cmd.arg("PX").arg(millis);
        }
        if options.nx {
            cmd.arg("NX");
        }
        if options.xx {
            cmd.arg("XX");
        }
        // NX and XX answer differently once the first attempt wrote: only a plain SET repeats.
        let reply: Option<String> = if options.nx || options.xx {
            self.manager.kv_query(&cmd).await?
        } else {
            self.manager.kv_query_idempotent(&cmd).await?
        };
        Ok(reply.is_some())
    }

    /// Deletes these keys; how many existed.
    pub async fn del(&self, keys: &[String]) -> ManagerResult<i64> {
        if keys.len() > MAX_DEL_KEYS {
            return Err(bad_input(format!(
                "{} keys in one del; the limit is {MAX_DEL_KEYS}",
                keys.len()
            )));
        }
        let stored = keys
            .iter()
            .map(|k| self.stored(k))
            .collect::<ManagerResult<Vec<_>>>()?;
        if stored.is_empty() {
            return Ok(0);
        }
        self.manager.kv_query(redis::cmd("DEL").arg(&stored)).await
    }

    /// Adds `amount` to the integer at `key` (0 if absent); the new value.
    pub async fn incr(&self, key: &str, amount: i64) -> ManagerResult<i64> {
        let stored = self.stored(key)?;
        self.manager
            .kv_query(redis::cmd("INCRBY").arg(&stored).arg(amount))
            .await
    }

    /// Sets a time to live; `false` if the key does not exist. Zero or negative seconds delete
    /// the key now (Redis' rule).
    pub async fn expire(&self, key: &str, seconds: i64) -> ManagerResult<bool> {
        let stored = self.stored(key)?;
        let set: i64 = self
            .manager
            .kv_query_idempotent(redis::cmd("EXPIRE").arg(&stored).arg(seconds))
            .await?;
        Ok(set == 1)
    }

    /// Seconds left; -1 without expiry, -2 if the key does not exist.
    pub async fn ttl(&self, key: &str) -> ManagerResult<i64> {
        let stored = self.stored(key)?;
        self.manager
            .kv_query_idempotent(redis::cmd("TTL").arg(&stored))
            .await
    }

    /// The project's keys matching `pattern` (Redis glob syntax), sorted.
    pub async fn keys(&self, pattern: &str) -> ManagerResult<Vec<String>> {
        validate_pattern(pattern).map_err(bad_input)?;
        self.scan(pattern, MAX_KEYS_LISTED).await
    }

    /// SCAN rather than KEYS: the backing serves every project, and KEYS would block all of
    /// them while it walks the keyspace.
    async fn scan(&self, pattern: &str, limit: usize) -> ManagerResult<Vec<String>> {
        let prefix = namespace::prefix(self.project_id);
        let matching = namespace::scan_pattern(self.project_id, pattern);
        let mut found = BTreeSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .manager
                .kv_query_idempotent(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&matching)
                        .arg("COUNT")
                        .arg(SCAN_COUNT),
                )
                .await?;
            for stored in batch {
                // Checked again here: only keys under this project's prefix are ever returned.
                if let Ok(stored) = String::from_utf8(stored)
                    && let Some(key) = namespace::user_key(&prefix, &stored)
                {
                    found.insert(key.to_string());
                }
            }
            if found.len() > limit {
                return Err(bad_input(format!(
                    "more than {limit} keys match {pattern:?}; narrow the pattern"
                )));
            }
            if next == 0 {
                return Ok(found.into_iter().collect());
            }
            cursor = next;
        }
    }
}
