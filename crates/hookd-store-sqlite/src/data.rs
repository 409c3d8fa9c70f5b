//! The data API: definitions (collections, leaderboards, modes), documents, scores,
//! API keys and usage. Every read-modify-write runs on the single writer, so edits,
//! increments and score policies never race.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use hookd_core::api_token::TokenHash;
use hookd_core::data::period_key;
use hookd_core::id::{ApiKeyId, ApplicationId, OrgId};
use hookd_core::name::{DataName, ItemKey};
use hookd_store::rank_index::IndexKey;
use hookd_store::{
    ApiKeyData, ApiKeyRecord, DataStore, Definition, DefinitionKind, DefinitionSpec, Document, DocumentEdit,
    DocumentFilter, DocumentWrite, DocumentWritten, LeaderboardData, ListQuery, Mutation, NewApiKey, Page,
    Period, RunsFrom, ScoreEntry, ScoreSubmitted, StoreError, StoreResult, UsageCount, UsageDay,
    plan_document_write, score_to_store,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension as _, Row, ToSql, params};

use crate::SqliteStore;
use crate::rank_index::{self, BoardPeriod};
use crate::sql::{self, from_json, from_millis, internal, to_json};

fn definition_from_row(kind: DefinitionKind) -> impl FnMut(&Row<'_>) -> rusqlite::Result<Definition> {
    move |row| {
        let spec: String = row.get(1)?;
        Ok(Definition {
            name: row.get(0)?,
            spec: DefinitionSpec::from_value(kind, from_json(1, &spec)?).map_err(|e| sql::corrupt(1, e))?,
            created_at: from_millis(row.get(2)?),
            updated_at: from_millis(row.get(3)?),
        })
    }
}

fn find_definition(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    kind: DefinitionKind,
    name: &str,
) -> StoreResult<Definition> {
    c.prepare_cached(
        "SELECT name, spec, created_at, updated_at FROM data_definition
         WHERE org_id = ? AND app_id = ? AND kind = ? AND name = ?",
    )
    .and_then(|mut s| {
        s.query_row(
            params![org.as_str(), app.as_str(), kind.as_str(), name],
            definition_from_row(kind),
        )
        .optional()
    })
    .map_err(internal)?
    .ok_or(StoreError::NotFound(kind.as_str()))
}

fn leaderboard(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
) -> StoreResult<LeaderboardData> {
    match find_definition(c, org, app, DefinitionKind::Leaderboard, board.as_str())?.spec {
        DefinitionSpec::Leaderboard(data) => Ok(data),
        _ => Err(StoreError::NotFound("leaderboard")),
    }
}

const DOC_COLUMNS: &str = "key, body, version, created_at, updated_at";

fn document_from_row(row: &Row<'_>) -> rusqlite::Result<Document> {
    sql::named(row, document_from_row_columns)
}

fn document_from_row_columns(row: &Row<'_>) -> rusqlite::Result<Document> {
    Ok(Document {
        key: ItemKey::from_trusted(row.get(0)?),
        body: from_json(1, &row.get::<_, String>(1)?)?,
        version: row.get(2)?,
        created_at: from_millis(row.get(3)?),
        updated_at: from_millis(row.get(4)?),
    })
}

fn find_document(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
) -> StoreResult<Option<Document>> {
    c.prepare_cached(&format!(
        "SELECT {DOC_COLUMNS} FROM document WHERE org_id = ? AND app_id = ? AND collection = ? AND key = ?"
    ))
    .and_then(|mut s| {
        s.query_row(
            params![org.as_str(), app.as_str(), collection.as_str(), key.as_str()],
            document_from_row,
        )
        .optional()
    })
    .map_err(internal)
}

/// A player's current score in `period`: the score, its rank key and when it was
/// reached (milliseconds).
fn score_row(c: &Connection, b: BoardPeriod<'_>, player: &ItemKey) -> StoreResult<Option<(i64, i64, i64)>> {
    c.prepare_cached(
        "SELECT score, rank_key, achieved_at FROM score
         WHERE org_id = ? AND app_id = ? AND board = ? AND period = ? AND player = ?",
    )
    .and_then(|mut s| {
        s.query_row(params![b.org, b.app, b.board, b.period, player.as_str()], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
        })
        .optional()
    })
    .map_err(internal)
}

