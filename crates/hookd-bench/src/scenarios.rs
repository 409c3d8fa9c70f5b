//! The scenarios. Each starts from nothing (fresh database, new processes) and
//! leaves nothing behind.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;
use serde_json::json;

use crate::hookd::{self, Database, Proc, Usage};
use crate::load::{self, Outcome, Spec, Window};
use crate::pgwire::{self, Proxy, Sent};
use crate::receiver::Seen;
use crate::report::{Report, Target};
use crate::{Error, Opts};

#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    Ingest,
    E2e,
    Deliver,
    Latency,
    Fanout,
    Receive,
    Backlog,
    Flow,
    Listen,
    Data,
    Nodes,
}

impl Scenario {
    pub const ALL: [Scenario; 11] = [
        Self::Ingest,
        Self::E2e,
        Self::Deliver,
        Self::Latency,
        Self::Fanout,
        Self::Receive,
        Self::Backlog,
        Self::Flow,
        Self::Listen,
        Self::Data,
        Self::Nodes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::E2e => "e2e",
            Self::Deliver => "deliver",
            Self::Latency => "latency",
            Self::Fanout => "fanout",
            Self::Receive => "receive",
            Self::Backlog => "backlog",
            Self::Flow => "flow",
            Self::Listen => "listen",
            Self::Data => "data",
            Self::Nodes => "nodes",
        }
    }

    /// Whether it measures what only PostgreSQL does (`all` leaves it out on SQLite).
    pub fn postgres_only(self) -> bool {
        matches!(self, Self::Nodes)
    }
}

pub async fn run(scenario: Scenario, bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    eprintln!("running {} on {}...", scenario.name(), opts.backend());
    match scenario {
        Scenario::Ingest => ingest(bin, dir, opts).await,
        Scenario::E2e => e2e(bin, dir, opts).await,
        Scenario::Deliver => deliver(bin, dir, opts).await,
        Scenario::Latency => latency(bin, dir, opts).await,
        Scenario::Fanout => fanout(bin, dir, opts).await,
        Scenario::Receive => receive(bin, dir, opts).await,
        Scenario::Backlog => backlog(bin, dir, opts).await,
        Scenario::Flow => flow(bin, dir, opts).await,
        Scenario::Listen => listen(bin, dir, opts).await,
        Scenario::Data => data(bin, dir, opts).await,
        Scenario::Nodes => nodes(bin, dir, opts).await,
    }
}

/// The processes and database of one run; dropped in this order (processes before
/// the database they use).
struct Setup {
    hookd: Option<Proc>,
    receiver: Option<Proc>,
    addr: SocketAddr,
    rx: SocketAddr,
    token: String,
    db: Database,
}

impl Setup {
    async fn start(
        bin: &Path,
        dir: &Path,
        opts: &Opts,
        args: &[&str],
        receiver_up: bool,
    ) -> Result<Self, Error> {
        let db = Database::fresh(opts.database.as_deref(), dir).await?;
        // The CLI migrates the new database and makes the organisation's token.
        let token = hookd::token(bin, &db)?;
        let rx = loopback(hookd::free_port()?);
        let receiver = if receiver_up {
            Some(hookd::receiver(rx).await?)
        } else {
            None
        };
        let addr = loopback(hookd::free_port()?);
        let hookd = hookd::serve(bin, &db, addr, args, &settings(opts)?).await?;
        Ok(Self {
            hookd: Some(hookd),
            receiver,
            addr,
            rx,
            token,
            db,
        })
    }

    fn pid(&self) -> Result<u32, Error> {
        Ok(self.hookd.as_ref().ok_or("hookd is not running")?.pid())
    }

    /// The application `bench` with `endpoints` endpoints, `/e/0`, `/e/1`... on the
    /// receiver.
    async fn application(&self, endpoints: usize, opts: &Opts) -> Result<(), Error> {
        let filter = opts.filter()?;
        let token = Some(self.token.as_str());
        load::call_ok(
            self.addr,
            Method::POST,
            "/api/v1/app/",
            token,
            Some(json!({"name": "bench", "uid": "bench"})),
        )
        .await?;
        for i in 0..endpoints {
            let ep = load::call_ok(
                self.addr,
                Method::POST,
                "/api/v1/app/bench/endpoint/",
                token,
                Some(json!({"url": format!("http://{}/e/{i}", self.rx), "filter": filter})),
            )
            .await?;
            let id = ep["id"].as_str().ok_or("the endpoint has no id")?;
            self.transform(&format!("/api/v1/app/bench/endpoint/{id}"), opts)
                .await?;
        }
        Ok(())
    }

    /// Switches `--transformation` on for the endpoint at `endpoint_path`, if given.
    async fn transform(&self, endpoint_path: &str, opts: &Opts) -> Result<(), Error> {
        if let Some(code) = &opts.transformation {
            load::call_ok(
                self.addr,
                Method::PATCH,
                &format!("{endpoint_path}/transformation"),
                Some(self.token.as_str()),
                Some(json!({"code": code, "enabled": true})),
            )
            .await?;
        }
        Ok(())
    }

    /// What the receiver has seen (and, with `reset`, its latency histogram cleared).
    async fn seen(&self, reset: bool) -> Result<Seen, Error> {
        let seen: Seen =
            serde_json::from_value(load::call_ok(self.rx, Method::GET, "/stats", None, None).await?)?;
        if reset {
            load::call_ok(self.rx, Method::POST, "/reset", None, None).await?;
        }
        Ok(seen)
    }

