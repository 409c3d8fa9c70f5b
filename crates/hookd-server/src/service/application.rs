//! Applications: create (optionally get-if-exists), replace, change and delete, each
//! clearing the application lookups and raising its `app.*` operational event.

use std::collections::BTreeMap;

use hookd_core::id::{ApplicationId, OrgId};
use hookd_core::name::Uid;
use hookd_core::throttle::ThrottleRate;
use hookd_dispatch::events::OperationalEvent;
use hookd_store::{Application, ApplicationData, StoreError};

use crate::http::error::{ApiError, ApiResult};
use crate::service::{Service, events, upsert};

/// A checked PATCH of an application: `None` keeps a field.
#[derive(Debug, Default)]
pub struct ApplicationChange {
    pub name: Option<String>,
    /// `Some(None)` removes the limit.
    pub throttle_rate: Option<Option<ThrottleRate>>,
    /// `Some(None)` removes the uid.
    pub uid: Option<Option<Uid>>,
    pub metadata: Option<BTreeMap<String, String>>,
}

impl ApplicationChange {
    fn apply(self, d: &mut ApplicationData) {
        if let Some(name) = self.name {
            d.name = name;
        }
        if let Some(rate) = self.throttle_rate {
            d.throttle_rate = rate;
        }
        if let Some(uid) = self.uid {
            d.uid = uid;
        }
        if let Some(m) = self.metadata {
            d.metadata = m;
        }
    }
}

async fn app_event(state: &Service, org: &OrgId, kind: &'static str, app: &Application) {
    events::emit(
        state,
        org,
        OperationalEvent::app(kind, &app.id, app.data.uid.as_ref()),
    )
    .await;
}

/// Creates an application; with `get_if_exists`, an existing one with the same uid is
/// answered instead (`false`: nothing was created).
pub async fn create(
    state: &Service,
    org: &OrgId,
    data: ApplicationData,
    get_if_exists: bool,
) -> ApiResult<(Application, bool)> {
    let store = &state.store;
    let existing = async |uid: &Option<Uid>| match uid {
        Some(uid) if get_if_exists => match store.get_application(org, uid.as_str()).await {
            Ok(app) => Ok(Some(app)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(ApiError::from(e)),
        },
        _ => Ok(None),
    };
    if let Some(app) = existing(&data.uid).await? {
        return Ok((app, false));
    }
    let uid = data.uid.clone();
    match store.create_application(org, data).await {
        Ok(app) => {
            app_event(state, org, "app.created", &app).await;
            Ok((app, true))
        }
        // Created concurrently by someone else between our look-up and insert.
        Err(StoreError::Conflict(m)) => match existing(&uid).await? {
            Some(app) => Ok((app, false)),
            None => Err(ApiError::Conflict(m)),
        },
        Err(e) => Err(e.into()),
    }
}

/// Creates or replaces the application `key` (id or uid); creating by a uid-shaped
/// key gives it that uid, and a replace without a uid keeps the one it has.
pub async fn replace(
    state: &Service,
    org: &OrgId,
    key: &str,
    data: ApplicationData,
) -> ApiResult<(Application, bool)> {
    let store = &state.store;
    let replace = |d: ApplicationData| {
        store.update_application(
            org,
            key,
            Box::new(move |cur: &mut ApplicationData| {
                let uid = d.uid.or_else(|| cur.uid.take());
                *cur = ApplicationData { uid, ..d };
                Ok(())
            }),
        )
    };
    let mut create_data = data.clone();
    if create_data.uid.is_none() && !ApplicationId::is_valid(key) {
        create_data.uid = Some(
            key.parse()
                .map_err(|e: hookd_core::InvalidValue| ApiError::invalid(&["body", "uid"], e.message))?,
        );
    }
    let (app, created) = upsert(
        || async { replace(data.clone()).await.map(|u| u.after) },
        || async {
            if ApplicationId::is_valid(key) {
                // Ids are made by the server: a missing id cannot be created.
                return Err(StoreError::NotFound("application"));
            }
            store.create_application(org, create_data).await
        },
    )
    .await?;
    state.lookups.apps.clear();
    state.lookups.sources.clear();
    let kind = if created { "app.created" } else { "app.updated" };
    app_event(state, org, kind, &app).await;
    Ok((app, created))
}

/// Changes some fields of the application `key`.
pub async fn change(
    state: &Service,
    org: &OrgId,
    key: &str,
    change: ApplicationChange,
) -> ApiResult<Application> {
    let updated = state
        .store
        .update_application(
            org,
            key,
            Box::new(move |d| {
                change.apply(d);
                Ok(())
            }),
        )
        .await?;
    state.lookups.apps.clear();
    state.lookups.sources.clear();
    app_event(state, org, "app.updated", &updated.after).await;
    Ok(updated.after)
}

/// Deletes the application `key` with its endpoints.
pub async fn delete(state: &Service, org: &OrgId, key: &str) -> ApiResult<()> {
    let app = state.store.delete_application(org, key).await?;
    state.lookups.apps.clear();
    state.lookups.sources.clear();
    app_event(state, org, "app.deleted", &app).await;
    Ok(())
}
