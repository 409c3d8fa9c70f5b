//! Messages (with their fan-out into deliveries) and the attempt log.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, IngestLogId, MessageId, OrgId};
use hookd_core::matching::{Subscription, accepts};
use hookd_core::name::{ChannelName, EventTypeName};
use hookd_store::fanout::{Candidates, LoggedRequest, RequestView};
use hookd_store::{
    AttemptFilter, AttemptHeaders, AttemptTrigger, DeliveryState, DeliveryStatus, Endpoint, EndpointStats,
    ForwardedRequest, ListQuery, Message, MessageAttempt, MessageFilter, MessageStore, NewMessage, Page,
    StoreError, StoreResult,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, ToSql, params, params_from_iter};

use crate::SqliteStore;
use crate::sql::{self, from_json, from_millis, internal, to_json};

pub(crate) const COLUMNS: &str =
    "id, app_id, event_type, event_id, channels, tags, payload, created_at, deliver_at";
pub(crate) const M_COLUMNS: &str =
    "m.id, m.app_id, m.event_type, m.event_id, m.channels, m.tags, m.payload, m.created_at, m.deliver_at";
/// How many columns [`COLUMNS`] and [`M_COLUMNS`] name.
pub(crate) const M_COUNT: usize = 9;

pub(crate) fn from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: MessageId::from_trusted(row.get(0)?),
        app_id: ApplicationId::from_trusted(row.get(1)?),
        event_type: EventTypeName::from_trusted(row.get(2)?),
        event_id: row
            .get::<_, Option<String>>(3)?
            .map(|e| e.parse().map_err(|e| sql::corrupt(3, e)))
            .transpose()?,
        channels: row
            .get::<_, Option<String>>(4)?
            .map(|s| from_json(4, &s))
            .transpose()?,
        tags: from_json(5, &row.get::<_, String>(5)?)?,
        payload: row.get(6)?,
        created_at: from_millis(row.get(7)?),
        deliver_at: row.get::<_, Option<i64>>(8)?.map(from_millis),
    })
}

fn find(c: &Connection, org: &OrgId, app: &ApplicationId, id_or_event_id: &str) -> StoreResult<Message> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM message WHERE org_id = ?1 AND app_id = ?2 AND (id = ?3 OR event_id = ?3)
         ORDER BY id = ?3 DESC LIMIT 1"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.as_str(), app.as_str(), id_or_event_id], from_row)
            .optional()
    })
    .map_err(internal)?
    .ok_or(StoreError::NotFound("message"))
}

