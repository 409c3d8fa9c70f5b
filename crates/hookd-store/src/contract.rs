//! The contract every store backend must pass.
//!
//! A backend's test target calls [`contract_tests!`](crate::contract_tests) with an
//! async expression that makes a fresh, empty store; each check becomes its own test.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::Utc;
use hookd_core::api_token::ApiToken;
use hookd_core::id::{ApplicationId, EndpointId, OrgId};
use hookd_core::name::EventTypeName;
use hookd_core::secret::EndpointSecret;

use crate::*;

/// Expands to one `#[tokio::test]` per contract check, each on a store made by `$make`.
#[macro_export]
macro_rules! contract_tests {
    // `$make` yields `Option<(guard, store)>`: `None` skips the check (the backend is
    // not available here); the guard lives until the check ends (and cleans up).
    (optional $make:expr) => {
        $crate::contract_tests!(@names @optional $make);
    };
    (@names @$how:ident $make:expr) => {
        $crate::contract_tests!(@$how $make;
            tokens_are_found_by_id_and_revoked,
            orgs_are_created_once,
            applications_round_trip,
            application_uids_are_unique_per_org,
            applications_page_both_ways,
            applications_filter_by_endpoints,
            tenants_are_isolated,
            mutations_are_atomic,
            rejected_mutations_change_nothing,
            event_types_archive_and_expunge,
            event_types_page_by_name,
            endpoints_round_trip,
            endpoint_uids_are_unique_per_app,
            deleting_an_application_deletes_its_endpoints,
            secret_rotation_keeps_the_old_key,
            messages_fan_out_to_matching_endpoints,
            event_ids_are_unique_per_app,
            messages_for_a_deleted_application_are_not_found,
            claims_lease_and_expired_leases_are_reclaimed,
            claims_keep_within_each_endpoints_room,
            claims_serve_endpoints_in_turn,
            attempts_are_recorded_and_retries_scheduled,
            expunged_and_disabled_deliveries_are_canceled,
            messages_and_attempts_are_tenant_scoped,
            idempotency_keys_claim_replay_and_expire,
            retention_expires_payloads_and_deletes_old_messages,
            operational_apps_are_hidden_and_one_per_org,
            endpoints_failing_for_long_are_disabled_once,
            sources_round_trip_and_are_tenant_scoped,
            source_tokens_rotate_with_a_grace_period,
            accepted_requests_are_forwarded_once_per_dedup_key,
            forwarded_requests_carry_their_exact_body,
            cron_firings_are_recorded_once,
            ingest_logs_filter_page_and_expire,
            concurrent_claims_never_overlap,
            concurrent_idempotency_claims_run_once,
            concurrent_event_ids_are_unique,
            concurrent_exhaustion_disables_once,
            shared_throttle_allows_the_rate,
            data_definitions_round_trip_and_are_tenant_scoped,
            documents_version_filter_and_go_with_their_collection,
            concurrent_document_edits_apply_one_after_another,
            document_changes_publish_events_in_the_same_write,
            scores_follow_policies_ranks_and_periods,
            concurrent_scores_add_up_exactly,
            api_keys_are_found_scoped_and_revoked,
            usage_adds_up_per_org_and_day,
            jobs_are_leased_stepped_and_taken_over,
            concurrent_job_claims_never_overlap
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::contract::$name(&store).await;
            }
        )*
    };
    (@optional $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some((_guard, store)) = $make.await else { return };
                $crate::contract::$name(&store).await;
            }
        )*
    };
    ($make:expr) => {
        $crate::contract_tests!(@names @each $make);
    };
}

fn app_data(name: &str, uid: Option<&str>) -> ApplicationData {
    ApplicationData {
        uid: uid.map(|u| u.parse().unwrap()),
        name: name.to_owned(),
        throttle_rate: None,
        metadata: Metadata::new(),
    }
}

fn endpoint_data(uid: Option<&str>) -> EndpointData {
    EndpointData {
        uid: uid.map(|u| u.parse().unwrap()),
        url: "https://example.com/hook".parse().unwrap(),
        description: String::new(),
        disabled: false,
        event_types: None,
        channels: None,
        throttle_rate: None,
        metadata: Metadata::new(),
        headers: Default::default(),
        secret: EndpointSecret::generate(),
        previous_secrets: Vec::new(),
    }
}

fn event_type_data(description: &str) -> EventTypeData {
    EventTypeData {
        description: description.to_owned(),
        archived: false,
        deprecated: false,
        schemas: None,
        group_name: None,
        feature_flags: BTreeSet::new(),
    }
}

async fn two_orgs(store: &dyn Store) -> (OrgId, OrgId) {
    let a = store.ensure_org("contract-a").await.unwrap().id;
    let b = store.ensure_org("contract-b").await.unwrap().id;
    assert_ne!(a, b);
    (a, b)
}

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

