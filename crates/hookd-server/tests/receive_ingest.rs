//! Ingest end to end: sources managed with the official `svix` SDK; signed requests
//! received at their URLs, kept byte for byte, deduplicated, forwarded to a real
//! receiver where they verify with `standardwebhooks`; replay; cron sources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{TestServer, status_of};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use svix::models::*;

async fn server() -> TestServer {
    TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", "200ms,400ms"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
        ("HOOKD_INGEST_MAX_BODY_BYTES", "65536"),
    ])
    .await
}

const GITHUB_SECRET: &str = "gh-secret-for-tests";

fn github_signature(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A source of `config` (raw API, so hookd's `options` can be set) with one destination
/// at `receiver`/`path`; returns (source JSON, destination secret).
async fn source_with_destination(
    server: &TestServer,
    receiver: &Receiver,
    path: &str,
    source: Value,
) -> (Value, String) {
    let res = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&source)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let source: Value = res.json().await.unwrap();
    let id = source["id"].as_str().unwrap().to_owned();
    let svix = server.svix();
    let ep = svix
        .ingest()
        .endpoint()
        .create(
            id.clone(),
            IngestEndpointIn::new(format!("{}{path}", receiver.url)),
            None,
        )
        .await
        .unwrap();
    let secret = svix.ingest().endpoint().get_secret(id, ep.id).await.unwrap().key;
    (source, secret)
}

async fn log(server: &TestServer, source: &Value, query: &str) -> Vec<Value> {
    let path = format!(
        "/ingest/api/v1/source/{}/log{query}",
        source["id"].as_str().unwrap()
    );
    let res = server.req(reqwest::Method::GET, &path).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.unwrap();
    page["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_svix_sdk_manages_sources_and_destinations() {
    let server = server().await;
    let svix = server.svix();
    let source = svix
        .ingest()
        .source()
        .create(
            IngestSourceIn {
                name: "GitHub org".into(),
                uid: Some("github-main".into()),
                metadata: None,
                config: IngestSourceInConfig::Github(GithubConfig {
                    secret: Some(GITHUB_SECRET.into()),
                }),
            },
            None,
        )
        .await
        .unwrap();
    assert!(
        source.id.starts_with("src_") && source.id.len() == 26,
        "{}",
        source.id
    );
    let ingest_url = source.ingest_url.clone().unwrap();
    assert!(
        ingest_url.starts_with(&format!("{}/in/", server.url)),
        "{ingest_url}"
    );
    assert!(matches!(source.config, IngestSourceOutConfig::Github(_)));
    // By uid, and in the list.
    let again = svix.ingest().source().get("github-main".into()).await.unwrap();
    assert_eq!(again.id, source.id);
    let list = svix.ingest().source().list(None).await.unwrap();
    assert_eq!(list.data.len(), 1);
    // The secret never comes back.
    let raw: Value = server
        .req(
            reqwest::Method::GET,
            &format!("/ingest/api/v1/source/{}", source.id),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!raw.to_string().contains(GITHUB_SECRET), "{raw}");

    // Replace (PUT) as a Stripe source; create by a new uid with PUT.
    let replaced = svix
        .ingest()
        .source()
        .upsert(
            source.id.clone(),
            IngestSourceIn {
                name: "Stripe".into(),
                uid: None,
                metadata: None,
                config: IngestSourceInConfig::Stripe(StripeConfig {
                    secret: "whsec_stripe".into(),
                }),
            },
        )
        .await
        .unwrap();
    assert_eq!(replaced.uid.as_deref(), Some("github-main"));
    assert!(matches!(replaced.config, IngestSourceOutConfig::Stripe(_)));
    let created = svix
        .ingest()
        .source()
        .upsert(
            "cron-nightly".into(),
            IngestSourceIn {
                name: "Nightly".into(),
                uid: None,
                metadata: None,
                config: IngestSourceInConfig::Cron(CronConfig::new("0 3 * * *".into(), "{\"job\":1}".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(created.uid.as_deref(), Some("cron-nightly"));

    // Destinations.
    let ep = svix
        .ingest()
        .endpoint()
        .create(
            source.id.clone(),
            IngestEndpointIn {
                uid: Some("archive".into()),
                throttle_rate: Some(5),
                headers: Some([("X-Team".to_owned(), "infra".to_owned())].into()),
                ..IngestEndpointIn::new("https://example.com/hooks".into())
            },
            None,
        )
        .await
        .unwrap();
    assert!(ep.id.starts_with("ep_"));
    assert_eq!(ep.throttle_rate, Some(5));
    let headers = svix
        .ingest()
        .endpoint()
        .get_headers(source.id.clone(), "archive".into())
        .await
        .unwrap();
    assert_eq!(headers.headers["X-Team"], "infra");
    let old = svix
        .ingest()
        .endpoint()
        .get_secret(source.id.clone(), ep.id.clone())
        .await
        .unwrap()
        .key;
    svix.ingest()
        .endpoint()
        .rotate_secret(
            source.id.clone(),
            ep.id.clone(),
            IngestEndpointSecretIn::new(),
            None,
        )
        .await
        .unwrap();
    let new = svix
        .ingest()
        .endpoint()
        .get_secret(source.id.clone(), ep.id.clone())
        .await
        .unwrap()
        .key;
    assert_ne!(old, new);
    let updated = svix
        .ingest()
        .endpoint()
        .upsert(
            source.id.clone(),
            "archive".into(),
            IngestEndpointUpsertIn {
                disabled: Some(true),
                ..IngestEndpointUpsertIn::new("https://example.com/v2".into())
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.url, "https://example.com/v2");
    assert_eq!(updated.disabled, Some(true));
    assert_eq!(
        svix.ingest()
            .endpoint()
            .list(source.id.clone(), None)
            .await
            .unwrap()
            .data
            .len(),
        1
    );
    // Destinations are not applications' endpoints: the source's app is hidden.
    assert!(svix.application().list(None).await.unwrap().data.is_empty());

    // Unsupported types and bad configs name the field.
    let res = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&json!({"name": "x1", "type": "stripe", "config": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["detail"][0]["loc"], json!(["body", "config", "secret"]));
    let res = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&json!({"name": "x2", "type": "generic-webhook", "options": {"dedup": {"header": "a", "jsonPointer": "/b"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    svix.ingest()
        .endpoint()
        .delete(source.id.clone(), ep.id)
        .await
        .unwrap();
    svix.ingest().source().delete(source.id.clone()).await.unwrap();
    let gone = svix.ingest().source().get(source.id).await.unwrap_err();
    assert_eq!(status_of(&gone), 404);
    let res = server.http().post(&ingest_url).body("{}").send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_signed_github_request_is_kept_and_forwarded_byte_for_byte() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, secret) = source_with_destination(
        &server,
        &receiver,
        "/gh",
        json!({"name": "GitHub", "type": "github", "config": {"secret": GITHUB_SECRET}}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap();
    // Odd spacing and key order must survive.
    let body = br#"{ "zen":"Keep it logically awesome." ,"hook_id": 1, "action" :"opened"}"#;
    let res = server
        .http()
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-1")
        .header("x-hub-signature-256", github_signature(body))
        .header("authorization", "Bearer must-not-travel")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let got = receiver.wait_for("/gh", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body.as_ref(), body);
    let h = &got[0].headers;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["x-github-event"], "issues");
    assert_eq!(h["x-hub-signature-256"], github_signature(body).as_str());
    assert!(h.get("authorization").is_none());
    // Signed with the destination's secret (Standard Webhooks).
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, h[name].clone());
    }
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(body, &headers)
        .unwrap();

    // The log keeps it all.
    let entries = log(&server, &source, "").await;
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e["status"], "accepted");
    assert_eq!(e["status_code"], 200);
    assert_eq!(e["method"], "POST");
    assert_eq!(e["client_addr"], "127.0.0.1");
    assert_eq!(e["headers"]["x-github-delivery"], "d-1");
    assert_eq!(e["payload"].as_str().unwrap().as_bytes(), body);
    assert!(e["msg_id"].as_str().unwrap().starts_with("msg_"));
    let raw = server
        .req(
            reqwest::Method::GET,
            &format!(
                "/ingest/api/v1/source/{}/log/{}/raw",
                source["id"].as_str().unwrap(),
                e["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "application/json");
    assert_eq!(raw.bytes().await.unwrap().as_ref(), body);

    // Tampered, unsigned: 401, logged as rejected, never forwarded.
    let tampered = br#"{ "zen":"Keep it logically awesome." ,"hook_id": 2, "action" :"opened"}"#;
    let res = server
        .http()
        .post(url)
        .header("x-hub-signature-256", github_signature(body))
        .body(tampered.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], "verification_failed");
    let res = server.http().post(url).body(body.to_vec()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let rejected = log(&server, &source, "?status=rejected").await;
    assert_eq!(rejected.len(), 2);
    assert!(
        rejected
            .iter()
            .all(|e| e["msg_id"].is_null() && !e["error_text"].as_str().unwrap().is_empty())
    );
    // Newest first.
    assert_eq!(rejected[0]["headers"].get("x-hub-signature-256"), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received_on("/gh").len(), 1);
}

#[tokio::test]
async fn standard_webhooks_senders_verify_with_the_official_signer() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let sender_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/sw",
        json!({"name": "Clerk", "type": "clerk", "config": {"secret": sender_secret}}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap();
    let body = r#"{"type":"user.created","data":{"id":"user_1"}}"#;
    let wh = standardwebhooks::Webhook::new(sender_secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signature = wh.sign("msg_sender_1", now, body.as_bytes()).unwrap();
    for (prefix, expect) in [("svix", 200), ("webhook", 200)] {
        let res = server
            .http()
            .post(url)
            .header(format!("{prefix}-id"), "msg_sender_1")
            .header(format!("{prefix}-timestamp"), now.to_string())
            .header(format!("{prefix}-signature"), &signature)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), expect, "{prefix}");
    }
    // Stale: signed ten minutes ago.
    let old = now - 600;
    let stale = wh.sign("msg_sender_2", old, body.as_bytes()).unwrap();
    let res = server
        .http()
        .post(url)
        .header("webhook-id", "msg_sender_2")
        .header("webhook-timestamp", old.to_string())
        .header("webhook-signature", stale)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let got = receiver.wait_for("/sw", 2, Duration::from_secs(10)).await;
    // The sender's own signature headers are replaced by hookd's.
    assert_ne!(got[0].headers["webhook-id"], "msg_sender_1");
}

#[tokio::test]
async fn duplicates_are_answered_but_forwarded_once_even_when_concurrent() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/dedup",
        json!({"name": "Dedup", "type": "generic-webhook",
               "options": {"dedup": {"header": "X-GitHub-Delivery", "windowSeconds": 3600},
                           "response": {"status": 202, "body": "thanks", "contentType": "text/plain"}}}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap().to_owned();
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (client, url) = (server.http(), url.clone());
        sends.spawn(async move {
            let delivery = if i < 10 { "same" } else { "other" };
            let res = client
                .post(&url)
                .header("x-github-delivery", delivery)
                .body(format!("{{\"n\":{i}}}"))
                .send()
                .await
                .unwrap();
            (res.status(), res.text().await.unwrap())
        });
    }
    for (status, text) in sends.join_all().await {
        assert_eq!(status, 202);
        assert_eq!(text, "thanks");
    }
    receiver.wait_for("/dedup", 2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received_on("/dedup").len(), 2, "one per distinct key");
    let dups = log(&server, &source, "?status=duplicate").await;
    assert_eq!(dups.len(), 10);
    let accepted = log(&server, &source, "?status=accepted").await;
    assert_eq!(accepted.len(), 2);
    for d in &dups {
        let key = &d["headers"]["x-github-delivery"];
        let original = accepted
            .iter()
            .find(|e| e["headers"]["x-github-delivery"] == *key)
            .unwrap();
        assert_eq!(d["duplicate_of"], original["id"]);
        assert!(d["msg_id"].is_null());
    }
}

#[tokio::test]
async fn an_oversize_body_gets_413_and_nothing_is_kept() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/big",
        json!({"name": "Big", "type": "generic-webhook"}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap();
    let res = server
        .http()
        .post(url)
        .body(vec![b'a'; 65_537])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], "payload_too_large");
    // Chunked, with no Content-Length: cut off at the limit all the same.
    let path = url.strip_prefix(&server.url).unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.url.strip_prefix("http://").unwrap())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let head =
        format!("POST {path} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..20 {
        let chunk = format!("2000\r\n{}\r\n", "b".repeat(8192));
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break; // the server may answer and close before the end
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Exactly at the limit is fine.
    let res = server
        .http()
        .post(url)
        .body(vec![b'c'; 65_536])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let entries = log(&server, &source, "").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["payload"].as_str().unwrap().len(), 65_536);
}

#[tokio::test]
async fn binary_bodies_and_other_methods_are_kept_exactly_and_replayed() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/bin",
        json!({"name": "Bin", "type": "generic-webhook", "options": {"allowedMethods": ["POST", "PUT"],
               "basicAuth": {"username": "sender", "password": "pw-1"}}}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap();
    let body: Vec<u8> = (0..=255u8).chain([0xff, 0xfe, 0x00]).collect();
    let res = server
        .http()
        .put(format!("{url}/orders/7?x=1&y=%20"))
        .basic_auth("sender", Some("pw-1"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = receiver.wait_for("/bin", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body.as_ref(), body.as_slice());
    assert_eq!(got[0].headers["content-type"], "application/octet-stream");
    let e = &log(&server, &source, "").await[0];
    assert_eq!(e["method"], "PUT");
    assert_eq!(e["path"], "/orders/7");
    assert_eq!(e["query"], "x=1&y=%20");
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(e["payload_base64"].as_str().unwrap())
            .unwrap(),
        body
    );

    // Wrong password, wrong method: refused and logged.
    let res = server
        .http()
        .post(url)
        .basic_auth("sender", Some("pw-2"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = server
        .http()
        .get(url)
        .basic_auth("sender", Some("pw-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(log(&server, &source, "?status=rejected").await.len(), 2);

    // Replay the accepted one: delivered again, same bytes, a new webhook-id.
    let sid = source["id"].as_str().unwrap();
    let res = server
        .req(
            reqwest::Method::POST,
            &format!(
                "/ingest/api/v1/source/{sid}/log/{}/replay",
                e["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let got = receiver.wait_for("/bin", 2, Duration::from_secs(10)).await;
    assert_eq!(got[1].body.as_ref(), body.as_slice());
    assert_ne!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    // A rejected request is never replayed.
    let rejected = &log(&server, &source, "?status=rejected").await[0];
    let res = server
        .req(
            reqwest::Method::POST,
            &format!(
                "/ingest/api/v1/source/{sid}/log/{}/replay",
                rejected["id"].as_str().unwrap()
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // Range replay: every accepted request since a minute ago, once more.
    let since = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let res = server
        .req(
            reqwest::Method::POST,
            &format!("/ingest/api/v1/source/{sid}/replay"),
        )
        .json(&json!({ "since": since }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["msgIds"].as_array().unwrap().len(), 1);
    assert_eq!(out["done"], true);
    receiver.wait_for("/bin", 3, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_rotated_source_url_keeps_working_for_the_grace_period_only() {
    let server = TestServer::start_with(&[("HOOKD_INGEST_TOKEN_GRACE", "1s")]).await;
    let svix = server.svix();
    let source = svix
        .ingest()
        .source()
        .create(
            IngestSourceIn {
                name: "Generic".into(),
                uid: None,
                metadata: None,
                config: IngestSourceInConfig::GenericWebhook,
            },
            None,
        )
        .await
        .unwrap();
    let old = source.ingest_url.unwrap();
    let new = svix
        .ingest()
        .source()
        .rotate_token(source.id.clone(), None)
        .await
        .unwrap()
        .ingest_url;
    assert_ne!(old, new);
    assert_eq!(
        server.http().post(&old).body("{}").send().await.unwrap().status(),
        200
    );
    assert_eq!(
        server.http().post(&new).body("{}").send().await.unwrap().status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(
        server.http().post(&old).body("{}").send().await.unwrap().status(),
        404
    );
    assert_eq!(
        server.http().post(&new).body("{}").send().await.unwrap().status(),
        200
    );
    assert_eq!(
        svix.ingest()
            .source()
            .get(source.id)
            .await
            .unwrap()
            .ingest_url
            .unwrap(),
        new
    );
}

/// The receive path remembers a source by its token for a second; this node's own
/// changes must reach the very next request.
#[tokio::test]
async fn a_changed_or_deleted_source_applies_to_its_next_request() {
    let server = server().await;
    let res = server
        .req(reqwest::Method::POST, "/ingest/api/v1/source")
        .json(&json!({"name": "GitHub", "type": "github", "config": {"secret": "first-secret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let source: Value = res.json().await.unwrap();
    let (id, url) = (
        source["id"].as_str().unwrap(),
        source["ingestUrl"].as_str().unwrap(),
    );
    let body = br#"{"zen":"x"}"#;
    let post = |signature: String| {
        server
            .http()
            .post(url)
            .header("x-github-event", "issues")
            .header("x-hub-signature-256", signature)
            .body(body.to_vec())
            .send()
    };
    let signed = |secret: &str| {
        let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    assert_eq!(post(signed("first-secret")).await.unwrap().status(), 200);
    let res = server
        .req(reqwest::Method::PATCH, &format!("/ingest/api/v1/source/{id}"))
        .json(&json!({"config": {"secret": "second-secret"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(post(signed("first-secret")).await.unwrap().status(), 401);
    assert_eq!(post(signed("second-secret")).await.unwrap().status(), 200);
    let res = server
        .req(reqwest::Method::DELETE, &format!("/ingest/api/v1/source/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(post(signed("second-secret")).await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_slack_url_check_is_answered_and_not_forwarded() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let secret = "slack-signing-secret";
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/slack",
        json!({"name": "Slack", "type": "slack", "config": {"secret": secret}}),
    )
    .await;
    let body = r#"{"token":"t","challenge":"ch-123","type":"url_verification"}"#;
    let ts = chrono::Utc::now().timestamp().to_string();
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let res = server
        .http()
        .post(source["ingestUrl"].as_str().unwrap())
        .header("x-slack-request-timestamp", &ts)
        .header(
            "x-slack-signature",
            format!("v0={}", hex::encode(mac.finalize().into_bytes())),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let answer: Value = res.json().await.unwrap();
    assert_eq!(answer["challenge"], "ch-123");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received_on("/slack").is_empty());
    assert_eq!(log(&server, &source, "").await[0]["status"], "accepted");
}

#[tokio::test]
async fn a_cron_source_fires_once_per_schedule_slot() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/cron",
        json!({"name": "Every 5 min", "type": "cron",
               "config": {"schedule": "*/5 * * * *", "payload": "{\"tick\":true}"}}),
    )
    .await;
    assert_eq!(source["config"]["schedule"], "*/5 * * * *");
    let store = server.running.as_ref().unwrap().store();
    let retention = Duration::from_secs(3600);
    let later = chrono::Utc::now() + chrono::Duration::minutes(6);
    let step = hookd_server::service::cron::cron_step(store.as_ref(), retention, later)
        .await
        .unwrap();
    assert_eq!(step.fired, 1);
    // The same slot again (another node, or this one): nothing.
    let step = hookd_server::service::cron::cron_step(store.as_ref(), retention, later)
        .await
        .unwrap();
    assert_eq!(step.fired, 0);
    assert!(step.next.unwrap() > later);
    server.running.as_ref().unwrap().dispatcher().unwrap().wake();
    let got = receiver.wait_for("/cron", 1, Duration::from_secs(10)).await;
    assert_eq!(got[0].body.as_ref(), b"{\"tick\":true}");
    assert_eq!(got[0].headers["content-type"], "application/json");
}

/// A range replay is a durable job: one whose node died midway — it had forwarded the
/// first request but not saved that step — is finished by a running node, and the
/// first request is not forwarded a second time.
#[tokio::test]
async fn a_range_replay_left_by_a_dead_node_is_finished_once() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/again",
        json!({"name": "Again", "type": "generic-webhook"}),
    )
    .await;
    let url = source["ingestUrl"].as_str().unwrap();
    for i in 0..3 {
        let res = server
            .http()
            .post(url)
            .body(format!("{{\"i\":{i}}}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    receiver.wait_for("/again", 3, Duration::from_secs(10)).await;
    let mut entries = log(&server, &source, "").await;
    entries.reverse(); // oldest first, as a replay goes
    assert_eq!(entries.len(), 3);

    let store = server.running.as_ref().unwrap().store().clone();
    let org = store.find_org("test-org").await.unwrap().unwrap().id;
    let stored = store
        .get_source(&org, source["id"].as_str().unwrap())
        .await
        .unwrap();
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let state = json!({
        "source": stored.id, "endpoint": null,
        "since": (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339(),
        "until": chrono::Utc::now().to_rfc3339(), "after": null,
        "msg_ids": [], "deliveries": 0, "done": true, "next_since": null
    });
    // A node holds it and dies: its lease runs out in a second...
    let job = store
        .create_job(
            &org,
            "source.replay",
            state,
            t0,
            Some(hookd_store::JobLease {
                owner: "dead-node".into(),
                until: chrono::Utc::now() + chrono::Duration::seconds(1),
            }),
        )
        .await
        .unwrap();
    // ...after forwarding the first request, a message its step would make again.
    let first = entries[0]["id"].as_str().unwrap();
    let mut forward =
        hookd_server::service::message::new_message("ingest.generic-webhook".parse().unwrap(), String::new());
    forward.event_id = Some(format!("replay.{}.{first}", job.id).parse().unwrap());
    forward.forward = Some(hookd_store::ForwardedRequest {
        log_id: first.parse().unwrap(),
        headers: Vec::new(),
    });
    let (already, _) = store.create_message(&org, &stored.app_id, forward).await.unwrap();

    let finished = common::settle(
        || async { store.get_job(&org, &job.id).await.unwrap() },
        |j| j.status != hookd_store::JobStatus::Running,
    )
    .await;
    assert_eq!(finished.status, hookd_store::JobStatus::Finished, "{finished:?}");
    let ids: Vec<&str> = finished.state["msg_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(
        finished.state["deliveries"], 3,
        "the delivery made before the crash is counted"
    );
    assert_eq!(
        ids[0],
        already.id.as_str(),
        "the first request was not forwarded twice"
    );
    // The three originals, the one forwarded before the crash, and the other two.
    let got = receiver.wait_for("/again", 6, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_on("/again").len(), 6);
    let mut bodies: Vec<&[u8]> = got[3..].iter().map(|r| r.body.as_ref()).collect();
    bodies.sort();
    assert_eq!(bodies, [&b"{\"i\":0}"[..], b"{\"i\":1}", b"{\"i\":2}"]);
}

#[tokio::test]
async fn a_github_source_filtered_on_the_event_header_forwards_only_pushes_to_main() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/all-pushes",
        json!({"name": "GitHub", "type": "github", "config": {"secret": GITHUB_SECRET},
               "options": {"filter": {"headers": {"X-GitHub-Event": "push"}}}}),
    )
    .await;
    let id = source["id"].as_str().unwrap();
    // A second destination that only wants pushes to main.
    let res = server
        .req(
            reqwest::Method::POST,
            &format!("/ingest/api/v1/source/{id}/endpoint"),
        )
        .json(&json!({"url": format!("{}/main", receiver.url),
                      "filter": {"body": {"ref": "refs/heads/main"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let main: Value = res.json().await.unwrap();
    assert_eq!(main["filter"], json!({"body": {"ref": "refs/heads/main"}}));
    let url = source["ingestUrl"].as_str().unwrap();
    let send = |event: &'static str, body: &'static [u8]| {
        server
            .http()
            .post(url)
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-hub-signature-256", github_signature(body))
            .body(body.to_vec())
            .send()
    };
    let metric = |text: String| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("hookd_endpoints_filtered_out_total{target=\"received\"} "))
            .expect("the filtered-out counter is in /metrics")
            .parse()
            .unwrap()
    };
    let scrape = || async {
        let res = server.http().get(server.url("/metrics")).send().await.unwrap();
        metric(res.text().await.unwrap())
    };
    let before = scrape().await;
    let push_main = br#"{"ref":"refs/heads/main","n":1}"#;
    let push_dev = br#"{"ref":"refs/heads/dev","n":2}"#;
    let issue = br#"{"action":"opened","n":3}"#;
    for (event, body) in [
        ("push", &push_main[..]),
        ("push", &push_dev[..]),
        ("issues", &issue[..]),
    ] {
        let res = send(event, body).await.unwrap();
        assert_eq!(
            res.status(),
            200,
            "a filtered request is answered like an accepted one"
        );
    }
    let all = receiver.wait_for("/all-pushes", 2, Duration::from_secs(10)).await;
    let main_got = receiver.wait_for("/main", 1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver.received_on("/all-pushes").len(), 2);
    assert_eq!(receiver.received_on("/main").len(), 1);
    let mut bodies: Vec<&[u8]> = all.iter().map(|r| r.body.as_ref()).collect();
    bodies.sort();
    assert_eq!(bodies, [&push_dev[..], &push_main[..]]);
    assert_eq!(main_got[0].body.as_ref(), &push_main[..]);
    // The push to dev left `/main` out (per-process count: other tests may add).
    assert!(scrape().await > before);
    let filtered = log(&server, &source, "?status=filtered").await;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["payload"], std::str::from_utf8(issue).unwrap());
    assert!(filtered[0]["msg_id"].is_null());
    assert_eq!(log(&server, &source, "?status=accepted").await.len(), 2);

    // Trying the destination's filter on samples, and a new one before saving it.
    let test = |body: Value| {
        server
            .req(
                reqwest::Method::POST,
                &format!(
                    "/ingest/api/v1/source/{id}/endpoint/{}/filter/test",
                    main["id"].as_str().unwrap()
                ),
            )
            .json(&body)
            .send()
    };
    let r: Value = test(json!({"payload": {"ref": "refs/heads/main"}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["matched"], true);
    let r: Value = test(json!({"payload": {"ref": "refs/tags/v1"}}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["matched"], false);
    assert_eq!(r["pointer"], "/body/ref");
    assert_eq!(r["found"], "refs/tags/v1");
    let r: Value = test(
        json!({"filter": {"headers": {"x-github-event": {"$in": ["push", "ping"]}}},
                               "headers": {"X-GitHub-Event": "ping"}}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(r["matched"], true);
    let res = test(json!({"eventType": "x"})).await.unwrap();
    assert_eq!(res.status(), 422, "a destination's sample has no event type");

    // Hostile filters are refused with 422 naming the bad part.
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    for (filter, loc_end) in [
        (json!({"body": deep}), "a"),
        (json!({"body": {"a": {"$regex": "(unclosed"}}}), "$regex"),
        (
            json!({"body": {"a": {"$in": (0..1000).collect::<Vec<_>>()}}}),
            "$in",
        ),
        (json!({"eventType": "x"}), "eventType"),
    ] {
        let res = server
            .req(reqwest::Method::PATCH, &format!("/ingest/api/v1/source/{id}"))
            .json(&json!({"options": {"filter": filter.clone()}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422, "{filter}");
        let res = server
            .req(
                reqwest::Method::POST,
                &format!("/ingest/api/v1/source/{id}/endpoint"),
            )
            .json(&json!({"url": format!("{}/x", receiver.url), "filter": filter}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        let err: Value = res.json().await.unwrap();
        let loc = err["detail"][0]["loc"].as_array().unwrap();
        assert_eq!(&loc[..2], &[json!("body"), json!("filter")]);
        assert_eq!(loc.last().unwrap(), loc_end, "{err}");
    }
}

#[tokio::test]
async fn a_destination_transformation_reshapes_a_received_form_into_json() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, secret) = source_with_destination(
        &server,
        &receiver,
        "/forms",
        json!({"name": "Forms", "type": "generic-webhook"}),
    )
    .await;
    let id = source["id"].as_str().unwrap();
    let svix = server.svix();
    let dests = svix.ingest().endpoint().list(id.to_owned(), None).await.unwrap();
    let dest = dests.data[0].id.clone();
    let transformation = || svix.ingest().endpoint().transformation();
    let got = transformation().get(id.to_owned(), dest.clone()).await.unwrap();
    assert_eq!(got.enabled, Some(false));
    assert_eq!(got.code, None);

    // A form post becomes a JSON document built from the body, the query, a header
    // and the path it was posted to.
    let code = r#"function handler(webhook) {
        const r = webhook.request;
        const form = {};
        for (const pair of webhook.payload.split("&")) {
            const [k, v] = pair.split("=");
            form[decodeURIComponent(k)] = decodeURIComponent(v);
        }
        webhook.payload = { form, campaign: r.query.ref, kind: r.headers["x-form"], path: r.path };
        webhook.method = "PUT";
        return webhook;
    }"#;
    let mut patch = IngestEndpointTransformationPatch::new();
    patch.code = js_option::JsOption::Some(code.to_owned());
    patch.enabled = Some(true);
    transformation()
        .patch(id.to_owned(), dest.clone(), patch)
        .await
        .unwrap();
    let got = transformation().get(id.to_owned(), dest.clone()).await.unwrap();
    assert_eq!(got.enabled, Some(true));
    assert_eq!(got.code.as_deref(), Some(code));

    let form = "name=Ada%20Lovelace&plan=pro";
    let url = format!("{}/signup?ref=spring", source["ingestUrl"].as_str().unwrap());
    let res = server
        .http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-form", "signup")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = receiver.wait_for("/forms", 1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(r.method, reqwest::Method::PUT);
    assert_eq!(r.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body,
        json!({"form": {"name": "Ada Lovelace", "plan": "pro"}, "campaign": "spring",
               "kind": "signup", "path": "/signup"})
    );
    // Signed over the transformed body.
    let wh = standardwebhooks::Webhook::new(&secret).unwrap();
    wh.verify(&r.body, &r.headers).unwrap();
    // The log still keeps the request exactly as it came.
    let entries = log(&server, &source, "").await;
    assert_eq!(entries[0]["payload"], form);

    // Switched off, the next request is forwarded as it came.
    let mut patch = IngestEndpointTransformationPatch::new();
    patch.enabled = Some(false);
    transformation().patch(id.to_owned(), dest, patch).await.unwrap();
    let res = server
        .http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=Grace")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = receiver.wait_for("/forms", 2, Duration::from_secs(10)).await;
    assert_eq!(got[1].method, reqwest::Method::POST);
    assert_eq!(got[1].body.as_ref(), b"name=Grace");
    assert_eq!(
        got[1].headers["content-type"],
        "application/x-www-form-urlencoded"
    );
}

#[tokio::test]
async fn a_cron_firing_that_fails_the_sources_filter_is_logged_filtered_and_not_forwarded() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (source, _) = source_with_destination(
        &server,
        &receiver,
        "/cron",
        json!({"name": "Paused ticks", "type": "cron",
               "config": {"schedule": "*/5 * * * *", "payload": "{\"tick\":true}"},
               "options": {"filter": {"body": {"tick": false}}}}),
    )
    .await;
    let store = server.running.as_ref().unwrap().store();
    let later = chrono::Utc::now() + chrono::Duration::minutes(6);
    hookd_server::service::cron::cron_step(store.as_ref(), Duration::from_secs(3600), later)
        .await
        .unwrap();
    server.running.as_ref().unwrap().dispatcher().unwrap().wake();
    let filtered = log(&server, &source, "?status=filtered").await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0]["payload"], "{\"tick\":true}");
    assert!(filtered[0]["msg_id"].is_null());
    assert!(log(&server, &source, "?status=accepted").await.is_empty());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(receiver.received_on("/cron").is_empty());
}

/// One source of every type hookd verifies, as the HTTP API takes it.
fn every_type() -> Vec<(&'static str, Value)> {
    let whsec = json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
    let mut all = vec![
        ("generic-webhook", json!(null)),
        ("cron", json!({"schedule": "0 * * * *", "payload": "{}"})),
        ("github", json!({"secret": "s"})),
        ("stripe", json!({"secret": "whsec_x"})),
        ("shopify", json!({"secret": "s"})),
        ("slack", json!({"secret": "s"})),
        ("twilio", json!({"authToken": "t"})),
        ("zoom", json!({"secret": "s"})),
        ("paddle", json!({"secret": "s"})),
        ("linear", json!({"secret": "s"})),
        (
            "square",
            json!({"signatureKey": "k", "notificationUrl": "https://example.com/sq"}),
        ),
    ];
    for t in hookd_core::ingest::STANDARD_WEBHOOKS_TYPES {
        all.push((t, whsec.clone()));
    }
    all
}

#[tokio::test]
async fn the_sdk_lists_and_gets_sources_of_every_type_and_keeps_hookd_presets_through_a_put() {
    let server = server().await;
    let svix = server.svix();
    let mut ids = Vec::new();
    for (i, (kind, config)) in every_type().into_iter().enumerate() {
        let (status, src) = common::call(
            &server,
            reqwest::Method::POST,
            "/ingest/api/v1/source",
            Some(json!({"name": format!("src-{kind}"), "uid": format!("u{i}"), "type": kind, "config": config})),
        )
        .await;
        assert_eq!(status, 201, "{kind}: {src}");
        if hookd_core::ingest::HOOKD_ONLY_TYPES.contains(&kind) {
            assert_eq!(src["type"], "generic-webhook", "{kind}: {src}");
            assert_eq!(src["options"]["verify"]["type"], kind, "{kind}: {src}");
            assert!(!src.to_string().contains("\"t\""), "no secret answered: {src}");
        } else {
            assert_eq!(src["type"], kind);
        }
        ids.push((kind, src["id"].as_str().unwrap().to_owned()));
    }
    // Every one parses in the official SDK, listed (in pages) and one by one.
    let mut listed = 0;
    let mut iterator = None;
    loop {
        let page = svix
            .ingest()
            .source()
            .list(Some(svix::api::IngestSourceListOptions {
                limit: Some(10),
                iterator: iterator.clone(),
                ..Default::default()
            }))
            .await
            .unwrap();
        listed += page.data.len();
        if page.done {
            break;
        }
        iterator = page.iterator;
    }
    assert_eq!(listed, ids.len());
    for (kind, id) in &ids {
        let got = svix.ingest().source().get(id.clone()).await;
        assert!(got.is_ok(), "{kind}: {got:?}");
    }

    // The SDK writes a twilio source back as it read it (generic-webhook, no config,
    // no options): the preset stays, so unsigned requests are still refused.
    let twilio = &ids.iter().find(|(k, _)| *k == "twilio").unwrap().1;
    let read = svix.ingest().source().get(twilio.clone()).await.unwrap();
    let written = svix
        .ingest()
        .source()
        .upsert(
            twilio.clone(),
            IngestSourceIn {
                name: "renamed by the sdk".into(),
                uid: read.uid.clone(),
                metadata: None,
                config: IngestSourceInConfig::GenericWebhook,
            },
        )
        .await
        .unwrap();
    assert_eq!(written.name, "renamed by the sdk");
    let (_, after) = common::call(
        &server,
        reqwest::Method::GET,
        &format!("/ingest/api/v1/source/{twilio}"),
        None,
    )
    .await;
    assert_eq!(after["options"]["verify"]["type"], "twilio", "{after}");
    let url = written.ingest_url.unwrap();
    let refused = reqwest::Client::new()
        .post(&url)
        .form(&[("a", "b")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "the twilio check still runs");

    // options.verify is how such a preset is given with type generic-webhook, and a
    // PUT with options but no verify (and generic-webhook) makes it generic.
    let (status, made) = common::call(
        &server,
        reqwest::Method::POST,
        "/ingest/api/v1/source",
        Some(json!({"name": "via options", "type": "generic-webhook",
            "options": {"verify": {"type": "paddle", "config": {"secret": "p"}}, "allowedMethods": ["POST"]}})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["options"]["verify"]["type"], "paddle");
    assert_eq!(made["options"]["allowedMethods"], json!(["POST"]));
    for (body, loc) in [
        (
            json!({"name": "x1", "type": "stripe", "config": {"secret": "s"}, "options": {"verify": {"type": "paddle", "config": {"secret": "p"}}}}),
            json!(["body", "options", "verify"]),
        ),
        (
            json!({"name": "x2", "type": "generic-webhook", "options": {"verify": {"type": "stripe", "config": {"secret": "s"}}}}),
            json!(["body", "options", "verify", "type"]),
        ),
        (
            json!({"name": "x3", "type": "generic-webhook", "options": {"verify": {"type": "paddle"}}}),
            json!(["body", "options", "verify", "config", "secret"]),
        ),
    ] {
        let (status, err) = common::call(
            &server,
            reqwest::Method::POST,
            "/ingest/api/v1/source",
            Some(body),
        )
        .await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["detail"][0]["loc"], loc, "{err}");
    }
    let id = made["id"].as_str().unwrap();
    let (status, plain) = common::call(
        &server,
        reqwest::Method::PUT,
        &format!("/ingest/api/v1/source/{id}"),
        Some(
            json!({"name": "via options", "type": "generic-webhook", "options": {"allowedMethods": ["PUT"]}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["options"], json!({"allowedMethods": ["PUT"]}));
    server.stop().await;
}
