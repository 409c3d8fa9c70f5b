//! The data API: definitions (collections, leaderboards, modes), documents, scores,
//! API keys and usage. A document's or a player's read-modify-write runs under a
//! transaction-scoped advisory lock on its key, so concurrent edits, increments and
//! score submissions on any number of nodes apply one after the other, including the
//! first ones, when there is no row yet to lock.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::GenericClient;
use hookd_core::api_token::TokenHash;
use hookd_core::data::period_key;
use hookd_core::id::{ApiKeyId, ApplicationId, OrgId};
use hookd_core::name::{DataName, ItemKey};
use hookd_store::{
    ApiKeyRecord, DataStore, Definition, DefinitionKind, DefinitionSpec, Document, DocumentEdit,
    DocumentFilter, DocumentWrite, DocumentWritten, LeaderboardData, ListQuery, Mutation, NewApiKey, Page,
    Period, RunsFrom, ScoreEntry, ScoreSubmitted, StoreError, StoreResult, UsageCount, UsageDay,
    plan_document_write, score_to_store,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json};

fn definition_from_row(kind: DefinitionKind, row: &Row) -> StoreResult<Definition> {
    Ok(Definition {
        name: get(row, 0)?,
        spec: DefinitionSpec::from_value(kind, get(row, 1)?).map_err(|e| db::corrupt(kind.as_str(), e))?,
        created_at: get(row, 2)?,
        updated_at: get(row, 3)?,
    })
}

async fn find_definition<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    kind: DefinitionKind,
    name: &str,
    lock: &str,
) -> StoreResult<Definition> {
    let sql = format!(
        "SELECT name, spec, created_at, updated_at FROM data_definition
         WHERE org_id = $1 AND app_id = $2 AND kind = $3 AND name = $4{lock}"
    );
    db::query_opt(c, &sql, &[&org.as_str(), &app.as_str(), &kind.as_str(), &name])
        .await?
        .map(|row| definition_from_row(kind, &row))
        .transpose()?
        .ok_or(StoreError::NotFound(kind.as_str()))
}

async fn leaderboard<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
) -> StoreResult<LeaderboardData> {
    match find_definition(c, org, app, DefinitionKind::Leaderboard, board.as_str(), "")
        .await?
        .spec
    {
        DefinitionSpec::Leaderboard(data) => Ok(data),
        _ => Err(StoreError::NotFound("leaderboard")),
    }
}

/// Serialises read-modify-writes of one key until the transaction ends.
async fn lock_key<C: GenericClient>(c: &C, parts: &[&str]) -> StoreResult<()> {
    db::execute(
        c,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&parts.join("\n")],
    )
    .await
    .map(|_| ())
}

const DOC_COLUMNS: &str = "key, body, version, created_at, updated_at";

fn document_from_row(row: &Row) -> StoreResult<Document> {
    Ok(Document {
        key: ItemKey::from_trusted(get(row, 0)?),
        body: get(row, 1)?,
        version: get(row, 2)?,
        created_at: get(row, 3)?,
        updated_at: get(row, 4)?,
    })
}

async fn find_document<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
) -> StoreResult<Option<Document>> {
    db::query_opt(
        c,
        &format!(
            "SELECT {DOC_COLUMNS} FROM document WHERE org_id = $1 AND app_id = $2 AND collection = $3 AND key = $4"
        ),
        &[&org.as_str(), &app.as_str(), &collection.as_str(), &key.as_str()],
    )
    .await?
    .as_ref()
    .map(document_from_row)
    .transpose()
}

/// A player's current entry in `period` with its rank, and its rank key.
async fn score_entry<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
    period: &str,
    player: &ItemKey,
) -> StoreResult<Option<(ScoreEntry, i64)>> {
    let row = db::query_opt(
        c,
        "SELECT s.score, s.rank_key, s.achieved_at,
             (SELECT count(*) FROM score b WHERE b.org_id = s.org_id AND b.app_id = s.app_id
                  AND b.board = s.board AND b.period = s.period
                  AND (b.rank_key, b.achieved_at, b.player) < (s.rank_key, s.achieved_at, s.player))
         FROM score s
         WHERE s.org_id = $1 AND s.app_id = $2 AND s.board = $3 AND s.period = $4 AND s.player = $5",
        &[
            &org.as_str(),
            &app.as_str(),
            &board.as_str(),
            &period,
            &player.as_str(),
        ],
    )
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let ahead: i64 = get(&row, 3)?;
    Ok(Some((
        ScoreEntry {
            player: player.clone(),
            score: get(&row, 0)?,
            rank: ahead.unsigned_abs() + 1,
            achieved_at: get(&row, 2)?,
        },
        get(&row, 1)?,
    )))
}

