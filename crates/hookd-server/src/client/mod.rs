//! The remote commands of the CLI (`hookd listen`, `tail`, `replay`, `send`): they talk to a hookd server
//! over HTTP with an API token, from anywhere (a laptop behind NAT), instead of
//! opening the database as `token` or `api-key` do on the server's own machine.
//!
//! Where the server and token come from, first found wins: the flags (`--server`,
//! `--token`), the environment (`HOOKD_SERVER`, `HOOKD_TOKEN`), the profile
//! (`--profile` / `HOOKD_PROFILE`, default `default`) in
//! `$XDG_CONFIG_HOME/hookd/cli.toml` (or `~/.config/hookd/cli.toml`), then
//! `http://127.0.0.1:8071` for the server. Errors say what is wrong and what to do,
//! with the exit codes of [`Failure`].

pub mod listen;
pub mod replay;
pub mod send;
pub mod sse;
pub mod tail;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;

/// The server a remote command talks to when nothing names one.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8071";

/// Where a remote command's server and token come from (flags; the rest is read
/// from the environment and the profile file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Connection {
    /// The hookd server, e.g. `https://hooks.example.com` [env: HOOKD_SERVER; profile
    /// `server`; default http://127.0.0.1:8071].
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// An API token (`hk_...`) of the organisation [env: HOOKD_TOKEN; profile `token`].
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// The profile of the CLI's config file to read [env: HOOKD_PROFILE; default
    /// `default`].
    #[arg(long, global = true)]
    pub profile: Option<String>,
}

/// A command that failed, and the exit code that says how (docs/cli.md).
#[derive(Debug)]
pub enum Failure {
    /// 1: anything else (the message says what).
    Other(String),
    /// 2: the command line or the CLI's config file is wrong.
    Usage(String),
    /// 3: the server cannot be reached, or is not a hookd server.
    Unreachable(String),
    /// 4: the server refused the token.
    Unauthorized(String),
    /// 5: what the command names (a source, an application...) does not exist.
    NotFound(String),
    /// 130: stopped by Ctrl-C before it was done (it said how far it got).
    Interrupted,
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Other(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Unauthorized(_) => 4,
            Self::NotFound(_) => 5,
            Self::Interrupted => 130,
        })
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Other(m)
            | Self::Usage(m)
            | Self::Unreachable(m)
            | Self::Unauthorized(m)
            | Self::NotFound(m) => m,
            Self::Interrupted => "interrupted",
        }
    }
}

/// One profile of the CLI's config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    server: Option<String>,
    token: Option<String>,
}

/// The CLI's config file: `$XDG_CONFIG_HOME/hookd/cli.toml`, else
/// `$HOME/.config/hookd/cli.toml`.
pub fn profile_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("hookd").join("cli.toml"))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A server to talk to, with its token.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: url::Url,
    token: String,
    pub http: reqwest::Client,
}

impl Remote {
    /// Resolves the server and token (flags, environment, profile, default).
    pub fn resolve(flags: &Connection) -> Result<Self, Failure> {
        let profile_name = flags
            .profile
            .clone()
            .or_else(|| env("HOOKD_PROFILE"))
            .unwrap_or_else(|| "default".into());
        let profile = read_profile(
            &profile_name,
            flags.profile.is_some() || env("HOOKD_PROFILE").is_some(),
        )?;
        let server = flags
            .server
            .clone()
            .or_else(|| env("HOOKD_SERVER"))
            .or(profile.server)
            .unwrap_or_else(|| DEFAULT_SERVER.into());
        let token = flags
            .token
            .clone()
            .or_else(|| env("HOOKD_TOKEN"))
            .or(profile.token)
            .ok_or_else(|| {
                Failure::Usage(
                    "no API token: pass --token, set HOOKD_TOKEN, or put `token` in the profile \
                     (make one on the server with `hookd token create`)"
                        .into(),
                )
            })?;
        let server = url::Url::parse(server.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "--server {server:?} is not an http(s) URL like https://hooks.example.com"
                ))
            })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("hookd-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Other(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self { server, token, http })
    }

    /// The absolute URL of an API path (`/api/v1/...`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.as_str().trim_end_matches('/'))
    }

    /// A request to the server with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// Sends a request; a transport error or an error answer as a [`Failure`] naming
    /// `what` (e.g. "source github").
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<reqwest::Response, Failure> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        self.check(response, what).await
    }

    /// The answer if it is a success, else the [`Failure`] it means.
    pub async fn check(&self, response: reqwest::Response, what: &str) -> Result<reqwest::Response, Failure> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        let detail = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.get("detail").map(|d| match d {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
            });
        let Some(detail) = detail else {
            return Err(Failure::Unreachable(format!(
                "{} answered {status} without a hookd error: is --server ({}) a hookd server?",
                self.server, self.server
            )));
        };
        Err(match status.as_u16() {
            401 | 403 => Failure::Unauthorized(format!(
                "{} refused the token ({detail}): check --token / HOOKD_TOKEN, or make a new one with \
                 `hookd token create` on the server",
                self.server
            )),
            404 => Failure::NotFound(format!("{what}: {detail}")),
            422 => Failure::Usage(format!("{what}: {detail}")),
            _ => Failure::Other(format!("{what}: {status}: {detail}")),
        })
    }

    /// A transport error as a [`Failure`] with what to check.
    pub fn unreachable(&self, e: &reqwest::Error) -> Failure {
        let mut why = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            why = format!("{why}: {s}");
            source = s.source();
        }
        Failure::Unreachable(format!(
            "cannot reach the hookd server at {} ({why}): check --server / HOOKD_SERVER and that \
             hookd is running there",
            self.server
        ))
    }
}

fn read_profile(name: &str, named: bool) -> Result<Profile, Failure> {
    let Some(path) = profile_path() else {
        return Ok(Profile::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(Profile::default()),
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read the CLI's config file {} ({e})",
                path.display()
            )));
        }
    };
    let mut profiles: std::collections::BTreeMap<String, Profile> =
        toml::from_str(&text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    match profiles.remove(name) {
        Some(p) => Ok(p),
        None if !named => Ok(Profile::default()),
        None => Err(Failure::Usage(format!(
            "{} has no profile [{name}]",
            path.display()
        ))),
    }
}

/// The current time as the CLI's lines show it.
pub fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// Runs a remote command on its own runtime and turns its failure into one line on
/// stderr and the exit code of its kind.
pub fn run_remote(name: &str, work: impl std::future::Future<Output = Result<(), Failure>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookd {name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        // It said how far it got.
        Err(Failure::Interrupted) => Failure::Interrupted.exit_code(),
        Err(f) => {
            eprintln!("hookd {name}: {}", f.message());
            f.exit_code()
        }
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The local URL of a request: the target with the path below the source's URL and
/// the query appended.
pub fn local_url(base: &url::Url, path: &str, query: &str) -> String {
    let mut url = base.as_str().to_owned();
    if !path.is_empty() && path != "/" {
        url = format!("{}/{}", url.trim_end_matches('/'), path.trim_start_matches('/'));
    }
    if !query.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    url
}

/// Headers that belong to one connection, never replayed.
pub fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "host"
            | "content-length"
            | "transfer-encoding"
            | "connection"
            | "keep-alive"
            | "upgrade"
            | "te"
            | "trailer"
            | "proxy-connection"
    )
}
