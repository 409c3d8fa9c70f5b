//! A hostile receiver beside a healthy one, while hookd is SIGKILLed twice under load.
//!
//! The hostile receiver is a raw TCP server: for each message its first two attempts
//! get one of a 500, a 503 with `Retry-After`, a hang past `delivery_timeout`, a reset
//! connection, a malformed answer or a slow answer; the third gets a 200. Messages are
//! posted throughout; hookd is killed without warning twice and restarted on the same
//! database. Every acknowledged message must reach both receivers with a 2xx, and the
//! healthy receiver's deliveries must not wait behind the hostile one's (its median
//! event-to-arrival time stays under the delivery timeout the hostile one burns).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{self, Process};
use common::receiver::Receiver;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(2);

async fn start(db: &str) -> Process {
    process::serve(
        &[],
        &[
            ("HOOKD_DATABASE_URL", db),
            ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
            (
                "HOOKD_RETRY_SCHEDULE",
                "200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms",
            ),
            ("HOOKD_DELIVERY_TIMEOUT", "2s"),
            ("HOOKD_DELIVERY_LEASE", "3s"),
            ("HOOKD_DELIVERY_POLL_INTERVAL", "100ms"),
            ("HOOKD_NODE_ID", "node-1"),
        ],
    )
    .await
}

/// What the hostile receiver saw: attempts per `webhook-id`, and the ids it answered 200.
#[derive(Default)]
struct Hostile {
    attempts: HashMap<String, u32>,
    accepted: HashSet<String>,
    misbehaved: HashMap<&'static str, usize>,
}

const WAYS: [&str; 6] = ["500", "503", "hang", "reset", "malformed", "slow"];

async fn hostile_receiver() -> (String, Arc<Mutex<Hostile>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hostile", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Hostile::default()));
    let shared = Arc::clone(&state);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(serve_hostile(tcp, Arc::clone(&shared)));
        }
    });
    (url, state)
}

