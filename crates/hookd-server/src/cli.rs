//! The `hookd` command line: the server's commands (`serve`, `migrate`, `token ...`,
//! `ui-link`, `config print`, ...), which read the server's configuration and open its
//! database; the remote ones (`listen`, `tail`, `replay`, `send`), which talk to a server over HTTP
//! (`crate::client`); and the install's helpers (`completions`, `man`).

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hookd_core::id::TokenId;
use tokio::net::TcpListener;

use crate::config::{Config, DEFAULT_TOML, LogFormat};

#[derive(Debug, Parser)]
#[command(name = "hookd", version, about = "A self-hosted webhook server.", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The command line's definition (completions, the man page).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API and deliver webhooks until SIGTERM or Ctrl-C.
    Serve {
        /// Do not serve the API or source URLs (only /api/v1/health and /metrics): a
        /// delivery-only node. Same as `api_enabled = false`.
        #[arg(long)]
        no_api: bool,
        /// Do not run the delivery engine, cron sources or pruning: an API-only node.
        /// Same as `delivery_enabled = false`.
        #[arg(long, conflicts_with = "no_api")]
        no_worker: bool,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Copy the embedded (SQLite) database into a new file, consistently, while
    /// servers keep using it. Back up the secret key separately (docs/operations.md).
    Backup {
        /// The backup file to make; it must not exist.
        #[arg(long)]
        to: std::path::PathBuf,
    },
    /// Replace the embedded (SQLite) database with a backup made by `hookd backup`.
    /// Stop every hookd using the database first.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: std::path::PathBuf,
    },
    /// Copy everything from an SQLite database into an empty PostgreSQL database (stop
    /// every hookd using the SQLite file first). All or nothing: one transaction.
    MigrateData {
        /// The SQLite database, e.g. `sqlite://hookd-data/hookd.db`.
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, e.g. `postgres://hookd@db:5432/hookd`; it is migrated
        /// and must hold no data yet.
        #[arg(long)]
        to: String,
    },
    /// Delete messages older than a duration, with their deliveries and attempts, and
    /// expunge payloads past their retention (safe while a server runs).
    Prune {
        /// e.g. `30d`, `12h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
    },
    /// The key that seals secrets at rest (docs/security.md#secrets-at-rest).
    Secrets {
        #[command(subcommand)]
        action: SecretsCommand,
    },
    /// Manage API tokens (works while a server runs on the same database).
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Print a one-time link that signs a browser in to the operator UI (`/ui`) for an
    /// organisation (created when missing); the URL is the last line of stdout.
    UiLink {
        /// Organisation name (or id).
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Manage the API keys of an application's data API modes (`/h/...`).
    ApiKey {
        #[command(subcommand)]
        action: ApiKeyCommand,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Bring a source's requests or an application's messages to a local URL, through
    /// a session on a hookd server (remote: --server, --token). Ctrl-C ends it.
    Listen(ListenCommand),
    /// Follow a source's requests (with their destinations' results) or an
    /// application's messages (with their attempts), one line each (remote).
    Tail(TailCommand),
    /// Replay a source's logged requests in a time range, forwarded again by the
    /// server or sent to a URL from here, with progress; Ctrl-C stops, the same
    /// command resumes (remote).
    Replay(ReplayCommand),
    /// Send a message, or one per line of a JSON-lines file with progress (remote).
    Send(SendCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page, or write one page per command into a directory.
    Man {
        /// Write hookd.1, hookd-listen.1, ... here instead.
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["source", "app"])))]
struct TailCommand {
    /// A source (id or uid): what it receives, and its destinations' results.
    #[arg(long)]
    source: Option<String>,
    /// An application (id or uid): its messages and their attempts.
    #[arg(long)]
    app: Option<String>,
    /// One JSON object per line (`type`: request, message or attempt).
    #[arg(long)]
    json: bool,
    /// How often the server is asked.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: std::time::Duration,
    #[command(flatten)]
    connection: crate::client::Connection,
}

