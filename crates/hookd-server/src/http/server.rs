//! The HTTP/1.1 listener: hyper's connection driver with the limits a public port
//! needs, in place of `axum::serve` (which sets no timer, so no header timeout).
//!
//! What a stranger can hold, and for how long:
//! - a connection: at most [`Limits::max_connections`] at once; one more is answered
//!   `503` with `Retry-After` and closed;
//! - the request head: it must arrive whole within [`Limits::header_timeout`] of the
//!   connection becoming ready to read one (hyper's header-read timeout, which also
//!   closes a keep-alive connection left idle that long); at most
//!   [`Limits::max_headers`] headers and [`Limits::max_header_bytes`] of head, else
//!   hyper answers `431`;
//! - the body: it must arrive whole within [`Limits::body_timeout`] of the head
//!   ([`DeadlineBody`]); a late one is a `408` (`ApiError::RequestTimeout`);
//! - the handlers: at most [`Limits::max_in_flight`] requests are being handled at once;
//!   one more is answered `503` with `Retry-After` at once. Health checks are exempt,
//!   so an orchestrator still sees the node alive while it sheds load;
//! - the database: while every write of the last 300 ms waited longer than
//!   [`Limits::admission_write_wait`] (SQLite: from queueing to commit; PostgreSQL:
//!   for a pooled connection, or from queueing to commit in a group commit;
//!   [`hookd_store::pressure`]) and writes are still
//!   waiting, a request
//!   that would write through `/api`, `/in` or `/h` (any method but `GET`, `HEAD` and
//!   `OPTIONS`) is answered `503 overloaded` with `Retry-After: 1` before any work.
//!   Past what the database commits, requests are refused early instead of every one
//!   waiting longer, so what is accepted commits in bounded time and deliveries (whose
//!   writes are never refused) keep their share of the database.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::http::error::ApiError;

/// The listener's limits (`http_*` settings, docs/security.md).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_in_flight: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Zero: no admission control.
    pub admission_write_wait: Duration,
}

impl Limits {
    /// The public listener's limits as configured.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            header_timeout: config.http_header_timeout,
            body_timeout: config.http_body_timeout,
            max_connections: config.http_max_connections,
            max_in_flight: config.http_max_in_flight,
            max_headers: config.http_max_headers,
            max_header_bytes: config.http_max_header_bytes,
            admission_write_wait: config.http_admission_write_wait,
        }
    }
}

/// What an over-limit connection is told before it is closed.
const BUSY_BODY: &str =
    r#"{"code":"unavailable","detail":"this server has as many connections as it allows; retry soon"}"#;

fn busy_answer() -> String {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
        BUSY_BODY.len()
    )
}

/// Paths answered even past `max_in_flight` (cheap, and what orchestrators poll).
fn exempt(path: &str) -> bool {
    path.starts_with("/api/v1/health")
}

/// What admission control reads and counts.
#[derive(Clone)]
pub struct Admission {
    /// How long the database's writes wait lately (`Store::write_wait`).
    pub write_wait: Arc<dyn Fn() -> Duration + Send + Sync>,
    /// Requests refused (`hookd_http_overloaded`).
    pub refused: prometheus_client::metrics::counter::Counter,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("write_wait", &(self.write_wait)())
            .finish_non_exhaustive()
    }
}

/// Whether admission control applies to a request: one that writes (by its method)
/// through the API, a source URL or a data API mode. The web UI's forms and the
/// delivery engine's own writes are never refused.
fn subject_to_admission(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && (path.starts_with("/api/") || path.starts_with("/in/") || path.starts_with("/h/"))
        && !exempt(path)
}

