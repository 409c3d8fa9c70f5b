//! `hookd tail`: what a source receives (method, path, verdict) or an application
//! sends (messages), one line each as it happens, with the attempts that follow
//! (destination results) under it; `--json` for scripts. It polls the API (the
//! source's log / the application's messages, then each new item's attempts for
//! [`FOLLOW`]), so it sees every node's work.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::{Failure, Remote, clock, shutdown_signal};

/// How long a new item's attempts are followed.
const FOLLOW: Duration = Duration::from_secs(30);
/// Items followed at once at most (the oldest is let go).
const FOLLOWED: usize = 50;

/// What `hookd tail` follows.
#[derive(Debug, Clone)]
pub enum Tailed {
    Source(String),
    App(String),
}

#[derive(Debug)]
struct Followed {
    /// The log entry or message id.
    id: String,
    /// Where its attempts are listed.
    attempts_path: String,
    until: Instant,
    seen: HashSet<String>,
}

/// Runs `hookd tail` until Ctrl-C.
pub async fn run(remote: Remote, tailed: Tailed, json: bool, interval: Duration) -> Result<(), Failure> {
    let (what, list_path, check_path) = match &tailed {
        Tailed::Source(s) => (
            format!("source {s:?}"),
            format!("/ingest/api/v1/source/{s}/log?limit=100"),
            format!("/ingest/api/v1/source/{s}"),
        ),
        Tailed::App(a) => (
            format!("application {a:?}"),
            format!("/api/v1/app/{a}/msg?limit=100"),
            format!("/api/v1/app/{a}"),
        ),
    };
    remote
        .send(remote.request(Method::GET, &check_path), &what)
        .await?;
    // Start from now: what is already there is not shown.
    let mut newest = newest_id(&remote, &list_path, &what).await?;
    eprintln!("hookd tail: following {what} on {} (Ctrl-C stops)", remote.server);
    let mut followed: VecDeque<Followed> = VecDeque::new();
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(interval) => {}
        }
        let page = match get_json(&remote, &list_path, &what).await {
            Ok(v) => v,
            Err(f @ (Failure::Unauthorized(_) | Failure::NotFound(_))) => return Err(f),
            Err(other) => {
                eprintln!("hookd tail: {}; trying again", other.message());
                continue;
            }
        };
        let items = page["data"].as_array().cloned().unwrap_or_default();
        let fresh: Vec<&Value> = items
            .iter()
            .take_while(|i| {
                newest
                    .as_deref()
                    .is_none_or(|n| i["id"].as_str().unwrap_or("") > n)
            })
            .collect();
        if let Some(first) = fresh.first() {
            newest = first["id"].as_str().map(str::to_owned);
        }
        for item in fresh.iter().rev() {
            let id = item["id"].as_str().unwrap_or_default().to_owned();
            let attempts_path = match &tailed {
                Tailed::Source(s) => {
                    print_request(item, json);
                    (item["status"] == "accepted")
                        .then(|| format!("/ingest/api/v1/source/{s}/log/{id}/attempt"))
                }
                Tailed::App(a) => {
                    print_message(item, json);
                    Some(format!("/api/v1/app/{a}/attempt/msg/{id}"))
                }
            };
            if let Some(attempts_path) = attempts_path {
                if followed.len() == FOLLOWED {
                    followed.pop_front();
                }
                followed.push_back(Followed {
                    id,
                    attempts_path,
                    until: Instant::now() + FOLLOW,
                    seen: HashSet::new(),
                });
            }
        }
        let now = Instant::now();
        followed.retain(|f| f.until > now);
        for f in &mut followed {
            let Ok(found) = get_json(&remote, &f.attempts_path, &what).await else {
                continue;
            };
            // A source's route answers a list; the Svix attempt listing a page.
            let mut attempts = match &found {
                Value::Array(a) => a.clone(),
                other => other["data"].as_array().cloned().unwrap_or_default(),
            };
            attempts.reverse();
            for a in attempts {
                let aid = a["id"].as_str().unwrap_or_default().to_owned();
                if f.seen.insert(aid) {
                    print_attempt(&f.id, &a, json);
                }
            }
        }
    }
}

async fn get_json(remote: &Remote, path: &str, what: &str) -> Result<Value, Failure> {
    remote
        .send(remote.request(Method::GET, path), what)
        .await?
        .json()
        .await
        .map_err(|e| Failure::Unreachable(format!("an unreadable answer from the server: {e}")))
}

async fn newest_id(remote: &Remote, path: &str, what: &str) -> Result<Option<String>, Failure> {
    let page = get_json(remote, path, what).await?;
    Ok(page["data"][0]["id"].as_str().map(str::to_owned))
}

fn print_request(r: &Value, json: bool) {
    let path = r["path"].as_str().unwrap_or("/");
    let query = r["query"].as_str().unwrap_or("");
    if json {
        println!(
            "{}",
            json!({
                "type": "request",
                "id": r["id"],
                "time": r["created_at"],
                "method": r["method"],
                "path": path,
                "query": query,
                "status": r["status"],
                "statusCode": r["status_code"],
                "reason": r["error_text"],
                "msgId": r["msg_id"],
            })
        );
        return;
    }
    let shown = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let reason = r["error_text"].as_str().filter(|s| !s.is_empty());
    println!(
        "{} {} {shown} → {} {}{} ({})",
        clock(),
        r["method"].as_str().unwrap_or("?"),
        r["status"].as_str().unwrap_or("?"),
        r["status_code"],
        reason.map(|r| format!(": {r}")).unwrap_or_default(),
        r["id"].as_str().unwrap_or("")
    );
}

fn print_message(m: &Value, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "type": "message",
                "id": m["id"],
                "time": m["timestamp"],
                "eventType": m["eventType"],
                "eventId": m["eventId"],
            })
        );
        return;
    }
    println!(
        "{} {} ({})",
        clock(),
        m["eventType"].as_str().unwrap_or("?"),
        m["id"].as_str().unwrap_or("")
    );
}

fn print_attempt(of: &str, a: &Value, json: bool) {
    let code = a["responseStatusCode"].as_i64().unwrap_or(0);
    // A source's attempts say `success`/`fail`; Svix's use 0 for success.
    let ok = a["status"] == "success" || a["status"] == 0;
    let ms = a["responseDurationMs"].as_i64();
    if json {
        println!(
            "{}",
            json!({
                "type": "attempt",
                "of": of,
                "id": a["id"],
                "time": a["timestamp"],
                "endpointId": a["endpointId"],
                "url": a["url"],
                "ok": ok,
                "responseStatusCode": code,
                "ms": ms,
            })
        );
        return;
    }
    let answer = if code == 0 {
        let why: String = a["response"]
            .as_str()
            .unwrap_or("no answer")
            .chars()
            .take(120)
            .collect();
        format!("✗ {why}")
    } else if ok {
        format!("{code}")
    } else {
        format!("✗ {code}")
    };
    println!(
        "    ↳ {} {} → {answer}{}",
        a["endpointId"].as_str().unwrap_or("?"),
        a["url"].as_str().unwrap_or(""),
        ms.map(|ms| format!(" in {ms} ms")).unwrap_or_default()
    );
}
