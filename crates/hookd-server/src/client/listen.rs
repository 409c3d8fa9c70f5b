//! `hookd listen`: follows a source (what it accepts) or an application (its
//! messages) through a session on the server, and replays each request to a local
//! URL; the local answer goes back to the server as the delivery's attempt.
//!
//! The session is a temporary endpoint named by `--session` (default: this host and
//! the local port), so a restarted CLI resumes it: what arrived while it was away was
//! kept and is delivered when it connects again. The stream is reconnected with
//! back-off (0.25 s doubling to 30 s) when it breaks or is silent for three
//! heartbeats. Ctrl-C waits for the requests in hand, then ends the session (its
//! endpoint is deleted) unless `--keep`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::sse::SseParser;
use super::{Failure, Remote, clock, hop_by_hop, local_url, shutdown_signal};

/// A stream silent this long is taken as dead (three of the server's heartbeats).
const SILENCE: Duration = Duration::from_secs(45);
/// Longest wait between reconnection tries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Bytes of the local answer sent back to the attempt log.
const ANSWER_KEEP: usize = 4096;
/// How long Ctrl-C waits for requests in hand.
const DRAIN: Duration = Duration::from_secs(10);

/// What `hookd listen` was asked to do.
#[derive(Debug, Clone)]
pub struct ListenArgs {
    pub source: Option<String>,
    pub app: Option<String>,
    pub event_types: Vec<String>,
    pub forward_to: url::Url,
    pub session: Option<String>,
    /// Keep the session's endpoint after Ctrl-C.
    pub keep: bool,
    /// Requests forwarded at once at most.
    pub concurrency: usize,
    /// One JSON object per request on stdout instead of a line of text.
    pub json: bool,
    /// How long the local target may take.
    pub timeout: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Opened {
    session: String,
    app_id: String,
    endpoint_id: String,
    secret: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    id: u64,
    msg_id: String,
    attempt: u32,
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// The default session name: this host and the local target's port, so two
/// developers (or two local servers) on one source do not share a session.
fn default_session(forward_to: &url::Url) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_else(|| "cli".into());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let port = forward_to.port_or_known_default().unwrap_or(0);
    format!("{host}-{port}")
}

/// Counters for the summary.
#[derive(Debug, Default)]
struct Tally {
    forwarded: AtomicU64,
    failed: AtomicU64,
}

/// Runs `hookd listen` until Ctrl-C.
pub async fn run(remote: Remote, args: ListenArgs) -> Result<(), Failure> {
    let session = args
        .session
        .clone()
        .unwrap_or_else(|| default_session(&args.forward_to));
    let what = match (&args.source, &args.app) {
        (Some(s), _) => format!("source {s:?}"),
        (_, Some(a)) => format!("application {a:?}"),
        _ => return Err(Failure::Usage("give --source or --app".into())),
    };
    let opened = open(&remote, &args, &session, &what).await?;
    eprintln!(
        "hookd listen: session {} on {what} → {} (Ctrl-C ends it{})",
        opened.session,
        args.forward_to,
        if args.keep {
            "; --keep: its endpoint stays"
        } else {
            ""
        }
    );
    if args.app.is_some() {
        eprintln!(
            "hookd listen: deliveries are signed with {} (verify with it)",
            opened.secret
        );
    }
    let local = reqwest::Client::builder()
        .timeout(args.timeout)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Other(format!("cannot make an HTTP client: {e}")))?;
    let shared = Arc::new(Shared {
        remote,
        local,
        args,
        opened,
        tally: Tally::default(),
        permits: Semaphore::new(0),
    });
    shared.permits.add_permits(shared.args.concurrency.max(1));
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut backoff = Duration::from_millis(250);
    let mut tasks = tokio::task::JoinSet::new();
    let (answers, answered) = mpsc::unbounded_channel();
    let answering = tokio::spawn(answerer(Arc::clone(&shared), answered));
    'session: loop {
        let outcome = tokio::select! {
            () = &mut stop => break 'session,
            outcome = follow(&shared, &mut tasks, &answers, &mut backoff) => outcome,
        };
        let why = match outcome {
            Ok(why) => why,
            Err(fatal) => return Err(fatal),
        };
        eprintln!(
            "hookd listen: {why}; reconnecting in {:.1} s",
            backoff.as_secs_f64()
        );
        tokio::select! {
            () = &mut stop => break 'session,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    eprintln!(
        "hookd listen: stopping; finishing {} request(s) in hand",
        tasks.len()
    );
    let drained = tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        eprintln!("hookd listen: gave up waiting; the server retries what was not answered");
    }
    // The last answers go before the session ends.
    drop(answers);
    tasks.abort_all();
    let _ = tokio::time::timeout(DRAIN, answering).await;
    let t = &shared.tally;
    let summary = format!(
        "{} forwarded, {} without a 2xx",
        t.forwarded.load(Ordering::Relaxed),
        t.failed.load(Ordering::Relaxed)
    );
    if shared.args.keep {
        eprintln!("hookd listen: {summary}; session {} kept", shared.opened.session);
        return Ok(());
    }
    let path = format!(
        "/api/v1/listen/{}/{}",
        shared.opened.app_id, shared.opened.endpoint_id
    );
    match shared
        .remote
        .send(shared.remote.request(Method::DELETE, &path), "the session")
        .await
    {
        Ok(_) => eprintln!("hookd listen: {summary}; session ended"),
        Err(e) => eprintln!(
            "hookd listen: {summary}; could not end the session ({}); it is resumed by the next \
             `hookd listen --session {}`",
            e.message(),
            shared.opened.session
        ),
    }
    Ok(())
}

