//! Tenants (what a service allocated for one project environment) and links (which services a
//! project's deployments get variables from). Tenant passwords are encrypted like service ones.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, StoreResult, now, optional};

/// One project environment's share of a service.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub service_id: i64,
    pub project_id: i64,
    pub environment_id: i64,
    /// Database name (PostgreSQL) or ACL user name (Redis).
    pub resource_name: String,
    /// Redis database number.
    pub resource_number: Option<i64>,
    pub username: String,
    pub password: String,
    pub provisioned: bool,
    /// Login turned off by Berth (project or environment deleted, or unlinked with revoke).
    pub revoked: bool,
}

pub struct NewTenant<'a> {
    pub project_id: i64,
    pub environment_id: i64,
    pub resource_name: &'a str,
    pub resource_number: Option<i64>,
    pub username: &'a str,
    pub password: &'a str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub id: i64,
    pub service_id: i64,
    pub project_id: i64,
    pub service_type: String,
    pub created_at: String,
}

const TENANT_COLUMNS: &str = "id, service_id, project_id, environment_id, resource_name, resource_number, \
                              username, secrets, provisioned, revoked";
const LINK_COLUMNS: &str = "id, service_id, project_id, service_type, created_at";

fn link_from_row(row: &sqlx::any::AnyRow) -> Result<Link, sqlx::Error> {
    Ok(Link {
        id: row.try_get("id")?,
        service_id: row.try_get("service_id")?,
        project_id: row.try_get("project_id")?,
        service_type: row.try_get("service_type")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Store {
    fn tenant_from_row(&self, row: &sqlx::any::AnyRow) -> StoreResult<Tenant> {
        let secrets: String = row.try_get("secrets")?;
        let password = self
            .secrets
            .decrypt(&secrets)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let provisioned: i64 = row.try_get("provisioned")?;
        Ok(Tenant {
            id: row.try_get("id")?,
            service_id: row.try_get("service_id")?,
            project_id: row.try_get("project_id")?,
            environment_id: row.try_get("environment_id")?,
            resource_name: row.try_get("resource_name")?,
            resource_number: row.try_get("resource_number")?,
            username: row.try_get("username")?,
            password,
            provisioned: provisioned != 0,
            revoked: row.try_get::<i64, _>("revoked")? != 0,
        })
    }

    /// Every tenant of a service (all projects, linked or not): the allocations to avoid.
    pub async fn service_tenants(&self, service_id: i64) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE service_id = $1 ORDER BY id"
        )))
        .bind(service_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.tenant_from_row(r)).collect()
    }

    pub async fn tenant(
        &self,
        service_id: i64,
        project_id: i64,
        environment_id: i64,
    ) -> StoreResult<Option<Tenant>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {TENANT_COLUMNS} FROM tenants \
                 WHERE service_id = $1 AND project_id = $2 AND environment_id = $3"
            )))
            .bind(service_id)
            .bind(project_id)
            .bind(environment_id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|r| self.tenant_from_row(&r)).transpose()
    }

    /// Records new tenants in one transaction: all of them or none (a UNIQUE violation means a
    /// concurrent allocation took a name or number; the caller retries).
    pub async fn insert_tenants(
        &self,
        service_id: i64,
        tenants: &[NewTenant<'_>],
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for t in tenants {
            sqlx::query(
                "INSERT INTO tenants (service_id, project_id, environment_id, resource_name, resource_number, \
                 username, secrets, provisioned, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
            )
            .bind(service_id)
            .bind(t.project_id)
            .bind(t.environment_id)
            .bind(t.resource_name)
            .bind(t.resource_number)
            .bind(t.username)
            .bind(self.secrets.encrypt(t.password))
            .bind(now())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// Records that the tenant's login works (after a provision, which also turns a revoked
    /// login back on).
    pub async fn mark_tenant_provisioned(&self, tenant_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE tenants SET provisioned = 1, revoked = 0 WHERE id = $1")
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    /// Records that a tenant's login was turned off.
    pub async fn mark_tenant_revoked(&self, tenant_id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE tenants SET revoked = 1 WHERE id = $1")
            .bind(tenant_id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    /// Every tenant of a project, in every service.
    pub async fn project_tenants(&self, project_id: i64) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {TENANT_COLUMNS} FROM tenants WHERE project_id = $1 ORDER BY id"
        )))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.tenant_from_row(r)).collect()
    }

    pub async fn insert_link(
        &self,
        service_id: i64,
        project_id: i64,
        service_type: &str,
    ) -> StoreResult<Link> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO links (service_id, project_id, service_type, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING {LINK_COLUMNS}"
        )))
        .bind(service_id)
        .bind(project_id)
        .bind(service_type)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        self.changed();
        Ok(link_from_row(&row)?)
    }

    pub async fn delete_link(&self, service_id: i64, project_id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM links WHERE service_id = $1 AND project_id = $2")
            .bind(service_id)
            .bind(project_id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(done.rows_affected() > 0)
    }

    pub async fn links_of_service(&self, service_id: i64) -> StoreResult<Vec<Link>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE service_id = $1 ORDER BY id"
        )))
        .bind(service_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(link_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn links_of_project(&self, project_id: i64) -> StoreResult<Vec<Link>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LINK_COLUMNS} FROM links WHERE project_id = $1 ORDER BY id"
        )))
        .bind(project_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(link_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn link(&self, service_id: i64, project_id: i64) -> StoreResult<Option<Link>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE service_id = $1 AND project_id = $2"
            )))
            .bind(service_id)
            .bind(project_id)
            .fetch_one(&self.pool)
            .await,
        )?;
        Ok(row.as_ref().map(link_from_row).transpose()?)
    }

    pub async fn link_by_type(
        &self,
        project_id: i64,
        service_type: &str,
    ) -> StoreResult<Option<Link>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {LINK_COLUMNS} FROM links WHERE project_id = $1 AND service_type = $2"
            )))
            .bind(project_id)
            .bind(service_type)
            .fetch_one(&self.pool)
            .await,
        )?;
        Ok(row.as_ref().map(link_from_row).transpose()?)
    }
}
