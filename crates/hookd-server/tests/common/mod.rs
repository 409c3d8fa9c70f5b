//! Test harness: the real server on port 0 with a fresh database — SQLite, or, when
//! `HOOKD_TEST_DATABASE_URL` is set, a fresh schema of that PostgreSQL database — a
//! token for a fresh organisation, and the official `svix` client pointed at it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cli;
pub mod process;
pub mod receiver;

use hookd_server::config::Config;
use svix::api::{Svix, SvixOptions};
use tokio::sync::oneshot;

/// A fresh database for one test: its `HOOKD_DATABASE_URL` and what keeps it alive
/// (the PostgreSQL schema is dropped with it).
pub struct TestDatabase {
    pub url: String,
    pub schema: Option<hookd_store_postgres::testing::TestSchema>,
}

impl TestDatabase {
    /// SQLite in `dir`, or a fresh PostgreSQL schema when `HOOKD_TEST_DATABASE_URL` is set.
    pub async fn new(dir: &std::path::Path) -> Self {
        match hookd_store_postgres::testing::test_database_url() {
            Some(base) => {
                let schema = hookd_store_postgres::testing::TestSchema::create(&base)
                    .await
                    .expect("test schema");
                Self {
                    url: schema.url().to_owned(),
                    schema: Some(schema),
                }
            }
            None => Self {
                url: format!("sqlite://{}", dir.join("hookd.db").display()),
                schema: None,
            },
        }
    }

    /// Runs `sql` on the database directly, from outside hookd (to damage a row, or
    /// read one the API does not show), on either backend; answers the first column of
    /// each row.
    pub async fn raw_sql(&self, sql: &str) -> Vec<String> {
        match &self.schema {
            Some(schema) => {
                let (client, conn) = tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                let rows = client.simple_query(sql).await.unwrap();
                rows.into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            Some(r.get(0).unwrap_or_default().to_owned())
                        }
                        _ => None,
                    })
                    .collect()
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://").to_owned();
                let sql = sql.to_owned();
                tokio::task::spawn_blocking(move || {
                    let c = rusqlite::Connection::open(path).unwrap();
                    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                    let mut stmt = c.prepare(&sql).unwrap();
                    let n = stmt.column_count();
                    stmt.query_map([], |r| {
                        if n == 0 {
                            return Ok(String::new());
                        }
                        Ok(match r.get::<_, rusqlite::types::Value>(0)? {
                            rusqlite::types::Value::Null => String::new(),
                            rusqlite::types::Value::Integer(i) => i.to_string(),
                            rusqlite::types::Value::Real(f) => f.to_string(),
                            rusqlite::types::Value::Text(t) => t,
                            rusqlite::types::Value::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
                        })
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect()
                })
                .await
                .unwrap()
            }
        }
    }
}

