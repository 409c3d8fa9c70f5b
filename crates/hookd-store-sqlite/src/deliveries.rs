//! The delivery queue: leasing due deliveries and recording attempts.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, OrgId};
use hookd_store::{
    AttemptTrigger, CLAIM_WALK_ENDPOINTS, ClaimedDelivery, DeliveryStatus, DeliveryStore, Endpoint,
    EndpointRoom, Message, NewAttempt, NextStep, RawBody, ReceivedParts, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::SqliteStore;
use crate::sql::internal;

/// A count as an SQL integer.
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One claim's walk over the endpoints with pending deliveries, in id order: each
/// endpoint's oldest due deliveries, up to its room, until the claim is full. Served in
/// turn (the next claim starts after the last endpoint visited), so a long queue for one
/// endpoint never hides the others, and reading it costs its room, not its length.
struct QueueWalk<'a> {
    each: usize,
    limited: HashMap<&'a str, usize>,
    remaining: usize,
    visited: usize,
    last: Option<String>,
    leased: Vec<Leased>,
}

impl<'a> QueueWalk<'a> {
    fn new(room: &'a EndpointRoom, limit: usize) -> Self {
        Self {
            each: room.each,
            limited: room.limited.iter().map(|(e, n)| (e.as_str(), *n)).collect(),
            remaining: limit,
            visited: 0,
            last: None,
            leased: Vec::new(),
        }
    }

    /// Visits the endpoints after `after` (up to and including `upto`).
    fn pass(
        &mut self,
        c: &Connection,
        after: &str,
        upto: Option<&str>,
        now_ms: i64,
        lease_until_ms: i64,
        owner: &str,
    ) -> StoreResult<()> {
        // Named: left to itself the planner takes `delivery_due` and sorts every
        // pending row to find one endpoint id.
        let mut next_endpoint = c
            .prepare_cached(
                "SELECT endpoint_id FROM delivery INDEXED BY delivery_queue
                 WHERE status = 1 AND endpoint_id > ? ORDER BY endpoint_id LIMIT 1",
            )
            .map_err(internal)?;
        let mut lease = c
            .prepare_cached(
                "UPDATE delivery SET lease_until = ?, lease_owner = ?
                 WHERE id IN (SELECT id FROM delivery
                     WHERE status = 1 AND endpoint_id = ? AND next_attempt_at <= ?
                       AND (lease_until IS NULL OR lease_until <= ?)
                     ORDER BY next_attempt_at LIMIT CAST(? AS INTEGER))
                 RETURNING id, org_id, app_id, msg_id, endpoint_id, attempts, trigger",
            )
            .map_err(internal)?;
        let mut at = after.to_owned();
        while self.remaining > 0 && self.visited < CLAIM_WALK_ENDPOINTS {
            let Some(endpoint) = next_endpoint
                .query_row([&at], |r| r.get::<_, String>(0))
                .optional()
                .map_err(internal)?
            else {
                break;
            };
            if upto.is_some_and(|u| endpoint.as_str() > u) {
                break;
            }
            self.visited += 1;
            let room = self.room_of(&endpoint).min(self.remaining);
            if room > 0 {
                let rows = lease
                    .query_map(
                        params![lease_until_ms, owner, endpoint, now_ms, now_ms, count(room)],
                        |r| {
                            Ok(Leased {
                                id: r.get(0)?,
                                org: OrgId::from_trusted(r.get(1)?),
                                app: ApplicationId::from_trusted(r.get(2)?),
                                msg: r.get(3)?,
                                endpoint: r.get(4)?,
                                attempts: r.get(5)?,
                                trigger: r.get(6)?,
                            })
                        },
                    )
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .map_err(internal)?;
                self.remaining -= rows.len().min(self.remaining);
                self.leased.extend(rows);
            }
            self.last = Some(endpoint.clone());
            at = endpoint;
        }
        Ok(())
    }

    fn room_of(&self, endpoint: &str) -> usize {
        self.limited.get(endpoint).copied().unwrap_or(self.each)
    }
}

