//! Messages (with their fan-out into deliveries) and the attempt log.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::id::{ApplicationId, AttemptId, EndpointId, IngestLogId, MessageId, OrgId};
use hookd_core::matching::{Subscription, accepts};
use hookd_core::name::{ChannelName, EventTypeName};
use hookd_store::fanout::{Candidates, LoggedRequest, RequestView};
use hookd_store::{
    AttemptFilter, AttemptHeaders, AttemptTrigger, DeliveryState, DeliveryStatus, Endpoint, EndpointStats,
    ForwardedRequest, ListQuery, Message, MessageAttempt, MessageFilter, MessageStore, NewMessage, Page,
    StoreError, StoreResult,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json, json_opt, to_json};

/// The message columns of the table aliased `m`.
pub(crate) const M_COLUMNS: &str =
    "m.id, m.app_id, m.event_type, m.event_id, m.channels, m.tags, m.payload, m.created_at, m.deliver_at";
/// How many columns [`M_COLUMNS`] names.
pub(crate) const M_COUNT: usize = 9;

/// A message from the [`M_COLUMNS`] starting at column `at`.
pub(crate) fn from_row_at(row: &Row, at: usize) -> StoreResult<Message> {
    Ok(Message {
        id: MessageId::from_trusted(get(row, at)?),
        app_id: ApplicationId::from_trusted(get(row, at + 1)?),
        event_type: EventTypeName::from_trusted(get(row, at + 2)?),
        event_id: get::<Option<String>>(row, at + 3)?
            .map(|e| e.parse().map_err(|e| db::corrupt("event id", e)))
            .transpose()?,
        channels: json_opt(row, at + 4)?,
        tags: json(row, at + 5)?,
        payload: get(row, at + 6)?,
        created_at: get(row, at + 7)?,
        deliver_at: get(row, at + 8)?,
    })
}

fn from_row(row: &Row) -> StoreResult<Message> {
    from_row_at(row, 0)
}

async fn find<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    id_or_event_id: &str,
) -> StoreResult<Message> {
    db::query_opt(
        c,
        &format!(
            "SELECT {M_COLUMNS} FROM message m
             WHERE m.org_id = $1 AND m.app_id = $2 AND (m.id = $3 OR m.event_id = $3)
             ORDER BY (m.id = $3) DESC LIMIT 1"
        ),
        &[&org.as_str(), &app.as_str(), &id_or_event_id],
    )
    .await?
    .as_ref()
    .map(from_row)
    .transpose()?
    .ok_or(StoreError::NotFound("message"))
}

/// The endpoints of `app` that take `msg`: subscribed to its event type and channels
/// (`hookd_core::matching`), then passing their payload filter (`hookd_store::fanout`). A forward
/// is matched on the request it forwards: `request`, or else the logged one.
async fn subscribers<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    msg: &Message,
    forward: Option<&ForwardedRequest>,
    request: Option<RequestView<'_>>,
) -> StoreResult<Vec<String>> {
    let candidates = subscribed(&endpoint_rows(c, org, app).await?, msg);
    let logged = match candidates.needs_log(forward, request) {
        Some(id) => logged_request(c, org, id).await?,
        None => None,
    };
    Ok(candidates.keep(msg, forward, request, logged.as_ref()))
}

/// An endpoint as the fan-out reads it.
struct EndpointRow {
    id: String,
    disabled: bool,
    event_types: Option<BTreeSet<EventTypeName>>,
    channels: Option<BTreeSet<ChannelName>>,
    /// As text: the key of its parsed form (`fanout`'s cache).
    filter: Option<String>,
}

async fn endpoint_rows<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
) -> StoreResult<Vec<EndpointRow>> {
    db::query(
        c,
        "SELECT id, disabled, event_types, channels, filter::text FROM endpoint WHERE org_id = $1 AND app_id = $2",
        &[&org.as_str(), &app.as_str()],
    )
    .await?
    .iter()
    .map(|row| {
        Ok(EndpointRow {
            id: get(row, 0)?,
            disabled: get(row, 1)?,
            event_types: json_opt(row, 2)?,
            channels: json_opt(row, 3)?,
            filter: get(row, 4)?,
        })
    })
    .collect()
}

