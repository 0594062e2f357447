//! Backup destinations (migration 0007; Temps calls them "S3 sources"). The secret key is
//! encrypted here on the way in, like service secrets, and decrypted on the way out; the API
//! masks it.

use sqlx::{AssertSqlSafe, Row};

use super::{Store, StoreError, StoreResult, now, optional};

/// A destination as stored, secret decrypted.
#[derive(Debug, Clone)]
pub struct Destination {
    pub id: i64,
    pub name: String,
    pub bucket_name: String,
    /// Prefix inside the bucket every backup goes under ('' for the bucket's root).
    pub bucket_path: String,
    pub region: String,
    /// `None` for a Berth-managed S3 service (its address is read from the service).
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub access_key_id: String,
    pub secret_key: String,
    /// A Berth-managed S3 service holding the bucket, when the destination is one.
    pub service_id: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// What a create or an edit writes (everything but ids and times).
#[derive(Debug, Clone)]
pub struct DestinationFields {
    pub name: String,
    pub bucket_name: String,
    pub bucket_path: String,
    pub region: String,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub access_key_id: String,
    pub secret_key: String,
    pub service_id: Option<i64>,
}

const COLUMNS: &str = "id, name, bucket_name, bucket_path, region, endpoint, force_path_style, \
                       access_key_id, secret_key, service_id, created_at, updated_at";

impl Store {
    pub async fn insert_destination(&self, d: &DestinationFields) -> StoreResult<Destination> {
        let ts = now();
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO backup_destinations (name, bucket_name, bucket_path, region, endpoint, \
             force_path_style, access_key_id, secret_key, service_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) RETURNING {COLUMNS}"
        )))
        .bind(&d.name)
        .bind(&d.bucket_name)
        .bind(&d.bucket_path)
        .bind(&d.region)
        .bind(d.endpoint.as_deref())
        .bind(d.force_path_style as i64)
        .bind(&d.access_key_id)
        .bind(self.secrets.encrypt(&d.secret_key))
        .bind(d.service_id)
        .bind(ts)
        .fetch_one(&self.pool)
        .await?;
        self.destination_from_row(&row)
    }

    pub async fn update_destination(
        &self,
        id: i64,
        d: &DestinationFields,
    ) -> StoreResult<Option<Destination>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE backup_destinations SET name = $1, bucket_name = $2, bucket_path = $3, \
                 region = $4, endpoint = $5, force_path_style = $6, access_key_id = $7, \
                 secret_key = $8, service_id = $9, updated_at = $10 WHERE id = $11 \
                 RETURNING {COLUMNS}"
            )))
            .bind(&d.name)
            .bind(&d.bucket_name)
            .bind(&d.bucket_path)
            .bind(&d.region)
            .bind(d.endpoint.as_deref())
            .bind(d.force_path_style as i64)
            .bind(&d.access_key_id)
            .bind(self.secrets.encrypt(&d.secret_key))
            .bind(d.service_id)
            .bind(now())
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|r| self.destination_from_row(&r)).transpose()
    }

    pub async fn destination(&self, id: i64) -> StoreResult<Option<Destination>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM backup_destinations WHERE id = $1"
            )))
            .bind(id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|r| self.destination_from_row(&r)).transpose()
    }

    pub async fn destination_by_name(&self, name: &str) -> StoreResult<Option<Destination>> {
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM backup_destinations WHERE name = $1"
            )))
            .bind(name)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|r| self.destination_from_row(&r)).transpose()
    }

    pub async fn list_destinations(&self) -> StoreResult<Vec<Destination>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM backup_destinations ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.destination_from_row(r)).collect()
    }

    /// Destinations kept in a Berth-managed S3 service (which must not be deleted under them).
    pub async fn destinations_in_service(&self, service_id: i64) -> StoreResult<Vec<String>> {
        let rows = sqlx::query("SELECT name FROM backup_destinations WHERE service_id = $1")
            .bind(service_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("name").map_err(StoreError::from))
            .collect()
    }

    /// Deletes a destination no backup record points at; `Ok(false)` if it does not exist.
    pub async fn delete_destination(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM backup_destinations WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    fn destination_from_row(&self, row: &sqlx::any::AnyRow) -> StoreResult<Destination> {
        let sealed: String = row.try_get("secret_key")?;
        let secret_key = self
            .secrets
            .decrypt(&sealed)
            .map_err(|_| StoreError::Corrupt("a destination's secret key".into()))?;
        Ok(Destination {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            bucket_name: row.try_get("bucket_name")?,
            bucket_path: row.try_get("bucket_path")?,
            region: row.try_get("region")?,
            endpoint: row.try_get("endpoint")?,
            force_path_style: row.try_get::<i64, _>("force_path_style")? != 0,
            access_key_id: row.try_get("access_key_id")?,
            secret_key,
            service_id: row.try_get("service_id")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}
