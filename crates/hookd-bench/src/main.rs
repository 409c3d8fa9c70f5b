//! `hookd-bench`: hookd's load harness. Each scenario starts a release `hookd` on a
//! fresh database, a receiver in its own process, and drives it with a keep-alive load
//! generator; it prints a table and writes JSON. See docs/benchmarks.md.
//!
//! ```sh
//! cargo run --release -p hookd-bench -- deliver
//! cargo run --release -p hookd-bench -- all --quick
//! cargo run --release -p hookd-bench -- ingest --database postgres://postgres@127.0.0.1:5432/test
//! ```

mod hookd;
mod load;
mod pgwire;
mod receiver;
mod report;
mod scenarios;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Now, in µs since the Unix epoch: the send time payloads carry.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[derive(Debug, Parser)]
#[command(name = "hookd-bench", about = "hookd's load harness (docs/benchmarks.md)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Message creation at full speed into one endpoint: acknowledged messages/s and
    /// API latency.
    Ingest(Opts),
    /// Closed loop end to end: --concurrency connections (default 32) post 300-byte
    /// messages as fast as they are answered into one endpoint; messages delivered/s
    /// from the first post to the last delivery, as a share of what the same load
    /// generator gets from the bare receiver in the same run.
    E2e(Opts),
    /// End to end, ingest and delivery at once, at an offered rate (--rate, default
    /// 10,000 messages/s): deliveries/s, whether they kept up, event → delivery latency.
    Deliver(Opts),
    /// A fixed offered rate (--rate, default 1,000 messages/s): event → delivery latency.
    Latency(Opts),
    /// One application with --endpoints endpoints (default 100): deliveries/s.
    Fanout(Opts),
    /// A generic source with one destination: accepted requests/s at /in/{token} and
    /// forwarded/s.
    Receive(Opts),
    /// --pending deliveries (default 1,000,000) queued for a receiver that is down:
    /// memory and API latency with the backlog, then the drain rate once it is up.
    Backlog(Opts),
    /// A source whose requests each run a flow (condition, transform, document.patch),
    /// offered at --rate (default 5,000/s): flow runs ended/s, the receive path's p99
    /// with and without it, and memory with --pending runs (default 100,000) waiting
    /// out a delay.
    Flow(Opts),
    /// A source relayed to the receiver through `hookd listen`: relayed/s at
    /// saturation, and the receive → local p99 at --rate (default 2,000/s) through a
    /// plain destination and through the session (what the session adds).
    Listen(Opts),
    /// The data API through modes with an API key, --concurrency clients (default 64):
    /// leaderboard submissions and rank reads on boards of 1,000, 100,000 and 1,000,000
    /// players, document reads, and increments of one hot document.
    Data(Opts),
    /// PostgreSQL only: an API node (--no-worker) and a delivery node (--no-api) on one
    /// database, messages at --rate (default 2,000/s) into --endpoints endpoints
    /// (default 1): CPU µs per message on each node
    /// and on the PostgreSQL server, statements, round trips and transactions per
    /// message (docs/operations.md sizes deployments from them).
    Nodes(Opts),
    /// Every scenario in turn (nodes only on PostgreSQL).
    All(Opts),
    /// The receiver process (started by the harness).
    #[command(hide = true)]
    Receiver {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(Debug, Clone, Args)]
pub struct Opts {
    /// A few seconds per scenario (and a 10,000-delivery backlog): checks that the harness
    /// works; its figures are not the published ones.
    #[arg(long)]
    pub quick: bool,
    /// PostgreSQL to measure on (a fresh schema is made in it and dropped). Default: a
    /// new SQLite file.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Measured seconds (after the warm-up).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECONDS")]
    pub warmup: Option<f64>,
    /// Connections of the load generator (closed loop: requests in flight). Default:
    /// 64; e2e: 32.
    #[arg(long = "concurrency")]
    pub connections: Option<usize>,
    /// Offered messages/s (deliver: default 10,000; latency: 1,000; fanout: 20,000 /
    /// endpoints; flow: 5,000 requests/s).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Endpoints of the application (fanout; default 100).
    #[arg(long)]
    pub endpoints: Option<usize>,
    /// Deliveries queued before the receiver comes up (backlog).
    #[arg(long)]
    pub pending: Option<u64>,
    /// Bytes of payload per message (the JSON the endpoint receives).
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// The hookd binary to measure. Default: `cargo build --release` then
    /// target/release/hookd.
    #[arg(long)]
    pub hookd: Option<PathBuf>,
    /// Where to write the JSON report. Default: target/bench/SCENARIO-BACKEND.json.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Extra hookd settings for the run, as KEY=VALUE (e.g. HOOKD_SQLITE_SYNCHRONOUS=normal).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// A payload filter (docs/filters.md) put on every endpoint and destination the
    /// scenario makes, e.g. '{"body": {"t": {"$gt": 0}}}' (the payload is
    /// `{"t": <µs>, "pad": "xxx..."}`).
    #[arg(long, value_name = "JSON")]
    pub filter: Option<String>,
    /// A transformation (docs/transformations.md) switched on for every endpoint and
    /// destination the scenario makes: JavaScript declaring `handler(webhook)`, e.g.
    /// 'function handler(w) { w.payload.seen = true; return w }'.
    #[arg(long, value_name = "CODE")]
    pub transformation: Option<String>,
}