/// The endpoints of `app` that take `msg`: subscribed to its event type and channels
/// (`hookd_core::matching`), then passing their payload filter (`hookd_store::fanout`). A forward
/// is matched on the request it forwards: `request`, or else the logged one.
fn subscribers(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    msg: &Message,
    forward: Option<&ForwardedRequest>,
    request: Option<RequestView<'_>>,
) -> StoreResult<Vec<String>> {
    let mut s = c
        .prepare_cached(
            "SELECT id, disabled, event_types, channels, filter FROM endpoint WHERE org_id = ? AND app_id = ?",
        )
        .map_err(internal)?;
    let rows = s
        .query_map(params![org.as_str(), app.as_str()], |row| {
            let types: Option<BTreeSet<EventTypeName>> = row
                .get::<_, Option<String>>(2)?
                .map(|s| from_json(2, &s))
                .transpose()?;
            let chans: Option<BTreeSet<ChannelName>> = row
                .get::<_, Option<String>>(3)?
                .map(|s| from_json(3, &s))
                .transpose()?;
            let sub = Subscription {
                disabled: row.get(1)?,
                event_types: types.as_ref(),
                channels: chans.as_ref(),
            };
            if !accepts(sub, &msg.event_type, msg.channels.as_ref()) {
                return Ok(None);
            }
            let filter: Option<String> = row.get(4)?;
            Ok(Some((row.get::<_, String>(0)?, filter)))
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(internal)?;
    let mut candidates = Candidates::default();
    for (id, filter) in rows.into_iter().flatten() {
        candidates.push(id, filter);
    }
    let logged = match candidates.needs_log(forward, request) {
        Some(id) => logged_request(c, org, id)?,
        None => None,
    };
    Ok(candidates.keep(msg, forward, request, logged.as_ref()))
}

/// The parts of a logged request a destination's filter is matched on.
fn logged_request(c: &Connection, org: &OrgId, id: &IngestLogId) -> StoreResult<Option<LoggedRequest>> {
    c.prepare_cached("SELECT path, query, headers, body FROM ingest_request WHERE org_id = ? AND id = ?")
        .and_then(|mut s| {
            s.query_row(params![org.as_str(), id.as_str()], |r| {
                Ok(LoggedRequest {
                    path: r.get(0)?,
                    query: r.get(1)?,
                    headers: from_json(2, &r.get::<_, String>(2)?)?,
                    body: r.get(3)?,
                })
            })
            .optional()
        })
        .map_err(internal)
}

const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, a.url, a.response, a.response_status_code,
    a.duration_ms, a.status, a.trigger, a.created_at, a.transformed, a.headers";

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<MessageAttempt> {
    sql::named(row, attempt_from_row_columns)
}

fn attempt_from_row_columns(row: &Row<'_>) -> rusqlite::Result<MessageAttempt> {
    Ok(MessageAttempt {
        id: AttemptId::from_trusted(row.get(0)?),
        msg_id: MessageId::from_trusted(row.get(1)?),
        endpoint_id: EndpointId::from_trusted(row.get(2)?),
        url: row.get(3)?,
        response: row.get(4)?,
        response_status_code: row.get(5)?,
        response_duration_ms: row.get(6)?,
        status: DeliveryStatus::from_code(row.get(7)?).ok_or_else(|| sql::corrupt(7, std::fmt::Error))?,
        trigger: if row.get::<_, i64>(8)? == 1 {
            AttemptTrigger::Manual
        } else {
            AttemptTrigger::Scheduled
        },
        created_at: from_millis(row.get(9)?),
        transformed: row.get(10)?,
        headers: AttemptHeaders::from_stored(row.get::<_, Option<String>>(11)?.as_deref()),
    })
}

/// The WHERE conditions of a message filter, on the table aliased `m`.
fn push_message_filter(sql: &mut String, values: &mut Vec<Value>, filter: &MessageFilter) {
    if let Some(types) = &filter.event_types {
        push_in(sql, values, "m.event_type", types);
    }
    push_channel_and_tag(sql, values, filter.channel.as_ref(), filter.tag.as_deref());
    if let Some(before) = filter.before {
        sql.push_str(" AND m.created_at < ?");
        values.push(Value::Integer(before.timestamp_millis()));
    }
    if let Some(after) = filter.after {
        sql.push_str(" AND m.created_at > ?");
        values.push(Value::Integer(after.timestamp_millis()));
    }
}

/// The conditions on a message's channels and tags, on the table aliased `m`.
fn push_channel_and_tag(
    sql: &mut String,
    values: &mut Vec<Value>,
    channel: Option<&ChannelName>,
    tag: Option<&str>,
) {
    if let Some(channel) = channel {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)");
        values.push(Value::Text(channel.to_string()));
    }
    if let Some(tag) = tag {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ?)");
        values.push(Value::Text(tag.to_owned()));
    }
}

/// A delivery's state from its status, lease and next attempt columns.
fn delivery_state(
    status: i64,
    lease_until: Option<i64>,
    next: Option<i64>,
    now: i64,
) -> rusqlite::Result<DeliveryState> {
    DeliveryState::from_row(
        status,
        lease_until.is_some_and(|l| l > now),
        next.map(from_millis),
    )
    .ok_or_else(|| sql::corrupt(0, std::fmt::Error))
}

/// `AND column IN (?, ?, ...)` for a list of names.
fn push_in(sql: &mut String, params: &mut Vec<Value>, column: &str, names: &[EventTypeName]) {
    sql.push_str(&format!(
        " AND {column} IN ({})",
        vec!["?"; names.len()].join(", ")
    ));
    params.extend(names.iter().map(|n| Value::Text(n.to_string())));
}