/// The endpoints subscribed to `msg`'s event type and channels, before their filters.
fn subscribed(rows: &[EndpointRow], msg: &Message) -> Candidates {
    let mut candidates = Candidates::default();
    for row in rows {
        let sub = Subscription {
            disabled: row.disabled,
            event_types: row.event_types.as_ref(),
            channels: row.channels.as_ref(),
        };
        if accepts(sub, &msg.event_type, msg.channels.as_ref()) {
            candidates.push(row.id.clone(), row.filter.clone());
        }
    }
    candidates
}

/// Whether `message` may be written by [`insert_batch`]: a message sent through the
/// API to every subscribed endpoint, starting no flow run. A forward (read with its
/// request), a resend to one endpoint and a message that starts runs (written with
/// them in one transaction) take [`insert_message`].
pub(crate) fn batchable(message: &NewMessage) -> bool {
    message.only_endpoint.is_none() && message.forward.is_none() && message.flow_runs.is_none()
}

/// Writes several [`batchable`] messages and their deliveries in one statement, so
/// one commit (one WAL flush) and one round trip carry them all: the group commit
/// of concurrent `create_message` calls ([`crate::group_commit`]). Each message gets
/// its answer: created with its delivery count, or a conflict when its `eventId` was
/// taken (before, or by an earlier message of the batch). `Err` (the application
/// deleted meanwhile, a deadlock with another batch, the database gone): nothing
/// was written, and the caller tries each message on its own to answer it exactly.
pub(crate) async fn insert_batch<C: GenericClient>(
    c: &C,
    batch: &[(OrgId, ApplicationId, NewMessage)],
) -> StoreResult<Vec<StoreResult<(Message, usize)>>> {
    let now = db::now();
    // Each application's endpoints, read once for the batch.
    let mut endpoints: Vec<(&OrgId, &ApplicationId, Vec<EndpointRow>)> = Vec::new();
    let mut msgs = Vec::with_capacity(batch.len());
    let mut cols = BatchColumns::default();
    for (org, app, message) in batch {
        cols.payload.push(&message.payload);
        let at = match endpoints.iter().position(|(o, a, _)| *o == org && *a == app) {
            Some(at) => at,
            None => {
                endpoints.push((org, app, endpoint_rows(c, org, app).await?));
                endpoints.len() - 1
            }
        };
        let msg = Message {
            id: MessageId::generate(),
            app_id: app.clone(),
            event_type: message.event_type.clone(),
            event_id: message.event_id.clone(),
            channels: message.channels.clone(),
            tags: message.tags.clone(),
            payload: Some(message.payload.clone()),
            created_at: now,
            deliver_at: message.deliver_at,
        };
        let chosen = subscribed(&endpoints[at].2, &msg).keep(&msg, None, None, None);
        cols.push(org, app, &msg, message.retain_until, &chosen);
        msgs.push((msg, chosen.len()));
    }
    let stmt = c
        .prepare_cached(
            "WITH m AS (
                 INSERT INTO message (id, org_id, app_id, event_type, event_id, channels, tags, payload,
                     retain_until, created_at, deliver_at)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                     $7::jsonb[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[])
                 ON CONFLICT DO NOTHING
                 RETURNING id, org_id, app_id, created_at, deliver_at
             ), d AS (
                 INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, created_at)
                 SELECT m.org_id, m.app_id, m.id, x.ep, 1, coalesce(m.deliver_at, m.created_at), m.created_at
                 FROM unnest($12::text[], $13::text[]) AS x(msg, ep) JOIN m ON m.id = x.msg
             )
             SELECT id FROM m",
        )
        .await
        .map_err(db::err)?;
    let rows = c
        .query(
            &stmt,
            &[
                &cols.id,
                &cols.org,
                &cols.app,
                &cols.event_type,
                &cols.event_id,
                &cols.channels,
                &cols.tags,
                &cols.payload,
                &cols.retain_until,
                &cols.created_at,
                &cols.deliver_at,
                &cols.delivery_msg,
                &cols.delivery_endpoint,
            ],
        )
        .await
        .map_err(db::err)?;
    let written: std::collections::HashSet<String> = rows
        .iter()
        .map(|r| get::<String>(r, 0))
        .collect::<StoreResult<_>>()?;
    Ok(msgs
        .into_iter()
        .map(|(msg, n)| {
            if written.contains(msg.id.as_str()) {
                Ok((msg, n))
            } else {
                // Its id is new, so the one unique key left is the eventId.
                Err(StoreError::Conflict(
                    "a message with this eventId already exists".into(),
                ))
            }
        })
        .collect())
}

