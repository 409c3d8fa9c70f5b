//! Endpoints of applications.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use hookd_core::endpoint_url::EndpointUrl;
use hookd_core::filter::FilterText;
use hookd_core::id::{ApplicationId, EndpointId, OrgId};
use hookd_core::secret::EndpointSecret;
use hookd_core::throttle::ThrottleRate;
use hookd_store::sealing::{Keyring, Sealed};
use hookd_store::{
    Endpoint, EndpointData, EndpointStore, ListQuery, Mutation, Page, PreviousSecret, StoreError,
    StoreResult, Updated,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use serde::{Deserialize, Serialize};

use crate::SqliteStore;
use crate::secrets::seal;
use crate::sql::{self, from_json, from_millis, internal, to_json};

/// The sealed columns are read opened (`secrets::register`).
const COLUMNS: &str = "id, app_id, uid, url, description, disabled, event_types, channels, throttle_rate,
    metadata, hookd_open(headers, 'endpoint-headers', id), hookd_open(secret, 'endpoint-secret', id),
    hookd_open(previous_secrets, 'endpoint-previous-secrets', id), created_at, updated_at, filter, transformation";
const UID_TAKEN: &str = "an endpoint with this uid already exists in this application";

/// How a rotated-out secret is kept in the `previous_secrets` JSON column.
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    key: String,
    expires_at: i64,
}

fn parse_secret(idx: usize, s: &str) -> rusqlite::Result<EndpointSecret> {
    s.parse().map_err(|e| sql::corrupt(idx, e))
}

fn from_row(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let previous: Vec<StoredSecret> = from_json(12, &row.get::<_, String>(12)?)?;
    Ok(Endpoint {
        id: EndpointId::from_trusted(row.get(0)?),
        app_id: ApplicationId::from_trusted(row.get(1)?),
        data: EndpointData {
            uid: row
                .get::<_, Option<String>>(2)?
                .map(|u| u.parse().map_err(|e| sql::corrupt(2, e)))
                .transpose()?,
            url: EndpointUrl::from_stored(&row.get::<_, String>(3)?).map_err(|e| sql::corrupt(3, e))?,
            description: row.get(4)?,
            disabled: row.get(5)?,
            event_types: row
                .get::<_, Option<String>>(6)?
                .map(|s| from_json(6, &s))
                .transpose()?,
            channels: row
                .get::<_, Option<String>>(7)?
                .map(|s| from_json(7, &s))
                .transpose()?,
            throttle_rate: row.get::<_, Option<u16>>(8)?.and_then(ThrottleRate::new),
            metadata: from_json(9, &row.get::<_, String>(9)?)?,
            headers: from_json(10, &row.get::<_, String>(10)?)?,
            secret: parse_secret(11, &row.get::<_, String>(11)?)?,
            previous_secrets: previous
                .into_iter()
                .map(|p| {
                    Ok(PreviousSecret {
                        secret: parse_secret(12, &p.key)?,
                        expires_at: from_millis(p.expires_at),
                    })
                })
                .collect::<rusqlite::Result<_>>()?,
            filter: row.get::<_, Option<String>>(15)?.map(FilterText::from_trusted),
            transformation: row
                .get::<_, Option<String>>(16)?
                .map(|t| from_json(16, &t))
                .transpose()?,
        },
        created_at: from_millis(row.get(13)?),
        updated_at: from_millis(row.get(14)?),
    })
}

pub(crate) fn find(
    c: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    id_or_uid: &str,
) -> StoreResult<Endpoint> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoint WHERE org_id = ?1 AND app_id = ?2 AND (id = ?3 OR uid = ?3)
         ORDER BY id = ?3 DESC LIMIT 1"
    ))
    .and_then(|mut s| {
        s.query_row(params![org.as_str(), app.as_str(), id_or_uid], from_row)
            .optional()
    })
    .map_err(internal)?
    .ok_or(StoreError::NotFound("endpoint"))
}