#[derive(Debug)]
struct Shared {
    remote: Remote,
    local: reqwest::Client,
    args: ListenArgs,
    opened: Opened,
    tally: Tally,
    permits: Semaphore,
}

async fn open(remote: &Remote, args: &ListenArgs, session: &str, what: &str) -> Result<Opened, Failure> {
    let mut body = json!({ "session": session });
    if let Some(s) = &args.source {
        body["source"] = json!(s);
    }
    if let Some(a) = &args.app {
        body["app"] = json!(a);
        if !args.event_types.is_empty() {
            body["eventTypes"] = json!(args.event_types);
        }
    }
    let response = remote
        .send(remote.request(Method::POST, "/api/v1/listen").json(&body), what)
        .await?;
    response
        .json()
        .await
        .map_err(|e| Failure::Unreachable(format!("the server's answer to opening the session: {e}")))
}

/// Follows the stream once: returns why it ended (to reconnect), or a failure that
/// reconnecting cannot mend.
async fn follow(
    shared: &Arc<Shared>,
    tasks: &mut tokio::task::JoinSet<()>,
    answers: &mpsc::UnboundedSender<Value>,
    backoff: &mut Duration,
) -> Result<String, Failure> {
    let path = format!(
        "/api/v1/listen/{}/{}/events",
        shared.opened.app_id, shared.opened.endpoint_id
    );
    let remote = &shared.remote;
    let response = match remote.request(Method::GET, &path).send().await {
        Ok(r) => r,
        Err(e) => return Ok(e.without_url().to_string()),
    };
    let mut response = match remote.check(response, "the session").await {
        Ok(r) => r,
        // Deleted meanwhile (by someone, or the server's data reset): open it again.
        Err(Failure::NotFound(why)) => {
            reopen(shared).await?;
            return Ok(format!("the session was gone ({why}); opened it again"));
        }
        Err(f @ (Failure::Unauthorized(_) | Failure::Usage(_))) => return Err(f),
        Err(other) => return Ok(other.message().to_owned()),
    };
    let mut parser = SseParser::default();
    loop {
        let chunk = match tokio::time::timeout(SILENCE, response.chunk()).await {
            Err(_) => return Ok(format!("no heartbeat for {} s", SILENCE.as_secs())),
            Ok(Err(e)) => return Ok(format!("the stream broke ({})", e.without_url())),
            Ok(Ok(None)) => return Ok("the server ended the stream".into()),
            Ok(Ok(Some(chunk))) => chunk,
        };
        let events = parser.push(&chunk).map_err(Failure::Other)?;
        for event in events.into_iter().flatten() {
            match event.event.as_str() {
                "ready" => {
                    *backoff = Duration::from_millis(250);
                    let waiting = serde_json::from_str::<serde_json::Value>(&event.data)
                        .ok()
                        .and_then(|v| v["waiting"].as_u64())
                        .unwrap_or(0);
                    eprintln!(
                        "hookd listen: connected{}",
                        if waiting > 0 {
                            format!("; {waiting} request(s) that waited are on their way")
                        } else {
                            String::new()
                        }
                    );
                }
                "request" => {
                    let request: Request = match serde_json::from_str(&event.data) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!(
                                "hookd listen: skipped an unreadable request ({e}); the server retries it"
                            );
                            continue;
                        }
                    };
                    // Bounded: the stream is read no faster than requests are forwarded.
                    let Ok(permit) = shared.permits.acquire().await else {
                        continue;
                    };
                    permit.forget();
                    let shared = Arc::clone(shared);
                    let answers = answers.clone();
                    tasks.spawn(async move {
                        forward(&shared, request, &answers).await;
                        shared.permits.add_permits(1);
                    });
                    while tasks.try_join_next().is_some() {}
                }
                _ => {}
            }
        }
    }
}

async fn reopen(shared: &Arc<Shared>) -> Result<(), Failure> {
    let again = open(
        &shared.remote,
        &shared.args,
        &shared.opened.session,
        "the session",
    )
    .await?;
    if again.endpoint_id != shared.opened.endpoint_id {
        return Err(Failure::Other(format!(
            "the session {} was deleted and made again on the server; start `hookd listen` again",
            shared.opened.session
        )));
    }
    Ok(())
}

