//! A damaged row in the delivery queue's way: an endpoint whose stored secret no longer
//! parses. Its delivery is logged and set aside (still pending, no attempt lost); every
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