fn cancel(c: &Connection, id: i64) -> StoreResult<()> {
    c.prepare_cached("UPDATE delivery SET status = 4, lease_until = NULL, lease_owner = NULL WHERE id = ?")
        .and_then(|mut s| s.execute([id]))
        .map_err(internal)?;
    Ok(())
}

/// A leased row, before its message and endpoint are loaded.
struct Leased {
    id: i64,
    org: OrgId,
    app: ApplicationId,
    msg: String,
    endpoint: String,
    attempts: u32,
    trigger: i64,
}

/// A message as a claim reads it: the row, its application's uid and kind, and for a
/// forwarded request the body from the source's log (`None` when that is gone).
#[derive(Clone)]
struct MessageRead {
    message: Option<Message>,
    app_uid: Option<String>,
    operational: bool,
    raw: Option<Option<RawBody>>,
}

/// What one claim has read already: each endpoint once however many of its deliveries
/// the claim leases, and each message once however many endpoints it goes to
/// (fan-out). Keyed with the tenant, as the queries are.
#[derive(Default)]
struct ClaimReads {
    endpoints: HashMap<(OrgId, ApplicationId, String), Option<Endpoint>>,
    messages: HashMap<(OrgId, String), MessageRead>,
}

impl ClaimReads {
    fn endpoint(
        &mut self,
        c: &Connection,
        org: &OrgId,
        app: &ApplicationId,
        id: &str,
    ) -> StoreResult<Option<Endpoint>> {
        let key = (org.clone(), app.clone(), id.to_owned());
        if let Some(ep) = self.endpoints.get(&key) {
            return Ok(ep.clone());
        }
        let ep = match crate::endpoints::find(c, org, app, id) {
            Ok(ep) => Some(ep),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        self.endpoints.insert(key, ep.clone());
        Ok(ep)
    }

    fn message(&mut self, c: &Connection, org: &OrgId, id: &str) -> StoreResult<MessageRead> {
        let key = (org.clone(), id.to_owned());
        if let Some(m) = self.messages.get(&key) {
            return Ok(m.clone());
        }
        let read = read_message(c, org, id)?;
        self.messages.insert(key, read.clone());
        Ok(read)
    }
}

fn read_message(c: &Connection, org: &OrgId, msg: &str) -> StoreResult<MessageRead> {
    // The message and its application's uid and kind, in one query.
    let loaded = c
        .prepare_cached(&format!(
            "SELECT {}, a.uid, a.operational = 1, m.ingest_id, m.forward_headers
             FROM message m JOIN application a ON a.id = m.app_id
             WHERE m.id = ? AND m.org_id = ?",
            crate::messages::M_COLUMNS
        ))
        .and_then(|mut s| {
            s.query_row(params![msg, org.as_str()], |r| {
                Ok((
                    crate::messages::from_row(r)?,
                    r.get::<_, Option<String>>(crate::messages::M_COUNT)?,
                    r.get::<_, bool>(crate::messages::M_COUNT + 1)?,
                    r.get::<_, Option<String>>(crate::messages::M_COUNT + 2)?,
                    r.get::<_, Option<String>>(crate::messages::M_COUNT + 3)?,
                ))
            })
            .optional()
        })
        .map_err(internal)?;
    let (message, app_uid, operational, forwarded) = match loaded {
        Some((m, uid, op, ingest_id, headers)) => (Some(m), uid, op, ingest_id.zip(headers)),
        None => (None, None, false, None),
    };
    // A forwarded request's body lives in the source's log; gone with it, nothing to send.
    let raw = match forwarded {
        Some((ingest_id, headers)) => match c
            .prepare_cached(
                "SELECT body, path, query, headers, method FROM ingest_request WHERE id = ? AND org_id = ?",
            )
            .and_then(|mut s| {
                s.query_row(params![ingest_id, org.as_str()], |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .optional()
            })
            .map_err(internal)?
        {
            Some((body, path, query, received, method)) => Some(Some(RawBody {
                body,
                headers: crate::sql::from_json(crate::messages::M_COUNT + 3, &headers).map_err(internal)?,
                received: ReceivedParts {
                    path,
                    query,
                    headers: crate::sql::from_json(3, &received).map_err(internal)?,
                    method,
                },
            })),
            None => None,
        },
        None => Some(None),
    };
    Ok(MessageRead {
        message,
        app_uid,
        operational,
        raw,
    })
}

/// Loads what is needed to send a leased delivery; `None` (and the delivery canceled)
/// when it can no longer be sent.
fn load(c: &Connection, reads: &mut ClaimReads, leased: Leased) -> StoreResult<Option<ClaimedDelivery>> {
    let Leased {
        id,
        org,
        app,
        msg,
        endpoint,
        attempts,
        trigger,
    } = leased;
    let MessageRead {
        message,
        app_uid,
        operational,
        raw,
    } = reads.message(c, &org, &msg)?;
    let endpoint = reads.endpoint(c, &org, &app, &endpoint)?;
    match (message, endpoint) {
        (Some(message), Some(endpoint))
            if message.payload.is_some() && !endpoint.data.disabled && raw.is_some() =>
        {
            Ok(Some(ClaimedDelivery {
                raw: raw.flatten(),
                app_uid: app_uid.and_then(|u| u.parse().ok()),
                operational,
                id,
                org_id: org,
                message,
                endpoint,
                attempts,
                trigger: if trigger == 1 {
                    AttemptTrigger::Manual
                } else {
                    AttemptTrigger::Scheduled
                },
            }))
        }
        _ => {
            cancel(c, id)?;
            Ok(None)
        }
    }
}

#[async_trait]
impl DeliveryStore for SqliteStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
        owner: &str,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let owner = owner.to_owned();
        let room = room.clone();
        let cursor = Arc::clone(&self.claim_cursor);
        self.write(move |c| {
            let now_ms = now.timestamp_millis();
            let after = cursor.lock().map(|g| g.clone()).unwrap_or_default();
            let mut walk = QueueWalk::new(&room, limit);
            // The endpoints after the one served last, then from the first up to it.
            walk.pass(c, &after, None, now_ms, lease_until.timestamp_millis(), &owner)?;
            if !after.is_empty() {
                walk.pass(
                    c,
                    "",
                    Some(&after),
                    now_ms,
                    lease_until.timestamp_millis(),
                    &owner,
                )?;
            }
            if let (Some(last), Ok(mut g)) = (walk.last.take(), cursor.lock()) {
                *g = last;
            }
            let mut claimed = Vec::with_capacity(walk.leased.len());
            let mut reads = ClaimReads::default();
            for leased in walk.leased {
                let (id, endpoint, msg) = (leased.id, leased.endpoint.clone(), leased.msg.clone());
                match load(c, &mut reads, leased) {
                    Ok(Some(d)) => claimed.push(d),
                    Ok(None) => {}
                    Err(e @ StoreError::Unavailable(_)) => return Err(e),
                    // A damaged row: set aside, never the whole claim failed with it.
                    Err(e) => {
                        hookd_store::log_parked(id, &endpoint, &msg, &e);
                        let until = now + hookd_store::undecodable_park();
                        c.prepare_cached(
                            "UPDATE delivery SET next_attempt_at = ?, lease_until = NULL, lease_owner = NULL WHERE id = ?",
                        )
                        .and_then(|mut s| s.execute(params![until.timestamp_millis(), id]))
                        .map_err(internal)?;
                    }
                }
            }
            Ok(claimed)
        })
        .await
    }

