//! Applications.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use hookd_core::id::{ApplicationId, OrgId};
use hookd_core::throttle::ThrottleRate;
use hookd_store::{
    Application, ApplicationData, ApplicationFilter, ApplicationStore, ListQuery, Mutation, Page, StoreError,
    StoreResult, Updated,
};
use tokio_postgres::Row;

use crate::PgStore;
use crate::db::{self, Args, get, json, to_json};

const COLUMNS: &str = "id, uid, name, throttle_rate, metadata, created_at, updated_at";
const UID_TAKEN: &str = "an application with this uid already exists";

fn from_row(row: &Row) -> StoreResult<Application> {
    Ok(Application {
        id: ApplicationId::from_trusted(get(row, 0)?),
        data: ApplicationData {
            uid: get::<Option<String>>(row, 1)?
                .map(|u| u.parse().map_err(|e| db::corrupt("uid", e)))
                .transpose()?,
            name: get(row, 2)?,
            throttle_rate: get::<Option<i32>>(row, 3)?
                .and_then(|r| ThrottleRate::new(r.clamp(0, i32::from(u16::MAX)) as u16)),
            metadata: json(row, 4)?,
        },
        created_at: get(row, 5)?,
        updated_at: get(row, 6)?,
    })
}

/// Finds an application of `org` by id, or else by uid; `lock` takes its row for the
/// rest of the transaction.
async fn find<C: GenericClient>(c: &C, org: &OrgId, id_or_uid: &str, lock: bool) -> StoreResult<Application> {
    let sql = format!(
        "SELECT {COLUMNS} FROM application WHERE org_id = $1 AND operational = 0 AND (id = $2 OR uid = $2)
         ORDER BY (id = $2) DESC LIMIT 1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    db::query_opt(c, &sql, &[&org.as_str(), &id_or_uid])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or(StoreError::NotFound("application"))
}

#[async_trait]
impl ApplicationStore for PgStore {
    async fn create_application(&self, org: &OrgId, data: ApplicationData) -> StoreResult<Application> {
        let c = self.client().await?;
        let now = db::now();
        let app = Application {
            id: ApplicationId::generate(),
            created_at: now,
            updated_at: now,
            data,
        };
        db::execute_unique(
            &c,
            "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            &[
                &app.id.as_str(),
                &org.as_str(),
                &app.data.uid.as_ref().map(|u| u.as_str()),
                &app.data.name,
                &app.data.throttle_rate.map(|r| i32::from(r.get())),
                &to_json(&app.data.metadata),
                &now,
            ],
            UID_TAKEN,
        )
        .await?;
        Ok(app)
    }

    async fn get_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application> {
        let c = self.client().await?;
        find(&c, org, id_or_uid, false).await
    }

    async fn list_applications(
        &self,
        org: &OrgId,
        query: &ListQuery,
        filter: ApplicationFilter,
    ) -> StoreResult<Page<Application>> {
        let c = self.client().await?;
        let mut args = Args::default();
        let mut select = format!(
            "SELECT {COLUMNS} FROM application WHERE org_id = {} AND operational = 0",
            args.push(org.to_string())
        );
        if filter.exclude_without_endpoints {
            select.push_str(
                " AND EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                  AND e.app_id = application.id)",
            );
        }
        if filter.exclude_all_endpoints_disabled {
            select.push_str(
                " AND NOT (EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                      AND e.app_id = application.id)
                  AND NOT EXISTS (SELECT 1 FROM endpoint e WHERE e.org_id = application.org_id
                      AND e.app_id = application.id AND NOT e.disabled))",
            );
        }
        db::select_page(&c, &select, "id", args, query, from_row).await
    }

    async fn update_application(
        &self,
        org: &OrgId,
        id_or_uid: &str,
        change: Mutation<ApplicationData>,
    ) -> StoreResult<Updated<Application>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let mut app = find(&tx, org, id_or_uid, true).await?;
        let before = app.clone();
        change(&mut app.data)?;
        app.updated_at = db::now();
        db::execute_unique(
            &tx,
            "UPDATE application SET uid = $1, name = $2, throttle_rate = $3, metadata = $4, updated_at = $5
             WHERE org_id = $6 AND id = $7",
            &[
                &app.data.uid.as_ref().map(|u| u.as_str()),
                &app.data.name,
                &app.data.throttle_rate.map(|r| i32::from(r.get())),
                &to_json(&app.data.metadata),
                &app.updated_at,
                &org.as_str(),
                &app.id.as_str(),
            ],
            UID_TAKEN,
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(Updated { before, after: app })
    }

    async fn delete_application(&self, org: &OrgId, id_or_uid: &str) -> StoreResult<Application> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(db::err)?;
        let app = find(&tx, org, id_or_uid, true).await?;
        db::execute(
            &tx,
            "DELETE FROM application WHERE org_id = $1 AND id = $2",
            &[&org.as_str(), &app.id.as_str()],
        )
        .await?;
        tx.commit().await.map_err(db::err)?;
        Ok(app)
    }

    async fn operational_app(&self, org: &OrgId) -> StoreResult<ApplicationId> {
        const FIND: &str = "SELECT id FROM application WHERE org_id = $1 AND operational = 1";
        let c = self.client().await?;
        if let Some(row) = db::query_opt(&c, FIND, &[&org.as_str()]).await? {
            return Ok(ApplicationId::from_trusted(get(&row, 0)?));
        }
        let now = db::now();
        db::execute(
            &c,
            "INSERT INTO application (id, org_id, uid, name, throttle_rate, metadata, created_at, updated_at, operational)
             VALUES ($1, $2, NULL, 'Operational webhooks', NULL, '{}', $3, $3, 1)
             ON CONFLICT (org_id) WHERE operational = 1 DO NOTHING",
            &[&ApplicationId::generate().as_str(), &org.as_str(), &now],
        )
        .await?;
        let row = db::query_opt(&c, FIND, &[&org.as_str()])
            .await?
            .ok_or(StoreError::NotFound("operational application"))?;
        Ok(ApplicationId::from_trusted(get(&row, 0)?))
    }
}