#[derive(Debug, clap::Args)]
struct ReplayCommand {
    /// The source (id or uid).
    #[arg(long)]
    source: String,
    /// Requests received since: a duration back from now (2h, 30m) or an RFC 3339 time.
    #[arg(long)]
    since: String,
    /// ... until (same forms) [default: now].
    #[arg(long)]
    until: Option<String>,
    /// Only requests with this verdict: accepted, duplicate, rejected, filtered (the
    /// server forwards only accepted and duplicate ones; --to sends any).
    #[arg(long)]
    status: Option<String>,
    /// Send each request from here to this URL (method, path, query, headers, exact
    /// body) instead of having the server forward it.
    #[arg(long, conflicts_with = "destination")]
    to: Option<url::Url>,
    /// Have the server forward to this destination only (id or uid).
    #[arg(long)]
    destination: Option<String>,
    /// Start over, ignoring where an interrupted run of this command stopped.
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    connection: crate::client::Connection,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["payload", "payloads"])))]
struct SendCommand {
    /// The application (id or uid).
    #[arg(long)]
    app: String,
    #[arg(long)]
    event_type: String,
    /// The payload: JSON, @file.json, or - for stdin.
    #[arg(long)]
    payload: Option<String>,
    /// A JSON-lines file: one message per line, with progress; resumable.
    #[arg(long)]
    payloads: Option<std::path::PathBuf>,
    /// Channels of the message(s) (comma-separated).
    #[arg(long, value_delimiter = ',')]
    channels: Vec<String>,
    #[command(flatten)]
    connection: crate::client::Connection,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["source", "app"])))]
