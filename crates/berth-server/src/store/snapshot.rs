//! A consistent copy of the SQLite state database, for backups of Berth's own state, and the
//! row counts per table that prove a copy (or a restore of one) whole.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::{Connection, Row};

use super::{Store, StoreError, StoreResult};

impl Store {
    /// Whether the state database is SQLite (a file Berth can snapshot) rather than PostgreSQL.
    pub fn is_sqlite(&self) -> bool {
        self.sqlite
    }

    /// Writes a transactionally consistent copy of the state database to `path`, which must
    /// not exist yet (`VACUUM INTO`: readers and writers carry on meanwhile). SQLite only.
    pub async fn snapshot_into(&self, path: &Path) -> StoreResult<()> {
        if !self.sqlite {
            return Err(StoreError::Corrupt(
                "only a SQLite state database can be snapshotted".into(),
            ));
        }
        let path = path
            .to_str()
            .ok_or_else(|| StoreError::Corrupt("snapshot path is not UTF-8".into()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Rows per table of the SQLite database file at `path` (SQLite's own tables left out),
/// opened read-only.
pub async fn sqlite_table_rows(path: &Path) -> StoreResult<BTreeMap<String, u64>> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut rows = BTreeMap::new();
    for table in tables {
        // The names come from the file's own schema; quoted all the same.
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {quoted}"
        )))
        .fetch_one(&mut conn)
        .await?;
        let n: i64 = row.try_get("n")?;
        rows.insert(table, u64::try_from(n).unwrap_or(0));
    }
    conn.close().await?;
    Ok(rows)
}
