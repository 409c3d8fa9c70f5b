//! The receiver: a hyper HTTP/1.1 server in its own process (`hookd-bench receiver`),
//! standing in for the endpoints. It answers every delivery `204` at once and times it
//! against the send time the payload carries (`"t":<unix µs>`, written by the load
//! generator just before the request leaves), so the figure is event → delivery as a
//! webhook consumer would see it.
//!
//! `GET /stats` answers what it saw since the last `POST /reset`; deliveries are counted
//! per path too, so a fan-out run can check that every endpoint got its share.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use crate::{Error, unix_micros};

/// What the receiver saw: every request since it started, and the latency histogram
/// since the last reset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Seen {
    /// Deliveries received since the receiver started.
    pub total: u64,
    /// Deliveries whose payload had no readable send time.
    pub untimed: u64,
    /// Event → delivery latency since the last reset, µs.
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Deliveries timed since the last reset.
    pub timed: u64,
    /// Paths that received at least one delivery since the receiver started.
    pub paths: usize,
}

#[derive(Debug)]
struct State {
    total: u64,
    untimed: u64,
    latency: Histogram<u64>,
    paths: std::collections::HashSet<String>,
}

/// Serves on `listen` until killed. Runs on one thread: the receiver should cost the
/// machine as little as a fast real consumer would.
pub fn run(listen: SocketAddr) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let state = Arc::new(Mutex::new(State {
        total: 0,
        untimed: 0,
        latency: Histogram::new_with_bounds(1, 3_600_000_000, 3)?,
        paths: Default::default(),
    }));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, state.clone()));
            // A connection the client drops mid-request is not the receiver's concern.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(answer(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    let Ok(mut s) = state.lock() else {
        return Ok(answer(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()));
    };
    match (parts.method, parts.uri.path()) {
        (Method::GET, "/stats") => {
            let seen = Seen {
                total: s.total,
                untimed: s.untimed,
                p50_us: s.latency.value_at_quantile(0.50),
                p95_us: s.latency.value_at_quantile(0.95),
                p99_us: s.latency.value_at_quantile(0.99),
                max_us: s.latency.max(),
                timed: s.latency.len(),
                paths: s.paths.len(),
            };
            let json = serde_json::to_vec(&seen).unwrap_or_default();
            Ok(answer(StatusCode::OK, Bytes::from(json)))
        }
        (Method::POST, "/reset") => {
            s.latency.reset();
            Ok(answer(StatusCode::NO_CONTENT, Bytes::new()))
        }
        (_, path) => {
            s.total += 1;
            if !s.paths.contains(path) {
                s.paths.insert(path.to_owned());
            }
            match send_time(&body) {
                Some(t) => {
                    let us = unix_micros().saturating_sub(t).max(1);
                    s.latency.saturating_record(us);
                }
                None => s.untimed += 1,
            }
            Ok(answer(StatusCode::NO_CONTENT, Bytes::new()))
        }
    }
}

fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res
}

/// The number after the first `"t":` in the body.
pub fn send_time(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"t\":";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = body[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for d in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::send_time;

    #[test]
    fn reads_the_send_time() {
        assert_eq!(send_time(br#"{"t":123,"pad":"x"}"#), Some(123));
        assert_eq!(send_time(br#"{"pad":"x", "t": 77}"#), Some(77));
        assert_eq!(send_time(br#"{"pad":"x"}"#), None);
        assert_eq!(send_time(br#"{"t":"#), None);
        assert_eq!(send_time(br#"{"t":99999999999999999999999}"#), None);
    }
}