/// Stores a message and its deliveries inside the caller's transaction.
/// `request` is the received request a forward forwards, when the caller has it.
pub(crate) fn insert_message(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    message: NewMessage,
    request: Option<RequestView<'_>>,
) -> StoreResult<(Message, usize)> {
    let now = sql::now();
    let msg = Message {
        id: MessageId::generate(),
        app_id: app.clone(),
        event_type: message.event_type,
        event_id: message.event_id,
        channels: message.channels,
        tags: message.tags,
        payload: Some(message.payload),
        created_at: now,
        deliver_at: message.deliver_at,
    };
    c.prepare_cached(
        "INSERT INTO message (id, org_id, app_id, event_type, event_id, channels, tags, payload,
             retain_until, created_at, ingest_id, forward_headers, deliver_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            msg.id.as_str(),
            org.as_str(),
            app.as_str(),
            msg.event_type.as_str(),
            msg.event_id.as_ref().map(|e| e.as_str()),
            msg.channels.as_ref().map(to_json),
            to_json(&msg.tags),
            msg.payload,
            message.retain_until.timestamp_millis(),
            now.timestamp_millis(),
            message.forward.as_ref().map(|f| f.log_id.as_str()),
            message.forward.as_ref().map(|f| to_json(&f.headers)),
            msg.deliver_at.map(|t| t.timestamp_millis()),
        ])
    })
    .map_err(|e| match &e {
        // The application is gone (deleted since the caller looked it up).
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound("application")
        }
        _ => sql::conflict_or_internal(e, "a message with this eventId already exists"),
    })?;
    let endpoints = match &message.only_endpoint {
        Some(ep) => vec![crate::endpoints::find(c, org, app, ep.as_str())?.id.to_string()],
        None => subscribers(c, org, app, &msg, message.forward.as_ref(), request)?,
    };
    let mut insert = c
        .prepare_cached(
            "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, 1, ?, ?)",
        )
        .map_err(internal)?;
    let due = msg.deliver_at.unwrap_or(now).timestamp_millis();
    for ep in &endpoints {
        insert
            .execute(params![
                org.as_str(),
                app.as_str(),
                msg.id.as_str(),
                ep,
                due,
                now.timestamp_millis()
            ])
            .map_err(internal)?;
    }
    crate::flow_runs::insert_started(c, org, message.flow_runs.runs(&msg), now)?;
    Ok((msg, endpoints.len()))
}

