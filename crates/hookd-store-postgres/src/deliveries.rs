//! The delivery queue: leasing due deliveries with `FOR UPDATE SKIP LOCKED`, recording
//! attempts (the sends that ended together in one statement, [`Records`]), and the
//! throttle every node shares.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, OrgId};
use hookd_core::throttle::ThrottleRate;
use hookd_store::sealing::Keyring;
use hookd_store::{
    AttemptTrigger, CLAIM_WALK_ENDPOINTS, ClaimedDelivery, DeliveryStatus, DeliveryStore, EndpointRoom,
    NewAttempt, NextStep, RawBody, ReceivedParts, StoreError, StoreResult,
};
use tokio::sync::Notify;
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, get};

/// Leases due rows and reads everything needed to send them, in one statement. Rows
/// another node holds (locked by its claim in progress) are skipped, not waited for.
/// A claim walks the endpoints with pending deliveries after `$6` in id order, then
/// wraps round to those up to and including it (`wrapped`), skipping those in `$2`,
/// at most `$10` of them, and leases each one's oldest due deliveries up to its room
/// (`$7`, or the `$8`/`$9` pairs), `$3` in all. Always answers at least one row: its
/// last column is the last endpoint the walk visited (NULL: none), the one before it
/// the place in the walk of the row's endpoint, and a row without a delivery (NULL
/// id) only carries the former. One statement whatever the cursor: with the walk in
/// two passes (after the cursor, then up to it) a queue of one endpoint cost two
/// statements per claim, the first always empty.
fn claim_sql() -> &'static str {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH RECURSIVE walk(e, n, wrapped) AS (
             (SELECT s.e, 1::bigint, s.wrapped FROM (
                 (SELECT endpoint_id AS e, false AS wrapped FROM delivery
                  WHERE status = 1 AND endpoint_id > $6 ORDER BY endpoint_id LIMIT 1)
                 UNION ALL
                 (SELECT endpoint_id, true FROM delivery
                  WHERE status = 1 AND endpoint_id <= $6 ORDER BY endpoint_id LIMIT 1)
              ) s ORDER BY s.wrapped LIMIT 1)
             UNION ALL
             SELECT nx.e, w.n + 1, nx.wrapped FROM walk w, LATERAL (
                 SELECT x.e, x.wrapped FROM (
                     (SELECT d.endpoint_id AS e, w.wrapped AS wrapped FROM delivery d
                      WHERE d.status = 1 AND d.endpoint_id > w.e AND (NOT w.wrapped OR d.endpoint_id <= $6)
                      ORDER BY d.endpoint_id LIMIT 1)
                     UNION ALL
                     (SELECT d.endpoint_id, true FROM delivery d
                      WHERE NOT w.wrapped AND d.status = 1 AND d.endpoint_id <= $6
                      ORDER BY d.endpoint_id LIMIT 1)
                 ) x ORDER BY x.wrapped LIMIT 1
             ) nx
             WHERE w.n < $10
         ), visit AS (
             SELECT w.e, w.n, COALESCE(r.room, $7) AS room FROM walk w
             LEFT JOIN unnest($8::text[], $9::bigint[]) AS r(endpoint_id, room) ON r.endpoint_id = w.e
             WHERE NOT (w.e = ANY($2))
         ), candidate AS (
             SELECT c.id, v.n, c.next_attempt_at FROM visit v
             CROSS JOIN LATERAL (
                 SELECT id, next_attempt_at FROM delivery
                 WHERE status = 1 AND endpoint_id = v.e AND next_attempt_at <= $1
                   AND (lease_until IS NULL OR lease_until <= $1)
                 ORDER BY next_attempt_at LIMIT v.room
                 FOR UPDATE SKIP LOCKED
             ) c
         ), due AS (
             SELECT id, n FROM candidate ORDER BY n, next_attempt_at LIMIT $3
         ), leased AS (
             UPDATE delivery d SET lease_until = $4, lease_owner = $5
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.org_id, d.msg_id, d.endpoint_id, d.attempts, d.trigger, due.n
         ), visited AS (
             SELECT (SELECT e FROM walk ORDER BY n DESC LIMIT 1) AS last
         )
         SELECT l.id, l.org_id, l.attempts, l.trigger,
                {m}, a.uid, a.operational = 1, m.ingest_id IS NOT NULL, ir.body, m.forward_headers,
                ir.path, ir.query, ir.headers, ir.method, {e}, l.endpoint_id, l.n, visited.last
         FROM visited
         LEFT JOIN leased l ON true
         LEFT JOIN message m ON m.id = l.msg_id
         LEFT JOIN application a ON a.id = m.app_id
         LEFT JOIN endpoint e ON e.id = l.endpoint_id
         LEFT JOIN ingest_request ir ON ir.id = m.ingest_id AND ir.org_id = l.org_id",
            m = crate::messages::M_COLUMNS,
            e = crate::endpoints::E_COLUMNS,
        )
    });
    &SQL
}

