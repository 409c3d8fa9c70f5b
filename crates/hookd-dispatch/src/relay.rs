//! Deliveries to `hookd listen` sessions: an endpoint whose URL is
//! `hookd-listen://{session}` is not sent over the network; its signed request is
//! handed to the session's connection on this node (the server streams it to the
//! CLI), and the attempt ends when the CLI answers with what its local target said.
//!
//! The registry is this node's only: a session is connected to one node. With several
//! nodes on one database, that node holds the session in the database
//! (`DeliveryStore::hold_listener`, renewed by its engine, lasting [`HOLD`]) and the
//! other nodes' engines claim none of its deliveries meanwhile, so they reach the node
//! that can relay them. A delivery claimed where no session is connected (none is, or
//! a hold ran out) fails with that reason and is retried (docs/cli.md). A session that
//! connects again has its waiting retries made due at once
//! (`Store::retry_endpoint_now`), so nothing waits out the retry schedule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hookd_core::id::{EndpointId, MessageId, OrgId};
use tokio::sync::{mpsc, oneshot};

/// How long a node's hold on a session lasts unless renewed: a node that dies with
/// sessions connected keeps their deliveries from the other nodes this long at most.
pub const HOLD: Duration = Duration::from_secs(30);

/// Requests a session may have queued and not yet written to its connection; more
/// fail at once ("the listener is behind") and are retried.
const QUEUE: usize = 1024;

/// One request handed to a session.
#[derive(Debug, Clone)]
pub struct Relayed {
    /// Names this hand-over in the session's answer.
    pub id: u64,
    pub msg_id: MessageId,
    /// Attempts made before this one.
    pub attempt: u32,
    pub method: String,
    /// The path below the source's URL and the raw query (empty for a message).
    pub path: String,
    pub query: String,
    /// Every header, signature included, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the session said its local target answered.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// The local target's status; `None` when it gave none (refused, timed out).
    pub status: Option<u16>,
    /// The first bytes of its answer, or why there was none.
    pub body: String,
    /// The URL the CLI called.
    pub url: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Why a hand-over got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRelayed {
    #[error("no `hookd listen` session is connected to this node")]
    NotConnected,
    #[error("the `hookd listen` session is behind ({QUEUE} requests queued)")]
    Behind,
    #[error("the `hookd listen` session disconnected before answering")]
    Disconnected,
    #[error("the `hookd listen` session did not answer within {0:?}")]
    TimedOut(Duration),
}

#[derive(Debug)]
struct Session {
    org: OrgId,
    /// The connection now serving the session (a reconnect replaces it).
    connection: u64,
    tx: mpsc::Sender<Relayed>,
    /// Hand-overs waiting for their answer, by id.
    waiting: HashMap<u64, oneshot::Sender<Answer>>,
}

/// This node's connected `hookd listen` sessions, by endpoint.
#[derive(Debug, Default)]
pub struct Relays {
    sessions: Mutex<HashMap<EndpointId, Session>>,
    next: AtomicU64,
}

/// A connection's hold on its session: dropped when the connection ends, which ends
/// the session unless a newer connection replaced it.
#[derive(Debug)]
pub struct Connected {
    relays: Arc<Relays>,
    endpoint: EndpointId,
    connection: u64,
}

impl Drop for Connected {
    fn drop(&mut self) {
        let mut sessions = self.relays.lock();
        if sessions
            .get(&self.endpoint)
            .is_some_and(|s| s.connection == self.connection)
        {
            // Its waiting hand-overs' senders drop: they fail as `Disconnected`.
            sessions.remove(&self.endpoint);
        }
    }
}

impl Relays {
    fn lock(&self) -> MutexGuard<'_, HashMap<EndpointId, Session>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves the session of `endpoint` (of `org`) on a new connection: requests are
    /// read from the receiver until the returned hold is dropped. An older connection
    /// of the same session stops receiving; answers it still owes are taken from the
    /// new one.
    pub fn connect(
        self: &Arc<Self>,
        org: &OrgId,
        endpoint: &EndpointId,
    ) -> (Connected, mpsc::Receiver<Relayed>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let connection = self.next.fetch_add(1, Ordering::Relaxed);
        let mut sessions = self.lock();
        let waiting = sessions
            .remove(endpoint)
            .map(|old| old.waiting)
            .unwrap_or_default();
        sessions.insert(
            endpoint.clone(),
            Session {
                org: org.clone(),
                connection,
                tx,
                waiting,
            },
        );
        let held = Connected {
            relays: Arc::clone(self),
            endpoint: endpoint.clone(),
            connection,
        };
        (held, rx)
    }

