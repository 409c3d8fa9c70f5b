//! Three hookd processes on one PostgreSQL database, API calls spread across them,
//! thousands of messages to several endpoints, one node SIGKILLed midway.
//!
//! Checked: every acknowledged message reaches every endpoint at least once; the only
//! duplicates are deliveries that were in flight on the killed node (first received
//! before the kill); the attempt log holds exactly one successful attempt per delivery
//! and no two attempts of one delivery overlap in time (no two live nodes sent it at
//! once). Throughput is printed. Runs when `HOOKD_TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::process::{self, Process};
use common::receiver::{Answer, Receiver};

const NODES: usize = 3;
const MESSAGES: usize = 3000;
const ENDPOINTS: usize = 3;
/// Deliveries in flight per node at most (bounds the duplicates a kill may cause).
const CONCURRENCY: usize = 32;
/// API requests in flight at once.
const IN_FLIGHT_POSTS: usize = 24;

async fn start(db: &str, n: usize) -> Process {
    let concurrency = CONCURRENCY.to_string();
    process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", db),
            ("HOOKD_NODE_ID", &format!("node-{n}")),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
            ("HOOKD_RETRY_SCHEDULE", "200ms,500ms,1s,1s,1s"),
            ("HOOKD_DELIVERY_TIMEOUT", "2s"),
            ("HOOKD_DELIVERY_LEASE", "3s"),
            ("HOOKD_DELIVERY_CONCURRENCY", &concurrency),
            ("HOOKD_DELIVERY_POLL_INTERVAL", "200ms"),
            ("HOOKD_POSTGRES_POOL_SIZE", "8"),
        ],
    )
    .await
}

