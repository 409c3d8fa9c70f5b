//! Contract checks: flows' definitions.

#![allow(clippy::unwrap_used)]

use super::*;

fn flow(name: &str, trigger: &str) -> FlowData {
    FlowData {
        name: name.parse().unwrap(),
        document: json!({"name": name, "trigger": {"type": "manual"},
                         "steps": [{"name": "wait", "type": "delay", "duration": "1s"}], "n": [1, 2.5, "x"]}),
        enabled: true,
        trigger: trigger.into(),
    }
}

pub async fn flows_round_trip_by_id_or_name_and_are_tenant_scoped(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let a = store
        .create_flow(&org, flow("invoice-paid", "manual"))
        .await
        .unwrap();
    assert!(a.id.as_str().starts_with("flow_"));
    assert_eq!(a.data, flow("invoice-paid", "manual"));
    assert_eq!(store.get_flow(&org, a.id.as_str()).await.unwrap(), a);
    assert_eq!(store.get_flow(&org, "invoice-paid").await.unwrap(), a);
    assert!(matches!(
        store.create_flow(&org, flow("invoice-paid", "cron")).await,
        Err(StoreError::Conflict(_))
    ));
    // Another organisation neither sees it nor is kept from the name.
    assert!(matches!(
        store.get_flow(&other, a.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_flow(&other, "invoice-paid").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .create_flow(&other, flow("invoice-paid", "manual"))
        .await
        .unwrap();
    assert!(matches!(
        store.delete_flow(&other, a.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));

    let b = store
        .create_flow(&org, flow("form", "mode:app_1/signup"))
        .await
        .unwrap();
    let page = store
        .list_flows(
            &org,
            &ListQuery {
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items, vec![a.clone()]);
    assert!(page.has_more);
    let next = ListQuery {
        limit: 1,
        cursor: Some(Cursor {
            key: a.id.to_string(),
            backward: false,
        }),
        ..Default::default()
    };
    assert_eq!(
        store.list_flows(&org, &next).await.unwrap().items,
        vec![b.clone()]
    );

    // A change (a rename too) is kept; renaming onto a taken name is a conflict and
    // changes nothing.
    let renamed = store
        .update_flow(
            &org,
            "invoice-paid",
            Box::new(|d| {
                d.name = "payment".parse().unwrap();
                d.enabled = false;
                d.document["steps"][0]["duration"] = json!("2s");
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.id.clone(),
            renamed.data.name.as_str(),
            renamed.data.enabled
        ),
        (a.id.clone(), "payment", false)
    );
    assert!(renamed.updated_at >= a.updated_at);
    assert_eq!(store.get_flow(&org, "payment").await.unwrap(), renamed);
    assert!(matches!(
        store
            .update_flow(
                &org,
                "payment",
                Box::new(|d| {
                    d.name = "form".parse().unwrap();
                    Ok(())
                })
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.get_flow(&org, "payment").await.unwrap(), renamed);
    assert!(matches!(
        store.get_flow(&org, "invoice-paid").await,
        Err(StoreError::NotFound(_))
    ));

    assert_eq!(store.delete_flow(&org, "payment").await.unwrap(), renamed);
    assert!(matches!(
        store.get_flow(&org, renamed.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.list_flows(&org, &ListQuery::default()).await.unwrap().items,
        vec![b]
    );
}

pub async fn flows_are_found_by_their_trigger_when_enabled(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let key = "source.request:src_1";
    let first = store.create_flow(&org, flow("first", key)).await.unwrap();
    let second = store.create_flow(&org, flow("second", key)).await.unwrap();
    store
        .create_flow(&org, flow("elsewhere", "source.request:src_2"))
        .await
        .unwrap();
    store.create_flow(&other, flow("theirs", key)).await.unwrap();
    let off = store.create_flow(&org, flow("off", key)).await.unwrap();
    store
        .update_flow(
            &org,
            off.id.as_str(),
            Box::new(|d| {
                d.enabled = false;
                Ok(())
            }),
        )
        .await
        .unwrap();
    let found = store.flows_for_trigger(&org, key).await.unwrap();
    assert_eq!(
        found,
        vec![first, second],
        "oldest first; disabled and others' left out"
    );
    assert!(store.flows_for_trigger(&org, "manual").await.unwrap().is_empty());
}
