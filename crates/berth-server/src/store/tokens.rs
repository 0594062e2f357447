//! API tokens, stored as SHA-256 hashes only.

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::now as now_text;
use super::{Store, StoreResult, now, optional};

/// How often `last_used_at` is written for a token in steady use.
const LAST_USED_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(60);

/// A token known to be live at `generation`.
#[derive(Debug, Clone, Copy)]
pub(super) struct CachedToken {
    generation: u64,
    id: i64,
    last_used_written: std::time::Instant,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<ApiToken, sqlx::Error> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const COLUMNS: &str = "id, name, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn count_tokens(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn insert_token(&self, name: &str, token_hash: &str) -> StoreResult<ApiToken> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO api_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) RETURNING {COLUMNS}"
        )))
        .bind(name)
        .bind(token_hash)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        self.changed();
        Ok(from_row(&row)?)
    }

    /// The id of the live (not revoked) token with this hash, if any. Answers from a cache
    /// while no token was created or revoked since (the write generation is unchanged), and
    /// records `last_used_at` at most once a minute per token: checking a token must not cost
    /// a database write on every request.
    pub async fn authenticate_token(&self, token_hash: &str) -> StoreResult<Option<i64>> {
        let generation = self.generation();
        let now = std::time::Instant::now();
        let cached = self
            .token_cache
            .lock()
            .expect("token cache")
            .get(token_hash)
            .filter(|c| c.generation == generation)
            .copied();
        let (id, record_use) = match cached {
            Some(c) => (
                c.id,
                now.duration_since(c.last_used_written) >= LAST_USED_RESOLUTION,
            ),
            None => {
                let found = optional(
                    sqlx::query(
                        "SELECT id FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL",
                    )
                    .bind(token_hash)
                    .fetch_one(&self.pool)
                    .await,
                )?;
                let Some(row) = found else { return Ok(None) };
                (row.try_get("id")?, true)
            }
        };
        if record_use {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now_text())
                .bind(id)
                .execute(&self.pool)
                .await?;
        }
        let mut cache = self.token_cache.lock().expect("token cache");
        let entry = cache.entry(token_hash.to_string()).or_insert(CachedToken {
            generation,
            id,
            last_used_written: now,
        });
        entry.generation = generation;
        if record_use {
            entry.last_used_written = now;
        }
        Ok(Some(id))
    }

    pub async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a token; `false` if there is no such live token.
    pub async fn revoke_token(&self, id: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(now())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.changed();
        Ok(done.rows_affected() > 0)
    }
}