/// Serves `app` on `listener` until `stop` turns true, then lets every open connection
/// finish its request (hyper's graceful shutdown) and returns once all are closed.
pub async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: Limits,
    admission: Admission,
    mut stop: watch::Receiver<bool>,
) where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept:
                    // wait a little rather than spin, as every accept loop must.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // No Nagle delay: an event stream's small writes (`hookd listen`, the UI's live
        // views) go out at once, not up to 40 ms later.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(refuse(tcp));
            continue;
        };
        let service = Limited {
            inner: app.clone(),
            remote,
            in_flight: Arc::clone(&in_flight),
            body_timeout: limits.body_timeout,
            admission_write_wait: limits.admission_write_wait,
            admission: admission.clone(),
        };
        let conn = builder.serve_connection(
            TokioIo::new(tcp),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => return log_end(result),
                () = stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
            }
            log_end(conn.await);
        });
    }
    // Every connection task holds a permit until it ends.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = connections.acquire_many(all).await;
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // A header timeout, a reset, a malformed request: the client's doing, at debug.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Answers a connection over `max_connections` and closes it, within a second.
async fn refuse(mut tcp: TcpStream) {
    tracing::debug!("connection refused: http_max_connections reached");
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(busy_answer().as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// The per-request part: the client's address (what `ConnectInfo` extractors read), the
/// in-flight cap, and the body deadline.
#[derive(Clone)]
struct Limited<S> {
    inner: S,
    remote: SocketAddr,
    in_flight: Arc<Semaphore>,
    body_timeout: Duration,
    admission_write_wait: Duration,
    admission: Admission,
}

impl<S> tower::Service<Request<Incoming>> for Limited<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready; `call` uses a clone (tower's rule for services
        // moved into a future).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        if !self.admission_write_wait.is_zero() && subject_to_admission(req.method(), req.uri().path()) {
            let waited = (self.admission.write_wait)();
            if waited > self.admission_write_wait {
                tracing::debug!(?waited, "write refused: the database's writes are queueing");
                self.admission.refused.inc();
                return Box::pin(async {
                    Ok(ApiError::Overloaded(
                        "the database's writes are queueing past http_admission_write_wait; nothing was done, retry in a second".into(),
                    )
                    .into_response())
                });
            }
        }
        let permit = if exempt(req.uri().path()) {
            None
        } else {
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    tracing::debug!("request refused: http_max_in_flight reached");
                    return Box::pin(async {
                        Ok(ApiError::Unavailable(
                            "this server is handling as many requests as it allows; retry soon".into(),
                        )
                        .into_response())
                    });
                }
            }
        };
        let body_timeout = self.body_timeout;
        let mut req = req.map(|b| Body::new(DeadlineBody::new(b, body_timeout)));
        req.extensions_mut().insert(ConnectInfo(self.remote));
        let mut inner = self.inner.clone();
        Box::pin(async move {
            let mut response = tower::Service::call(&mut inner, req).await?;
            // Held until the handler has answered (an event stream's body then flows
            // without holding a slot).
            drop(permit);
            if response.status() == StatusCode::REQUEST_TIMEOUT {
                // The body did not arrive in time: the connection is not reused.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        })
    }
}

/// The request body did not arrive within `http_body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (http_body_timeout)")]
pub struct BodyTimeout(pub Duration);

/// A request body that fails with [`BodyTimeout`] once its deadline (set when the head
/// arrived) passes, however it trickles in.
struct DeadlineBody {
    inner: Incoming,
    limit: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl hyper::body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.limit).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a body-reading error is (or wraps) a [`BodyTimeout`].
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BodyTimeout>() {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_control_weighs_writes_from_clients_only() {
        for (method, path) in [
            (Method::POST, "/api/v1/app/a/msg"),
            (Method::PUT, "/api/v1/app/a"),
            (Method::PATCH, "/api/v1/app/a/endpoint/e"),
            (Method::DELETE, "/api/v1/app/a"),
            (Method::POST, "/in/src_token"),
            (Method::PUT, "/in/src_token"),
            (Method::POST, "/h/acme/game/scores/submit"),
        ] {
            assert!(subject_to_admission(&method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/api/v1/app"),
            (Method::HEAD, "/in/src_token"),
            (Method::OPTIONS, "/h/acme/game/scores/submit"),
            (Method::GET, "/h/acme/game/scores/top"),
            (Method::POST, "/api/v1/health"),
            (Method::POST, "/ui/login"),
            (Method::POST, "/portal/x"),
            (Method::POST, "/metrics"),
        ] {
            assert!(!subject_to_admission(&method, path), "{method} {path}");
        }
    }

    #[tokio::test]
    async fn a_refused_write_is_a_503_overloaded_to_retry_in_a_second() {
        let response = ApiError::Overloaded("queueing".into()).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "overloaded");
    }
}