struct ListenCommand {
    /// Follow the requests this source accepts (id or uid), after verification.
    #[arg(long)]
    source: Option<String>,
    /// Follow this application's messages (id or uid), signed for a temporary endpoint.
    #[arg(long)]
    app: Option<String>,
    /// With --app: only these event types (comma-separated).
    #[arg(long, value_delimiter = ',', requires = "app")]
    event_types: Vec<String>,
    /// The local URL requests are replayed to, e.g. http://localhost:3000/hooks (a
    /// source's path below its URL and the query are appended).
    #[arg(long)]
    forward_to: url::Url,
    /// Names the session; the same name resumes it and receives what waited for it
    /// [default: this host's name and the local port].
    #[arg(long)]
    session: Option<String>,
    /// Keep the session after Ctrl-C: requests keep waiting for the next `hookd listen`.
    #[arg(long)]
    keep: bool,
    /// Requests forwarded to the local URL at once at most.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// One JSON object per request on stdout instead of a line of text.
    #[arg(long)]
    json: bool,
    /// How long the local URL may take to answer. The server waits its
    /// `delivery_timeout` (15 s by default) for the whole hand-over, so keep this below.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: std::time::Duration,
    #[command(flatten)]
    connection: crate::client::Connection,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Print a new random key (base64 of 32 bytes) for `secret_key`.
    NewKey,
    /// Re-seal every stored secret under the current key (`secret_key`, or the key
    /// file's first key), opening what older keys sealed (`secret_key_previous`, or the
    /// key file's further lines). Batch by batch, while servers keep running: give
    /// every node the new key with the old one as previous first.
    RotateKey {
        /// Rows per transaction.
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints it as the last line of stdout. Creates the organisation
    /// when it does not exist.
    Create {
        /// Organisation name (or id).
        #[arg(long, default_value = "default")]
        org: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List an organisation's tokens (ids and names; secrets are never stored).
    List {
        #[arg(long, default_value = "default")]
        org: String,
    },
    /// Revoke a token by its id (`tok_...`).
    Revoke {
        #[arg(long, default_value = "default")]
        org: String,
        token_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key; prints it as the last line of stdout (it is shown only once).
    Create {
        /// Organisation name (or id).
        #[arg(long, default_value = "default")]
        org: String,
        /// Application id or uid.
        #[arg(long)]
        app: String,
        /// A name to recognise the key by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// `read` and/or `write` (repeat the flag for both).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Only this mode (repeat for several; default: every mode).
        #[arg(long = "mode")]
        modes: Vec<String>,
        /// Requests per second (default: `data_key_rate_limit`).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List an application's keys (ids, names, scopes; secrets are never stored).
    List {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        app: String,
    },
    /// Revoke a key by its id (`key_...`).
    Revoke {
        #[arg(long, default_value = "default")]
        org: String,
        #[arg(long)]
        app: String,
        key_id: String,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration as TOML, secrets redacted.
    Print {
        /// Print the documented defaults instead.
        #[arg(long)]
        defaults: bool,
    },
}

/// Runs the command line; the binary's `main` is just this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Config {
            action: ConfigCommand::Print { defaults: true },
        } => {
            print!("{DEFAULT_TOML}");
            return ExitCode::SUCCESS;
        }
        Command::Completions { shell } => {
            // clap_complete panics on a failed write, so the script is rendered first.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command(), "hookd", &mut script);
            return print_generated("completions", &script);
        }
        Command::Man { dir } => return man(dir),
        Command::Listen(l) => return listen(l),
        Command::Tail(t) => {
            let tailed = match (t.source, t.app) {
                (Some(s), _) => crate::client::tail::Tailed::Source(s),
                (_, Some(a)) => crate::client::tail::Tailed::App(a),
                _ => unreachable_target(),
            };
            let (json, interval) = (t.json, t.interval);
            return remote("tail", &t.connection, |r| {
                crate::client::tail::run(r, tailed, json, interval)
            });
        }
        Command::Replay(r) => {
            let args = crate::client::replay::ReplayArgs {
                source: r.source,
                since: r.since,
                until: r.until,
                status: r.status,
                to: r.to,
                destination: r.destination,
                restart: r.restart,
            };
            return remote("replay", &r.connection, |c| crate::client::replay::run(c, args));
        }
        Command::Send(s) => {
            let args = crate::client::send::SendArgs {
                app: s.app,
                event_type: s.event_type,
                payload: s.payload,
                payloads: s.payloads,
                channels: s.channels,
            };
            return remote("send", &s.connection, |c| crate::client::send::run(c, args));
        }
        other => other,
    };
    let loaded = match Config::load() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hookd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&loaded.config);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, loaded.config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("hookd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::Serve { no_api, no_worker } => {
            let mut config = config;
            if no_api {
                config.api_enabled = false;
            }
            if no_worker {
                config.delivery_enabled = false;
            }
            serve(config).await
        }
        Command::Migrate => {
            let store = crate::open_store(&config).await?;
            store.ping().await?;
            println!("the {} database is at the latest schema", store.backend_name());
            Ok(())
        }
        Command::MigrateData { from, to } => migrate_data(&config, &from, to).await,
        Command::Backup { to } => backup(&config, &to),
        Command::Restore { from } => restore(&config, &from),
        Command::Secrets {
            action: SecretsCommand::NewKey,
        } => {
            println!("{}", hookd_core::sealed::SealingKey::generate().to_base64());
            Ok(())
        }
        Command::Secrets {
            action: SecretsCommand::RotateKey { batch },
        } => {
            if batch == 0 {
                return Err("--batch must be at least 1".into());
            }
            let store = crate::open_store(&config).await?;
            let resealed = crate::secret_key::rotate(store.as_ref(), batch).await?;
            println!(
                "every secret is sealed under the current key ({resealed} re-sealed); the previous keys may be removed"
            );
            Ok(())
        }
        Command::Token { action } => token(action, config).await,
        Command::ApiKey { action } => api_key(action, config).await,
        Command::UiLink { org } => {
            let store = crate::open_store(&config).await?;
            let (org, link) =
                crate::service::ui_session::issue_sign_in_link(store.as_ref(), &org, config.ui_link_lifetime)
                    .await?;
            eprintln!(
                "a sign-in link for organisation {} ({}); it works once, within {}:",
                org.name,
                org.id,
                humantime::format_duration(config.ui_link_lifetime)
            );
            println!(
                "{}/ui/sign-in?token={}",
                config.public_url().trim_end_matches('/'),
                link.reveal()
            );
            Ok(())
        }
        Command::Prune { older_than } => {
            let store = crate::open_store(&config).await?;
            let deleted = crate::ops::retention::delete_older_than(store.as_ref(), older_than).await?;
            let expunged = crate::ops::retention::prune_expired(store.as_ref()).await?;
            println!(
                "deleted {deleted} messages older than {}; expunged {expunged} expired payloads",
                humantime::format_duration(older_than)
            );
            Ok(())
        }
        Command::Config {
            action: ConfigCommand::Print { .. },
        } => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        // Run by `main` before the configuration is read.
        Command::Listen(_)
        | Command::Tail(_)
        | Command::Replay(_)
        | Command::Send(_)
        | Command::Completions { .. }
        | Command::Man { .. } => Ok(()),
    }
}

