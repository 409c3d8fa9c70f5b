//! The store contract suite on PostgreSQL, each check in a fresh schema of the database
//! `HOOKD_TEST_DATABASE_URL` names (skipped, and said so, when it is not set).

use hookd_store_postgres::testing::{TestSchema, test_database_url};
use hookd_store_postgres::{PgOptions, PgStore};

async fn fresh_store() -> Option<(TestSchema, PgStore)> {
    let base = test_database_url()?;
    let schema = TestSchema::create(&base).await.expect("test schema");
    let mut options = PgOptions::new(schema.url(), hookd_store::sealing::Keyring::generate());
    options.pool_size = 4;
    let store = PgStore::open(options).await.expect("open store");
    Some((schema, store))
}

hookd_store::contract_tests!(optional fresh_store());