    /// Waits until the receiver has seen `total` deliveries (or `limit` passed);
    /// answers what it saw last.
    async fn wait_for(&self, total: u64, limit: Duration) -> Result<Seen, Error> {
        let deadline = Instant::now() + limit;
        loop {
            let seen = self.seen(false).await?;
            if seen.total >= total || Instant::now() > deadline {
                return Ok(seen);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `--set KEY=VALUE` pairs.
fn settings(opts: &Opts) -> Result<Vec<(String, String)>, Error> {
    opts.settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--set {s}: expected KEY=VALUE").into())
        })
        .collect()
}

/// `POST /api/v1/app/bench/msg/` with a payload of about `payload_bytes` carrying its
/// send time.
fn message_spec(token: &str, payload_bytes: usize) -> Spec {
    padded_message_spec(token, "x".repeat(payload_bytes.saturating_sub(40)))
}

/// The same message, its whole request body `bytes` long (the send time is 16 digits
/// of µs until the 2280s).
fn sized_message_spec(token: &str, bytes: usize) -> Spec {
    let frame = r#"{"eventType":"bench.event","payload":{"t":"#.len() + 16 + r#","pad":""}}"#.len();
    padded_message_spec(token, "x".repeat(bytes.saturating_sub(frame)))
}

fn padded_message_spec(token: &str, pad: String) -> Spec {
    Spec {
        method: Method::POST,
        path: "/api/v1/app/bench/msg/?with_content=false".into(),
        path_tail: None,
        headers: vec![
            ("authorization", format!("Bearer {token}")),
            ("content-type", "application/json".into()),
        ],
        body: Arc::new(move |t| {
            Bytes::from(format!(
                r#"{{"eventType":"bench.event","payload":{{"t":{t},"pad":"{pad}"}}}}"#
            ))
        }),
    }
}

/// A snapshot at the edge of a measurement window.
struct Mark {
    at: Instant,
    usage: Usage,
    seen: Option<Seen>,
}

async fn mark(setup: &Setup, reset: bool) -> Result<Mark, Error> {
    let seen = match setup.receiver {
        Some(_) => Some(setup.seen(reset).await?),
        None => None,
    };
    Ok(Mark {
        at: Instant::now(),
        usage: hookd::usage(setup.pid()?)?,
        seen,
    })
}

/// Between two marks: seconds, hookd's CPU (% of one core), deliveries/s.
struct Span {
    cpu_percent: f64,
    delivered_per_s: f64,
    seen: Option<Seen>,
}

fn span(a: &Mark, b: Mark) -> Span {
    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
    let delivered = match (&a.seen, &b.seen) {
        (Some(x), Some(y)) => y.total.saturating_sub(x.total) as f64,
        _ => 0.0,
    };
    Span {
        cpu_percent: (b.usage.cpu_s - a.usage.cpu_s) / secs * 100.0,
        delivered_per_s: delivered / secs,
        seen: b.seen,
    }
}

/// Marks the edges of the measurement window: `mark(true)` once the warm-up is over,
/// `mark(false)` when the window ends (`at` says when a mark was taken).
async fn edges<M, F, Fut>(window: Window, mark: F, at: impl Fn(&M) -> Instant) -> Result<(M, M), Error>
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<M, Error>>,
{
    tokio::time::sleep(window.warmup).await;
    let a = mark(true).await?;
    tokio::time::sleep(window.measure.saturating_sub(at(&a).elapsed())).await;
    let b = mark(false).await?;
    Ok((a, b))
}

/// Runs `load` while marking the measurement window's edges.
async fn measured<F>(setup: &Setup, window: Window, load: F) -> Result<(Outcome, Span), Error>
where
    F: std::future::Future<Output = Result<Outcome, Error>>,
{
    let marks = async {
        let (a, b) = edges(window, |first| mark(setup, first), |m: &Mark| m.at).await?;
        Ok::<_, Error>(span(&a, b))
    };
    let (out, span) = tokio::join!(load, marks);
    let (out, span) = (out?, span?);
    // The harness must not report figures of a run where nothing worked.
    if out.ok == 0 {
        return Err(format!("no request was answered 2xx while measuring: {:?}", out.errors).into());
    }
    if span.seen.is_some() && span.delivered_per_s == 0.0 {
        return Err("the receiver got no delivery while measuring".into());
    }
    Ok((out, span))
}

fn params(opts: &Opts, extra: serde_json::Value) -> serde_json::Value {
    let w = opts.window();
    let mut p = json!({
        "warmup_s": w.warmup.as_secs_f64(),
        "measure_s": w.measure.as_secs_f64(),
        "payload_bytes": opts.payload_bytes,
        "settings": opts.settings,
        "filter": opts.filter().ok().flatten(),
        "transformation": opts.transformation,
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

/// Errors by status, as a note (status 0: the connection failed).
fn note_errors(report: &mut Report, out: &Outcome) {
    if out.errors_total() > 0 {
        report.note(format!(
            "{} requests failed, by status: {:?}",
            out.errors_total(),
            out.errors
        ));
    }
}

/// hookd's CPU in the window and its peak memory over the whole run.
fn add_usage(report: &mut Report, setup: &Setup, span: &Span, rss_goal: f64) -> Result<(), Error> {
    report.add("hookd CPU (% of one core)", span.cpu_percent, "%");
    let peak = hookd::usage(setup.pid()?)?.peak_rss_mib;
    report.add_goal("hookd peak RSS", peak, "MiB", Target::Below(rss_goal));
    Ok(())
}

fn pg_or(opts: &Opts, sqlite: f64, postgres: f64) -> f64 {
    if opts.database.is_some() { postgres } else { sqlite }
}

/// How messages are offered: as fast as `--concurrency` connections go, or at a rate.
#[derive(Debug, Clone, Copy)]
enum Offer {
    Closed,
    Rate(f64),
}

/// A fresh hookd and receiver, the application `bench` with `endpoints` endpoints, and
/// messages posted to it through the measurement window.
async fn post_messages(
    bin: &Path,
    dir: &Path,
    opts: &Opts,
    endpoints: usize,
    offer: Offer,
) -> Result<(Setup, Outcome, Span), Error> {
    let setup = Setup::start(bin, dir, opts, &[], true).await?;
    setup.application(endpoints, opts).await?;
    let window = opts.window();
    let spec = message_spec(&setup.token, opts.payload_bytes);
    let load = async {
        match offer {
            Offer::Closed => load::closed(setup.addr, opts.concurrency(), window, &spec).await,
            Offer::Rate(rate) => load::open(setup.addr, rate, opts.concurrency(), window, &spec).await,
        }
    };
    let (out, span) = measured(&setup, window, load).await?;
    Ok((setup, out, span))
}

async fn ingest(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let (setup, out, span) = post_messages(bin, dir, opts, 1, Offer::Closed).await?;
    let mut r = Report::new(
        "ingest",
        opts.backend(),
        opts.quick,
        params(opts, json!({"concurrency": opts.concurrency(), "endpoints": 1})),
    );
    r.add_goal(
        "messages acknowledged/s",
        out.rate(),
        "/s",
        Target::AtLeast(pg_or(opts, 15_000.0, 5_000.0)),
    );
    r.add("API latency p50", out.ms(0.50), "ms");
    r.add_goal("API latency p99", out.ms(0.99), "ms", Target::Below(25.0));
    r.add("API latency max", out.ms(1.0), "ms");
    r.add("deliveries/s meanwhile", span.delivered_per_s, "/s");
    add_usage(&mut r, &setup, &span, 100.0)?;
    note_errors(&mut r, &out);
    Ok(r)
}

/// The request body of `e2e`'s messages, in bytes.
const E2E_BODY_BYTES: usize = 300;
/// How long `e2e` waits for the last deliveries once the posts stop.
const E2E_DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// Closed loop end to end (the method hookd is compared with other servers by):
/// `--concurrency` connections (default 32) post 300-byte messages into one endpoint as
/// fast as they are answered, and the figure is messages delivered per second from the
/// first post to the last delivery. The same load generator first gets what it can
/// from the bare receiver for as long, so the figure is also a share of what this
/// machine can do at all that day.
async fn e2e(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let connections = opts.connections.unwrap_or(32).max(1);
    let setup = Setup::start(bin, dir, opts, &[], true).await?;
    setup.application(1, opts).await?;
    let window = opts.window();
    let spec = sized_message_spec(&setup.token, E2E_BODY_BYTES);

    // The ceiling: the same connections and bodies, straight to the receiver.
    let ceiling = load::closed(setup.rx, connections, window, &spec).await?;
    if ceiling.ok == 0 {
        return Err(format!("the bare receiver answered nothing 2xx: {:?}", ceiling.errors).into());
    }

    // hookd, from the first post until the receiver has every accepted message.
    let before = setup.seen(true).await?.total;
    let usage = hookd::usage(setup.pid()?)?;
    let started = Instant::now();
    let out = load::closed(setup.addr, connections, window, &spec).await?;
    let posting = started.elapsed();
    let mut seen = setup.seen(false).await?;
    while seen.total.saturating_sub(before) < out.ok_total && started.elapsed() < posting + E2E_DRAIN_LIMIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
        seen = setup.seen(false).await?;
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-6);
    let cpu_s = hookd::usage(setup.pid()?)?.cpu_s - usage.cpu_s;
    let delivered = seen.total.saturating_sub(before);
    let per_s = delivered as f64 / elapsed;
    if out.ok == 0 || delivered == 0 {
        return Err(format!("nothing went through hookd: {:?}", out.errors).into());
    }

    let mut r = Report::new(
        "e2e",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"connections": connections, "body_bytes": E2E_BODY_BYTES, "endpoints": 1}),
        ),
    );
    r.add_goal(
        "messages delivered/s, first post to last delivery",
        per_s,
        "/s",
        Target::AtLeast(pg_or(opts, 9_000.0, 4_000.0)),
    );
    let share = per_s / ceiling.rate().max(1e-6) * 100.0;
    if opts.database.is_none() {
        r.add_goal(
            "share of the bare receiver's rate",
            share,
            "%",
            Target::AtLeast(8.0),
        );
    } else {
        r.add("share of the bare receiver's rate", share, "%");
    }
    r.add("bare receiver, same load generator", ceiling.rate(), "/s");
    r.add_goal(
        "accepted but not delivered",
        out.ok_total.saturating_sub(delivered) as f64,
        "",
        Target::Below(1.0),
    );
    r.add("API latency p50", out.ms(0.50), "ms");
    r.add_goal("API latency p99", out.ms(0.99), "ms", Target::Below(25.0));
    r.add("event -> delivery p50", seen.p50_us as f64 / 1000.0, "ms");
    r.add("event -> delivery p99", seen.p99_us as f64 / 1000.0, "ms");
    r.add(
        "seconds from the last post to the last delivery",
        elapsed - posting.as_secs_f64(),
        "s",
    );
    r.add("hookd CPU (% of one core)", cpu_s / elapsed * 100.0, "%");
    r.add("hookd CPU µs per message", cpu_s * 1e6 / delivered as f64, "µs");
    let peak = hookd::usage(setup.pid()?)?.peak_rss_mib;
    r.add_goal("hookd peak RSS", peak, "MiB", Target::Below(100.0));
    note_errors(&mut r, &out);
    Ok(r)
}

async fn deliver(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let rate = opts.rate.unwrap_or(10_000.0);
    let (setup, out, span) = post_messages(bin, dir, opts, 1, Offer::Rate(rate)).await?;
    let stopped = Instant::now();
    let at_stop = setup.seen(false).await?;
    let drained = setup.wait_for(out.ok_total, Duration::from_secs(120)).await?;
    let drain_s = stopped.elapsed().as_secs_f64();
    let seen = span.seen.as_ref().ok_or("no receiver figures")?;
    let mut r = Report::new(
        "deliver",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"offered_messages_per_s": rate, "connections": opts.concurrency(), "endpoints": 1}),
        ),
    );
    r.add_goal(
        "deliveries/s",
        span.delivered_per_s,
        "/s",
        Target::AtLeast(pg_or(opts, 10_000.0, 5_000.0)),
    );
    r.add("messages acknowledged/s", out.rate(), "/s");
    r.add("event -> delivery p50", seen.p50_us as f64 / 1000.0, "ms");
    r.add("event -> delivery p95", seen.p95_us as f64 / 1000.0, "ms");
    r.add("event -> delivery p99", seen.p99_us as f64 / 1000.0, "ms");
    r.add("API latency p99", out.ms(0.99), "ms");
    r.add(
        "undelivered when the load stopped",
        out.ok_total.saturating_sub(at_stop.total) as f64,
        "",
    );
    r.add("seconds to deliver them", drain_s, "s");
    add_usage(&mut r, &setup, &span, 100.0)?;
    if drained.total != out.ok_total {
        r.note(format!(
            "{} messages acknowledged, {} deliveries received",
            out.ok_total, drained.total
        ));
    }
    note_errors(&mut r, &out);
    Ok(r)
}

