//! `hookd send`: one message (`--payload JSON`, `@file`, or `-` for stdin), or one per
//! line of a JSON-lines file (`--payloads FILE`) with a progress bar. Each line's
//! message carries an `Idempotency-Key` made from the file's content and the line's
//! number, so after Ctrl-C (or a failure) the same command sends the rest and the
//! lines already sent are answered from their keys instead of being sent twice
//! (within the server's `idempotency_retention`).

use std::io::Read as _;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::{Failure, Remote, shutdown_signal};

/// What `hookd send` was asked to do.
#[derive(Debug, Clone)]
pub struct SendArgs {
    pub app: String,
    pub event_type: String,
    pub payload: Option<String>,
    pub payloads: Option<std::path::PathBuf>,
    pub channels: Vec<String>,
}

fn read_payload(arg: &str) -> Result<Value, Failure> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Failure::Usage(format!("cannot read the payload from stdin: {e}")))?;
        s
    } else if let Some(file) = arg.strip_prefix('@') {
        std::fs::read_to_string(file).map_err(|e| Failure::Usage(format!("--payload {arg}: {e}")))?
    } else {
        arg.to_owned()
    };
    serde_json::from_str(&text).map_err(|e| Failure::Usage(format!("--payload is not JSON: {e}")))
}

fn message(a: &SendArgs, payload: Value) -> Value {
    let mut m = json!({ "eventType": a.event_type, "payload": payload });
    if !a.channels.is_empty() {
        m["channels"] = json!(a.channels);
    }
    m
}

/// Runs `hookd send`; prints each message's id on stdout.
pub async fn run(remote: Remote, a: SendArgs) -> Result<(), Failure> {
    let what = format!("application {:?}", a.app);
    let path = format!("/api/v1/app/{}/msg", a.app);
    let file = match (&a.payload, &a.payloads) {
        (Some(p), None) => {
            let m = message(&a, read_payload(p)?);
            let out: Value = remote
                .send(remote.request(Method::POST, &path).json(&m), &what)
                .await?
                .json()
                .await
                .map_err(|e| Failure::Unreachable(format!("an unreadable answer from the server: {e}")))?;
            println!("{}", out["id"].as_str().unwrap_or_default());
            return Ok(());
        }
        (None, Some(file)) => file,
        _ => return Err(Failure::Usage("give --payload or --payloads".into())),
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(format!("--payloads {}: {e}", file.display())))?;
    let digest = hex::encode(Sha256::digest(
        format!("{}\n{}\n{text}", a.app, a.event_type).as_bytes(),
    ));
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    // Checked before anything is sent.
    let mut payloads = Vec::with_capacity(lines.len());
    for (n, line) in &lines {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| Failure::Usage(format!("{} line {}: not JSON: {e}", file.display(), n + 1)))?;
        payloads.push((*n, v));
    }
    let bar = ProgressBar::new(payloads.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut sent = 0usize;
    for (n, payload) in payloads {
        let key = format!("hookd-send-{}-{}", &digest[..16], n + 1);
        let request = remote
            .request(Method::POST, &path)
            .header("idempotency-key", key)
            .json(&message(&a, payload));
        let step = remote.send(request, &what);
        let outcome = tokio::select! {
            () = &mut stop => None,
            outcome = step => Some(outcome),
        };
        let response = match outcome {
            None => {
                bar.abandon();
                eprintln!(
                    "hookd send: stopped after {sent} of {}; the same command sends the rest",
                    lines.len()
                );
                return Err(Failure::Interrupted);
            }
            Some(Err(f)) => {
                bar.abandon();
                eprintln!(
                    "hookd send: stopped after {sent} of {}; the same command sends the rest",
                    lines.len()
                );
                return Err(f);
            }
            Some(Ok(r)) => r,
        };
        let out: Value = response.json().await.unwrap_or_default();
        bar.suspend(|| println!("{}", out["id"].as_str().unwrap_or_default()));
        sent += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    eprintln!("hookd send: sent {sent} message(s) to {what}");
    Ok(())
}
