//! Backing services (migration 0006): which service holds a Berth feature's data (`kv`: a
//! Redis service, `blob`: an S3 service), and whether the feature is on. One row per feature
//! at most; it is deleted with its service (ON DELETE CASCADE).

use sqlx::Row;

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backing {
    pub feature: String,
    pub service_id: i64,
    /// False once the feature was turned off with its data kept: the service stays, stopped.
    pub enabled: bool,
}

impl Store {
    /// The backing of `feature` (`kv`, `blob`), if one was recorded.
    pub async fn backing(&self, feature: &str) -> StoreResult<Option<Backing>> {
        let row = optional(
            sqlx::query(
                "SELECT feature, service_id, enabled FROM backing_services WHERE feature = $1",
            )
            .bind(feature)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|row| read(&row)).transpose()
    }

    /// The feature service `service_id` backs, if any.
    pub async fn backing_of(&self, service_id: i64) -> StoreResult<Option<Backing>> {
        let row = optional(
            sqlx::query(
                "SELECT feature, service_id, enabled FROM backing_services WHERE service_id = $1",
            )
            .bind(service_id)
            .fetch_one(&self.pool)
            .await,
        )?;
        row.map(|row| read(&row)).transpose()
    }

    /// Records `service_id` as `feature`'s backing (replacing any other), on or off.
    pub async fn set_backing(
        &self,
        feature: &str,
        service_id: i64,
        enabled: bool,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO backing_services (feature, service_id, enabled, updated_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (feature) DO UPDATE SET service_id = excluded.service_id, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(feature)
        .bind(service_id)
        .bind(enabled as i64)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(())
    }

    /// Turns a recorded backing on or off. False if `feature` is no longer backed by
    /// `service_id` (its service was deleted meanwhile, its record with it): never writes a
    /// record for a service that is gone, as an upsert would try to (and fail on the key).
    pub async fn set_backing_enabled(
        &self,
        feature: &str,
        service_id: i64,
        enabled: bool,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE backing_services SET enabled = $1, updated_at = $2 \
             WHERE feature = $3 AND service_id = $4",
        )
        .bind(enabled as i64)
        .bind(now())
        .bind(feature)
        .bind(service_id)
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(done.rows_affected() > 0)
    }
}

fn read(row: &sqlx::any::AnyRow) -> StoreResult<Backing> {
    Ok(Backing {
        feature: row.try_get("feature")?,
        service_id: row.try_get("service_id")?,
        enabled: row.try_get::<i64, _>("enabled")? != 0,
    })
}