impl Opts {
    /// The `--filter` document, if one was given.
    pub fn filter(&self) -> Result<Option<serde_json::Value>, serde_json::Error> {
        self.filter.as_deref().map(serde_json::from_str).transpose()
    }

    pub fn window(&self) -> load::Window {
        let (warmup, measure) = if self.quick { (1.0, 3.0) } else { (5.0, 20.0) };
        load::Window {
            warmup: Duration::from_secs_f64(self.warmup.unwrap_or(warmup).max(0.0)),
            measure: Duration::from_secs_f64(self.duration.unwrap_or(measure).max(0.5)),
        }
    }

    /// `--concurrency`, or 64.
    pub fn concurrency(&self) -> usize {
        self.connections.unwrap_or(64).max(1)
    }

    pub fn backend(&self) -> &'static str {
        if self.database.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Receiver { listen } => receiver::run(listen),
        command => run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), Error> {
    use scenarios::Scenario;
    let (list, opts) = match command {
        Command::Ingest(o) => (vec![Scenario::Ingest], o),
        Command::E2e(o) => (vec![Scenario::E2e], o),
        Command::Deliver(o) => (vec![Scenario::Deliver], o),
        Command::Latency(o) => (vec![Scenario::Latency], o),
        Command::Fanout(o) => (vec![Scenario::Fanout], o),
        Command::Receive(o) => (vec![Scenario::Receive], o),
        Command::Backlog(o) => (vec![Scenario::Backlog], o),
        Command::Flow(o) => (vec![Scenario::Flow], o),
        Command::Listen(o) => (vec![Scenario::Listen], o),
        Command::Data(o) => {
            // Run alone, these would be accepted and do nothing.
            if o.filter.is_some()
                || o.transformation.is_some()
                || o.rate.is_some()
                || o.endpoints.is_some()
                || o.pending.is_some()
            {
                return Err("data calls modes, not endpoints: it takes no --filter, --transformation, --rate, --endpoints or --pending".into());
            }
            (vec![Scenario::Data], o)
        }
        Command::Nodes(o) => (vec![Scenario::Nodes], o),
        Command::All(o) => {
            let on_postgres = o.database.is_some();
            let list = Scenario::ALL
                .into_iter()
                .filter(|s| on_postgres || !s.postgres_only())
                .collect();
            (list, o)
        }
        Command::Receiver { .. } => return Ok(()),
    };
    // The load generator gets one thread: the machine's cores are hookd's to use.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let bin = hookd::binary(opts.hookd.clone())?;
        let out_dir = bin
            .parent()
            .and_then(|p| p.parent())
            .map(|t| t.join("bench"))
            .unwrap_or_else(|| PathBuf::from("bench"));
        std::fs::create_dir_all(&out_dir)?;
        let mut reports = Vec::new();
        for scenario in &list {
            let report = scenarios::run(*scenario, &bin, &out_dir, &opts).await?;
            report.print();
            reports.push(report);
        }
        let name = if list.len() == 1 { list[0].name() } else { "all" };
        let path = opts
            .json
            .clone()
            .unwrap_or_else(|| out_dir.join(format!("{name}-{}.json", opts.backend())));
        std::fs::write(&path, serde_json::to_vec_pretty(&reports)?)?;
        eprintln!("wrote {}", path.display());
        Ok(())
    })
}