/// A player's current entry in `period`, with its rank (through the board's rank
/// index), and its rank key. Run it inside one transaction: a rank reads several rows.
fn score_entry(
    c: &Connection,
    b: BoardPeriod<'_>,
    player: &ItemKey,
) -> StoreResult<Option<(ScoreEntry, i64)>> {
    let Some(row) = score_row(c, b, player)? else {
        return Ok(None);
    };
    Ok(Some((ranked_entry(c, b, player, row)?, row.1)))
}

/// A player's entry from its score row (score, rank key, time reached), ranked.
fn ranked_entry(
    c: &Connection,
    b: BoardPeriod<'_>,
    player: &ItemKey,
    (score, rank_key, achieved): (i64, i64, i64),
) -> StoreResult<ScoreEntry> {
    let ahead = rank_index::ahead(c, b, &IndexKey::new(rank_key, achieved), player.as_str())?;
    Ok(ScoreEntry {
        player: player.clone(),
        score,
        rank: ahead + 1,
        achieved_at: from_millis(achieved),
    })
}

fn score_rows(
    c: &Connection,
    sql: &str,
    params: &[&dyn ToSql],
) -> StoreResult<Vec<(ItemKey, i64, DateTime<Utc>)>> {
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.query_map(params, |r| {
                Ok((
                    ItemKey::from_trusted(r.get(0)?),
                    r.get::<_, i64>(1)?,
                    from_millis(r.get(2)?),
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(internal)
}

fn ranked(rows: Vec<(ItemKey, i64, DateTime<Utc>)>, first_rank: u64) -> Vec<ScoreEntry> {
    rows.into_iter()
        .zip(first_rank..)
        .map(|((player, score, achieved_at), rank)| ScoreEntry {
            player,
            score,
            rank,
            achieved_at,
        })
        .collect()
}

fn api_key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    sql::named(row, api_key_from_row_columns)
}

fn api_key_from_row_columns(row: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    let hash: Vec<u8> = row.get(3)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| sql::corrupt(3, std::fmt::Error))?;
    Ok(ApiKeyRecord {
        id: ApiKeyId::from_trusted(row.get(0)?),
        org_id: OrgId::from_trusted(row.get(1)?),
        app_id: ApplicationId::from_trusted(row.get(2)?),
        hash: TokenHash(hash),
        data: from_json::<ApiKeyData>(4, &row.get::<_, String>(4)?)?,
        created_at: from_millis(row.get(5)?),
        revoked_at: row.get::<_, Option<i64>>(6)?.map(from_millis),
    })
}

const KEY_COLUMNS: &str = "id, org_id, app_id, secret_hash, spec, created_at, revoked_at";

/// A foreign-key failure on insert: the application is gone (or never was).
fn app_gone_or(e: rusqlite::Error, conflict: &str) -> StoreError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::NotFound("application")
        }
        _ => sql::conflict_or_internal(e, conflict),
    }
}

/// Checks that `app` is the organisation's (inserts rely on it for tenancy).
fn own_app(c: &Connection, org: &OrgId, app: &ApplicationId) -> StoreResult<()> {
    c.prepare_cached("SELECT 1 FROM application WHERE org_id = ? AND id = ?")
        .and_then(|mut s| s.exists(params![org.as_str(), app.as_str()]))
        .map_err(internal)?
        .then_some(())
        .ok_or(StoreError::NotFound("application"))
}

