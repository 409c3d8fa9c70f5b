//! Payload filters on sending: an endpoint's `filter` decides by content which messages
//! it gets (no delivery at all for the others), survives the official SDK's update,
//! is refused with a 422 naming the bad part, and can be tried on samples.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use common::receiver::Receiver;
use reqwest::Method;
use serde_json::{Value, json};
use svix::models::*;

async fn server() -> TestServer {
    TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await
}

/// `hookd_endpoints_filtered_out_total{target}` as `/metrics` shows it now (counted
/// per process: other tests running beside this one may add to it).
async fn filtered_out(server: &TestServer, target: &str) -> u64 {
    let text = server
        .http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("hookd_endpoints_filtered_out_total{{target=\"{target}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no {line} in /metrics:\n{text}"))
        .parse()
        .unwrap()
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn an_endpoint_gets_only_the_messages_its_filter_matches() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("billing".into()), None)
        .await
        .unwrap();
    let base = format!("/api/v1/app/{}/endpoint", app.id);
    let (status, big) = json_of(
        server
            .req(Method::POST, &base)
            .json(&json!({"url": format!("{}/big", receiver.url), "uid": "big",
                          "filter": {"body": {"amount": {"$gte": 100}, "currency": {"$in": ["EUR", "USD"]}},
                                     "eventType": {"$startsWith": "invoice."}}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{big}");
    assert_eq!(big["filter"]["body"]["amount"], json!({"$gte": 100}));
    let all = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn::new(format!("{}/all", receiver.url)),
            None,
        )
        .await
        .unwrap();

    let filtered_before = filtered_out(&server, "sent").await;
    let mut ids = Vec::new();
    for (event, amount, currency) in [
        ("invoice.paid", 150, "EUR"),
        ("invoice.paid", 50, "EUR"),
        ("invoice.paid", 500, "JPY"),
        ("refund.made", 900, "USD"),
        ("invoice.failed", 100, "USD"),
    ] {
        let msg = svix
            .message()
            .create(
                app.id.clone(),
                MessageIn::new(event.into(), json!({"amount": amount, "currency": currency})),
                None,
            )
            .await
            .unwrap();
        ids.push(msg.id);
    }
    receiver.wait_for("/all", 5, Duration::from_secs(10)).await;
    let got = receiver.wait_for("/big", 2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_on("/big").len(), 2);
    let mut amounts: Vec<i64> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["amount"]
                .as_i64()
                .unwrap()
        })
        .collect();
    amounts.sort();
    assert_eq!(amounts, [100, 150]);
    // Three messages left `big` out, and /metrics counted them.
    assert!(filtered_out(&server, "sent").await >= filtered_before + 3);
    // A filtered-out endpoint has no delivery for the message, not a skipped one.
    let (_, dest) = json_of(
        server
            .req(
                Method::GET,
                &format!("/api/v1/app/{}/msg/{}/endpoint", app.id, ids[1]),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let reached: Vec<&str> = dest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(reached, [all.id.as_str()]);

    // The SDK's upsert (PUT) cannot send `filter`: the filter is kept.
    let updated = svix
        .endpoint()
        .upsert(
            app.id.clone(),
            "big".into(),
            EndpointUpsertIn {
                description: Some("only large invoices".into()),
                ..EndpointUpsertIn::new(format!("{}/big", receiver.url))
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "only large invoices");
    let (_, fetched) = json_of(
        server
            .req(Method::GET, &format!("{base}/big"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(fetched["filter"]["eventType"], json!({"$startsWith": "invoice."}));

    // Trying it on samples: matched, or the clause that failed and what it found.
    let test = |body: Value| {
        server
            .req(Method::POST, &format!("{base}/big/filter/test"))
            .json(&body)
            .send()
    };
    let (status, r) = json_of(
        test(json!({"eventType": "invoice.paid", "payload": {"amount": 120, "currency": "USD"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, &r["matched"]), (200, &json!(true)), "{r}");
    let (_, r) = json_of(
        test(json!({"eventType": "invoice.paid", "payload": {"amount": 20, "currency": "USD"}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r["matched"], false);
    assert_eq!(r["pointer"], "/body/amount/$gte");
    assert_eq!(r["found"], 20);
    let (_, r) = json_of(
        test(json!({"filter": {"channels": ["eu"]}, "channels": ["eu", "vip"]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        r["matched"], true,
        "a filter given is tried instead of the saved one"
    );
    let (status, _) = json_of(test(json!({"headers": {"a": "b"}})).await.unwrap()).await;
    assert_eq!(status, 422, "a sent message has no headers");
    let (status, r) = json_of(
        server
            .req(Method::POST, &format!("{base}/{}/filter/test", all.id))
            .json(&json!({"payload": {}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{r}");

    // PATCH null removes it: the endpoint gets everything again.
    let (status, patched) = json_of(
        server
            .req(Method::PATCH, &format!("{base}/big"))
            .json(&json!({"filter": null}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(patched.get("filter").is_none(), "{patched}");
    svix.message()
        .create(
            app.id.clone(),
            MessageIn::new("refund.made".into(), json!({"amount": 1})),
            None,
        )
        .await
        .unwrap();
    receiver.wait_for("/big", 3, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_pointer_of_the_bad_part() {
    let server = server().await;
    let app = server
        .svix()
        .application()
        .create(ApplicationIn::new("strict".into()), None)
        .await
        .unwrap();
    let base = format!("/api/v1/app/{}/endpoint", app.id);
    let mut deep = json!(1);
    for _ in 0..30 {
        deep = json!({ "x": deep });
    }
    let wide: serde_json::Map<String, Value> = (0..300).map(|i| (format!("f{i}"), json!(i))).collect();
    for (filter, loc) in [
        (
            json!({"body": {"total": {"$gt": true}}}),
            vec!["body", "total", "$gt"],
        ),
        (
            json!({"body": {"a/b": {"$regex": "(["}}}),
            vec!["body", "a/b", "$regex"],
        ),
        (json!({"headers": {"x": "1"}}), vec!["headers"]),
        (json!({"body": {"a": {"$nope": 1}}}), vec!["body", "a", "$nope"]),
        (
            json!({"$or": [{"body": {}}, {"body": {"a": {"$ref": "query.a"}}}]}),
            vec!["$or", "1", "body", "a", "$ref"],
        ),
        (json!([1, 2]), vec![]),
    ] {
        let (status, err) = json_of(
            server
                .req(Method::POST, &base)
                .json(&json!({"url": "https://example.com/hook", "filter": filter}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["code"], "validation");
        let mut want = vec!["body", "filter"];
        want.extend(loc);
        assert_eq!(err["detail"][0]["loc"], json!(want), "{err}");
    }
    for filter in [json!({ "body": deep }), json!({ "body": wide })] {
        let (status, err) = json_of(
            server
                .req(Method::POST, &base)
                .json(&json!({"url": "https://example.com/hook", "filter": filter}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{err}");
    }
    let (_, list) = json_of(server.req(Method::GET, &base).send().await.unwrap()).await;
    assert_eq!(list["data"], json!([]), "nothing was created");
}
