//! End to end: messages sent through the API reach a real receiver, signed, retried,
//! logged; verified with the official `standardwebhooks` and `svix` libraries.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::receiver::{Answer, Receiver};
use common::{TestServer, status_of};
use svix::api::MessageAttemptListByMsgOptions;
use svix::models::*;

/// A server that may deliver to the loopback receiver, with a fast retry schedule.
async fn server() -> TestServer {
    TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", "200ms,400ms"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await
}

async fn app_with_endpoint(
    server: &TestServer,
    receiver: &Receiver,
    path: &str,
    ep: EndpointIn,
) -> (String, EndpointOut) {
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn {
                url: format!("{}{path}", receiver.url),
                ..ep
            },
            None,
        )
        .await
        .unwrap();
    (app.id, ep)
}

#[tokio::test]
async fn a_message_arrives_signed_and_byte_exact() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let ep_in = EndpointIn {
        headers: Some(BTreeMap::from([("X-Custom".into(), "yes".into())])),
        ..EndpointIn::new(String::new())
    };
    let (app, ep) = app_with_endpoint(&server, &receiver, "/hook", ep_in).await;
    let secret = server
        .svix()
        .endpoint()
        .get_secret(app.clone(), ep.id.clone())
        .await
        .unwrap()
        .key;

    // Sent raw, with odd spacing and key order, which must arrive unchanged.
    let payload = r#"{ "z": 1,  "a": [true, null], "text": "h\u00e9llo" }"#;
    let body = format!(r#"{{"eventType": "invoice.paid", "payload": {payload}}}"#);
    let resp = server
        .req(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let msg: serde_json::Value = resp.json().await.unwrap();
    let msg_id = msg["id"].as_str().unwrap().to_owned();

    let got = receiver.wait_for("/hook", 1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(std::str::from_utf8(&r.body).unwrap(), payload, "byte for byte");
    let h = &r.headers;
    assert_eq!(h["content-type"], "application/json");
    assert!(h["user-agent"].to_str().unwrap().starts_with("hookd/"));
    assert_eq!(h["x-custom"], "yes");
    assert_eq!(h["webhook-id"], msg_id.as_str());
    assert_eq!(h["svix-id"], msg_id.as_str());
    assert_eq!(h["webhook-signature"], h["svix-signature"]);
    assert_eq!(h["webhook-timestamp"], h["svix-timestamp"]);

    let headers = common::http_headers(h);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .expect("standardwebhooks verifies");
    svix::webhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&r.body, &headers)
        .expect("svix verifies");
    // A tampered body does not verify.
    let mut tampered = r.body.to_vec();
    tampered[3] ^= 1;
    assert!(
        standardwebhooks::Webhook::new(&secret)
            .unwrap()
            .verify(&tampered, &headers)
            .is_err()
    );

    // The attempt is logged.
    let svix = server.svix();
    let attempts = svix
        .message_attempt()
        .list_by_msg(
            app.clone(),
            msg_id.clone(),
            Some(MessageAttemptListByMsgOptions {
                with_content: Some(true),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(attempts.data.len(), 1);
    let a = &attempts.data[0];
    assert_eq!(a.status, MessageStatus::Success);
    assert_eq!(a.response_status_code, 200);
    assert_eq!(a.response, "receiver says hi");
    assert_eq!(a.endpoint_id, ep.id);
    assert_eq!(a.url, format!("{}/hook", receiver.url));
    let one = svix
        .message_attempt()
        .get(app.clone(), msg_id.clone(), a.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(one.id, a.id);
    let by_ep = svix
        .message_attempt()
        .list_by_endpoint(app.clone(), ep.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(by_ep.data.len(), 1);

    // And the message reads back.
    let with = svix::api::MessageGetOptions {
        with_content: Some(true),
    };
    let m = svix
        .message()
        .get(app.clone(), msg_id.clone(), Some(with))
        .await
        .unwrap();
    assert_eq!(m.event_type, "invoice.paid");
    assert_eq!(m.payload["z"], 1);
    // The SDKs ask without content by default.
    let bare = svix
        .message()
        .get(app.clone(), msg_id.clone(), None)
        .await
        .unwrap();
    assert_eq!(bare.payload, serde_json::json!({}));
    server.stop().await;
}

#[tokio::test]
async fn during_rotation_both_secrets_verify() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, ep) = app_with_endpoint(&server, &receiver, "/rot", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    let old = svix
        .endpoint()
        .get_secret(app.clone(), ep.id.clone())
        .await
        .unwrap()
        .key;
    let new = svix
        .endpoint()
        .rotate_secret(app.clone(), ep.id.clone(), EndpointSecretRotateIn::new(), None)
        .await
        .unwrap()
        .key;
    svix.message()
        .create(
            app.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({"n": 1})),
            None,
        )
        .await
        .unwrap();
    let r = receiver
        .wait_for("/rot", 1, Duration::from_secs(10))
        .await
        .remove(0);
    let headers = common::http_headers(&r.headers);
    assert_eq!(
        r.headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    for secret in [&old, &new] {
        standardwebhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &headers)
            .unwrap();
        svix::webhooks::Webhook::new(secret)
            .unwrap()
            .verify(&r.body, &headers)
            .unwrap();
    }
    server.stop().await;
}

#[tokio::test]
async fn only_subscribed_endpoints_get_a_message() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    for name in ["a.b", "c.d"] {
        svix.event_type()
            .create(EventTypeIn::new(name.into(), name.into()), None)
            .await
            .unwrap();
    }
    let app = svix
        .application()
        .create(ApplicationIn::new("fan".into()), None)
        .await
        .unwrap()
        .id;
    let mk = |path: &str, types: Option<&[&str]>, chans: Option<&[&str]>| EndpointIn {
        event_types: types.map(|t| t.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()),
        channels: chans.map(|c| c.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()),
        ..EndpointIn::new(format!("{}{path}", receiver.url))
    };
    for ep in [
        mk("/all", None, None),
        mk("/ab", Some(&["a.b"]), None),
        mk("/cd", Some(&["c.d"]), None),
        mk("/chan-x", None, Some(&["x"])),
        mk("/chan-y", None, Some(&["y"])),
    ] {
        svix.endpoint().create(app.clone(), ep, None).await.unwrap();
    }
    let msg = MessageIn {
        channels: Some(BTreeSet::from(["x".to_owned()])),
        ..MessageIn::new("a.b".into(), serde_json::json!({}))
    };
    svix.message().create(app.clone(), msg, None).await.unwrap();
    for path in ["/all", "/ab", "/chan-x"] {
        receiver.wait_for(path, 1, Duration::from_secs(10)).await;
    }
    // Give the engine time to (wrongly) deliver the rest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for path in ["/cd", "/chan-y"] {
        assert!(
            receiver.received_on(path).is_empty(),
            "{path} got a message it does not subscribe to"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn failures_are_retried_on_schedule_until_success() {
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(500), Answer::status(500)]);
    let (app, ep) = app_with_endpoint(&server, &receiver, "/flaky", EndpointIn::new(String::new())).await;
    let msg = server
        .svix()
        .message()
        .create(
            app.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({"k": "v"})),
            None,
        )
        .await
        .unwrap();
    let got = receiver.wait_for("/flaky", 3, Duration::from_secs(10)).await;
    // Same webhook-id on every try, so receivers can deduplicate.
    assert!(got.iter().all(|r| r.headers["webhook-id"] == msg.id.as_str()));
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(150),
        "first retry after ~200ms ±20%: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(300),
        "second retry after ~400ms ±20%: {gap2:?}"
    );

    let svix = server.svix();
    let attempts = common::wait_for_attempts(&svix, &app, &msg.id, 3).await;
    let codes: Vec<i16> = attempts.iter().map(|a| a.response_status_code).collect();
    assert_eq!(codes, [200, 500, 500], "newest first");
    let failed = MessageAttemptListByMsgOptions {
        status: Some(MessageStatus::Fail),
        ..Default::default()
    };
    assert_eq!(
        svix.message_attempt()
            .list_by_msg(app.clone(), msg.id.clone(), Some(failed))
            .await
            .unwrap()
            .data
            .len(),
        2
    );
    let _ = ep;
    server.stop().await;
}

#[tokio::test]
async fn an_exhausted_schedule_stops_and_410_disables_the_endpoint() {
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(503));
    let (app, _) = app_with_endpoint(&server, &receiver, "/down", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    // 1 try + 2 retries, then nothing more.
    receiver.wait_for("/down", 3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received_on("/down").len(), 3);
    let attempts = svix
        .message_attempt()
        .list_by_msg(app.clone(), msg.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(attempts.data.len(), 3);

    let gone = Receiver::start().await;
    gone.answer_always(Answer::status(410));
    let (app2, ep2) = app_with_endpoint(&server, &gone, "/gone", EndpointIn::new(String::new())).await;
    svix.message()
        .create(
            app2.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    gone.wait_for("/gone", 1, Duration::from_secs(10)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let ep = svix.endpoint().get(app2.clone(), ep2.id.clone()).await.unwrap();
        if ep.disabled == Some(true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "410 did not disable the endpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(gone.received_on("/gone").len(), 1, "no retries after 410");
    server.stop().await;
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.script([Answer {
        status: 429,
        delay: Duration::ZERO,
        headers: vec![("retry-after", "2".into())],
        body: None,
    }]);
    let (app, _) = app_with_endpoint(&server, &receiver, "/busy", EndpointIn::new(String::new())).await;
    server
        .svix()
        .message()
        .create(app, MessageIn::new("a.b".into(), serde_json::json!({})), None)
        .await
        .unwrap();
    let got = receiver.wait_for("/busy", 2, Duration::from_secs(10)).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After: 2 was not honoured: {gap:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn internal_addresses_are_refused_without_the_allowlist() {
    // No HOOKD_DELIVERY_ALLOW_NETWORKS: loopback is refused.
    let server = TestServer::start_with(&[
        ("HOOKD_RETRY_SCHEDULE", ""),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("ssrf".into()), None)
        .await
        .unwrap()
        .id;
    let port = receiver.url.rsplit(':').next().unwrap().to_owned();
    let mut msgs = Vec::new();
    for url in [
        format!("http://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("http://[::ffff:127.0.0.1]:{port}/x"),
    ] {
        svix.endpoint()
            .create(app.clone(), EndpointIn::new(url), None)
            .await
            .unwrap();
    }
    msgs.push(
        svix.message()
            .create(
                app.clone(),
                MessageIn::new("a.b".into(), serde_json::json!({})),
                None,
            )
            .await
            .unwrap(),
    );
    let attempts = common::wait_for_attempts(&svix, &app, &msgs[0].id, 3).await;
    for a in &attempts {
        assert_eq!(a.status, MessageStatus::Fail);
        assert_eq!(a.response_status_code, 0);
        assert!(
            a.response.contains("refused by the delivery network policy"),
            "{}",
            a.response
        );
        assert!(a.response.contains("loopback"), "{}", a.response);
    }
    assert!(receiver.received().is_empty(), "nothing reached the receiver");
    server.stop().await;
}

#[tokio::test]
async fn message_api_validates_and_deduplicates() {
    let server = server().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("m".into()), None)
        .await
        .unwrap()
        .id;
    let with_id = MessageIn {
        event_id: Some("evt-1".into()),
        ..MessageIn::new("a.b".into(), serde_json::json!({}))
    };
    let first = svix
        .message()
        .create(app.clone(), with_id.clone(), None)
        .await
        .unwrap();
    assert_eq!(
        status_of(
            &svix
                .message()
                .create(app.clone(), with_id, None)
                .await
                .unwrap_err()
        ),
        409
    );
    assert_eq!(
        svix.message()
            .get(app.clone(), "evt-1".into(), None)
            .await
            .unwrap()
            .id,
        first.id
    );
    let bad = MessageIn::new("not valid!".into(), serde_json::json!({}));
    assert_eq!(
        status_of(&svix.message().create(app.clone(), bad, None).await.unwrap_err()),
        422
    );
    let not_object = MessageIn::new("a.b".into(), serde_json::json!([1, 2]));
    assert_eq!(
        status_of(
            &svix
                .message()
                .create(app.clone(), not_object, None)
                .await
                .unwrap_err()
        ),
        422
    );
    // An application is created inline when the path names none.
    let inline = MessageIn {
        application: Some(ApplicationIn {
            uid: Some("inline-app".into()),
            ..ApplicationIn::new("Inline".into())
        }),
        ..MessageIn::new("a.b".into(), serde_json::json!({}))
    };
    svix.message()
        .create("inline-app".into(), inline, None)
        .await
        .unwrap();
    assert_eq!(
        svix.application().get("inline-app".into()).await.unwrap().name,
        "Inline"
    );
    let missing = MessageIn::new("a.b".into(), serde_json::json!({}));
    assert_eq!(
        status_of(
            &svix
                .message()
                .create("no-such-app".into(), missing, None)
                .await
                .unwrap_err()
        ),
        404
    );
    // Listing, newest first; expunging the content.
    let list = svix.message().list(app.clone(), None).await.unwrap();
    assert_eq!(list.data[0].id, first.id);
    svix.message()
        .expunge_content(app.clone(), first.id.clone())
        .await
        .unwrap();
    let with = svix::api::MessageGetOptions {
        with_content: Some(true),
    };
    let expunged = svix
        .message()
        .get(app.clone(), first.id.clone(), Some(with))
        .await
        .unwrap();
    assert_eq!(expunged.payload, serde_json::json!({}));
    server.stop().await;
}

#[tokio::test]
async fn throttle_rate_bounds_the_delivery_rate() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let ep = EndpointIn {
        throttle_rate: Some(5),
        ..EndpointIn::new(String::new())
    };
    let (app, _) = app_with_endpoint(&server, &receiver, "/slowly", ep).await;
    let svix = server.svix();
    for i in 0..20 {
        svix.message()
            .create(
                app.clone(),
                MessageIn::new("a.b".into(), serde_json::json!({"i": i})),
                None,
            )
            .await
            .unwrap();
    }
    let got = receiver.wait_for("/slowly", 20, Duration::from_secs(20)).await;
    // A full bucket allows one second's worth (5) at once; the other 15 at 5/s.
    let span = got[19].at - got[0].at;
    let sustained = 15.0 / span.as_secs_f64();
    assert!(
        sustained <= 5.0 * 1.15,
        "sustained {sustained:.1}/s over {span:?} exceeds throttleRate 5/s"
    );
    for (i, r) in got.iter().enumerate() {
        let in_window = got[i..]
            .iter()
            .filter(|x| x.at - r.at < Duration::from_secs(1))
            .count();
        assert!(in_window <= 10, "{in_window} deliveries within one second");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_endpoint_does_not_delay_a_fast_one() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_CONCURRENCY", "8"),
        ("HOOKD_DELIVERY_ENDPOINT_CONCURRENCY", "2"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
        ("HOOKD_SHUTDOWN_TIMEOUT", "1s"),
    ])
    .await;
    let slow = Receiver::start().await;
    slow.answer_always(Answer {
        status: 200,
        delay: Duration::from_secs(5),
        headers: vec![],
        body: None,
    });
    let fast = Receiver::start().await;
    let (slow_app, _) = app_with_endpoint(&server, &slow, "/slow", EndpointIn::new(String::new())).await;
    let (fast_app, _) = app_with_endpoint(&server, &fast, "/fast", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    for i in 0..20 {
        svix.message()
            .create(
                slow_app.clone(),
                MessageIn::new("a.b".into(), serde_json::json!({"i": i})),
                None,
            )
            .await
            .unwrap();
    }
    slow.wait_for("/slow", 2, Duration::from_secs(5)).await;
    let sent = std::time::Instant::now();
    svix.message()
        .create(
            fast_app,
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    fast.wait_for("/fast", 1, Duration::from_secs(2)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "the fast endpoint waited behind the slow one"
    );
    // The slow endpoint never has more than its cap in flight.
    assert_eq!(slow.received_on("/slow").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn resend_recover_send_example_stats_and_views() {
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(500));
    let (app, ep) = app_with_endpoint(&server, &receiver, "/r", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    let since = chrono::Utc::now() - chrono::Duration::seconds(5);
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({"n": 1})),
            None,
        )
        .await
        .unwrap();
    // Exhausts its three tries against a failing receiver.
    receiver.wait_for("/r", 3, Duration::from_secs(10)).await;
    let stats = || async {
        svix.endpoint()
            .get_stats(app.clone(), ep.id.clone(), None)
            .await
            .unwrap()
    };
    let s = common::settle(stats, |s| s.fail == 1).await;
    assert_eq!((s.fail, s.success, s.pending, s.sending), (1, 0, 0, 0));

    let dests = svix
        .message_attempt()
        .list_attempted_destinations(app.clone(), msg.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(dests.data.len(), 1);
    assert_eq!(dests.data[0].id, ep.id);
    assert_eq!(dests.data[0].status, MessageStatus::Fail);
    let msgs = svix
        .message_attempt()
        .list_attempted_messages(app.clone(), ep.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(msgs.data.len(), 1);
    assert_eq!(msgs.data[0].id, msg.id);
    assert_eq!(msgs.data[0].status, MessageStatus::Fail);

    // The receiver recovers; a manual resend goes through.
    receiver.answer_always(Answer::status(200));
    svix.message_attempt()
        .resend(app.clone(), msg.id.clone(), ep.id.clone(), None)
        .await
        .unwrap();
    receiver.wait_for("/r", 4, Duration::from_secs(10)).await;
    let attempts = common::wait_for_attempts(&svix, &app, &msg.id, 4).await;
    assert_eq!(attempts[0].trigger_type, MessageAttemptTriggerType::Manual);
    assert_eq!(attempts[0].status, MessageStatus::Success);

    // Recover requeues what failed since a time.
    receiver.answer_always(Answer::status(500));
    let failed: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                svix.message()
                    .create(
                        app.clone(),
                        MessageIn::new("a.b".into(), serde_json::json!({"i": i})),
                        None,
                    )
                    .await
                    .unwrap()
                    .id,
            );
        }
        ids
    };
    receiver.wait_for("/r", 4 + 9, Duration::from_secs(10)).await;
    let s = common::settle(stats, |s| s.fail == 3).await;
    assert_eq!((s.fail, s.success, s.sending), (3, 1, 0));
    receiver.answer_always(Answer::status(200));
    let out = svix
        .endpoint()
        .recover(app.clone(), ep.id.clone(), RecoverIn::new(since), None)
        .await
        .unwrap();
    assert!(out.id.starts_with("qtask_"), "{}", out.id);
    let got = receiver.wait_for("/r", 4 + 9 + 3, Duration::from_secs(10)).await;
    let recovered: BTreeSet<String> = got[13..]
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovered, failed.iter().cloned().collect::<BTreeSet<_>>());
    let s = common::settle(stats, |s| s.success == 4).await;
    assert_eq!((s.success, s.fail), (4, 0));

    // Send-example: the schema's example, to this endpoint only.
    svix.event_type()
        .create(
            EventTypeIn {
                schemas: Some(serde_json::json!({"1": {"type": "object", "examples": [{"example": "yes"}]}})),
                ..EventTypeIn::new("ex.ample".into(), "x".into())
            },
            None,
        )
        .await
        .unwrap();
    let example = svix
        .endpoint()
        .send_example(
            app.clone(),
            ep.id.clone(),
            EventExampleIn::new("ex.ample".into()),
            None,
        )
        .await
        .unwrap();
    let got = receiver.wait_for("/r", 17, Duration::from_secs(10)).await;
    assert_eq!(got[16].headers["webhook-id"], example.id.as_str());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[16].body).unwrap(),
        serde_json::json!({"example": "yes"})
    );

    // An attempt's response can be removed.
    let a = &svix
        .message_attempt()
        .list_by_msg(app.clone(), msg.id.clone(), None)
        .await
        .unwrap()
        .data[0];
    svix.message_attempt()
        .expunge_content(app.clone(), msg.id.clone(), a.id.clone())
        .await
        .unwrap();
    let after = svix
        .message_attempt()
        .get(app.clone(), msg.id.clone(), a.id.clone(), None)
        .await
        .unwrap();
    assert_eq!(after.response, "");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_messages_attempts_and_backlog() {
    let server = server().await;
    let receiver = Receiver::start().await;
    receiver.script([Answer::status(500)]);
    let (app, _) = app_with_endpoint(&server, &receiver, "/m", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    for _ in 0..2 {
        svix.message()
            .create(
                app.clone(),
                MessageIn::new("a.b".into(), serde_json::json!({})),
                None,
            )
            .await
            .unwrap();
    }
    receiver.wait_for("/m", 3, Duration::from_secs(10)).await;
    let scrape = || async {
        server
            .http()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // The third attempt is counted, and its delivery leaves the backlog, once its
    // outcome is recorded, after the receiver saw it.
    let text = common::settle(scrape, |t| {
        t.contains("hookd_delivery_attempt_duration_seconds_count 3")
            && t.contains("hookd_deliveries_in_flight 0")
            && t.contains("hookd_deliveries_due 0")
            && t.contains("hookd_deliveries_scheduled 0")
    })
    .await;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("hookd_messages_accepted_total"), 2.0);
    assert_eq!(value(r#"hookd_delivery_attempts_total{outcome="success"}"#), 2.0);
    assert_eq!(value(r#"hookd_delivery_attempts_total{outcome="retry"}"#), 1.0);
    assert_eq!(value("hookd_delivery_attempt_duration_seconds_count"), 3.0);
    assert_eq!(value("hookd_deliveries_due"), 0.0);
    assert_eq!(value("hookd_deliveries_scheduled"), 0.0);
    assert_eq!(value("hookd_deliveries_in_flight"), 0.0);
    server.stop().await;
}

#[tokio::test]
async fn a_raw_payload_is_delivered_byte_for_byte() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, _) = app_with_endpoint(&server, &receiver, "/raw", EndpointIn::new(String::new())).await;
    let raw = "<xml>not json at all</xml>\n";
    let msg = MessageIn {
        transformations_params: Some(serde_json::json!({"rawPayload": raw})),
        ..MessageIn::new("a.b".into(), serde_json::json!({}))
    };
    server.svix().message().create(app, msg, None).await.unwrap();
    let got = receiver.wait_for("/raw", 1, Duration::from_secs(10)).await;
    assert_eq!(&got[0].body[..], raw.as_bytes());
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_hangs_up_after_sending_still_gets_its_message_delivered() {
    use tokio::io::AsyncWriteExt as _;
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, _) = app_with_endpoint(&server, &receiver, "/hangup", EndpointIn::new(String::new())).await;
    let body = r#"{"eventType": "a.b", "payload": {"left": "early"}}"#;
    let addr = server.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "POST /api/v1/app/{app}/msg HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        server.token,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    drop(stream); // never reads the 202
    let got = receiver.wait_for("/hangup", 1, Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap()["left"],
        "early"
    );
    server.stop().await;
}

#[tokio::test]
async fn deliveries_go_through_the_configured_proxy() {
    // The receiver plays an HTTP proxy: it gets the absolute-form request.
    let proxy = Receiver::start().await;
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_PROXY", proxy.url.as_str()),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("p".into()), None)
        .await
        .unwrap()
        .id;
    // A name that does not resolve here: only the proxy could reach it.
    svix.endpoint()
        .create(
            app.clone(),
            EndpointIn::new("http://hooks.example.invalid/via-proxy".into()),
            None,
        )
        .await
        .unwrap();
    svix.message()
        .create(app, MessageIn::new("a.b".into(), serde_json::json!({})), None)
        .await
        .unwrap();
    let got = proxy.wait_for("/via-proxy", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].headers["host"], "hooks.example.invalid");
    server.stop().await;
}

#[tokio::test]
async fn redirects_are_failures_bodies_are_capped_and_timeouts_recorded() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", ""),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
        ("HOOKD_DELIVERY_TIMEOUT", "1s"),
        ("HOOKD_SHUTDOWN_TIMEOUT", "1s"),
    ])
    .await;
    let svix = server.svix();
    let send = |path: &'static str, receiver: Receiver| {
        let svix = svix.clone();
        async move {
            // One application per case, so each message goes to one endpoint.
            let app = svix
                .application()
                .create(ApplicationIn::new(path.into()), None)
                .await
                .unwrap()
                .id;
            svix.endpoint()
                .create(
                    app.clone(),
                    EndpointIn::new(format!("{}{path}", receiver.url)),
                    None,
                )
                .await
                .unwrap();
            let msg = svix
                .message()
                .create(
                    app.clone(),
                    MessageIn::new("a.b".into(), serde_json::json!({})),
                    None,
                )
                .await
                .unwrap();
            let a = common::wait_for_attempts(&svix, &app, &msg.id, 1).await.remove(0);
            (a, receiver)
        }
    };

    let redirect = Receiver::start().await;
    redirect.answer_always(Answer {
        status: 302,
        delay: Duration::ZERO,
        headers: vec![("location", format!("{}/elsewhere", redirect.url))],
        body: None,
    });
    let (a, r) = send("/moved", redirect).await;
    assert_eq!((a.status, a.response_status_code), (MessageStatus::Fail, 302));
    assert!(
        r.received_on("/elsewhere").is_empty(),
        "the redirect was followed"
    );

    let big = Receiver::start().await;
    big.answer_always(Answer {
        status: 200,
        delay: Duration::ZERO,
        headers: vec![],
        body: Some("x".repeat(100_000)),
    });
    let (a, _) = send("/big", big).await;
    assert_eq!(a.status, MessageStatus::Success);
    assert_eq!(
        a.response.len(),
        20 * 1024,
        "the kept response is capped at 20 KB"
    );

    let slow = Receiver::start().await;
    slow.answer_always(Answer {
        status: 200,
        delay: Duration::from_secs(3),
        headers: vec![],
        body: None,
    });
    let (a, _) = send("/slow", slow).await;
    assert_eq!((a.status, a.response_status_code), (MessageStatus::Fail, 0));
    assert!(a.response.contains("timed out"), "{}", a.response);
    assert!(a.response_duration_ms < 2_500, "{}", a.response_duration_ms);
    server.stop().await;
}

#[tokio::test]
async fn https_only_refuses_plain_http_endpoints() {
    let server = TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_HTTPS_ONLY", "true"),
        ("HOOKD_RETRY_SCHEDULE", ""),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await;
    let receiver = Receiver::start().await;
    let (app, _) = app_with_endpoint(&server, &receiver, "/plain", EndpointIn::new(String::new())).await;
    let svix = server.svix();
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn::new("a.b".into(), serde_json::json!({})),
            None,
        )
        .await
        .unwrap();
    let attempt = common::wait_for_attempts(&svix, &app, &msg.id, 1).await.remove(0);
    assert_eq!(attempt.response_status_code, 0);
    assert!(
        attempt.response.contains("delivery_https_only"),
        "{}",
        attempt.response
    );
    assert!(receiver.received().is_empty());
    server.stop().await;
}

/// A recovery is a durable job: one whose node died mid-way (its lease ran out) is
/// taken over by a running node, from the progress its last step committed.
#[tokio::test]
async fn a_recovery_left_by_a_dead_node_is_taken_over() {
    let server = server().await;
    let store = server.running.as_ref().unwrap().store().clone();
    let org = store.find_org("test-org").await.unwrap().unwrap().id;
    let app = server
        .svix()
        .application()
        .create(ApplicationIn::new("jobs".into()), None)
        .await
        .unwrap();
    let state = serde_json::json!({
        "app": app.id, "endpoint": hookd_core::id::EndpointId::generate().to_string(), "since": "2026-01-01T00:00:00Z",
        "until": null, "requeued": 3
    });
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    // Made held by a node that died: its lease ran out a minute ago. (Queued unleased
    // and then claimed here, the running server's own runner could take it in between.)
    let job = store
        .create_job(
            &org,
            "endpoint.recover",
            state,
            t0,
            Some(hookd_store::JobLease {
                owner: "dead-node".into(),
                until: t0 + chrono::Duration::minutes(4),
            }),
        )
        .await
        .unwrap();
    // Nobody else may take it while the lease still held.
    assert!(
        store
            .claim_job(
                t0 + chrono::Duration::minutes(1),
                t0 + chrono::Duration::minutes(2),
                "other"
            )
            .await
            .unwrap()
            .is_none(),
        "a job is its holder's until its lease runs out"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = store.get_job(&org, &job.id).await.unwrap();
        if now.status == hookd_store::JobStatus::Finished {
            assert_eq!(now.state["requeued"], 3, "resumed from its committed progress");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job was not taken over: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}