#[async_trait]
impl DataStore for SqliteStore {
    async fn create_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        name: &str,
        spec: DefinitionSpec,
    ) -> StoreResult<Definition> {
        let (org, app, name) = (org.clone(), app.clone(), name.to_owned());
        self.write(move |c| {
            own_app(c, &org, &app)?;
            let now = sql::now();
            let kind = spec.kind();
            c.prepare_cached(
                "INSERT INTO data_definition (app_id, kind, name, org_id, spec, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    app.as_str(),
                    kind.as_str(),
                    name,
                    org.as_str(),
                    to_json(&spec.to_value()),
                    now.timestamp_millis(),
                    now.timestamp_millis()
                ])
            })
            .map_err(|e| app_gone_or(e, &format!("a {} with this name already exists", kind.as_str())))?;
            Ok(Definition {
                name,
                spec,
                created_at: now,
                updated_at: now,
            })
        })
        .await
    }

    async fn get_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<Definition> {
        let (org, app, name) = (org.clone(), app.clone(), name.to_owned());
        self.read(move |c| find_definition(c, &org, &app, kind, &name))
            .await
    }

    async fn list_definitions(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        query: &ListQuery,
    ) -> StoreResult<Page<Definition>> {
        let (org, app, query) = (org.clone(), app.clone(), query.clone());
        self.read(move |c| {
            sql::select_page(
                c,
                "SELECT name, spec, created_at, updated_at FROM data_definition
                 WHERE org_id = ? AND app_id = ? AND kind = ?",
                "name",
                params![org.as_str(), app.as_str(), kind.as_str()],
                &query,
                definition_from_row(kind),
            )
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
        let (org, app, name) = (org.clone(), app.clone(), name.to_owned());
        self.write(move |c| {
            let mut def = find_definition(c, &org, &app, kind, &name)?;
            change(&mut def.spec)?;
            if def.spec.kind() != kind {
                return Err(StoreError::rejected(
                    "kind",
                    "a definition cannot change its kind",
                ));
            }
            def.updated_at = sql::now();
            c.prepare_cached(
                "UPDATE data_definition SET spec = ?, updated_at = ?
                 WHERE org_id = ? AND app_id = ? AND kind = ? AND name = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    to_json(&def.spec.to_value()),
                    def.updated_at.timestamp_millis(),
                    org.as_str(),
                    app.as_str(),
                    kind.as_str(),
                    name
                ])
            })
            .map_err(internal)?;
            Ok(def)
        })
        .await
    }

    async fn delete_definition(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        kind: DefinitionKind,
        name: &str,
    ) -> StoreResult<()> {
        let (org, app, name) = (org.clone(), app.clone(), name.to_owned());
        self.write(move |c| {
            let deleted = c
                .prepare_cached(
                    "DELETE FROM data_definition WHERE org_id = ? AND app_id = ? AND kind = ? AND name = ?",
                )
                .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), kind.as_str(), name]))
                .map_err(internal)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(kind.as_str()));
            }
            let contents = match kind {
                DefinitionKind::Collection => {
                    "DELETE FROM document WHERE org_id = ? AND app_id = ? AND collection = ?"
                }
                DefinitionKind::Leaderboard => {
                    "DELETE FROM score WHERE org_id = ? AND app_id = ? AND board = ?"
                }
                DefinitionKind::Mode => return Ok(()),
            };
            c.prepare_cached(contents)
                .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), name]))
                .map_err(internal)?;
            if kind == DefinitionKind::Leaderboard {
                rank_index::forget(c, org.as_str(), app.as_str(), &name)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_document(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        key: &ItemKey,
    ) -> StoreResult<Document> {
        let (org, app, collection, key) = (org.clone(), app.clone(), collection.clone(), key.clone());
        self.read(move |c| {
            match find_document(c, &org, &app, &collection, &key)? {
                Some(doc) => Ok(doc),
                None => {
                    // Say which is missing: the collection or the document.
                    find_definition(c, &org, &app, DefinitionKind::Collection, collection.as_str())?;
                    Err(StoreError::NotFound("document"))
                }
            }
        })
        .await
    }

    async fn list_documents(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        collection: &DataName,
        query: &ListQuery,
        filter: &DocumentFilter,
    ) -> StoreResult<Page<Document>> {
        let (org, app, collection, query, filter) = (
            org.clone(),
            app.clone(),
            collection.clone(),
            query.clone(),
            filter.clone(),
        );
        self.read(move |c| {
            find_definition(c, &org, &app, DefinitionKind::Collection, collection.as_str())?;
            let mut select = format!(
                "SELECT {DOC_COLUMNS} FROM document WHERE org_id = ? AND app_id = ? AND collection = ?"
            );
            let mut values = vec![
                SqlValue::Text(org.to_string()),
                SqlValue::Text(app.to_string()),
                SqlValue::Text(collection.to_string()),
            ];
            if let Some(prefix) = &filter.prefix {
                // Keys are ASCII below 0x7f, so every key with the prefix sorts below
                // prefix + DEL.
                select.push_str(" AND key >= ? AND key < ?");
                values.push(SqlValue::Text(prefix.clone()));
                values.push(SqlValue::Text(format!("{prefix}\u{7f}")));
            }
            for (field, value) in &filter.equals {
                // `->` yields the member as JSON text, which is how the body was
                // written (serde_json), so equal values have equal text.
                select.push_str(" AND body -> ? = ?");
                values.push(SqlValue::Text(format!("$.\"{field}\"")));
                values.push(SqlValue::Text(value.to_string()));
            }
            let refs: Vec<&dyn ToSql> = values.iter().map(|v| v as &dyn ToSql).collect();
            sql::select_page(c, &select, "key", &refs, &query, document_from_row)
        })
        .await
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
        let (org, app, collection, key) = (org.clone(), app.clone(), collection.clone(), key.clone());
        self.write(move |c| {
            write_document_in(c, &org, &app, &collection, &key, edit, event_retain_until, &runs)
        })
        .await
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
        let (org, app, board, player) = (org.clone(), app.clone(), board.clone(), player.clone());
        self.write(move |c| submit_score_in(c, &org, &app, &board, &player, score, now, &runs))
            .await
    }

    async fn top_scores(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
        period: &Period,
        limit: usize,
    ) -> StoreResult<(String, Vec<ScoreEntry>)> {
        let (org, app, board) = (org.clone(), app.clone(), board.clone());
        let period = period.clone();
        self.read(move |c| {
            let data = leaderboard(c, &org, &app, &board)?;
            let period = period.key(data.reset);
            let rows = score_rows(
                c,
                "SELECT player, score, achieved_at FROM score
                 WHERE org_id = ? AND app_id = ? AND board = ? AND period = ?
                 ORDER BY rank_key, achieved_at, player LIMIT CAST(? AS INTEGER)",
                params![org.as_str(), app.as_str(), board.as_str(), period, limit as i64],
            )?;
            Ok((period, ranked(rows, 1)))
        })
        .await
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
        let (org, app, board, player) = (org.clone(), app.clone(), board.clone(), player.clone());
        let period = period.clone();
        self.read(move |c| {
            // One snapshot for the rank (several rows of the index) and the neighbours.
            let tx = c.unchecked_transaction().map_err(internal)?;
            let c = &*tx;
            let data = leaderboard(c, &org, &app, &board)?;
            let period = period.key(data.reset);
            let b = BoardPeriod {
                org: org.as_str(),
                app: app.as_str(),
                board: board.as_str(),
                period: &period,
            };
            let (entry, rank_key) = score_entry(c, b, &player)?.ok_or(StoreError::NotFound("score"))?;
            let at = entry.achieved_at.timestamp_millis();
            let mut above = score_rows(
                c,
                "SELECT player, score, achieved_at FROM score
                 WHERE org_id = ? AND app_id = ? AND board = ? AND period = ?
                 AND (rank_key, achieved_at, player) < (?, ?, ?)
                 ORDER BY rank_key DESC, achieved_at DESC, player DESC LIMIT CAST(? AS INTEGER)",
                params![
                    org.as_str(),
                    app.as_str(),
                    board.as_str(),
                    period,
                    rank_key,
                    at,
                    player.as_str(),
                    neighbours as i64
                ],
            )?;
            above.reverse();
            let below = score_rows(
                c,
                "SELECT player, score, achieved_at FROM score
                 WHERE org_id = ? AND app_id = ? AND board = ? AND period = ?
                 AND (rank_key, achieved_at, player) > (?, ?, ?)
                 ORDER BY rank_key, achieved_at, player LIMIT CAST(? AS INTEGER)",
                params![
                    org.as_str(),
                    app.as_str(),
                    board.as_str(),
                    period,
                    rank_key,
                    at,
                    player.as_str(),
                    neighbours as i64
                ],
            )?;
            let first = entry.rank - above.len() as u64;
            let mut window = ranked(above, first);
            let next = entry.rank + 1;
            window.push(entry);
            window.extend(ranked(below, next));
            drop(tx);
            Ok((period, window))
        })
        .await
    }

    async fn reset_leaderboard(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        board: &DataName,
    ) -> StoreResult<u64> {
        let (org, app, board) = (org.clone(), app.clone(), board.clone());
        self.write(move |c| {
            leaderboard(c, &org, &app, &board)?;
            let deleted = c
                .prepare_cached("DELETE FROM score WHERE org_id = ? AND app_id = ? AND board = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), board.as_str()]))
                .map_err(internal)?;
            rank_index::forget(c, org.as_str(), app.as_str(), board.as_str())?;
            Ok(deleted as u64)
        })
        .await
    }

    async fn create_api_key(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        key: NewApiKey,
    ) -> StoreResult<ApiKeyRecord> {
        let (org, app) = (org.clone(), app.clone());
        self.write(move |c| {
            own_app(c, &org, &app)?;
            let record = ApiKeyRecord {
                id: key.id,
                org_id: org,
                app_id: app,
                hash: key.hash,
                created_at: sql::now(),
                revoked_at: None,
                data: key.data,
            };
            c.prepare_cached(&format!(
                "INSERT INTO api_key ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    record.id.as_str(),
                    record.org_id.as_str(),
                    record.app_id.as_str(),
                    record.hash.0.as_slice(),
                    to_json(&record.data),
                    record.created_at.timestamp_millis()
                ])
            })
            .map_err(|e| app_gone_or(e, "an API key with this id already exists"))?;
            Ok(record)
        })
        .await
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {KEY_COLUMNS} FROM api_key WHERE id = ?"))
                .and_then(|mut s| s.query_row([id.as_str()], api_key_from_row).optional())
                .map_err(internal)
        })
        .await
    }

    async fn list_api_keys(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<ApiKeyRecord>> {
        let (org, app, query) = (org.clone(), app.clone(), query.clone());
        self.read(move |c| {
            sql::select_page(
                c,
                &format!("SELECT {KEY_COLUMNS} FROM api_key WHERE org_id = ? AND app_id = ?"),
                "id",
                params![org.as_str(), app.as_str()],
                &query,
                api_key_from_row,
            )
        })
        .await
    }

    async fn revoke_api_key(&self, org: &OrgId, app: &ApplicationId, id: &ApiKeyId) -> StoreResult<()> {
        let (org, app, id) = (org.clone(), app.clone(), id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE api_key SET revoked_at = ? WHERE org_id = ? AND app_id = ? AND id = ? AND revoked_at IS NULL",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        sql::now().timestamp_millis(),
                        org.as_str(),
                        app.as_str(),
                        id.as_str()
                    ])
                })
                .map_err(internal)?;
            if n == 0 {
                Err(StoreError::NotFound("API key"))
            } else {
                Ok(())
            }
        })
        .await
    }

    async fn add_usage(&self, org: &OrgId, day: NaiveDate, count: UsageCount) -> StoreResult<()> {
        let org = org.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO data_usage (org_id, day, reads, writes, credits) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (org_id, day) DO UPDATE SET reads = reads + excluded.reads,
                     writes = writes + excluded.writes, credits = credits + excluded.credits",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.as_str(),
                    day.to_string(),
                    count.reads as i64,
                    count.writes as i64,
                    count.credits as i64
                ])
            })
            .map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn list_usage(
        &self,
        org: &OrgId,
        since: NaiveDate,
        until: NaiveDate,
    ) -> StoreResult<Vec<UsageDay>> {
        let org = org.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT day, reads, writes, credits FROM data_usage WHERE org_id = ? AND day >= ? AND day <= ?
                 ORDER BY day",
            )
            .and_then(|mut s| {
                s.query_map(params![org.as_str(), since.to_string(), until.to_string()], |r| {
                    let day: String = r.get(0)?;
                    Ok(UsageDay {
                        day: day.parse().map_err(|e| sql::corrupt(0, e))?,
                        count: UsageCount {
                            reads: r.get::<_, i64>(1)?.unsigned_abs(),
                            writes: r.get::<_, i64>(2)?.unsigned_abs(),
                            credits: r.get::<_, i64>(3)?.unsigned_abs(),
                        },
                    })
                })?
                .collect()
            })
            .map_err(internal)
        })
        .await
    }
}