/// The `secret_key` tests give servers on PostgreSQL, and the processes that share
/// their database (`process::command`).
pub const TEST_SECRET_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub struct TestServer {
    pub url: String,
    /// A token of the organisation `test-org`.
    pub token: String,
    pub running: Option<hookd_server::Running>,
    stop: Option<oneshot::Sender<()>>,
    // Dropped after `running` (fields drop in order), so the schema outlives the pool.
    _db: TestDatabase,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra `HOOKD_*` settings (the process environment is not read).
    pub async fn start_with(settings: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(dir.path()).await;
        Self::start_on(dir, db, settings).await
    }

    /// Starts on the SQLite database at `path` (whatever the tests' backend), with
    /// extra settings: for tests of the embedded database's own behaviour.
    pub async fn start_sqlite_at(path: &std::path::Path, settings: &[(&str, &str)]) -> Self {
        let db = TestDatabase {
            url: format!("sqlite://{}", path.display()),
            schema: None,
        };
        Self::start_on(tempfile::tempdir().unwrap(), db, settings).await
    }

    async fn start_on(dir: tempfile::TempDir, db: TestDatabase, settings: &[(&str, &str)]) -> Self {
        let mut env: Vec<(String, String)> = vec![("HOOKD_DATABASE_URL".into(), db.url.clone())];
        // PostgreSQL needs a key from the configuration (SQLite makes a key file).
        if db.schema.is_some() {
            env.push(("HOOKD_SECRET_KEY".into(), TEST_SECRET_KEY.into()));
        }
        env.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let config = Config::load_from(env).expect("test config").config;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let running = hookd_server::launch(config, listener, async {
            let _ = stopped.await;
        })
        .await
        .expect("launch");
        let url = format!("http://{}", running.local_addr());
        let mut server = Self {
            url,
            token: String::new(),
            running: Some(running),
            stop: Some(stop),
            _db: db,
            _dir: dir,
        };
        server.token = server.token_for("test-org").await;
        server
    }

    /// A new token for the organisation `org` (created when missing).
    pub async fn token_for(&self, org: &str) -> String {
        let store = self.running.as_ref().unwrap().store();
        let (_, token) = hookd_server::service::auth::issue_token(store.as_ref(), org, "test")
            .await
            .unwrap();
        token.reveal()
    }

    pub fn svix(&self) -> Svix {
        self.svix_with(&self.token)
    }

    pub fn svix_with(&self, token: &str) -> Svix {
        Svix::new(
            token.to_owned(),
            Some(SvixOptions {
                server_url: Some(self.url.clone()),
                num_retries: Some(0),
                ..Default::default()
            }),
        )
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A request with this server's token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http()
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    /// Runs `sql` on the server's database directly (to damage a row, or read one the
    /// API does not show), on either backend; answers the first column of each row.
    pub async fn raw_sql(&self, sql: &str) -> Vec<String> {
        self._db.raw_sql(sql).await
    }

    /// The ids of every message of `app`, through the API's pages.
    pub async fn message_ids(&self, app: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut iterator: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/app/{app}/msg?limit=250");
            if let Some(it) = &iterator {
                path.push_str(&format!("&iterator={it}"));
            }
            let page: serde_json::Value = self
                .req(reqwest::Method::GET, &path)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for m in page["data"].as_array().unwrap() {
                ids.push(m["id"].as_str().unwrap().to_owned());
            }
            if page["done"].as_bool().unwrap_or(true) {
                return ids;
            }
            iterator = page["iterator"].as_str().map(str::to_owned);
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(running) = self.running.take() {
            running.wait().await.unwrap();
        }
    }
}

/// The HTTP status of a failed svix call.
pub fn status_of(err: &svix::error::Error) -> u16 {
    match err {
        svix::error::Error::Http(e) => e.status.as_u16(),
        svix::error::Error::Validation(e) => e.status.as_u16(),
        other => panic!("not an HTTP error: {other:?}"),
    }
}

/// Waits until the message has at least `n` recorded attempts (newest first), with
/// their responses (the SDK asks for none unless told).
pub async fn wait_for_attempts(
    svix: &Svix,
    app: &str,
    msg: &str,
    n: usize,
) -> Vec<svix::models::MessageAttemptOut> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let page = svix
            .message_attempt()
            .list_by_msg(
                app.to_owned(),
                msg.to_owned(),
                Some(svix::api::MessageAttemptListByMsgOptions {
                    with_content: Some(true),
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        if page.data.len() >= n {
            return page.data;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{msg}: {} of {n} attempts recorded",
            page.data.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Asks `probe` every 50 ms until `done` holds for its answer, for up to 10 s, and
/// returns the last answer either way — the caller's assertion then shows what was
/// seen. For state that settles after an outcome the receiver already saw (an attempt
/// is recorded after its response arrives): a fixed sleep there fails on a busy machine.
pub async fn settle<T, Fut>(mut probe: impl FnMut() -> Fut, done: impl Fn(&T) -> bool) -> T
where
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let answer = probe().await;
        if done(&answer) || std::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A received request's headers as the `http` crate's map the signature libraries
/// (`standardwebhooks`, `svix`) take.
pub fn http_headers(h: &axum::http::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::new();
    for (k, v) in h {
        out.insert(
            http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    out
}

/// An API call with this server's token and an optional JSON body: its status and
/// JSON answer (`null` when the answer is not JSON).
pub async fn call(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let mut req = server.req(method, path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

/// [`call`] that must succeed; answers the JSON.
pub async fn ok(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let (status, out) = call(server, method.clone(), path, Some(body)).await;
    assert!(status.is_success(), "{method} {path}: {status} {out}");
    out
}

/// Flow run `id` once it has ended (neither running nor waiting), or as it stands
/// after [`settle`]'s wait; the caller's assertions then show what was seen.
pub async fn ended_run(server: &TestServer, id: &str) -> serde_json::Value {
    settle(
        || async {
            call(
                server,
                reqwest::Method::GET,
                &format!("/api/v1/flow-run/{id}"),
                None,
            )
            .await
            .1
        },
        |r: &serde_json::Value| r["status"] != "running" && r["status"] != "waiting",
    )
    .await
}
