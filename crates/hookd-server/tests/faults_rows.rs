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
