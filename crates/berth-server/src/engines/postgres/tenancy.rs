//! PostgreSQL tenants: a database `{project}_{environment}` owned by a login role of the same
//! name with its own password; CONNECT and TEMPORARY revoked from PUBLIC, so one project's role
//! cannot connect to another's database (nor to `template1`, `postgres` or the admin's database).
//!
//! Berth only ever touches roles and databases it created: it marks them with a comment when it
//! creates them (role and marker in one transaction) and refuses, with a clear error, a name
//! that belongs to something else. Tenants of earlier Berth versions (no marker, a database
//! owned by the same-named non-superuser role) are recognised and marked.
//!
//! Identifiers and literals are quoted by PostgreSQL itself (`format('%I', ...)`,
//! `format('%L', ...)`), never spliced by us. Passwords never travel: Berth sends a SCRAM-SHA-256
//! verifier it computed, so no statement (logged, failed or bound) carries a password.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use berth_core::{Parameters, scram};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::super::tenancy::{Address, Allocation, Credentials, ServiceAccess, Tenancy, url_encode};
use super::{Postgres, admin_connection, get, tenant_connection_limit};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The comment Berth puts on the roles and databases it creates.
pub(super) const MARKER: &str = "Berth tenant (managed by Berth; do not reuse this name)";

/// How long `revoke` waits for each terminated session to end.
const TERMINATE_WAIT_MS: i32 = 5000;

/// Runs a statement that PostgreSQL's `format()` built from bound values.
pub(super) async fn run_formatted(
    conn: &mut PgConnection,
    template: &str,
    args: &[&str],
) -> Result<(), String> {
    let mut query = sqlx::query_scalar::<_, String>(AssertSqlSafe(template.to_string()));
    for arg in args {
        query = query.bind(*arg);
    }
    let statement = query
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(AssertSqlSafe(statement))
        .execute(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// A role as provision sees it.
struct RoleInfo {
    superuser: bool,
    marked: bool,
    can_login: bool,
}

/// A database as provision sees it.
struct DatabaseInfo {
    owner: String,
    marked: bool,
    template: bool,
}

async fn role_info(conn: &mut PgConnection, name: &str) -> Result<Option<RoleInfo>, String> {
    let row: Option<(bool, bool, bool)> = sqlx::query_as(
        "SELECT r.rolsuper, coalesce(shobj_description(r.oid, 'pg_authid') = $2, false), \
                r.rolcanlogin \
         FROM pg_roles r WHERE r.rolname = $1",
    )
    .bind(name)
    .bind(MARKER)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    Ok(row.map(|(superuser, marked, can_login)| RoleInfo {
        superuser,
        marked,
        can_login,
    }))
}

async fn database_info(
    conn: &mut PgConnection,
    name: &str,
) -> Result<Option<DatabaseInfo>, String> {
    let row: Option<(String, bool, bool)> = sqlx::query_as(
        "SELECT pg_get_userbyid(d.datdba)::text, \
                coalesce(shobj_description(d.oid, 'pg_database') = $2, false), d.datistemplate \
         FROM pg_database d WHERE d.datname = $1",
    )
    .bind(name)
    .bind(MARKER)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    Ok(row.map(|(owner, marked, template)| DatabaseInfo {
        owner,
        marked,
        template,
    }))
}

/// Whether an existing role is one Berth created for this tenant: marked, or (before markers)
/// a plain role owning the same-named database.
fn role_is_berths(role_name: &str, role: &RoleInfo, database: Option<&DatabaseInfo>) -> bool {
    role.marked || (!role.superuser && database.is_some_and(|d| d.owner == role_name))
}

/// Refuses names that are the service's own or PostgreSQL's, whatever exists.
fn refuse_system_names(params: &Parameters, tenant: &Credentials) -> Result<(), String> {
    let (db, role) = (&tenant.resource_name, &tenant.username);
    let admin_user = get(params, "username");
    let admin_db = get(params, "database");
    if role == admin_user || db == admin_user || role == admin_db || db == admin_db {
        return Err(format!(
            "tenant {db:?} is named like the service's own database or admin user; \
             Berth will not use it for a project"
        ));
    }
    for name in [db, role] {
        if name.starts_with("pg_") || name == "template0" || name == "template1" {
            return Err(format!(
                "{name:?} is a PostgreSQL system name; Berth will not use it for a project"
            ));
        }
    }
    Ok(())
}

fn foreign_role(role: &str) -> String {
    format!(
        "role {role:?} already exists and was not created by Berth; refusing to take it over \
         (its password and privileges are left alone). Rename or drop it, or link the project \
         to another service"
    )
}

fn foreign_database(db: &str, owner: &str) -> String {
    format!(
        "database {db:?} already exists (owner {owner:?}) and was not created by Berth; \
         refusing to adopt it (its owner and privileges are left alone). Rename or drop it, or \
         link the project to another service"
    )
}

/// Creates a role with the marker in one transaction, so a crash never leaves an unmarked role.
async fn create_role(conn: &mut PgConnection, role: &str) -> Result<(), String> {
    let mut tx = conn.begin().await.map_err(|e| e.to_string())?;
    run_formatted(
        &mut tx,
        "SELECT format('CREATE ROLE %I WITH NOLOGIN', $1::text)",
        &[role],
    )
    .await?;
    run_formatted(
        &mut tx,
        "SELECT format('COMMENT ON ROLE %I IS %L', $1::text, $2::text)",
        &[role, MARKER],
    )
    .await?;
    tx.commit().await.map_err(|e| e.to_string())
}

async fn mark_database(conn: &mut PgConnection, db: &str) -> Result<(), String> {
    run_formatted(
        conn,
        "SELECT format('COMMENT ON DATABASE %I IS %L', $1::text, $2::text)",
        &[db, MARKER],
    )
    .await
}

/// Takes CONNECT away from PUBLIC on the databases every cluster has and on the service's own,
/// so tenants reach nothing but their own database.
async fn close_shared_databases(conn: &mut PgConnection, admin_db: &str) -> Result<(), String> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database \
         WHERE datname = ANY(ARRAY['template1', 'postgres', $1::text])",
    )
    .bind(admin_db)
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| e.to_string())?;
    for db in names {
        run_formatted(
            conn,
            "SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::text)",
            &[&db],
        )
        .await?;
    }
    Ok(())
}