fn ranked(rows: &[Row], first_rank: u64) -> StoreResult<Vec<ScoreEntry>> {
    rows.iter()
        .zip(first_rank..)
        .map(|(row, rank)| {
            Ok(ScoreEntry {
                player: ItemKey::from_trusted(get(row, 0)?),
                score: get(row, 1)?,
                rank,
                achieved_at: get(row, 2)?,
            })
        })
        .collect()
}

const KEY_COLUMNS: &str = "id, org_id, app_id, secret_hash, spec, created_at, revoked_at";

fn api_key_from_row(row: &Row) -> StoreResult<ApiKeyRecord> {
    let hash: Vec<u8> = get(row, 3)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| db::corrupt("API key hash", "not 32 bytes"))?;
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_trusted(get(row, 0)?),
        org_id: OrgId::from_trusted(get(row, 1)?),
        app_id: ApplicationId::from_trusted(get(row, 2)?),
        hash: TokenHash(hash),
        data: json(row, 4)?,
        created_at: get(row, 5)?,
        revoked_at: get(row, 6)?,
    })
}

/// Checks that `app` is the organisation's (inserts rely on it for tenancy).
async fn own_app<C: GenericClient>(c: &C, org: &OrgId, app: &ApplicationId) -> StoreResult<()> {
    db::query_opt(
        c,
        "SELECT 1 FROM application WHERE org_id = $1 AND id = $2",
        &[&org.as_str(), &app.as_str()],
    )
    .await?
    .map(|_| ())
    .ok_or(StoreError::NotFound("application"))
}

/// A foreign-key failure on insert: the application was deleted meanwhile.
fn app_gone_or(e: tokio_postgres::Error, conflict: &str) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
        StoreError::NotFound("application")
    } else {
        db::conflict_or(e, conflict)
    }
}

