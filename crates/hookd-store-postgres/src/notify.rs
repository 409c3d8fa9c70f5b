//! Wake-ups across nodes with `LISTEN/NOTIFY`.
//!
//! A node that commits deliveries raises `announce`; one task turns bursts of those
//! into a single `NOTIFY hookd_work` (issued after the commit, outside the data
//! transaction, so a busy node does not serialise its commits on PostgreSQL's
//! notification queue). Every node keeps one connection `LISTEN`ing and turns each
//! notification into a wake-up of its dispatcher. A lost notification (connection
//! drop) costs at most one poll interval: the dispatcher also polls.

use std::sync::{Arc, Weak};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio_postgres::AsyncMessage;

pub(crate) const CHANNEL: &str = "hookd_work";

/// Issues one `NOTIFY` per burst of announcements, until the pool is closed.
pub(crate) async fn announce(pool: Pool, announce: Arc<Notify>) {
    loop {
        announce.notified().await;
        if pool.is_closed() {
            return;
        }
        let sent = async {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            client
                .batch_execute(&format!("NOTIFY {CHANNEL}"))
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(e) = sent {
            tracing::debug!(error = %e, "could not notify other nodes; they will poll");
        }
    }
}

/// Keeps a `LISTEN` connection open (reconnecting with a back-off) and raises `work`
/// for every notification, until the store is gone.
pub(crate) async fn listen(
    config: tokio_postgres::Config,
    ca_file: Option<std::path::PathBuf>,
    work: Weak<Notify>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match listen_once(&config, ca_file.as_deref(), &work).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "the LISTEN connection failed; polling meanwhile");
            }
        }
        // Whatever was announced while the connection was down: look now.
        match work.upgrade() {
            Some(work) => work.notify_one(),
            None => return,
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    ca_file: Option<&std::path::Path>,
    work: &Weak<Notify>,
) -> Result<(), String> {
    let tls = crate::db::tls_connector(ca_file).map_err(|e| e.to_string())?;
    let (client, mut connection) = config.connect(tls).await.map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(_)) => {
                    if tx.send(()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    tracing::debug!("listening for other nodes' work");
    while rx.recv().await.is_some() {
        // Coalesce a burst into one wake-up.
        while rx.try_recv().is_ok() {}
        match work.upgrade() {
            Some(work) => work.notify_one(),
            None => return Ok(()),
        }
    }
    drop(client);
    driver
        .await
        .map_err(|e| e.to_string())?
        .and_then(|()| Err("the LISTEN connection closed".to_owned()))
}
