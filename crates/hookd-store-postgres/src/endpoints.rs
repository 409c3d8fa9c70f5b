//! Endpoints of applications.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
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
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json, json_opt, to_json};

pub(crate) const COLUMNS: &str = "id, app_id, uid, url, description, disabled, event_types, channels,
    throttle_rate, metadata, headers, secret, previous_secrets, created_at, updated_at, filter::text,
    transformation";
/// [`COLUMNS`] of the table aliased `e`.
pub(crate) const E_COLUMNS: &str = "e.id, e.app_id, e.uid, e.url, e.description, e.disabled, e.event_types,
    e.channels, e.throttle_rate, e.metadata, e.headers, e.secret, e.previous_secrets, e.created_at, e.updated_at,
    e.filter::text, e.transformation";
/// How many columns [`COLUMNS`] (and [`E_COLUMNS`]) are: what follows them in a row
/// starts there.
pub(crate) const WIDTH: usize = 17;
const UID_TAKEN: &str = "an endpoint with this uid already exists in this application";

/// How a rotated-out secret is kept in the `previous_secrets` JSON column (as on
/// SQLite: milliseconds since the epoch).
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    key: String,
    expires_at: i64,
}

fn parse_secret(s: &str) -> StoreResult<EndpointSecret> {
    s.parse().map_err(|e| db::corrupt("endpoint secret", e))
}

/// A sealed JSON column of the endpoint whose id is `id`, opened.
fn opened<T: serde::de::DeserializeOwned>(
    keys: &Keyring,
    row: &Row,
    idx: usize,
    kind: Sealed,
    id: &str,
) -> StoreResult<T> {
    let place = kind.place(id);
    let value = keys
        .open_json(&json::<serde_json::Value>(row, idx)?, &place)
        .map_err(|_| hookd_store::sealing::unopened(&place))?;
    serde_json::from_value(value).map_err(|e| db::corrupt("endpoint", e))
}

/// An endpoint from the [`COLUMNS`] starting at column `at`, its secrets opened.
pub(crate) fn from_row_at(keys: &Keyring, row: &Row, at: usize) -> StoreResult<Endpoint> {
    let id: String = get(row, at)?;
    let previous: Vec<StoredSecret> = opened(keys, row, at + 12, Sealed::EndpointPreviousSecrets, &id)?;
    let secret_place = Sealed::EndpointSecret.place(&id);
    let secret = keys
        .open(&get::<String>(row, at + 11)?, &secret_place)
        .map_err(|_| hookd_store::sealing::unopened(&secret_place))?;
    Ok(Endpoint {
        app_id: ApplicationId::from_trusted(get(row, at + 1)?),
        data: EndpointData {
            uid: get::<Option<String>>(row, at + 2)?
                .map(|u| u.parse().map_err(|e| db::corrupt("uid", e)))
                .transpose()?,
            url: EndpointUrl::from_stored(&get::<String>(row, at + 3)?)
                .map_err(|e| db::corrupt("endpoint URL", e))?,
            description: get(row, at + 4)?,
            disabled: get(row, at + 5)?,
            event_types: json_opt(row, at + 6)?,
            channels: json_opt(row, at + 7)?,
            throttle_rate: get::<Option<i32>>(row, at + 8)?
                .and_then(|r| ThrottleRate::new(r.clamp(0, i32::from(u16::MAX)) as u16)),
            metadata: json(row, at + 9)?,
            headers: opened(keys, row, at + 10, Sealed::EndpointHeaders, &id)?,
            secret: parse_secret(&secret)?,
            previous_secrets: previous
                .into_iter()
                .map(|p| {
                    Ok(PreviousSecret {
                        secret: parse_secret(&p.key)?,
                        expires_at: DateTime::<Utc>::from_timestamp_millis(p.expires_at).unwrap_or_default(),
                    })
                })
                .collect::<StoreResult<_>>()?,
            filter: get::<Option<String>>(row, at + 15)?.map(FilterText::from_trusted),
            transformation: get::<Option<String>>(row, at + 16)?
                .map(|t| serde_json::from_str(&t).map_err(|e| db::corrupt("endpoint transformation", e)))
                .transpose()?,
        },
        created_at: get(row, at + 13)?,
        updated_at: get(row, at + 14)?,
        id: EndpointId::from_trusted(id),
    })
}

/// The id of endpoint `id_or_uid` of the application (`NotFound` when it has none).
pub(crate) async fn find_id<C: GenericClient>(
    c: &C,
    org: &OrgId,
    app: &ApplicationId,
    id_or_uid: &str,
) -> StoreResult<EndpointId> {
    db::query_opt(
        c,
        "SELECT id FROM endpoint WHERE org_id = $1 AND app_id = $2 AND (id = $3 OR uid = $3)
         ORDER BY (id = $3) DESC LIMIT 1",
        &[&org.as_str(), &app.as_str(), &id_or_uid],
    )
    .await?
    .map(|row| get::<String>(&row, 0).map(EndpointId::from_trusted))
    .transpose()?
    .ok_or(StoreError::NotFound("endpoint"))
}