/// Posts one message, trying the nodes in turn from `first` (a dead node's connection
/// error moves on to the next); the same Idempotency-Key makes a retry safe. A retry of
/// a request that died with its node waits on the server until the dead claim is stale
/// (30 s), then runs.
async fn post_message(
    http: &reqwest::Client,
    bases: &[String],
    first: usize,
    token: &str,
    app: &str,
    i: usize,
) -> String {
    let key = format!("msg-{i}");
    // The same request each time (a retry with a different body would be refused).
    let body = serde_json::json!({
        "eventType": "order.created",
        "payload": {"i": i, "sentAt": Utc::now()},
    });
    for attempt in 0..bases.len() * 3 {
        let base = &bases[(first + attempt) % bases.len()];
        let sent = http
            .post(format!("{base}/api/v1/app/{app}/msg"))
            .bearer_auth(token)
            .header("idempotency-key", &key)
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status() == 202 => {
                let body: serde_json::Value = resp.json().await.unwrap();
                return body["id"].as_str().unwrap().to_owned();
            }
            Ok(resp) => panic!("message {i}: {} {}", resp.status(), resp.text().await.unwrap()),
            Err(_) => {} // that node is down: the next one
        }
    }
    panic!("message {i}: no node accepted it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_a_sigkill() {
    let Some(base_url) = hookd_store_postgres::testing::test_database_url() else {
        return;
    };
    let schema = hookd_store_postgres::testing::TestSchema::create(&base_url)
        .await
        .unwrap();
    let db = schema.url().to_owned();
    let receiver = Receiver::start().await;
    // Short answers keep deliveries in flight when the kill comes.
    receiver.answer_always(Answer {
        status: 200,
        delay: Duration::from_millis(5),
        headers: vec![],
        body: None,
    });

    // All three start at once on an empty schema: migration happens once.
    let (a, b, c) = tokio::join!(start(&db, 0), start(&db, 1), start(&db, 2));
    let mut nodes: Vec<Option<Process>> = vec![Some(a), Some(b), Some(c)];
    assert_eq!(nodes.len(), NODES);
    let bases: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().base.clone()).collect();
    let token = process::create_token(&db, "multinode");
    let http = reqwest::Client::new();
    let app: serde_json::Value = http
        .post(format!("{}/api/v1/app", bases[0]))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "multinode"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    let mut endpoints = Vec::new();
    for e in 0..ENDPOINTS {
        // Endpoints created on different nodes.
        let ep: serde_json::Value = http
            .post(format!("{}/api/v1/app/{app}/endpoint", bases[e % NODES]))
            .bearer_auth(&token)
            .json(&serde_json::json!({"url": format!("{}/e{e}", receiver.url)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        endpoints.push(ep["id"].as_str().unwrap().to_owned());
    }

    let started = Instant::now();
    let bases = Arc::new(bases);
    let mut acknowledged = HashSet::new();
    let mut posts = tokio::task::JoinSet::new();
    let mut killed_at = None;
    for i in 0..MESSAGES {
        if i == MESSAGES / 3 {
            // Midway: once deliveries are flowing, SIGKILL the third node.
            receiver.wait_for_total(300, Duration::from_secs(30)).await;
            nodes[NODES - 1].take().unwrap().kill(); // SIGKILL
            killed_at = Some(Instant::now());
            eprintln!(
                "killed node-{} after {} receipts",
                NODES - 1,
                receiver.received().len()
            );
        }
        while posts.len() >= IN_FLIGHT_POSTS {
            acknowledged.insert(posts.join_next().await.unwrap().unwrap());
        }
        let (http, bases, token, app) = (http.clone(), Arc::clone(&bases), token.clone(), app.clone());
        posts.spawn(async move { post_message(&http, &bases, i % NODES, &token, &app, i).await });
    }
    while let Some(id) = posts.join_next().await {
        acknowledged.insert(id.unwrap());
    }
    let posted_in = started.elapsed();
    eprintln!("posted {MESSAGES} messages in {posted_in:?}");
    assert_eq!(acknowledged.len(), MESSAGES, "every message acknowledged once");
    let killed_at = killed_at.unwrap();

    // At least once: every (message, endpoint).
    let deadline = Instant::now() + Duration::from_secs(120);
    let (got, unacknowledged) = loop {
        let got = receiver.received();
        let delivered: HashSet<(String, String)> = got
            .iter()
            .map(|r| {
                (
                    r.path.clone(),
                    r.headers["webhook-id"].to_str().unwrap().to_owned(),
                )
            })
            .collect();
        let unknown: HashSet<&String> = delivered
            .iter()
            .map(|(_, id)| id)
            .filter(|id| !acknowledged.contains(*id))
            .collect();
        // A request in flight to the killed node may have committed its message
        // without answering; its retry (same key) then ran again once the dead claim
        // went stale. At most one per request in flight at the kill.
        assert!(
            unknown.len() <= IN_FLIGHT_POSTS,
            "{} messages delivered that were never acknowledged",
            unknown.len()
        );
        let missing = (ENDPOINTS * (MESSAGES + unknown.len())).saturating_sub(delivered.len());
        if missing == 0 {
            let n = unknown.len();
            break (got, n);
        }
        assert!(Instant::now() < deadline, "{missing} deliveries never arrived");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();

    // Duplicates: only deliveries in flight on the killed node, i.e. first received
    // before the kill, and no more than it had in flight.
    let mut receipts: HashMap<(String, String), Vec<Instant>> = HashMap::new();
    for r in &got {
        receipts
            .entry((
                r.path.clone(),
                r.headers["webhook-id"].to_str().unwrap().to_owned(),
            ))
            .or_default()
            .push(r.at);
    }
    let duplicated: Vec<_> = receipts.iter().filter(|(_, at)| at.len() > 1).collect();
    for ((path, id), at) in &duplicated {
        let first = at.iter().min().unwrap();
        assert!(
            *first <= killed_at,
            "{path} {id} was received {} times, first after the kill",
            at.len()
        );
    }
    assert!(
        duplicated.len() <= CONCURRENCY,
        "{} duplicated deliveries; the killed node had at most {CONCURRENCY} in flight",
        duplicated.len()
    );

    // The attempt log, through a surviving node: one success per delivery, and no
    // delivery attempted by two nodes at once.
    let mut successes = 0;
    for ep in &endpoints {
        let mut per_msg: HashMap<String, Vec<(DateTime<Utc>, i64, i64)>> = HashMap::new();
        let mut iterator: Option<String> = None;
        loop {
            let mut url = format!("{}/api/v1/app/{app}/attempt/endpoint/{ep}?limit=250", bases[0]);
            if let Some(it) = &iterator {
                url.push_str(&format!("&iterator={it}"));
            }
            let page: serde_json::Value = http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            for a in page["data"].as_array().unwrap() {
                let at: DateTime<Utc> = a["timestamp"].as_str().unwrap().parse().unwrap();
                per_msg
                    .entry(a["msgId"].as_str().unwrap().to_owned())
                    .or_default()
                    .push((
                        at,
                        a["responseDurationMs"].as_i64().unwrap(),
                        a["status"].as_i64().unwrap(),
                    ));
            }
            if page["done"].as_bool().unwrap() {
                break;
            }
            iterator = page["iterator"].as_str().map(str::to_owned);
        }
        assert!(per_msg.len() >= MESSAGES, "every delivery to {ep} has attempts");
        for (msg, attempts) in &mut per_msg {
            let ok = attempts.iter().filter(|(_, _, status)| *status == 0).count();
            assert_eq!(ok, 1, "{msg} to {ep}: {ok} successful attempts recorded");
            successes += ok;
            // Attempt i runs [end - duration, end]; the log keeps milliseconds.
            attempts.sort();
            for pair in attempts.windows(2) {
                let (end_a, _, _) = pair[0];
                let (end_b, dur_b, _) = pair[1];
                let start_b = end_b - chrono::Duration::milliseconds(dur_b);
                assert!(
                    start_b + chrono::Duration::milliseconds(2) >= end_a,
                    "{msg} to {ep}: two attempts overlap ({pair:?})"
                );
            }
        }
    }
    assert!(successes >= ENDPOINTS * MESSAGES);

    let total = got.len();
    // Throughput while all three nodes worked (the tail waits on a dead request's
    // idempotency claim going stale, 30 s, which says nothing about speed).
    let first = got.iter().map(|r| r.at).min().unwrap();
    let before_kill = got.iter().filter(|r| r.at <= killed_at).count();
    eprintln!(
        "while 3 nodes ran: {before_kill} deliveries in {:.2}s = {:.0} deliveries/s (debug build, receiver in-process)",
        (killed_at - first).as_secs_f64(),
        before_kill as f64 / (killed_at - first).as_secs_f64()
    );
    eprintln!(
        "{NODES} nodes, {MESSAGES} messages x {ENDPOINTS} endpoints: posted in {:.1}s ({:.0} msg/s), \
         all {} deliveries in {:.1}s ({:.0} deliveries/s end to end), {} receipts, {} duplicates \
         (in flight on the killed node), {unacknowledged} messages committed by the killed node \
         without an answer",
        posted_in.as_secs_f64(),
        MESSAGES as f64 / posted_in.as_secs_f64(),
        ENDPOINTS * MESSAGES,
        elapsed.as_secs_f64(),
        (ENDPOINTS * MESSAGES) as f64 / elapsed.as_secs_f64(),
        total,
        total - ENDPOINTS * (MESSAGES + unacknowledged)
    );
    drop(nodes);
    drop(schema);
}

/// `serve --no-worker` and `serve --no-api` split the roles; the worker polls only
/// once a minute, so a message reaching it within seconds shows the API node's
/// `NOTIFY` woke it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_nodes_split_the_roles() {
    let Some(base_url) = hookd_store_postgres::testing::test_database_url() else {
        return;
    };
    let schema = hookd_store_postgres::testing::TestSchema::create(&base_url)
        .await
        .unwrap();
    let db = schema.url().to_owned();
    let receiver = Receiver::start().await;
    receiver.answer_always(Answer::status(200));
    let role = |flag: &'static str, n: usize| {
        let db = db.clone();
        async move {
            process::serve(
                &[flag],
                &[
                    ("HOOKD_DATABASE_URL", &db),
                    ("HOOKD_NODE_ID", &format!("role-{n}")),
                    ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
                    ("HOOKD_DELIVERY_POLL_INTERVAL", "60s"),
                ],
            )
            .await
        }
    };
    let api = role("--no-worker", 1).await;
    let worker = role("--no-api", 2).await;
    // The worker answers health and metrics only.
    let http = reqwest::Client::new();
    let refused = http
        .get(format!("{}/api/v1/app", worker.base))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("--no-api"), "{body}");
    let metrics = http.get(format!("{}/metrics", worker.base)).send().await.unwrap();
    assert_eq!(metrics.status(), 200);

    let token = process::create_token(&db, "roles");
    let app: serde_json::Value = http
        .post(format!("{}/api/v1/app", api.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "roles"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap();
    http.post(format!("{}/api/v1/app/{app}/endpoint", api.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": format!("{}/roles", receiver.url)}))
        .send()
        .await
        .unwrap();
    // Give the worker's first poll (at start) time to pass, then post.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = http
        .post(format!("{}/api/v1/app/{app}/msg", api.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"eventType": "a.b", "payload": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    // Delivered by the worker (the API node runs no engine), long before its next poll.
    receiver.wait_for("/roles", 1, Duration::from_secs(10)).await;
    drop((api, worker));
    drop(schema);
}