/// `hookd migrate-data`: table by table, in batches, into one PostgreSQL transaction.
async fn migrate_data(config: &Config, from: &str, to: String) -> Result<(), Box<dyn std::error::Error>> {
    let path = crate::config::sqlite_path(from).map_err(|e| format!("--from: {e}"))?;
    if !path.is_file() {
        return Err(format!("--from: {} does not exist", path.display()).into());
    }
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        return Err("--to must be a postgres:// URL".into());
    }
    // Both with the configured key, or else the key file beside the SQLite database
    // (the PostgreSQL nodes then need that key as their secret_key). Sealed values
    // are copied as they are: the keys must be the same.
    let sqlite_db = crate::config::DatabaseKind::Sqlite(path.clone());
    let keyring = crate::secret_key::keyring_for(config, &sqlite_db)?;
    let source = hookd_store_sqlite::SqliteOptions::new(path.clone(), keyring.clone());
    let sqlite = hookd_store_sqlite::SqliteStore::open(source).await?;
    let options = crate::pg_options(config, to, keyring);
    let pg = hookd_store_postgres::PgStore::open(options.clone()).await?;
    if !pg.is_empty().await? {
        return Err("--to already holds data; migrate-data only fills an empty database".into());
    }
    let mut import = hookd_store_postgres::Import::begin(&options).await?;
    for table in hookd_store::copy::TABLES {
        let (mut after, mut copied) = (0, 0usize);
        loop {
            let batch = sqlite.export_batch(table, after, 500).await?;
            if batch.rows.is_empty() {
                break;
            }
            import.insert(table, &batch).await?;
            copied += batch.rows.len();
            after = batch.next;
        }
        println!("{table}: {copied} rows");
    }
    let rows = import.commit().await?;
    // Values an older key sealed are re-sealed under the current one, so the new
    // database's key check and its values agree.
    crate::secret_key::rotate(&pg, 500).await?;
    if config.secret_key.trim().is_empty() && config.secret_key_file.trim().is_empty() {
        println!(
            "the secrets are sealed under the key in {}: give every PostgreSQL node that key as secret_key",
            crate::secret_key::beside(&path).display()
        );
    }
    println!(
        "copied {rows} rows from {} to {}; point HOOKD_DATABASE_URL at the new database",
        crate::config::redact_url(from),
        crate::config::redact_url(&options.url)
    );
    Ok(())
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (listen / HOOKD_LISTEN): {e}", config.listen))?;
    let grace = config.shutdown_timeout;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = crate::launch(config.clone(), listener, async {
        let _ = stop_rx.await;
    })
    .await?;
    tracing::info!(
        address = %running.local_addr(),
        database = %crate::config::redact_url(&config.database_url),
        node = %config.node_id(),
        api = config.api_enabled,
        worker = config.delivery_enabled,
        public_url = %config.public_url(),
        "hookd is serving"
    );
    let mut server = tokio::spawn(running.wait());
    tokio::select! {
        result = &mut server => return Ok(result??),
        () = shutdown_signal() => {}
    }
    tracing::info!(grace = ?grace, "shutting down: finishing in-flight requests");
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => Ok(result??),
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {grace:?}; exiting anyway");
            Ok(())
        }
    }
}

