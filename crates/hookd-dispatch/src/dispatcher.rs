//! Claim, send, record: the loop that moves deliveries.
//!
//! Work is leased from the store, never queued in memory: the in-memory state is only
//! what is in flight (bounded by `concurrency`), per-endpoint counters, pauses and
//! throttle buckets. A crash loses nothing: leased rows are reclaimed when their lease
//! runs out, or at once when this node restarts (`release_leases`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use hookd_core::id::EndpointId;
use hookd_core::network_policy::NetworkPolicy;
use hookd_core::retry::RetrySchedule;
use hookd_sandbox::Sandbox;
use hookd_store::{
    AttemptHeaders, ClaimedDelivery, DeliveryStatus, EndpointRoom, NewAttempt, NextStep, Store, StoreResult,
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

use crate::events::{self, FAILING_AFTER, OperationalEvent};
use crate::metrics::{DispatchMetrics, OutcomeLabel};
use crate::outcome;
use crate::relay::Relays;
use crate::sender::{Sender, Sent};
use crate::throttle::Throttle;
use crate::transform::{self, Prepared};

/// Most deliveries leased in one claim.
const CLAIM_BATCH: usize = 256;

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Names this node's leases; a restart with the same id reclaims them at once.
    pub node_id: String,
    pub retry_schedule: RetrySchedule,
    pub policy: NetworkPolicy,
    pub timeout: Duration,
    pub https_only: bool,
    /// An HTTP(S) proxy for every delivery.
    pub proxy: Option<String>,
    /// Deliveries in flight on this node at most.
    pub concurrency: usize,
    /// Deliveries in flight to one endpoint at most, so a slow endpoint cannot take
    /// every slot.
    pub endpoint_concurrency: usize,
    /// How long a claimed delivery is reserved; after a crash it is retried when this
    /// runs out.
    pub lease: Duration,
    /// How often the queue is polled for retries and expired leases (new messages wake
    /// the dispatcher at once).
    pub poll_interval: Duration,
    /// How long in-flight deliveries may finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// An endpoint whose deliveries keep exhausting their retries with no success for
    /// this long is disabled (and `endpoint.disabled` sent).
    pub auto_disable_after: Duration,
    /// Keep each attempt's request and response headers in the attempt log.
    pub record_headers: bool,
}

#[derive(Debug, Default)]
struct State {
    inflight: HashMap<EndpointId, usize>,
    paused: HashMap<EndpointId, Instant>,
    throttle: Throttle,
    listeners: ListenerHolds,
}

/// `hookd listen` sessions across nodes (`DeliveryStore::hold_listener`): this node
/// renews the holds of the sessions connected to it, and leaves alone the deliveries
/// of sessions another node holds.
#[derive(Debug, Default)]
struct ListenerHolds {
    /// When the other nodes' holds were last read, and what they were.
    checked: Option<Instant>,
    elsewhere: Vec<EndpointId>,
    /// When this node last renewed its own.
    renewed: Option<Instant>,
}

/// How often the other nodes' holds are read again.
const LISTENERS_CHECK: Duration = Duration::from_secs(1);
/// How often this node renews the holds of its sessions (each lasts
/// [`crate::relay::HOLD`]).
const LISTENERS_RENEW: Duration = Duration::from_secs(10);

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// One delivery's place in flight: a slot of the global cap and one of its endpoint's.
/// Both are given back when it is dropped — after the attempt is recorded, or when the
/// task sending it panics or is dropped — so an endpoint's count can never leak.
#[derive(Debug)]
struct InFlight {
    state: Arc<Mutex<State>>,
    endpoint: EndpointId,
    _permit: OwnedSemaphorePermit,
}

