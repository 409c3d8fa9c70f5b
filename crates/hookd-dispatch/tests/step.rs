//! The engine driven one step at a time with `run_due`: claim, send, record and
//! schedule, deterministically (no background loop, no server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::Utc;
use hookd_dispatch::{DispatchConfig, Dispatcher};
use hookd_store::*;
use hookd_store_postgres::testing::{TestSchema, test_database_url};
use hookd_store_postgres::{PgOptions, PgStore};
use hookd_store_sqlite::{SqliteOptions, SqliteStore};

/// A receiver answering with the statuses in `answers`, in order (then 200).
async fn receiver(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let queue = Arc::new(Mutex::new(answers));
    let (g, q) = (Arc::clone(&got), queue);
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (g, q) = (Arc::clone(&g), Arc::clone(&q));
        async move {
            g.lock().unwrap().push(body.to_vec());
            let mut q = q.lock().unwrap();
            let status = if q.is_empty() { 200 } else { q.remove(0) };
            StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

struct Setup {
    store: Arc<dyn Store>,
    dispatcher: Arc<Dispatcher>,
    org: hookd_core::id::OrgId,
    app: hookd_core::id::ApplicationId,
    _schema: Option<TestSchema>,
    _dir: tempfile::TempDir,
}

/// SQLite, or a fresh PostgreSQL schema when `HOOKD_TEST_DATABASE_URL` is set.
async fn open_store(dir: &std::path::Path) -> (Arc<dyn Store>, Option<TestSchema>) {
    match test_database_url() {
        Some(base) => {
            let schema = TestSchema::create(&base).await.unwrap();
            let store = PgStore::open(PgOptions::new(
                schema.url(),
                hookd_store::sealing::Keyring::generate(),
            ))
            .await
            .unwrap();
            (Arc::new(store), Some(schema))
        }
        None => (
            Arc::new(
                SqliteStore::open(SqliteOptions::new(
                    dir.join("db"),
                    hookd_store::sealing::Keyring::generate(),
                ))
                .await
                .unwrap(),
            ),
            None,
        ),
    }
}

async fn setup(url: &str, schedule: &str) -> Setup {
    setup_with(url, schedule, |_| {}).await
}

async fn setup_with(url: &str, schedule: &str, tune: impl FnOnce(&mut DispatchConfig)) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (store, schema) = open_store(dir.path()).await;
    let org = store.ensure_org("step").await.unwrap().id;
    let app = store
        .create_application(
            &org,
            ApplicationData {
                uid: None,
                name: "a".into(),
                throttle_rate: None,
                metadata: Metadata::new(),
            },
        )
        .await
        .unwrap()
        .id;
    store
        .create_endpoint(
            &org,
            &app,
            EndpointData {
                uid: None,
                url: url.parse().unwrap(),
                description: String::new(),
                disabled: false,
                event_types: None,
                channels: None,
                throttle_rate: None,
                metadata: Metadata::new(),
                headers: Default::default(),
                secret: hookd_core::secret::EndpointSecret::generate(),
                previous_secrets: Vec::new(),
                filter: None,
                transformation: None,
            },
        )
        .await
        .unwrap();
    let mut config = DispatchConfig {
        node_id: "step".into(),
        retry_schedule: schedule.parse().unwrap(),
        policy: hookd_core::network_policy::NetworkPolicy::new("127.0.0.0/8".parse().unwrap()),
        timeout: Duration::from_secs(5),
        https_only: false,
        proxy: None,
        concurrency: 8,
        endpoint_concurrency: 4,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_secs(1),
        shutdown_grace: Duration::from_secs(1),
        auto_disable_after: Duration::from_secs(3600),
        record_headers: true,
    };
    tune(&mut config);
    let sandbox = hookd_sandbox::Sandbox::start(hookd_sandbox::Limits::default(), 1).unwrap();
    let dispatcher = Dispatcher::new(Arc::clone(&store), config, sandbox).unwrap();
    Setup {
        store,
        dispatcher,
        org,
        app,
        _schema: schema,
        _dir: dir,
    }
}

fn message() -> NewMessage {
    NewMessage {
        event_type: "a.b".parse().unwrap(),
        event_id: None,
        channels: None,
        tags: BTreeSet::new(),
        payload: r#"{"step":1}"#.into(),
        retain_until: Utc::now() + chrono::Duration::days(1),
        only_endpoint: None,
        forward: None,
        flow_runs: Default::default(),
        deliver_at: None,
    }
}

#[tokio::test]
async fn one_step_claims_sends_and_records() {
    let (url, got) = receiver(vec![]).await;
    let s = setup(&url, "1h").await;
    assert_eq!(s.dispatcher.run_due().await.unwrap(), 0, "nothing due yet");
    let (msg, _) = s.store.create_message(&s.org, &s.app, message()).await.unwrap();
    assert_eq!(s.dispatcher.run_due().await.unwrap(), 1);
    assert_eq!(got.lock().unwrap().as_slice(), [br#"{"step":1}"#.to_vec()]);
    let filter = AttemptFilter {
        msg: Some(msg.id.clone()),
        ..Default::default()
    };
    let attempts = s
        .store
        .list_attempts(&s.org, &s.app, &ListQuery::default(), &filter)
        .await
        .unwrap()
        .items;
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, DeliveryStatus::Success);
    assert_eq!(s.dispatcher.run_due().await.unwrap(), 0, "delivered means done");
}

#[tokio::test]
async fn a_failure_is_scheduled_by_the_retry_schedule() {
    let (url, got) = receiver(vec![503]).await;
    let s = setup(&url, "1h,1h").await;
    s.store.create_message(&s.org, &s.app, message()).await.unwrap();
    let before = Utc::now();
    assert_eq!(s.dispatcher.run_due().await.unwrap(), 1);
    // Not due again now...
    assert_eq!(s.dispatcher.run_due().await.unwrap(), 0);
    // ...but within the jittered hour (±20%), and not before 48 minutes.
    let lease = Utc::now() + chrono::Duration::seconds(30);
    let early = before + chrono::Duration::minutes(47);
    assert!(
        s.store
            .claim_due(early, 10, lease, "probe", &EndpointRoom::any())
            .await
            .unwrap()
            .is_empty()
    );
    let late = Utc::now() + chrono::Duration::minutes(73);
    let due = s
        .store
        .claim_due(
            late,
            10,
            late + chrono::Duration::seconds(30),
            "probe",
            &EndpointRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(got.lock().unwrap().len(), 1);
}

/// A queue for one endpoint drains at the endpoint's pace, not the poll's: each
/// delivery that ends makes room that is claimed at once (a missed wake-up stalls the
/// engine for a whole poll interval, here a minute). Several threads, as in `serve`:
/// deliveries end while the claim loop runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_drains_without_waiting_for_the_poll() {
    let (url, got) = receiver(vec![]).await;
    let s = setup_with(&url, "1h", |c| {
        c.poll_interval = Duration::from_secs(60);
        c.endpoint_concurrency = 2;
    })
    .await;
    for _ in 0..300 {
        s.store.create_message(&s.org, &s.app, message()).await.unwrap();
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(Arc::clone(&s.dispatcher).run(shutdown));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.lock().unwrap().len() < 300 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of 300 delivered in 30 s",
            got.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    engine.await.unwrap();
    assert_eq!(got.lock().unwrap().len(), 300);
}
