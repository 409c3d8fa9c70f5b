//! Test support (feature `testing`): each test gets its own schema in the database
//! `HOOKD_TEST_DATABASE_URL` names, dropped when the test ends.

use std::io::Write as _;
use std::sync::Once;

/// The variable that names the PostgreSQL database tests may use.
pub const TEST_DATABASE_URL: &str = "HOOKD_TEST_DATABASE_URL";

/// The test database's URL, or `None` (said once per test binary on stderr) when
/// PostgreSQL is not to be tested.
pub fn test_database_url() -> Option<String> {
    static SAID: Once = Once::new();
    match std::env::var(TEST_DATABASE_URL) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            SAID.call_once(|| {
                // Straight to the process's stderr: the test harness captures eprintln!.
                let _ = writeln!(
                    std::io::stderr(),
                    "note: PostgreSQL was NOT tested ({TEST_DATABASE_URL} is not set); \
                     e.g. {TEST_DATABASE_URL}=postgres://postgres@127.0.0.1:5432/test"
                );
            });
            None
        }
    }
}

/// A fresh schema; [`TestSchema::url`] connects with it as the `search_path`, so
/// everything hookd creates lands there. Dropped (with its tables) on drop.
#[derive(Debug)]
pub struct TestSchema {
    base: String,
    name: String,
    url: String,
}

impl TestSchema {
    pub async fn create(base: &str) -> Result<Self, String> {
        let name = format!("hookd_test_{}_{:x}", std::process::id(), rand_suffix());
        let (client, connection) = tokio_postgres::connect(base, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("cannot connect to the database to make a schema in: {e}"))?;
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .map_err(|e| format!("cannot create schema {name}: {e}"))?;
        drop(client);
        let _ = driver.await;
        let sep = if base.contains('?') { '&' } else { '?' };
        // The schema's name as the sessions' application name, so the drop can end
        // every session still using it.
        let url = format!("{base}{sep}options=-csearch_path%3D{name}&application_name={name}");
        Ok(Self {
            base: base.to_owned(),
            name,
            url,
        })
    }

    /// The URL to give hookd (`HOOKD_DATABASE_URL`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread
        // with its own runtime does the cleanup.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok((client, connection)) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                // A test that failed (or never stopped its server) may leave sessions
                // open, even inside a transaction whose task can no longer run (this drop
                // blocks the test's runtime): end them first, or the DROP would wait on
                // their locks forever.
                let ended = client
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                        &[&name],
                    )
                    .await;
                let dropped = client
                    .batch_execute(&format!(
                        "SET lock_timeout = '20s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await;
                if let Err(e) = ended.map(|_| ()).and(dropped) {
                    let _ = writeln!(std::io::stderr(), "could not drop test schema {name}: {e}");
                }
            });
        });
        let _ = done.join();
    }
}