use crate::client::shutdown_signal;

/// The embedded database's file, or an error saying backups are SQLite's.
fn sqlite_path(config: &Config, what: &str) -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    match config.database()? {
        crate::config::DatabaseKind::Sqlite(path) => Ok(path),
        crate::config::DatabaseKind::Postgres(_) => Err(format!(
            "hookd {what} copies the embedded SQLite database; on PostgreSQL use pg_dump or \
             point-in-time recovery (docs/operations.md#backups)"
        )
        .into()),
    }
}

/// `hookd backup --to FILE`.
fn backup(config: &Config, to: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = sqlite_path(config, "backup")?;
    let started = std::time::Instant::now();
    let copied = hookd_store_sqlite::backup::backup(&db, to)?;
    eprintln!(
        "backed up {} to {} ({} bytes, {} messages) in {:.1?}",
        db.display(),
        to.display(),
        copied.bytes,
        copied.messages,
        started.elapsed()
    );
    eprintln!(
        "the secrets in it are sealed under the key in {}, which the backup does not hold: keep a copy of that apart (docs/security.md#secrets-at-rest)",
        key_location(config, &db)
    );
    Ok(())
}

/// Where the key of the secrets sealed in an embedded database is.
fn key_location(config: &Config, db: &std::path::Path) -> String {
    if !config.secret_key.trim().is_empty() {
        "secret_key".to_owned()
    } else if !config.secret_key_file.trim().is_empty() {
        config.secret_key_file.clone()
    } else {
        crate::secret_key::beside(db).display().to_string()
    }
}

/// `hookd restore --from FILE`.
fn restore(config: &Config, from: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let db = sqlite_path(config, "restore")?;
    let copied = hookd_store_sqlite::backup::restore(from, &db)?;
    eprintln!(
        "restored {} into {} ({} messages); start hookd",
        from.display(),
        db.display(),
        copied.messages
    );
    eprintln!(
        "its secrets open only under the key they were sealed with: put that key in {} first (docs/security.md#secrets-at-rest)",
        key_location(config, &db)
    );
    Ok(())
}

