//! `hookd replay`: a source's logged requests in a time range, oldest first, either
//! forwarded again by the server (to every destination, or `--destination`) or sent
//! by the CLI itself to any URL (`--to`, e.g. today's code on localhost: method, path,
//! query, headers and exact body as received, whatever their verdict).
//!
//! A progress bar shows counts and rate. Ctrl-C stops after the request in hand and
//! says how far it got; the same command resumes there: the range, made absolute on
//! the first run, and the last request done are kept in a checkpoint file
//! (`$XDG_STATE_HOME/hookd/`, else `~/.local/state/hookd/`), deleted when the replay
//! ends. `--restart` ignores it.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Failure, Remote, hop_by_hop, local_url, shutdown_signal};

/// What `hookd replay` was asked to do.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    pub source: String,
    /// A duration back from now (`2h`) or an RFC 3339 time.
    pub since: String,
    pub until: Option<String>,
    /// Only requests with this verdict (`accepted`, `duplicate`, `rejected`, `filtered`).
    pub status: Option<String>,
    /// Send each request here from the CLI instead of having the server forward it.
    pub to: Option<url::Url>,
    /// Have the server forward to this destination only.
    pub destination: Option<String>,
    pub restart: bool,
}

/// A replay's progress, kept between runs.
#[derive(Debug, Serialize, Deserialize)]
struct Checkpoint {
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// The last log entry done (entries are replayed in id order).
    after: Option<String>,
    done: u64,
    failed: u64,
    skipped: u64,
}

fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("hookd"))
}

/// Where the checkpoint of this exact command (server, source, range, filter,
/// target) lives.
fn checkpoint_path(remote: &Remote, a: &ReplayArgs) -> Option<PathBuf> {
    let key = json!([
        remote.server.as_str(),
        a.source,
        a.since,
        a.until,
        a.status,
        a.to.as_ref().map(url::Url::as_str),
        a.destination
    ]);
    let digest = Sha256::digest(key.to_string().as_bytes());
    Some(state_dir()?.join(format!("replay-{}.json", &hex::encode(digest)[..16])))
}

fn parse_time(s: &str, now: DateTime<Utc>, flag: &str) -> Result<DateTime<Utc>, Failure> {
    if let Ok(d) = humantime::parse_duration(s) {
        let d = chrono::Duration::from_std(d)
            .map_err(|_| Failure::Usage(format!("{flag} {s:?} is too long ago")))?;
        return Ok(now - d);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Failure::Usage(format!(
                "{flag} {s:?} is neither a duration (2h, 30m) nor an RFC 3339 time"
            ))
        })
}

fn save(path: &Option<PathBuf>, c: &Checkpoint) {
    let Some(path) = path else { return };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let tmp = path.with_extension("tmp");
    if let Ok(text) = serde_json::to_vec(c)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Runs `hookd replay`.
pub async fn run(remote: Remote, a: ReplayArgs) -> Result<(), Failure> {
    let what = format!("source {:?}", a.source);
    if a.to.is_some() && a.destination.is_some() {
        return Err(Failure::Usage("give --to or --destination, not both".into()));
    }
    let path = checkpoint_path(&remote, &a);
    let kept: Option<Checkpoint> = match (&path, a.restart) {
        (Some(p), false) => std::fs::read(p)
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok()),
        _ => None,
    };
    let resumed = kept.is_some();
    let mut c = match kept {
        Some(c) => c,
        None => {
            let now = Utc::now();
            Checkpoint {
                since: parse_time(&a.since, now, "--since")?,
                until: a
                    .until
                    .as_deref()
                    .map(|u| parse_time(u, now, "--until"))
                    .transpose()?
                    .unwrap_or(now),
                after: None,
                done: 0,
                failed: 0,
                skipped: 0,
            }
        }
    };
    // Every entry in the range, oldest first.
    let mut ids = list_ids(&remote, &a, &c, &what).await?;
    ids.sort();
    let todo: Vec<String> = ids
        .into_iter()
        .filter(|id| c.after.as_deref().is_none_or(|after| id.as_str() > after))
        .collect();
    let total = c.done + todo.len() as u64;
    if resumed {
        eprintln!(
            "hookd replay: resuming after {} of {total} (checkpoint {})",
            c.done,
            path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
        );
    }
    let target = match (&a.to, &a.destination) {
        (Some(to), _) => format!("to {to}"),
        (_, Some(d)) => format!("to destination {d}"),
        _ => "to every destination".into(),
    };
    eprintln!(
        "hookd replay: {} request(s) of {what} received {} to {}, {target}",
        todo.len(),
        c.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        c.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let bar = ProgressBar::new(total).with_position(c.done);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let local = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Other(format!("cannot make an HTTP client: {e}")))?;
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut interrupted = false;
    let mut failure = None;
    for id in todo {
        let step = one(&remote, &local, &a, &id, &what);
        let outcome = tokio::select! {
            () = &mut stop => { interrupted = true; break; }
            outcome = step => outcome,
        };
        match outcome {
            Ok(Outcome::Done) => c.done += 1,
            Ok(Outcome::Failed) => {
                c.done += 1;
                c.failed += 1;
            }
            Ok(Outcome::Skipped) => {
                c.done += 1;
                c.skipped += 1;
            }
            Err(f) => {
                failure = Some(f);
                break;
            }
        }
        c.after = Some(id);
        bar.set_position(c.done);
        save(&path, &c);
    }
    bar.abandon();
    // Only the server's replay skips (a rejected request is never forwarded; one
    // pruned since it was listed is gone); --to sends every verdict.
    let counts = if a.to.is_some() && c.skipped == 0 {
        format!("{} of {total} done ({} without a 2xx)", c.done, c.failed)
    } else {
        format!(
            "{} of {total} done ({} without a 2xx, {} skipped: a rejected request is never forwarded, a pruned one is gone)",
            c.done, c.failed, c.skipped
        )
    };
    if interrupted || failure.is_some() {
        save(&path, &c);
        eprintln!("hookd replay: stopped after {counts}; the same command resumes there");
        return match failure {
            Some(f) => Err(f),
            None => Err(Failure::Interrupted),
        };
    }
    if let Some(p) = &path {
        let _ = std::fs::remove_file(p);
    }
    eprintln!("hookd replay: finished: {counts}");
    Ok(())
}

