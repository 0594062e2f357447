//! API tokens, stored as SHA-256 hashes only, each with the scope the API's policy
//! (`api/policy.rs`) decides from.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::now as now_text;
use super::{Store, StoreError, StoreResult, now, optional};

/// How often `last_used_at` is written for a token in steady use.
const LAST_USED_RESOLUTION: std::time::Duration = std::time::Duration::from_secs(60);

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything (the bootstrap token, and the default).
    Admin,
    /// Every read (GET/HEAD), nothing else.
    ReadOnly,
    /// The reads of this one project.
    Project(i64),
}

/// A scope's name, as the API and the `scope` column spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    #[default]
    Admin,
    ReadOnly,
    Project,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Admin => "admin",
            ScopeKind::ReadOnly => "read_only",
            ScopeKind::Project => "project",
        }
    }
}

impl Scope {
    pub fn kind(self) -> ScopeKind {
        match self {
            Scope::Admin => ScopeKind::Admin,
            Scope::ReadOnly => ScopeKind::ReadOnly,
            Scope::Project(_) => ScopeKind::Project,
        }
    }

    pub fn project_id(self) -> Option<i64> {
        match self {
            Scope::Project(id) => Some(id),
            Scope::Admin | Scope::ReadOnly => None,
        }
    }

    /// From the `scope` and `project_id` columns; anything else is corrupt state, never a
    /// wider scope.
    fn from_columns(kind: &str, project_id: Option<i64>) -> StoreResult<Self> {
        match (kind, project_id) {
            ("admin", None) => Ok(Scope::Admin),
            ("read_only", None) => Ok(Scope::ReadOnly),
            ("project", Some(id)) => Ok(Scope::Project(id)),
            _ => Err(StoreError::Corrupt(format!(
                "API token with scope {kind:?} and project {project_id:?}"
            ))),
        }
    }
}

/// A live token: who is calling, and what they may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveToken {
    pub id: i64,
    pub scope: Scope,
}

/// A token known to be live at `generation`.
#[derive(Debug, Clone, Copy)]
pub(super) struct CachedToken {
    generation: u64,
    token: LiveToken,
    last_used_written: std::time::Instant,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// `admin`: every route. `read_only`: every GET, nothing else. `project`: the reads of
    /// project `project_id` (the project, its environments' variables).
    pub scope: ScopeKind,
    /// The project a `project` token is bound to; kept after the project is deleted (which
    /// revokes the token).
    pub project_id: Option<i64>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

fn from_row(row: &sqlx::any::AnyRow) -> StoreResult<ApiToken> {
    let scope = Scope::from_columns(row.try_get("scope")?, row.try_get("project_id")?)?;
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: scope.kind(),
        project_id: scope.project_id(),
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const COLUMNS: &str = "id, name, scope, project_id, created_at, last_used_at, revoked_at";

impl Store {
    pub async fn count_tokens(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM api_tokens")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Stores a new token. `None` when its scope names a project that does not exist: the
    /// check and the insert are one statement, so no token is bound to a project deleted
    /// meanwhile (and `authenticate_token` refuses one whose project is gone anyway).
    pub async fn insert_token(
        &self,
        name: &str,
        token_hash: &str,
        scope: Scope,
    ) -> StoreResult<Option<ApiToken>> {
        let condition = match scope {
            Scope::Project(_) => "WHERE EXISTS (SELECT 1 FROM projects WHERE id = $5)",
            Scope::Admin | Scope::ReadOnly => "",
        };
        let row = optional(
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO api_tokens (name, token_hash, created_at, scope, project_id) \
                 SELECT $1, $2, $3, $4, $5 {condition} RETURNING {COLUMNS}"
            )))
            .bind(name)
            .bind(token_hash)
            .bind(now())
            .bind(scope.kind().as_str())
            .bind(scope.project_id())
            .fetch_one(&self.pool)
            .await,
        )?;
        self.changed();
        row.as_ref().map(from_row).transpose()
    }

    /// The live token with this hash, if any: not revoked, and if bound to a project, that
    /// project still exists. Answers from a cache while nothing was written since (the write
    /// generation is unchanged), and records `last_used_at` at most once a minute per token:
    /// checking a token must not cost a database write on every request.
    pub async fn authenticate_token(&self, token_hash: &str) -> StoreResult<Option<LiveToken>> {
        let generation = self.generation();
        let now = std::time::Instant::now();
        let cached = self
            .token_cache
            .lock()
            .expect("token cache")
            .get(token_hash)
            .filter(|c| c.generation == generation)
            .copied();
        let (token, record_use) = match cached {
            Some(c) => (
                c.token,
                now.duration_since(c.last_used_written) >= LAST_USED_RESOLUTION,
            ),
            None => {
                let found = optional(
                    sqlx::query(
                        "SELECT t.id, t.scope, t.project_id FROM api_tokens t \
                         WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
                         AND (t.project_id IS NULL \
                              OR EXISTS (SELECT 1 FROM projects p WHERE p.id = t.project_id))",
                    )
                    .bind(token_hash)
                    .fetch_one(&self.pool)
                    .await,
                )?;
                let Some(row) = found else { return Ok(None) };
                let token = LiveToken {
                    id: row.try_get("id")?,
                    scope: Scope::from_columns(row.try_get("scope")?, row.try_get("project_id")?)?,
                };
                (token, true)
            }
        };
        if record_use {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now_text())
                .bind(token.id)
                .execute(&self.pool)
                .await?;
        }
        let mut cache = self.token_cache.lock().expect("token cache");
        let entry = cache.entry(token_hash.to_string()).or_insert(CachedToken {
            generation,
            token,
            last_used_written: now,
        });
        entry.generation = generation;
        entry.token = token;
        if record_use {
            entry.last_used_written = now;
        }
        Ok(Some(token))
    }

    pub async fn list_tokens(&self) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
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