/// New messages sent through the API, group-committed ([`crate::group_commit`]).
pub(crate) struct NewMessages;

#[async_trait]
impl crate::group_commit::Batch for NewMessages {
    type Item = (OrgId, ApplicationId, NewMessage);
    type Out = (Message, usize);

    fn bytes((_, _, message): &Self::Item) -> usize {
        message.payload.len()
    }

    async fn together(
        c: &deadpool_postgres::Object,
        items: &[Self::Item],
    ) -> StoreResult<Vec<StoreResult<Self::Out>>> {
        insert_batch(c, items).await
    }

    async fn alone(c: &deadpool_postgres::Object, (org, app, message): Self::Item) -> StoreResult<Self::Out> {
        insert_message(c, &org, &app, message, None).await
    }

    fn new_work((_, deliveries): &Self::Out) -> bool {
        *deliveries > 0
    }
}

/// [`insert_batch`]'s statement parameters, one array per column.
#[derive(Default)]
struct BatchColumns<'a> {
    id: Vec<String>,
    org: Vec<String>,
    app: Vec<String>,
    event_type: Vec<String>,
    event_id: Vec<Option<String>>,
    channels: Vec<Option<serde_json::Value>>,
    tags: Vec<serde_json::Value>,
    payload: Vec<&'a str>,
    retain_until: Vec<DateTime<Utc>>,
    created_at: Vec<DateTime<Utc>>,
    deliver_at: Vec<Option<DateTime<Utc>>>,
    delivery_msg: Vec<String>,
    delivery_endpoint: Vec<String>,
}

impl BatchColumns<'_> {
    fn push(
        &mut self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &Message,
        retain_until: DateTime<Utc>,
        endpoints: &[String],
    ) {
        self.id.push(msg.id.to_string());
        self.org.push(org.to_string());
        self.app.push(app.to_string());
        self.event_type.push(msg.event_type.to_string());
        self.event_id.push(msg.event_id.as_ref().map(|e| e.to_string()));
        self.channels.push(msg.channels.as_ref().map(to_json));
        self.tags.push(to_json(&msg.tags));
        self.retain_until.push(db::ms(retain_until));
        self.created_at.push(msg.created_at);
        self.deliver_at.push(msg.deliver_at);
        for ep in endpoints {
            self.delivery_msg.push(msg.id.to_string());
            self.delivery_endpoint.push(ep.clone());
        }
    }
}

/// The parts of a logged request a destination's filter is matched on.
async fn logged_request<C: GenericClient>(
    c: &C,
    org: &OrgId,
    id: &IngestLogId,
) -> StoreResult<Option<LoggedRequest>> {
    db::query_opt(
        c,
        "SELECT path, query, headers, body FROM ingest_request WHERE org_id = $1 AND id = $2",
        &[&org.as_str(), &id.as_str()],
    )
    .await?
    .map(|r| {
        Ok(LoggedRequest {
            path: get(&r, 0)?,
            query: get(&r, 1)?,
            headers: json(&r, 2)?,
            body: get(&r, 3)?,
        })
    })
    .transpose()
}

const ATTEMPT_COLUMNS: &str = "a.id, a.msg_id, a.endpoint_id, a.url, a.response, a.response_status_code,
    a.duration_ms, a.status, a.trigger, a.created_at, a.transformed, a.headers";

fn attempt_from_row(row: &Row) -> StoreResult<MessageAttempt> {
    Ok(MessageAttempt {
        id: AttemptId::from_trusted(get(row, 0)?),
        msg_id: MessageId::from_trusted(get(row, 1)?),
        endpoint_id: EndpointId::from_trusted(get(row, 2)?),
        url: get(row, 3)?,
        response: get(row, 4)?,
        response_status_code: get(row, 5)?,
        response_duration_ms: get(row, 6)?,
        status: DeliveryStatus::from_code(i64::from(get::<i32>(row, 7)?))
            .ok_or_else(|| db::corrupt("attempt status", "unknown code"))?,
        trigger: if get::<i32>(row, 8)? == 1 {
            AttemptTrigger::Manual
        } else {
            AttemptTrigger::Scheduled
        },
        created_at: get(row, 9)?,
        transformed: get(row, 10)?,
        headers: AttemptHeaders::from_stored(get::<Option<String>>(row, 11)?.as_deref()),
    })
}

