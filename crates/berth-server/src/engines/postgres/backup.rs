//! PostgreSQL backups: `pg_dumpall --globals-only` (roles, so a tenant's owner exists on
//! restore) plus one `pg_dump -Fc` per database, so one project's database restores alone.
//! The tools run inside the service's container over its local socket (trust for local
//! connections as the `postgres` OS user in both Berth's and the official image), so no
//! password is passed to a process. Custom format is compressed by pg_dump itself; Berth adds
//! no second compression.
//!
//! Row counts come from the dump's own snapshot: Berth opens a repeatable-read transaction,
//! exports its snapshot, hands it to `pg_dump --snapshot`, and counts every table in that same
//! transaction while the dump runs. The transaction stays open until the dump has ended.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use sqlx::{Connection, Row};

use super::{Postgres, admin_connection, admin_connection_to, get};
use crate::engines::backup::{BackupEngine, Dump, DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::{ServiceAccess, url_encode};

const SOCKET_DIR: &str = "/var/run/postgresql";
const OS_USER: &str = "postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Every ordinary and partitioned table, with its row count, in the current transaction.
/// Names are quoted by the server (`%I`), never assembled in Berth.
pub(super) const COUNT_ROWS: &str = "\
    SELECT format('%I.%I', n.nspname, c.relname) AS name, \
           (xpath('/row/c/text()', query_to_xml( \
               format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), \
               false, true, '')))[1]::text::bigint AS rows \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE c.relkind IN ('r', 'p') \
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
      AND n.nspname NOT LIKE 'pg_toast%' \
    ORDER BY 1";

#[async_trait]
impl BackupEngine for Postgres {
    fn can_hold_writes(&self) -> bool {
        true
    }

    async fn block_writes(&self, service: &ServiceAccess<'_>, blocked: bool) -> Result<(), String> {
        let mut conn = admin_connection(service.host_port, service.params, CONNECT_TIMEOUT).await?;
        let run = |sql: &'static str| sqlx::query(sql);
        // This session may change the setting whatever the server's default is by now.
        run("SET default_transaction_read_only = off")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("holding writes: {e}"))?;
        let statement = if blocked {
            "ALTER SYSTEM SET default_transaction_read_only = on"
        } else {
            "ALTER SYSTEM RESET default_transaction_read_only"
        };
        run(statement)
            .execute(&mut conn)
            .await
            .map_err(|e| format!("holding writes: {e}"))?;
        run("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("reloading the configuration: {e}"))?;
        if blocked {
            // A transaction begun before the reload could still commit a write after the
            // dump's snapshot: end them all (clients reconnect into read-only sessions).
            run("SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'")
            .execute(&mut conn)
            .await
            .map_err(|e| format!("ending open transactions: {e}"))?;
        }
        conn.close().await.ok();
        Ok(())
    }

    async fn plan(&self, service: &ServiceAccess<'_>) -> Result<Vec<DumpPart>, String> {
        let mut conn = admin_connection(service.host_port, service.params, CONNECT_TIMEOUT).await?;
        let databases: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate \
             ORDER BY datname",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("listing databases: {e}"))?;
        let mut parts = vec![DumpPart {
            file: "globals.sql".into(),
            kind: PartKind::Globals,
            database: None,
            compressed_by_tool: None,
        }];
        parts.extend(databases.into_iter().map(|database| DumpPart {
            file: format!("db-{}.pgdump", url_encode(&database)),
            kind: PartKind::Database,
            database: Some(database),
            compressed_by_tool: Some("pg_custom"),
        }));
        Ok(parts)
    }

    async fn dump(&self, service: &ServiceAccess<'_>, part: &DumpPart) -> Result<Dump, String> {
        let admin = get(service.params, "username").to_string();
        match (part.kind, part.database.as_deref()) {
            (PartKind::Globals, _) => {
                let argv = [
                    "pg_dumpall",
                    "--globals-only",
                    "--no-tablespaces",
                    "-h",
                    SOCKET_DIR,
                    "-U",
                    &admin,
                ];
                let stream = service.exec_output_stream(&argv, Some(OS_USER)).await?;
                Ok(Dump {
                    stream: Box::pin(stream),
                    counts: futures_util::future::ready(Ok(BTreeMap::new())).boxed(),
                })
            }
            (PartKind::Database, Some(database)) => {
                let mut conn = admin_connection_to(
                    service.host_port,
                    service.params,
                    database,
                    CONNECT_TIMEOUT,
                )
                .await
                .map_err(|e| format!("connecting to database {database:?}: {e}"))?;
                sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                    .fetch_one(&mut conn)
                    .await
                    .map_err(|e| format!("exporting a snapshot: {e}"))?;
                let argv = [
                    "pg_dump",
                    "--format=custom",
                    "--snapshot",
                    &snapshot,
                    "-h",
                    SOCKET_DIR,
                    "-U",
                    &admin,
                    "-d",
                    database,
                ];
                let stream = service.exec_output_stream(&argv, Some(OS_USER)).await?;
                // Counting runs beside the dump, in the transaction whose snapshot pg_dump
                // uses; the connection (and so the snapshot) lives until the counts are
                // collected, after the dump has ended.
                let counting = tokio::spawn(async move {
                    let counts = count_rows(&mut conn).await;
                    (conn, counts)
                });
                let counts = async move {
                    let (conn, counts) =
                        counting.await.map_err(|e| format!("counting rows: {e}"))?;
                    conn.close().await.ok();
                    counts
                }
                .boxed();
                Ok(Dump {
                    stream: Box::pin(stream),
                    counts,
                })
            }
            _ => Err(format!("unknown part {}", part.file)),
        }
    }

    async fn restore(
        &self,
        service: &ServiceAccess<'_>,
        part: &DumpPart,
        stream: RestoreStream,
    ) -> Result<(), String> {
        super::restore::restore(service, part, stream).await
    }

    async fn counts(
        &self,
        service: &ServiceAccess<'_>,
        database: Option<&str>,
    ) -> Result<BTreeMap<String, u64>, String> {
        super::restore::counts(service, database).await
    }
}

/// Row counts of every table visible to the connection's transaction.
pub(super) async fn count_rows(
    conn: &mut sqlx::PgConnection,
) -> Result<BTreeMap<String, u64>, String> {
    let rows = sqlx::query(COUNT_ROWS)
        .fetch_all(conn)
        .await
        .map_err(|e| format!("counting rows: {e}"))?;
    rows.iter()
        .map(|row| {
            let name: String = row.try_get("name").map_err(|e| e.to_string())?;
            let count: i64 = row.try_get("rows").map_err(|e| e.to_string())?;
            Ok((name, count.max(0) as u64))
        })
        .collect()
}