/// Where the endpoint's columns start in a claimed row (after the delivery's, the
/// message's, the application's and the forwarded request's).
const ENDPOINT_AT: usize = AFTER_MSG + 9;

/// Where the message's columns start in a claimed row, and the first column after them.
const MSG_AT: usize = 4;
const AFTER_MSG: usize = MSG_AT + crate::messages::M_COUNT;

/// A claimed row as something to send, or `None` when it can never be sent (payload
/// expunged, endpoint disabled or gone, forwarded body deleted with the log).
fn sendable(keys: &Keyring, row: &Row) -> StoreResult<Option<ClaimedDelivery>> {
    if get::<Option<String>>(row, MSG_AT)?.is_none() || get::<Option<String>>(row, ENDPOINT_AT)?.is_none() {
        return Ok(None);
    }
    let message = crate::messages::from_row_at(row, MSG_AT)?;
    let endpoint = crate::endpoints::from_row_at(keys, row, ENDPOINT_AT)?;
    let raw = if get::<bool>(row, AFTER_MSG + 2)? {
        match get::<Option<Vec<u8>>>(row, AFTER_MSG + 3)? {
            Some(body) => Some(RawBody {
                body,
                headers: db::json_opt(row, AFTER_MSG + 4)?.unwrap_or_default(),
                received: ReceivedParts {
                    path: get::<Option<String>>(row, AFTER_MSG + 5)?.unwrap_or_default(),
                    query: get::<Option<String>>(row, AFTER_MSG + 6)?.unwrap_or_default(),
                    headers: db::json_opt(row, AFTER_MSG + 7)?.unwrap_or_default(),
                    method: get::<Option<String>>(row, AFTER_MSG + 8)?.unwrap_or_default(),
                },
            }),
            None => return Ok(None),
        }
    } else {
        None
    };
    if message.payload.is_none() || endpoint.data.disabled {
        return Ok(None);
    }
    Ok(Some(ClaimedDelivery {
        id: get(row, 0)?,
        org_id: OrgId::from_trusted(get(row, 1)?),
        attempts: get::<i32>(row, 2)?.max(0) as u32,
        trigger: if get::<i32>(row, 3)? == 1 {
            AttemptTrigger::Manual
        } else {
            AttemptTrigger::Scheduled
        },
        app_uid: get::<Option<String>>(row, AFTER_MSG)?.and_then(|u| u.parse().ok()),
        operational: get::<Option<bool>>(row, AFTER_MSG + 1)?.unwrap_or(false),
        raw,
        message,
        endpoint,
    }))
}

/// GCRA with a burst of one second's worth: each send pushes the endpoint's
/// "theoretical arrival time" one interval (1/rate) on; a send is allowed while that
/// time is at most `burst` ahead of now. One statement, so concurrent nodes never
/// both take the last token.
/// A throttle table shared by every node: one GCRA "theoretical arrival time" per key
/// (`endpoint_throttle` by endpoint, `flow_throttle` by flow).
pub(crate) struct SharedThrottle {
    /// Takes one turn: inserts or moves the key's time on, unless it is more than the
    /// burst ahead of now (then no row).
    take: &'static str,
    /// The key's time.
    read: &'static str,
}

pub(crate) const ENDPOINT_THROTTLE: SharedThrottle = SharedThrottle {
    take: "INSERT INTO endpoint_throttle AS t (endpoint_id, tat)
    VALUES ($1, $2::timestamptz + $3::bigint * interval '1 microsecond')
    ON CONFLICT (endpoint_id) DO UPDATE SET tat = GREATEST(t.tat, $2::timestamptz) + $3::bigint * interval '1 microsecond'
        WHERE GREATEST(t.tat, $2::timestamptz) - $2::timestamptz <= $4::bigint * interval '1 microsecond'
    RETURNING tat",
    read: "SELECT tat FROM endpoint_throttle WHERE endpoint_id = $1",
};

