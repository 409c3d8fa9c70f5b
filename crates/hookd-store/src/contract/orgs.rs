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