#[async_trait]
impl MessageStore for SqliteStore {
    async fn create_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        message: NewMessage,
    ) -> StoreResult<(Message, usize)> {
        let (org, app) = (org.clone(), app.clone());
        self.write(move |c| insert_message(c, &org, &app, message, None))
            .await
    }

    async fn get_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_event_id: &str,
    ) -> StoreResult<Message> {
        let (org, app, key) = (org.clone(), app.clone(), id_or_event_id.to_owned());
        self.read(move |c| find(c, &org, &app, &key)).await
    }

    async fn get_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        ids: &[MessageId],
    ) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (org, app, ids) = (org.clone(), app.clone(), ids.to_vec());
        self.read(move |c| {
            let sql = format!(
                "SELECT {M_COLUMNS} FROM message m WHERE m.org_id = ? AND m.app_id = ?
                 AND m.id IN (SELECT value FROM json_each(?))"
            );
            let ids: Vec<&str> = ids.iter().map(MessageId::as_str).collect();
            let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(params![org.as_str(), app.as_str(), to_json(&ids)], from_row)
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn list_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &MessageFilter,
    ) -> StoreResult<Page<Message>> {
        let (org, app, query, filter) = (org.clone(), app.clone(), query.clone(), filter.clone());
        self.read(move |c| {
            let mut select = format!("SELECT {M_COLUMNS} FROM message m WHERE m.org_id = ? AND m.app_id = ?");
            let mut values = vec![Value::Text(org.to_string()), Value::Text(app.to_string())];
            push_message_filter(&mut select, &mut values, &filter);
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "m.id", &refs, &query, from_row)
        })
        .await
    }

    async fn expunge_message_payload(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
    ) -> StoreResult<()> {
        let (org, app, msg) = (org.clone(), app.clone(), msg.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE message SET payload = NULL WHERE org_id = ? AND app_id = ? AND id = ?",
                )
                .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), msg.as_str()]))
                .map_err(internal)?;
            if n == 0 {
                return Err(StoreError::NotFound("message"));
            }
            c.prepare_cached(
                "UPDATE delivery SET status = 4, lease_until = NULL WHERE msg_id = ? AND status = 1",
            )
            .and_then(|mut s| s.execute([msg.as_str()]))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn list_attempts(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &AttemptFilter,
    ) -> StoreResult<Page<MessageAttempt>> {
        let (org, app, query, filter) = (org.clone(), app.clone(), query.clone(), filter.clone());
        self.read(move |c| {
            let mut select =
                format!("SELECT {ATTEMPT_COLUMNS} FROM attempt a WHERE a.org_id = ? AND a.app_id = ?");
            let mut values = vec![Value::Text(org.to_string()), Value::Text(app.to_string())];
            if let Some(msg) = &filter.msg {
                select.push_str(" AND a.msg_id = ?");
                values.push(Value::Text(msg.to_string()));
            }
            if let Some(ep) = &filter.endpoint {
                select.push_str(" AND a.endpoint_id = ?");
                values.push(Value::Text(ep.to_string()));
            }
            if let Some(status) = filter.status {
                select.push_str(" AND a.status = ?");
                values.push(Value::Integer(status as i64));
            }
            if let Some(class) = filter.status_code_class {
                if class == 0 {
                    select.push_str(" AND a.response_status_code = 0");
                } else {
                    select.push_str(" AND a.response_status_code >= ? AND a.response_status_code < ?");
                    values.push(Value::Integer(i64::from(class) * 100));
                    values.push(Value::Integer(i64::from(class) * 100 + 100));
                }
            }
            if filter.event_types.is_some() || filter.channel.is_some() || filter.tag.is_some() {
                select.push_str(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = a.msg_id");
                if let Some(types) = &filter.event_types {
                    push_in(&mut select, &mut values, "m.event_type", types);
                }
                push_channel_and_tag(
                    &mut select,
                    &mut values,
                    filter.channel.as_ref(),
                    filter.tag.as_deref(),
                );
                select.push(')');
            }
            if let Some(before) = filter.before {
                select.push_str(" AND a.created_at < ?");
                values.push(Value::Integer(before.timestamp_millis()));
            }
            if let Some(after) = filter.after {
                select.push_str(" AND a.created_at > ?");
                values.push(Value::Integer(after.timestamp_millis()));
            }
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "a.id", &refs, &query, attempt_from_row)
        })
        .await
    }

    async fn get_attempt(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<MessageAttempt> {
        let (org, app, msg, attempt) = (org.clone(), app.clone(), msg.clone(), attempt.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempt a WHERE a.org_id = ? AND a.app_id = ? AND a.msg_id = ? AND a.id = ?"
            ))
            .and_then(|mut s| {
                s.query_row(
                    params_from_iter([org.as_str(), app.as_str(), msg.as_str(), attempt.as_str()]),
                    attempt_from_row,
                )
                .optional()
            })
            .map_err(internal)?
            .ok_or(StoreError::NotFound("attempt"))
        })
        .await
    }

    async fn expunge_attempt_response(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<()> {
        let (org, app, msg, attempt) = (org.clone(), app.clone(), msg.clone(), attempt.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE attempt SET response = NULL, headers = NULL WHERE org_id = ? AND app_id = ? AND msg_id = ? AND id = ?")
                .and_then(|mut s| s.execute(params_from_iter([org.as_str(), app.as_str(), msg.as_str(), attempt.as_str()])))
                .map_err(internal)?;
            if n == 0 { Err(StoreError::NotFound("attempt")) } else { Ok(()) }
        })
        .await
    }

    async fn resend(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        endpoint: &EndpointId,
    ) -> StoreResult<()> {
        let (org, app, msg, endpoint) = (org.clone(), app.clone(), msg.clone(), endpoint.clone());
        self.write(move |c| {
            let m = find(c, &org, &app, msg.as_str())?;
            if m.payload.is_none() {
                return Err(StoreError::rejected("msg_id", "the message's payload was expunged; it cannot be resent"));
            }
            let ep = crate::endpoints::find(c, &org, &app, endpoint.as_str())?;
            let now = sql::now().timestamp_millis();
            c.prepare_cached(
                "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, trigger, created_at)
                 VALUES (?, ?, ?, ?, 1, ?, 1, ?)
                 ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, next_attempt_at = excluded.next_attempt_at,
                     trigger = 1",
            )
            .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), m.id.as_str(), ep.id.as_str(), now, now]))
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn recover_batch(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        limit: usize,
    ) -> StoreResult<usize> {
        let (org, app, endpoint) = (org.clone(), app.clone(), endpoint.clone());
        self.write(move |c| {
            let now = sql::now().timestamp_millis();
            c.prepare_cached(
                "UPDATE delivery SET status = 1, next_attempt_at = ?1, trigger = 1
                 WHERE id IN (SELECT d.id FROM delivery d JOIN message m ON m.id = d.msg_id
                     WHERE d.org_id = ?2 AND d.app_id = ?3 AND d.endpoint_id = ?4 AND d.status = 2
                       AND m.payload IS NOT NULL AND m.created_at >= ?5 AND m.created_at < ?6 LIMIT CAST(?7 AS INTEGER))",
            )
            .and_then(|mut s| {
                s.execute(params![
                    now,
                    org.as_str(),
                    app.as_str(),
                    endpoint.as_str(),
                    since.timestamp_millis(),
                    until.map_or(i64::MAX, |u| u.timestamp_millis()),
                    limit as i64
                ])
            })
            .map_err(internal)
        })
        .await
    }

    async fn messages_missing_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        after: Option<&MessageId>,
        limit: usize,
    ) -> StoreResult<Vec<Message>> {
        let (org, app, endpoint) = (org.clone(), app.clone(), endpoint.clone());
        let after = after.map_or(String::new(), |a| a.to_string());
        self.read(move |c| {
            let sql = format!(
                "SELECT {M_COLUMNS} FROM message m
                 WHERE m.org_id = ?1 AND m.app_id = ?2 AND m.id > ?3 AND m.payload IS NOT NULL
                   AND m.created_at >= ?4 AND m.created_at < ?5
                   AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.endpoint_id = ?6)
                 ORDER BY m.id LIMIT CAST(?7 AS INTEGER)"
            );
            let mut stmt = c.prepare_cached(&sql).map_err(internal)?;
            let rows = stmt
                .query_map(
                    params![
                        org.as_str(),
                        app.as_str(),
                        after,
                        since.timestamp_millis(),
                        until.map_or(i64::MAX, |u| u.timestamp_millis()),
                        endpoint.as_str(),
                        limit as i64
                    ],
                    from_row,
                )
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn queue_deliveries(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        msgs: &[MessageId],
        trigger: AttemptTrigger,
    ) -> StoreResult<usize> {
        if msgs.is_empty() {
            return Ok(0);
        }
        let (org, app, endpoint) = (org.clone(), app.clone(), endpoint.clone());
        let ids: Vec<String> = msgs.iter().map(ToString::to_string).collect();
        let trigger = i64::from(trigger == AttemptTrigger::Manual);
        self.write(move |c| {
            crate::endpoints::find(c, &org, &app, endpoint.as_str())?;
            let now = sql::now().timestamp_millis();
            let n = c
                .prepare_cached(
                    "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, trigger, created_at)
                     SELECT m.org_id, m.app_id, m.id, ?1, 1, ?2, ?3, ?2 FROM message m
                     WHERE m.org_id = ?4 AND m.app_id = ?5 AND m.payload IS NOT NULL
                       AND m.id IN (SELECT value FROM json_each(?6))
                     ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1,
                         next_attempt_at = excluded.next_attempt_at, trigger = excluded.trigger
                     WHERE delivery.status <> 1",
                )
                .and_then(|mut s| {
                    s.execute(params![endpoint.as_str(), now, trigger, org.as_str(), app.as_str(), to_json(&ids)])
                })
                .map_err(internal)?;
            Ok(n)
        })
        .await
    }

    async fn expunge_payloads_batch(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        limit: usize,
    ) -> StoreResult<usize> {
        let (org, app) = (org.clone(), app.clone());
        self.write(move |c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "SELECT id FROM message WHERE org_id = ? AND app_id = ? AND payload IS NOT NULL ORDER BY id LIMIT CAST(? AS INTEGER)",
                )
                .and_then(|mut s| {
                    s.query_map(params![org.as_str(), app.as_str(), limit as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(internal)?;
            let list = to_json(&ids);
            c.prepare_cached("UPDATE message SET payload = NULL WHERE id IN (SELECT value FROM json_each(?))")
                .and_then(|mut s| s.execute([&list]))
                .map_err(internal)?;
            c.prepare_cached(
                "UPDATE delivery SET status = 4, lease_until = NULL
                 WHERE status = 1 AND msg_id IN (SELECT value FROM json_each(?))",
            )
            .and_then(|mut s| s.execute([&list]))
            .map_err(internal)?;
            Ok(ids.len())
        })
        .await
    }

    async fn count_attempts(
        &self,
        org: &OrgId,
        apps: &[ApplicationId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(ApplicationId, u64)>> {
        let org = org.clone();
        let ids: Vec<String> = apps.iter().map(ToString::to_string).collect();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT app_id, COUNT(*) FROM attempt
                     WHERE org_id = ? AND app_id IN (SELECT value FROM json_each(?)) AND created_at >= ? AND created_at < ?
                     GROUP BY app_id",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(
                    params![org.as_str(), to_json(&ids), since.timestamp_millis(), until.timestamp_millis()],
                    |r| Ok((ApplicationId::from_trusted(r.get(0)?), r.get::<_, i64>(1)?.max(0) as u64)),
                )
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }

    async fn endpoint_stats(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> StoreResult<EndpointStats> {
        let (org, app, endpoint) = (org.clone(), app.clone(), endpoint.clone());
        self.read(move |c| {
            let now = sql::now().timestamp_millis();
            let mut s = c
                .prepare_cached(
                    "SELECT d.status, d.lease_until > ?1, COUNT(*) FROM delivery d JOIN message m ON m.id = d.msg_id
                     WHERE d.org_id = ?2 AND d.app_id = ?3 AND d.endpoint_id = ?4 AND m.created_at >= ?5 AND m.created_at < ?6
                     GROUP BY 1, 2",
                )
                .map_err(internal)?;
            let rows = s
                .query_map(
                    params![
                        now,
                        org.as_str(),
                        app.as_str(),
                        endpoint.as_str(),
                        since.map_or(i64::MIN, |t| t.timestamp_millis()),
                        until.map_or(i64::MAX, |t| t.timestamp_millis())
                    ],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<bool>>(1)?.unwrap_or(false), r.get::<_, u64>(2)?)),
                )
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                .map_err(internal)?;
            let mut stats = EndpointStats::default();
            for (status, leased, n) in rows {
                stats.add(status, leased, n);
            }
            Ok(stats)
        })
        .await
    }

    async fn list_message_destinations(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        query: &ListQuery,
    ) -> StoreResult<Page<(Endpoint, DeliveryState)>> {
        let (org, app, msg, query) = (org.clone(), app.clone(), msg.clone(), query.clone());
        self.read(move |c| {
            let m = find(c, &org, &app, msg.as_str())?;
            let now = sql::now().timestamp_millis();
            let select = "SELECT d.endpoint_id, d.status, d.lease_until, d.next_attempt_at FROM delivery d
                          WHERE d.org_id = ? AND d.app_id = ? AND d.msg_id = ?";
            let page = sql::select_page(
                c,
                select,
                "d.endpoint_id",
                params![org.as_str(), app.as_str(), m.id.as_str()],
                &query,
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        delivery_state(r.get(1)?, r.get(2)?, r.get(3)?, now)?,
                    ))
                },
            )?;
            let mut items = Vec::with_capacity(page.items.len());
            for (ep, state) in page.items {
                if let Ok(ep) = crate::endpoints::find(c, &org, &app, &ep) {
                    items.push((ep, state));
                }
            }
            Ok(Page {
                items,
                has_more: page.has_more,
            })
        })
        .await
    }

    async fn list_endpoint_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        query: &ListQuery,
        filter: &MessageFilter,
        status: Option<DeliveryStatus>,
    ) -> StoreResult<Page<(Message, DeliveryState)>> {
        let (org, app, endpoint, query, filter) = (
            org.clone(),
            app.clone(),
            endpoint.clone(),
            query.clone(),
            filter.clone(),
        );
        self.read(move |c| {
            let now = sql::now().timestamp_millis();
            let mut select = format!(
                "SELECT {M_COLUMNS}, d.status, d.lease_until, d.next_attempt_at FROM delivery d
                 JOIN message m ON m.id = d.msg_id WHERE d.org_id = ? AND d.app_id = ? AND d.endpoint_id = ?"
            );
            let mut values = vec![
                Value::Text(org.to_string()),
                Value::Text(app.to_string()),
                Value::Text(endpoint.to_string()),
            ];
            push_message_filter(&mut select, &mut values, &filter);
            if let Some(status) = status {
                select.push_str(" AND d.status = ?");
                values.push(Value::Integer(status as i64));
            }
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "m.id", &refs, &query, |r| {
                Ok((
                    from_row(r)?,
                    delivery_state(r.get(M_COUNT)?, r.get(M_COUNT + 1)?, r.get(M_COUNT + 2)?, now)?,
                ))
            })
        })
        .await
    }
}