/// [`DataStore::write_document_starting`] inside the writer's transaction (a flow's
/// data step commits it with the run's state).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_document_in(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    collection: &DataName,
    key: &ItemKey,
    edit: DocumentEdit,
    event_retain_until: DateTime<Utc>,
    runs: &RunsFrom<DocumentWritten>,
) -> StoreResult<DocumentWritten> {
    let DefinitionSpec::Collection(data) =
        find_definition(c, org, app, DefinitionKind::Collection, collection.as_str())?.spec
    else {
        return Err(StoreError::NotFound("collection"));
    };
    let before = find_document(c, org, app, collection, key)?;
    let plan = plan_document_write(
        collection,
        &data,
        key,
        before,
        edit,
        sql::now(),
        event_retain_until,
    )?;
    match plan.write() {
        DocumentWrite::None => {}
        DocumentWrite::Delete => {
            c.prepare_cached(
                "DELETE FROM document WHERE org_id = ? AND app_id = ? AND collection = ? AND key = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    org.as_str(),
                    app.as_str(),
                    collection.as_str(),
                    key.as_str()
                ])
            })
            .map_err(internal)?;
        }
        DocumentWrite::Upsert(doc) => {
            c.prepare_cached(
                    "INSERT INTO document (app_id, collection, key, org_id, body, version, created_at, updated_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                     ON CONFLICT (app_id, collection, key) DO UPDATE SET
                         body = excluded.body, version = excluded.version, updated_at = excluded.updated_at",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        app.as_str(),
                        collection.as_str(),
                        key.as_str(),
                        org.as_str(),
                        to_json(&doc.body),
                        doc.version,
                        doc.created_at.timestamp_millis(),
                        doc.updated_at.timestamp_millis()
                    ])
                })
                .map_err(internal)?;
        }
    }
    let event_deliveries = match plan.event.clone() {
        Some(message) => crate::messages::insert_message(c, org, app, message, None)?.1,
        None => 0,
    };
    let written = plan.written(event_deliveries);
    // Only a change starts runs: a put of the same body is none.
    if written.before != written.after {
        crate::flow_runs::insert_started(c, org, runs.runs(&written), sql::now())?;
    }
    Ok(written)
}

