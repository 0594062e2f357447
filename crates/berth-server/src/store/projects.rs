//! Projects and their environments (the things services are linked to).

use serde::Serialize;
use sqlx::Row;

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Environment {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub slug: String,
    pub created_at: String,
    pub environments: Vec<Environment>,
}

impl Store {
    /// Creates a project and its environments in one transaction.
    pub async fn insert_project(
        &self,
        name: &str,
        slug: &str,
        environments: &[(String, String)],
    ) -> StoreResult<Project> {
        let mut tx = self.pool.begin().await?;
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO projects (name, slug, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(slug)
        .bind(&created_at)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        for (env_name, env_slug) in environments {
            sqlx::query(
                "INSERT INTO environments (project_id, name, slug, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(env_name)
            .bind(env_slug)
            .bind(&created_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.changed();
        Ok(self.project(id).await?.expect("just inserted"))
    }

    pub async fn add_environment(
        &self,
        project_id: i64,
        name: &str,
        slug: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO environments (project_id, name, slug, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(project_id)
        .bind(name)
        .bind(slug)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(())
    }

    pub async fn project(&self, id: i64) -> StoreResult<Option<Project>> {
        let found = optional(
            sqlx::query("SELECT id, name, slug, created_at FROM projects WHERE id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await,
        )?;
        match found {
            Some(row) => Ok(Some(self.project_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    pub async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query("SELECT id, name, slug, created_at FROM projects ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.project_from_row(row).await?);
        }
        Ok(out)
    }

    /// Deletes a project with its environments and revokes the tokens bound to it, in one
    /// transaction: no moment where the project is gone but its tokens still work.
    pub async fn delete_project(&self, id: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE project_id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM environments WHERE project_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.changed();
        Ok(done.rows_affected() > 0)
    }

    pub async fn delete_environment(
        &self,
        project_id: i64,
        environment_id: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM environments WHERE project_id = $1 AND id = $2")
            .bind(project_id)
            .bind(environment_id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(done.rows_affected() > 0)
    }

    async fn project_from_row(&self, row: &sqlx::any::AnyRow) -> StoreResult<Project> {
        let id: i64 = row.try_get("id")?;
        let envs = sqlx::query(
            "SELECT id, name, slug, created_at FROM environments WHERE project_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let environments = envs
            .iter()
            .map(|e| {
                Ok(Environment {
                    id: e.try_get("id")?,
                    name: e.try_get("name")?,
                    slug: e.try_get("slug")?,
                    created_at: e.try_get("created_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Project {
            id,
            name: row.try_get("name")?,
            slug: row.try_get("slug")?,
            created_at: row.try_get("created_at")?,
            environments,
        })
    }
}
