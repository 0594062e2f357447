//! Read-only looks at a state database, for `berth doctor`: never creates, migrates or writes
//! it (the doctor runs beside a live server, or before the first one).

use sqlx::{Connection, Row};

use super::StoreResult;

/// What the doctor needs to know about a state database.
#[derive(Debug, Clone)]
pub struct StateFacts {
    /// `ok`, or what SQLite's `PRAGMA integrity_check` found (always `ok` for PostgreSQL,
    /// which checks itself).
    pub integrity: String,
    /// The recorded fingerprint of the secret key, if any.
    pub key_fingerprint: Option<String>,
    pub services: i64,
}

/// Opens `url` read-only (`sqlite://path` files are opened with `mode=ro`) and reads its facts.
pub async fn state_facts(url: &str, fingerprint_key: &str) -> StoreResult<StateFacts> {
    sqlx::any::install_default_drivers();
    let sqlite = url.starts_with("sqlite:");
    let url = if sqlite {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = path.split('?').next().unwrap_or(path);
        format!("sqlite://{path}?mode=ro")
    } else {
        url.to_string()
    };
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    let integrity = if sqlite {
        let rows = sqlx::query("PRAGMA integrity_check")
            .fetch_all(&mut conn)
            .await?;
        let lines: Vec<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .collect();
        lines.join("; ")
    } else {
        "ok".to_string()
    };
    let key_fingerprint = sqlx::query_scalar::<_, String>("SELECT value FROM meta WHERE key = $1")
        .bind(fingerprint_key)
        .fetch_optional(&mut conn)
        .await?;
    let services = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM services")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(StateFacts {
        integrity,
        key_fingerprint,
        services,
    })
}
