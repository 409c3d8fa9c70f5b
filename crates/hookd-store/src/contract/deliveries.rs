//! Contract checks: The delivery queue: claims, attempts, auto-disable, throttles.

#![allow(clippy::unwrap_used)]

use super::*;
use hookd_core::throttle::ThrottleRate;

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

/// Many attempts recorded at once (PostgreSQL records the sends that ended together
/// with one statement): each call gets its own answer, as if alone. A delivery whose
/// endpoint was deleted while it was in flight records nothing; the others are
/// logged, and each moves on as its own verdict says.
pub async fn concurrent_attempt_records_are_each_answered_as_if_alone(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("records", None))
        .await
        .unwrap();
    let kept = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let gone = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    for _ in 0..120 {
        store
            .create_message(&org, &app.id, new_message("a.b", None))
            .await
            .unwrap();
    }
    let now = Utc::now();
    let mut claimed = Vec::new();
    loop {
        let got = claim_all(store, now).await;
        if got.is_empty() {
            break;
        }
        claimed.extend(got);
    }
    assert_eq!(claimed.len(), 240);
    store
        .delete_endpoint(&org, &app.id, gone.id.as_str())
        .await
        .unwrap();
    let retry_at = now + chrono::Duration::seconds(60);
    let answers = at_once(claimed.len(), |i| {
        let d = &claimed[i];
        async move {
            let (attempt, next) = if i.is_multiple_of(2) {
                (attempt(DeliveryStatus::Success, 200), NextStep::Done)
            } else {
                (attempt(DeliveryStatus::Fail, 500), NextStep::RetryAt(retry_at))
            };
            (d, store.finish_attempt(d.id, attempt, next).await.unwrap())
        }
    })
    .await;
    let mut ids = BTreeSet::new();
    let (mut done, mut retried) = (BTreeSet::new(), BTreeSet::new());
    for (i, (d, answer)) in answers.into_iter().enumerate() {
        if d.endpoint.id == gone.id {
            assert_eq!(answer, None, "delivery {} went with its endpoint", d.id);
            continue;
        }
        let id = answer.unwrap_or_else(|| panic!("delivery {} was recorded", d.id));
        assert!(ids.insert(id), "one attempt id per record");
        if i.is_multiple_of(2) {
            done.insert(d.id);
        } else {
            retried.insert(d.id);
        }
    }
    assert_eq!(ids.len(), 120);
    let attempts = |status| AttemptFilter {
        status: Some(status),
        endpoint: Some(kept.id.clone()),
        ..Default::default()
    };
    let (org, app) = (&org, &app);
    let count = |status| async move {
        store
            .list_attempts(
                org,
                &app.id,
                &ListQuery {
                    limit: 250,
                    ..Default::default()
                },
                &attempts(status),
            )
            .await
            .unwrap()
            .items
            .len()
    };
    assert_eq!(count(DeliveryStatus::Success).await, done.len());
    assert_eq!(count(DeliveryStatus::Fail).await, retried.len());
    assert!(
        claim_all(store, retry_at - chrono::Duration::seconds(1))
            .await
            .is_empty()
    );
    let mut again = BTreeSet::new();
    loop {
        let got = claim_all(store, retry_at).await;
        if got.is_empty() {
            break;
        }
        for d in got {
            assert_eq!(d.attempts, 1);
            again.insert(d.id);
        }
    }
    assert_eq!(again, retried, "exactly the retried deliveries come back");
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
        .finish_attempt(
            again.id,
            NewAttempt {
                transformed: true,
                headers: AttemptHeaders {
                    request: vec![("webhook-id".into(), "msg_1".into())],
                    response: vec![("server".into(), "test".into())],
                },
                ..attempt(DeliveryStatus::Success, 200)
            },
            NextStep::Done,
        )
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
    let transformed: Vec<bool> = page.items.iter().map(|a| a.transformed).collect();
    assert_eq!(transformed, [true, false]);
    // Headers are kept with the attempt; an attempt that recorded none reads as none.
    let headers = page.items[0].headers.clone().unwrap();
    assert_eq!(headers.request, [("webhook-id".to_owned(), "msg_1".to_owned())]);
    assert_eq!(headers.response, [("server".to_owned(), "test".to_owned())]);
    assert_eq!(page.items[1].headers, None);
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
    let (org, other) = two_orgs(store).await;
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
    // It is listed as failing since the streak began, to its organisation only.
    let failing = store.failing_endpoints(&org, 10).await.unwrap();
    assert_eq!(failing.len(), 1);
    assert_eq!(failing[0].0.id, ep.id);
    assert_eq!(failing[0].1.timestamp_millis(), t0.timestamp_millis());
    assert!(store.failing_endpoints(&other, 10).await.unwrap().is_empty());
    assert!(store.failing_endpoints(&org, 0).await.unwrap().is_empty());
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
    assert!(store.failing_endpoints(&org, 10).await.unwrap().is_empty());
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
    let five = ThrottleRate::new(5).unwrap();
    let waits = at_once(20, |_| {
        let ep = ep.id.clone();
        async move { store.throttle_take(&ep, five, now).await.unwrap() }
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
    assert_eq!(store.throttle_take(&ep.id, five, later).await.unwrap(), None);
    assert!(store.throttle_take(&ep.id, five, later).await.unwrap().is_some());
}

/// A `hookd listen` session's hold: listed for every other node until it runs out,
/// never for its own; a newer hold by another node takes it over; a deleted endpoint
/// takes its hold along. Single-node backends keep none.
pub async fn listener_holds_are_seen_by_the_other_nodes(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("holds", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let now = Utc::now();
    let until = now + chrono::Duration::seconds(30);
    store.hold_listener(&ep.id, "node-a", until).await.unwrap();
    let seen_by = |node: &'static str, at| {
        let ep = ep.id.clone();
        async move { store.listeners_elsewhere(node, at).await.unwrap().contains(&ep) }
    };
    if !store.shares_throttle() {
        assert!(!seen_by("node-b", now).await, "a single node keeps no holds");
        return;
    }
    assert!(seen_by("node-b", now).await);
    assert!(!seen_by("node-a", now).await, "never its own");
    assert!(!seen_by("node-b", until).await, "ran out");
    store.hold_listener(&ep.id, "node-b", until).await.unwrap();
    assert!(seen_by("node-a", now).await, "taken over");
    assert!(!seen_by("node-b", now).await);
    store
        .delete_endpoint(&org, &app.id, ep.id.as_str())
        .await
        .unwrap();
    assert!(!seen_by("node-a", now).await, "gone with its endpoint");
    // A hold for an endpoint that no longer exists keeps nothing.
    store.hold_listener(&ep.id, "node-b", until).await.unwrap();
    assert!(!seen_by("node-a", now).await);
}

/// A waiting retry is made due at once for its endpoint only, never for a leased
/// delivery or another organisation's endpoint.
pub async fn waiting_retries_of_an_endpoint_are_made_due(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("listen", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let second = store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    let now = Utc::now();
    let later = now + chrono::Duration::minutes(30);
    for d in claim_all(store, now).await {
        store
            .finish_attempt(d.id, attempt(DeliveryStatus::Fail, 0), NextStep::RetryAt(later))
            .await
            .unwrap();
    }
    let at = now + chrono::Duration::seconds(1);
    assert!(claim_all(store, at).await.is_empty(), "both wait for their retry");
    // Another organisation cannot move them.
    let moved = store
        .retry_endpoint_now(&other, &app.id, &ep.id, at)
        .await
        .unwrap();
    assert_eq!(moved, 0);
    assert_eq!(
        store.retry_endpoint_now(&org, &app.id, &ep.id, at).await.unwrap(),
        1
    );
    let due = claim_all(store, at).await;
    assert_eq!(due.len(), 1, "only that endpoint's delivery is due");
    assert_eq!(due[0].endpoint.id, ep.id);
    assert_eq!(due[0].attempts, 1);
    // Leased now: left alone.
    assert_eq!(
        store.retry_endpoint_now(&org, &app.id, &ep.id, at).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .retry_endpoint_now(&org, &app.id, &second.id, at)
            .await
            .unwrap(),
        1
    );
}