pub(crate) const FLOW_THROTTLE: SharedThrottle = SharedThrottle {
    take: "INSERT INTO flow_throttle AS t (flow_id, tat)
    VALUES ($1, $2::timestamptz + $3::bigint * interval '1 microsecond')
    ON CONFLICT (flow_id) DO UPDATE SET tat = GREATEST(t.tat, $2::timestamptz) + $3::bigint * interval '1 microsecond'
        WHERE GREATEST(t.tat, $2::timestamptz) - $2::timestamptz <= $4::bigint * interval '1 microsecond'
    RETURNING tat",
    read: "SELECT tat FROM flow_throttle WHERE flow_id = $1",
};

impl SharedThrottle {
    /// One turn for `key` at `rate` per second (a burst of one second's worth):
    /// `None` to go now, `Some(wait)` until a turn is allowed. A key whose row is gone
    /// (its endpoint or flow deleted meanwhile) is not held back.
    pub(crate) async fn take(
        &self,
        store: &PgStore,
        key: &str,
        rate: ThrottleRate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Duration>> {
        let rate = i64::from(rate.get());
        let interval = 1_000_000 / rate;
        let burst = interval * (rate - 1);
        let c = store.client().await?;
        let stmt = c.prepare_cached(self.take).await.map_err(db::err)?;
        match c.query_opt(&stmt, &[&key, &now, &interval, &burst]).await {
            Ok(Some(_)) => return Ok(None),
            Ok(None) => {}
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) => {
                return Ok(None);
            }
            Err(e) => return Err(db::err(e)),
        }
        let tat: Option<DateTime<Utc>> = db::query_opt(&c, self.read, &[&key])
            .await?
            .map(|r| get(&r, 0))
            .transpose()?;
        let Some(tat) = tat else { return Ok(None) };
        let ahead = (tat.max(now) - now).num_microseconds().unwrap_or(i64::MAX);
        let wait = (ahead - burst).max(1);
        Ok(Some(Duration::from_micros(wait as u64)))
    }
}

/// Where a record leaves its delivery: its status and next attempt.
fn moved_on(next: NextStep) -> (DeliveryStatus, Option<DateTime<Utc>>) {
    match next {
        NextStep::Done => (DeliveryStatus::Success, None),
        NextStep::RetryAt(t) => (DeliveryStatus::Pending, Some(db::ms(t))),
        NextStep::Exhausted => (DeliveryStatus::Fail, None),
        NextStep::Cancel => (DeliveryStatus::Canceled, None),
    }
}

/// One attempt's record: the delivery moves on, the attempt is logged and a success
/// clears the endpoint's failing streak, in one statement. `None`: the delivery is
/// gone (its endpoint or message deleted while the attempt was in flight).
async fn finish_one<C: GenericClient>(
    c: &C,
    delivery: i64,
    attempt: NewAttempt,
    next: NextStep,
) -> StoreResult<Option<AttemptId>> {
    let (status, next_at) = moved_on(next);
    let attempt_id = AttemptId::generate();
    let at = db::ms(attempt.at);
    let row = db::query_opt(
        c,
        "WITH d AS (
             UPDATE delivery SET attempts = attempts + 1, status = $1, next_attempt_at = $2,
                 lease_until = NULL, lease_owner = NULL, trigger = 0, last_attempt_at = $3
             WHERE id = $4 RETURNING org_id, app_id, msg_id, endpoint_id
         ), healthy AS (
             UPDATE endpoint SET failing_since = NULL
             WHERE $5 AND id = (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL
         )
         INSERT INTO attempt (id, org_id, app_id, msg_id, endpoint_id, delivery_id, url, status,
             response_status_code, response, duration_ms, trigger, created_at, transformed, headers)
         SELECT $6, org_id, app_id, msg_id, endpoint_id, $4, $7, $8, $9, $10, $11, $12, $3, $13, $14 FROM d
         RETURNING id",
        &[
            &(status as i32),
            &next_at,
            &at,
            &delivery,
            &(next == NextStep::Done),
            &attempt_id.as_str(),
            &attempt.url,
            &(attempt.status as i32),
            &attempt.response_status_code,
            &attempt.response,
            &attempt.duration_ms,
            &(attempt.trigger as i32),
            &attempt.transformed,
            &attempt.headers.stored(),
        ],
    )
    .await?;
    Ok(row.map(|_| attempt_id))
}

