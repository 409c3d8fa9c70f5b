//! Ingest sources and the log of the requests they received.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::id::{ApplicationId, IngestLogId, MessageId, OrgId, SourceId};
use hookd_core::ingest::token_digest;
use hookd_core::name::SourceUid;
use hookd_store::sealing::{Keyring, Sealed};
use hookd_store::{
    IngestLogFilter, IngestRecorded, IngestRecording, IngestRequest, IngestStatus, IngestStore, ListQuery,
    Mutation, NewIngestRequest, Page, Source, SourceData, StoreError, StoreResult, Updated,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json, to_json};

const COLUMNS: &str =
    "id, app_id, token_sealed, uid, name, kind, config, options, metadata, created_at, updated_at";
const UID_TAKEN: &str = "a source with this uid already exists";
const LOG_COLUMNS: &str = "id, source_id, status, reason, method, path, query, headers, client_addr, body,
    response_status, msg_id, duplicate_of, received_at";

/// A source, its sealed token, config and options opened.
fn from_row(keys: &Keyring, row: &Row) -> StoreResult<Source> {
    let id: String = get(row, 0)?;
    let open = |idx: usize, kind: Sealed| {
        let place = kind.place(&id);
        keys.open_json(&get(row, idx)?, &place)
            .map_err(|_| hookd_store::sealing::unopened(&place))
    };
    let (kind, options) = SourceData::parse_spec(
        &get::<String>(row, 5)?,
        &open(6, Sealed::SourceConfig)?,
        open(7, Sealed::SourceOptions)?,
    )
    .map_err(|e| db::corrupt("source", e))?;
    Ok(Source {
        app_id: ApplicationId::from_trusted(get(row, 1)?),
        token: {
            let place = Sealed::SourceToken.place(&id);
            keys.open(&get::<String>(row, 2)?, &place)
                .map_err(|_| hookd_store::sealing::unopened(&place))?
        },
        data: SourceData {
            uid: get::<Option<String>>(row, 3)?.map(SourceUid::from_trusted),
            name: get(row, 4)?,
            kind,
            options,
            metadata: json(row, 8)?,
        },
        created_at: get(row, 9)?,
        updated_at: get(row, 10)?,
        id: SourceId::from_trusted(id),
    })
}

fn log_from_row(row: &Row) -> StoreResult<IngestRequest> {
    Ok(IngestRequest {
        id: IngestLogId::from_trusted(get(row, 0)?),
        source_id: SourceId::from_trusted(get(row, 1)?),
        status: IngestStatus::from_code(i64::from(get::<i32>(row, 2)?))
            .ok_or_else(|| db::corrupt("ingest status", "unknown code"))?,
        reason: get(row, 3)?,
        method: get(row, 4)?,
        path: get(row, 5)?,
        query: get(row, 6)?,
        headers: json(row, 7)?,
        client_addr: get(row, 8)?,
        body: get(row, 9)?,
        response_status: get::<i32>(row, 10)?.clamp(0, i32::from(u16::MAX)) as u16,
        msg_id: get::<Option<String>>(row, 11)?.map(MessageId::from_trusted),
        duplicate_of: get::<Option<String>>(row, 12)?.map(IngestLogId::from_trusted),
        received_at: get(row, 13)?,
    })
}

/// [`SourceData::spec_columns`] with the config and options sealed.
fn sealed_spec<'a>(
    keys: &Keyring,
    source: &'a Source,
) -> StoreResult<(&'a str, serde_json::Value, serde_json::Value)> {
    let (kind, config, options) = source.data.spec_columns()?;
    let id = source.id.as_str();
    Ok((
        kind,
        keys.seal_json(&config, &Sealed::SourceConfig.place(id)),
        keys.seal_json(&options, &Sealed::SourceOptions.place(id)),
    ))
}

