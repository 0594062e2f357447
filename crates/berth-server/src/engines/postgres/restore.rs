//! PostgreSQL restores, the other half of `backup.rs`. Roles first (`globals.sql`), without
//! the service's own admin role: its password is Berth's, and a restore must never lock Berth
//! out. A role that exists already is left as it is (psql reports it and goes on). Then each
//! database: dropped (its sessions ended) and made again by `pg_restore --create` from the
//! dump streamed into its stdin, so owner, settings, grants and data are the backup's. Nothing
//! but the databases the restore names is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use sqlx::Connection;

use super::backup::count_rows;
use super::tenancy::run_formatted;
use super::{admin_connection_to, get};
use crate::engines::backup::{DumpPart, PartKind, RestoreStream};
use crate::engines::tenancy::ServiceAccess;

const SOCKET_DIR: &str = "/var/run/postgresql";
const OS_USER: &str = "postgres";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Roles and tablespaces only: a few KB in practice; more is not a globals dump.
const GLOBALS_LIMIT: usize = 16 << 20;

pub(super) async fn restore(
    service: &ServiceAccess<'_>,
    part: &DumpPart,
    stream: RestoreStream,
) -> Result<(), String> {
    let admin = get(service.params, "username");
    match (part.kind, part.database.as_deref()) {
        (PartKind::Globals, _) => {
            let text = read_small(stream, GLOBALS_LIMIT).await?;
            let statements = without_role(&text, admin);
            let maintenance = get(service.params, "database");
            let argv = [
                "psql",
                "-X",
                "-q",
                "-h",
                SOCKET_DIR,
                "-U",
                admin,
                "-d",
                maintenance,
                "-f",
                "-",
            ];
            let out = service
                .exec(&argv, Some(OS_USER), Some(statements.into_bytes()))
                .await?;
            out.success().map(|_| ()).map_err(|e| format!("psql: {e}"))
        }
        (PartKind::Database, Some(database)) => {
            // Work from another database than the one replaced.
            let maintenance = if database == "template1" {
                "postgres"
            } else {
                "template1"
            };
            let mut conn = admin_connection_to(
                service.host_port,
                service.params,
                maintenance,
                CONNECT_TIMEOUT,
            )
            .await
            .map_err(|e| format!("connecting to {maintenance}: {e}"))?;
            run_formatted(
                &mut conn,
                "SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text)",
                &[database],
            )
            .await
            .map_err(|e| format!("dropping database {database:?} to replace it: {e}"))?;
            conn.close().await.ok();
            let argv = [
                "pg_restore",
                "--create",
                "--exit-on-error",
                "-h",
                SOCKET_DIR,
                "-U",
                admin,
                "-d",
                maintenance,
            ];
            service
                .exec_with_input_stream(&argv, Some(OS_USER), stream)
                .await
                .map(|_| ())
                .map_err(|e| format!("pg_restore of {database:?}: {e}"))
        }
        _ => Err(format!("cannot restore part {}", part.file)),
    }
}

pub(super) async fn counts(
    service: &ServiceAccess<'_>,
    database: Option<&str>,
) -> Result<BTreeMap<String, u64>, String> {
    let database = database.unwrap_or_else(|| get(service.params, "database"));
    let mut conn =
        admin_connection_to(service.host_port, service.params, database, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("connecting to {database:?}: {e}"))?;
    let counts = count_rows(&mut conn).await;
    conn.close().await.ok();
    counts
}

/// Reads a whole (small) stream; refuses one over `limit` bytes.
async fn read_small(mut stream: RestoreStream, limit: usize) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() > limit {
            return Err(format!("globals dump larger than {limit} bytes"));
        }
    }
    String::from_utf8(bytes).map_err(|_| "globals dump is not UTF-8".to_string())
}

/// The globals dump without the statements about `role` (pg_dumpall writes one statement
/// per line: `CREATE ROLE name;`, `ALTER ROLE name WITH ...;`, quoted when needed).
fn without_role(globals: &str, role: &str) -> String {
    let quoted = format!("\"{}\"", role.replace('"', "\"\""));
    let about_role = |line: &str| {
        ["CREATE ROLE ", "ALTER ROLE "].iter().any(|verb| {
            line.strip_prefix(verb).is_some_and(|rest| {
                [role, quoted.as_str()].iter().any(|name| {
                    rest.strip_prefix(name)
                        .is_some_and(|after| after.starts_with(';') || after.starts_with(' '))
                })
            })
        })
    };
    globals
        .lines()
        .filter(|line| !about_role(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::without_role;

    #[test]
    fn the_admin_roles_statements_are_left_out_and_no_other() {
        let dump = "CREATE ROLE postgres;\n\
                    ALTER ROLE postgres WITH SUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$x';\n\
                    CREATE ROLE postgres_reader;\n\
                    ALTER ROLE postgres_reader WITH LOGIN;\n\
                    CREATE ROLE \"Odd\"\"Name\";\n";
        let kept = without_role(dump, "postgres");
        assert!(!kept.contains("SCRAM"), "{kept}");
        assert!(!kept.contains("CREATE ROLE postgres;"), "{kept}");
        assert!(kept.contains("CREATE ROLE postgres_reader;"), "{kept}");
        assert!(
            kept.contains("ALTER ROLE postgres_reader WITH LOGIN;"),
            "{kept}"
        );
        let odd = without_role(dump, "Odd\"Name");
        assert!(!odd.contains("Odd"), "{odd}");
    }
}
