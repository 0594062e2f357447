//! Managed services. Public parameters are stored as JSON; secret ones as JSON encrypted with
//! the server key. A `Service` carries both, decrypted; the API decides what to mask.

use berth_core::Parameters;
use sqlx::{AssertSqlSafe, Row};

use super::operations::insert_operation_in;
use super::{OpKind, Operation, Store, StoreError, StoreResult, now, optional};

#[derive(Debug, Clone)]
pub struct Service {
    pub id: i64,
    pub name: String,
    pub service_type: String,
    /// Observed state: creating, starting, running, stopping, stopped, updating, unhealthy,
    /// missing, deleting, failed.
    pub status: String,
    /// What the user asked for: running or stopped. The reconciler converges towards it.
    pub desired_state: String,
    pub parameters: Parameters,
    pub secrets: Parameters,
    pub container_name: String,
    pub volume_name: String,
    pub created_at: String,
    pub updated_at: String,
    /// Set by a delete with `?keep_data=true`; honoured by whoever finishes the delete.
    pub keep_data: bool,
    /// The id written into the data volume at first start (see migration 0003); `None` for a
    /// service that has not run yet (or predates the marker).
    pub volume_marker: Option<String>,
    /// Whether Berth made the container or the user's was imported (migration 0011).
    pub origin: Origin,
    /// Set by a delete of an imported service with `?remove_container=true`.
    pub remove_container: bool,
}

/// Where a service's container came from, which decides what Berth may do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Made by Berth from the row: recreated, replaced and removed as the row says.
    Berth,
    /// The user's own container, imported: started and stopped in place, never recreated,
    /// and removed (never its volumes) only when a delete asks.
    Imported,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Berth => "berth",
            Origin::Imported => "imported",
        }
    }
}

impl Service {
    pub fn is_imported(&self) -> bool {
        self.origin == Origin::Imported
    }

    /// Public and secret parameters together, for engines building containers and probes.
    pub fn all_parameters(&self) -> Parameters {
        let mut all = self.parameters.clone();
        all.extend(self.secrets.clone());
        all
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.parameters
            .get(name)
            .or_else(|| self.secrets.get(name))
            .map(String::as_str)
    }
}

pub struct NewService<'a> {
    pub name: &'a str,
    pub service_type: &'a str,
    pub parameters: &'a Parameters,
    pub secrets: &'a Parameters,
    pub container_name: &'a str,
    pub volume_name: &'a str,
}

const COLUMNS: &str = "id, name, service_type, status, desired_state, parameters, secrets, \
                       container_name, volume_name, created_at, updated_at, keep_data, volume_marker, \
                       origin, remove_container";