async fn provision_with(
    conn: &mut PgConnection,
    params: &Parameters,
    tenant: &Credentials,
) -> Result<(), String> {
    refuse_system_names(params, tenant)?;
    let (db, role) = (&tenant.resource_name, &tenant.username);
    // Computed first: a password PostgreSQL could not match fails before anything changes.
    let verifier = scram::verifier(&tenant.password).map_err(|e| e.to_string())?;
    let limit = tenant_connection_limit(params).to_string();

    // Decide before changing anything: what exists must be Berth's.
    let role_found = role_info(conn, role).await?;
    let db_found = database_info(conn, db).await?;
    if let Some(r) = &role_found
        && !role_is_berths(role, r, db_found.as_ref())
    {
        return Err(foreign_role(role));
    }
    if let Some(d) = &db_found
        && (d.template || (d.owner != *role && !d.marked))
    {
        return Err(foreign_database(db, &d.owner));
    }

    match &role_found {
        None => create_role(conn, role).await?,
        Some(r) if !r.marked => {
            // A tenant of a Berth version without markers.
            run_formatted(
                conn,
                "SELECT format('COMMENT ON ROLE %I IS %L', $1::text, $2::text)",
                &[role, MARKER],
            )
            .await?
        }
        Some(_) => {}
    }
    run_formatted(
        conn,
        "SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
         NOREPLICATION NOBYPASSRLS CONNECTION LIMIT %s VALID UNTIL ''infinity'' PASSWORD %L', \
         $1::text, $2::int, $3::text)",
        &[role, &limit, &verifier],
    )
    .await?;

    match &db_found {
        None => {
            // CREATE DATABASE cannot run inside a transaction; raw_sql sends it on its own.
            // template0: nothing anyone put into template1 reaches a tenant.
            run_formatted(
                conn,
                "SELECT format('CREATE DATABASE %I OWNER %I TEMPLATE template0', $1::text, $2::text)",
                &[db, role],
            )
            .await?;
            mark_database(conn, db).await?;
        }
        Some(d) => {
            if d.owner != *role {
                // Marked: Berth made it for this tenant and its owner was changed since.
                run_formatted(
                    conn,
                    "SELECT format('ALTER DATABASE %I OWNER TO %I', $1::text, $2::text)",
                    &[db, role],
                )
                .await?;
            }
            if !d.marked {
                // Made by this tenant's role being created (an interrupted provision, or an
                // earlier Berth version).
                mark_database(conn, db).await?;
            }
        }
    }
    run_formatted(
        conn,
        "SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::text)",
        &[db],
    )
    .await?;
    run_formatted(
        conn,
        "SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', $1::text, $2::text)",
        &[db, role],
    )
    .await?;
    close_shared_databases(conn, get(params, "database")).await
}

#[async_trait]
impl Tenancy for Postgres {
    fn allocation(&self) -> Allocation {
        Allocation::Named
    }

    /// Creates the tenant's role and database, or converges Berth's own to the recorded
    /// credentials (LOGIN on, password, connection limit, ownership, privileges). Refuses, before
    /// changing anything, a role or database of that name that Berth did not create.
    async fn provision(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let (host_port, params) = (service.host_port, service.params);
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let result = provision_with(&mut conn, params, tenant).await;
        let closed = conn.close().await.map_err(|e| e.to_string());
        result.and(closed)
    }

