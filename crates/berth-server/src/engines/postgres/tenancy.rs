//! PostgreSQL tenants: a database `{project}_{environment}` owned by a login role of the same
//! name with its own password; CONNECT and TEMPORARY revoked from PUBLIC, so one project's role
//! cannot connect to another's database. Identifiers and the password are quoted by PostgreSQL
//! itself (`format('%I', ...)`, `format('%L', ...)`), never spliced by us.

use std::time::Duration;

use async_trait::async_trait;
use berth_core::Parameters;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::super::tenancy::{Address, Allocation, Credentials, Tenancy, url_encode};
use super::{Postgres, admin_connection, get};

const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs a statement that PostgreSQL's `format()` built from bound values.
async fn run_formatted(
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

async fn exists(conn: &mut PgConnection, sql: &'static str, name: &str) -> Result<bool, String> {
    let found: Option<i32> = sqlx::query_scalar(sql)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(found.is_some())
}

#[async_trait]
impl Tenancy for Postgres {
    fn allocation(&self) -> Allocation {
        Allocation::Named
    }

    async fn provision(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT)
            .await
            .map_err(|e| format!("connecting as the admin user: {e}"))?;
        let (db, role, password) = (&tenant.resource_name, &tenant.username, &tenant.password);
        let role_exists =
            exists(&mut conn, "SELECT 1 FROM pg_roles WHERE rolname = $1", role).await?;
        let role_sql = if role_exists {
            "SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', $1::text, $2::text)"
        } else {
            "SELECT format('CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', $1::text, $2::text)"
        };
        run_formatted(&mut conn, role_sql, &[role, password]).await?;
        if !exists(
            &mut conn,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            db,
        )
        .await?
        {
            // CREATE DATABASE cannot run inside a transaction; raw_sql sends it on its own.
            run_formatted(
                &mut conn,
                "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
                &[db, role],
            )
            .await?;
        } else {
            run_formatted(
                &mut conn,
                "SELECT format('ALTER DATABASE %I OWNER TO %I', $1::text, $2::text)",
                &[db, role],
            )
            .await?;
        }
        run_formatted(
            &mut conn,
            "SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::text)",
            &[db],
        )
        .await?;
        run_formatted(
            &mut conn,
            "SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', $1::text, $2::text)",
            &[db, role],
        )
        .await?;
        // Tenants have no business in the admin's database either.
        run_formatted(
            &mut conn,
            "SELECT format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', $1::text)",
            &[get(params, "database")],
        )
        .await?;
        conn.close().await.map_err(|e| e.to_string())
    }

    async fn is_provisioned(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<bool, String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        let found: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba \
             WHERE d.datname = $1 AND r.rolname = $2 AND r.rolcanlogin",
        )
        .bind(&tenant.resource_name)
        .bind(&tenant.username)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
        conn.close().await.map_err(|e| e.to_string())?;
        Ok(found.is_some())
    }

    async fn revoke(
        &self,
        host_port: u16,
        params: &Parameters,
        tenant: &Credentials,
    ) -> Result<(), String> {
        let mut conn = admin_connection(host_port, params, ADMIN_TIMEOUT).await?;
        if exists(
            &mut conn,
            "SELECT 1 FROM pg_roles WHERE rolname = $1",
            &tenant.username,
        )
        .await?
        {
            run_formatted(
                &mut conn,
                "SELECT format('ALTER ROLE %I WITH NOLOGIN', $1::text)",
                &[&tenant.username],
            )
            .await?;
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1",
            )
            .bind(&tenant.username)
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        }
        conn.close().await.map_err(|e| e.to_string())
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
