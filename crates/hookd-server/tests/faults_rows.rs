//! A damaged row in the delivery queue's way: an endpoint whose stored secret no longer
//! opens. Its delivery is logged and set aside (still pending, no attempt lost); every
//! other delivery, claimed in the same batches, goes out. Before, the claim failed as a
//! whole, again and again, and nothing was delivered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use common::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_endpoint_row_does_not_decode_is_set_aside_and_the_rest_go_out() {
    let receiver = Receiver::start().await;
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    common::ok(
        &server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "rows", "uid": "rows"}),
    )
    .await;
    let bad = common::ok(
        &server,
        Method::POST,
        "/api/v1/app/rows/endpoint",
        json!({"url": format!("{}/bad", receiver.url)}),
    )
    .await;
    let bad = bad["id"].as_str().unwrap().to_owned();
    common::ok(
        &server,
        Method::POST,
        "/api/v1/app/rows/endpoint",
        json!({"url": format!("{}/good", receiver.url)}),
    )
    .await;
    // Damage the first endpoint's row: its secret no longer parses.
    server
        .raw_sql(&format!(
            "UPDATE endpoint SET secret = 'damaged' WHERE id = '{bad}'"
        ))
        .await;
    for i in 0..20 {
        common::ok(
            &server,
            Method::POST,
            "/api/v1/app/rows/msg",
            json!({"eventType": "row.test", "payload": {"i": i}}),
        )
        .await;
    }
    // Every message reaches the healthy endpoint, though each was claimed beside a
    // delivery that cannot be loaded.
    receiver.wait_for("/good", 20, Duration::from_secs(20)).await;
    assert_eq!(
        receiver
            .wait_for("/bad", 0, Duration::from_millis(10))
            .await
            .len(),
        0
    );
    // The damaged endpoint's deliveries are pending, set aside for ten minutes, with no
    // attempt counted.
    let pending = server
        .raw_sql(&format!(
            "SELECT count(*) FROM delivery WHERE endpoint_id = '{bad}' AND status = 1 AND attempts = 0 AND lease_until IS NULL"
        ))
        .await;
    assert_eq!(pending, vec!["20".to_owned()]);
    server.stop().await;
}

/// A damaged flow run in the runner's way (its state no longer decodes): it is logged
/// and set aside, unleased, and the runs due beside it all finish. Before, every claim
/// failed on it and no run went on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_run_whose_row_does_not_decode_is_set_aside_and_the_rest_run() {
    let server = TestServer::start().await;
    common::ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "later", "trigger": {"type": "manual"},
               "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
    )
    .await;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let run = common::ok(&server, Method::POST, "/api/v1/flow/later/run", json!({})).await;
        assert_eq!(run["status"], "waiting", "{run}");
        runs.push(run["id"].as_str().unwrap().to_owned());
    }
    // One run's state is no longer JSON at all (SQLite keeps text: the row does not
    // decode); another's is JSON but not a run's state (the runner cannot read it).
    let sqlite = hookd_store_postgres::testing::test_database_url().is_none();
    let unreadable = runs.remove(3);
    server
        .raw_sql(&format!(
            "UPDATE flow_run SET state = '\"damaged\"' WHERE id = '{unreadable}'"
        ))
        .await;
    let undecodable = sqlite.then(|| runs.remove(2));
    if let Some(bad) = &undecodable {
        server
            .raw_sql(&format!(
                "UPDATE flow_run SET state = 'damaged{{' WHERE id = '{bad}'"
            ))
            .await;
    }
    for id in &runs {
        let run = common::ended_run(&server, id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    // The run the runner cannot read ends failed, saying why.
    let run = common::ended_run(&server, &unreadable).await;
    assert_eq!(run["status"], "failed", "{run}");
    // The row that does not decode is set aside: held by no node, due again later.
    if let Some(bad) = &undecodable {
        let held = server
            .raw_sql(&format!(
                "SELECT CASE WHEN lease_owner IS NULL AND lease_until IS NULL THEN 'free' ELSE 'held' END
                 FROM flow_run WHERE id = '{bad}'"
            ))
            .await;
        assert_eq!(held, vec!["free".to_owned()]);
    }
    server.stop().await;
}

/// Damaged rows read through the API: an application whose metadata no longer decodes
/// and an endpoint whose secret no key opens. Each read that needs them answers 503
/// with `Retry-After`, code `damaged_data` and the row named (never a bare 500), the
/// rest of the organisation reads as before, and the row reads again once repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_row_read_through_the_api_is_a_named_503_and_the_rest_reads() {
    let server = TestServer::start().await;
    let mut apps = Vec::new();
    for uid in ["broken", "fine"] {
        let app = common::ok(
            &server,
            Method::POST,
            "/api/v1/app",
            json!({"name": uid, "uid": uid, "metadata": {"team": "a"}}),
        )
        .await;
        apps.push(app["id"].as_str().unwrap().to_owned());
    }
    let endpoint = common::ok(
        &server,
        Method::POST,
        "/api/v1/app/fine/endpoint",
        json!({"url": "https://example.com/hook"}),
    )
    .await;
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    let sqlite = hookd_store_postgres::testing::test_database_url().is_none();
    // SQLite keeps text (no longer JSON); PostgreSQL jsonb (JSON, not metadata).
    let damage = if sqlite { "'damaged{'" } else { "'\"damaged\"'" };
    server
        .raw_sql(&format!(
            "UPDATE application SET metadata = {damage} WHERE id = '{}'",
            apps[0]
        ))
        .await;
    server
        .raw_sql(&format!(
            "UPDATE endpoint SET secret = 'hks1.damaged' WHERE id = '{endpoint}'"
        ))
        .await;

    let damaged = |path: String, names: String| {
        let server = &server;
        async move {
            let reply = server.req(Method::GET, &path).send().await.unwrap();
            assert_eq!(reply.status(), 503, "{path}");
            assert_eq!(
                reply.headers().get("retry-after").and_then(|v| v.to_str().ok()),
                Some("5"),
                "{path}"
            );
            let body: serde_json::Value = reply.json().await.unwrap();
            assert_eq!(body["code"], "damaged_data", "{path}: {body}");
            let detail = body["detail"].as_str().unwrap();
            assert!(detail.contains(&names), "{path}: {detail}");
            assert!(
                !detail.contains("damaged{"),
                "the stored value is not answered: {detail}"
            );
        }
    };
    damaged(format!("/api/v1/app/{}", apps[0]), apps[0].clone()).await;
    damaged("/api/v1/app".into(), apps[0].clone()).await;
    damaged(
        format!("/api/v1/app/fine/endpoint/{endpoint}/secret"),
        format!("endpoint/{endpoint}/secret"),
    )
    .await;
    // The rest of the organisation reads as before.
    let (status, app) = common::call(&server, Method::GET, "/api/v1/app/fine", None).await;
    assert_eq!(status, 200, "{app}");
    let (status, _) = common::call(&server, Method::GET, "/api/v1/health", None).await;
    assert_eq!(status, 204);
    // Repaired, the row reads again.
    server
        .raw_sql(&format!(
            "UPDATE application SET metadata = '{{}}' WHERE id = '{}'",
            apps[0]
        ))
        .await;
    let (status, app) = common::call(&server, Method::GET, "/api/v1/app/broken", None).await;
    assert_eq!(status, 200, "{app}");
    server.stop().await;
}