async fn latency(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let rate = opts.rate.unwrap_or(1_000.0);
    let (setup, out, span) = post_messages(bin, dir, opts, 1, Offer::Rate(rate)).await?;
    let seen = span.seen.as_ref().ok_or("no receiver figures")?;
    let mut r = Report::new(
        "latency",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"rate": rate, "connections": opts.concurrency(), "endpoints": 1}),
        ),
    );
    r.add("messages acknowledged/s", out.rate(), "/s");
    r.add("deliveries/s", span.delivered_per_s, "/s");
    r.add("event -> delivery p50", seen.p50_us as f64 / 1000.0, "ms");
    r.add("event -> delivery p95", seen.p95_us as f64 / 1000.0, "ms");
    r.add_goal(
        "event -> delivery p99",
        seen.p99_us as f64 / 1000.0,
        "ms",
        Target::Below(10.0),
    );
    r.add("event -> delivery max", seen.max_us as f64 / 1000.0, "ms");
    r.add("API latency p99", out.ms(0.99), "ms");
    add_usage(&mut r, &setup, &span, 100.0)?;
    note_errors(&mut r, &out);
    Ok(r)
}

async fn fanout(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let endpoints = opts.endpoints.unwrap_or(100).max(1);
    let rate = opts.rate.unwrap_or(20_000.0 / endpoints as f64);
    let (setup, out, span) = post_messages(bin, dir, opts, endpoints, Offer::Rate(rate)).await?;
    let seen = span.seen.as_ref().ok_or("no receiver figures")?;
    let mut r = Report::new(
        "fanout",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"endpoints": endpoints, "offered_messages_per_s": rate, "connections": opts.concurrency()}),
        ),
    );
    if endpoints == 100 {
        r.add_goal(
            "deliveries/s",
            span.delivered_per_s,
            "/s",
            Target::AtLeast(20_000.0),
        );
    } else {
        r.add("deliveries/s", span.delivered_per_s, "/s");
    }
    r.add("deliveries/s offered", out.rate() * endpoints as f64, "/s");
    r.add("messages acknowledged/s", out.rate(), "/s");
    r.add("API latency p99", out.ms(0.99), "ms");
    r.add("event -> delivery p50", seen.p50_us as f64 / 1000.0, "ms");
    r.add("endpoints that received deliveries", seen.paths as f64, "");
    add_usage(&mut r, &setup, &span, 100.0)?;
    note_errors(&mut r, &out);
    Ok(r)
}