/// The attempts of sends that ended together, recorded by one statement
/// ([`crate::group_commit`]): what [`finish_one`] does, for each of them.
pub(crate) struct Records;

#[async_trait]
impl crate::group_commit::Batch for Records {
    type Item = (i64, NewAttempt, NextStep);
    type Out = Option<AttemptId>;

    fn bytes((_, attempt, _): &Self::Item) -> usize {
        attempt.url.len() + attempt.response.len() + 256
    }

    async fn together(
        c: &deadpool_postgres::Object,
        items: &[Self::Item],
    ) -> StoreResult<Vec<StoreResult<Self::Out>>> {
        // A delivery twice in one batch (its lease ran out and this node took it again)
        // would be updated once: those are written one by one.
        let mut seen = std::collections::HashSet::with_capacity(items.len());
        if !items.iter().all(|(d, _, _)| seen.insert(*d)) {
            return Err(StoreError::Conflict("a delivery is twice in the batch".into()));
        }
        let mut cols = RecordColumns::default();
        let ids: Vec<AttemptId> = items.iter().map(|_| AttemptId::generate()).collect();
        for ((delivery, attempt, next), id) in items.iter().zip(&ids) {
            cols.push(*delivery, attempt, *next, id);
        }
        let rows = db::query(
            c,
            "WITH x AS (
                 SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[], $4::timestamptz[], $5::bool[],
                     $6::text[], $7::text[], $8::int[], $9::int[], $10::text[], $11::bigint[], $12::int[],
                     $13::bool[], $14::text[])
                 AS x(delivery, status, next_at, at, done, attempt_id, url, attempt_status, code, response,
                     duration_ms, trigger, transformed, headers)
             ), d AS (
                 UPDATE delivery SET attempts = attempts + 1, status = x.status, next_attempt_at = x.next_at,
                     lease_until = NULL, lease_owner = NULL, trigger = 0, last_attempt_at = x.at
                 FROM x WHERE delivery.id = x.delivery
                 RETURNING delivery.id, delivery.org_id, delivery.app_id, delivery.msg_id, delivery.endpoint_id
             ), healthy AS (
                 UPDATE endpoint SET failing_since = NULL
                 WHERE failing_since IS NOT NULL
                   AND id IN (SELECT d.endpoint_id FROM d JOIN x ON x.delivery = d.id WHERE x.done)
             )
             INSERT INTO attempt (id, org_id, app_id, msg_id, endpoint_id, delivery_id, url, status,
                 response_status_code, response, duration_ms, trigger, created_at, transformed, headers)
             SELECT x.attempt_id, d.org_id, d.app_id, d.msg_id, d.endpoint_id, d.id, x.url, x.attempt_status,
                 x.code, x.response, x.duration_ms, x.trigger, x.at, x.transformed, x.headers
             FROM d JOIN x ON x.delivery = d.id
             RETURNING delivery_id",
            &[
                &cols.delivery,
                &cols.status,
                &cols.next_at,
                &cols.at,
                &cols.done,
                &cols.attempt_id,
                &cols.url,
                &cols.attempt_status,
                &cols.code,
                &cols.response,
                &cols.duration_ms,
                &cols.trigger,
                &cols.transformed,
                &cols.headers,
            ],
        )
        .await?;
        let recorded: std::collections::HashSet<i64> = rows
            .iter()
            .map(|r| get::<i64>(r, 0))
            .collect::<StoreResult<_>>()?;
        Ok(items
            .iter()
            .zip(ids)
            .map(|((delivery, _, _), id)| Ok(recorded.contains(delivery).then_some(id)))
            .collect())
    }

    async fn alone(
        c: &deadpool_postgres::Object,
        (delivery, attempt, next): Self::Item,
    ) -> StoreResult<Self::Out> {
        finish_one(c, delivery, attempt, next).await
    }

    fn new_work(_: &Self::Out) -> bool {
        false
    }
}