pub async fn applications_round_trip(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut data = app_data("Shop", Some("shop-1"));
    data.throttle_rate = Some(7);
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

async fn futures_join_all<F: std::future::Future<Output = ()> + Send>(tasks: Vec<F>) {
    // Poll all concurrently on the current task, without an extra dependency.
    let mut set = Vec::new();
    for t in tasks {
        set.push(Box::pin(t));
    }
    let mut pending: Vec<_> = set.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for slot in pending.iter_mut() {
            if let Some(fut) = slot {
                if fut.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    all_done = false;
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
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
    data.throttle_rate = Some(10);
    data.disabled = true;
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

fn new_message(event_type: &str, channels: Option<&[&str]>) -> NewMessage {
    NewMessage {
        event_type: event_type.parse().unwrap(),
        event_id: None,
        channels: channels.map(|c| c.iter().map(|x| x.parse().unwrap()).collect()),
        tags: BTreeSet::new(),
        payload: r#"{"k": 1}"#.into(),
        retain_until: Utc::now() + chrono::Duration::days(90),
        only_endpoint: None,
        forward: None,
    }
}

async fn claim_all(store: &dyn Store, now: chrono::DateTime<Utc>) -> Vec<ClaimedDelivery> {
    store
        .claim_due(
            now,
            100,
            now + chrono::Duration::seconds(30),
            "node-a",
            &EndpointRoom::any(),
        )
        .await
        .unwrap()
}

fn attempt(status: DeliveryStatus, code: i32) -> NewAttempt {
    NewAttempt {
        url: "https://example.com/hook".into(),
        status,
        response_status_code: code,
        response: "ok".into(),
        duration_ms: 12,
        trigger: AttemptTrigger::Scheduled,
        at: Utc::now(),
    }
}

pub async fn messages_fan_out_to_matching_endpoints(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("fan", None))
        .await
        .unwrap();
    let mk = |uid: &str, types: Option<&[&str]>, chans: Option<&[&str]>, disabled: bool| {
        let mut d = endpoint_data(Some(uid));
        d.event_types = types.map(|t| t.iter().map(|x| x.parse().unwrap()).collect());
        d.channels = chans.map(|c| c.iter().map(|x| x.parse().unwrap()).collect());
        d.disabled = disabled;
        d
    };
    let mut wanted = Vec::new();
    for (uid, types, chans, disabled, gets_it) in [
        ("open", None, None, false, true),
        ("typed", Some(&["a.b"][..]), None, false, true),
        ("other-type", Some(&["c.d"][..]), None, false, false),
        ("disabled", None, None, true, false),
        ("channel", None, Some(&["x"][..]), false, true),
        ("other-channel", None, Some(&["y"][..]), false, false),
    ] {
        let ep = store
            .create_endpoint(&org, &app.id, mk(uid, types, chans, disabled))
            .await
            .unwrap();
        if gets_it {
            wanted.push(ep.id);
        }
    }
    let (msg, n) = store
        .create_message(&org, &app.id, new_message("a.b", Some(&["x"])))
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(msg.payload.as_deref(), Some(r#"{"k": 1}"#));
    let mut got: Vec<EndpointId> = claim_all(store, Utc::now())
        .await
        .into_iter()
        .map(|d| d.endpoint.id)
        .collect();
    got.sort();
    wanted.sort();
    assert_eq!(got, wanted);
    // Without channels, the channel endpoint is left out.
    let (_, n) = store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        store.get_message(&org, &app.id, msg.id.as_str()).await.unwrap(),
        msg
    );
}

pub async fn event_ids_are_unique_per_app(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let a1 = store
        .create_application(&org, app_data("e1", None))
        .await
        .unwrap();
    let a2 = store
        .create_application(&org, app_data("e2", None))
        .await
        .unwrap();
    let mut m = new_message("a.b", None);
    m.event_id = Some("evt-1".parse().unwrap());
    let (first, _) = store.create_message(&org, &a1.id, m.clone()).await.unwrap();
    assert!(matches!(
        store.create_message(&org, &a1.id, m.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    store.create_message(&org, &a2.id, m).await.unwrap();
    assert_eq!(
        store.get_message(&org, &a1.id, "evt-1").await.unwrap().id,
        first.id
    );
}

/// The API may hold an application's id from a recent lookup: a message for it after
/// it was deleted is refused as not found, not stored and not an internal error.
pub async fn messages_for_a_deleted_application_are_not_found(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("gone", None))
        .await
        .unwrap();
    store.delete_application(&org, app.id.as_str()).await.unwrap();
    assert!(matches!(
        store
            .create_message(&org, &app.id, new_message("a.b", None))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn claims_keep_within_each_endpoints_room(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("room", None))
        .await
        .unwrap();
    let mut eps = Vec::new();
    for _ in 0..3 {
        eps.push(
            store
                .create_endpoint(&org, &app.id, endpoint_data(None))
                .await
                .unwrap()
                .id,
        );
    }
    let mut msgs = Vec::new();
    for _ in 0..5 {
        msgs.push(
            store
                .create_message(&org, &app.id, new_message("a.b", None))
                .await
                .unwrap()
                .0
                .id,
        );
    }
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(30);
    let per_endpoint = |claimed: &[ClaimedDelivery]| {
        eps.iter()
            .map(|e| claimed.iter().filter(|d| d.endpoint.id == *e).count())
            .collect::<Vec<_>>()
    };
    // Two each; the first endpoint has room for one more, the second for none.
    let room = EndpointRoom {
        each: 2,
        limited: vec![(eps[0].clone(), 1), (eps[1].clone(), 0)],
    };
    let first = store.claim_due(now, 100, lease, "node-a", &room).await.unwrap();
    assert_eq!(per_endpoint(&first), vec![1, 0, 2]);
    // The oldest of each endpoint's deliveries go first.
    let oldest = store
        .claim_due(
            now,
            100,
            lease,
            "node-a",
            &EndpointRoom {
                each: 1,
                limited: vec![],
            },
        )
        .await
        .unwrap();
    assert_eq!(per_endpoint(&oldest), vec![1, 1, 1]);
    let third = oldest.iter().find(|d| d.endpoint.id == eps[2]).unwrap();
    assert_eq!(
        third.message.id, msgs[2],
        "the third endpoint's first two went first"
    );
    // The batch limit still holds, and what is left is all there.
    let two = store
        .claim_due(now, 2, lease, "node-a", &EndpointRoom::any())
        .await
        .unwrap();
    assert_eq!(two.len(), 2);
    let rest = store
        .claim_due(now, 100, lease, "node-a", &EndpointRoom::any())
        .await
        .unwrap();
    assert_eq!(first.len() + oldest.len() + two.len() + rest.len(), 15);
    let mut ids: Vec<i64> = [&first, &oldest, &two, &rest]
        .iter()
        .flat_map(|b| b.iter().map(|d| d.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 15, "no delivery leased twice");
}

/// A long queue for one endpoint neither hides another endpoint's newer deliveries nor
/// takes more than its room.
pub async fn claims_serve_endpoints_in_turn(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let long = store
        .create_application(&org, app_data("long", None))
        .await
        .unwrap();
    let busy = store
        .create_endpoint(&org, &long.id, endpoint_data(None))
        .await
        .unwrap()
        .id;
    for _ in 0..300 {
        store
            .create_message(&org, &long.id, new_message("a.b", None))
            .await
            .unwrap();
    }
    let short = store
        .create_application(&org, app_data("short", None))
        .await
        .unwrap();
    let quiet = store
        .create_endpoint(&org, &short.id, endpoint_data(None))
        .await
        .unwrap()
        .id;
    store
        .create_message(&org, &short.id, new_message("a.b", None))
        .await
        .unwrap();
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(30);
    let room = EndpointRoom {
        each: 4,
        limited: vec![],
    };
    let mut seen_quiet = false;
    for _ in 0..2 {
        let claimed = store.claim_due(now, 8, lease, "node-a", &room).await.unwrap();
        assert!(claimed.iter().filter(|d| d.endpoint.id == busy).count() <= 4);
        seen_quiet |= claimed.iter().any(|d| d.endpoint.id == quiet);
    }
    assert!(seen_quiet, "the newer delivery of another endpoint was served");
    // With the busy endpoint full, the rest is found at once whatever its queue's length.
    store
        .create_message(&org, &short.id, new_message("a.b", None))
        .await
        .unwrap();
    let full = EndpointRoom {
        each: 4,
        limited: vec![(busy.clone(), 0)],
    };
    let claimed = store
        .claim_due(Utc::now(), 8, lease, "node-a", &full)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].endpoint.id, quiet);
}

pub async fn claims_lease_and_expired_leases_are_reclaimed(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("lease", None))
        .await
        .unwrap();
    let ep1 = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let ep2 = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let now = Utc::now();
    let lease = now + chrono::Duration::seconds(30);

    let skipped = store
        .claim_due(
            now,
            10,
            lease,
            "node-a",
            &EndpointRoom {
                each: 10,
                limited: vec![(ep1.id.clone(), 0)],
            },
        )
        .await
        .unwrap();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].endpoint.id, ep2.id);
    let first = store
        .claim_due(now, 10, lease, "node-a", &EndpointRoom::any())
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "only the unleased one is left");
    assert_eq!(first[0].endpoint.id, ep1.id);
    assert!(
        store
            .claim_due(now, 10, lease, "node-b", &EndpointRoom::any())
            .await
            .unwrap()
            .is_empty()
    );
    // After the lease runs out another node takes both.
    let later = lease + chrono::Duration::seconds(1);
    let stolen = store
        .claim_due(
            later,
            10,
            later + chrono::Duration::seconds(30),
            "node-b",
            &EndpointRoom::any(),
        )
        .await
        .unwrap();
    assert_eq!(stolen.len(), 2);
    // Releasing node-b's leases makes them claimable at once.
    assert_eq!(store.release_leases("node-b").await.unwrap(), 2);
    assert_eq!(
        store
            .claim_due(later, 10, later, "node-c", &EndpointRoom::any())
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn attempts_are_recorded_and_retries_scheduled(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("att", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let (msg, _) = store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let now = Utc::now();
    let d = claim_all(store, now).await.pop().unwrap();
    assert_eq!(d.attempts, 0);
    let retry_at = now + chrono::Duration::seconds(60);
    store
        .finish_attempt(
            d.id,
            attempt(DeliveryStatus::Fail, 500),
            NextStep::RetryAt(retry_at),
        )
        .await
        .unwrap();
    assert!(
        claim_all(store, now + chrono::Duration::seconds(59))
            .await
            .is_empty(),
        "not before its time"
    );
    let again = claim_all(store, retry_at).await.pop().unwrap();
    assert_eq!(again.attempts, 1);
    store
        .finish_attempt(again.id, attempt(DeliveryStatus::Success, 200), NextStep::Done)
        .await
        .unwrap();
    assert!(
        claim_all(store, retry_at + chrono::Duration::days(1))
            .await
            .is_empty(),
        "done is done"
    );

    let all = AttemptFilter {
        msg: Some(msg.id.clone()),
        ..Default::default()
    };
    let page = store
        .list_attempts(
            &org,
            &app.id,
            &ListQuery {
                order: Order::Descending,
                ..Default::default()
            },
            &all,
        )
        .await
        .unwrap();
    let codes: Vec<i32> = page.items.iter().map(|a| a.response_status_code).collect();
    assert_eq!(codes, [200, 500], "newest first");
    assert_eq!(page.items[0].status, DeliveryStatus::Success);
    let fails = AttemptFilter {
        status: Some(DeliveryStatus::Fail),
        ..all.clone()
    };
    assert_eq!(
        store
            .list_attempts(&org, &app.id, &ListQuery::default(), &fails)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let fives = AttemptFilter {
        status_code_class: Some(5),
        endpoint: Some(ep.id.clone()),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_attempts(&org, &app.id, &ListQuery::default(), &fives)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let one = &page.items[1];
    assert_eq!(
        store.get_attempt(&org, &app.id, &msg.id, &one.id).await.unwrap(),
        *one
    );
}

pub async fn expunged_and_disabled_deliveries_are_canceled(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("cancel", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let (msg, _) = store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    store
        .expunge_message_payload(&org, &app.id, &msg.id)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_message(&org, &app.id, msg.id.as_str())
            .await
            .unwrap()
            .payload,
        None
    );
    assert!(claim_all(store, Utc::now()).await.is_empty());

    store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    store
        .update_endpoint(
            &org,
            &app.id,
            ep.id.as_str(),
            Box::new(|d| {
                d.disabled = true;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert!(claim_all(store, Utc::now()).await.is_empty());
}

pub async fn messages_and_attempts_are_tenant_scoped(store: &dyn Store) {
    let (a, b) = two_orgs(store).await;
    let app = store
        .create_application(&a, app_data("scoped", None))
        .await
        .unwrap();
    store
        .create_endpoint(&a, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let (msg, _) = store
        .create_message(&a, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    assert!(matches!(
        store.get_message(&b, &app.id, msg.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_messages(&b, &app.id, &ListQuery::default(), &MessageFilter::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store.expunge_message_payload(&b, &app.id, &msg.id).await,
        Err(StoreError::NotFound(_))
    ));
    let d = claim_all(store, Utc::now()).await.pop().unwrap();
    assert_eq!(d.org_id, a);
    store
        .finish_attempt(d.id, attempt(DeliveryStatus::Success, 200), NextStep::Done)
        .await
        .unwrap();
    let all = AttemptFilter {
        msg: Some(msg.id.clone()),
        ..Default::default()
    };
    assert!(
        store
            .list_attempts(&b, &app.id, &ListQuery::default(), &all)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store
            .list_attempts(&a, &app.id, &ListQuery::default(), &all)
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

pub async fn idempotency_keys_claim_replay_and_expire(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let token = hookd_core::id::TokenId::generate();
    let t0 = Utc::now();
    let window = |now: chrono::DateTime<Utc>| IdempotencyWindow {
        now,
        stale_before: now - chrono::Duration::minutes(2),
        expired_before: now - chrono::Duration::hours(12),
    };
    let begin = |key: &'static str, now| {
        let (org, token) = (org.clone(), token.clone());
        async move {
            store
                .idempotency_begin(&org, &token, key, "fp", window(now))
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("k", t0).await, IdempotencyBegin::Started);
    assert_eq!(begin("k", t0).await, IdempotencyBegin::InProgress);
    // A claim nobody answered for longer than the stale limit is taken over.
    assert_eq!(
        begin("k", t0 + chrono::Duration::minutes(3)).await,
        IdempotencyBegin::Started
    );
    let response = StoredResponse {
        status: 202,
        content_type: Some("application/json".into()),
        body: b"{}".to_vec(),
    };
    store
        .idempotency_complete(&org, &token, "k", response.clone())
        .await
        .unwrap();
    assert_eq!(
        begin("k", t0 + chrono::Duration::hours(1)).await,
        IdempotencyBegin::Completed {
            fingerprint: "fp".into(),
            response
        }
    );
    // After 12 hours the answer is forgotten.
    assert_eq!(
        begin("k", t0 + chrono::Duration::hours(13)).await,
        IdempotencyBegin::Started
    );
    // Abandoning drops an unanswered claim at once.
    assert_eq!(begin("other", t0).await, IdempotencyBegin::Started);
    store.idempotency_abandon(&org, &token, "other").await.unwrap();
    assert_eq!(begin("other", t0).await, IdempotencyBegin::Started);
}

pub async fn retention_expires_payloads_and_deletes_old_messages(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("ret", None))
        .await
        .unwrap();
    store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let mut short = new_message("a.b", None);
    short.retain_until = Utc::now() - chrono::Duration::seconds(1);
    let (expired, _) = store.create_message(&org, &app.id, short).await.unwrap();
    let (kept, _) = store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let mut total = 0;
    loop {
        let n = store.expire_payloads(Utc::now(), 1).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 1);
    assert_eq!(
        store
            .get_message(&org, &app.id, expired.id.as_str())
            .await
            .unwrap()
            .payload,
        None
    );
    assert!(
        store
            .get_message(&org, &app.id, kept.id.as_str())
            .await
            .unwrap()
            .payload
            .is_some()
    );
    // Only the kept message's delivery is still pending.
    let claimed = claim_all(store, Utc::now()).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].message.id, kept.id);
    // An attempt of the kept message, to go with it.
    store
        .finish_attempt(
            claimed[0].id,
            attempt(DeliveryStatus::Success, 200),
            NextStep::Done,
        )
        .await
        .unwrap();
    let listed = store
        .list_attempts(&org, &app.id, &ListQuery::default(), &AttemptFilter::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    let future = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.delete_messages_before(future, 100).await.unwrap(), 2);
    // The attempt log goes with its messages.
    let listed = store
        .list_attempts(&org, &app.id, &ListQuery::default(), &AttemptFilter::default())
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    assert!(matches!(
        store.get_message(&org, &app.id, kept.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        claim_all(store, future + chrono::Duration::minutes(5))
            .await
            .is_empty()
    );
}

pub async fn operational_apps_are_hidden_and_one_per_org(store: &dyn Store) {
    let (a, b) = two_orgs(store).await;
    let ops = store.operational_app(&a).await.unwrap();
    assert_eq!(
        store.operational_app(&a).await.unwrap(),
        ops,
        "one per organisation"
    );
    assert_ne!(store.operational_app(&b).await.unwrap(), ops);
    assert!(matches!(
        store.get_application(&a, ops.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .list_applications(&a, &ListQuery::default(), ApplicationFilter::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Its endpoints work like any other's, for its own organisation only.
    let ep = store
        .create_endpoint(&a, &ops, endpoint_data(None))
        .await
        .unwrap();
    assert!(matches!(
        store.create_endpoint(&b, &ops, endpoint_data(None)).await,
        Err(StoreError::NotFound(_))
    ));
    let (_, n) = store
        .create_message(&a, &ops, new_message("endpoint.created", None))
        .await
        .unwrap();
    assert_eq!(n, 1);
    let d = claim_all(store, Utc::now()).await.pop().unwrap();
    assert!(d.operational);
    assert_eq!(d.endpoint.id, ep.id);
}

pub async fn endpoints_failing_for_long_are_disabled_once(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("streak", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let t0 = Utc::now();
    let days = chrono::Duration::days;
    // The first exhaustion starts the streak; nothing is disabled yet.
    assert!(
        !store
            .note_exhausted(&org, &app.id, &ep.id, t0, t0 - days(5))
            .await
            .unwrap()
    );
    assert!(
        !store
            .note_exhausted(&org, &app.id, &ep.id, t0 + days(4), t0 - days(1))
            .await
            .unwrap()
    );
    // A success ends the streak.
    store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let d = claim_all(store, Utc::now()).await.pop().unwrap();
    store
        .finish_attempt(d.id, attempt(DeliveryStatus::Success, 200), NextStep::Done)
        .await
        .unwrap()
        .unwrap();
    assert!(
        !store
            .note_exhausted(&org, &app.id, &ep.id, t0 + days(6), t0 + days(1))
            .await
            .unwrap()
    );
    // Five days of failures later, it is disabled, once.
    assert!(
        store
            .note_exhausted(&org, &app.id, &ep.id, t0 + days(12), t0 + days(7))
            .await
            .unwrap()
    );
    assert!(
        !store
            .note_exhausted(&org, &app.id, &ep.id, t0 + days(13), t0 + days(8))
            .await
            .unwrap()
    );
    assert!(
        store
            .get_endpoint(&org, &app.id, ep.id.as_str())
            .await
            .unwrap()
            .data
            .disabled
    );
}

// ---------------------------------------------------------------------------------
// Ingest.

fn source_data(uid: Option<&str>, kind: &str) -> SourceData {
    SourceData {
        uid: uid.map(|u| u.parse().unwrap()),
        name: "source".into(),
        kind: kind.into(),
        config: serde_json::json!({"secret": "s"}),
        options: serde_json::Value::Null,
        metadata: Default::default(),
    }
}

fn received(body: &[u8], dedup: Option<&str>, forward: bool) -> NewIngestRequest {
    let now = Utc::now();
    NewIngestRequest {
        method: "POST".into(),
        path: "/".into(),
        query: "a=1".into(),
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("x-a".into(), "1".into()),
        ],
        client_addr: Some("203.0.113.9".into()),
        body: body.to_vec(),
        status: IngestStatus::Accepted,
        reason: None,
        response_status: 200,
        received_at: now,
        dedup: dedup.map(|k| (k.to_owned(), now - chrono::Duration::hours(1))),
        forward: forward.then(|| IngestForward {
            event_type: "ingest.generic-webhook".parse().unwrap(),
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            retain_until: now + chrono::Duration::days(1),
        }),
        cron: None,
    }
}

pub async fn sources_round_trip_and_are_tenant_scoped(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let data = source_data(Some("gh"), "github");
    let source = store
        .create_source(&org, data.clone(), "tok-a".into())
        .await
        .unwrap();
    assert_eq!(source.data, data);
    assert_eq!(store.get_source(&org, "gh").await.unwrap(), source);
    assert_eq!(store.get_source(&org, source.id.as_str()).await.unwrap(), source);
    assert!(matches!(
        store.get_source(&other, "gh").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .create_source(&org, source_data(Some("gh"), "stripe"), "tok-b".into())
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Another organisation may use the uid.
    store
        .create_source(&other, source_data(Some("gh"), "github"), "tok-c".into())
        .await
        .unwrap();
    let changed = store
        .update_source(
            &org,
            "gh",
            Box::new(|d| {
                d.name = "renamed".into();
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_ne!(changed.before.data.name, "renamed");
    let changed = changed.after;
    assert_eq!(changed.data.name, "renamed");
    assert_eq!(
        store
            .list_sources(&org, &ListQuery::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // The source's application is hidden from application listings.
    let apps = store
        .list_applications(&org, &ListQuery::default(), ApplicationFilter::default())
        .await
        .unwrap();
    assert!(apps.items.is_empty());
    assert!(matches!(
        store.delete_source(&other, source.id.as_str()).await,
        Err(StoreError::NotFound(_))
    ));
    // A request recorded for a source of another tenant, or one deleted since it was
    // found, is refused.
    assert!(matches!(
        store
            .record_ingest(&other, &changed, received(b"{}", None, true))
            .await,
        Err(StoreError::NotFound(_))
    ));
    store.delete_source(&org, "gh").await.unwrap();
    assert!(matches!(
        store.get_source(&org, "gh").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .record_ingest(&org, &changed, received(b"{}", None, true))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .find_source_by_token("tok-a", Utc::now())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn source_tokens_rotate_with_a_grace_period(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "github"), "tok-1".into())
        .await
        .unwrap();
    let (found_org, found) = store
        .find_source_by_token("tok-1", Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found_org, found.id.clone()), (org.clone(), source.id.clone()));
    let now = Utc::now();
    let rotated = store
        .rotate_source_token(
            &org,
            source.id.as_str(),
            "tok-2".into(),
            now + chrono::Duration::minutes(5),
        )
        .await
        .unwrap();
    assert_eq!(rotated.token, "tok-2");
    assert!(store.find_source_by_token("tok-2", now).await.unwrap().is_some());
    assert!(store.find_source_by_token("tok-1", now).await.unwrap().is_some());
    let later = now + chrono::Duration::minutes(6);
    assert!(
        store
            .find_source_by_token("tok-1", later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .find_source_by_token("tok-2", later)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.find_source_by_token("nope", now).await.unwrap().is_none());
}

pub async fn accepted_requests_are_forwarded_once_per_dedup_key(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "generic-webhook"), "tok-d".into())
        .await
        .unwrap();
    store
        .create_endpoint(&org, &source.app_id, endpoint_data(None))
        .await
        .unwrap();
    let mut disabled = endpoint_data(None);
    disabled.disabled = true;
    store
        .create_endpoint(&org, &source.app_id, disabled)
        .await
        .unwrap();
    let first = store
        .record_ingest(&org, &source, received(b"{}", Some("k1"), true))
        .await
        .unwrap();
    assert_eq!(first.status, IngestStatus::Accepted);
    assert_eq!(first.deliveries, 1, "enabled destinations only");
    assert!(first.msg_id.is_some());
    // Repeats of the key are duplicates of the first (the server test sends them concurrently).
    let tasks = (0..8).map(|_| store.record_ingest(&org, &source, received(b"{}", Some("k1"), true)));
    let mut dups = Vec::new();
    for t in tasks {
        dups.push(t.await.unwrap());
    }
    assert!(
        dups.iter()
            .all(|d| d.status == IngestStatus::Duplicate && d.msg_id.is_none())
    );
    assert!(dups.iter().all(|d| d.duplicate_of.as_ref() == Some(&first.id)));
    let other = store
        .record_ingest(&org, &source, received(b"{}", Some("k2"), true))
        .await
        .unwrap();
    assert_eq!(other.status, IngestStatus::Accepted);
    // A rejected request never counts as the original of a key.
    let mut rejected = received(b"{}", Some("k3"), true);
    rejected.status = IngestStatus::Rejected;
    rejected.reason = Some("bad signature".into());
    let r = store.record_ingest(&org, &source, rejected).await.unwrap();
    assert_eq!((r.status, r.deliveries), (IngestStatus::Rejected, 0));
    let after = store
        .record_ingest(&org, &source, received(b"{}", Some("k3"), true))
        .await
        .unwrap();
    assert_eq!(after.status, IngestStatus::Accepted);
    // Outside the window the key is new again.
    let mut old = received(b"{}", Some("k1"), true);
    old.dedup = Some(("k1".into(), Utc::now() + chrono::Duration::seconds(1)));
    assert_eq!(
        store.record_ingest(&org, &source, old).await.unwrap().status,
        IngestStatus::Accepted
    );
}

pub async fn forwarded_requests_carry_their_exact_body(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "generic-webhook"), "tok-f".into())
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &source.app_id, endpoint_data(None))
        .await
        .unwrap();
    let body: Vec<u8> = (0..=255u8).collect();
    let rec = store
        .record_ingest(&org, &source, received(&body, None, true))
        .await
        .unwrap();
    let claimed = claim_all(store, Utc::now()).await;
    assert_eq!(claimed.len(), 1);
    let raw = claimed[0].raw.as_ref().unwrap();
    assert_eq!(raw.body, body);
    assert_eq!(
        raw.headers,
        vec![("content-type".to_owned(), "application/octet-stream".to_owned())]
    );
    assert_eq!(claimed[0].endpoint.id, ep.id);
    assert_eq!(Some(&claimed[0].message.id), rec.msg_id.as_ref());
    // The log entry keeps everything.
    let entry = store.get_ingest_request(&org, &source.id, &rec.id).await.unwrap();
    assert_eq!(entry.body, body);
    assert_eq!(entry.query, "a=1");
    assert_eq!(entry.headers.len(), 2);
    assert_eq!(entry.client_addr.as_deref(), Some("203.0.113.9"));
    // Replay: a new message referring to the same entry.
    let (msg, n) = store
        .create_message(
            &org,
            &source.app_id,
            NewMessage {
                payload: String::new(),
                forward: Some(ForwardedRequest {
                    log_id: rec.id.clone(),
                    headers: vec![],
                }),
                ..new_message("ingest.generic-webhook", None)
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let claimed = claim_all(store, Utc::now()).await;
    assert_eq!(claimed[0].message.id, msg.id);
    assert_eq!(claimed[0].raw.as_ref().unwrap().body, body);
}

pub async fn cron_firings_are_recorded_once(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut data = source_data(None, "cron");
    data.config = serde_json::json!({"schedule": "*/5 * * * *", "payload": "{}"});
    let source = store.create_source(&org, data, "tok-c".into()).await.unwrap();
    let at = Utc::now();
    let mut first = received(b"{}", None, true);
    first.cron = Some((None, at));
    store.record_ingest(&org, &source, first).await.unwrap();
    let mut again = received(b"{}", None, true);
    again.cron = Some((None, at));
    assert!(matches!(
        store.record_ingest(&org, &source, again).await,
        Err(StoreError::Conflict(_))
    ));
    let crons = store.cron_sources().await.unwrap();
    assert_eq!(crons.len(), 1);
    assert_eq!(
        crons[0].2.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    let mut next = received(b"{}", None, true);
    next.cron = Some((crons[0].2, at + chrono::Duration::minutes(5)));
    store.record_ingest(&org, &source, next).await.unwrap();
    let log = store
        .list_ingest_log(
            &org,
            &source.id,
            &ListQuery::default(),
            &IngestLogFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(log.items.len(), 2);
}

pub async fn ingest_logs_filter_page_and_expire(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "generic-webhook"), "tok-l".into())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut r = received(format!("{i}").as_bytes(), None, false);
        if i % 2 == 1 {
            r.status = IngestStatus::Rejected;
        }
        ids.push(store.record_ingest(&org, &source, r).await.unwrap().id);
    }
    let newest_first = ListQuery {
        limit: 2,
        cursor: None,
        order: Order::Descending,
    };
    let page = store
        .list_ingest_log(&org, &source.id, &newest_first, &IngestLogFilter::default())
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>(),
        vec![ids[4].clone(), ids[3].clone()]
    );
    assert!(page.has_more);
    let rejected = store
        .list_ingest_log(
            &org,
            &source.id,
            &ListQuery::default(),
            &IngestLogFilter {
                status: Some(IngestStatus::Rejected),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(rejected.items.len(), 2);
    // Other tenants see nothing.
    assert!(matches!(
        store.get_ingest_request(&other, &source.id, &ids[0]).await,
        Err(StoreError::NotFound(_))
    ));
    let theirs = store
        .list_ingest_log(
            &other,
            &source.id,
            &ListQuery::default(),
            &IngestLogFilter::default(),
        )
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
    // Retention.
    let deleted = store
        .delete_ingest_requests_before(Utc::now() + chrono::Duration::seconds(1), 3)
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    let deleted = store
        .delete_ingest_requests_before(Utc::now() + chrono::Duration::seconds(1), 3)
        .await
        .unwrap();
    assert_eq!(deleted, 2);
}

// --- What must hold when several nodes (here: concurrent callers, each on its own
// connection where the backend pools them) work on one database at once.

/// Runs `n` copies of `f(i)` at once and returns their results in order.
async fn at_once<'a, T, F, Fut>(n: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + 'a,
{
    futures_util::future::join_all((0..n).map(f)).await
}

pub async fn concurrent_claims_never_overlap(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("claims", None))
        .await
        .unwrap();
    for uid in ["c1", "c2"] {
        store
            .create_endpoint(&org, &app.id, endpoint_data(Some(uid)))
            .await
            .unwrap();
    }
    for _ in 0..100 {
        store
            .create_message(&org, &app.id, new_message("a.b", None))
            .await
            .unwrap();
    }
    let now = Utc::now();
    // Eight "nodes" claim batches of 7 until the queue is empty.
    let batches = at_once(8, |i| async move {
        let owner = format!("node-{i}");
        let mut mine = Vec::new();
        loop {
            let got = store
                .claim_due(
                    now,
                    7,
                    now + chrono::Duration::seconds(30),
                    &owner,
                    &EndpointRoom::any(),
                )
                .await
                .unwrap();
            if got.is_empty() {
                return mine;
            }
            mine.extend(got.into_iter().map(|d| d.id));
        }
    })
    .await;
    let all: Vec<i64> = batches.into_iter().flatten().collect();
    let distinct: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every delivery claimed");
    assert_eq!(distinct.len(), 200, "no delivery claimed twice");
}

pub async fn concurrent_idempotency_claims_run_once(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let token = hookd_core::id::TokenId::generate();
    let now = Utc::now();
    let window = IdempotencyWindow {
        now,
        stale_before: now - chrono::Duration::minutes(2),
        expired_before: now - chrono::Duration::hours(12),
    };
    let answers = at_once(10, |_| {
        let (org, token) = (org.clone(), token.clone());
        async move {
            store
                .idempotency_begin(&org, &token, "same-key", "fp", window)
                .await
                .unwrap()
        }
    })
    .await;
    let started = answers
        .iter()
        .filter(|a| **a == IdempotencyBegin::Started)
        .count();
    assert_eq!(started, 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, IdempotencyBegin::Started | IdempotencyBegin::InProgress))
    );
}

pub async fn concurrent_event_ids_are_unique(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("eids", None))
        .await
        .unwrap();
    let results = at_once(10, |_| {
        let (org, app) = (org.clone(), app.id.clone());
        async move {
            let mut m = new_message("a.b", None);
            m.event_id = Some("evt-once".parse().unwrap());
            store.create_message(&org, &app, m).await
        }
    })
    .await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1);
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict(_))))
    );
}

pub async fn concurrent_exhaustion_disables_once(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("exhaust", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let t0 = Utc::now();
    // The streak starts long enough ago that the next exhaustion disables.
    store
        .note_exhausted(
            &org,
            &app.id,
            &ep.id,
            t0 - chrono::Duration::days(6),
            t0 - chrono::Duration::days(7),
        )
        .await
        .unwrap();
    let disabled = at_once(10, |_| {
        let (org, app, ep) = (org.clone(), app.id.clone(), ep.id.clone());
        async move {
            store
                .note_exhausted(&org, &app, &ep, t0, t0 - chrono::Duration::days(5))
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(disabled.iter().filter(|d| **d).count(), 1, "{disabled:?}");
    assert!(
        store
            .get_endpoint(&org, &app.id, ep.id.as_str())
            .await
            .unwrap()
            .data
            .disabled
    );
}

pub async fn shared_throttle_allows_the_rate(store: &dyn Store) {
    if !store.shares_throttle() {
        // Single-node backends throttle in the engine's memory (tested there).
        return;
    }
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("throttle", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let now = Utc::now();
    let waits = at_once(20, |_| {
        let ep = ep.id.clone();
        async move { store.throttle_take(&ep, 5, now).await.unwrap() }
    })
    .await;
    // A burst of one second's worth, then each send waits its turn.
    assert_eq!(waits.iter().filter(|w| w.is_none()).count(), 5, "{waits:?}");
    assert!(
        waits
            .iter()
            .flatten()
            .all(|w| *w > std::time::Duration::ZERO && *w <= std::time::Duration::from_millis(200))
    );
    // 200 ms later (rate 5/s) one more send is allowed, and only one.
    let later = now + chrono::Duration::milliseconds(200);
    assert_eq!(store.throttle_take(&ep.id, 5, later).await.unwrap(), None);
    assert!(store.throttle_take(&ep.id, 5, later).await.unwrap().is_some());
}

// ---- The data API ----------------------------------------------------------------

fn collection(publish_events: bool) -> DefinitionSpec {
    DefinitionSpec::Collection(CollectionData {
        description: String::new(),
        schema: None,
        publish_events,
    })
}

fn board(policy: hookd_core::data::ScorePolicy, order: hookd_core::data::ScoreOrder) -> DefinitionSpec {
    DefinitionSpec::Leaderboard(LeaderboardData {
        description: String::new(),
        policy,
        order,
        reset: hookd_core::data::ResetPeriod::Never,
    })
}

fn dn(s: &str) -> hookd_core::name::DataName {
    s.parse().unwrap()
}

fn ik(s: &str) -> hookd_core::name::ItemKey {
    s.parse().unwrap()
}

fn put(body: serde_json::Value) -> DocumentEdit {
    Box::new(move |_, _| Ok(DocumentChange::Put(body)))
}

fn far_future() -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::days(30)
}

pub async fn data_definitions_round_trip_and_are_tenant_scoped(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("data", None))
        .await
        .unwrap();
    let kinds = [
        DefinitionKind::Collection,
        DefinitionKind::Leaderboard,
        DefinitionKind::Mode,
    ];
    let mode = DefinitionSpec::Mode(ModeData {
        description: "scores".into(),
        operation: hookd_core::data::ModeOperation::LeaderboardSubmit,
        target: Some(dn("points")),
        body_schema: Some(serde_json::json!({"type": "object"})),
    });
    for name in ["b", "a", "c"] {
        store
            .create_definition(&org, &app.id, name, collection(false))
            .await
            .unwrap();
    }
    // The same name may be used by another kind, not twice by one kind.
    let created = store
        .create_definition(&org, &app.id, "a", mode.clone())
        .await
        .unwrap();
    assert_eq!(created.spec, mode);
    store
        .create_definition(&org, &app.id, "a", board(Default::default(), Default::default()))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_definition(&org, &app.id, "a", collection(true))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let got = store
        .get_definition(&org, &app.id, DefinitionKind::Mode, "a")
        .await
        .unwrap();
    assert_eq!(got, created);
    let names: Vec<String> = store
        .list_definitions(&org, &app.id, DefinitionKind::Collection, &ListQuery::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    let updated = store
        .update_definition(
            &org,
            &app.id,
            DefinitionKind::Collection,
            "b",
            Box::new(|spec| {
                if let DefinitionSpec::Collection(c) = spec {
                    c.publish_events = true;
                }
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.spec, collection(true));
    assert!(matches!(
        store
            .update_definition(
                &org,
                &app.id,
                DefinitionKind::Collection,
                "b",
                Box::new(|spec| {
                    *spec = DefinitionSpec::Mode(ModeData {
                        description: String::new(),
                        operation: hookd_core::data::ModeOperation::Capture,
                        target: None,
                        body_schema: None,
                    });
                    Ok(())
                })
            )
            .await,
        Err(StoreError::Rejected { .. })
    ));
    // Another organisation sees nothing and cannot create in this application.
    for kind in kinds {
        assert!(matches!(
            store.get_definition(&other, &app.id, kind, "a").await,
            Err(StoreError::NotFound(_))
        ));
        assert!(
            store
                .list_definitions(&other, &app.id, kind, &ListQuery::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert!(matches!(
            store.delete_definition(&other, &app.id, kind, "a").await,
            Err(StoreError::NotFound(_))
        ));
    }
    assert!(matches!(
        store
            .create_definition(&other, &app.id, "x", collection(false))
            .await,
        Err(StoreError::NotFound("application"))
    ));
    store
        .delete_definition(&org, &app.id, DefinitionKind::Mode, "a")
        .await
        .unwrap();
    assert!(matches!(
        store
            .get_definition(&org, &app.id, DefinitionKind::Mode, "a")
            .await,
        Err(StoreError::NotFound("mode"))
    ));
    // The collection of the same name is untouched.
    store
        .get_definition(&org, &app.id, DefinitionKind::Collection, "a")
        .await
        .unwrap();
    // Deleting the application deletes its definitions.
    store.delete_application(&org, app.id.as_str()).await.unwrap();
    let again = store
        .create_application(&org, app_data("data", None))
        .await
        .unwrap();
    assert!(
        store
            .list_definitions(&org, &again.id, DefinitionKind::Collection, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn documents_version_filter_and_go_with_their_collection(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("docs", None))
        .await
        .unwrap();
    let players = dn("players");
    assert!(matches!(
        store.get_document(&org, &app.id, &players, &ik("p1")).await,
        Err(StoreError::NotFound("collection"))
    ));
    assert!(matches!(
        store
            .write_document(
                &org,
                &app.id,
                &players,
                &ik("p1"),
                put(serde_json::json!({})),
                far_future()
            )
            .await,
        Err(StoreError::NotFound("collection"))
    ));
    store
        .create_definition(&org, &app.id, "players", collection(false))
        .await
        .unwrap();
    assert!(matches!(
        store.get_document(&org, &app.id, &players, &ik("p1")).await,
        Err(StoreError::NotFound("document"))
    ));
    let docs = [
        (
            "p1",
            serde_json::json!({"team": "red", "level": 3, "active": true}),
        ),
        (
            "p2",
            serde_json::json!({"team": "blue", "level": 3, "active": false}),
        ),
        (
            "p10",
            serde_json::json!({"team": "red", "level": 7, "active": true}),
        ),
        (
            "q1",
            serde_json::json!({"team": "red", "level": 3, "active": true}),
        ),
    ];
    for (key, body) in &docs {
        let w = store
            .write_document(&org, &app.id, &players, &ik(key), put(body.clone()), far_future())
            .await
            .unwrap();
        assert_eq!(w.before, None);
        assert_eq!(w.after.as_ref().unwrap().version, 1);
        assert_eq!(w.event_deliveries, 0, "the collection does not publish");
    }
    let w = store
        .write_document(
            &org,
            &app.id,
            &players,
            &ik("p1"),
            put(serde_json::json!({"team": "red", "level": 4, "active": true})),
            far_future(),
        )
        .await
        .unwrap();
    assert_eq!(w.before.as_ref().unwrap().version, 1);
    let p1 = w.after.unwrap();
    assert_eq!(p1.version, 2);
    assert_eq!(p1.body["level"], 4);
    assert_eq!(
        store
            .get_document(&org, &app.id, &players, &ik("p1"))
            .await
            .unwrap(),
        p1
    );
    // Keep changes nothing, not even the version.
    let w = store
        .write_document(
            &org,
            &app.id,
            &players,
            &ik("p1"),
            Box::new(|_, _| Ok(DocumentChange::Keep)),
            far_future(),
        )
        .await
        .unwrap();
    assert_eq!(w.after.unwrap().version, 2);
    // A refused edit writes nothing.
    assert!(
        store
            .write_document(
                &org,
                &app.id,
                &players,
                &ik("p1"),
                Box::new(|_, _| Err(StoreError::rejected("body", "no"))),
                far_future()
            )
            .await
            .is_err()
    );
    let list = |filter: DocumentFilter, limit: usize| {
        let (org, app, players) = (org.clone(), app.id.clone(), players.clone());
        async move {
            store
                .list_documents(
                    &org,
                    &app,
                    &players,
                    &ListQuery {
                        limit,
                        ..Default::default()
                    },
                    &filter,
                )
                .await
                .unwrap()
        }
    };
    let keys = |page: &Page<Document>| page.items.iter().map(|d| d.key.to_string()).collect::<Vec<_>>();
    assert_eq!(
        keys(&list(DocumentFilter::default(), 50).await),
        ["p1", "p10", "p2", "q1"]
    );
    let prefixed = DocumentFilter {
        prefix: Some("p1".into()),
        equals: vec![],
    };
    assert_eq!(keys(&list(prefixed, 50).await), ["p1", "p10"]);
    let red_level_3 = DocumentFilter {
        prefix: None,
        equals: vec![
            ("team".into(), serde_json::json!("red")),
            ("level".into(), serde_json::json!(3)),
        ],
    };
    assert_eq!(keys(&list(red_level_3, 50).await), ["q1"]);
    let inactive = DocumentFilter {
        prefix: Some("p".into()),
        equals: vec![("active".into(), serde_json::json!(false))],
    };
    assert_eq!(keys(&list(inactive, 50).await), ["p2"]);
    // Pages by key.
    let first = list(DocumentFilter::default(), 2).await;
    assert_eq!(keys(&first), ["p1", "p10"]);
    assert!(first.has_more);
    let next = store
        .list_documents(
            &org,
            &app.id,
            &players,
            &ListQuery {
                limit: 2,
                cursor: Some(Cursor {
                    key: "p10".into(),
                    backward: false,
                }),
                order: Order::Ascending,
            },
            &DocumentFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(keys(&next), ["p2", "q1"]);
    // Another organisation sees nothing.
    assert!(
        store
            .get_document(&other, &app.id, &players, &ik("p1"))
            .await
            .is_err()
    );
    assert!(
        store
            .list_documents(
                &other,
                &app.id,
                &players,
                &ListQuery::default(),
                &DocumentFilter::default()
            )
            .await
            .is_err()
    );
    assert!(
        store
            .write_document(
                &other,
                &app.id,
                &players,
                &ik("p1"),
                put(serde_json::json!({})),
                far_future()
            )
            .await
            .is_err()
    );
    // Delete, then the collection with the rest.
    let w = store
        .write_document(
            &org,
            &app.id,
            &players,
            &ik("p2"),
            Box::new(|_, _| Ok(DocumentChange::Delete)),
            far_future(),
        )
        .await
        .unwrap();
    assert!(w.before.is_some() && w.after.is_none());
    assert!(matches!(
        store.get_document(&org, &app.id, &players, &ik("p2")).await,
        Err(StoreError::NotFound("document"))
    ));
    store
        .delete_definition(&org, &app.id, DefinitionKind::Collection, "players")
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "players", collection(false))
        .await
        .unwrap();
    assert!(
        list(DocumentFilter::default(), 50).await.items.is_empty(),
        "documents went with their collection"
    );
}

pub async fn concurrent_document_edits_apply_one_after_another(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("inc", None))
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "wallets", collection(false))
        .await
        .unwrap();
    let wallets = dn("wallets");
    // Starts on a document that does not exist yet: the first edits race to create it.
    let results = at_once(24, |_| {
        let (org, app, wallets) = (org.clone(), app.id.clone(), wallets.clone());
        async move {
            let edit: DocumentEdit = Box::new(|_, current| {
                let mut body = current.map_or_else(|| serde_json::json!({}), |d| d.body.clone());
                let coins = body["coins"].as_i64().unwrap_or(0);
                body["coins"] = serde_json::json!(coins + 5);
                Ok(DocumentChange::Put(body))
            });
            store
                .write_document(&org, &app, &wallets, &ik("w1"), edit, far_future())
                .await
        }
    })
    .await;
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let doc = store
        .get_document(&org, &app.id, &wallets, &ik("w1"))
        .await
        .unwrap();
    assert_eq!(doc.body["coins"], 24 * 5);
    assert_eq!(doc.version, 24);
}

pub async fn document_changes_publish_events_in_the_same_write(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("events", None))
        .await
        .unwrap();
    let mut only_profiles = endpoint_data(None);
    only_profiles.channels = Some(BTreeSet::from(["profiles".parse().unwrap()]));
    store.create_endpoint(&org, &app.id, only_profiles).await.unwrap();
    store
        .create_definition(&org, &app.id, "profiles", collection(true))
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "quiet", collection(false))
        .await
        .unwrap();
    let profiles = dn("profiles");
    let key = ik("u1");
    let w = store
        .write_document(
            &org,
            &app.id,
            &profiles,
            &key,
            put(serde_json::json!({"name": "Ada"})),
            far_future(),
        )
        .await
        .unwrap();
    assert_eq!(w.event_deliveries, 1);
    store
        .write_document(
            &org,
            &app.id,
            &profiles,
            &key,
            put(serde_json::json!({"name": "Ada L."})),
            far_future(),
        )
        .await
        .unwrap();
    // Nothing changed: no event.
    let w = store
        .write_document(
            &org,
            &app.id,
            &profiles,
            &key,
            put(serde_json::json!({"name": "Ada L."})),
            far_future(),
        )
        .await
        .unwrap();
    assert_eq!(w.event_deliveries, 0);
    store
        .write_document(
            &org,
            &app.id,
            &profiles,
            &key,
            Box::new(|_, _| Ok(DocumentChange::Delete)),
            far_future(),
        )
        .await
        .unwrap();
    // A refused edit publishes nothing; a quiet collection publishes nothing.
    let _ = store
        .write_document(
            &org,
            &app.id,
            &profiles,
            &key,
            Box::new(|_, _| Err(StoreError::rejected("body", "no"))),
            far_future(),
        )
        .await;
    store
        .write_document(
            &org,
            &app.id,
            &dn("quiet"),
            &key,
            put(serde_json::json!({})),
            far_future(),
        )
        .await
        .unwrap();
    let messages = store
        .list_messages(&org, &app.id, &ListQuery::default(), &MessageFilter::default())
        .await
        .unwrap()
        .items;
    let events: Vec<(String, serde_json::Value)> = messages
        .iter()
        .map(|m| {
            (
                m.event_type.to_string(),
                serde_json::from_str(m.payload.as_deref().unwrap()).unwrap(),
            )
        })
        .collect();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["document.created", "document.updated", "document.deleted"]
    );
    assert_eq!(events[0].1["collection"], "profiles");
    assert_eq!(events[0].1["key"], "u1");
    assert_eq!(events[0].1["version"], 1);
    assert_eq!(events[0].1["document"]["name"], "Ada");
    assert_eq!(events[1].1["previous"]["name"], "Ada");
    assert_eq!(events[2].1["document"], serde_json::Value::Null);
    assert!(
        messages
            .iter()
            .all(|m| m.channels == Some(BTreeSet::from(["profiles".parse().unwrap()])))
    );
    assert_eq!(
        claim_all(store, Utc::now()).await.len(),
        3,
        "each event has its delivery"
    );
}

pub async fn scores_follow_policies_ranks_and_periods(store: &dyn Store) {
    use hookd_core::data::{ResetPeriod, ScoreOrder, ScorePolicy};
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("game", None))
        .await
        .unwrap();
    let now = Utc::now();
    for (name, policy, order) in [
        ("best", ScorePolicy::Best, ScoreOrder::Desc),
        ("latest", ScorePolicy::Latest, ScoreOrder::Desc),
        ("sum", ScorePolicy::Sum, ScoreOrder::Desc),
        ("fastest", ScorePolicy::Best, ScoreOrder::Asc),
    ] {
        store
            .create_definition(&org, &app.id, name, board(policy, order))
            .await
            .unwrap();
    }
    let submit = |b: &'static str, p: &'static str, s: i64| {
        let (org, app) = (org.clone(), app.id.clone());
        async move {
            store
                .submit_score(&org, &app, &dn(b), &ik(p), s, now)
                .await
                .unwrap()
        }
    };
    for (b, first, second, kept) in [
        ("best", 50, 40, 50),
        ("latest", 50, 40, 40),
        ("sum", 50, 40, 90),
        ("fastest", 50, 40, 40),
    ] {
        let r = submit(b, "ann", first).await;
        assert!(r.changed);
        assert_eq!(r.period, "all");
        let r = submit(b, "ann", second).await;
        assert_eq!(r.entry.score, kept, "{b}");
        assert_eq!(r.changed, kept != first, "{b}");
        assert_eq!(r.entry.rank, 1);
    }
    // Ties rank by who reached the score first, then by player id.
    for (player, score) in [("bob", 70), ("cy", 30), ("dee", 50), ("eve", 70), ("al", 30)] {
        submit("best", player, score).await;
    }
    let (period, top) = store
        .top_scores(&org, &app.id, &dn("best"), &Period::At(now), 10)
        .await
        .unwrap();
    assert_eq!(period, "all");
    let order: Vec<(String, i64, u64)> = top
        .iter()
        .map(|e| (e.player.to_string(), e.score, e.rank))
        .collect();
    assert_eq!(
        order,
        [
            ("bob".to_string(), 70, 1),
            ("eve".into(), 70, 2),
            ("ann".into(), 50, 3),
            ("dee".into(), 50, 4),
            ("cy".into(), 30, 5),
            ("al".into(), 30, 6)
        ]
    );
    let (_, top3) = store
        .top_scores(&org, &app.id, &dn("best"), &Period::At(now), 3)
        .await
        .unwrap();
    assert_eq!(top3, top[..3]);
    let (_, around) = store
        .scores_around(&org, &app.id, &dn("best"), &ik("dee"), 1, &Period::At(now))
        .await
        .unwrap();
    assert_eq!(around, top[2..5]);
    let (_, edge) = store
        .scores_around(&org, &app.id, &dn("best"), &ik("bob"), 2, &Period::At(now))
        .await
        .unwrap();
    assert_eq!(edge, top[..3]);
    assert!(matches!(
        store
            .scores_around(&org, &app.id, &dn("best"), &ik("nobody"), 2, &Period::At(now))
            .await,
        Err(StoreError::NotFound("score"))
    ));
    // Lower is better on an ascending board.
    submit("fastest", "bob", 45).await;
    let (_, fastest) = store
        .top_scores(&org, &app.id, &dn("fastest"), &Period::At(now), 10)
        .await
        .unwrap();
    assert_eq!(fastest.iter().map(|e| e.score).collect::<Vec<_>>(), [40, 45]);
    // Scores past the JavaScript-safe range are refused and change nothing.
    assert!(matches!(
        store
            .submit_score(
                &org,
                &app.id,
                &dn("sum"),
                &ik("ann"),
                hookd_core::data::MAX_SCORE,
                now
            )
            .await,
        Err(StoreError::Rejected { .. })
    ));
    // A daily board keeps each day apart; past days stay readable.
    store
        .create_definition(
            &org,
            &app.id,
            "daily",
            DefinitionSpec::Leaderboard(LeaderboardData {
                reset: ResetPeriod::Daily,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let yesterday = now - chrono::Duration::days(1);
    store
        .submit_score(&org, &app.id, &dn("daily"), &ik("ann"), 10, yesterday)
        .await
        .unwrap();
    let today = store
        .submit_score(&org, &app.id, &dn("daily"), &ik("bob"), 5, now)
        .await
        .unwrap();
    assert_eq!(today.entry.rank, 1, "yesterday's scores do not count today");
    let (day, past) = store
        .top_scores(
            &org,
            &app.id,
            &dn("daily"),
            &Period::Named(yesterday.format("%Y-%m-%d").to_string()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(day, yesterday.format("%Y-%m-%d").to_string());
    assert_eq!(past.len(), 1);
    assert_eq!(past[0].player.as_str(), "ann");
    // Tenancy, then reset.
    assert!(
        store
            .top_scores(&other, &app.id, &dn("best"), &Period::At(now), 10)
            .await
            .is_err()
    );
    assert!(
        store
            .submit_score(&other, &app.id, &dn("best"), &ik("x"), 1, now)
            .await
            .is_err()
    );
    assert!(
        store
            .reset_leaderboard(&other, &app.id, &dn("best"))
            .await
            .is_err()
    );
    assert_eq!(
        store.reset_leaderboard(&org, &app.id, &dn("best")).await.unwrap(),
        6
    );
    assert!(
        store
            .top_scores(&org, &app.id, &dn("best"), &Period::At(now), 10)
            .await
            .unwrap()
            .1
            .is_empty()
    );
    assert_eq!(
        store
            .top_scores(&org, &app.id, &dn("sum"), &Period::At(now), 10)
            .await
            .unwrap()
            .1
            .len(),
        1
    );
}

pub async fn concurrent_scores_add_up_exactly(store: &dyn Store) {
    use hookd_core::data::{ScoreOrder, ScorePolicy};
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("sum", None))
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "xp", board(ScorePolicy::Sum, ScoreOrder::Desc))
        .await
        .unwrap();
    let results = at_once(30, |i| {
        let (org, app) = (org.clone(), app.id.clone());
        async move {
            let player = if i % 2 == 0 { "even" } else { "odd" };
            store
                .submit_score(&org, &app, &dn("xp"), &ik(player), 3, Utc::now())
                .await
        }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let (_, top) = store
        .top_scores(&org, &app.id, &dn("xp"), &Period::At(Utc::now()), 10)
        .await
        .unwrap();
    assert_eq!(top.iter().map(|e| e.score).collect::<Vec<_>>(), [45, 45]);
}

pub async fn api_keys_are_found_scoped_and_revoked(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("keys", None))
        .await
        .unwrap();
    let key = hookd_core::api_token::ApiKey::generate();
    let data = ApiKeyData {
        name: "mobile".into(),
        read: true,
        write: false,
        modes: Some(BTreeSet::from([dn("score")])),
        rate_limit: Some(20),
    };
    assert!(matches!(
        store
            .create_api_key(
                &other,
                &app.id,
                NewApiKey {
                    id: key.id.clone(),
                    hash: key.hash(),
                    data: data.clone()
                }
            )
            .await,
        Err(StoreError::NotFound("application"))
    ));
    let record = store
        .create_api_key(
            &org,
            &app.id,
            NewApiKey {
                id: key.id.clone(),
                hash: key.hash(),
                data: data.clone(),
            },
        )
        .await
        .unwrap();
    let found = store.find_api_key(&key.id).await.unwrap().unwrap();
    assert_eq!(found, record);
    assert_eq!(found.data, data);
    assert!(key.matches(&found.hash));
    assert_eq!(found.org_id, org);
    assert_eq!(found.app_id, app.id);
    let listed = store
        .list_api_keys(&org, &app.id, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(listed.items, [record]);
    assert!(
        store
            .list_api_keys(&other, &app.id, &ListQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(matches!(
        store.revoke_api_key(&other, &app.id, &key.id).await,
        Err(StoreError::NotFound(_))
    ));
    store.revoke_api_key(&org, &app.id, &key.id).await.unwrap();
    assert!(
        store
            .find_api_key(&key.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(matches!(
        store.revoke_api_key(&org, &app.id, &key.id).await,
        Err(StoreError::NotFound(_))
    ));
}

pub async fn usage_adds_up_per_org_and_day(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let one = UsageCount {
        reads: 1,
        writes: 0,
        credits: 1,
    };
    let write = UsageCount {
        reads: 0,
        writes: 1,
        credits: 2,
    };
    at_once(10, |i| {
        let org = org.clone();
        async move {
            store
                .add_usage(&org, day(22), if i % 2 == 0 { one } else { write })
                .await
                .unwrap()
        }
    })
    .await;
    store.add_usage(&org, day(23), one).await.unwrap();
    store.add_usage(&other, day(22), write).await.unwrap();
    let usage = store.list_usage(&org, day(1), day(30)).await.unwrap();
    assert_eq!(
        usage,
        [
            UsageDay {
                day: day(22),
                count: UsageCount {
                    reads: 5,
                    writes: 5,
                    credits: 15
                }
            },
            UsageDay {
                day: day(23),
                count: one
            },
        ]
    );
    assert_eq!(store.list_usage(&org, day(23), day(23)).await.unwrap().len(), 1);
    assert_eq!(
        store.list_usage(&other, day(1), day(30)).await.unwrap()[0].count,
        write
    );
}

pub async fn jobs_are_leased_stepped_and_taken_over(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let t0 = Utc::now();
    let lease = chrono::Duration::seconds(30);
    let job = store
        .create_job(&org, "endpoint.recover", serde_json::json!({"done": 0}), t0)
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Running);
    let claimed = store.claim_job(t0, t0 + lease, "node-a").await.unwrap().unwrap();
    assert_eq!(
        (claimed.id.clone(), claimed.state.clone()),
        (job.id.clone(), serde_json::json!({"done": 0}))
    );
    // Held: nobody else gets it, and only its holder saves a step.
    assert!(store.claim_job(t0, t0 + lease, "node-b").await.unwrap().is_none());
    let step = |state: serde_json::Value, status, at| JobStep {
        state,
        status,
        error: None,
        now: at,
        lease_until: at + lease,
    };
    assert!(
        !store
            .save_job(
                &job.id,
                "node-b",
                step(serde_json::json!({"done": 9}), JobStatus::Running, t0)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .save_job(
                &job.id,
                "node-a",
                step(serde_json::json!({"done": 1}), JobStatus::Running, t0)
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_job(&org, &job.id).await.unwrap().state,
        serde_json::json!({"done": 1})
    );
    assert!(matches!(
        store.get_job(&other, &job.id).await,
        Err(StoreError::NotFound(_))
    ));
    // Its holder died: once the lease ran out, another node resumes from the last step.
    let later = t0 + lease + chrono::Duration::seconds(1);
    let resumed = store
        .claim_job(later, later + lease, "node-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resumed.state, serde_json::json!({"done": 1}));
    assert!(
        !store
            .save_job(
                &job.id,
                "node-a",
                step(serde_json::json!({"done": 5}), JobStatus::Running, later)
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .save_job(
                &job.id,
                "node-b",
                step(serde_json::json!({"done": 2}), JobStatus::Finished, later)
            )
            .await
            .unwrap()
    );
    let finished = store.get_job(&org, &job.id).await.unwrap();
    assert_eq!(
        (finished.status, finished.state),
        (JobStatus::Finished, serde_json::json!({"done": 2}))
    );
    // A finished job is never claimed or stepped again.
    let much_later = later + lease * 10;
    assert!(
        store
            .claim_job(much_later, much_later + lease, "node-c")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .save_job(
                &job.id,
                "node-b",
                step(serde_json::json!({}), JobStatus::Running, much_later)
            )
            .await
            .unwrap()
    );
    // A restarted node gives back what it held, at once.
    let second = store
        .create_job(&org, "endpoint.recover", serde_json::json!({}), much_later)
        .await
        .unwrap();
    store
        .claim_job(much_later, much_later + lease, "node-c")
        .await
        .unwrap()
        .unwrap();
    store.release_jobs("node-c").await.unwrap();
    let retaken = store
        .claim_job(much_later, much_later + lease, "node-d")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retaken.id, second.id);
}

pub async fn concurrent_job_claims_never_overlap(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let now = Utc::now();
    let mut made = BTreeSet::new();
    for i in 0..5 {
        let job = store
            .create_job(&org, "k", serde_json::json!({"i": i}), now)
            .await
            .unwrap();
        made.insert(job.id.to_string());
    }
    let claims = (0..8).map(|n| async move {
        let owner = format!("node-{n}");
        let mut got = Vec::new();
        while let Some(job) = store
            .claim_job(now, now + chrono::Duration::seconds(30), &owner)
            .await
            .unwrap()
        {
            got.push(job.id.to_string());
        }
        got
    });
    let all: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all.len(), 5, "each job claimed once: {all:?}");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), made);
}
