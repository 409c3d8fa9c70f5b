//! The load generator: HTTP/1.1 keep-alive connections (hyper's client connection, no
//! pool in between), either closed-loop (N connections, each sending its next request
//! when the previous is answered) or open-loop (a set offered rate; latency counted
//! from when each request was due, so a stall is not hidden by the requests it held
//! back).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::{Error, unix_micros};

/// One kind of request, its body made fresh (with the current send time) each time.
#[derive(Clone)]
pub struct Spec {
    pub method: Method,
    pub path: String,
    /// Appended to `path` for each request (a random player, say), when set.
    pub path_tail: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Arc<dyn Fn(u64) -> Bytes + Send + Sync>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

/// What a run of the load generator saw inside its measurement window.
#[derive(Debug)]
pub struct Outcome {
    /// 2xx answers to requests sent inside the window.
    pub ok: u64,
    /// Other answers (by status) and failed connections (status 0).
    pub errors: BTreeMap<u16, u64>,
    /// Latency of the requests sent inside the window, µs.
    pub latency: Histogram<u64>,
    /// Every 2xx answer, warm-up included.
    pub ok_total: u64,
    pub window: Duration,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    pub fn errors_total(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

/// How long, and when counting starts.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

/// Closed loop: `connections` connections, each sending as soon as it is answered.
pub async fn closed(
    addr: SocketAddr,
    connections: usize,
    window: Window,
    spec: &Spec,
) -> Result<Outcome, Error> {
    closed_loop(addr, connections, window, None, spec).await
}

/// Closed loop until `count` requests have been answered 2xx (or `limit` passed);
/// everything is counted (no warm-up).
pub async fn closed_count(
    addr: SocketAddr,
    connections: usize,
    count: u64,
    limit: Duration,
    spec: &Spec,
) -> Result<Outcome, Error> {
    let window = Window {
        warmup: Duration::ZERO,
        measure: limit,
    };
    let started = Instant::now();
    let mut out = closed_loop(addr, connections, window, Some(count), spec).await?;
    out.window = started.elapsed();
    Ok(out)
}

async fn closed_loop(
    addr: SocketAddr,
    connections: usize,
    window: Window,
    count: Option<u64>,
    spec: &Spec,
) -> Result<Outcome, Error> {
    let start = Instant::now();
    let counting = start + window.warmup;
    let end = counting + window.measure;
    // Requests still to be answered 2xx, when a count is set.
    let budget = Arc::new(AtomicU64::new(count.unwrap_or(u64::MAX)));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let spec = spec.clone();
        let budget = budget.clone();
        tasks.push(tokio::spawn(async move {
            let mut part = Part::new()?;
            let mut conn = None;
            while Instant::now() < end && take(&budget) {
                let sent = Instant::now();
                let status = send(addr, &mut conn, &spec).await;
                if !(200..300).contains(&status) {
                    budget.fetch_add(1, Ordering::Relaxed);
                }
                part.record(status, sent, sent >= counting);
            }
            Ok::<_, Error>(part)
        }));
    }
    collect(tasks, window).await
}

/// Takes one request from the budget; false once it is spent.
fn take(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// Open loop: requests due at `rate` per second, sent over at most `connections`
/// connections; each one's latency runs from when it was due.
pub async fn open(
    addr: SocketAddr,
    rate: f64,
    connections: usize,
    window: Window,
    spec: &Spec,
) -> Result<Outcome, Error> {
    let start = Instant::now();
    let counting = start + window.warmup;
    let end = counting + window.measure;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let spec = spec.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut part = Part::new()?;
            let mut conn = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let due = start + interval.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
                if due >= end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let status = send(addr, &mut conn, &spec).await;
                part.record(status, due, due >= counting);
            }
            Ok::<_, Error>(part)
        }));
    }
    collect(tasks, window).await
}

/// One connection's tally.
struct Part {
    ok: u64,
    ok_total: u64,
    errors: BTreeMap<u16, u64>,
    latency: Histogram<u64>,
}

impl Part {
    fn new() -> Result<Self, Error> {
        Ok(Self {
            ok: 0,
            ok_total: 0,
            errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        })
    }

    fn record(&mut self, status: u16, since: Instant, counted: bool) {
        let ok = (200..300).contains(&status);
        if ok {
            self.ok_total += 1;
        }
        if !counted {
            return;
        }
        if ok {
            self.ok += 1;
            let us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.latency.saturating_record(us.max(1));
        } else {
            *self.errors.entry(status).or_default() += 1;
        }
    }
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Result<Part, Error>>>,
    window: Window,
) -> Result<Outcome, Error> {
    let mut out = Outcome {
        ok: 0,
        errors: BTreeMap::new(),
        latency: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        ok_total: 0,
        window: window.measure,
    };
    for task in tasks {
        let part = task.await??;
        out.ok += part.ok;
        out.ok_total += part.ok_total;
        out.latency.add(&part.latency)?;
        for (status, n) in part.errors {
            *out.errors.entry(status).or_default() += n;
        }
    }
    Ok(out)
}

/// Sends one request on `conn` (opening it when needed); the answer's status, or 0
/// when the connection failed (it is then dropped and reopened next time).
async fn send(addr: SocketAddr, conn: &mut Option<SendRequest<Full<Bytes>>>, spec: &Spec) -> u16 {
    let sender = match conn {
        Some(s) if !s.is_closed() => s,
        _ => match connect(addr).await {
            Ok(s) => conn.insert(s),
            Err(_) => {
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return 0;
            }
        },
    };
    let path = match &spec.path_tail {
        Some(tail) => format!("{}{}", spec.path, tail()),
        None => spec.path.clone(),
    };
    let mut req = Request::builder()
        .method(spec.method.clone())
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in &spec.headers {
        req = req.header(*k, v.as_str());
    }
    let Ok(req) = req.body(Full::new((spec.body)(unix_micros()))) else {
        return 0;
    };
    if sender.ready().await.is_err() {
        *conn = None;
        return 0;
    }
    match sender.send_request(req).await {
        Ok(res) => {
            let status = res.status().as_u16();
            // The answer is read to its end so the connection can carry the next one.
            if res.into_body().collect().await.is_err() {
                *conn = None;
            }
            status
        }
        Err(_) => {
            *conn = None;
            0
        }
    }
}

pub async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request on a connection of its own: for setting a run up and reading stats.
pub async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<(u16, Bytes), Error> {
    let mut sender = connect(addr).await?;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(&v)?)
        }
        None => Bytes::new(),
    };
    let res = sender.send_request(req.body(Full::new(body))?).await?;
    let status = res.status().as_u16();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// [`call`] that expects a 2xx and answers its JSON.
pub async fn call_ok(
    addr: SocketAddr,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    let (status, bytes) = call(addr, method.clone(), path, token, body).await?;
    if !(200..300).contains(&status) {
        return Err(format!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    if bytes.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)?)
}