impl InFlight {
    fn take(state: &Arc<Mutex<State>>, endpoint: EndpointId, permit: OwnedSemaphorePermit) -> Self {
        *lock(state).inflight.entry(endpoint.clone()).or_insert(0) += 1;
        Self {
            state: Arc::clone(state),
            endpoint,
            _permit: permit,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if let Some(n) = st.inflight.get_mut(&self.endpoint) {
            *n -= 1;
            if *n == 0 {
                st.inflight.remove(&self.endpoint);
            }
        }
    }
}

#[derive(Debug)]
pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Sender,
    /// Runs endpoints' transformations before their attempts.
    sandbox: Sandbox,
    config: DispatchConfig,
    wake: Notify,
    permits: Arc<Semaphore>,
    state: Arc<Mutex<State>>,
    metrics: DispatchMetrics,
    /// This node's `hookd listen` sessions (deliveries to listen URLs go there).
    relays: Arc<Relays>,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        config: DispatchConfig,
        sandbox: Sandbox,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let sender = Sender::new(
            config.policy.clone(),
            config.timeout,
            config.https_only,
            config.proxy.as_deref(),
            config.record_headers,
        )?;
        Ok(Arc::new(Self {
            permits: Arc::new(Semaphore::new(config.concurrency.max(1))),
            store,
            sender,
            sandbox,
            config,
            wake: Notify::new(),
            state: Arc::new(Mutex::new(State::default())),
            metrics: DispatchMetrics::default(),
            relays: Arc::default(),
        }))
    }

    /// This node's `hookd listen` sessions: the server connects them here.
    pub fn relays(&self) -> &Arc<Relays> {
        &self.relays
    }

    /// The engine's counters, for `/metrics`.
    pub fn metrics(&self) -> &DispatchMetrics {
        &self.metrics
    }

    /// Tells the dispatcher new work was committed (the fast path after a message).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// One step: leases what is due now (within free capacity), sends it, and returns
    /// once every attempt is recorded. Tests drive the engine with this.
    pub async fn run_due(&self) -> StoreResult<usize> {
        let batch = self.claim().await?;
        let n = batch.len();
        let mut sends = Vec::with_capacity(n);
        for (d, slot) in batch {
            sends.push(self.deliver(d, slot));
        }
        for send in sends {
            send.await;
        }
        Ok(n)
    }

    /// Renews this node's holds on its `hookd listen` sessions (every
    /// [`LISTENERS_RENEW`]) and answers the sessions other nodes hold (read again
    /// every [`LISTENERS_CHECK`]). A store that fails keeps the last answer.
    async fn listeners_elsewhere(&self, now: chrono::DateTime<Utc>) -> Vec<EndpointId> {
        let due = |at: Option<Instant>, every: Duration| at.is_none_or(|at| at.elapsed() >= every);
        let (check, renew) = {
            let st = self.state();
            (
                due(st.listeners.checked, LISTENERS_CHECK),
                due(st.listeners.renewed, LISTENERS_RENEW),
            )
        };
        if renew {
            for ep in self.relays.connected() {
                if let Err(e) = self.hold_listener(&ep).await {
                    tracing::warn!(endpoint = %ep, error = %e, "could not renew a `hookd listen` session's hold");
                }
            }
            self.state().listeners.renewed = Some(Instant::now());
        }
        if check {
            match self.store.listeners_elsewhere(&self.config.node_id, now).await {
                Ok(elsewhere) => {
                    let mut st = self.state();
                    st.listeners.elsewhere = elsewhere;
                    st.listeners.checked = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not read which node holds each `hookd listen` session");
                    self.state().listeners.checked = Some(Instant::now());
                }
            }
        }
        self.state().listeners.elsewhere.clone()
    }

    /// Holds the `hookd listen` session of `endpoint` for this node for
    /// [`crate::relay::HOLD`]: the other nodes' engines leave its deliveries here. The
    /// server calls it when a session connects; the engine renews it meanwhile.
    pub async fn hold_listener(&self, endpoint: &EndpointId) -> StoreResult<()> {
        let until = Utc::now() + chrono::Duration::from_std(crate::relay::HOLD).unwrap_or_default();
        self.store
            .hold_listener(endpoint, &self.config.node_id, until)
            .await
    }

    /// Leases due deliveries and takes a concurrency slot for each one sent now; the
    /// rest (endpoint at its cap, throttled) are put back for later.
    async fn claim(&self) -> StoreResult<Vec<(ClaimedDelivery, InFlight)>> {
        let free = self.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            return Ok(Vec::new());
        }
        let now = Utc::now();
        let elsewhere: Vec<EndpointId> = self
            .listeners_elsewhere(now)
            .await
            .into_iter()
            .filter(|ep| !self.relays.is_connected(ep))
            .collect();
        let room = {
            let mut st = self.state();
            let instant = Instant::now();
            st.paused.retain(|_, until| *until > instant);
            let cap = self.config.endpoint_concurrency.max(1);
            let mut limited: Vec<(EndpointId, usize)> = st
                .inflight
                .iter()
                .filter(|(e, _)| !st.paused.contains_key(*e))
                .map(|(e, n)| (e.clone(), cap.saturating_sub(*n)))
                .collect();
            limited.extend(st.paused.keys().map(|e| (e.clone(), 0)));
            // Another node relays these: claimed here they could only fail.
            limited.extend(elsewhere.into_iter().map(|e| (e, 0)));
            EndpointRoom { each: cap, limited }
        };
        let lease_until =
            now + chrono::Duration::from_std(self.config.lease).unwrap_or(chrono::Duration::seconds(30));
        let claimed = self
            .store
            .claim_due(now, free, lease_until, &self.config.node_id, &room)
            .await?;
        let mut ready = Vec::with_capacity(claimed.len());
        let mut later = Vec::new();
        let shared_throttle = self.store.shares_throttle();
        self.state().throttle.prune(Instant::now());
        // Throttled deliveries of one endpoint are spread over the coming slots (one
        // per 1/rate), so each comes back once, when a send is allowed. Once an
        // endpoint is refused in this batch, the rest of its deliveries are too (its
        // first wait, then one slot each) without asking the bucket again.
        let mut throttled: HashMap<EndpointId, (Duration, u32)> = HashMap::new();
        // Read again at most once a batch, when the list above may be stale.
        let mut fresh_elsewhere: Option<Vec<EndpointId>> = None;
        for d in claimed {
            let ep = d.endpoint.id.clone();
            if d.endpoint.data.url.is_listener() && !self.relays.is_connected(&ep) {
                // A session that connected to another node since the list was read:
                // put back for that node rather than failed here.
                if fresh_elsewhere.is_none() {
                    // A store that fails keeps the last answer, as the periodic read does.
                    let read = match self.store.listeners_elsewhere(&self.config.node_id, now).await {
                        Ok(read) => {
                            self.state().listeners.elsewhere = read.clone();
                            read
                        }
                        Err(_) => self.state().listeners.elsewhere.clone(),
                    };
                    fresh_elsewhere = Some(read);
                }
                if fresh_elsewhere.as_ref().is_some_and(|held| held.contains(&ep)) {
                    later.push((d.id, now + chrono::Duration::milliseconds(200)));
                    continue;
                }
            }
            let busy = self.state().inflight.get(&ep).copied().unwrap_or(0)
                >= self.config.endpoint_concurrency.max(1);
            if busy {
                later.push((d.id, now));
                continue;
            }
            if let Some(rate) = d.endpoint.data.throttle_rate {
                let wait = if let Some((first, _)) = throttled.get(&ep) {
                    Some(*first)
                } else if shared_throttle {
                    // Several nodes send to this endpoint: the database keeps the bucket.
                    match self.store.throttle_take(&ep, rate, Utc::now()).await {
                        Ok(wait) => wait,
                        Err(e) => {
                            tracing::warn!(endpoint = %ep, error = %e, "shared throttle unavailable; holding the delivery back");
                            Some(Duration::from_secs(1))
                        }
                    }
                } else {
                    self.state()
                        .throttle
                        .take(&ep, rate.get().into(), Instant::now())
                        .err()
                };
                if let Some(wait) = wait {
                    let (_, queued) = throttled.entry(ep.clone()).or_insert((wait, 0));
                    let slot = wait + Duration::from_secs_f64(f64::from(*queued) / f64::from(rate.get()));
                    *queued += 1;
                    self.state().paused.insert(ep, Instant::now() + wait);
                    later.push((d.id, now + chrono::Duration::from_std(slot).unwrap_or_default()));
                    continue;
                }
            }
            match Arc::clone(&self.permits).try_acquire_owned() {
                Ok(permit) => {
                    let slot = InFlight::take(&self.state, ep, permit);
                    ready.push((d, slot));
                }
                Err(_) => later.push((d.id, now)),
            }
        }
        for (id, at) in later {
            if let Err(e) = self.store.defer(id, at).await {
                tracing::warn!(delivery = id, error = %e, "could not put a delivery back; its lease will expire");
            }
        }
        Ok(ready)
    }

    /// Sends one delivery (after its endpoint's transformation, if any) and records
    /// the attempt.
    async fn deliver(&self, d: ClaimedDelivery, slot: InFlight) {
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let prepared = transform::prepare(&self.sandbox, &d).await;
        let transformed = !matches!(&prepared, Prepared::Send(out) if !out.transformed);
        let sent = match prepared {
            Prepared::Send(out) if d.endpoint.data.url.is_listener() => Some(
                self.sender
                    .relay(&self.relays, &d, out, Utc::now(), self.config.timeout)
                    .await,
            ),
            Prepared::Send(out) => Some(self.sender.send(&d, out, Utc::now()).await),
            Prepared::Failed(why) => Some(Sent {
                url: d.endpoint.data.url.to_string(),
                status: None,
                body: why,
                retry_after: None,
                duration: started.elapsed(),
                headers: AttemptHeaders::default(),
            }),
            Prepared::Cancel => None,
        };
        self.metrics.in_flight.dec();
        let Some(sent) = sent else {
            self.record_canceled(&d, started).await;
            drop(slot);
            return;
        };
        self.metrics.attempt_seconds.observe(sent.duration.as_secs_f64());
        let now = Utc::now();
        let failures = d.attempts as usize + 1;
        let verdict = outcome::judge(
            &sent,
            failures,
            &self.config.retry_schedule,
            now,
            rand::random::<f64>(),
        );
        let ep = d.endpoint.id.clone();
        if let Some(pause) = verdict.pause_endpoint {
            self.state().paused.insert(ep.clone(), Instant::now() + pause);
        }
        let mut disabled_now = false;
        if verdict.disable_endpoint {
            tracing::info!(endpoint = %ep, "the endpoint answered 410 Gone; disabling it");
            let disable = self
                .store
                .update_endpoint(
                    &d.org_id,
                    &d.endpoint.app_id,
                    ep.as_str(),
                    Box::new(|data| {
                        data.disabled = true;
                        Ok(())
                    }),
                )
                .await;
            match disable {
                Ok(_) => disabled_now = true,
                Err(e) => tracing::warn!(endpoint = %ep, error = %e, "could not disable the endpoint"),
            }
        }
        tracing::debug!(
            delivery = d.id, msg = %d.message.id, endpoint = %ep, status = ?sent.status,
            ms = sent.duration.as_millis() as u64, next = ?verdict.next, "attempt"
        );
        let status_code = sent.status.map(i32::from).unwrap_or(0);
        let attempt = NewAttempt {
            url: sent.url,
            status: verdict.attempt,
            response_status_code: status_code,
            response: sent.body,
            duration_ms: sent.duration.as_millis() as i64,
            trigger: d.trigger,
            at: now,
            transformed,
            headers: sent.headers,
        };
        let outcome = match verdict.next {
            hookd_store::NextStep::Done => "success",
            hookd_store::NextStep::RetryAt(_) => "retry",
            hookd_store::NextStep::Exhausted => "exhausted",
            hookd_store::NextStep::Cancel => "canceled",
        };
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        match self.store.finish_attempt(d.id, attempt, verdict.next).await {
            Ok(Some(attempt_id)) if !d.operational => {
                self.after_attempt(&d, &attempt_id, now, status_code, verdict.next, disabled_now)
                    .await;
            }
            Ok(_) => {}
            // The lease will run out and the delivery be tried again (at least once).
            Err(e) => tracing::error!(delivery = d.id, error = %e, "could not record an attempt"),
        }
        drop(slot);
    }

    /// The endpoint's transformation canceled the delivery: one attempt says so, and
    /// the delivery is never tried again. Not a failure: no operational event, no
    /// failing streak.
    async fn record_canceled(&self, d: &ClaimedDelivery, started: Instant) {
        let attempt = NewAttempt {
            url: d.endpoint.data.url.to_string(),
            status: DeliveryStatus::Canceled,
            response_status_code: 0,
            response: "canceled by the endpoint's transformation (webhook.cancel = true)".into(),
            duration_ms: started.elapsed().as_millis() as i64,
            trigger: d.trigger,
            at: Utc::now(),
            transformed: true,
            headers: AttemptHeaders::default(),
        };
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabel { outcome: "canceled" })
            .inc();
        if let Err(e) = self.store.finish_attempt(d.id, attempt, NextStep::Cancel).await {
            tracing::error!(delivery = d.id, error = %e, "could not record an attempt");
        }
    }

    /// Operational events and auto-disable after an attempt of a customer's message
    /// (never for operational webhooks themselves, which would loop).
    async fn after_attempt(
        &self,
        d: &ClaimedDelivery,
        attempt: &hookd_core::id::AttemptId,
        at: chrono::DateTime<Utc>,
        status_code: i32,
        next: hookd_store::NextStep,
        mut disabled_now: bool,
    ) {
        let failures = d.attempts + 1;
        let attempt_event = |kind| {
            OperationalEvent::attempt(
                kind,
                &d.endpoint.app_id,
                d.app_uid.as_ref(),
                &d.message.id,
                d.message.event_id.as_ref(),
                &d.endpoint.id,
                attempt,
                at,
                status_code,
            )
        };
        let mut raised = Vec::new();
        match next {
            hookd_store::NextStep::Done if d.attempts >= FAILING_AFTER => {
                raised.push(attempt_event("message.attempt.recovered"))
            }
            hookd_store::NextStep::RetryAt(_) if failures == FAILING_AFTER => {
                raised.push(attempt_event("message.attempt.failing"))
            }
            hookd_store::NextStep::Exhausted => {
                raised.push(attempt_event("message.attempt.exhausted"));
                let disable_before = at
                    - chrono::Duration::from_std(self.config.auto_disable_after)
                        .unwrap_or(chrono::Duration::MAX);
                match self
                    .store
                    .note_exhausted(&d.org_id, &d.endpoint.app_id, &d.endpoint.id, at, disable_before)
                    .await
                {
                    Ok(true) => {
                        tracing::info!(endpoint = %d.endpoint.id, "the endpoint kept failing; disabled it");
                        disabled_now = true;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(endpoint = %d.endpoint.id, error = %e, "could not note the failure streak")
                    }
                }
            }
            _ => {}
        }
        if disabled_now {
            raised.push(OperationalEvent::endpoint(
                "endpoint.disabled",
                &d.endpoint.app_id,
                d.app_uid.as_ref(),
                &d.endpoint.id,
                d.endpoint.data.uid.as_ref(),
            ));
        }
        for event in raised {
            match events::emit(self.store.as_ref(), &d.org_id, event).await {
                Ok(true) => self.wake(),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not queue an operational webhook"),
            }
        }
    }

    /// Runs until `shutdown` turns true, then lets in-flight deliveries finish within
    /// the grace period and gives up this node's remaining leases.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        match self.store.release_leases(&self.config.node_id).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "reclaimed deliveries leased before a restart"),
            Err(e) => tracing::warn!(error = %e, "could not release old leases; they will expire"),
        }
        let mut tasks = JoinSet::new();
        // Other nodes' new work (PostgreSQL's NOTIFY); single-node stores have none.
        let remote = self.store.work_signal();
        while !*shutdown.borrow() {
            let claimed = match self.claim().await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "claiming deliveries failed");
                    Vec::new()
                }
            };
            let got = claimed.len();
            for (d, slot) in claimed {
                let this = Arc::clone(&self);
                tasks.spawn(async move { this.deliver(d, slot).await });
            }
            // Deliveries that ended while the claim ran freed room the claim did not see;
            // once reaped here, no `join_next` below would report them.
            let mut ended = 0;
            while tasks.try_join_next().is_some() {
                ended += 1;
            }
            if (got > 0 || ended > 0) && self.permits.available_permits() > 0 {
                continue; // there may be more due right now
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = async {
                    match &remote {
                        Some(signal) => signal.notified().await,
                        None => std::future::pending().await,
                    }
                } => {}
                () = tokio::time::sleep(self.config.poll_interval) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = shutdown.changed() => {}
            }
        }
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(in_flight, "letting in-flight deliveries finish");
        }
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "in-flight deliveries did not finish in time; they will be retried"
            );
            tasks.abort_all();
        }
        if let Err(e) = self.store.release_leases(&self.config.node_id).await {
            tracing::warn!(error = %e, "could not release leases at shutdown; they will expire");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slot_is_given_back_when_its_send_panics() {
        let state = Arc::new(Mutex::new(State::default()));
        let permits = Arc::new(Semaphore::new(1));
        let ep = EndpointId::generate();
        let permit = Arc::clone(&permits).try_acquire_owned().unwrap();
        let slot = InFlight::take(&state, ep.clone(), permit);
        assert_eq!(lock(&state).inflight.get(&ep), Some(&1));
        assert_eq!(permits.available_permits(), 0);
        let task = tokio::spawn(async move {
            let _slot = slot;
            panic!("a send panicked");
        });
        assert!(task.await.is_err());
        assert!(
            lock(&state).inflight.is_empty(),
            "the endpoint's count was released"
        );
        assert_eq!(permits.available_permits(), 1, "the global slot was released");
    }
}
