//! Ingest sources and the log of the requests they received.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::id::{ApplicationId, IngestLogId, MessageId, OrgId, SourceId};
use hookd_core::ingest::token_digest;
use hookd_core::name::SourceUid;
use hookd_store::sealing::Sealed;
use hookd_store::{
    IngestLogFilter, IngestRecorded, IngestRecording, IngestRequest, IngestStatus, IngestStore, ListQuery,
    Mutation, NewIngestRequest, Page, Source, SourceData, StoreError, StoreResult, Updated,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension as _, Row, ToSql, params};

use crate::SqliteStore;
use crate::secrets::seal;
use crate::sql::{self, from_json, from_millis, internal, to_json};

/// The sealed columns are read opened (`secrets::register`).
const COLUMNS: &str = "id, app_id, hookd_open(token_sealed, 'source-token', id), uid, name, kind, hookd_open(config, 'source-config', id),
    hookd_open(options, 'source-options', id), metadata, created_at, updated_at";
const UID_TAKEN: &str = "a source with this uid already exists";
const LOG_COLUMNS: &str = "id, source_id, status, reason, method, path, query, headers, client_addr, body,
    response_status, msg_id, duplicate_of, received_at";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Source> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(row: &Row<'_>) -> rusqlite::Result<Source> {
    let (kind, options) = SourceData::parse_spec(
        &row.get::<_, String>(5)?,
        &from_json(6, &row.get::<_, String>(6)?)?,
        from_json(7, &row.get::<_, String>(7)?)?,
    )
    .map_err(|e| sql::corrupt(6, e))?;
    Ok(Source {
        id: SourceId::from_trusted(row.get(0)?),
        app_id: ApplicationId::from_trusted(row.get(1)?),
        token: row.get(2)?,
        data: SourceData {
            uid: row.get::<_, Option<String>>(3)?.map(SourceUid::from_trusted),
            name: row.get(4)?,
            kind,
            options,
            metadata: from_json(8, &row.get::<_, String>(8)?)?,
        },
        created_at: from_millis(row.get(9)?),
        updated_at: from_millis(row.get(10)?),
    })
}

fn log_from_row(row: &Row<'_>) -> rusqlite::Result<IngestRequest> {
    sql::named(row, log_from_row_columns)
}

fn log_from_row_columns(row: &Row<'_>) -> rusqlite::Result<IngestRequest> {
    Ok(IngestRequest {
        id: IngestLogId::from_trusted(row.get(0)?),
        source_id: SourceId::from_trusted(row.get(1)?),
        status: IngestStatus::from_code(row.get(2)?).ok_or_else(|| sql::corrupt(2, std::fmt::Error))?,
        reason: row.get(3)?,
        method: row.get(4)?,
        path: row.get(5)?,
        query: row.get(6)?,
        headers: from_json(7, &row.get::<_, String>(7)?)?,
        client_addr: row.get(8)?,
        body: row.get(9)?,
        response_status: row.get(10)?,
        msg_id: row.get::<_, Option<String>>(11)?.map(MessageId::from_trusted),
        duplicate_of: row.get::<_, Option<String>>(12)?.map(IngestLogId::from_trusted),
        received_at: from_millis(row.get(13)?),
    })
}

/// Finds a source of `org` by id, or else by uid.
fn find(c: &Connection, org: &OrgId, id_or_uid: &str) -> StoreResult<Source> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM source WHERE org_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![org.as_str(), id_or_uid], from_row).optional())
    .map_err(internal)?
    .ok_or(StoreError::NotFound("source"))
}

/// The accepted request with this deduplication key received since `since`.
fn earlier(
    c: &Connection,
    source: &SourceId,
    key: &str,
    since: DateTime<Utc>,
) -> StoreResult<Option<String>> {
    c.prepare_cached(
        "SELECT id FROM ingest_request WHERE source_id = ? AND dedup_key = ? AND status = 0 AND received_at >= ?
         ORDER BY received_at LIMIT 1",
    )
    .and_then(|mut s| {
        s.query_row(params![source.as_str(), key, since.timestamp_millis()], |r| r.get(0))
            .optional()
    })
    .map_err(internal)
}

/// Claims a cron firing: false when another node recorded it first.
fn claim_cron(
    c: &Connection,
    source: &SourceId,
    previous: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    let changed = c
        .prepare_cached("UPDATE source SET cron_last_fire = ?1 WHERE id = ?2 AND cron_last_fire IS ?3")
        .and_then(|mut s| {
            s.execute(params![
                at.timestamp_millis(),
                source.as_str(),
                previous.map(|p| p.timestamp_millis())
            ])
        })
        .map_err(internal)?;
    Ok(changed == 1)
}

