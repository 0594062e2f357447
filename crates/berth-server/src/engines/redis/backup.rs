//! Redis backups: the ACL file (`users.acl`: the projects' users, so their logins work after a
//! restore) and an RDB snapshot taken the way a replica gets one (`sync.rs`), its keys counted
//! per database as it streams by (`rdb.rs`). Berth compresses both (zstd).
//!
//! Restore: the ACL users come back beside the service's own `default` user (whose password
//! stays Berth's) and are loaded with `ACL LOAD`. The snapshot is written next to the data as
//! an AOF base (Redis runs with `appendonly yes`, which would ignore a `dump.rdb`), then, with
//! the server stopped, swapped in for the current AOF directory by a one-shot container; the
//! server starts on it. Counts are compared allowing keys with an expiry to have expired.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::io::StreamReader;

use super::{Redis, admin_connection, password};
use crate::engines::Engine;
use crate::engines::backup::{BackupEngine, Dump, DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::ServiceAccess;

const ACL_FILE: &str = "/data/users.acl";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// An ACL file is small; more than this is not one.
const ACL_LIMIT: usize = 16 << 20;

#[async_trait]
impl BackupEngine for Redis {
    async fn plan(&self, _service: &ServiceAccess<'_>) -> Result<Vec<DumpPart>, String> {
        Ok(vec![
            DumpPart {
                file: "users.acl".into(),
                kind: PartKind::Globals,
                database: None,
                compressed_by_tool: None,
            },
            DumpPart {
                file: "dump.rdb".into(),
                kind: PartKind::Snapshot,
                database: None,
                compressed_by_tool: None,
            },
        ])
    }

    async fn dump(&self, service: &ServiceAccess<'_>, part: &DumpPart) -> Result<Dump, String> {
        match part.kind {
            PartKind::Globals => {
                let stream = service.exec_output_stream(&["cat", ACL_FILE], None).await?;
                Ok(Dump {
                    stream: Box::pin(stream),
                    counts: futures_util::future::ready(Ok(BTreeMap::new())).boxed(),
                })
            }
            _ => {
                let (_, snapshot) =
                    super::sync::snapshot(service.host_port, password(service.params)).await?;
                // The counter reads a copy of every chunk; the channel's bound makes the upload
                // wait for it rather than memory grow.
                let (copies, received) = mpsc::channel::<Bytes>(16);
                let counter = tokio::spawn(async move {
                    let chunks = futures_util::stream::poll_fn({
                        let mut received = received;
                        move |cx| received.poll_recv(cx)
                    })
                    .map(Ok::<_, std::io::Error>);
                    let mut reader = StreamReader::new(chunks);
                    super::rdb::count_keys(&mut reader).await
                });
                let stream = snapshot.then(move |chunk| {
                    let copies = copies.clone();
                    async move {
                        if let Ok(bytes) = &chunk {
                            // A counter that has stopped (it failed) no longer takes copies;
                            // its error is reported through `counts`.
                            let _ = copies.send(bytes.clone()).await;
                        }
                        chunk
                    }
                });
                let counts = async move {
                    counter
                        .await
                        .map_err(|e| format!("counting keys: {e}"))?
                        .map_err(|e| format!("counting keys: {e}"))
                }
                .boxed();
                Ok(Dump {
                    stream: Box::pin(stream),
                    counts,
                })
            }
        }
    }

    async fn restore(
        &self,
        service: &ServiceAccess<'_>,
        part: &DumpPart,
        stream: RestoreStream,
    ) -> Result<(), String> {
        match part.kind {
            PartKind::Globals => restore_users(service, stream).await,
            _ => {
                restore_snapshot(service, stream).await?;
                self.wait_ready(service).await
            }
        }
    }

    async fn counts(
        &self,
        service: &ServiceAccess<'_>,
        _database: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, String> {
        let mut conn = admin_connection(service.host_port, service.params, CONNECT_TIMEOUT).await?;
        let info: String = redis::cmd("INFO")
            .arg("keyspace")
            .query_async(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(keyspace_counts(&info))
    }

    fn counts_match(
        &self,
        backed_up: &BTreeMap<String, u64>,
        now: &BTreeMap<String, u64>,
    ) -> Result<(), String> {
        let mut differences = Vec::new();
        for (db, total) in backed_up.iter().filter(|(k, _)| !k.ends_with(".expiring")) {
            let may_expire = backed_up
                .get(&format!("{db}.expiring"))
                .copied()
                .unwrap_or(0);
            let got = now.get(db).copied().unwrap_or(0);
            if got > *total || got < total - may_expire {
                differences.push(format!(
                    "{db}: {got} keys, the backup counted {total} ({may_expire} with an expiry)"
                ));
            }
        }
        for db in now
            .keys()
            .filter(|db| !db.ends_with(".expiring") && !backed_up.contains_key(*db))
        {
            differences.push(format!("{db}: not in the backup"));
        }
        if differences.is_empty() {
            Ok(())
        } else {
            Err(differences.join("; "))
        }
    }
}

impl Redis {
    async fn wait_ready(&self, service: &ServiceAccess<'_>) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.probe(service.host_port, service.params).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!(
                        "the server did not come back after the restore: {e}"
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// The backup's ACL users, beside the service's own `default` user, loaded at once.
async fn restore_users(
    service: &ServiceAccess<'_>,
    mut stream: RestoreStream,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() > ACL_LIMIT {
            return Err("the ACL file in the backup is too large".into());
        }
    }
    let backed_up =
        String::from_utf8(bytes).map_err(|_| "the ACL file is not UTF-8".to_string())?;
    let current = service
        .exec(&["cat", ACL_FILE], None, None)
        .await?
        .success()?;
    let current = String::from_utf8_lossy(&current).into_owned();
    let merged = merge_acl(&current, &backed_up);
    // Written beside it, then renamed: the server never reads half a file.
    let script = "cat > /data/users.acl.restore && chown --reference=/data /data/users.acl.restore \
                  && mv /data/users.acl.restore /data/users.acl";
    service
        .exec(&["sh", "-c", script], None, Some(merged.into_bytes()))
        .await?
        .success()?;
    let mut conn = admin_connection(service.host_port, service.params, CONNECT_TIMEOUT).await?;
    redis::cmd("ACL")
        .arg("LOAD")
        .query_async::<()>(&mut conn)
        .await
        .map_err(|e| format!("ACL LOAD: {e}"))
}

/// The current file's `default` user (the service's admin, Berth's password) and every other
/// user from the backup.
fn merge_acl(current: &str, backed_up: &str) -> String {
    let is_default = |line: &str| line.starts_with("user default ");
    current
        .lines()
        .filter(|l| is_default(l))
        .chain(
            backed_up
                .lines()
                .filter(|l| l.starts_with("user ") && !is_default(l)),
        )
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Streams the snapshot next to the data as a complete AOF directory, then swaps it in with
/// the server stopped.
async fn restore_snapshot(
    service: &ServiceAccess<'_>,
    stream: RestoreStream,
) -> Result<(), String> {
    let write = "rm -rf /data/.restore && mkdir -p /data/.restore.partial && \
                 cat > /data/.restore.partial/appendonly.aof.1.base.rdb && \
                 printf 'file appendonly.aof.1.base.rdb seq 1 type b\\n' \
                   > /data/.restore.partial/appendonly.aof.manifest && \
                 chown -R --reference=/data /data/.restore.partial && \
                 mv /data/.restore.partial /data/.restore";
    service
        .exec_with_input_stream(&["sh", "-c", write], None, stream)
        .await
        .map_err(|e| format!("writing the snapshot: {e}"))?;
    let swap = "rm -rf /data/appendonlydir /data/dump.rdb && mv /data/.restore /data/appendonlydir";
    service
        .run_offline(&["sh", "-c", swap], Some("0"))
        .await
        .map_err(|e| format!("swapping the data in: {e}"))
}

/// `INFO keyspace` as counts: `db0:keys=5,expires=1,avg_ttl=0` -> `db0` 5, `db0.expiring` 1.
fn keyspace_counts(info: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for line in info.lines() {
        let Some((db, fields)) = line.trim().split_once(':') else {
            continue;
        };
        if !db.starts_with("db") {
            continue;
        }
        for field in fields.split(',') {
            match field.split_once('=') {
                Some(("keys", n)) => {
                    counts.insert(db.to_string(), n.parse().unwrap_or(0));
                }
                Some(("expires", n)) => {
                    let n: u64 = n.parse().unwrap_or(0);
                    if n > 0 {
                        counts.insert(format!("{db}.expiring"), n);
                    }
                }
                _ => {}
            }
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_own_default_user_is_kept_and_the_backups_others_added() {
        let current = "user default on #aaa ~* &* +@all\n";
        let backed_up = "user default on #old ~* &* +@all\nuser shop_production on #bbb ~* resetchannels -@all +@read\n";
        let merged = merge_acl(current, backed_up);
        assert!(merged.contains("#aaa"), "{merged}");
        assert!(!merged.contains("#old"), "{merged}");
        assert!(merged.contains("user shop_production"), "{merged}");
    }

    #[test]
    fn keyspace_lines_become_counts() {
        let info =
            "# Keyspace\r\ndb0:keys=5,expires=1,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n";
        let counts = keyspace_counts(info);
        assert_eq!(counts["db0"], 5);
        assert_eq!(counts["db0.expiring"], 1);
        assert_eq!(counts["db3"], 2);
        assert!(!counts.contains_key("db3.expiring"));
    }

    #[test]
    fn expired_keys_are_allowed_to_be_missing_and_nothing_else() {
        let backed: BTreeMap<String, u64> =
            [("db1".to_string(), 10), ("db1.expiring".to_string(), 3)].into();
        let ok: BTreeMap<String, u64> = [("db1".to_string(), 8)].into();
        assert!(Redis.counts_match(&backed, &ok).is_ok());
        let short: BTreeMap<String, u64> = [("db1".to_string(), 6)].into();
        assert!(Redis.counts_match(&backed, &short).is_err());
        let extra: BTreeMap<String, u64> = [("db1".to_string(), 10), ("db2".to_string(), 1)].into();
        assert!(Redis.counts_match(&backed, &extra).is_err());
    }
}