/// Finds a source of `org` by id, or else by uid.
async fn find<C: GenericClient>(
    c: &C,
    keys: &Keyring,
    org: &OrgId,
    id_or_uid: &str,
    lock: bool,
) -> StoreResult<Source> {
    let sql = format!(
        "SELECT {COLUMNS} FROM source WHERE org_id = $1 AND (id = $2 OR uid = $2)
         ORDER BY (id = $2) DESC LIMIT 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    db::query_opt(c, &sql, &[&org.as_str(), &id_or_uid])
        .await?
        .as_ref()
        .map(|row| from_row(keys, row))
        .transpose()?
        .ok_or(StoreError::NotFound("source"))
}

async fn record<C: GenericClient>(
    c: &C,
    org: &OrgId,
    source: &Source,
    request: NewIngestRequest,
) -> StoreResult<IngestRecorded> {
    // Holds the source for the transaction: not deleted under the request.
    let live = db::query_opt(
        c,
        "SELECT 1 FROM source WHERE id = $1 AND org_id = $2 FOR SHARE",
        &[&source.id.as_str(), &org.as_str()],
    )
    .await?;
    if live.is_none() {
        return Err(StoreError::NotFound("source"));
    }
    let mut r = IngestRecording::new(request);
    if let Some((previous, at)) = r.cron_claim() {
        // Two nodes firing the same slot: the second waits for the first's row lock,
        // then finds `cron_last_fire` moved on and changes nothing.
        let claimed = db::execute(
            c,
            "UPDATE source SET cron_last_fire = $1 WHERE id = $2 AND cron_last_fire IS NOT DISTINCT FROM $3",
            &[&db::ms(at), &source.id.as_str(), &previous.map(db::ms)],
        )
        .await?;
        r.cron_claimed(claimed == 1)?;
    }
    if let Some((key, since)) = r.dedup_lookup() {
        // Serialises requests with the same key (on every node) until commit, so the
        // second one sees the first.
        db::execute(
            c,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("{}\n{key}", source.id)],
        )
        .await?;
        let first = db::query_opt(
            c,
            "SELECT id FROM ingest_request
             WHERE source_id = $1 AND dedup_key = $2 AND status = 0 AND received_at >= $3
             ORDER BY received_at LIMIT 1",
            &[&source.id.as_str(), &key, &since],
        )
        .await?;
        let first = first.map(|row| get::<String>(&row, 0)).transpose()?;
        r.found_earlier(first.map(IngestLogId::from_trusted));
    }
    if let Some(forward) = r.take_forward() {
        let (msg, n) =
            crate::messages::insert_message(c, org, &source.app_id, forward, Some(r.request.view())).await?;
        r.forwarded(msg.id, n);
    }
    let runs = r.take_flow_runs();
    let started = crate::flow_runs::insert_started(c, org, runs, r.request.received_at).await?;
    r.started_flow_runs(started);
    let q = &r.request;
    db::execute(
        c,
        "INSERT INTO ingest_request (id, org_id, source_id, status, reason, method, path, query, headers,
             client_addr, body, response_status, dedup_key, msg_id, duplicate_of, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        &[
            &r.id.as_str(),
            &org.as_str(),
            &source.id.as_str(),
            &(r.status as i32),
            &q.reason,
            &q.method,
            &q.path,
            &q.query,
            &to_json(&q.headers),
            &q.client_addr,
            &q.body,
            &i32::from(q.response_status),
            &r.dedup_key(),
            &r.msg_id.as_ref().map(MessageId::as_str),
            &r.duplicate_of.as_ref().map(IngestLogId::as_str),
            &db::ms(q.received_at),
        ],
    )
    .await?;
    Ok(r.recorded())
}

#[async_trait]
impl IngestStore for PgStore {
    async fn create_source(&self, org: &OrgId, data: SourceData, token: String) -> StoreResult<Source> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let now = db::now();
        let source = Source {
            id: SourceId::generate(),
            app_id: ApplicationId::generate(),
            token,
            created_at: now,
            updated_at: now,
            data,
        };
        db::execute(
            &tx,
            "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at, operational)
             VALUES ($1, $2, NULL, $3, NULL, '{}', $4, $4, 2)",
            &[
                &source.app_id.as_str(),
                &org.as_str(),
                &format!("Ingest source {}", source.id),
                &now,
            ],
        )
        .await?;
        let (kind, config, options) = sealed_spec(&self.keyring, &source)?;
        db::execute_unique(
            &tx,
            "INSERT INTO source (id, org_id, app_id, uid, name, kind, config, options, metadata, token,
                 token_sealed, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
            &[
                &source.id.as_str(),
                &org.as_str(),
                &source.app_id.as_str(),
                &source.data.uid.as_ref().map(|u| u.as_str()),
                &source.data.name,
                &kind,
                &config,
                &options,
                &to_json(&source.data.metadata),
                &token_digest(&source.token),
                &self
                    .keyring
                    .seal(&source.token, &Sealed::SourceToken.place(source.id.as_str())),
                &now,
            ],
            UID_TAKEN,
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(source)
    }

    async fn get_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source> {
        let c = self.client().await?;
        find(&c, &self.keyring, org, id_or_uid, false).await
    }

