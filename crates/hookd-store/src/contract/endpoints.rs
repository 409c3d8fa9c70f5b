//! Contract checks: Endpoints and their secrets.

#![allow(clippy::unwrap_used)]

use super::*;
use hookd_core::throttle::ThrottleRate;

pub async fn endpoints_round_trip(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("eps", None))
        .await
        .unwrap();
    let mut data = endpoint_data(Some("primary"));
    data.event_types = Some(["a.b".parse().unwrap()].into());
    data.channels = Some(["team:1".parse().unwrap()].into());
    data.headers.insert("X-Custom".into(), "1".into());
    data.throttle_rate = ThrottleRate::new(10);
    data.disabled = true;
    data.transformation = Some(Transformation {
        code: Some("function handler(w) { return w }".into()),
        enabled: true,
        variables: Some([("token".to_owned(), "t0k".to_owned())].into()),
        updated_at: "2026-12-01T10:00:00.123456Z".parse().unwrap(),
    });
    let ep = store.create_endpoint(&org, &app.id, data.clone()).await.unwrap();
    assert_eq!(ep.data, data);
    assert_eq!(ep.app_id, app.id);
    assert_eq!(store.get_endpoint(&org, &app.id, "primary").await.unwrap(), ep);
    assert_eq!(
        store.get_endpoint(&org, &app.id, ep.id.as_str()).await.unwrap(),
        ep
    );

    let other_app = store
        .create_application(&org, app_data("other", None))
        .await
        .unwrap();
    assert!(matches!(
        store.get_endpoint(&org, &other_app.id, ep.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));

    let page = store
        .list_endpoints(&org, &app.id, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items, vec![ep.clone()]);

    let updated = store
        .update_endpoint(
            &org,
            &app.id,
            "primary",
            Box::new(|d| {
                d.url = "https://example.org/new".parse().unwrap();
                d.event_types = None;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.before, ep);
    let updated = updated.after;
    assert_eq!(updated.data.url.as_str(), "https://example.org/new");
    assert_eq!(updated.data.event_types, None);
    assert_eq!(updated.data.secret, ep.data.secret);
    assert_eq!(updated.data.transformation, data.transformation);

    // A delivery's claim carries the endpoint's transformation as it is now.
    store
        .update_endpoint(
            &org,
            &app.id,
            "primary",
            Box::new(|d| {
                d.disabled = false;
                d.channels = None;
                if let Some(t) = d.transformation.as_mut() {
                    t.enabled = false;
                }
                Ok(())
            }),
        )
        .await
        .unwrap();
    store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let claimed = claim_all(store, Utc::now()).await;
    let t = claimed[0].endpoint.data.transformation.as_ref().unwrap();
    assert!(!t.enabled);
    assert_eq!(t.code.as_deref(), Some("function handler(w) { return w }"));
    let updated = store.get_endpoint(&org, &app.id, "primary").await.unwrap();

    // A delete answers what it deleted.
    assert_eq!(
        store.delete_endpoint(&org, &app.id, "primary").await.unwrap(),
        updated
    );
    assert!(matches!(
        store.get_endpoint(&org, &app.id, "primary").await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn endpoint_uids_are_unique_per_app(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let a1 = store
        .create_application(&org, app_data("a1", None))
        .await
        .unwrap();
    let a2 = store
        .create_application(&org, app_data("a2", None))
        .await
        .unwrap();
    store
        .create_endpoint(&org, &a1.id, endpoint_data(Some("dup")))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_endpoint(&org, &a1.id, endpoint_data(Some("dup")))
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .create_endpoint(&org, &a2.id, endpoint_data(Some("dup")))
        .await
        .unwrap();
}

pub async fn deleting_an_application_deletes_its_endpoints(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("gone", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    store.delete_application(&org, app.id.as_str()).await.unwrap();
    assert!(matches!(
        store.get_endpoint(&org, &app.id, ep.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_endpoints(&org, &app.id, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn secret_rotation_keeps_the_old_key(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("rot", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let new = EndpointSecret::generate();
    let new2 = new.clone();
    let rotated = store
        .update_endpoint(
            &org,
            &app.id,
            ep.id.as_str(),
            Box::new(move |d| {
                d.rotate_secret(new2, Utc::now(), chrono::Duration::hours(24));
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(rotated.before.data.secret, ep.data.secret);
    let rotated = rotated.after;
    assert_eq!(rotated.data.secret, new);
    assert_eq!(rotated.data.previous_secrets.len(), 1);
    assert_eq!(rotated.data.previous_secrets[0].secret, ep.data.secret);
    let reread = store.get_endpoint(&org, &app.id, ep.id.as_str()).await.unwrap();
    assert_eq!(reread.data.previous_secrets, rotated.data.previous_secrets);
}