/// The WHERE conditions of a message filter, on the table aliased `m`.
fn push_message_filter(sql: &mut String, args: &mut Args, filter: &MessageFilter) {
    if let Some(types) = &filter.event_types {
        let names: Vec<String> = types.iter().map(ToString::to_string).collect();
        sql.push_str(&format!(" AND m.event_type = ANY({})", args.push(names)));
    }
    push_channel_and_tag(sql, args, filter.channel.as_ref(), filter.tag.as_deref());
    if let Some(before) = filter.before {
        sql.push_str(&format!(" AND m.created_at < {}", args.push(before)));
    }
    if let Some(after) = filter.after {
        sql.push_str(&format!(" AND m.created_at > {}", args.push(after)));
    }
}

/// The conditions on a message's channels and tags, on the table aliased `m`.
fn push_channel_and_tag(sql: &mut String, args: &mut Args, channel: Option<&ChannelName>, tag: Option<&str>) {
    if let Some(channel) = channel {
        sql.push_str(&format!(" AND m.channels ? {}", args.push(channel.to_string())));
    }
    if let Some(tag) = tag {
        sql.push_str(&format!(" AND m.tags ? {}", args.push(tag.to_owned())));
    }
}

/// A delivery's state from its status, lease and next attempt columns.
fn delivery_state(
    status: i32,
    lease_until: Option<DateTime<Utc>>,
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> StoreResult<DeliveryState> {
    DeliveryState::from_row(i64::from(status), lease_until.is_some_and(|l| l > now), next)
        .ok_or_else(|| db::corrupt("delivery status", "unknown code"))
}

/// Stores a message and its deliveries: the endpoints that take it are read first,
/// then the message and its deliveries are written by one statement (atomic on its
/// own; inside the caller's transaction when there is one). Two round trips, not five.
/// `request` is the received request a forward forwards, when the caller has it.
pub(crate) async fn insert_message<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    message: NewMessage,
    request: Option<RequestView<'_>>,
) -> StoreResult<(Message, usize)> {
    let now = db::now();
    let flow_runs = message.flow_runs.clone();
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
    let endpoints = match &message.only_endpoint {
        Some(ep) => vec![
            crate::endpoints::find_id(c, org, app, ep.as_str())
                .await?
                .to_string(),
        ],
        None => subscribers(c, org, app, &msg, message.forward.as_ref(), request).await?,
    };
    let stmt = c
        .prepare_cached(
            "WITH m AS (
                 INSERT INTO message (id, org_id, app_id, event_type, event_id, channels, tags, payload,
                     retain_until, created_at, ingest_id, forward_headers, deliver_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14)
                 RETURNING id
             )
             INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, created_at)
             SELECT $2, $3, m.id, e, 1, coalesce($14, $10), $10 FROM m, unnest($13::text[]) AS e",
        )
        .await
        .map_err(db::err)?;
    c.execute(
        &stmt,
        &[
            &msg.id.as_str(),
            &org.as_str(),
            &app.as_str(),
            &msg.event_type.as_str(),
            &msg.event_id.as_ref().map(|e| e.as_str()),
            &msg.channels.as_ref().map(to_json),
            &to_json(&msg.tags),
            &msg.payload,
            &db::ms(message.retain_until),
            &now,
            &message.forward.as_ref().map(|f| f.log_id.as_str()),
            &message.forward.as_ref().map(|f| to_json(&f.headers)),
            &endpoints,
            &message.deliver_at,
        ],
    )
    .await
    .map_err(|e| {
        let constraint = e.as_db_error().and_then(|d| d.constraint());
        if constraint == Some("message_app_id_fkey") {
            // The application is gone (deleted since the caller looked it up).
            StoreError::NotFound("application")
        } else {
            db::conflict_or(e, "a message with this eventId already exists")
        }
    })?;
    crate::flow_runs::insert_started(c, org, flow_runs.runs(&msg), now).await?;
    Ok((msg, endpoints.len()))
}

