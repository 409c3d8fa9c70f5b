//! `hookd tail`, `hookd replay` and `hookd send`, the real binary against a real
//! server: tail's JSON lines parse and carry the destinations' results; a replay of
//! 1,000 logged requests is interrupted and resumed, each reaching the target; the
//! server's replay forwards again; sending a JSON-lines file twice sends each line once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use common::cli::Cli;
use common::receiver::Receiver;
use serde_json::{Value, json};

async fn post_json(server: &TestServer, path: &str, body: Value) -> Value {
    let r = server
        .req(reqwest::Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.text().await.unwrap());
    r.json().await.unwrap_or(Value::Null)
}

/// A generic source `uid` with a destination at `dest` (when given); its ingest URL.
async fn source_with_destination(server: &TestServer, uid: &str, dest: Option<&str>) -> String {
    let source = post_json(
        server,
        "/ingest/api/v1/source",
        json!({"name": uid, "uid": uid, "type": "generic-webhook", "options": {"allowedMethods": ["POST"]}}),
    )
    .await;
    if let Some(dest) = dest {
        post_json(
            server,
            &format!("/ingest/api/v1/source/{uid}/endpoint"),
            json!({"url": dest}),
        )
        .await;
    }
    source["ingestUrl"].as_str().unwrap().to_owned()
}

