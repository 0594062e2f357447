//! The KV backing (migration 0005): which Redis service holds KV's data, and whether KV is on.
//! One row at most; it is deleted with its service (ON DELETE CASCADE).

use sqlx::Row;

use super::{Store, StoreResult, now, optional};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvBacking {
    pub service_id: i64,
    /// False once KV was turned off with its data kept: the service stays, stopped.
    pub enabled: bool,
}

impl Store {
    pub async fn kv_backing(&self) -> StoreResult<Option<KvBacking>> {
        let row = optional(
            sqlx::query("SELECT service_id, enabled FROM kv_backing WHERE id = 1")
                .fetch_one(&self.pool)
                .await,
        )?;
        row.map(|row| {
            Ok(KvBacking {
                service_id: row.try_get("service_id")?,
                enabled: row.try_get::<i64, _>("enabled")? != 0,
            })
        })
        .transpose()
    }

    /// Records `service_id` as KV's backing (replacing any other), on or off.
    pub async fn set_kv_backing(&self, service_id: i64, enabled: bool) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO kv_backing (id, service_id, enabled, updated_at) VALUES (1, $1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET service_id = excluded.service_id, \
             enabled = excluded.enabled, updated_at = excluded.updated_at",
        )
        .bind(service_id)
        .bind(enabled as i64)
        .bind(now())
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(())
    }
}
