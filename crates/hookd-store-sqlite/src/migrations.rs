//! Embedded schema migrations, applied in order on open. The applied version is kept
//! in SQLite's `user_version`, so a database knows its own schema without a side table.

use rusqlite::Connection;

/// Migrations in order; index + 1 is the schema version it brings.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("../migrations/0001_init.sql")),
    ("0002_messages", include_str!("../migrations/0002_messages.sql")),
    (
        "0003_idempotency",
        include_str!("../migrations/0003_idempotency.sql"),
    ),
    (
        "0004_operational",
        include_str!("../migrations/0004_operational.sql"),
    ),
    ("0005_ingest", include_str!("../migrations/0005_ingest.sql")),
    (
        "0006_delivery_queue",
        include_str!("../migrations/0006_delivery_queue.sql"),
    ),
    ("0007_data", include_str!("../migrations/0007_data.sql")),
    ("0008_jobs", include_str!("../migrations/0008_jobs.sql")),
    ("0009_filters", include_str!("../migrations/0009_filters.sql")),
    (
        "0010_transformations",
        include_str!("../migrations/0010_transformations.sql"),
    ),
    ("0011_flows", include_str!("../migrations/0011_flows.sql")),
    ("0012_flow_runs", include_str!("../migrations/0012_flow_runs.sql")),
    (
        "0013_flow_secrets",
        include_str!("../migrations/0013_flow_secrets.sql"),
    ),
    (
        "0014_flow_run_retention",
        include_str!("../migrations/0014_flow_run_retention.sql"),
    ),
    (
        "0015_flow_schedules_and_limits",
        include_str!("../migrations/0015_flow_schedules_and_limits.sql"),
    ),
    ("0016_svix_api", include_str!("../migrations/0016_svix_api.sql")),
    (
        "0017_ui_sessions",
        include_str!("../migrations/0017_ui_sessions.sql"),
    ),
    (
        "0018_attempt_headers",
        include_str!("../migrations/0018_attempt_headers.sql"),
    ),
    ("0019_key_check", include_str!("../migrations/0019_key_check.sql")),
    (
        "0020_source_token_digest",
        include_str!("../migrations/0020_source_token_digest.sql"),
    ),
    (
        "0021_score_index",
        include_str!("../migrations/0021_score_index.sql"),
    ),
];

/// The schema version this build expects.
pub const LATEST: u32 = MIGRATIONS.len() as u32;

/// Applies every migration newer than the database's version, each in its own
/// transaction. Returns the names of the migrations applied.
pub fn apply(conn: &mut Connection) -> rusqlite::Result<Vec<&'static str>> {
    let current: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the database schema is version {current}, newer than this hookd ({LATEST}); upgrade hookd"
        )));
    }
    let mut applied = Vec::new();
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
        tx.commit()?;
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
