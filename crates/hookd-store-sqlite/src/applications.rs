//! Applications.

use async_trait::async_trait;
use hookd_core::id::{ApplicationId, OrgId};
use hookd_core::throttle::ThrottleRate;
use hookd_store::{
    Application, ApplicationData, ApplicationFilter, ApplicationStore, ListQuery, Mutation, Page, StoreError,
    StoreResult, Updated,
};
use rusqlite::{Connection, OptionalExtension as _, Row, params};

use crate::SqliteStore;
use crate::sql::{self, from_json, from_millis, internal, to_json};

const COLUMNS: &str = "id, uid, name, throttle_rate, metadata, created_at, updated_at";
const UID_TAKEN: &str = "an application with this uid already exists";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Application> {
    sql::named(row, from_row_columns)
}

fn from_row_columns(row: &Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: ApplicationId::from_trusted(row.get(0)?),
        data: ApplicationData {
            uid: row
                .get::<_, Option<String>>(1)?
                .map(|u| u.parse().map_err(|e| sql::corrupt(1, e)))
                .transpose()?,
            name: row.get(2)?,
            throttle_rate: row.get::<_, Option<u16>>(3)?.and_then(ThrottleRate::new),
            metadata: from_json(4, &row.get::<_, String>(4)?)?,
        },
        created_at: from_millis(row.get(5)?),
        updated_at: from_millis(row.get(6)?),
    })
}

/// Finds an application of `org` by id, or else by uid.
pub(crate) fn find(c: &Connection, org: &OrgId, id_or_uid: &str) -> StoreResult<Application> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM application WHERE org_id = ?1 AND operational = 0 AND (id = ?2 OR uid = ?2)
         ORDER BY id = ?2 DESC LIMIT 1"
    ))
    .and_then(|mut s| s.query_row(params![org.as_str(), id_or_uid], from_row).optional())
    .map_err(internal)?
    .ok_or(StoreError::NotFound("application"))
}

#[async_trait]
impl ApplicationStore for SqliteStore {
    async fn create_application(&self, org: &OrgId, data: ApplicationData) -> StoreResult<Application> {
        let org = org.clone();
        self.write(move |c| {
            let now = sql::now();
            let app = Application {
                id: ApplicationId::generate(),
                created_at: now,
                updated_at: now,
                data,
            };
            c.prepare_cached(
                "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    app.id.as_str(),
                    org.as_str(),
                    app.data.uid.as_ref().map(|u| u.as_str()),
                    app.data.name,
                    app.data.throttle_rate.map(ThrottleRate::get),
                    to_json(&app.data.metadata),
                    now.timestamp_millis(),
                    now.timestamp_millis(),
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, UID_TAKEN))?;
            Ok(app)
        })
        .await
    }

    async fn get_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        self.read(move |c| find(c, &org, &key)).await
    }

    async fn list_applications(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: ApplicationFilter,
    ) -> StoreResult<Page<Application>> {
        let (org, query) = (org.clone(), query.clone());
        self.read(move |c| {
            let mut filters = String::new();
            if filter.exclude_without_endpoints {
                filters.push_str(
                    " AND EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                      AND e.app_id = application.id)",
                );
            }
            if filter.exclude_all_endpoints_disabled {
                filters.push_str(
                    " AND NOT (EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                          AND e.app_id = application.id)
                      AND NOT EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                          AND e.app_id = application.id AND e.disabled = 0))",
                );
            }
            let select =
                format!("SELECT {COLUMNS} FROM application WHERE org_id = ? AND operational = 0{filters}");
            sql::select_page(c, &select, "id", params![org.as_str()], &query, from_row)
        })
        .await
    }

    async fn update_application(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<ApplicationData>,
    ) -> StoreResult<Updated<Application>> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        self.write(move |c| {
            let mut app = find(c, &org, &key)?;
            let before = app.clone();
            change(&mut app.data)?;
            app.updated_at = sql::now();
            c.prepare_cached(
                "UPDATE application SET uid = ?, name = ?, throttle_rate = ?, metadata = ?, updated_at = ?
                 WHERE org_id = ? AND id = ?",
            )
            .and_then(|mut s| {
                s.execute(params![
                    app.data.uid.as_ref().map(|u| u.as_str()),
                    app.data.name,
                    app.data.throttle_rate.map(ThrottleRate::get),
                    to_json(&app.data.metadata),
                    app.updated_at.timestamp_millis(),
                    org.as_str(),
                    app.id.as_str(),
                ])
            })
            .map_err(|e| sql::conflict_or_internal(e, UID_TAKEN))?;
            Ok(Updated { before, after: app })
        })
        .await
    }

    async fn delete_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application> {
        let (org, key) = (org.clone(), id_or_uid.to_owned());
        self.write(move |c| {
            let app = find(c, &org, &key)?;
            c.prepare_cached("DELETE FROM application WHERE org_id = ? AND id = ?")
                .and_then(|mut s| s.execute(params![org.as_str(), app.id.as_str()]))
                .map_err(internal)?;
            Ok(app)
        })
        .await
    }

    async fn operational_app(&self, org: &OrgId) -> StoreResult<ApplicationId> {
        const FIND: &str = "SELECT id FROM application WHERE org_id = ? AND operational = 1";
        // It exists after the first call: a read, not a write transaction, every time after.
        let key = org.clone();
        let found = self
            .read(move |c| {
                c.prepare_cached(FIND)
                    .and_then(|mut s| s.query_row([key.as_str()], |r| r.get::<_, String>(0)).optional())
                    .map_err(internal)
            })
            .await?;
        if let Some(id) = found {
            return Ok(ApplicationId::from_trusted(id));
        }
        let org = org.clone();
        self.write(move |c| {
            let now = sql::now().timestamp_millis();
            c.prepare_cached(
                "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at, operational)
                 VALUES (?, ?, NULL, 'Operational webhooks', NULL, '{}', ?, ?, 1)
                 ON CONFLICT (org_id) WHERE operational = 1 DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![ApplicationId::generate().as_str(), org.as_str(), now, now]))
            .map_err(internal)?;
            c.prepare_cached(FIND)
                .and_then(|mut s| s.query_row([org.as_str()], |r| r.get::<_, String>(0)))
                .map(ApplicationId::from_trusted)
                .map_err(internal)
        })
        .await
    }
}