async fn find<C: GenericClient>(
    c: &C,
    keys: &Keyring,
    org: &OrgId,
    app: &ApplicationId,
    id_or_uid: &str,
    lock: bool,
) -> StoreResult<Endpoint> {
    let sql = format!(
        "SELECT {COLUMNS} FROM endpoint WHERE org_id = $1 AND app_id = $2 AND (id = $3 OR uid = $3)
         ORDER BY (id = $3) DESC LIMIT 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    db::query_opt(c, &sql, &[&org.as_str(), &app.as_str(), &id_or_uid])
        .await?
        .as_ref()
        .map(|row| from_row_at(keys, row, 0))
        .transpose()?
        .ok_or(StoreError::NotFound("endpoint"))
}

async fn write_row<C: GenericClient>(
    c: &C,
    keys: &Keyring,
    org: &OrgId,
    ep: &Endpoint,
    insert: bool,
) -> StoreResult<()> {
    let sql = if insert {
        "INSERT INTO endpoint (uid, url, description, disabled, event_types, channels, throttle_rate, metadata,
             headers, secret, previous_secrets, created_at, updated_at, org_id, app_id, id, filter, transformation)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, ($17::text)::jsonb, $18)"
    } else {
        "UPDATE endpoint SET uid = $1, url = $2, description = $3, disabled = $4, event_types = $5,
             channels = $6, throttle_rate = $7, metadata = $8, headers = $9, secret = $10,
             previous_secrets = $11, created_at = $12, updated_at = $13, filter = ($17::text)::jsonb,
             transformation = $18
         WHERE org_id = $14 AND app_id = $15 AND id = $16"
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
    let stmt = c.prepare_cached(sql).await.map_err(db::err)?;
    c.execute(
        &stmt,
        &[
            &d.uid.as_ref().map(|u| u.as_str()),
            &d.url.as_str(),
            &d.description,
            &d.disabled,
            &d.event_types.as_ref().map(to_json),
            &d.channels.as_ref().map(to_json),
            &d.throttle_rate.map(|r| i32::from(r.get())),
            &to_json(&d.metadata),
            &keys.seal_json(&to_json(&d.headers), &Sealed::EndpointHeaders.place(id)),
            &keys.seal(&d.secret.expose(), &Sealed::EndpointSecret.place(id)),
            &keys.seal_json(&to_json(&previous), &Sealed::EndpointPreviousSecrets.place(id)),
            &ep.created_at,
            &ep.updated_at,
            &org.as_str(),
            &ep.app_id.as_str(),
            &ep.id.as_str(),
            &d.filter.as_ref().map(FilterText::as_str),
            &d.transformation.as_ref().map(|t| to_json(t).to_string()),
        ],
    )
    .await
    .map_err(|e| {
        // The application was deleted between the caller's check and the insert.
        if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) {
            StoreError::NotFound("application")
        } else {
            db::conflict_or(e, UID_TAKEN)
        }
    })?;
    Ok(())
}

#[async_trait]
impl EndpointStore for PgStore {
    async fn create_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        data: EndpointData,
    ) -> StoreResult<Endpoint> {
        let c = self.client().await?;
        // The application must be this organisation's (operational ones included).
        let owned = db::query_opt(
            &c,
            "SELECT 1 FROM application WHERE org_id = $1 AND id = $2",
            &[&org.as_str(), &app.as_str()],
        )
        .await?;
        if owned.is_none() {
            return Err(StoreError::NotFound("application"));
        }
        let now = db::now();
        let ep = Endpoint {
            id: EndpointId::generate(),
            app_id: app.clone(),
            created_at: now,
            updated_at: now,
            data,
        };
        write_row(&c, &self.keyring, org, &ep, true).await?;
        Ok(ep)
    }

    async fn get_endpoint(&self, org: &OrgId, app: &ApplicationId, id_or_uid: &str) -> StoreResult<Endpoint> {
        let c = self.client().await?;
        find(&c, &self.keyring, org, app, id_or_uid, false).await
    }

    async fn failing_endpoints(
        &self,
        org: &OrgId,
        limit: usize,
    ) -> StoreResult<Vec<(Endpoint, DateTime<Utc>)>> {
        let c = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        db::query(
            &c,
            &format!(
                "SELECT {COLUMNS}, failing_since FROM endpoint \
                 WHERE org_id = $1 AND failing_since IS NOT NULL ORDER BY failing_since, id LIMIT $2"
            ),
            &[&org.as_str(), &limit],
        )
        .await?
        .iter()
        .map(|row| Ok((from_row_at(&self.keyring, row, 0)?, get(row, WIDTH)?)))
        .collect()
    }

    async fn list_endpoints(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        query: &ListQuery,
    ) -> StoreResult<Page<Endpoint>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let select = format!(
            "SELECT {COLUMNS} FROM endpoint WHERE org_id = {} AND app_id = {}",
            args.push(org.to_string()),
            args.push(app.to_string())
        );
        db::select_page(&c, &select, "id", args, query, |row| {
            from_row_at(&self.keyring, row, 0)
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut ep = find(&tx, &self.keyring, org, app, id_or_uid, true).await?;
        let before = ep.clone();
        change(&mut ep.data)?;
        ep.updated_at = db::now();
        write_row(&tx, &self.keyring, org, &ep, false).await?;
        // Answer with what was stored.
        let stored = find(&tx, &self.keyring, org, app, ep.id.as_str(), false).await?;
        tx.commit().await.map_err(db::err)?;
        Ok(Updated {
            before,
            after: stored,
        })
    }

    async fn delete_endpoint(
        &self,
        org: &OrgId,
        app: &ApplicationId,
        id_or_uid: &str,
    ) -> StoreResult<Endpoint> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let ep = find(&tx, &self.keyring, org, app, id_or_uid, true).await?;
        db::execute(
            &tx,
            "DELETE FROM endpoint WHERE org_id = $1 AND app_id = $2 AND id = $3",
            &[&org.as_str(), &app.as_str(), &ep.id.as_str()],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(ep)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn width_counts_the_columns() {
        assert_eq!(super::COLUMNS.split(',').count(), super::WIDTH);
        assert_eq!(super::E_COLUMNS.split(',').count(), super::WIDTH);
    }
}