fn record(
    c: &Connection,
    org: &OrgId,
    source: &Source,
    request: NewIngestRequest,
) -> StoreResult<IngestRecorded> {
    let mut r = IngestRecording::new(request);
    if let Some((previous, at)) = r.cron_claim() {
        r.cron_claimed(claim_cron(c, &source.id, previous, at)?)?;
    }
    if let Some((key, since)) = r.dedup_lookup() {
        let first = earlier(c, &source.id, key, since)?;
        r.found_earlier(first.map(IngestLogId::from_trusted));
    }
    if let Some(forward) = r.take_forward() {
        let (msg, n) =
            crate::messages::insert_message(c, org, &source.app_id, forward, Some(r.request.view()))?;
        r.forwarded(msg.id, n);
    }
    let runs = r.take_flow_runs();
    let started = crate::flow_runs::insert_started(c, org, runs, r.request.received_at)?;
    r.started_flow_runs(started);
    let q = &r.request;
    c.prepare_cached(
        "INSERT INTO ingest_request (id, org_id, source_id, status, reason, method, path, query, headers,
             client_addr, body, response_status, dedup_key, msg_id, duplicate_of, received_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.id.as_str(),
            org.as_str(),
            source.id.as_str(),
            r.status as i64,
            q.reason,
            q.method,
            q.path,
            q.query,
            to_json(&q.headers),
            q.client_addr,
            q.body,
            q.response_status,
            r.dedup_key(),
            r.msg_id.as_ref().map(MessageId::as_str),
            r.duplicate_of.as_ref().map(IngestLogId::as_str),
            q.received_at.timestamp_millis(),
        ])
    })
    .map_err(internal)?;
    Ok(r.recorded())
}

