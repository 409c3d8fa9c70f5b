//! Operational webhooks: hookd's own events, delivered signed to the organisation's
//! operational endpoints by the same engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{TestServer, status_of};
use svix::models::*;

async fn events(receiver: &Receiver, n: usize) -> Vec<serde_json::Value> {
    receiver
        .wait_for("/ops", n, Duration::from_secs(15))
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn types(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn endpoint_events_arrive_signed_and_filtered() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await;
    let ops = Receiver::start().await;
    let svix = server.svix();
    let op = svix
        .operational_webhook()
        .endpoint()
        .create(
            OperationalWebhookEndpointIn {
                event_types: Some(BTreeSet::from([
                    "endpoint.created".to_owned(),
                    "endpoint.deleted".to_owned(),
                ])),
                ..OperationalWebhookEndpointIn::new(format!("{}/ops", ops.url))
            },
            None,
        )
        .await
        .unwrap();
    assert!(op.id.starts_with("ep_"));
    let listed = svix.operational_webhook().endpoint().list(None).await.unwrap();
    assert_eq!(listed.data.len(), 1);
    // The operational application is invisible to the application API.
    assert!(svix.application().list(None).await.unwrap().data.is_empty());
    // Unknown operational event types are refused.
    let bad = OperationalWebhookEndpointIn {
        event_types: Some(BTreeSet::from(["invoice.paid".to_owned()])),
        ..OperationalWebhookEndpointIn::new(format!("{}/ops", ops.url))
    };
    assert_eq!(
        status_of(
            &svix
                .operational_webhook()
                .endpoint()
                .create(bad, None)
                .await
                .unwrap_err()
        ),
        422
    );

    let app = svix
        .application()
        .create(
            ApplicationIn {
                uid: Some("shop".into()),
                ..ApplicationIn::new("Shop".into())
            },
            None,
        )
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn {
                uid: Some("main".into()),
                ..EndpointIn::new("https://example.com/h".into())
            },
            None,
        )
        .await
        .unwrap();
    svix.endpoint()
        .patch(
            app.id.clone(),
            ep.id.clone(),
            EndpointPatch {
                description: Some("x".into()),
                ..EndpointPatch::new()
            },
        )
        .await
        .unwrap();
    svix.endpoint()
        .delete(app.id.clone(), ep.id.clone())
        .await
        .unwrap();

    let got = events(&ops, 2).await;
    let mut seen = types(&got);
    seen.sort();
    assert_eq!(
        seen,
        ["endpoint.created", "endpoint.deleted"],
        "endpoint.updated is filtered out"
    );
    let got: Vec<_> = got
        .into_iter()
        .filter(|e| e["type"] == "endpoint.created")
        .collect();
    let data = &got[0]["data"];
    assert_eq!(data["appId"], app.id.as_str());
    assert_eq!(data["appUid"], "shop");
    assert_eq!(data["endpointId"], ep.id.as_str());
    assert_eq!(data["endpointUid"], "main");

    let secret = svix
        .operational_webhook()
        .endpoint()
        .get_secret(op.id.clone())
        .await
        .unwrap()
        .key;
    let r = &ops.received_on("/ops")[0];
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.insert(
            http::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    svix::webhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .unwrap();
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .unwrap();

    svix.operational_webhook()
        .endpoint()
        .delete(op.id.clone())
        .await
        .unwrap();
    assert!(
        svix.operational_webhook()
            .endpoint()
            .list(None)
            .await
            .unwrap()
            .data
            .is_empty()
    );
    server.stop().await;
}

#[tokio::test]
async fn attempt_events_and_auto_disable() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
        ("HOOKD_RETRY_SCHEDULE", "50ms,50ms,50ms,50ms,50ms"),
        // The second exhaustion after the first disables the endpoint.
        ("HOOKD_ENDPOINT_AUTO_DISABLE_AFTER", "1ms"),
    ])
    .await;
    let ops = Receiver::start().await;
    let target = Receiver::start().await;
    let svix = server.svix();
    svix.operational_webhook()
        .endpoint()
        .create(
            OperationalWebhookEndpointIn::new(format!("{}/ops", ops.url)),
            None,
        )
        .await
        .unwrap();
    let app = svix
        .application()
        .create(ApplicationIn::new("a".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(app.id.clone(), EndpointIn::new(format!("{}/t", target.url)), None)
        .await
        .unwrap();
    // app.created + endpoint.created first.
    let got = events(&ops, 2).await;
    let mut first = types(&got);
    first.sort();
    assert_eq!(first, ["app.created", "endpoint.created"]);

    // Four failures raise message.attempt.failing; the fifth try succeeds: recovered.
    target.script((0..4).map(|_| Answer::status(500)));
    let msg = svix
        .message()
        .create(
            app.id.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    let got = events(&ops, 4).await;
    assert_eq!(
        types(&got[2..]),
        ["message.attempt.failing", "message.attempt.recovered"]
    );
    assert_eq!(got[2]["data"]["msgId"], msg.id.as_str());
    assert_eq!(got[2]["data"]["endpointId"], ep.id.as_str());
    assert_eq!(got[2]["data"]["lastAttempt"]["responseStatusCode"], 500);

    // Everything fails from now on: exhausted, then (the streak being older than the
    // limit at the second exhaustion) the endpoint is disabled.
    target.answer_always(Answer::status(500));
    svix.message()
        .create(
            app.id.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    // failing (4th failure), then exhausted: the failing streak starts.
    let got = events(&ops, 4 + 2).await;
    assert_eq!(
        types(&got[4..]),
        ["message.attempt.failing", "message.attempt.exhausted"]
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    svix.message()
        .create(
            app.id.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    // Again failing and exhausted; the streak is now older than the limit: disabled.
    let got = events(&ops, 4 + 5).await;
    let later = types(&got[4..]);
    let count = |t: &str| later.iter().filter(|x| *x == t).count();
    assert_eq!(count("message.attempt.failing"), 2, "{later:?}");
    assert_eq!(count("message.attempt.exhausted"), 2, "{later:?}");
    assert_eq!(count("endpoint.disabled"), 1, "{later:?}");
    assert_eq!(later.len(), 5, "{later:?}");
    assert!(
        svix.endpoint()
            .get(app.id.clone(), ep.id.clone())
            .await
            .unwrap()
            .disabled
            .unwrap()
    );

    // Re-enabling sends endpoint.updated and endpoint.enabled.
    svix.endpoint()
        .patch(
            app.id.clone(),
            ep.id.clone(),
            EndpointPatch {
                disabled: Some(false),
                ..EndpointPatch::new()
            },
        )
        .await
        .unwrap();
    let got = events(&ops, 9 + 2).await;
    let mut tail = types(&got[9..]);
    tail.sort();
    assert_eq!(tail, ["endpoint.enabled", "endpoint.updated"]);
    server.stop().await;
}

/// Each endpoint route names its own application: an application's endpoints, the
/// organisation's operational webhooks and a source's destinations never show through
/// one another's routes.
#[tokio::test]
async fn each_endpoint_route_reaches_its_own_application() {
    let server = TestServer::start().await;
    let post = |path: String, body: serde_json::Value| {
        let req = server.req(reqwest::Method::POST, &path).json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let list = |path: String| {
        let req = server.req(reqwest::Method::GET, &path);
        async move {
            let page: serde_json::Value = req.send().await.unwrap().json().await.unwrap();
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["url"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    post(
        "/api/v1/app".into(),
        serde_json::json!({"name": "A", "uid": "route-app"}),
    )
    .await;
    let source = post(
        "/ingest/api/v1/source".into(),
        serde_json::json!({"name": "Routes", "uid": "route-src", "type": "generic-webhook"}),
    )
    .await;
    let sid = source["id"].as_str().unwrap();
    post(
        "/api/v1/app/route-app/endpoint".into(),
        serde_json::json!({"url": "https://app.example/"}),
    )
    .await;
    post(
        "/api/v1/operational-webhook/endpoint".into(),
        serde_json::json!({"url": "https://ops.example/"}),
    )
    .await;
    post(
        format!("/ingest/api/v1/source/{sid}/endpoint"),
        serde_json::json!({"url": "https://dest.example/"}),
    )
    .await;
    assert_eq!(
        list("/api/v1/app/route-app/endpoint".into()).await,
        ["https://app.example/"]
    );
    assert_eq!(
        list("/api/v1/operational-webhook/endpoint".into()).await,
        ["https://ops.example/"]
    );
    assert_eq!(
        list(format!("/ingest/api/v1/source/{sid}/endpoint")).await,
        ["https://dest.example/"]
    );
    // By uid too, and a source's hidden application is no application of the API.
    assert_eq!(
        list("/ingest/api/v1/source/route-src/endpoint".into()).await,
        ["https://dest.example/"]
    );
    let status = server
        .req(
            reqwest::Method::GET,
            &format!("/api/v1/app/{}/endpoint", source["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn an_operational_endpoints_filter_picks_the_events_it_gets() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await;
    let ops = Receiver::start().await;
    let res = server
        .req(reqwest::Method::POST, "/api/v1/operational-webhook/endpoint")
        .json(&serde_json::json!({"url": format!("{}/ops", ops.url),
                                  "filter": {"body": {"data": {"appUid": "vip"}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let svix = server.svix();
    for uid in ["other", "vip"] {
        let app = svix
            .application()
            .create(
                ApplicationIn {
                    uid: Some(uid.into()),
                    ..ApplicationIn::new(uid.into())
                },
                None,
            )
            .await
            .unwrap();
        svix.endpoint()
            .create(app.id, EndpointIn::new("https://example.com/h".into()), None)
            .await
            .unwrap();
    }
    let got = events(&ops, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        ops.received_on("/ops").len(),
        2,
        "only the vip application's events"
    );
    for e in &got {
        assert_eq!(e["data"]["appUid"], "vip", "{e}");
    }
    let mut kinds = types(&got);
    kinds.sort();
    assert_eq!(kinds, ["app.created", "endpoint.created"]);
}