/// Reads one request (head and `content-length` body); its `webhook-id`.
async fn read_request(tcp: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + length {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    header("webhook-id")
}

async fn serve_hostile(mut tcp: TcpStream, state: Arc<Mutex<Hostile>>) {
    while let Some(id) = read_request(&mut tcp).await {
        let way = {
            let mut s = state.lock().unwrap();
            let attempt = {
                let n = s.attempts.entry(id.clone()).or_default();
                *n += 1;
                *n
            };
            if attempt >= 3 {
                s.accepted.insert(id.clone());
                None
            } else {
                let pick = id.bytes().map(u32::from).sum::<u32>() + attempt;
                let way = WAYS[pick as usize % WAYS.len()];
                *s.misbehaved.entry(way).or_default() += 1;
                Some(way)
            }
        };
        let answer: &[u8] = match way {
            None => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            Some("500") => b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\n\r\nboom",
            Some("503") => b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n",
            Some("hang") => {
                tokio::time::sleep(DELIVERY_TIMEOUT + Duration::from_secs(1)).await;
                return;
            }
            Some("reset") => {
                // Linger 0: the close is a TCP reset, not a clean end. (Deprecated
                // because a non-zero linger blocks on drop; zero never does.)
                #[allow(deprecated)]
                let _ = tcp.set_linger(Some(Duration::ZERO));
                return;
            }
            Some("malformed") => b"HTTP/1.1 two hundred\r\n\x00\x01garbage\r\n\r\n",
            Some(_) => {
                tokio::time::sleep(Duration::from_millis(800)).await;
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            }
        };
        if tcp.write_all(answer).await.is_err() || matches!(way, Some("malformed")) {
            return;
        }
        if way == Some("slow") {
            // A slow 200 is a success: this message is done.
            state.lock().unwrap().accepted.insert(id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_receiver_and_two_sigkills_lose_nothing_and_leave_the_healthy_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::TestDatabase::new(dir.path()).await;
    let healthy = Receiver::start().await;
    let (hostile_url, hostile) = hostile_receiver().await;

    let mut hookd = start(&db.url).await;
    let token = process::create_token(&db.url, "hostile");
    let http = reqwest::Client::new();
    let base = Arc::new(Mutex::new(hookd.base.clone()));
    let call = |path: String, body: serde_json::Value| {
        let url = format!("{}{path}", base.lock().unwrap());
        http.post(url)
            .bearer_auth(&token)
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
    };
    let app: serde_json::Value = call("/api/v1/app".into(), serde_json::json!({"name": "hostile"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = app["id"].as_str().unwrap().to_owned();
    for url in [format!("{}/healthy", healthy.url), hostile_url] {
        let resp = call(
            format!("/api/v1/app/{app}/endpoint"),
            serde_json::json!({"url": url}),
        )
        .await
        .unwrap();
        assert_eq!(resp.status(), 201);
    }

    // Post 300 messages in three rounds, killing hookd without warning after the first
    // two; the posts of a round that fail (the server is gone) are not acknowledged.
    let mut acknowledged: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for round in 0..3 {
        for i in 0..100 {
            let sent = call(
                format!("/api/v1/app/{app}/msg"),
                serde_json::json!({"eventType": "hostile.test", "payload": {"round": round, "i": i}}),
            )
            .await;
            if let Ok(resp) = sent {
                assert_eq!(resp.status(), 202);
                let msg: serde_json::Value = resp.json().await.unwrap();
                let at = msg["timestamp"].as_str().unwrap().parse().unwrap();
                acknowledged.insert(msg["id"].as_str().unwrap().to_owned(), at);
            }
        }
        if round < 2 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            hookd.kill(); // SIGKILL, with deliveries in flight and pending
            hookd = start(&db.url).await;
            *base.lock().unwrap() = hookd.base.clone();
        }
    }
    assert_eq!(acknowledged.len(), 300);

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let healthy_ids: HashSet<String> = healthy
            .received_on("/healthy")
            .iter()
            .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
            .collect();
        let (hostile_done, hostile_attempts, hostile_ways) = {
            let h = hostile.lock().unwrap();
            (
                h.accepted.clone(),
                h.attempts.values().sum::<u32>(),
                h.misbehaved.clone(),
            )
        };
        let all = |got: &HashSet<String>| acknowledged.keys().all(|id| got.contains(id));
        if all(&healthy_ids) && all(&hostile_done) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "healthy has {} of 300, hostile accepted {} of 300 (attempts seen {}, misbehaved {:?})",
            acknowledged.keys().filter(|id| healthy_ids.contains(*id)).count(),
            acknowledged
                .keys()
                .filter(|id| hostile_done.contains(*id))
                .count(),
            hostile_attempts,
            hostile_ways,
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let misbehaved = hostile.lock().unwrap().misbehaved.clone();
    for way in WAYS {
        assert!(
            misbehaved.get(way).copied().unwrap_or(0) > 0,
            "no {way} answer was given: {misbehaved:?}"
        );
    }
    // The healthy receiver's first arrival of each message, after its event.
    let mut first: HashMap<String, chrono::DateTime<chrono::Utc>> = HashMap::new();
    for r in healthy.received_on("/healthy") {
        let id = r.headers["webhook-id"].to_str().unwrap().to_owned();
        let arrived = chrono::Utc::now() - chrono::Duration::from_std(r.at.elapsed()).unwrap();
        first
            .entry(id)
            .and_modify(|t| *t = (*t).min(arrived))
            .or_insert(arrived);
    }
    let mut waits: Vec<i64> = acknowledged
        .iter()
        .filter_map(|(id, at)| first.get(id).map(|t| (*t - *at).num_milliseconds()))
        .collect();
    waits.sort_unstable();
    let p50 = waits[waits.len() / 2];
    eprintln!(
        "healthy receiver: event to arrival p50 {p50} ms (including two restarts); hostile answers {misbehaved:?}"
    );
    assert!(
        p50 < DELIVERY_TIMEOUT.as_millis() as i64,
        "the healthy receiver waited behind the hostile one: p50 {p50} ms"
    );
}
