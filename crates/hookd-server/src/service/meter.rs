//! Usage metering of the data API: every data operation costs credits (reads and writes
//! priced by configuration), counted per organisation and day (UTC), and an optional
//! daily quota.
//!
//! Counts gather in memory and are added to the database every
//! `data_usage_flush_interval` (and when the server stops), so metering costs no write
//! per request. A node killed outright loses at most that interval's counts (in the
//! customer's favour). The quota check reads the stored total (remembered for one
//! interval) plus this node's unflushed counts; other nodes' counts show up after
//! their next flush.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use hookd_core::id::{ApiKeyId, OrgId};
use hookd_dispatch::throttle::Throttle;
use hookd_store::{Store, UsageCount};

use crate::config::Config;
use crate::http::error::{ApiError, ApiResult};

type Day = (OrgId, NaiveDate);

#[derive(Debug)]
pub struct Meter {
    read_credits: u64,
    write_credits: u64,
    quota: u64,
    refresh: Duration,
    default_rate: u32,
    pending: Mutex<HashMap<Day, UsageCount>>,
    /// Credits stored in the database, as last read.
    stored: Mutex<HashMap<Day, (Instant, u64)>>,
    keys: Mutex<Throttle<ApiKeyId>>,
}

impl Meter {
    pub fn new(config: &Config) -> Self {
        Self {
            read_credits: config.data_read_credits,
            write_credits: config.data_write_credits,
            quota: config.data_daily_credit_quota,
            refresh: config.data_usage_flush_interval,
            default_rate: config.data_key_rate_limit,
            pending: Mutex::default(),
            stored: Mutex::default(),
            keys: Mutex::default(),
        }
    }

    fn cost(&self, write: bool) -> UsageCount {
        if write {
            UsageCount {
                reads: 0,
                writes: 1,
                credits: self.write_credits,
            }
        } else {
            UsageCount {
                reads: 1,
                writes: 0,
                credits: self.read_credits,
            }
        }
    }

    /// Takes one request of `key` under its rate (`None`: the configured default);
    /// 429 with `Retry-After` past it.
    pub fn admit_key(&self, key: &ApiKeyId, rate: Option<u32>) -> ApiResult<()> {
        let rate = rate.unwrap_or(self.default_rate);
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        keys.prune(now);
        keys.take(key, rate, now)
            .map_err(|wait| ApiError::TooManyRequests {
                code: "rate_limited",
                detail: format!("this API key may make {rate} requests per second; slow down"),
                retry_after: Some(wait.as_secs().max(1)),
            })
    }

    /// Refuses an operation that would pass the organisation's daily quota.
    pub async fn check(&self, store: &dyn Store, org: &OrgId, write: bool) -> ApiResult<()> {
        if self.quota == 0 {
            return Ok(());
        }
        let today = Utc::now().date_naive();
        let day = (org.clone(), today);
        let cached = {
            let stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
            stored
                .get(&day)
                .filter(|(at, _)| at.elapsed() < self.refresh)
                .map(|(_, credits)| *credits)
        };
        let stored = match cached {
            Some(credits) => credits,
            None => {
                let credits = store
                    .list_usage(org, today, today)
                    .await?
                    .first()
                    .map_or(0, |d| d.count.credits);
                let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
                stored.retain(|(_, d), _| *d == today);
                stored.insert(day.clone(), (Instant::now(), credits));
                credits
            }
        };
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&day)
            .map_or(0, |c| c.credits);
        if stored + pending + self.cost(write).credits > self.quota {
            let midnight = (today + chrono::Days::new(1))
                .and_hms_opt(0, 0, 0)
                .map(|m| m.and_utc());
            let wait = midnight.map_or(0, |m| (m - Utc::now()).num_seconds().max(1)) as u64;
            return Err(ApiError::TooManyRequests {
                code: "quota_exceeded",
                detail: format!(
                    "this account has spent its {} data credits for today ({today}, UTC); the quota renews at midnight UTC",
                    self.quota
                ),
                retry_after: Some(wait),
            });
        }
        Ok(())
    }

    /// Counts one operation done for `org`.
    pub fn record(&self, org: &OrgId, write: bool) {
        let day = (org.clone(), Utc::now().date_naive());
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(day)
            .or_default()
            .add(self.cost(write));
    }

    /// Adds the gathered counts to the database. Counts that could not be written are
    /// kept for the next flush.
    pub async fn flush(&self, store: &dyn Store) {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        for ((org, day), count) in pending {
            if count.is_empty() {
                continue;
            }
            if let Err(e) = store.add_usage(&org, day, count).await {
                tracing::warn!(error = %e, org = %org, "could not record data usage; will retry");
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry((org, day))
                    .or_default()
                    .add(count);
            } else if let Some((_, credits)) = self
                .stored
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(&(org, day))
            {
                *credits += count.credits;
            }
        }
    }

    /// Flushes every interval until `stop`; the last flush is the caller's (after the
    /// HTTP server has finished its requests).
    pub async fn run(
        self: std::sync::Arc<Self>,
        store: std::sync::Arc<dyn Store>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.refresh.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            self.flush(store.as_ref()).await;
        }
    }
}