/// [`DataStore::submit_score_starting`] inside the writer's transaction (a flow's
/// `leaderboard.submit` step commits it with the run's state).
#[allow(clippy::too_many_arguments)]
pub(crate) fn submit_score_in(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    board: &DataName,
    player: &ItemKey,
    score: i64,
    now: DateTime<Utc>,
    runs: &RunsFrom<ScoreSubmitted>,
) -> StoreResult<ScoreSubmitted> {
    let data = leaderboard(c, org, app, board)?;
    let period = period_key(data.reset, now);
    let b = BoardPeriod {
        org: org.as_str(),
        app: app.as_str(),
        board: board.as_str(),
        period: &period,
    };
    let current = score_row(c, b, player)?;
    let new = score_to_store(&data, current.map(|(score, _, _)| score), score)?;
    let changed = new.is_some();
    // The row the player has now: the one written below, or the one read above.
    let row = if let Some(new) = new {
        let rank_key = data.order.rank_key(new);
        let achieved = sql::now().timestamp_millis();
        c.prepare_cached(
            "INSERT INTO score (app_id, board, period, player, org_id, score, rank_key, achieved_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (app_id, board, period, player) DO UPDATE SET
                 score = excluded.score, rank_key = excluded.rank_key, achieved_at = excluded.achieved_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                app.as_str(),
                board.as_str(),
                period,
                player.as_str(),
                org.as_str(),
                new,
                rank_key,
                achieved
            ])
        })
        .map_err(internal)?;
        let old = current.map(|(_, rank_key, achieved)| IndexKey::new(rank_key, achieved));
        rank_index::move_key(c, b, old, IndexKey::new(rank_key, achieved))?;
        (new, rank_key, achieved)
    } else {
        // The policy keeps a score only a player who has one can keep.
        current.ok_or_else(|| {
            StoreError::Unavailable("a submission kept a score the player does not have".into())
        })?
    };
    let entry = ranked_entry(c, b, player, row)?;
    let submitted = ScoreSubmitted {
        period,
        entry,
        changed,
    };
    crate::flow_runs::insert_started(c, org, runs.runs(&submitted), now)?;
    Ok(submitted)
}