    /// True when everything `provision` sets is in place: the role exists with LOGIN, the
    /// recorded password and the configured connection limit, and the database exists owned by
    /// it. A revoked tenant (NOLOGIN) is not provisioned.
    async fn is_provisioned(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        let (host_port, params) = (service.host_port, service.params);
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        // pg_authid (superuser only; the admin is one) holds the verifier to check the password.
        let found: Option<(Option<String>, i32)> = sqlx::query_as(
            "SELECT a.rolpassword, a.rolconnlimit FROM pg_database d \
             JOIN pg_authid a ON a.oid = d.datdba \
             WHERE d.datname = $1 AND a.rolname = $2 AND a.rolcanlogin",
        )
        .bind(&tenant.resource_name)
        .bind(&tenant.username)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())?;
        Ok(found.is_some_and(|(verifier, limit)| {
            i64::from(limit) == tenant_connection_limit(params)
                && verifier.is_some_and(|v| scram::verifier_matches(&v, &tenant.password))
        }))
    }

    /// NOLOGIN first (no new sessions), then ends the role's open sessions, waiting for each.
    /// Data, password and ownership stay. Idempotent; a missing role is already revoked; a role
    /// of that name Berth did not create is refused, not altered.
    async fn revoke(
        &self,
        service: &ServiceAccess<'_>,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let (host_port, params) = (service.host_port, service.params);
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        let result = async {
            refuse_system_names(params, tenant)?;
            let role = &tenant.username;
            let Some(found) = role_info(&mut conn, role).await? else {
                return Ok(());
            };
            let db = database_info(&mut conn, &tenant.resource_name).await?;
            if !role_is_berths(role, &found, db.as_ref()) {
                return Err(foreign_role(role));
            }
            // The reconciler enforces revocations every pass: write the catalog only when
            // the login is on.
            if found.can_login {
                run_formatted(
                    &mut conn,
                    "SELECT format('ALTER ROLE %I WITH NOLOGIN', $1::text)",
                    &[role],
                )
                .await?;
            }
            sqlx::query(
                "SELECT pg_terminate_backend(pid, $2) FROM pg_stat_activity \
                 WHERE usename = $1 AND pid <> pg_backend_pid()",
            )
            .bind(role)
            .bind(TERMINATE_WAIT_MS)
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
            Ok(())
        }
        .await;
        let closed = conn.close().await.map_err(|e| e.to_string());
        result.and(closed)
    }

    /// Every database and role name on the server (Berth's own tenants included: a name with
    /// no recorded tenant may still hold another project's data).
    async fn names_in_use(&self, service: &ServiceAccess<'_>) -> Result<HashSet<String>, String> {
        let (host_port, params) = (service.host_port, service.params);
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT datname::text FROM pg_database UNION SELECT rolname::text FROM pg_roles",
        )
        .fetch_all(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())?;
        let mut names: HashSet<String> = names.into_iter().collect();
        names.insert(get(params, "database").to_string());
        names.insert(get(params, "username").to_string());
        Ok(names)
    }

    /// PostgreSQL's own prefixes: `pg_` (refused for roles) and `template` (template0/1 and
    /// look-alikes).
    fn is_reserved_name(&self, name: &str) -> bool {
        name.starts_with("pg_") || name.starts_with("template")
    }

    fn env(
        &self,
        params: &Parameters,
        address: &Address,
        tenant: &Credentials,
    ) -> Vec<(String, String)> {
        let host = &address.host;
        let port = address.port.to_string();
        let ssl = get(params, "ssl_mode");
        let query = if ssl.is_empty() || ssl == "disable" {
            String::new()
        } else {
            format!("?sslmode={ssl}")
        };
        let url = format!(
            "postgresql://{}:{}@{host}:{port}/{}{query}",
            url_encode(&tenant.username),
            url_encode(&tenant.password),
            url_encode(&tenant.resource_name)
        );
        let mut vars = vec![
            ("DATABASE_URL", url.clone()),
            ("POSTGRES_URL", url),
            ("POSTGRES_HOST", host.clone()),
            ("POSTGRES_PORT", port.clone()),
            ("POSTGRES_DATABASE", tenant.resource_name.clone()),
            ("POSTGRES_DB", tenant.resource_name.clone()),
            ("POSTGRES_NAME", tenant.resource_name.clone()),
            ("POSTGRES_USER", tenant.username.clone()),
            ("POSTGRES_PASSWORD", tenant.password.clone()),
            ("PGHOST", host.clone()),
            ("PGPORT", port),
            ("PGDATABASE", tenant.resource_name.clone()),
            ("PGUSER", tenant.username.clone()),
            ("PGPASSWORD", tenant.password.clone()),
        ];
        if !query.is_empty() {
            vars.push(("PGSSLMODE", ssl.to_string()));
        }
        vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    fn admin_credentials(&self, params: &Parameters) -> Credentials {
        Credentials {
            resource_name: get(params, "database").to_string(),
            resource_number: None,
            username: get(params, "username").to_string(),
            password: get(params, "password").to_string(),
        }
    }
}
