//! The store contract suite on SQLite, each test on a fresh database file.

use hookd_store_sqlite::{SqliteOptions, SqliteStore};

async fn fresh_store() -> SqliteStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("hookd.db");
    // Keep the directory for the life of the test process; the OS cleans temp.
    std::mem::forget(dir);
    SqliteStore::open(SqliteOptions::new(
        path,
        hookd_store::sealing::Keyring::generate(),
    ))
    .await
    .expect("open store")
}

hookd_store::contract_tests!(fresh_store());
