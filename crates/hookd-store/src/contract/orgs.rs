//! Contract checks: Organisations and API tokens.

#![allow(clippy::unwrap_used)]

use super::*;

pub async fn orgs_are_created_once(store: &dyn Store) {
    let first = store.ensure_org("acme").await.unwrap();
    let again = store.ensure_org("acme").await.unwrap();
    assert_eq!(first, again);
    assert_eq!(store.find_org("acme").await.unwrap(), Some(first.clone()));
    assert_eq!(store.find_org(first.id.as_str()).await.unwrap(), Some(first));
    assert_eq!(store.find_org("nobody").await.unwrap(), None);
}

pub async fn tokens_are_found_by_id_and_revoked(store: &dyn Store) {
    let org = store.ensure_org("tokens").await.unwrap().id;
    let token = ApiToken::generate();
    let record = store
        .create_token(
            &org,
            NewToken {
                id: token.id.clone(),
                name: "ci".into(),
                hash: token.hash(),
            },
        )
        .await
        .unwrap();
    assert_eq!(record.org_id, org);
    let found = store.find_token(&token.id).await.unwrap().unwrap();
    assert!(token.matches(&found.hash));
    assert_eq!(found.revoked_at, None);
    assert_eq!(store.list_tokens(&org).await.unwrap().len(), 1);

    let other = store.ensure_org("tokens-other").await.unwrap().id;
    assert!(matches!(
        store.revoke_token(&other, &token.id).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_token(&org, &token.id).await.unwrap();
    assert!(
        store
            .find_token(&token.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        store.revoke_token(&org, &token.id).await,
        Err(StoreError::NotFound(_))
    ));
}

fn new_session(
    kind: UiSessionKind,
    app: Option<ApplicationId>,
    session_id: Option<&str>,
) -> (UiCredential, NewUiSession) {
    let credential = UiCredential::generate();
    let new = NewUiSession {
        id: credential.id.clone(),
        hash: credential.hash(),
        kind,
        app_id: app,
        grants: UiSessionGrants {
            capabilities: vec!["ViewBase".into()],
            feature_flags: vec![],
            session_id: session_id.map(str::to_owned),
        },
        expires_at: Utc::now() + chrono::Duration::hours(1),
    };
    (credential, new)
}

pub async fn ui_sign_in_links_work_once_and_portal_sessions_expire_per_app(store: &dyn Store) {
    let org = store.ensure_org("ui").await.unwrap().id;
    let other = store.ensure_org("ui-other").await.unwrap().id;
    let app = store
        .create_application(&org, app_data("portal", None))
        .await
        .unwrap()
        .id;
    let app2 = store
        .create_application(&org, app_data("portal-2", None))
        .await
        .unwrap()
        .id;

    // A sign-in link: found by id, matches its secret, used once.
    let (link, new) = new_session(UiSessionKind::SignInLink, None, None);
    let stored = store.create_ui_session(&org, new).await.unwrap();
    let found = store.find_ui_session(&link.id).await.unwrap().unwrap();
    assert_eq!(found, stored);
    assert!(link.matches(&found.hash));
    assert!(found.live(Utc::now()));
    assert!(store.use_sign_in_link(&link.id, Utc::now()).await.unwrap());
    assert!(!store.use_sign_in_link(&link.id, Utc::now()).await.unwrap());
    assert!(
        !store
            .find_ui_session(&link.id)
            .await
            .unwrap()
            .unwrap()
            .live(Utc::now())
    );

    // Operator sessions have no link; an expired link is refused.
    let (operator, new) = new_session(UiSessionKind::Operator, None, None);
    store.create_ui_session(&org, new).await.unwrap();
    assert!(!store.use_sign_in_link(&operator.id, Utc::now()).await.unwrap());
    // A portal session's link is followed once, and the session lives on.
    let (portal, new) = new_session(UiSessionKind::Portal, Some(app2.clone()), None);
    store.create_ui_session(&org, new).await.unwrap();
    assert!(store.use_sign_in_link(&portal.id, Utc::now()).await.unwrap());
    assert!(!store.use_sign_in_link(&portal.id, Utc::now()).await.unwrap());
    let followed = store.find_ui_session(&portal.id).await.unwrap().unwrap();
    assert!(followed.used_at.is_some() && followed.live(Utc::now()));
    let (late, new) = new_session(UiSessionKind::SignInLink, None, None);
    store.create_ui_session(&org, new).await.unwrap();
    assert!(
        !store
            .use_sign_in_link(&late.id, Utc::now() + chrono::Duration::hours(2))
            .await
            .unwrap()
    );

    // Revoking is tenant-scoped and happens once.
    assert!(matches!(
        store.revoke_ui_session(&other, &operator.id).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_ui_session(&org, &operator.id).await.unwrap();
    assert!(
        store
            .find_ui_session(&operator.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        store.revoke_ui_session(&org, &operator.id).await,
        Err(StoreError::NotFound(_))
    ));

    // expire-all: per application, optionally per caller session id, never another
    // tenant's.
    let (a, new) = new_session(UiSessionKind::Portal, Some(app.clone()), Some("user_a"));
    store.create_ui_session(&org, new).await.unwrap();
    let (b, new) = new_session(UiSessionKind::Portal, Some(app.clone()), Some("user_b"));
    store.create_ui_session(&org, new).await.unwrap();
    let (c, new) = new_session(UiSessionKind::Portal, Some(app.clone()), None);
    store.create_ui_session(&org, new).await.unwrap();
    let (d, new) = new_session(UiSessionKind::Portal, Some(app2.clone()), Some("user_a"));
    store.create_ui_session(&org, new).await.unwrap();
    let now = Utc::now();
    assert_eq!(
        store
            .expire_portal_sessions(&other, &app, None, now)
            .await
            .unwrap(),
        0
    );
    let only_a = ["user_a".to_owned()];
    assert_eq!(
        store
            .expire_portal_sessions(&org, &app, Some(&only_a), now)
            .await
            .unwrap(),
        1
    );
    let live = |id| async move {
        store
            .find_ui_session(&id)
            .await
            .unwrap()
            .unwrap()
            .live(Utc::now())
    };
    assert!(!live(a.id.clone()).await);
    assert!(live(b.id.clone()).await && live(c.id.clone()).await && live(d.id.clone()).await);
    assert_eq!(
        store.expire_portal_sessions(&org, &app, None, now).await.unwrap(),
        2
    );
    assert!(!live(b.id.clone()).await && !live(c.id.clone()).await);
    assert!(live(d.id.clone()).await, "another application's sessions stay");

    // Retention deletes what ended long enough ago.
    let deleted = store
        .delete_ui_sessions_before(Utc::now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert!(deleted >= 4, "{deleted}");
    assert!(
        store.find_ui_session(&portal.id).await.unwrap().is_some(),
        "still live"
    );
    assert!(store.find_ui_session(&a.id).await.unwrap().is_none());
    assert!(store.find_ui_session(&d.id).await.unwrap().is_some());
}