/// `hookd man`: the page of `hookd` on stdout, or every command's page in `dir`.
fn man(dir: Option<std::path::PathBuf>) -> ExitCode {
    let written = match dir {
        Some(dir) => std::fs::create_dir_all(&dir)
            .and_then(|()| clap_mangen::generate_to(command(), &dir))
            .map(|()| eprintln!("wrote the man pages to {}", dir.display())),
        None => {
            let mut page = Vec::new();
            return match clap_mangen::Man::new(command()).render(&mut page) {
                Ok(()) => print_generated("man page", &page),
                Err(e) => {
                    eprintln!("hookd: cannot render the man page: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: cannot write the man page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes generated text to stdout. A reader that closes the pipe early (`| head`,
/// `| grep -q`) has all it wanted, so a broken pipe is success, as for `cat`.
fn print_generated(what: &str, text: &[u8]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hookd: cannot write the {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Clap's group makes one of the two required.
fn unreachable_target() -> ! {
    eprintln!("hookd: give --source or --app");
    std::process::exit(2)
}

/// Runs a remote command (it reads no server configuration) against the server its
/// flags, the environment or the profile name.
fn remote<F, Fut>(name: &str, connection: &crate::client::Connection, work: F) -> ExitCode
where
    F: FnOnce(crate::client::Remote) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::client::Failure>>,
{
    match crate::client::Remote::resolve(connection) {
        Ok(r) => crate::client::run_remote(name, work(r)),
        Err(f) => {
            eprintln!("hookd {name}: {}", f.message());
            f.exit_code()
        }
    }
}

/// `hookd listen`: a remote command; it reads no server configuration.
fn listen(l: ListenCommand) -> ExitCode {
    let connection = l.connection.clone();
    let args = crate::client::listen::ListenArgs {
        source: l.source,
        app: l.app,
        event_types: l.event_types,
        forward_to: l.forward_to,
        session: l.session,
        keep: l.keep,
        concurrency: l.concurrency,
        json: l.json,
        timeout: l.timeout,
    };
    remote("listen", &connection, |r| crate::client::listen::run(r, args))
}

async fn token(action: TokenCommand, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = crate::open_store(&config).await?;
    match action {
        TokenCommand::Create { org, name } => {
            let (org, token) = crate::service::auth::issue_token(store.as_ref(), &org, &name).await?;
            eprintln!(
                "created token {} ({name}) for organisation {} ({}); it is shown only once:",
                token.id, org.name, org.id
            );
            println!("{}", token.reveal());
        }
        TokenCommand::List { org } => {
            let org = store
                .find_org(&org)
                .await?
                .ok_or(format!("no organisation {org:?}"))?;
            for t in store.list_tokens(&org.id).await? {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".into(),
                };
                println!("{}\t{}\t{}\t{state}", t.id, t.name, t.created_at.to_rfc3339());
            }
        }
        TokenCommand::Revoke { org, token_id } => {
            let org = store
                .find_org(&org)
                .await?
                .ok_or(format!("no organisation {org:?}"))?;
            let id: TokenId = token_id.parse().map_err(|e| format!("token id: {e}"))?;
            store.revoke_token(&org.id, &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// The organisation and application a CLI command names.
async fn org_and_app(
    store: &dyn hookd_store::Store,
    org: &str,
    app: &str,
) -> Result<(hookd_core::id::OrgId, hookd_core::id::ApplicationId), Box<dyn std::error::Error>> {
    let org = store
        .find_org(org)
        .await?
        .ok_or(format!("no organisation {org:?}"))?;
    let app = store
        .get_application(&org.id, app)
        .await
        .map_err(|e| format!("application {app:?}: {e}"))?;
    Ok((org.id, app.id))
}

async fn api_key(action: ApiKeyCommand, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = crate::open_store(&config).await?;
    match action {
        ApiKeyCommand::Create {
            org,
            app,
            name,
            scopes,
            modes,
            rate_limit,
        } => {
            let (org, app) = org_and_app(store.as_ref(), &org, &app).await?;
            let modes = (!modes.is_empty()).then_some(modes);
            let data = crate::service::auth::api_key_data(name, &scopes, modes.as_deref(), rate_limit)
                .map_err(|e| match e {
                    crate::http::error::ApiError::Validation(items) => items
                        .iter()
                        .map(|i| format!("{}: {}", i.loc.last().map_or("", String::as_str), i.msg))
                        .collect::<Vec<_>>()
                        .join("; "),
                    other => other.to_string(),
                })?;
            let (record, key) = crate::service::auth::issue_api_key(store.as_ref(), &org, &app, data).await?;
            eprintln!(
                "created API key {} ({}) for application {app}; it is shown only once:",
                record.id, record.data.name
            );
            println!("{}", key.reveal());
        }
        ApiKeyCommand::List { org, app } => {
            let (org, app) = org_and_app(store.as_ref(), &org, &app).await?;
            let query = hookd_store::ListQuery {
                limit: 250,
                ..Default::default()
            };
            for k in store.list_api_keys(&org, &app, &query).await?.items {
                let scopes = [(k.data.read, "read"), (k.data.write, "write")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, s)| *s)
                    .collect::<Vec<_>>()
                    .join(",");
                let state = match k.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".into(),
                };
                println!("{}\t{}\t{scopes}\t{state}", k.id, k.data.name);
            }
        }
        ApiKeyCommand::Revoke { org, app, key_id } => {
            let (org, app) = org_and_app(store.as_ref(), &org, &app).await?;
            let id: hookd_core::id::ApiKeyId = key_id.parse().map_err(|e| format!("key id: {e}"))?;
            store.revoke_api_key(&org, &app, &id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
