//! Contract checks: Applications, tenancy and mutations.

#![allow(clippy::unwrap_used)]

use super::*;
use hookd_core::throttle::ThrottleRate;

pub async fn applications_round_trip(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut data = app_data("Shop", Some("shop-1"));
    data.throttle_rate = ThrottleRate::new(7);
    data.metadata.insert("tier".into(), "gold".into());
    let app = store.create_application(&org, data.clone()).await.unwrap();
    assert_eq!(app.data, data);
    assert!(ApplicationId::is_valid(app.id.as_str()));

    assert_eq!(store.get_application(&org, app.id.as_str()).await.unwrap(), app);
    assert_eq!(store.get_application(&org, "shop-1").await.unwrap(), app);

    let updated = store
        .update_application(
            &org,
            "shop-1",
            Box::new(|d| {
                d.name = "Shop 2".into();
                d.uid = None;
                Ok(())
            }),
        )
        .await
        .unwrap();
    // An update answers the application as it was and as it is.
    assert_eq!(updated.before, app);
    let updated = updated.after;
    assert_eq!(updated.data.name, "Shop 2");
    assert_eq!(updated.data.uid, None);
    assert_eq!(updated.created_at, app.created_at);
    assert!(updated.updated_at >= app.updated_at);
    assert!(matches!(
        store.get_application(&org, "shop-1").await,
        Err(StoreError::NotFound(_))
    ));

    store.delete_application(&org, app.id.as_str()).await.unwrap();
    assert!(matches!(
        store.get_application(&org, app.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_application(&org, app.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn application_uids_are_unique_per_org(store: &dyn Store) {
    let (a, b) = two_orgs(store).await;
    store
        .create_application(&a, app_data("one", Some("same")))
        .await
        .unwrap();
    assert!(matches!(
        store.create_application(&a, app_data("two", Some("same"))).await,
        Err(StoreError::Conflict(_))
    ));
    // The same uid in another organisation is fine.
    store
        .create_application(&b, app_data("three", Some("same")))
        .await
        .unwrap();
    // Apps without uid never conflict.
    store
        .create_application(&a, app_data("four", None))
        .await
        .unwrap();
    store
        .create_application(&a, app_data("five", None))
        .await
        .unwrap();
    // Taking a uid by update conflicts too.
    let other = store
        .create_application(&a, app_data("six", Some("other")))
        .await
        .unwrap();
    let err = store
        .update_application(
            &a,
            other.id.as_str(),
            Box::new(|d| {
                d.uid = Some("same".parse().unwrap());
                Ok(())
            }),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
}

pub async fn applications_page_both_ways(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            store
                .create_application(&org, app_data(&format!("app {i}"), None))
                .await
                .unwrap()
                .id,
        );
    }
    ids.sort();
    let org = &org;
    let list = |limit, cursor: Option<Cursor>, order| {
        let q = ListQuery { limit, cursor, order };
        async move {
            store
                .list_applications(org, &q, ApplicationFilter::default())
                .await
                .unwrap()
        }
    };
    let ids_of = |p: &Page<Application>| p.items.iter().map(|a| a.id.clone()).collect::<Vec<_>>();

    let p1 = list(3, None, Order::Ascending).await;
    assert_eq!(ids_of(&p1), ids[0..3]);
    assert!(p1.has_more);
    let p2 = list(
        3,
        Some(Cursor {
            key: ids[2].to_string(),
            backward: false,
        }),
        Order::Ascending,
    )
    .await;
    assert_eq!(ids_of(&p2), ids[3..6]);
    let p3 = list(
        3,
        Some(Cursor {
            key: ids[5].to_string(),
            backward: false,
        }),
        Order::Ascending,
    )
    .await;
    assert_eq!(ids_of(&p3), ids[6..7]);
    assert!(!p3.has_more);
    // Back from the start of page 3 gives page 2 again, in listing order.
    let back = list(
        3,
        Some(Cursor {
            key: ids[6].to_string(),
            backward: true,
        }),
        Order::Ascending,
    )
    .await;
    assert_eq!(ids_of(&back), ids[3..6]);
    assert!(back.has_more);

    let mut desc = ids.clone();
    desc.reverse();
    let d1 = list(4, None, Order::Descending).await;
    assert_eq!(ids_of(&d1), desc[0..4]);
    let d2 = list(
        4,
        Some(Cursor {
            key: desc[3].to_string(),
            backward: false,
        }),
        Order::Descending,
    )
    .await;
    assert_eq!(ids_of(&d2), desc[4..7]);
    assert!(!d2.has_more);
    let dback = list(
        4,
        Some(Cursor {
            key: desc[4].to_string(),
            backward: true,
        }),
        Order::Descending,
    )
    .await;
    assert_eq!(ids_of(&dback), desc[0..4]);
    assert!(!dback.has_more);
}

pub async fn applications_filter_by_endpoints(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let none = store
        .create_application(&org, app_data("none", None))
        .await
        .unwrap();
    let live = store
        .create_application(&org, app_data("live", None))
        .await
        .unwrap();
    let off = store
        .create_application(&org, app_data("off", None))
        .await
        .unwrap();
    store
        .create_endpoint(&org, &live.id, endpoint_data(None))
        .await
        .unwrap();
    let mut disabled = endpoint_data(None);
    disabled.disabled = true;
    store
        .create_endpoint(&org, &live.id, disabled.clone())
        .await
        .unwrap();
    store.create_endpoint(&org, &off.id, disabled).await.unwrap();
    let org = &org;
    let names = |filter| async move {
        let page = store
            .list_applications(org, &ListQuery::default(), filter)
            .await
            .unwrap();
        page.items.into_iter().map(|a| a.data.name).collect::<Vec<_>>()
    };
    assert_eq!(names(ApplicationFilter::default()).await, ["none", "live", "off"]);
    let with_endpoints = ApplicationFilter {
        exclude_without_endpoints: true,
        ..Default::default()
    };
    assert_eq!(names(with_endpoints).await, ["live", "off"]);
    let enabled = ApplicationFilter {
        exclude_all_endpoints_disabled: true,
        ..Default::default()
    };
    assert_eq!(names(enabled).await, ["none", "live"]);
    let both = ApplicationFilter {
        exclude_without_endpoints: true,
        exclude_all_endpoints_disabled: true,
    };
    assert_eq!(names(both).await, ["live"]);
    let _ = none;
}

pub async fn tenants_are_isolated(store: &dyn Store) {
    let (a, b) = two_orgs(store).await;
    let app = store
        .create_application(&a, app_data("mine", Some("mine")))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&a, &app.id, endpoint_data(Some("ep")))
        .await
        .unwrap();
    store
        .create_event_type(&a, &"secret.event".parse().unwrap(), event_type_data("a's"))
        .await
        .unwrap();

    for key in [app.id.as_str(), "mine"] {
        assert!(matches!(
            store.get_application(&b, key).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.update_application(&b, key, Box::new(|_| Ok(()))).await,
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            store.delete_application(&b, key).await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert!(
        store
            .list_applications(&b, &ListQuery::default(), ApplicationFilter::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    assert!(matches!(
        store.get_endpoint(&b, &app.id, ep.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.create_endpoint(&b, &app.id, endpoint_data(None)).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_endpoints(&b, &app.id, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store
            .update_endpoint(&b, &app.id, "ep", Box::new(|_| Ok(())))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete_endpoint(&b, &app.id, "ep").await,
        Err(StoreError::NotFound(_))
    ));

    assert!(matches!(
        store.get_event_type(&b, "secret.event").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .missing_event_types(&b, &["secret.event".parse().unwrap()])
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list_event_types(&b, &ListQuery::default(), true)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store.delete_event_type(&b, "secret.event", true).await,
        Err(StoreError::NotFound(_))
    ));

    // Everything is still there for its owner.
    assert_eq!(store.get_endpoint(&a, &app.id, "ep").await.unwrap(), ep);
    store.get_event_type(&a, "secret.event").await.unwrap();
}

pub async fn mutations_are_atomic(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("counter", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        // Each task increments a counter in metadata: lost updates would show.
        let app_id = app.id.clone();
        let ep_id = ep.id.clone();
        let org = org.clone();
        let f = move |m: &mut Metadata| {
            let n: u32 = m.get("n").map(|v| v.parse().unwrap()).unwrap_or(0);
            m.insert("n".into(), (n + 1).to_string());
        };
        tasks.push(async move {
            store
                .update_application(
                    &org,
                    app_id.as_str(),
                    Box::new(move |d| {
                        f(&mut d.metadata);
                        Ok(())
                    }),
                )
                .await
                .unwrap();
            store
                .update_endpoint(
                    &org,
                    &app_id,
                    ep_id.as_str(),
                    Box::new(move |d| {
                        f(&mut d.metadata);
                        Ok(())
                    }),
                )
                .await
                .unwrap();
        });
    }
    futures_join_all(tasks).await;
    let app = store.get_application(&org, app.id.as_str()).await.unwrap();
    assert_eq!(app.data.metadata["n"], "20");
    let ep = store.get_endpoint(&org, &app.id, ep.id.as_str()).await.unwrap();
    assert_eq!(ep.data.metadata["n"], "20");
}

pub async fn rejected_mutations_change_nothing(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("keep", None))
        .await
        .unwrap();
    let err = store
        .update_application(
            &org,
            app.id.as_str(),
            Box::new(|d| {
                d.name = "changed".into();
                Err(StoreError::rejected("name", "no"))
            }),
        )
        .await;
    assert!(matches!(err, Err(StoreError::Rejected { .. })));
    assert_eq!(
        store
            .get_application(&org, app.id.as_str())
            .await
            .unwrap()
            .data
            .name,
        "keep"
    );
}

/// Text holding the NUL character — a name, a JSON schema's key — is stored exactly or
/// refused as the caller's data (PostgreSQL cannot store it), never an internal error.
pub async fn nul_characters_are_stored_or_refused_never_a_server_error(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let judged = |r: StoreResult<()>| match r {
        Ok(()) | Err(StoreError::Rejected { .. }) => {}
        Err(e) => panic!("a NUL character gave {e:?}"),
    };
    let app = store.create_application(&org, app_data("nul\0name", None)).await;
    if let Ok(app) = &app {
        assert_eq!(app.data.name, "nul\0name");
    }
    judged(app.map(|_| ()));
    let data = EventTypeData {
        description: "d".into(),
        archived: false,
        deprecated: false,
        schemas: Some(serde_json::json!({"1": {"k\u{0}": true}})),
        group_name: None,
        feature_flags: Default::default(),
    };
    let name: EventTypeName = "nul.schema".parse().unwrap();
    judged(store.create_event_type(&org, &name, data).await.map(|_| ()));
}