#[async_trait]
impl MessageStore for PgStore {
    async fn create_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        message: NewMessage,
    ) -> StoreResult<(Message, usize)> {
        if batchable(&message) {
            // Announced by the batch writer.
            return self.messages.write((org.clone(), app.clone(), message)).await;
        }
        let mut c = self.client().await?;
        let created = if message.flow_runs.is_none() {
            insert_message(&c, org, app, message, None).await?
        } else {
            // The message and the runs it starts commit together.
            let tx = c.transaction().await.map_err(db::err)?;
            let created = insert_message(&tx, org, app, message, None).await?;
            tx.commit().await.map_err(db::err)?;
            created
        };
        if created.1 > 0 {
            self.announce_work();
        }
        Ok(created)
    }

    async fn get_message(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_event_id: &str,
    ) -> StoreResult<Message> {
        let c = self.client().await?;
        find(&c, org, app, id_or_event_id).await
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
        let c = self.client().await?;
        let ids: Vec<&str> = ids.iter().map(MessageId::as_str).collect();
        let rows = db::query(
            &c,
            &format!(
                "SELECT {M_COLUMNS} FROM message m WHERE m.org_id = $1 AND m.app_id = $2 AND m.id = ANY($3)"
            ),
            &[&org.as_str(), &app.as_str(), &ids],
        )
        .await?;
        rows.iter().map(from_row).collect()
    }

    async fn list_messages(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &MessageFilter,
    ) -> StoreResult<Page<Message>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {M_COLUMNS} FROM message m WHERE m.org_id = {} AND m.app_id = {}",
            args.push(org.to_string()),
            args.push(app.to_string())
        );
        push_message_filter(&mut select, &mut args, filter);
        db::select_page(&c, &select, "m.id", args, query, from_row).await
    }

    async fn expunge_message_payload(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let n = db::execute(
            &tx,
            "UPDATE message SET payload = NULL WHERE org_id = $1 AND app_id = $2 AND id = $3",
            &[&org.as_str(), &app.as_str(), &msg.as_str()],
        )
        .await?;
        if n == 0 {
            return Err(StoreError::NotFound("message"));
        }
        db::execute(
            &tx,
            "UPDATE delivery SET status = 4, lease_until = NULL WHERE msg_id = $1 AND status = 1",
            &[&msg.as_str()],
        )
        .await?;
        tx.commit().await.map_err(db::err)
    }

    async fn list_attempts(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
        filter: &AttemptFilter,
    ) -> StoreResult<Page<MessageAttempt>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM attempt a WHERE a.org_id = {} AND a.app_id = {}",
            args.push(org.to_string()),
            args.push(app.to_string())
        );
        if let Some(msg) = &filter.msg {
            select.push_str(&format!(" AND a.msg_id = {}", args.push(msg.to_string())));
        }
        if let Some(ep) = &filter.endpoint {
            select.push_str(&format!(" AND a.endpoint_id = {}", args.push(ep.to_string())));
        }
        if let Some(status) = filter.status {
            select.push_str(&format!(" AND a.status = {}", args.push(status as i32)));
        }
        if let Some(class) = filter.status_code_class {
            if class == 0 {
                select.push_str(" AND a.response_status_code = 0");
            } else {
                let low = i32::from(class) * 100;
                select.push_str(&format!(
                    " AND a.response_status_code >= {} AND a.response_status_code < {}",
                    args.push(low),
                    args.push(low + 100)
                ));
            }
        }
        if filter.event_types.is_some() || filter.channel.is_some() || filter.tag.is_some() {
            select.push_str(" AND EXISTS (SELECT 1 FROM message m WHERE m.id = a.msg_id");
            if let Some(types) = &filter.event_types {
                let names: Vec<String> = types.iter().map(ToString::to_string).collect();
                select.push_str(&format!(" AND m.event_type = ANY({})", args.push(names)));
            }
            push_channel_and_tag(
                &mut select,
                &mut args,
                filter.channel.as_ref(),
                filter.tag.as_deref(),
            );
            select.push(')');
        }
        if let Some(before) = filter.before {
            select.push_str(&format!(" AND a.created_at < {}", args.push(before)));
        }
        if let Some(after) = filter.after {
            select.push_str(&format!(" AND a.created_at > {}", args.push(after)));
        }
        db::select_page(&c, &select, "a.id", args, query, attempt_from_row).await
    }

    async fn get_attempt(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<MessageAttempt> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempt a
                 WHERE a.org_id = $1 AND a.app_id = $2 AND a.msg_id = $3 AND a.id = $4"
            ),
            &[&org.as_str(), &app.as_str(), &msg.as_str(), &attempt.as_str()],
        )
        .await?
        .as_ref()
        .map(attempt_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound("attempt"))
    }

    async fn expunge_attempt_response(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE attempt SET response = NULL, headers = NULL WHERE org_id = $1 AND app_id = $2 AND msg_id = $3 AND id = $4",
            &[&org.as_str(), &app.as_str(), &msg.as_str(), &attempt.as_str()],
        )
        .await?;
        if n == 0 {
            Err(StoreError::NotFound("attempt"))
        } else {
            Ok(())
        }
    }

    async fn resend(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        endpoint: &EndpointId,
    ) -> StoreResult<()> {
        let c = self.client().await?;
        let m = find(&c, org, app, msg.as_str()).await?;
        if m.payload.is_none() {
            return Err(StoreError::rejected(
                "msg_id",
                "the message's payload was expunged; it cannot be resent",
            ));
        }
        let ep = crate::endpoints::find_id(&c, org, app, endpoint.as_str()).await?;
        let now = db::now();
        db::execute(
            &c,
            "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, trigger, created_at)
             VALUES ($1, $2, $3, $4, 1, $5, 1, $5)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1,
                 next_attempt_at = excluded.next_attempt_at, trigger = 1",
            &[&org.as_str(), &app.as_str(), &m.id.as_str(), &ep.as_str(), &now],
        )
        .await?;
        self.announce_work();
        Ok(())
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
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE delivery SET status = 1, next_attempt_at = $1, trigger = 1
             WHERE id IN (SELECT d.id FROM delivery d JOIN message m ON m.id = d.msg_id
                 WHERE d.org_id = $2 AND d.app_id = $3 AND d.endpoint_id = $4 AND d.status = 2
                   AND m.payload IS NOT NULL AND m.created_at >= $5 AND ($6::timestamptz IS NULL OR m.created_at < $6)
                 LIMIT $7 FOR UPDATE OF d SKIP LOCKED)",
            &[
                &db::now(),
                &org.as_str(),
                &app.as_str(),
                &endpoint.as_str(),
                &since,
                &until,
                &(limit as i64),
            ],
        )
        .await?;
        if n > 0 {
            self.announce_work();
        }
        Ok(n as usize)
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
        let c = self.client().await?;
        let after = after.map_or("", |a| a.as_str());
        let rows = db::query(
            &c,
            &format!(
                "SELECT {M_COLUMNS} FROM message m
                 WHERE m.org_id = $1 AND m.app_id = $2 AND m.id > $3 AND m.payload IS NOT NULL
                   AND m.created_at >= $4 AND ($5::timestamptz IS NULL OR m.created_at < $5)
                   AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.msg_id = m.id AND d.endpoint_id = $6)
                 ORDER BY m.id LIMIT $7"
            ),
            &[
                &org.as_str(),
                &app.as_str(),
                &after,
                &since,
                &until,
                &endpoint.as_str(),
                &(limit as i64),
            ],
        )
        .await?;
        rows.iter().map(from_row).collect()
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
        let c = self.client().await?;
        crate::endpoints::find_id(&c, org, app, endpoint.as_str()).await?;
        let ids: Vec<&str> = msgs.iter().map(MessageId::as_str).collect();
        let trigger = i32::from(trigger == AttemptTrigger::Manual);
        let n = db::execute(
            &c,
            "INSERT INTO delivery (org_id, app_id, msg_id, endpoint_id, status, next_attempt_at, trigger, created_at)
             SELECT m.org_id, m.app_id, m.id, $1, 1, $2, $3, $2 FROM message m
             WHERE m.org_id = $4 AND m.app_id = $5 AND m.payload IS NOT NULL AND m.id = ANY($6)
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1,
                 next_attempt_at = excluded.next_attempt_at, trigger = excluded.trigger
             WHERE delivery.status <> 1",
            &[&endpoint.as_str(), &db::now(), &trigger, &org.as_str(), &app.as_str(), &ids],
        )
        .await?;
        if n > 0 {
            self.announce_work();
        }
        Ok(n as usize)
    }

    async fn expunge_payloads_batch(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        limit: usize,
    ) -> StoreResult<usize> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let rows = db::query(
            &tx,
            "UPDATE message SET payload = NULL WHERE id IN (
                 SELECT id FROM message WHERE org_id = $1 AND app_id = $2 AND payload IS NOT NULL
                 ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING id",
            &[&org.as_str(), &app.as_str(), &(limit as i64)],
        )
        .await?;
        let ids: Vec<String> = rows.iter().map(|r| get(r, 0)).collect::<StoreResult<_>>()?;
        db::execute(
            &tx,
            "UPDATE delivery SET status = 4, lease_until = NULL WHERE status = 1 AND msg_id = ANY($1)",
            &[&ids],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(ids.len())
    }

    async fn count_attempts(
        &self,
        org: &OrgId,
        apps: &[ApplicationId],
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<(ApplicationId, u64)>> {
        let c = self.client().await?;
        let ids: Vec<&str> = apps.iter().map(ApplicationId::as_str).collect();
        let rows = db::query(
            &c,
            "SELECT app_id, COUNT(*) FROM attempt
             WHERE org_id = $1 AND app_id = ANY($2) AND created_at >= $3 AND created_at < $4
             GROUP BY app_id",
            &[&org.as_str(), &ids, &since, &until],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    ApplicationId::from_trusted(get(r, 0)?),
                    get::<i64>(r, 1)?.max(0) as u64,
                ))
            })
            .collect()
    }

    async fn endpoint_stats(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> StoreResult<EndpointStats> {
        let c = self.client().await?;
        let rows = db::query(
            &c,
            "SELECT d.status, COALESCE(d.lease_until > $1, false), COUNT(*)
             FROM delivery d JOIN message m ON m.id = d.msg_id
             WHERE d.org_id = $2 AND d.app_id = $3 AND d.endpoint_id = $4
               AND ($5::timestamptz IS NULL OR m.created_at >= $5)
               AND ($6::timestamptz IS NULL OR m.created_at < $6)
             GROUP BY 1, 2",
            &[
                &db::now(),
                &org.as_str(),
                &app.as_str(),
                &endpoint.as_str(),
                &since,
                &until,
            ],
        )
        .await?;
        let mut stats = EndpointStats::default();
        for row in &rows {
            let (status, leased, n): (i32, bool, i64) = (get(row, 0)?, get(row, 1)?, get(row, 2)?);
            stats.add(i64::from(status), leased, n.max(0) as u64);
        }
        Ok(stats)
    }

    async fn list_message_destinations(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        msg: &MessageId,
        query: &ListQuery,
    ) -> StoreResult<Page<(Endpoint, DeliveryState)>> {
        let c = self.client().await?;
        let m = find(&c, org, app, msg.as_str()).await?;
        let now = db::now();
        let mut args = Args::default();
        let select = format!(
            "SELECT {}, d.status, d.lease_until, d.next_attempt_at FROM delivery d
             JOIN endpoint e ON e.id = d.endpoint_id AND e.org_id = d.org_id
             WHERE d.org_id = {} AND d.app_id = {} AND d.msg_id = {}",
            crate::endpoints::E_COLUMNS,
            args.push(org.to_string()),
            args.push(app.to_string()),
            args.push(m.id.to_string())
        );
        const W: usize = crate::endpoints::WIDTH;
        db::select_page(&c, &select, "d.endpoint_id", args, query, |r| {
            Ok((
                crate::endpoints::from_row_at(&self.keyring, r, 0)?,
                delivery_state(get(r, W)?, get(r, W + 1)?, get(r, W + 2)?, now)?,
            ))
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
        let c = self.client().await?;
        let now = db::now();
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {M_COLUMNS}, d.status, d.lease_until, d.next_attempt_at FROM delivery d
             JOIN message m ON m.id = d.msg_id WHERE d.org_id = {} AND d.app_id = {} AND d.endpoint_id = {}",
            args.push(org.to_string()),
            args.push(app.to_string()),
            args.push(endpoint.to_string())
        );
        push_message_filter(&mut select, &mut args, filter);
        if let Some(status) = status {
            select.push_str(&format!(" AND d.status = {}", args.push(status as i32)));
        }
        db::select_page(&c, &select, "m.id", args, query, |r| {
            Ok((
                from_row(r)?,
                delivery_state(get(r, M_COUNT)?, get(r, M_COUNT + 1)?, get(r, M_COUNT + 2)?, now)?,
            ))
        })
        .await
    }
}