#[async_trait]
impl DataStore for PgStore {
    async fn create_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        name: &str,
        spec: DefinitionSpec,
    ) -> StoreResult<Definition> {
        let c = self.client().await?;
        own_app(&c, org, app).await?;
        let now = db::now();
        let kind = spec.kind();
        let stmt = c
            .prepare_cached(
                "INSERT INTO data_definition (app_id, kind, name, org_id, spec, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .await
            .map_err(db::err)?;
        c.execute(
            &stmt,
            &[
                &app.as_str(),
                &kind.as_str(),
                &name,
                &org.as_str(),
                &spec.to_value(),
                &now,
            ],
        )
        .await
        .map_err(|e| app_gone_or(e, &format!("a {} with this name already exists", kind.as_str())))?;
        Ok(Definition {
            name: name.to_owned(),
            spec,
            created_at: now,
            updated_at: now,
        })
    }

    async fn get_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<Definition> {
        let c = self.client().await?;
        find_definition(&c, org, app, kind, name, "").await
    }

    async fn list_definitions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        query: &ListQuery,
    ) -> StoreResult<Page<Definition>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT name, spec, created_at, updated_at FROM data_definition
             WHERE org_id = {} AND app_id = {} AND kind = {}",
            args.push(org.to_string()),
            args.push(app.to_string()),
            args.push(kind.as_str().to_owned())
        );
        db::select_page(&c, &select, "name", args, query, |row| {
            definition_from_row(kind, row)
        })
        .await
    }

    async fn update_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
        change: Mutation<DefinitionSpec>,
    ) -> StoreResult<Definition> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut def = find_definition(&tx, org, app, kind, name, " FOR UPDATE").await?;
        change(&mut def.spec)?;
        if def.spec.kind() != kind {
            return Err(StoreError::rejected(
                "kind",
                "a definition cannot change its kind",
            ));
        }
        def.updated_at = db::now();
        db::execute(
            &tx,
            "UPDATE data_definition SET spec = $1, updated_at = $2
             WHERE org_id = $3 AND app_id = $4 AND kind = $5 AND name = $6",
            &[
                &def.spec.to_value(),
                &def.updated_at,
                &org.as_str(),
                &app.as_str(),
                &kind.as_str(),
                &name,
            ],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(def)
    }

    async fn delete_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let deleted = db::execute(
            &tx,
            "DELETE FROM data_definition WHERE org_id = $1 AND app_id = $2 AND kind = $3 AND name = $4",
            &[&org.as_str(), &app.as_str(), &kind.as_str(), &name],
        )
        .await?;
        if deleted == 0 {
            return Err(StoreError::NotFound(kind.as_str()));
        }
        let contents = match kind {
            DefinitionKind::Collection => {
                Some("DELETE FROM document WHERE org_id = $1 AND app_id = $2 AND collection = $3")
            }
            DefinitionKind::Leaderboard => {
                Some("DELETE FROM score WHERE org_id = $1 AND app_id = $2 AND board = $3")
            }
            DefinitionKind::Mode => None,
        };
        if let Some(sql) = contents {
            db::execute(&tx, sql, &[&org.as_str(), &app.as_str(), &name]).await?;
        }
        tx.commit().await.map_err(db::err)
    }

    async fn get_document(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
    ) -> StoreResult<Document> {
        let c = self.client().await?;
        match find_document(&c, org, app, collection, key).await? {
            Some(doc) => Ok(doc),
            None => {
                // Say which is missing: the collection or the document.
                find_definition(&c, org, app, DefinitionKind::Collection, collection.as_str(), "").await?;
                Err(StoreError::NotFound("document"))
            }
        }
    }

    async fn list_documents(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        query: &ListQuery,
        filter: &DocumentFilter,
    ) -> StoreResult<Page<Document>> {
        let c = self.client().await?;
        find_definition(&c, org, app, DefinitionKind::Collection, collection.as_str(), "").await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {DOC_COLUMNS} FROM document WHERE org_id = {} AND app_id = {} AND collection = {}",
            args.push(org.to_string()),
            args.push(app.to_string()),
            args.push(collection.to_string())
        );
        if let Some(prefix) = &filter.prefix {
            // Keys are ASCII below 0x7f, so every key with the prefix sorts below
            // prefix + DEL (bytewise: the column is COLLATE "C").
            let from = args.push(prefix.clone());
            let to = args.push(format!("{prefix}\u{7f}"));
            select.push_str(&format!(" AND key >= {from} AND key < {to}"));
        }
        for (field, value) in &filter.equals {
            let field = args.push(field.clone());
            let value = args.push(value.clone());
            select.push_str(&format!(" AND body -> {field}::text = {value}::jsonb"));
        }
        db::select_page(&c, &select, "key", args, query, document_from_row).await
    }

    async fn write_document_starting(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
        edit: DocumentEdit,
        event_retain_until: DateTime<Utc>,
        runs: RunsFrom<DocumentWritten>,
    ) -> StoreResult<DocumentWritten> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let written =
            write_document_in(&tx, org, app, collection, key, edit, event_retain_until, &runs).await?;
        tx.commit().await.map_err(db::err)?;
        if written.event_deliveries > 0 {
            self.announce_work();
        }
        Ok(written)
    }

    async fn submit_score_starting(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        player: &ItemKey,
        score: i64,
        now: DateTime<Utc>,
        runs: RunsFrom<ScoreSubmitted>,
    ) -> StoreResult<ScoreSubmitted> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let submitted = submit_score_in(&tx, org, app, board, player, score, now, &runs).await?;
        tx.commit().await.map_err(db::err)?;
        Ok(submitted)
    }

    async fn top_scores(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        period: &Period,
        limit: usize,
    ) -> StoreResult<(String, Vec<ScoreEntry>)> {
        let c = self.client().await?;
        let data = leaderboard(&c, org, app, board).await?;
        let period = period.key(data.reset);
        let rows = db::query(
            &c,
            "SELECT player, score, achieved_at FROM score
             WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4
             ORDER BY rank_key, achieved_at, player LIMIT $5",
            &[
                &org.as_str(),
                &app.as_str(),
                &board.as_str(),
                &period,
                &(limit as i64),
            ],
        )
        .await?;
        Ok((period, ranked(&rows, 1)?))
    }

    async fn scores_around(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        player: &ItemKey,
        neighbours: usize,
        period: &Period,
    ) -> StoreResult<(String, Vec<ScoreEntry>)> {
        let mut c = self.client().await?;
        // One snapshot for the entry and its neighbours.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(db::err)?;
        let data = leaderboard(&tx, org, app, board).await?;
        let period = period.key(data.reset);
        let (entry, rank_key) = score_entry(&tx, org, app, board, &period, player)
            .await?
            .ok_or(StoreError::NotFound("score"))?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 8] = [
            &org.as_str(),
            &app.as_str(),
            &board.as_str(),
            &period,
            &rank_key,
            &entry.achieved_at,
            &player.as_str(),
            &(neighbours as i64),
        ];
        let above = db::query(
            &tx,
            "SELECT player, score, achieved_at FROM score
             WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4
             AND (rank_key, achieved_at, player) < ($5, $6, $7)
             ORDER BY rank_key DESC, achieved_at DESC, player DESC LIMIT $8",
            &params,
        )
        .await?;
        let below = db::query(
            &tx,
            "SELECT player, score, achieved_at FROM score
             WHERE org_id = $1 AND app_id = $2 AND board = $3 AND period = $4
             AND (rank_key, achieved_at, player) > ($5, $6, $7)
             ORDER BY rank_key, achieved_at, player LIMIT $8",
            &params,
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        let mut above = ranked(&above, 0)?;
        above.reverse();
        let first = entry.rank - above.len() as u64;
        for (e, rank) in above.iter_mut().zip(first..) {
            e.rank = rank;
        }
        let next = entry.rank + 1;
        let mut window = above;
        window.push(entry);
        window.extend(ranked(&below, next)?);
        Ok((period, window))
    }

    async fn reset_leaderboard(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
    ) -> StoreResult<u64> {
        let c = self.client().await?;
        leaderboard(&c, org, app, board).await?;
        db::execute(
            &c,
            "DELETE FROM score WHERE org_id = $1 AND app_id = $2 AND board = $3",
            &[&org.as_str(), &app.as_str(), &board.as_str()],
        )
        .await
    }

    async fn create_api_key(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        key: NewApiKey,
    ) -> StoreResult<ApiKeyRecord> {
        let c = self.client().await?;
        own_app(&c, org, app).await?;
        let record = ApiKeyRecord {
            id: key.id,
            org_id: org.clone(),
            app_id: app.clone(),
            hash: key.hash,
            created_at: db::now(),
            revoked_at: None,
            data: key.data,
        };
        let stmt = c
            .prepare_cached(&format!(
                "INSERT INTO api_key ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, NULL)"
            ))
            .await
            .map_err(db::err)?;
        c.execute(
            &stmt,
            &[
                &record.id.as_str(),
                &record.org_id.as_str(),
                &record.app_id.as_str(),
                &record.hash.0.as_slice(),
                &db::to_json(&record.data),
                &record.created_at,
            ],
        )
        .await
        .map_err(|e| app_gone_or(e, "an API key with this id already exists"))?;
        Ok(record)
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        let c = self.client().await?;
        db::query_opt(
            &c,
            &format!("SELECT {KEY_COLUMNS} FROM api_key WHERE id = $1"),
            &[&id.as_str()],
        )
        .await?
        .as_ref()
        .map(api_key_from_row)
        .transpose()
    }

    async fn list_api_keys(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<ApiKeyRecord>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT {KEY_COLUMNS} FROM api_key WHERE org_id = {} AND app_id = {}",
            args.push(org.to_string()),
            args.push(app.to_string())
        );
        db::select_page(&c, &select, "id", args, query, api_key_from_row).await
    }

    async fn revoke_api_key(&self, org: &OrgId, app: &ApplicationId, id: &ApiKeyId) -> StoreResult<()> {
        let c = self.client().await?;
        let n = db::execute(
            &c,
            "UPDATE api_key SET revoked_at = $1 WHERE org_id = $2 AND app_id = $3 AND id = $4 AND revoked_at IS NULL",
            &[&db::now(), &org.as_str(), &app.as_str(), &id.as_str()],
        )
        .await?;
        if n == 0 {
            Err(StoreError::NotFound("API key"))
        } else {
            Ok(())
        }
    }

    async fn add_usage(&self, org: &OrgId, day: NaiveDate, count: UsageCount) -> StoreResult<()> {
        let c = self.client().await?;
        db::execute(
            &c,
            "INSERT INTO data_usage (org_id, day, reads, writes, credits) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (org_id, day) DO UPDATE SET reads = data_usage.reads + excluded.reads,
                 writes = data_usage.writes + excluded.writes, credits = data_usage.credits + excluded.credits",
            &[
                &org.as_str(),
                &day,
                &(count.reads as i64),
                &(count.writes as i64),
                &(count.credits as i64),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn list_usage(
        &self,
        org: &OrgId,
        since: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<Vec<UsageDay>> {
        let c = self.client().await?;
        let rows = db::query(
            &c,
            "SELECT day, reads, writes, credits FROM data_usage WHERE org_id = $1 AND day >= $2 AND day <= $3
             ORDER BY day",
            &[&org.as_str(), &since, &until],
        )
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageDay {
                    day: get(r, 0)?,
                    count: UsageCount {
                        reads: get::<i64>(r, 1)?.unsigned_abs(),
                        writes: get::<i64>(r, 2)?.unsigned_abs(),
                        credits: get::<i64>(r, 3)?.unsigned_abs(),
                    },
                })
            })
            .collect()
    }
}