async fn receive(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let setup = Setup::start(bin, dir, opts, &[], true).await?;
    let token = Some(setup.token.as_str());
    let (id, path) = generic_source(&setup).await?;
    let id = id.as_str();
    let dest = load::call_ok(
        setup.addr,
        Method::POST,
        &format!("/ingest/api/v1/source/{id}/endpoint"),
        token,
        Some(json!({"url": format!("http://{}/e/0", setup.rx), "filter": opts.filter()?})),
    )
    .await?;
    let dest = dest["id"].as_str().ok_or("the destination has no id")?;
    setup
        .transform(&format!("/ingest/api/v1/source/{id}/endpoint/{dest}"), opts)
        .await?;
    let spec = received_spec(path, opts);
    let window = opts.window();
    let (out, span) = measured(
        &setup,
        window,
        load::closed(setup.addr, opts.concurrency(), window, &spec),
    )
    .await?;
    let seen = span.seen.as_ref().ok_or("no receiver figures")?;
    let mut r = Report::new(
        "receive",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"concurrency": opts.concurrency(), "source": "generic-webhook", "destinations": 1}),
        ),
    );
    r.add_goal("requests accepted/s", out.rate(), "/s", Target::AtLeast(20_000.0));
    r.add("accept latency p50", out.ms(0.50), "ms");
    r.add("accept latency p99", out.ms(0.99), "ms");
    r.add("forwarded/s", span.delivered_per_s, "/s");
    r.add("receive -> forward p99", seen.p99_us as f64 / 1000.0, "ms");
    add_usage(&mut r, &setup, &span, 100.0)?;
    note_errors(&mut r, &out);
    Ok(r)
}

/// Offered requests/s of the listen scenario's latency passes (default).
const LISTEN_RATE: f64 = 2_000.0;

/// A source's requests relayed to the receiver through `hookd listen`: receive →
/// forward latency at `--rate` (2,000/s) through a plain destination and then through
/// a listen session (the difference is what the session adds), and the relay's
/// throughput at saturation (closed loop).
async fn listen(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let setup = Setup::start(bin, dir, opts, &[], true).await?;
    let token = Some(setup.token.as_str());
    let (_, path) = generic_source(&setup).await?;
    let forward_to = format!("http://{}/e/0", setup.rx);
    let dest = load::call_ok(
        setup.addr,
        Method::POST,
        "/ingest/api/v1/source/bench/endpoint",
        token,
        Some(json!({"url": forward_to})),
    )
    .await?;
    let dest = dest["id"].as_str().ok_or("the destination has no id")?.to_owned();
    let spec = received_spec(path, opts);
    let rate = opts.rate.unwrap_or(LISTEN_RATE);
    let window = opts.window();
    let (direct, direct_span) = measured(
        &setup,
        window,
        load::open(setup.addr, rate, opts.concurrency(), window, &spec),
    )
    .await?;
    // The destination goes; a session takes its place.
    load::call(
        setup.addr,
        Method::DELETE,
        &format!("/ingest/api/v1/source/bench/endpoint/{dest}"),
        token,
        None,
    )
    .await?;
    let session = hookd::listen(
        bin,
        setup.addr,
        &setup.token,
        "bench",
        &forward_to,
        &dir.join("listen.log"),
    )
    .await?;
    let (relayed, relayed_span) = measured(
        &setup,
        window,
        load::open(setup.addr, rate, opts.concurrency(), window, &spec),
    )
    .await?;
    let (saturated, saturated_span) = measured(
        &setup,
        window,
        load::closed(setup.addr, opts.concurrency(), window, &spec),
    )
    .await?;
    session.stop(Duration::from_secs(20))?;
    let direct_p99 = direct_span.seen.as_ref().ok_or("no receiver figures")?.p99_us as f64 / 1000.0;
    let relayed_seen = relayed_span.seen.as_ref().ok_or("no receiver figures")?;
    let relayed_p99 = relayed_seen.p99_us as f64 / 1000.0;
    let mut r = Report::new(
        "listen",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"concurrency": opts.concurrency(), "rate": rate, "listen_concurrency": 128}),
        ),
    );
    r.add_goal(
        "relayed/s at saturation",
        saturated_span.delivered_per_s,
        "/s",
        Target::AtLeast(2_000.0),
    );
    r.add("requests accepted/s at saturation", saturated.rate(), "/s");
    r.add_goal(
        "added latency p99 (through listen - direct)",
        relayed_p99 - direct_p99,
        "ms",
        Target::Below(10.0),
    );
    r.add("receive -> local p99, direct destination", direct_p99, "ms");
    r.add("receive -> local p99, through listen", relayed_p99, "ms");
    r.add(
        "receive -> local p50, through listen",
        relayed_seen.p50_us as f64 / 1000.0,
        "ms",
    );
    r.add(
        "relayed/s at the offered rate",
        relayed_span.delivered_per_s,
        "/s",
    );
    add_usage(&mut r, &setup, &saturated_span, 100.0)?;
    note_errors(&mut r, &direct);
    note_errors(&mut r, &relayed);
    note_errors(&mut r, &saturated);
    Ok(r)
}

/// A `generic-webhook` source with the uid `bench`: its id and its `/in/{token}` path.
async fn generic_source(setup: &Setup) -> Result<(String, String), Error> {
    let source = load::call_ok(
        setup.addr,
        Method::POST,
        "/ingest/api/v1/source",
        Some(setup.token.as_str()),
        Some(json!({"name": "bench", "uid": "bench", "type": "generic-webhook"})),
    )
    .await?;
    let id = source["id"].as_str().ok_or("the source has no id")?.to_owned();
    let url = source["ingestUrl"]
        .as_str()
        .ok_or("the source has no ingestUrl")?;
    let path = url
        .find("/in/")
        .map(|i| url[i..].to_owned())
        .ok_or("the ingest URL has no /in/ path")?;
    Ok((id, path))
}

