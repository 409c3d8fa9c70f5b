//! Embedded schema migrations, applied in order on open. The applied versions are kept
//! in `hookd_schema`; a session-level advisory lock makes nodes that start together
//! wait for the first one's migration instead of racing it.

use deadpool_postgres::Object;
use hookd_store::{StoreError, StoreResult};

use crate::db::err;

/// Migrations in order; index + 1 is the schema version it brings.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    (
        "0002_delivery_queue",
        include_str!("../migrations/0002_delivery_queue.sql"),
    ),
    ("0003_data", include_str!("../migrations/0003_data.sql")),
    ("0004_jobs", include_str!("../migrations/0004_jobs.sql")),
    ("0005_filters", include_str!("../migrations/0005_filters.sql")),
    (
        "0006_transformations",
        include_str!("../migrations/0006_transformations.sql"),
    ),
    ("0007_flows", include_str!("../migrations/0007_flows.sql")),
    ("0008_flow_runs", include_str!("../migrations/0008_flow_runs.sql")),
    (
        "0009_flow_secrets",
        include_str!("../migrations/0009_flow_secrets.sql"),
    ),
    (
        "0010_flow_run_retention",
        include_str!("../migrations/0010_flow_run_retention.sql"),
    ),
    (
        "0011_flow_schedules_and_limits",
        include_str!("../migrations/0011_flow_schedules_and_limits.sql"),
    ),
    ("0012_svix_api", include_str!("../migrations/0012_svix_api.sql")),
    (
        "0013_ui_sessions",
        include_str!("../migrations/0013_ui_sessions.sql"),
    ),
    (
        "0014_attempt_headers",
        include_str!("../migrations/0014_attempt_headers.sql"),
    ),
    ("0015_key_check", include_str!("../migrations/0015_key_check.sql")),
    (
        "0016_source_token_digest",
        include_str!("../migrations/0016_source_token_digest.sql"),
    ),
    (
        "0017_listen_holds",
        include_str!("../migrations/0017_listen_holds.sql"),
    ),
    (
        "0018_delivery_hot_claims",
        include_str!("../migrations/0018_delivery_hot_claims.sql"),
    ),
];

/// The schema version this build expects.
pub const LATEST: i32 = MIGRATIONS.len() as i32;

/// Advisory lock key: "hookd" as digits, shared by every node.
const LOCK: i64 = 0x0068_6f6f_6b64;

/// Applies every migration newer than the database's version, each in its own
/// transaction. Returns the names of the migrations applied.
pub async fn apply(client: &mut Object) -> StoreResult<Vec<&'static str>> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await
        .map_err(err)?;
    let result = apply_locked(client).await;
    // Released even when a migration failed (the session may live on in the pool).
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await;
    result
}

async fn apply_locked(client: &mut Object) -> StoreResult<Vec<&'static str>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS hookd_schema (
                 version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(err)?;
    let current: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM hookd_schema", &[])
        .await
        .map_err(err)?
        .get(0);
    if current > LATEST {
        return Err(StoreError::Unavailable(format!(
            "the database schema is version {current}, newer than this hookd ({LATEST}); upgrade hookd"
        )));
    }
    let mut applied = Vec::new();
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = client.transaction().await.map_err(err)?;
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Unavailable(format!("migration {name} failed: {e}")))?;
        tx.execute(
            "INSERT INTO hookd_schema (version, name) VALUES ($1, $2)",
            &[&(i as i32 + 1), name],
        )
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        applied.push(*name);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".sql")
                    .to_owned()
            })
            .collect();
        files.sort();
        let listed: Vec<&str> = super::MIGRATIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, listed);
    }
}