/// [`DataStore::write_document_starting`] inside a transaction the caller commits (a
/// flow's data step commits it with the run's state); the caller announces the change
/// event's deliveries after the commit.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn write_document_in<C: GenericClient>(
    tx: &C,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
    edit: DocumentEdit,
    event_retain_until: DateTime<Utc>,
    runs: &RunsFrom<DocumentWritten>,
) -> StoreResult<DocumentWritten> {
    // FOR SHARE keeps the collection from being deleted under the write.
    let DefinitionSpec::Collection(data) = find_definition(
        tx,
        org,
        app,
        DefinitionKind::Collection,
        collection.as_str(),
        " FOR SHARE",
    )
    .await?
    .spec
    else {
        return Err(StoreError::NotFound("collection"));
    };
    lock_key(tx, &["document", app.as_str(), collection.as_str(), key.as_str()]).await?;
    let before = find_document(tx, org, app, collection, key).await?;
    let plan = plan_document_write(
        collection,
        &data,
        key,
        before,
        edit,
        db::now(),
        event_retain_until,
    )?;
    match plan.write() {
        DocumentWrite::None => {}
        DocumentWrite::Delete => {
            db::execute(
                tx,
                "DELETE FROM document WHERE org_id = $1 AND app_id = $2 AND collection = $3 AND key = $4",
                &[&org.as_str(), &app.as_str(), &collection.as_str(), &key.as_str()],
            )
            .await?;
        }
        DocumentWrite::Upsert(doc) => {
            db::execute(
                tx,
                "INSERT INTO document (app_id, collection, key, org_id, body, version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (app_id, collection, key) DO UPDATE SET
                     body = excluded.body, version = excluded.version, updated_at = excluded.updated_at",
                &[
                    &app.as_str(),
                    &collection.as_str(),
                    &key.as_str(),
                    &org.as_str(),
                    &doc.body,
                    &doc.version,
                    &doc.created_at,
                    &doc.updated_at,
                ],
            )
            .await?;
        }
    }
    let event_deliveries = match plan.event.clone() {
        Some(message) => {
            crate::messages::insert_message(tx, org, app, message, None)
                .await?
                .1
        }
        None => 0,
    };
    let written = plan.written(event_deliveries);
    // Only a change starts runs: a put of the same body is none.
    if written.before != written.after {
        crate::flow_runs::insert_started(tx, org, runs.runs(&written), db::now()).await?;
    }
    Ok(written)
}