/// [`Records::together`]'s statement parameters, one array per column.
#[derive(Default)]
struct RecordColumns<'a> {
    delivery: Vec<i64>,
    status: Vec<i32>,
    next_at: Vec<Option<DateTime<Utc>>>,
    at: Vec<DateTime<Utc>>,
    done: Vec<bool>,
    attempt_id: Vec<&'a str>,
    url: Vec<&'a str>,
    attempt_status: Vec<i32>,
    code: Vec<i32>,
    response: Vec<&'a str>,
    duration_ms: Vec<i64>,
    trigger: Vec<i32>,
    transformed: Vec<bool>,
    headers: Vec<Option<String>>,
}

impl<'a> RecordColumns<'a> {
    fn push(&mut self, delivery: i64, attempt: &'a NewAttempt, next: NextStep, id: &'a AttemptId) {
        let (status, next_at) = moved_on(next);
        self.delivery.push(delivery);
        self.status.push(status as i32);
        self.next_at.push(next_at);
        self.at.push(db::ms(attempt.at));
        self.done.push(next == NextStep::Done);
        self.attempt_id.push(id.as_str());
        self.url.push(&attempt.url);
        self.attempt_status.push(attempt.status as i32);
        self.code.push(attempt.response_status_code);
        self.response.push(&attempt.response);
        self.duration_ms.push(attempt.duration_ms);
        self.trigger.push(attempt.trigger as i32);
        self.transformed.push(attempt.transformed);
        self.headers.push(attempt.headers.stored());
    }
}