impl Store {
    fn service_from_row(&self, row: &sqlx::any::AnyRow) -> StoreResult<Service> {
        let parameters: String = row.try_get("parameters")?;
        let secrets: String = row.try_get("secrets")?;
        let secrets = self
            .secrets
            .decrypt(&secrets)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Service {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            service_type: row.try_get("service_type")?,
            status: row.try_get("status")?,
            desired_state: row.try_get("desired_state")?,
            parameters: serde_json::from_str(&parameters)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            secrets: serde_json::from_str(&secrets)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            container_name: row.try_get("container_name")?,
            volume_name: row.try_get("volume_name")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            keep_data: row.try_get::<i64, _>("keep_data")? != 0,
            volume_marker: row.try_get("volume_marker")?,
            origin: match row.try_get::<String, _>("origin")?.as_str() {
                "imported" => Origin::Imported,
                _ => Origin::Berth,
            },
            remove_container: row.try_get::<i64, _>("remove_container")? != 0,
        })
    }

    /// Records the intent to create a service: its row (status `creating`) and the create
    /// operation, in one transaction, before any Docker call.
    pub async fn insert_service_intent(
        &self,
        new: NewService<'_>,
        payload: &serde_json::Value,
    ) -> StoreResult<(Service, Operation)> {
        let mut tx = self.pool.begin().await?;
        let service = self
            .insert_service_row(&mut tx, new, "creating", Origin::Berth)
            .await?;
        let op = insert_operation_in(&mut tx, service.id, None, OpKind::Create, payload).await?;
        tx.commit().await?;
        self.changed();
        Ok((service, op))
    }

    /// Records an imported service: the user's container, verified and attached before this
    /// one write, so there is no intent to finish (a crash before it leaves nothing recorded).
    pub async fn insert_imported_service(&self, new: NewService<'_>) -> StoreResult<Service> {
        let mut tx = self.pool.begin().await?;
        let service = self
            .insert_service_row(&mut tx, new, "running", Origin::Imported)
            .await?;
        tx.commit().await?;
        self.changed();
        Ok(service)
    }

    /// The one INSERT of a service row (desired state `running`), secrets encrypted.
    async fn insert_service_row(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        new: NewService<'_>,
        status: &str,
        origin: Origin,
    ) -> StoreResult<Service> {
        let ts = now();
        let secrets = self
            .secrets
            .encrypt(&serde_json::to_string(new.secrets).expect("map serialises"));
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO services (name, service_type, status, desired_state, parameters, secrets, \
             container_name, volume_name, created_at, updated_at, origin) \
             VALUES ($1, $2, $3, 'running', $4, $5, $6, $7, $8, $8, $9) RETURNING {COLUMNS}"
        )))
        .bind(new.name)
        .bind(new.service_type)
        .bind(status)
        .bind(serde_json::to_string(new.parameters).expect("map serialises"))
        .bind(secrets)
        .bind(new.container_name)
        .bind(new.volume_name)
        .bind(&ts)
        .bind(origin.as_str())
        .fetch_one(&mut **tx)
        .await?;
        self.service_from_row(&row)
    }

    /// Records the intent of an operation on an existing service: its new status (and, for
    /// updates, its new parameters and desired state) plus the operation row, atomically.
    // Each argument is one part of the intent written in this one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_operation(
        &self,
        service_id: i64,
        queued: Option<i64>,
        kind: OpKind,
        status: &str,
        desired_state: Option<&str>,
        parameters: Option<&Parameters>,
        payload: &serde_json::Value,
    ) -> StoreResult<Operation> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE services SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status)
            .bind(now())
            .bind(service_id)
            .execute(&mut *tx)
            .await?;
        if let Some(desired) = desired_state {
            sqlx::query("UPDATE services SET desired_state = $1 WHERE id = $2")
                .bind(desired)
                .bind(service_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(params) = parameters {
            sqlx::query("UPDATE services SET parameters = $1 WHERE id = $2")
                .bind(serde_json::to_string(params).expect("map serialises"))
                .bind(service_id)
                .execute(&mut *tx)
                .await?;
        }
        let op = insert_operation_in(&mut tx, service_id, queued, kind, payload).await?;
        tx.commit().await?;
        self.changed();
        Ok(op)
    }

    pub async fn service(&self, id: i64) -> StoreResult<Option<Service>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM services WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|r| self.service_from_row(&r)).transpose()
    }

    pub async fn list_services(&self) -> StoreResult<Vec<Service>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM services ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.service_from_row(r)).collect()
    }

    pub async fn set_service_status(&self, id: i64, status: &str) -> StoreResult<()> {
        sqlx::query("UPDATE services SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn set_desired_state(&self, id: i64, desired: &str) -> StoreResult<()> {
        sqlx::query("UPDATE services SET desired_state = $1, updated_at = $2 WHERE id = $3")
            .bind(desired)
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn set_service_parameters(
        &self,
        id: i64,
        parameters: &Parameters,
    ) -> StoreResult<()> {
        sqlx::query("UPDATE services SET parameters = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(parameters).expect("map serialises"))
            .bind(now())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    /// Records whose container the service runs in: `Berth`'s own named `container_name`
    /// once an adopt takes it over, or the user's again when an adopt is undone.
    pub async fn set_origin(
        &self,
        id: i64,
        origin: Origin,
        container_name: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE services SET origin = $1, container_name = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(origin.as_str())
        .bind(container_name)
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(())
    }

    /// Points a service at other data in one transaction: its data volume, its parameters
    /// (the image that reads that data), the volume's marker, and the `meta` record `note_key`
    /// (set to `note`, or removed) that says what to undo. A major upgrade switches with it,
    /// and its rollback switches back.
    pub async fn switch_service_data(
        &self,
        id: i64,
        volume_name: &str,
        parameters: &Parameters,
        volume_marker: Option<&str>,
        note_key: &str,
        note: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE services SET volume_name = $1, parameters = $2, volume_marker = $3, \
             updated_at = $4 WHERE id = $5",
        )
        .bind(volume_name)
        .bind(serde_json::to_string(parameters).expect("map serialises"))
        .bind(volume_marker)
        .bind(now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        match note {
            Some(value) => {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(note_key)
                .bind(value)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM meta WHERE key = $1")
                    .bind(note_key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.changed();
        Ok(())
    }

    /// Records that a delete of an imported service must remove its container (before the
    /// delete's first Docker call).
    pub async fn set_remove_container(&self, id: i64, remove: bool) -> StoreResult<()> {
        sqlx::query("UPDATE services SET remove_container = $1 WHERE id = $2")
            .bind(remove as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records that a delete must keep the volume (before the delete's first Docker call).
    pub async fn set_keep_data(&self, id: i64, keep_data: bool) -> StoreResult<()> {
        sqlx::query("UPDATE services SET keep_data = $1 WHERE id = $2")
            .bind(keep_data as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn set_volume_marker(&self, id: i64, marker: &str) -> StoreResult<()> {
        sqlx::query("UPDATE services SET volume_marker = $1 WHERE id = $2")
            .bind(marker)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn clear_volume_marker(&self, id: i64) -> StoreResult<()> {
        sqlx::query("UPDATE services SET volume_marker = NULL WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }

    pub async fn delete_service(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM services WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed();
        Ok(())
    }
}