/// [`DataStore::submit_score_starting`] inside a transaction the caller commits (a
/// flow's `leaderboard.submit` step commits it with the run's state).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn submit_score_in<C: GenericClient>(
    tx: &C,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
    player: &ItemKey,
    score: i64,
    now: DateTime<Utc>,
    runs: &RunsFrom<ScoreSubmitted>,
) -> StoreResult<ScoreSubmitted> {
    let data = leaderboard(tx, org, app, board).await?;
    let period = period_key(data.reset, now);
    lock_key(
        tx,
        &["score", app.as_str(), board.as_str(), &period, player.as_str()],
    )
    .await?;
    let current = score_entry(tx, org, app, board, &period, player).await?;
    let new = score_to_store(&data, current.as_ref().map(|(e, _)| e.score), score)?;
    let changed = new.is_some();
    if let Some(new) = new {
        db::execute(
            tx,
            "INSERT INTO score (app_id, board, period, player, org_id, score, rank_key, achieved_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (app_id, board, period, player) DO UPDATE SET
                 score = excluded.score, rank_key = excluded.rank_key, achieved_at = excluded.achieved_at",
            &[
                &app.as_str(),
                &board.as_str(),
                &period,
                &player.as_str(),
                &org.as_str(),
                &new,
                &data.order.rank_key(new),
                &db::now(),
            ],
        )
        .await?;
    }
    let (entry, _) = score_entry(tx, org, app, board, &period, player)
        .await?
        .ok_or_else(|| StoreError::Unavailable("a score vanished while it was written".into()))?;
    let submitted = ScoreSubmitted {
        period,
        entry,
        changed,
    };
    crate::flow_runs::insert_started(tx, org, runs.runs(&submitted), now).await?;
    Ok(submitted)
}