#[async_trait]
impl DeliveryStore for PgStore {
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        lease_until: DateTime<Utc>,
        owner: &str,
        room: &EndpointRoom,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let c = self.client().await?;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let skip: Vec<&str> = room.full().map(|e| e.as_str()).collect();
        let (partial, partial_room): (Vec<&str>, Vec<i64>) =
            room.partial().map(|(e, n)| (e.as_str(), count(n))).unzip();
        let after = self.claim_cursor.lock().map(|g| g.clone()).unwrap_or_default();
        let got = db::query(
            &c,
            claim_sql(),
            &[
                &now,
                &skip,
                &count(limit),
                &lease_until,
                &owner,
                &after,
                &count(room.each),
                &partial,
                &partial_room,
                &count(CLAIM_WALK_ENDPOINTS),
            ],
        )
        .await?;
        let last_col = got.first().map_or(0, |r| r.len() - 1);
        let walked: Option<String> = got.first().map(|r| get(r, last_col)).transpose()?.flatten();
        let rows: Vec<Row> = got
            .into_iter()
            .filter(|r| r.try_get::<_, Option<i64>>(0).ok().flatten().is_some())
            .collect();
        // A full claim resumes after the last endpoint it took from (in the walk's
        // order); otherwise after the last one visited.
        let served = rows
            .iter()
            .filter_map(|r| {
                Some((
                    get::<i64>(r, last_col - 1).ok()?,
                    get::<String>(r, last_col - 2).ok()?,
                ))
            })
            .max()
            .map(|(_, endpoint)| endpoint);
        let next_cursor = if rows.len() >= limit { served } else { walked };
        if let (Some(cursor), Ok(mut g)) = (next_cursor, self.claim_cursor.lock()) {
            *g = cursor;
        }
        let mut claimed = Vec::with_capacity(rows.len());
        let mut dead: Vec<i64> = Vec::new();
        let mut parked: Vec<i64> = Vec::new();
        for row in &rows {
            match sendable(&self.keyring, row) {
                Ok(Some(d)) => claimed.push(d),
                Ok(None) => dead.push(get(row, 0)?),
                Err(e @ hookd_store::StoreError::Unavailable(_)) => return Err(e),
                // A damaged row: set aside, never the whole claim failed with it.
                Err(e) => {
                    let id: i64 = get(row, 0)?;
                    let endpoint = get::<Option<String>>(row, ENDPOINT_AT)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    let msg = get::<Option<String>>(row, MSG_AT)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    hookd_store::log_parked(id, &endpoint, &msg, &e);
                    parked.push(id);
                }
            }
        }
        if !parked.is_empty() {
            db::execute(
                &c,
                "UPDATE delivery SET next_attempt_at = $2, lease_until = NULL, lease_owner = NULL WHERE id = ANY($1)",
                &[&parked, &(now + hookd_store::undecodable_park())],
            )
            .await?;
        }
        if !dead.is_empty() {
            db::execute(
                &c,
                "UPDATE delivery SET status = 4, lease_until = NULL, lease_owner = NULL WHERE id = ANY($1)",
                &[&dead],
            )
            .await?;
        }
        Ok(claimed)
    }

    async fn finish_attempt(
        &self,
        delivery: i64,
        attempt: NewAttempt,
        next: NextStep,
    ) -> StoreResult<Option<AttemptId>> {
        self.records.write((delivery, attempt, next)).await
    }

    async fn note_exhausted(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
        disable_before: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        db::execute(
            &tx,
            "UPDATE endpoint SET failing_since = $1
             WHERE org_id = $2 AND app_id = $3 AND id = $4 AND failing_since IS NULL",
            &[&db::ms(now), &org.as_str(), &app.as_str(), &endpoint.as_str()],
        )
        .await?;
        // Row-locked by the statement above: of two nodes noting at once, the second
        // sees `disabled` already set and changes nothing — the event is sent once.
        let disabled = db::execute(
            &tx,
            "UPDATE endpoint SET disabled = true, updated_at = $1
             WHERE org_id = $2 AND app_id = $3 AND id = $4 AND NOT disabled AND failing_since <= $5",
            &[
                &db::ms(now),
                &org.as_str(),
                &app.as_str(),
                &endpoint.as_str(),
                &disable_before,
            ],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(disabled > 0)
    }

    async fn defer(&self, delivery: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "UPDATE delivery SET next_attempt_at = $1, lease_until = NULL, lease_owner = NULL
             WHERE id = $2 AND status = 1",
            &[&db::ms(at), &delivery],
        )
        .await?;
        Ok(())
    }

    async fn retry_endpoint_now(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE delivery SET next_attempt_at = $1
             WHERE endpoint_id = $2 AND org_id = $3 AND app_id = $4 AND status = 1
               AND next_attempt_at > $1 AND (lease_until IS NULL OR lease_until <= $1)",
            &[&db::ms(now), &endpoint.as_str(), &org.as_str(), &app.as_str()],
        )
        .await?;
        if n > 0 {
            self.announce_work();
        }
        Ok(n as usize)
    }

    async fn release_leases(&self, owner: &str) -> StoreResult<usize> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            // Only pending rows are leased; `delivery_due` finds them (there is no
            // index on the owner: migration 0018).
            "UPDATE delivery SET lease_until = NULL, lease_owner = NULL WHERE status = 1 AND lease_owner = $1",
            &[&owner],
        )
        .await?;
        if n > 0 {
            self.announce_work();
        }
        Ok(n as usize)
    }

    async fn backlog(&self, now: DateTime<Utc>) -> StoreResult<(u64, u64)> {
        let c = self.client().await?;
        let row = db::query_opt(
            &c,
            "SELECT COUNT(*) FILTER (WHERE next_attempt_at <= $1), COUNT(*) FILTER (WHERE next_attempt_at > $1)
             FROM delivery WHERE status = 1",
            &[&now],
        )
        .await?;
        Ok(match row {
            Some(row) => (
                get::<i64>(&row, 0)?.max(0) as u64,
                get::<i64>(&row, 1)?.max(0) as u64,
            ),
            None => (0, 0),
        })
    }

    async fn throttle_take(
        &self,
        endpoint: &EndpointId,
        rate: ThrottleRate,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<Duration>> {
        ENDPOINT_THROTTLE.take(self, endpoint.as_str(), rate, now).await
    }

    async fn hold_listener(
        &self,
        endpoint: &EndpointId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        // An endpoint deleted meanwhile inserts nothing.
        db::execute(
            &c,
            "INSERT INTO listen_hold (endpoint_id, owner, until)
             SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM endpoint WHERE id = $1)
             ON CONFLICT (endpoint_id) DO UPDATE SET owner = EXCLUDED.owner, until = EXCLUDED.until",
            &[&endpoint.as_str(), &owner, &db::ms(until)],
        )
        .await?;
        Ok(())
    }

    async fn listeners_elsewhere(&self, owner: &str, now: DateTime<Utc>) -> StoreResult<Vec<EndpointId>> {
        let c = self.client().await?;
        let rows = db::query(
            &c,
            "SELECT endpoint_id FROM listen_hold WHERE owner <> $1 AND until > $2",
            &[&owner, &now],
        )
        .await?;
        rows.iter()
            .map(|r| Ok(EndpointId::from_trusted(get::<String>(r, 0)?)))
            .collect()
    }

    fn shares_throttle(&self) -> bool {
        true
    }

    fn work_signal(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.work))
    }
}