    /// The sessions connected here.
    pub fn connected(&self) -> Vec<EndpointId> {
        self.lock().keys().cloned().collect()
    }

    /// Whether the session of `endpoint` is connected here.
    pub fn is_connected(&self, endpoint: &EndpointId) -> bool {
        self.lock().contains_key(endpoint)
    }

    /// Takes a session's answer to hand-over `id`; `false` when nothing of `org`'s
    /// waits for it (answered already, timed out, or not this organisation's).
    pub fn answer(&self, org: &OrgId, endpoint: &EndpointId, id: u64, answer: Answer) -> bool {
        let waiting = {
            let mut sessions = self.lock();
            match sessions.get_mut(endpoint) {
                Some(s) if &s.org == org => s.waiting.remove(&id),
                _ => None,
            }
        };
        waiting.is_some_and(|tx| tx.send(answer).is_ok())
    }

    /// Hands `request` (its `id` is set here) to the session of `endpoint` and waits
    /// up to `timeout` for its answer.
    pub async fn relay(
        &self,
        endpoint: &EndpointId,
        mut request: Relayed,
        timeout: Duration,
    ) -> Result<Answer, NotRelayed> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        request.id = id;
        let (tx, rx) = oneshot::channel();
        {
            let mut sessions = self.lock();
            let session = sessions.get_mut(endpoint).ok_or(NotRelayed::NotConnected)?;
            match session.tx.try_send(request) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => return Err(NotRelayed::Behind),
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(NotRelayed::Disconnected),
            }
            session.waiting.insert(id, tx);
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(NotRelayed::Disconnected),
            Err(_) => {
                if let Some(s) = self.lock().get_mut(endpoint) {
                    s.waiting.remove(&id);
                }
                Err(NotRelayed::TimedOut(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request() -> Relayed {
        Relayed {
            id: 0,
            msg_id: "msg_2Cq0fzGZ1nV2yaV2AWlHSLc5rdb".parse().unwrap(),
            attempt: 0,
            method: "POST".into(),
            path: String::new(),
            query: String::new(),
            headers: Vec::new(),
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_connected_session_answers_and_a_gone_one_fails() {
        let relays = Arc::new(Relays::default());
        let org: OrgId = "org_2Cq0fzGZ1nV2yaV2AWlHSLc5rdb".parse().unwrap();
        let other: OrgId = "org_2Cq0fzGZ1nV2yaV2AWlHSLc5rdc".parse().unwrap();
        let ep: EndpointId = "ep_2Cq0fzGZ1nV2yaV2AWlHSLc5rdb".parse().unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(
            relays.relay(&ep, request(), t).await.unwrap_err(),
            NotRelayed::NotConnected
        );
        let (held, mut rx) = relays.connect(&org, &ep);
        let answering = {
            let relays = Arc::clone(&relays);
            let (org, other, ep) = (org.clone(), other.clone(), ep.clone());
            tokio::spawn(async move {
                let got = rx.recv().await.unwrap();
                let ok = Answer {
                    status: Some(200),
                    ..Answer::default()
                };
                assert!(
                    !relays.answer(&other, &ep, got.id, ok.clone()),
                    "another organisation's answer"
                );
                assert!(relays.answer(&org, &ep, got.id, ok.clone()));
                assert!(!relays.answer(&org, &ep, got.id, ok), "answered once");
                rx
            })
        };
        assert_eq!(relays.relay(&ep, request(), t).await.unwrap().status, Some(200));
        let mut rx = answering.await.unwrap();
        // Handed over, then the connection ends before an answer.
        let waiting = {
            let relays = Arc::clone(&relays);
            let ep = ep.clone();
            tokio::spawn(async move { relays.relay(&ep, request(), t).await })
        };
        rx.recv().await.unwrap();
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap_err(), NotRelayed::Disconnected);
        assert!(!relays.is_connected(&ep));
    }

    #[tokio::test]
    async fn a_reconnect_takes_over_and_the_old_hold_does_not_end_it() {
        let relays = Arc::new(Relays::default());
        let org: OrgId = "org_2Cq0fzGZ1nV2yaV2AWlHSLc5rdb".parse().unwrap();
        let ep: EndpointId = "ep_2Cq0fzGZ1nV2yaV2AWlHSLc5rdb".parse().unwrap();
        let (old, _old_rx) = relays.connect(&org, &ep);
        let (_new, mut rx) = relays.connect(&org, &ep);
        drop(old);
        assert!(relays.is_connected(&ep));
        let t = Duration::from_millis(50);
        assert_eq!(
            relays.relay(&ep, request(), t).await.unwrap_err(),
            NotRelayed::TimedOut(t)
        );
        assert!(rx.recv().await.is_some(), "the new connection got it");
    }
}