/// Requests to a source's `path`: JSON with the send time, padded to the payload size.
fn received_spec(path: String, opts: &Opts) -> Spec {
    let pad = "x".repeat(opts.payload_bytes.saturating_sub(20));
    Spec {
        method: Method::POST,
        path,
        path_tail: None,
        headers: vec![("content-type", "application/json".into())],
        body: Arc::new(move |t| Bytes::from(format!(r#"{{"t":{t},"pad":"{pad}"}}"#))),
    }
}

/// Messages/s of the backlog scenario's API latency probes.
const PROBE_RATE: f64 = 1_000.0;

async fn backlog(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let pending = opts
        .pending
        .unwrap_or(if opts.quick { 10_000 } else { 1_000_000 });
    // The receiver is down and nothing delivers: an API-only node takes the messages.
    let mut setup = Setup::start(bin, dir, opts, &["--no-worker"], false).await?;
    setup.application(1, opts).await?;
    let spec = message_spec(&setup.token, opts.payload_bytes);
    // API latency is probed at an ordinary load (PROBE_RATE messages/s for 2.5 s, the
    // first 0.5 s not counted), on the empty queue and again with the backlog; the
    // backlog itself is filled at full speed in between.
    let probe = Window {
        warmup: Duration::from_millis(500),
        measure: Duration::from_secs(2),
    };
    let probe_load = || load::open(setup.addr, PROBE_RATE, opts.concurrency(), probe, &spec);
    let (empty, _) = measured(&setup, probe, probe_load()).await?;
    let fill = load::closed_count(
        setup.addr,
        opts.concurrency(),
        pending.saturating_sub(empty.ok_total + (PROBE_RATE * 2.5) as u64),
        Duration::from_secs(3_600),
        &spec,
    )
    .await?;
    let (full, span) = measured(&setup, probe, probe_load()).await?;
    let queued = empty.ok_total + fill.ok_total + full.ok_total;
    let with_backlog = hookd::usage(setup.pid()?)?;

    // The receiver comes up, and so does a node that delivers.
    if let Some(api) = setup.hookd.take() {
        api.stop(Duration::from_secs(60))?;
    }
    setup.receiver = Some(hookd::receiver(setup.rx).await?);
    let started = Instant::now();
    setup.hookd = Some(hookd::serve(bin, &setup.db, setup.addr, &[], &settings(opts)?).await?);
    let startup_s = started.elapsed().as_secs_f64();
    let draining = Instant::now();
    let limit = Duration::from_secs(120 + queued / 500);
    let drained = setup.wait_for(queued, limit).await?;
    let drain_s = draining.elapsed().as_secs_f64();
    let drain_usage = hookd::usage(setup.pid()?)?;

    let mut r = Report::new(
        "backlog",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"pending": queued, "concurrency": opts.concurrency(), "probe_messages_per_s": PROBE_RATE}),
        ),
    );
    r.add("deliveries queued", queued as f64, "");
    r.add("messages acknowledged/s while filling", fill.rate(), "/s");
    r.add("API p99 at 1,000 msg/s, empty queue", empty.ms(0.99), "ms");
    r.add_goal(
        "API p99 at 1,000 msg/s, with the backlog",
        full.ms(0.99),
        "ms",
        Target::Below(empty.ms(0.99) * 1.2),
    );
    r.add_goal(
        "RSS with the backlog",
        with_backlog.rss_mib,
        "MiB",
        Target::Below(150.0),
    );
    r.add("hookd CPU while probing (% of one core)", span.cpu_percent, "%");
    r.add("start-up with the backlog", startup_s, "s");
    r.add_goal(
        "drain rate",
        drained.total as f64 / drain_s,
        "/s",
        Target::AtLeast(10_000.0),
    );
    r.add_goal(
        "peak RSS while draining",
        drain_usage.peak_rss_mib,
        "MiB",
        Target::Below(150.0),
    );
    if drained.total < queued {
        r.note(format!(
            "only {} of {queued} deliveries arrived within {limit:?}",
            drained.total
        ));
    }
    for out in [&empty, &fill, &full] {
        note_errors(&mut r, out);
    }
    Ok(r)
}

/// A generic source named `name` of the application `bench`; answers the path of its
/// ingest URL.
async fn source_path(setup: &Setup, name: &str) -> Result<String, Error> {
    let source = load::call_ok(
        setup.addr,
        Method::POST,
        "/ingest/api/v1/source",
        Some(setup.token.as_str()),
        Some(json!({"name": name, "uid": name, "type": "generic-webhook"})),
    )
    .await?;
    let url = source["ingestUrl"]
        .as_str()
        .ok_or("the source has no ingestUrl")?;
    url.find("/in/")
        .map(|i| url[i..].to_owned())
        .ok_or_else(|| "the ingest URL has no /in/ path".into())
}