fn write_row(c: &Connection, keys: &Keyring, org: &OrgId, ep: &Endpoint, insert: bool) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO endpoint (uid, url, description, disabled, event_types, channels, throttle_rate, metadata,
             headers, secret, previous_secrets, created_at, updated_at, filter, transformation, org_id, app_id, id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    } else {
        "UPDATE endpoint SET uid = ?, url = ?, description = ?, disabled = ?, event_types = ?, channels = ?,
             throttle_rate = ?, metadata = ?, headers = ?, secret = ?, previous_secrets = ?, created_at = ?,
             updated_at = ?, filter = ?, transformation = ?
         WHERE org_id = ? AND app_id = ? AND id = ?"
    };
    let d = &ep.data;
    let previous: Vec<StoredSecret> = d
        .previous_secrets
        .iter()
        .map(|p| StoredSecret {
            key: p.secret.expose(),
            expires_at: p.expires_at.timestamp_millis(),
        })
        .collect();
    let id = ep.id.as_str();
    c.prepare_cached(sql)
        .and_then(|mut s| {
            s.execute(params![
                d.uid.as_ref().map(|u| u.as_str()),
                d.url.as_str(),
                d.description,
                d.disabled,
                d.event_types.as_ref().map(to_json),
                d.channels.as_ref().map(to_json),
                d.throttle_rate.map(ThrottleRate::get),
                to_json(&d.metadata),
                seal(keys, Sealed::EndpointHeaders, id, &to_json(&d.headers)),
                seal(keys, Sealed::EndpointSecret, id, &d.secret.expose()),
                seal(keys, Sealed::EndpointPreviousSecrets, id, &to_json(&previous)),
                ep.created_at.timestamp_millis(),
                ep.updated_at.timestamp_millis(),
                d.filter.as_ref().map(FilterText::as_str),
                d.transformation.as_ref().map(to_json),
                org.as_str(),
                ep.app_id.as_str(),
                ep.id.as_str(),
            ])
        })
        .map_err(|e| sql::conflict_or_internal(e, UID_TAKEN))?;
    Ok(())
}

#[async_trait]
impl EndpointStore for SqliteStore {
    async fn create_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        data: EndpointData,
    ) -> StoreResult<Endpoint> {
        let (org, app, keys) = (org.clone(), app.clone(), Arc::clone(&self.keyring));
        self.write(move |c| {
            // The application must be this organisation's (operational ones included).
            let owned = c
                .prepare_cached("SELECT 1 FROM application WHERE org_id = ? AND id = ?")
                .and_then(|mut s| s.exists(params![org.as_str(), app.as_str()]))
                .map_err(internal)?;
            if !owned {
                return Err(StoreError::NotFound("application"));
            }
            let now = sql::now();
            let ep = Endpoint {
                id: EndpointId::generate(),
                app_id: app,
                created_at: now,
                updated_at: now,
                data,
            };
            write_row(c, &keys, &org, &ep, true)?;
            Ok(ep)
        })
        .await
    }

    async fn get_endpoint(&self, org: &OrgId, app: &ApplicationId, id_or_uid: &str) -> StoreResult<Endpoint> {
        let (org, app, key) = (org.clone(), app.clone(), id_or_uid.to_owned());
        self.read(move |c| find(c, &org, &app, &key)).await
    }

    async fn failing_endpoints(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> StoreResult<Vec<(Endpoint, DateTime<Utc>)>> {
        let org = org.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |c| {
            let mut s = c
                .prepare_cached(&format!(
                    "SELECT {COLUMNS}, failing_since FROM endpoint \
                     WHERE org_id = ? AND failing_since IS NOT NULL ORDER BY failing_since, id LIMIT CAST(? AS INTEGER)"
                ))
                .map_err(internal)?;
            s.query_map(params![org.as_str(), limit], |row| {
                Ok((from_row(row)?, from_millis(row.get(17)?)))
            })
            .and_then(|rows| rows.collect())
            .map_err(internal)
        })
        .await
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<Endpoint>> {
        let (org, app, query) = (org.clone(), app.clone(), query.clone());
        self.read(move |c| {
            let select = format!("SELECT {COLUMNS} FROM endpoint WHERE org_id = ? AND app_id = ?");
            sql::select_page(
                c,
                &select,
                "id",
                params![org.as_str(), app.as_str()],
                &query,
                from_row,
            )
        })
        .await
    }

    async fn update_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_uid: &str,
        change: Mutation<EndpointData>,
    ) -> StoreResult<Updated<Endpoint>> {
        let (org, app, key) = (org.clone(), app.clone(), id_or_uid.to_owned());
        let keys = Arc::clone(&self.keyring);
        self.write(move |c| {
            let mut ep = find(c, &org, &app, &key)?;
            let before = ep.clone();
            change(&mut ep.data)?;
            ep.updated_at = sql::now();
            write_row(c, &keys, &org, &ep, false)?;
            // Answer with what was stored (times at the database's precision).
            let after = find(c, &org, &app, ep.id.as_str())?;
            Ok(Updated { before, after })
        })
        .await
    }

    async fn delete_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_uid: &str,
    ) -> StoreResult<Endpoint> {
        let (org, app, key) = (org.clone(), app.clone(), id_or_uid.to_owned());
        self.write(move |c| {
            let ep = find(c, &org, &app, &key)?;
            c.prepare_cached("DELETE FROM endpoint WHERE org_id = ? AND app_id = ? AND id = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), app.as_str(), ep.id.as_str()]))
                .map_err(internal)?;
            Ok(ep)
        })
        .await
    }
}
