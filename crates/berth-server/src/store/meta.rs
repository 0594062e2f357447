//! Facts about the state database itself, such as the fingerprint of the key its secrets are
//! encrypted under (so a lost `secret.key` is refused instead of silently replaced).

use super::{Store, StoreResult, optional};

impl Store {
    pub async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        optional(
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(key)
                .fetch_one(&self.pool)
                .await,
        )
    }

    pub async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn delete_meta(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rows holding secrets encrypted with the server key (services, tenants, destinations).
    pub async fn count_encrypted_rows(&self) -> StoreResult<i64> {
        let services: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM services")
            .fetch_one(&self.pool)
            .await?;
        let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants")
            .fetch_one(&self.pool)
            .await?;
        let destinations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM backup_destinations")
            .fetch_one(&self.pool)
            .await?;
        Ok(services + tenants + destinations)
    }
}