    async fn finish_attempt(
        &self,
        delivery: i64,
        attempt: NewAttempt,
        next: NextStep,
    ) -> StoreResult<Option<AttemptId>> {
        self.write(move |c| {
            let (status, next_at) = match next {
                NextStep::Done => (DeliveryStatus::Success, None),
                NextStep::RetryAt(t) => (DeliveryStatus::Pending, Some(t.timestamp_millis())),
                NextStep::Exhausted => (DeliveryStatus::Fail, None),
                NextStep::Cancel => (DeliveryStatus::Canceled, None),
            };
            let at = attempt.at.timestamp_millis();
            // The delivery moved on, handing back what the attempt row repeats: one
            // statement, not a read and a write.
            let row: Option<(String, String, String, String)> = c
                .prepare_cached(
                    "UPDATE delivery SET attempts = attempts + 1, status = ?, next_attempt_at = ?, lease_until = NULL,
                         lease_owner = NULL, trigger = 0, last_attempt_at = ? WHERE id = ?
                     RETURNING org_id, app_id, msg_id, endpoint_id",
                )
                .and_then(|mut s| {
                    s.query_row(params![status as i64, next_at, at, delivery], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                    })
                    .optional()
                })
                .map_err(internal)?;
            // The endpoint or message was deleted while the attempt was in flight.
            let Some((org, app, msg, endpoint)) = row else { return Ok(None) };
            let attempt_id = AttemptId::generate();
            c.prepare_cached(
                "INSERT INTO attempt (id, org_id, app_id, msg_id, endpoint_id, delivery_id, url, status,
                     response_status_code, response, duration_ms, trigger, created_at, transformed, headers)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    attempt_id.as_str(),
                    org,
                    app,
                    msg,
                    endpoint,
                    delivery,
                    attempt.url,
                    attempt.status as i64,
                    attempt.response_status_code,
                    attempt.response,
                    attempt.duration_ms,
                    attempt.trigger as i64,
                    at,
                    attempt.transformed,
                    attempt.headers.stored(),
                ])
            })
            .map_err(internal)?;
            if next == NextStep::Done {
                c.prepare_cached("UPDATE endpoint SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL")
                    .and_then(|mut s| s.execute([&endpoint]))
                    .map_err(internal)?;
            }
            Ok(Some(attempt_id))
        })
        .await
    }

    async fn note_exhausted(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        disable_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let (org, app, endpoint) = (org.clone(), app.clone(), endpoint.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE endpoint SET failing_since = ? WHERE org_id = ? AND app_id = ? AND id = ? AND failing_since IS NULL",
            )
            .and_then(|mut s| s.execute(params![now.timestamp_millis(), org.as_str(), app.as_str(), endpoint.as_str()]))
            .map_err(internal)?;
            let disabled = c
                .prepare_cached(
                    "UPDATE endpoint SET disabled = 1, updated_at = ?
                     WHERE org_id = ? AND app_id = ? AND id = ? AND disabled = 0 AND failing_since <= ?",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        now.timestamp_millis(),
                        org.as_str(),
                        app.as_str(),
                        endpoint.as_str(),
                        disable_before.timestamp_millis()
                    ])
                })
                .map_err(internal)?;
            Ok(disabled > 0)
        })
        .await
    }

    async fn defer(&self, delivery: i64, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE delivery SET next_attempt_at = ?, lease_until = NULL, lease_owner = NULL
                 WHERE id = ? AND status = 1",
            )
            .and_then(|mut s| s.execute(params![at.timestamp_millis(), delivery]))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn retry_endpoint_now(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let (org, app, endpoint) = (org.to_string(), app.to_string(), endpoint.to_string());
        let now = now.timestamp_millis();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE delivery SET next_attempt_at = ?1
                 WHERE endpoint_id = ?2 AND org_id = ?3 AND app_id = ?4 AND status = 1
                   AND next_attempt_at > ?1 AND (lease_until IS NULL OR lease_until <= ?1)",
            )
            .and_then(|mut s| s.execute(params![now, endpoint, org, app]))
            .map_err(internal)
        })
        .await
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let owner = owner.to_owned();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE delivery SET lease_until = NULL, lease_owner = NULL WHERE lease_owner = ?",
            )
            .and_then(|mut s| s.execute([owner]))
            .map_err(internal)
        })
        .await
    }

    async fn backlog(&self, now: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        self.read(move |c| {
            c.prepare_cached(
                "SELECT COALESCE(SUM(next_attempt_at <= ?1), 0), COALESCE(SUM(next_attempt_at > ?1), 0)
                 FROM delivery WHERE status = 1",
            )
            .and_then(|mut s| s.query_row([now.timestamp_millis()], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(internal)
        })
        .await
    }
}