/// A counter of hookd's `/metrics` (the sum of its lines that start with `series`).
async fn metric(setup: &Setup, series: &str) -> Result<f64, Error> {
    let (_, body) = load::call(setup.addr, Method::GET, "/metrics", None, None).await?;
    Ok(String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

const RUNS_SUCCEEDED: &str = "hookd_flow_runs_ended_total{status=\"succeeded\"}";
const RUNS_ENDED: &str = "hookd_flow_runs_ended_total";
const ACCEPTED: &str = "hookd_ingest_requests_total{status=\"accepted\"}";

/// Requests to a generic source whose every accepted request runs a flow:
/// condition → transform → document.patch, offered at --rate (default 5,000/s).
/// Measures the receive path without a flow and with it at that rate (its p99 should
/// stay within 20%), flow runs ended/s while requests arrive (they should keep up),
/// how long the runs left then take, and memory with --pending runs waiting out a
/// delay (default 100,000).
async fn flow(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let setup = Setup::start(bin, dir, opts, &[], false).await?;
    let (addr, token) = (setup.addr, Some(setup.token.as_str()));
    load::call_ok(
        addr,
        Method::POST,
        "/api/v1/app/",
        token,
        Some(json!({"name": "bench", "uid": "bench"})),
    )
    .await?;
    load::call_ok(
        addr,
        Method::POST,
        "/api/v1/app/bench/collection",
        token,
        Some(json!({"name": "counts"})),
    )
    .await?;
    let plain = source_path(&setup, "plain").await?;
    let flowing = source_path(&setup, "flowing").await?;
    let waiting = source_path(&setup, "waiting").await?;
    load::call_ok(
        addr,
        Method::POST,
        "/api/v1/flow",
        token,
        Some(json!({"name": "count", "trigger": {"type": "source.request", "source": "flowing"},
                    "steps": [
                      {"name": "recent", "type": "condition", "filter": {"trigger": {"body": {"t": {"$gt": 0}}}}},
                      {"name": "shape", "type": "transform",
                       "code": "function handler(i) { return {key: 'k' + (i.trigger.body.t % 1000), t: i.trigger.body.t}; }"},
                      {"name": "keep", "type": "document.patch", "app": "bench", "collection": "counts",
                       "key": "{{ steps.shape.key }}", "body": {"last": "{{ steps.shape.t }}"}}
                    ]})),
    )
    .await?;
    load::call_ok(
        addr,
        Method::POST,
        "/api/v1/flow",
        token,
        Some(
            json!({"name": "later", "trigger": {"type": "source.request", "source": "waiting"},
                    "steps": [{"name": "wait", "type": "delay", "duration": "1h"},
                              {"name": "keep", "type": "document.put", "app": "bench", "collection": "counts",
                               "key": "late", "body": {"t": "{{ trigger.body.t }}"}}]}),
        ),
    )
    .await?;
    let pad = "x".repeat(opts.payload_bytes.saturating_sub(20));
    let spec = |path: String| {
        let pad = pad.clone();
        Spec {
            method: Method::POST,
            path,
            path_tail: None,
            headers: vec![("content-type", "application/json".into())],
            body: Arc::new(move |t| Bytes::from(format!(r#"{{"t":{t},"pad":"{pad}"}}"#))),
        }
    };
    let window = opts.window();

    // The receive path alone, then with the flow beside it.
    // Requests are offered at one rate (default 5,000/s) without the flow, then with
    // it, so the two p99s compare the same load.
    let rate = opts.rate.unwrap_or(5_000.0);
    let plain = spec(plain);
    let (alone, _) = measured(
        &setup,
        window,
        load::open(addr, rate, opts.concurrency(), window, &plain),
    )
    .await?;
    let edges = async {
        tokio::time::sleep(window.warmup).await;
        let (a, at) = (metric(&setup, RUNS_SUCCEEDED).await?, Instant::now());
        tokio::time::sleep(window.measure.saturating_sub(at.elapsed())).await;
        let b = metric(&setup, RUNS_SUCCEEDED).await?;
        Ok::<_, Error>((b - a) / at.elapsed().as_secs_f64().max(1e-6))
    };
    let accepted_before = metric(&setup, ACCEPTED).await?;
    let flowing = spec(flowing);
    let (with, runs_per_s) = tokio::join!(
        measured(
            &setup,
            window,
            load::open(addr, rate, opts.concurrency(), window, &flowing)
        ),
        edges
    );
    let ((with, span), runs_per_s) = (with?, runs_per_s?);
    // The runs still due when requests stop, until every accepted request's run ended.
    let stopped = Instant::now();
    let drain_limit = Duration::from_secs(if opts.quick { 60 } else { 600 });
    loop {
        let accepted = metric(&setup, ACCEPTED).await? - accepted_before;
        let ended = metric(&setup, RUNS_ENDED).await?;
        if ended >= accepted || stopped.elapsed() > drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain_s = stopped.elapsed().as_secs_f64();

    // Runs waiting out a delay: memory.
    let pending = opts.pending.unwrap_or(if opts.quick { 10_000 } else { 100_000 });
    let filled = load::closed_count(
        addr,
        opts.concurrency(),
        pending,
        Duration::from_secs(3_600),
        &spec(waiting),
    )
    .await?;
    let settle = Instant::now();
    loop {
        let (_, body) = load::call(
            addr,
            Method::GET,
            "/api/v1/flow-run?flow=later&status=running&limit=1",
            token,
            None,
        )
        .await?;
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        let running = page["data"].as_array().map_or(0, Vec::len);
        if running == 0 || settle.elapsed() > drain_limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let usage = hookd::usage(setup.pid()?)?;

    let mut r = Report::new(
        "flow",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"rate": rate, "concurrency": opts.concurrency(), "steps": "condition, transform, document.patch",
                   "waiting_runs": filled.ok_total}),
        ),
    );
    // The issue's target is for SQLite on these machines; PostgreSQL has none yet.
    if opts.database.is_none() {
        r.add_goal("flow runs ended/s", runs_per_s, "/s", Target::AtLeast(5_000.0));
    } else {
        r.add("flow runs ended/s", runs_per_s, "/s");
    }
    r.add("requests accepted/s, with the flow", with.rate(), "/s");
    r.add("requests accepted/s, without", alone.rate(), "/s");
    r.add("accept latency p99, without", alone.ms(0.99), "ms");
    r.add("accept latency p99, with the flow", with.ms(0.99), "ms");
    r.add_goal(
        "accept p99 with the flow / without",
        with.ms(0.99) / alone.ms(0.99).max(1e-3),
        "x",
        Target::Below(1.2),
    );
    r.add("runs left when requests stopped: drained in", drain_s, "s");
    r.add("hookd CPU (% of one core), with the flow", span.cpu_percent, "%");
    r.add_goal(
        "hookd RSS with the runs waiting",
        usage.rss_mib,
        "MiB",
        Target::Below(100.0),
    );
    r.add("hookd peak RSS", usage.peak_rss_mib, "MiB");
    note_errors(&mut r, &with);
    Ok(r)
}

/// Players on the `data` scenario's leaderboard at each measurement.
const BOARD_SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];
const QUICK_BOARD_SIZES: [u64; 2] = [1_000, 10_000];
/// Documents `data` reads at random.
const DOCUMENTS: u64 = 1_000;

/// A stream of well-mixed numbers shared by a scenario's connections (SplitMix64 over
/// a counter): which player or document a request names, and the scores.
#[derive(Clone)]
struct Mix(Arc<std::sync::atomic::AtomicU64>);

impl Mix {
    fn new(seed: u64) -> Self {
        Self(Arc::new(std::sync::atomic::AtomicU64::new(seed)))
    }

    fn next(&self) -> u64 {
        let mut z = self
            .0
            .fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The data API as a game uses it: `--concurrency` keep-alive clients calling modes
/// with an API key. A leaderboard (`latest` policy, so every submission moves its
/// player) is filled to 1,000, 100,000 and 1,000,000 players (1,000 and 10,000 with
/// `--quick`); at each size, submissions of random scores by random players and rank
/// reads of random players are measured in turn. Then reads of random documents among
/// 1,000, and increments of one hot document.
async fn data(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let setup = Setup::start(bin, dir, opts, &[], false).await?;
    let (addr, token) = (setup.addr, Some(setup.token.as_str()));
    let admin = |method: Method, path: &'static str, body: serde_json::Value| {
        load::call_ok(addr, method, path, token, Some(body))
    };
    admin(
        Method::POST,
        "/api/v1/app/",
        json!({"name": "bench", "uid": "bench"}),
    )
    .await?;
    admin(
        Method::POST,
        "/api/v1/app/bench/leaderboard",
        json!({"name": "board", "policy": "latest", "order": "desc"}),
    )
    .await?;
    admin(
        Method::POST,
        "/api/v1/app/bench/collection",
        json!({"name": "docs"}),
    )
    .await?;
    for (name, method, operation, target) in [
        ("submit", "POST", "leaderboard.submit", "board"),
        ("rank", "GET", "leaderboard.rank", "board"),
        ("doc", "GET", "document.get", "docs"),
        ("incr", "POST", "document.increment", "docs"),
    ] {
        admin(
            Method::POST,
            "/api/v1/app/bench/mode",
            json!({"name": name, "method": method, "operation": operation, "target": target}),
        )
        .await?;
    }
    let key = admin(
        Method::POST,
        "/api/v1/app/bench/api-key",
        json!({"name": "bench", "scopes": ["read", "write"], "rateLimit": 1_000_000}),
    )
    .await?;
    let key = key["key"].as_str().ok_or("the API key was not shown")?.to_owned();
    let connections = opts.concurrency();
    let window = opts.window();
    let mix = Mix::new(0x5eed);
    type Body = Arc<dyn Fn(u64) -> Bytes + Send + Sync>;
    let score: Body = {
        let mix = mix.clone();
        Arc::new(move |_| Bytes::from(format!(r#"{{"score":{}}}"#, mix.next() % 1_000_000_000)))
    };
    let empty: Body = Arc::new(|_| Bytes::new());
    let one: Body = Arc::new(|_| Bytes::from_static(br#"{"n":1}"#));
    let call = |method: Method, mode: &str, tail: Arc<dyn Fn() -> String + Send + Sync>, body: &Body| Spec {
        method,
        path: format!("/h/bench/bench/{mode}/"),
        path_tail: Some(tail),
        headers: vec![
            ("authorization", format!("Bearer {key}")),
            ("content-type", "application/json".into()),
        ],
        body: Arc::clone(body),
    };
    let mut r = Report::new("data", opts.backend(), opts.quick, data_params(opts, connections));
    let sizes: &[u64] = if opts.quick {
        &QUICK_BOARD_SIZES
    } else {
        &BOARD_SIZES
    };
    let mut filled = 0u64;
    let mut first: Option<(f64, f64)> = None;
    let mut last_cpu = 0.0;
    for &size in sizes {
        // New players p{filled}..p{size}, each submitted once.
        let next = Arc::new(std::sync::atomic::AtomicU64::new(filled));
        let tail: Arc<dyn Fn() -> String + Send + Sync> =
            Arc::new(move || format!("p{}", next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
        let seed = call(Method::POST, "submit", tail, &score);
        let fill = load::closed_count(
            addr,
            connections,
            size - filled,
            Duration::from_secs(3_600),
            &seed,
        )
        .await?;
        if fill.ok < size - filled {
            return Err(format!("filling the board to {size} players failed: {:?}", fill.errors).into());
        }
        filled = size;
        let players = {
            let mix = mix.clone();
            move || -> Arc<dyn Fn() -> String + Send + Sync> {
                let mix = mix.clone();
                Arc::new(move || format!("p{}", mix.next() % size))
            }
        };
        let (submit, span) = closed_phase(
            &setup,
            connections,
            window,
            &call(Method::POST, "submit", players(), &score),
        )
        .await?;
        let (rank, _) = closed_phase(
            &setup,
            connections,
            window,
            &call(Method::GET, "rank", players(), &empty),
        )
        .await?;
        last_cpu = span.cpu_percent;
        let players = format_count(size);
        let (submit_goal, rank_goal) = if size >= 1_000_000 && opts.database.is_none() {
            (Some(10_000.0), Some(10_000.0))
        } else {
            (None, None)
        };
        add_maybe_goal(
            &mut r,
            &format!("leaderboard submit/s, {players} players"),
            submit.rate(),
            "/s",
            submit_goal,
        );
        r.add(
            &format!("leaderboard submit p99, {players} players"),
            submit.ms(0.99),
            "ms",
        );
        add_maybe_goal(
            &mut r,
            &format!("leaderboard rank/s, {players} players"),
            rank.rate(),
            "/s",
            rank_goal,
        );
        r.add(
            &format!("leaderboard rank p99, {players} players"),
            rank.ms(0.99),
            "ms",
        );
        match first {
            None => first = Some((submit.rate(), rank.rate())),
            Some((submit_first, rank_first)) => {
                let goal = (opts.database.is_none()).then_some(80.0);
                let share = |rate: f64, of: f64| rate / of.max(1e-6) * 100.0;
                add_maybe_goal(
                    &mut r,
                    &format!("submit/s at {players} players, % of 1,000"),
                    share(submit.rate(), submit_first),
                    "%",
                    goal,
                );
                add_maybe_goal(
                    &mut r,
                    &format!("rank/s at {players} players, % of 1,000"),
                    share(rank.rate(), rank_first),
                    "%",
                    goal,
                );
            }
        }
        note_errors(&mut r, &submit);
        note_errors(&mut r, &rank);
    }

    // Documents d0..d999, then reads of random ones and increments of one.
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let keys: Arc<dyn Fn() -> String + Send + Sync> =
        Arc::new(move || format!("d{}", next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    let create = call(Method::POST, "incr", keys, &one);
    load::closed_count(addr, connections, DOCUMENTS, Duration::from_secs(600), &create).await?;
    let docs: Arc<dyn Fn() -> String + Send + Sync> = {
        let mix = mix.clone();
        Arc::new(move || format!("d{}", mix.next() % DOCUMENTS))
    };
    let (get, _) = closed_phase(
        &setup,
        connections,
        window,
        &call(Method::GET, "doc", docs, &empty),
    )
    .await?;
    let hot = call(Method::POST, "incr", Arc::new(|| "hot".to_owned()), &one);
    let (incr, span) = closed_phase(&setup, connections, window, &hot).await?;
    let sqlite = opts.database.is_none();
    add_maybe_goal(
        &mut r,
        "document get/s",
        get.rate(),
        "/s",
        sqlite.then_some(20_000.0),
    );
    r.add("document get p99", get.ms(0.99), "ms");
    add_maybe_goal(
        &mut r,
        "increments/s of one document",
        incr.rate(),
        "/s",
        sqlite.then_some(10_000.0),
    );
    r.add("increment p99", incr.ms(0.99), "ms");
    // The hot document holds every increment made while measuring and before.
    let counted = load::call_ok(
        addr,
        Method::GET,
        "/api/v1/app/bench/collection/docs/document/hot",
        token,
        None,
    )
    .await?;
    let n = counted["data"]["n"].as_u64().unwrap_or(0);
    r.add_goal(
        "increments lost",
        incr.ok_total.saturating_sub(n) as f64,
        "",
        Target::Below(1.0),
    );
    r.add(
        "hookd CPU while submitting to the largest board (% of one core)",
        last_cpu,
        "%",
    );
    add_usage(&mut r, &setup, &span, 200.0)?;
    note_errors(&mut r, &get);
    note_errors(&mut r, &incr);
    Ok(r)
}

/// `data`'s parameters: the options about messages and endpoints (which `all` passes to
/// every scenario) do nothing here, so they are not reported as applied.
fn data_params(opts: &Opts, connections: usize) -> serde_json::Value {
    let mut p = params(opts, json!({"concurrency": connections, "documents": DOCUMENTS}));
    if let Some(p) = p.as_object_mut() {
        for unused in ["payload_bytes", "filter", "transformation"] {
            p.remove(unused);
        }
    }
    p
}

/// What the split deployment has used so far: each node's CPU, the PostgreSQL
/// server's, what each node's sessions sent, the database's transactions, and what
/// the receiver saw.
struct NodesMark {
    at: Instant,
    api_cpu_s: f64,
    worker_cpu_s: f64,
    server_cpu_s: Option<f64>,
    api_sent: Sent,
    worker_sent: Sent,
    transactions: i64,
    wal_bytes: f64,
    delivered: u64,
}

/// CPU seconds of every `postgres` process on this machine (the server's backends
/// and its background workers: the WAL writer, the checkpointer, autovacuum), or
/// `None` when none is visible (a remote server).
fn postgres_cpu_s() -> Option<f64> {
    let mut total = 0.0;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() != "postgres" {
            continue;
        }
        if let Ok(usage) = hookd::usage(pid) {
            total += usage.cpu_s;
            seen = true;
        }
    }
    seen.then_some(total)
}

/// Transactions the database has ended (committed or rolled back) so far, and the
/// bytes of WAL the server has written.
async fn server_counts(db: &tokio_postgres::Client) -> Result<(i64, f64), Error> {
    // Each query is its own transaction, so it reads the statistics afresh; sessions
    // flush their counts about once a second while they work.
    let row = db
        .query_one(
            "SELECT (xact_commit + xact_rollback)::bigint, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8
             FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Per-message costs of a split deployment on PostgreSQL: an API node (`--no-worker`)
/// takes messages at `--rate` (default 2,000/s, below what one node carries, so the
/// costs are those of a node with room) for `--endpoints` endpoints (default 1), a
/// delivery node (`--no-api`) sends them;
/// each node reaches the database through its own counting proxy. Reports CPU µs
/// per message on each node and on the PostgreSQL server, and statements, round
/// trips and transactions per message: the figures docs/operations.md sizes
/// deployments from.
async fn nodes(bin: &Path, dir: &Path, opts: &Opts) -> Result<Report, Error> {
    let base = opts
        .database
        .as_deref()
        .ok_or("nodes measures nodes sharing a PostgreSQL database: give --database")?;
    if opts.pending.is_some() {
        return Err("nodes takes no --pending (it measures a flowing queue, not a backlog)".into());
    }
    let rate = opts.rate.unwrap_or(2_000.0);
    let endpoints = opts.endpoints.unwrap_or(1).max(1);
    let db = Database::fresh(Some(base), dir).await?;
    let token = hookd::token(bin, &db)?;
    let rx = loopback(hookd::free_port()?);
    let receiver = hookd::receiver(rx).await?;
    let upstream = pgwire::server(base).await?;
    let (api_proxy, worker_proxy) = (Proxy::start(upstream).await?, Proxy::start(upstream).await?);
    let through = |proxy: &Proxy| -> Result<Vec<(String, String)>, Error> {
        let mut s = settings(opts)?;
        s.push((
            "HOOKD_DATABASE_URL".into(),
            pgwire::through(db.url(), proxy.addr)?,
        ));
        Ok(s)
    };
    let api_addr = loopback(hookd::free_port()?);
    let api = hookd::serve(bin, &db, api_addr, &["--no-worker"], &through(&api_proxy)?).await?;
    let worker_addr = loopback(hookd::free_port()?);
    let worker = hookd::serve(bin, &db, worker_addr, &["--no-api"], &through(&worker_proxy)?).await?;
    let (stats, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls).await?;
    let driver = tokio::spawn(connection);
    let (api_pid, worker_pid) = (api.pid(), worker.pid());
    let setup = Setup {
        hookd: Some(api),
        receiver: Some(receiver),
        addr: api_addr,
        rx,
        token,
        db,
    };
    setup.application(endpoints, opts).await?;

    let mark = |_first| async {
        let (transactions, wal_bytes) = server_counts(&stats).await?;
        Ok::<_, Error>(NodesMark {
            at: Instant::now(),
            api_cpu_s: hookd::usage(api_pid)?.cpu_s,
            worker_cpu_s: hookd::usage(worker_pid)?.cpu_s,
            server_cpu_s: postgres_cpu_s(),
            api_sent: api_proxy.sent(),
            worker_sent: worker_proxy.sent(),
            transactions,
            wal_bytes,
            delivered: setup.seen(false).await?.total,
        })
    };
    let window = opts.window();
    let spec = message_spec(&setup.token, opts.payload_bytes);
    let marks = edges(window, mark, |m: &NodesMark| m.at);
    let (out, marks) = tokio::join!(
        load::open(setup.addr, rate, opts.concurrency(), window, &spec),
        marks
    );
    let (out, (a, b)) = (out?, marks?);
    let owed = out.ok_total * endpoints as u64;
    let drained = setup.wait_for(owed, Duration::from_secs(120)).await?;

    let secs = b.at.duration_since(a.at).as_secs_f64().max(1e-6);
    let delivered = b.delivered.saturating_sub(a.delivered);
    if out.ok == 0 || delivered == 0 {
        return Err(format!("nothing went through the nodes while measuring: {:?}", out.errors).into());
    }
    let accepted = out.ok as f64;
    // The delivery node's and the database's costs, per message whose deliveries
    // were sent in the window.
    let sent_messages = delivered as f64 / endpoints as f64;
    let per_message = |x: f64| x / sent_messages;
    let mut r = Report::new(
        "nodes",
        opts.backend(),
        opts.quick,
        params(
            opts,
            json!({"offered_messages_per_s": rate, "connections": opts.concurrency(), "endpoints": endpoints,
                   "nodes": "one --no-worker, one --no-api"}),
        ),
    );
    r.add("messages acknowledged/s", out.rate(), "/s");
    r.add("deliveries/s", delivered as f64 / secs, "/s");
    r.add(
        "API node CPU µs per message",
        (b.api_cpu_s - a.api_cpu_s) * 1e6 / accepted,
        "µs",
    );
    r.add(
        "delivery node CPU µs per message",
        per_message((b.worker_cpu_s - a.worker_cpu_s) * 1e6),
        "µs",
    );
    match (a.server_cpu_s, b.server_cpu_s) {
        (Some(x), Some(y)) => r.add("PostgreSQL CPU µs per message", per_message((y - x) * 1e6), "µs"),
        _ => r.note("PostgreSQL's processes are not visible here: its CPU is not measured"),
    }
    let api_sent = b.api_sent.since(a.api_sent);
    let worker_sent = b.worker_sent.since(a.worker_sent);
    r.add(
        "API node statements per message",
        api_sent.statements as f64 / accepted,
        "",
    );
    r.add(
        "API node round trips per message",
        api_sent.round_trips as f64 / accepted,
        "",
    );
    r.add(
        "delivery node statements per message",
        per_message(worker_sent.statements as f64),
        "",
    );
    r.add(
        "delivery node round trips per message",
        per_message(worker_sent.round_trips as f64),
        "",
    );
    r.add(
        "transactions per message (both nodes)",
        per_message((b.transactions - a.transactions) as f64),
        "",
    );
    r.add(
        "WAL bytes per message (the whole server)",
        per_message(b.wal_bytes - a.wal_bytes),
        "B",
    );
    r.add("API latency p99", out.ms(0.99), "ms");
    r.add_goal(
        "deliveries owed but not made",
        owed.saturating_sub(drained.total) as f64,
        "",
        Target::Below(1.0),
    );
    note_errors(&mut r, &out);
    r.note(
        "statements: Execute and Query messages; round trips: Sync and Query messages \
         (each waits for the server); transactions: pg_stat_database, counted by the \
         server a second or so late, so a short window is approximate",
    );
    drop(worker);
    drop(setup);
    driver.abort();
    Ok(r)
}

/// One closed-loop measurement of `spec` against hookd.
async fn closed_phase(
    setup: &Setup,
    connections: usize,
    window: Window,
    spec: &Spec,
) -> Result<(Outcome, Span), Error> {
    measured(setup, window, load::closed(setup.addr, connections, window, spec)).await
}

/// A figure with a goal only where the scenario sets one (SQLite's targets).
fn add_maybe_goal(r: &mut Report, name: &str, value: f64, unit: &'static str, goal: Option<f64>) {
    match goal {
        Some(goal) => r.add_goal(name, value, unit, Target::AtLeast(goal)),
        None => r.add(name, value, unit),
    }
}

/// 1000000 as "1,000,000".
fn format_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