/// The ids of the log entries in the checkpoint's range.
async fn list_ids(
    remote: &Remote,
    a: &ReplayArgs,
    c: &Checkpoint,
    what: &str,
) -> Result<Vec<String>, Failure> {
    let mut ids = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let mut query: Vec<(&str, String)> = vec![
            ("limit", "250".into()),
            (
                "after",
                (c.since - chrono::Duration::milliseconds(1)).to_rfc3339(),
            ),
            ("before", c.until.to_rfc3339()),
        ];
        if let Some(s) = &a.status {
            query.push(("status", s.clone()));
        }
        if let Some(i) = &iterator {
            query.push(("iterator", i.clone()));
        }
        let page: Value = remote
            .send(
                remote
                    .request(Method::GET, &format!("/ingest/api/v1/source/{}/log", a.source))
                    .query(&query),
                what,
            )
            .await?
            .json()
            .await
            .map_err(|e| Failure::Unreachable(format!("an unreadable answer from the server: {e}")))?;
        for item in page["data"].as_array().into_iter().flatten() {
            if let Some(id) = item["id"].as_str() {
                ids.push(id.to_owned());
            }
        }
        match (page["done"].as_bool(), page["iterator"].as_str()) {
            (Some(false), Some(next)) => iterator = Some(next.to_owned()),
            _ => return Ok(ids),
        }
    }
}

enum Outcome {
    Done,
    Failed,
    Skipped,
}

async fn one(
    remote: &Remote,
    local: &reqwest::Client,
    a: &ReplayArgs,
    id: &str,
    what: &str,
) -> Result<Outcome, Failure> {
    let base = format!("/ingest/api/v1/source/{}/log/{id}", a.source);
    let Some(to) = &a.to else {
        let body = json!({ "endpointId": a.destination });
        let response = remote
            .request(Method::POST, &format!("{base}/replay"))
            .json(&body)
            .send()
            .await
            .map_err(|e| remote.unreachable(&e))?;
        if response.status() == reqwest::StatusCode::CONFLICT {
            return Ok(Outcome::Skipped);
        }
        remote.check(response, what).await?;
        return Ok(Outcome::Done);
    };
    let entry: Value = match remote.send(remote.request(Method::GET, &base), what).await {
        Ok(r) => r
            .json()
            .await
            .map_err(|e| Failure::Unreachable(format!("an unreadable answer from the server: {e}")))?,
        // Deleted by retention since it was listed.
        Err(Failure::NotFound(_)) => return Ok(Outcome::Skipped),
        Err(f) => return Err(f),
    };
    let body = base64::engine::general_purpose::STANDARD
        .decode(entry["payload_base64"].as_str().unwrap_or_default())
        .map_err(|e| Failure::Other(format!("{id}: an unreadable body: {e}")))?;
    let path = entry["path"].as_str().unwrap_or("/");
    let query = entry["query"].as_str().unwrap_or("");
    let url = local_url(to, path, query);
    let method =
        Method::from_bytes(entry["method"].as_str().unwrap_or("POST").as_bytes()).unwrap_or(Method::POST);
    let mut request = local.request(method, &url).body(body);
    for (k, v) in entry["headers"].as_object().into_iter().flatten() {
        let skip = hop_by_hop(k);
        if let (false, Some(v)) = (skip, v.as_str()) {
            request = request.header(k.as_str(), v);
        }
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(Outcome::Done),
        Ok(_) => Ok(Outcome::Failed),
        Err(e) if e.is_connect() => Err(Failure::Unreachable(format!(
            "could not connect to {to} (is your server running?)"
        ))),
        Err(_) => Ok(Outcome::Failed),
    }
}