async fn wait_lines(cli: &Cli, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<Value> = cli
            .lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} lines: {lines:#?}\n{}",
            lines.len(),
            cli.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_json_shows_requests_verdicts_and_destination_results() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let dest = Receiver::start().await;
    let ingest = source_with_destination(&server, "tailed", Some(&dest.url)).await;
    let mut tail = Cli::start(
        &server,
        "tail",
        &["--source", "tailed", "--json", "--interval", "200ms"],
    );
    tail.wait_said("following", 1).await;
    let http = reqwest::Client::new();
    assert_eq!(
        http.post(format!("{ingest}/a?x=1"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(http.put(&ingest).body("{}").send().await.unwrap().status(), 405);
    let lines = wait_lines(&tail, 3).await;
    let requests: Vec<&Value> = lines.iter().filter(|l| l["type"] == "request").collect();
    assert_eq!(requests.len(), 2, "{lines:#?}");
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/a");
    assert_eq!(requests[0]["query"], "x=1");
    assert_eq!(requests[0]["status"], "accepted");
    assert_eq!(requests[1]["status"], "rejected");
    assert_eq!(requests[1]["statusCode"], 405);
    let attempt = lines
        .iter()
        .find(|l| l["type"] == "attempt")
        .expect("a destination result");
    assert_eq!(attempt["of"], requests[0]["id"]);
    assert_eq!(attempt["ok"], true);
    assert_eq!(attempt["responseStatusCode"], 200);
    assert!(tail.stop().success());

    // An application: its messages and their attempts.
    post_json(&server, "/api/v1/app", json!({"name": "A", "uid": "tail-app"})).await;
    post_json(&server, "/api/v1/app/tail-app/endpoint", json!({"url": dest.url})).await;
    let mut tail = Cli::start(
        &server,
        "tail",
        &["--app", "tail-app", "--json", "--interval", "200ms"],
    );
    tail.wait_said("following", 1).await;
    let msg = post_json(
        &server,
        "/api/v1/app/tail-app/msg",
        json!({"eventType": "a.b", "payload": {}}),
    )
    .await;
    let lines = wait_lines(&tail, 2).await;
    assert_eq!(lines[0]["type"], "message");
    assert_eq!(lines[0]["id"], msg["id"]);
    assert_eq!(lines[0]["eventType"], "a.b");
    assert_eq!(lines[1]["type"], "attempt");
    assert_eq!(lines[1]["of"], msg["id"]);
    assert!(tail.stop().success());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_thousand_requests_is_interrupted_and_resumed() {
    let server = TestServer::start().await;
    let ingest = source_with_destination(&server, "bulk", None).await;
    let http = reqwest::Client::new();
    let mut sends = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt as _;
    for i in 0..1000 {
        let (http, ingest) = (http.clone(), ingest.clone());
        sends.push(async move {
            let r = http
                .post(format!("{ingest}/r{i}?n={i}"))
                .header("x-seq", i.to_string())
                .body(format!("{{\"n\": {i}}}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        });
        if sends.len() >= 16 {
            sends.next().await;
        }
    }
    while sends.next().await.is_some() {}

    // Today's code on localhost, answering slowly enough to be interrupted midway.
    let local = Receiver::start().await;
    local.answer_always(common::receiver::Answer {
        delay: Duration::from_millis(3),
        ..common::receiver::Answer::status(200)
    });
    let state = tempfile::tempdir().unwrap();
    let env = [("XDG_STATE_HOME", state.path().to_str().unwrap())];
    let to = format!("{}/replayed", local.url);
    let args = ["--source", "bulk", "--since", "1h", "--to", to.as_str()];
    let mut first = Cli::start_env(&server, "replay", &args, &env);
    local.wait_for_total(200, Duration::from_secs(60)).await;
    first.signal("-INT");
    let status = first.wait_exit().await;
    assert_eq!(status.code(), Some(130), "{}", first.stderr.lock().unwrap());
    let said = first.stderr.lock().unwrap().clone();
    assert!(
        said.contains("stopped after") && said.contains("the same command resumes"),
        "{said}"
    );
    let partway = local.count();
    assert!(partway < 1000, "interrupted midway ({partway})");

    let mut second = Cli::start_env(&server, "replay", &args, &env);
    let status = second.wait_exit().await;
    let said = second.stderr.lock().unwrap().clone();
    assert!(status.success(), "{said}");
    assert!(said.contains("resuming after"), "{said}");
    assert!(said.contains("finished: 1000 of 1000 done"), "{said}");
    let received = local.received();
    // At least once: the request in hand at the interrupt may come again.
    assert!(received.len() <= 1001, "{}", received.len());
    let mut seen: Vec<u32> = received
        .iter()
        .map(|r| r.headers["x-seq"].to_str().unwrap().parse().unwrap())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(
        seen,
        (0..1000).collect::<Vec<_>>(),
        "every request reached the target"
    );
    let one = received.iter().find(|r| r.headers["x-seq"] == "7").unwrap();
    assert_eq!(one.path, "/replayed/r7");
    assert_eq!(one.query, "n=7");
    assert_eq!(one.body.as_ref(), b"{\"n\": 7}");
    let done: Vec<_> = std::fs::read_dir(state.path().join("hookd")).unwrap().collect();
    assert!(done.is_empty(), "the checkpoint is removed when the replay ends");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_replay_forwards_again_and_skips_rejected_requests() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let dest = Receiver::start().await;
    let ingest = source_with_destination(&server, "again", Some(&dest.url)).await;
    let http = reqwest::Client::new();
    for i in 0..10 {
        http.post(format!("{ingest}/{i}"))
            .body("{}")
            .send()
            .await
            .unwrap();
    }
    http.put(&ingest).body("{}").send().await.unwrap();
    dest.wait_for_total(10, Duration::from_secs(20)).await;
    let state = tempfile::tempdir().unwrap();
    let env = [("XDG_STATE_HOME", state.path().to_str().unwrap())];
    let mut replay = Cli::start_env(&server, "replay", &["--source", "again", "--since", "10m"], &env);
    let status = replay.wait_exit().await;
    let said = replay.stderr.lock().unwrap().clone();
    assert!(status.success(), "{said}");
    assert!(
        said.contains("finished: 11 of 11 done (0 without a 2xx, 1 skipped"),
        "{said}"
    );
    dest.wait_for_total(20, Duration::from_secs(20)).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_a_payloads_file_twice_sends_each_line_once() {
    let server = TestServer::start().await;
    post_json(&server, "/api/v1/app", json!({"name": "S", "uid": "sender"})).await;
    let mut one = Cli::start(
        &server,
        "send",
        &[
            "--app",
            "sender",
            "--event-type",
            "a.b",
            "--payload",
            "{\"one\": 1}",
        ],
    );
    assert!(one.wait_exit().await.success());
    assert!(one.lines()[0].starts_with("msg_"), "{:?}", one.lines());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.jsonl");
    let lines: Vec<String> = (0..20).map(|i| json!({"n": i}).to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let file = file.to_str().unwrap();
    let args = ["--app", "sender", "--event-type", "a.b", "--payloads", file];
    let mut first = Cli::start(&server, "send", &args);
    assert!(
        first.wait_exit().await.success(),
        "{}",
        first.stderr.lock().unwrap()
    );
    let mut again = Cli::start(&server, "send", &args);
    assert!(again.wait_exit().await.success());
    assert_eq!(first.lines().len(), 20);
    assert_eq!(first.lines(), again.lines(), "the same messages, not new ones");
    let listed: Value = server
        .req(reqwest::Method::GET, "/api/v1/app/sender/msg?limit=100")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"].as_array().unwrap().len(), 21);
    // A line that is not JSON is refused before anything is sent.
    std::fs::write(dir.path().join("bad.jsonl"), "{\"ok\": 1}\nnot json\n").unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut bad = Cli::start(
        &server,
        "send",
        &[
            "--app",
            "sender",
            "--event-type",
            "a.b",
            "--payloads",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(bad.wait_exit().await.code(), Some(2));
    assert!(bad.stderr.lock().unwrap().contains("line 2: not JSON"));
    server.stop().await;
}