    async fn list_sources(&self, org: &OrgId, query: &ListQuery) -> StoreResult<Page<Source>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT {COLUMNS} FROM source WHERE org_id = {}",
            args.push(org.to_string())
        );
        db::select_page(&c, &select, "id", args, query, |row| from_row(&self.keyring, row)).await
    }

    async fn update_source(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<SourceData>,
    ) -> StoreResult<Updated<Source>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut source = find(&tx, &self.keyring, org, id_or_uid, true).await?;
        let previous = source.clone();
        let before = source.data.clone();
        change(&mut source.data)?;
        source.updated_at = db::now();
        let reset_cron = source.data.resets_cron(&before);
        let (kind, config, options) = sealed_spec(&self.keyring, &source)?;
        db::execute_unique(
            &tx,
            "UPDATE source SET uid = $1, name = $2, kind = $3, config = $4, options = $5, metadata = $6,
                 updated_at = $7, cron_last_fire = CASE WHEN $8 THEN NULL ELSE cron_last_fire END
             WHERE org_id = $9 AND id = $10",
            &[
                &source.data.uid.as_ref().map(|u| u.as_str()),
                &source.data.name,
                &kind,
                &config,
                &options,
                &to_json(&source.data.metadata),
                &source.updated_at,
                &reset_cron,
                &org.as_str(),
                &source.id.as_str(),
            ],
            UID_TAKEN,
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(Updated {
            before: previous,
            after: source,
        })
    }

    async fn delete_source(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Source> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let source = find(&tx, &self.keyring, org, id_or_uid, true).await?;
        // The application's deletion cascades to the source, its log, destinations,
        // messages and deliveries.
        db::execute(
            &tx,
            "DELETE FROM application WHERE org_id = $1 AND id = $2",
            &[&org.as_str(), &source.app_id.as_str()],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(source)
    }

    async fn rotate_source_token(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        token: String,
        old_until: DateTime<Utc>,
    ) -> StoreResult<Source> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut source = find(&tx, &self.keyring, org, id_or_uid, true).await?;
        source.token = token;
        source.updated_at = db::now();
        // The current token's digest becomes the old one.
        db::execute_unique(
            &tx,
            "UPDATE source SET old_token = token, token = $1, token_sealed = $2, old_token_until = $3,
                 updated_at = $4 WHERE org_id = $5 AND id = $6",
            &[
                &token_digest(&source.token),
                &self
                    .keyring
                    .seal(&source.token, &Sealed::SourceToken.place(source.id.as_str())),
                &db::ms(old_until),
                &source.updated_at,
                &org.as_str(),
                &source.id.as_str(),
            ],
            "token collision; try again",
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(source)
    }

    async fn find_source_by_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<(OrgId, Source)>> {
        let c = self.client().await?;
        let row = db::query_opt(
            &c,
            &format!(
                "(SELECT {COLUMNS}, org_id FROM source WHERE token = $1)
                 UNION ALL
                 (SELECT {COLUMNS}, org_id FROM source WHERE old_token = $1 AND old_token_until > $2)
                 LIMIT 1"
            ),
            &[&token_digest(token), &now],
        )
        .await?;
        row.map(|r| Ok((OrgId::from_trusted(get(&r, 11)?), from_row(&self.keyring, &r)?)))
            .transpose()
    }

    async fn record_ingest(
        &self,
        org: &OrgId,
        source: &Source,
        request: NewIngestRequest,
    ) -> StoreResult<IngestRecorded> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let recorded = record(&tx, org, source, request).await?;
        tx.commit().await.map_err(db::err)?;
        if recorded.deliveries > 0 {
            self.announce_work();
        }
        Ok(recorded)
    }

    async fn list_ingest_log(
        &self,
        org: &OrgId,
        source: &SourceId,
        query: &ListQuery,
        filter: &IngestLogFilter,
    ) -> StoreResult<Page<IngestRequest>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {LOG_COLUMNS} FROM ingest_request WHERE org_id = {} AND source_id = {}",
            args.push(org.to_string()),
            args.push(source.to_string())
        );
        if let Some(status) = filter.status {
            select.push_str(&format!(" AND status = {}", args.push(status as i32)));
        }
        if let Some(before) = filter.before {
            select.push_str(&format!(" AND received_at < {}", args.push(before)));
        }
        if let Some(after) = filter.after {
            select.push_str(&format!(" AND received_at > {}", args.push(after)));
        }
        db::select_page(&c, &select, "id", args, query, log_from_row).await
    }

    async fn get_ingest_request(
        &self,
        org: &OrgId,
        source: &SourceId,
        id: &IngestLogId,
    ) -> StoreResult<IngestRequest> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            &format!(
                "SELECT {LOG_COLUMNS} FROM ingest_request WHERE org_id = $1 AND source_id = $2 AND id = $3"
            ),
            &[&org.as_str(), &source.as_str(), &id.as_str()],
        )
        .await?
        .as_ref()
        .map(log_from_row)
        .transpose()?
        .ok_or(StoreError::NotFound("ingest log entry"))
    }

    async fn cron_sources(&self) -> StoreResult<Vec<(OrgId, Source, Option<DateTime<Utc>>)>> {
        let c = self.client().await?;
        db::query(
            &c,
            &format!("SELECT {COLUMNS}, org_id, cron_last_fire FROM source WHERE kind = 'cron' ORDER BY id"),
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok((
                OrgId::from_trusted(get(r, 11)?),
                from_row(&self.keyring, r)?,
                get(r, 12)?,
            ))
        })
        .collect()
    }
}
