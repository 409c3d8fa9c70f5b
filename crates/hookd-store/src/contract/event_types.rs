//! Contract checks: Event types.

#![allow(clippy::unwrap_used)]

use super::*;

pub async fn event_types_archive_and_expunge(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let name: EventTypeName = "invoice.paid".parse().unwrap();
    let mut data = event_type_data("An invoice was paid");
    data.schemas = Some(serde_json::json!({"1": {"type": "object"}}));
    data.feature_flags.insert("beta".parse().unwrap());
    data.group_name = Some("invoice".parse().unwrap());
    let et = store.create_event_type(&org, &name, data.clone()).await.unwrap();
    assert_eq!(et.data, data);
    assert!(matches!(
        store
            .create_event_type(&org, &name, event_type_data("again"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_event_type(&org, "invoice.paid").await.unwrap(), et);

    let patched = store
        .update_event_type(
            &org,
            "invoice.paid",
            Box::new(|d| {
                d.deprecated = true;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert!(patched.data.deprecated);

    store
        .delete_event_type(&org, "invoice.paid", false)
        .await
        .unwrap();
    let archived = store.get_event_type(&org, "invoice.paid").await.unwrap();
    assert!(archived.data.archived);
    assert!(
        store
            .list_event_types(&org, &ListQuery::default(), false)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .list_event_types(&org, &ListQuery::default(), true)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        store
            .missing_event_types(&org, std::slice::from_ref(&name))
            .await
            .unwrap()
            .is_empty()
    );

    store.delete_event_type(&org, "invoice.paid", true).await.unwrap();
    assert!(matches!(
        store.get_event_type(&org, "invoice.paid").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.missing_event_types(&org, &[name]).await.unwrap().len(), 1);
}

pub async fn event_types_page_by_name(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    for n in ["c.x", "a.x", "e.x", "b.x", "d.x"] {
        store
            .create_event_type(&org, &n.parse().unwrap(), event_type_data(n))
            .await
            .unwrap();
    }
    let q = ListQuery {
        limit: 2,
        cursor: None,
        order: Order::Ascending,
    };
    let p1 = store.list_event_types(&org, &q, false).await.unwrap();
    let names = |p: &Page<EventType>| p.items.iter().map(|e| e.name.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&p1), ["a.x", "b.x"]);
    let q2 = ListQuery {
        cursor: Some(Cursor {
            key: "b.x".into(),
            backward: false,
        }),
        ..q.clone()
    };
    assert_eq!(
        names(&store.list_event_types(&org, &q2, false).await.unwrap()),
        ["c.x", "d.x"]
    );
}