#[async_trait]
impl IngestStore for SqliteStore {
    async fn create_source(&self, org: &OrgId, data: SourceData, token: String) -> StoreResult<Source> {
        let (org, keys) = (org.clone(), Arc::clone(&self.keyring));
        self.write(move |c| {
            let now = sql::now();
            let source = Source {
                id: SourceId::generate(),
                app_id: ApplicationId::generate(),
                token,
                created_at: now,
                updated_at: now,
                data,
            };
            c.prepare_cached(
                "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at, operational)
                 VALUES (?, ?, NULL, ?, NULL, '{}', ?, ?, 2)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    source.app_id.as_str(),
                    org.as_str(),
                    format!("Ingest source {}", source.id),
                    now.timestamp_millis(),
                    now.timestamp_millis()
                ])
            })
            .map_err(internal)?;
            let (kind, config, options) = source.data.spec_columns()?;
            c.prepare_cached(
                "INSERT INTO source (id, org_id, app_id, uid, name, kind, config, options, metadata, token,
                     token_sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    source.id.as_str(),
                    org.as_str(),
                    source.app_id.as_str(),
                    source.data.uid.as_ref().map(|u| u.as_str()),
                    source.data.name,
                    kind,
                    seal(&keys, Sealed::SourceConfig, source.id.as_str(), &config.to_string()),
                    seal(&keys, Sealed::SourceOptions, source.id.as_str(), &options.to_string()),
                    to_json(&source.data.metadata),
                    token_digest(&source.token),
                    seal(&keys, Sealed::SourceToken, source.id.as_str(), &source.token),
                    now.timestamp_millis(),
                    now.timestamp_millis(),
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, UID_TAKEN))?;
            Ok(source)
        })
        .await
    }

    async fn get_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        self.read(move |c| find(c, &org, &key)).await
    }

    async fn list_sources(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<Source>> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |c| {
            let select = format!("SELECT {COLUMNS} FROM source WHERE org_id = ?");
            sql::select_page(c, &select, "id", params![org.as_str()], &query, from_row)
        })
        .await
    }

    async fn update_source(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<SourceData>,
    ) -> StoreResult<Updated<Source>> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        let keys = Arc::clone(&self.keyring);
        self.write(move |c| {
            let mut source = find(c, &org, &key)?;
            let previous = source.clone();
            let before = source.data.clone();
            change(&mut source.data)?;
            source.updated_at = sql::now();
            let reset_cron = source.data.resets_cron(&before);
            let (kind, config, options) = source.data.spec_columns()?;
            c.prepare_cached(
                "UPDATE source SET uid = ?, name = ?, kind = ?, config = ?, options = ?, metadata = ?, updated_at = ?,
                     cron_last_fire = CASE WHEN ? THEN NULL ELSE cron_last_fire END
                 WHERE org_id = ? AND id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    source.data.uid.as_ref().map(|u| u.as_str()),
                    source.data.name,
                    kind,
                    seal(&keys, Sealed::SourceConfig, source.id.as_str(), &config.to_string()),
                    seal(&keys, Sealed::SourceOptions, source.id.as_str(), &options.to_string()),
                    to_json(&source.data.metadata),
                    source.updated_at.timestamp_millis(),
                    reset_cron,
                    org.as_str(),
                    source.id.as_str(),
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, UID_TAKEN))?;
            Ok(Updated { before: previous, after: source })
        })
        .await
    }

    async fn delete_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        self.write(move |c| {
            let source = find(c, &org, &key)?;
            // The application's deletion cascades to the source, its log, destinations,
            // messages and deliveries.
            c.prepare_cached("DELETE FROM application WHERE org_id = ? AND id = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), source.app_id.as_str()]))
                .map_err(internal)?;
            Ok(source)
        })
        .await
    }

    async fn rotate_source_token(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        token: String,
        old_until: DateTime<Utc>,
    ) -> StoreResult<Source> {
        let (org, key, keys) = (org.clone(), id_or_uid.to_owned(), Arc::clone(&self.keyring));
        self.write(move |c| {
            let mut source = find(c, &org, &key)?;
            source.token = token;
            source.updated_at = sql::now();
            // The current token's digest becomes the old one.
            c.prepare_cached(
                "UPDATE source SET old_token = token, token = ?, token_sealed = ?, old_token_until = ?,
                     updated_at = ? WHERE org_id = ? AND id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    token_digest(&source.token),
                    seal(&keys, Sealed::SourceToken, source.id.as_str(), &source.token),
                    old_until.timestamp_millis(),
                    source.updated_at.timestamp_millis(),
                    org.as_str(),
                    source.id.as_str()
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, "token collision; try again"))?;
            Ok(source)
        })
        .await
    }

    async fn find_source_by_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(OrgId, Source)>> {
        let digest = token_digest(token);
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, org_id FROM source WHERE token = ?1
                 UNION ALL
                 SELECT {COLUMNS}, org_id FROM source WHERE old_token = ?1 AND old_token_until > ?2
                 LIMIT 1"
            ))
            .and_then(|mut s| {
                s.query_row(params![digest, now.timestamp_millis()], |r| {
                    Ok((OrgId::from_trusted(r.get(11)?), from_row(r)?))
                })
                .optional()
            })
            .map_err(internal)
        })
        .await
    }

    async fn record_ingest(
        &self,
        org: &OrgId,
        source: &Source,
        request: NewIngestRequest,
    ) -> StoreResult<IngestRecorded> {
        // The caller has the source; the writer (the hot, serial path) only checks, by
        // primary key, that it was not deleted meanwhile.
        let (org, source) = (org.clone(), source.clone());
        self.write(move |c| {
            let live = c
                .prepare_cached("SELECT 1 FROM source WHERE id = ? AND org_id = ?")
                .and_then(|mut s| s.exists(params![source.id.as_str(), org.as_str()]))
                .map_err(internal)?;
            if !live {
                return Err(StoreError::NotFound("source"));
            }
            record(c, &org, &source, request)
        })
        .await
    }

    async fn list_ingest_log(
        &self,
        org: &OrgId,
        source: &SourceId,
        query: &ListQuery,
        filter: &IngestLogFilter,
    ) -> StoreResult<Page<IngestRequest>> {
        let (org, source, query, filter) = (org.clone(), source.clone(), query.clone(), filter.clone());
        self.read(move |c| {
            let mut select =
                format!("SELECT {LOG_COLUMNS} FROM ingest_request WHERE org_id = ? AND source_id = ?");
            let mut values = vec![Value::Text(org.to_string()), Value::Text(source.to_string())];
            if let Some(status) = filter.status {
                select.push_str(" AND status = ?");
                values.push(Value::Integer(status as i64));
            }
            if let Some(before) = filter.before {
                select.push_str(" AND received_at < ?");
                values.push(Value::Integer(before.timestamp_millis()));
            }
            if let Some(after) = filter.after {
                select.push_str(" AND received_at > ?");
                values.push(Value::Integer(after.timestamp_millis()));
            }
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "id", &refs, &query, log_from_row)
        })
        .await
    }

    async fn get_ingest_request(
        &self,
        org: &OrgId,
        source: &SourceId,
        id: &IngestLogId,
    ) -> StoreResult<IngestRequest> {
        let (org, source, id) = (org.clone(), source.clone(), id.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {LOG_COLUMNS} FROM ingest_request WHERE org_id = ? AND source_id = ? AND id = ?"
            ))
            .and_then(|mut s| {
                s.query_row(params![org.as_str(), source.as_str(), id.as_str()], log_from_row)
                    .optional()
            })
            .map_err(internal)?
            .ok_or(StoreError::NotFound("ingest log entry"))
        })
        .await
    }

    async fn cron_sources(&self) -> StoreResult<Vec<(OrgId, Source, Option<DateTime<Utc>>)>> {
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {COLUMNS}, org_id, cron_last_fire FROM source WHERE kind = 'cron' ORDER BY id"
            ))
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((
                        OrgId::from_trusted(r.get(11)?),
                        from_row(r)?,
                        r.get::<_, Option<i64>>(12)?.map(from_millis),
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)
        })
        .await
    }
}