/// Replays one request to the local target and answers the server.
async fn forward(shared: &Shared, r: Request, answers: &mpsc::UnboundedSender<Value>) {
    let url = local_url(&shared.args.forward_to, &r.path, &r.query);
    let body = match base64::engine::general_purpose::STANDARD.decode(&r.body) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("hookd listen: skipped a request with an unreadable body ({e}); the server retries it");
            return;
        }
    };
    let method = Method::from_bytes(r.method.as_bytes()).unwrap_or(Method::POST);
    let mut request = shared.local.request(method, &url).body(body);
    for (k, v) in &r.headers {
        if !hop_by_hop(k) {
            request = request.header(k, v);
        }
    }
    let started = Instant::now();
    let (status, excerpt, headers, error) = match request.send().await {
        Ok(mut response) => {
            let status = response.status();
            let headers: Vec<(String, String)> = response
                .headers()
                .iter()
                .take(64)
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let mut kept = Vec::new();
            while kept.len() < ANSWER_KEEP {
                match response.chunk().await {
                    Ok(Some(c)) => kept.extend_from_slice(&c),
                    _ => break,
                }
            }
            kept.truncate(ANSWER_KEEP);
            (
                Some(status),
                String::from_utf8_lossy(&kept).into_owned(),
                headers,
                None,
            )
        }
        Err(e) => {
            let why = if e.is_connect() {
                format!(
                    "could not connect to {} (is your server running?)",
                    shared.args.forward_to
                )
            } else if e.is_timeout() {
                format!(
                    "{} did not answer within {:?}",
                    shared.args.forward_to, shared.args.timeout
                )
            } else {
                format!("request failed: {}", e.without_url())
            };
            (None, why.clone(), Vec::new(), Some(why))
        }
    };
    let elapsed = started.elapsed();
    let ok = status.is_some_and(|s| s.is_success());
    let tally = if ok {
        &shared.tally.forwarded
    } else {
        &shared.tally.failed
    };
    tally.fetch_add(1, Ordering::Relaxed);
    let shown_path = if r.query.is_empty() {
        format!("/{}", r.path.trim_start_matches('/'))
    } else {
        format!("/{}?{}", r.path.trim_start_matches('/'), r.query)
    };
    if shared.args.json {
        let line = json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "msgId": r.msg_id,
            "attempt": r.attempt + 1,
            "method": r.method,
            "path": shown_path,
            "url": url,
            "status": status.map(|s| s.as_u16()),
            "ms": elapsed.as_millis() as u64,
            "error": error,
        });
        println!("{line}");
    } else {
        let outcome = match (status, &error) {
            (Some(s), _) => format!("{} {}", s.as_u16(), s.canonical_reason().unwrap_or("")),
            (None, Some(why)) => format!("✗ {why}; hookd retries it"),
            (None, None) => "✗".into(),
        };
        let retry = if r.attempt > 0 {
            format!(", attempt {}", r.attempt + 1)
        } else {
            String::new()
        };
        println!(
            "{} {} {shown_path} → {} in {} ms ({}{retry})",
            clock(),
            r.method,
            outcome.trim_end(),
            elapsed.as_millis(),
            r.msg_id
        );
    }
    let answer = json!({
        "id": r.id,
        "status": status.map(|s| s.as_u16()),
        "body": excerpt,
        "url": url,
        "headers": headers,
    });
    // The answerer has gone only when the session is ending: the server retries it.
    let _ = answers.send(answer);
}

/// Most answers sent in one call.
const ANSWER_BATCH: usize = 256;

/// Sends the answers as they come: one call with everything that is ready, so a
/// busy session costs one call per batch (the next batch gathers while one is sent).
/// Ends when every sender is gone and what they sent is delivered.
async fn answerer(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Value>) {
    let path = format!(
        "/api/v1/listen/{}/{}/answer",
        shared.opened.app_id, shared.opened.endpoint_id
    );
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < ANSWER_BATCH {
            match rx.try_recv() {
                Ok(a) => batch.push(a),
                Err(_) => break,
            }
        }
        let request = shared
            .remote
            .request(Method::POST, &path)
            .json(&json!({ "answers": batch }));
        match shared.remote.send(request, "the answers").await {
            Ok(response) => {
                let late = response
                    .json::<Value>()
                    .await
                    .ok()
                    .and_then(|v| v["late"].as_array().map(Vec::len))
                    .unwrap_or(0);
                if late > 0 {
                    eprintln!(
                        "hookd listen: {late} answer(s) came too late (after delivery_timeout); those \
                         requests are retried"
                    );
                }
            }
            Err(e) => eprintln!(
                "hookd listen: the server did not take {} answer(s) ({}); it retries those requests",
                batch.len(),
                e.message()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_urls_keep_path_and_query() {
        let base: url::Url = "http://localhost:3000/hooks".parse().unwrap();
        assert_eq!(local_url(&base, "", ""), "http://localhost:3000/hooks");
        assert_eq!(
            local_url(&base, "a/b", "x=1"),
            "http://localhost:3000/hooks/a/b?x=1"
        );
        let q: url::Url = "http://localhost:3000/hooks?t=1".parse().unwrap();
        assert_eq!(local_url(&q, "", "x=1"), "http://localhost:3000/hooks?t=1&x=1");
        assert!(default_session(&base).ends_with("-3000"));
    }
}
