//! Contract checks: Messages, event ids and retention.

#![allow(clippy::unwrap_used)]

use super::*;

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
    let got = claimed_endpoints(store).await;
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

/// Many messages at once (PostgreSQL writes concurrent ones in one statement, a group
/// commit): each call gets its own answer, as if they had come one by one. Taken
/// `eventId`s conflict (also within one batch), a deleted application's messages are
/// not found while the others of their batch are stored, and each stored message has
/// exactly the deliveries its subscriptions give it.
pub async fn concurrent_messages_are_each_answered_as_if_alone(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("many", None))
        .await
        .unwrap();
    let gone = store
        .create_application(&org, app_data("gone-many", None))
        .await
        .unwrap();
    store.delete_application(&org, gone.id.as_str()).await.unwrap();
    store
        .create_endpoint(&org, &app.id, endpoint_data(None))
        .await
        .unwrap();
    let mut typed = endpoint_data(None);
    typed.event_types = Some(["a.b".parse().unwrap()].into_iter().collect());
    store.create_endpoint(&org, &app.id, typed).await.unwrap();
    // Round one: 300 calls to the live application whose event ids repeat
    // (`i % 150`), so 150 take an id another call took first. Round two: 100 calls
    // with new ids, every other one for the deleted application.
    let send = |round: &'static str, n: usize, i: usize| {
        let (org, app, gone) = (org.clone(), app.id.clone(), gone.id.clone());
        async move {
            let mut m = new_message(if i.is_multiple_of(2) { "a.b" } else { "c.d" }, None);
            m.event_id = Some(format!("{round}-{}", i % n).parse().unwrap());
            let to = if round == "two" && i % 2 == 1 { gone } else { app };
            store.create_message(&org, &to, m).await
        }
    };
    let one = at_once(300, |i| send("one", 150, i)).await;
    let two = at_once(100, |i| send("two", 100, i)).await;
    let mut stored = std::collections::BTreeMap::new();
    let (mut conflicts, mut not_found, mut delivered) = (0, 0, 0);
    for (round, i, answer) in one
        .into_iter()
        .enumerate()
        .map(|(i, a)| ("one", i, a))
        .chain(two.into_iter().enumerate().map(|(i, a)| ("two", i, a)))
    {
        match answer {
            Ok((msg, n)) => {
                assert!(
                    round == "one" || i % 2 == 0,
                    "call {i} was for the deleted application"
                );
                assert_eq!(
                    n,
                    if i.is_multiple_of(2) { 2 } else { 1 },
                    "call {round}-{i}'s deliveries"
                );
                delivered += n;
                let event = msg.event_id.clone().unwrap().to_string();
                assert!(stored.insert(event, msg.id).is_none(), "one message per event id");
            }
            Err(StoreError::Conflict(_)) => {
                assert_eq!(round, "one", "call {round}-{i}'s id was new");
                conflicts += 1;
            }
            Err(StoreError::NotFound(_)) => {
                assert!(
                    round == "two" && i % 2 == 1,
                    "call {round}-{i} was for a live application"
                );
                not_found += 1;
            }
            Err(e) => panic!("call {round}-{i}: {e}"),
        }
    }
    assert_eq!((stored.len(), conflicts, not_found), (200, 150, 50));
    for (event, id) in &stored {
        assert_eq!(&store.get_message(&org, &app.id, event).await.unwrap().id, id);
    }
    let listed = store
        .list_messages(
            &org,
            &app.id,
            &ListQuery {
                limit: 250,
                ..ListQuery::default()
            },
            &MessageFilter::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        listed.items.len(),
        stored.len(),
        "no message stored without its answer"
    );
    // Every delivery an answer counted, and no other.
    let mut claimed = 0;
    loop {
        let got = claim_all(store, Utc::now()).await.len();
        if got == 0 {
            break;
        }
        claimed += got;
    }
    assert_eq!(claimed, delivered);
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

/// Payload filters are matched at fan-out, in the message's transaction: an endpoint
/// whose filter does not match gets no delivery row at all.
pub async fn filtered_out_endpoints_get_no_delivery(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("filtered", None))
        .await
        .unwrap();
    let mut wanted = Vec::new();
    for (uid, filter, gets_it) in [
        ("none", None, true),
        (
            "match",
            Some(json!({"body": {"k": {"$gte": 1}}, "eventType": "a.b"})),
            true,
        ),
        ("no-match", Some(json!({"body": {"k": 2}})), false),
        ("channels", Some(json!({"channels": ["x"]})), false),
    ] {
        let mut d = endpoint_data(Some(uid));
        d.filter = filter.map(|f| FilterText::new(&f, FilterTarget::Sent).unwrap());
        let ep = store.create_endpoint(&org, &app.id, d).await.unwrap();
        assert_eq!(
            store.get_endpoint(&org, &app.id, uid).await.unwrap().data.filter,
            ep.data.filter,
            "the filter round-trips"
        );
        if gets_it {
            wanted.push(ep.id);
        }
    }
    let (msg, n) = store
        .create_message(&org, &app.id, new_message("a.b", None))
        .await
        .unwrap();
    assert_eq!(n, 2);
    let got = claimed_endpoints(store).await;
    wanted.sort();
    assert_eq!(got, wanted);
    let destinations = store
        .list_message_destinations(&org, &app.id, &msg.id, &ListQuery::default())
        .await
        .unwrap();
    assert_eq!(
        destinations.items.len(),
        2,
        "no row for the filtered-out endpoints"
    );
    // A payload that is not JSON matches no body clause, and nothing panics.
    let mut text = new_message("a.b", None);
    text.payload = "not json".into();
    let (_, n) = store.create_message(&org, &app.id, text).await.unwrap();
    assert_eq!(n, 1, "only the endpoint without a filter");
}

/// A message with `deliver_at` keeps it, and its deliveries are not claimed before
/// then; message and attempt lists filter by tag and channel; `get_messages` answers
/// the application's own messages only.
pub async fn scheduled_messages_wait_and_lists_filter_by_tag(store: &dyn Store) {
    let (org, other_org) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("sched", None))
        .await
        .unwrap();
    let ep = store
        .create_endpoint(&org, &app.id, endpoint_data(Some("ep")))
        .await
        .unwrap();
    let at = Utc::now() + chrono::Duration::hours(1);
    let at = chrono::DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap();
    let later = NewMessage {
        deliver_at: Some(at),
        tags: BTreeSet::from(["vip".to_owned()]),
        ..new_message("a.b", Some(&["red"]))
    };
    let (msg, n) = store.create_message(&org, &app.id, later).await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(msg.deliver_at, Some(at));
    let read = store.get_message(&org, &app.id, msg.id.as_str()).await.unwrap();
    assert_eq!(read.deliver_at, Some(at));
    assert!(claim_all(store, Utc::now()).await.is_empty(), "not due yet");
    let (now_msg, _) = store
        .create_message(&org, &app.id, new_message("a.b", Some(&["blue"])))
        .await
        .unwrap();
    assert_eq!(now_msg.deliver_at, None);
    let due_now = claim_all(store, Utc::now()).await;
    assert_eq!(due_now.len(), 1);
    assert_eq!(due_now[0].message.id, now_msg.id);
    store
        .finish_attempt(
            due_now[0].id,
            attempt(DeliveryStatus::Success, 200),
            NextStep::Done,
        )
        .await
        .unwrap();
    let due_later = claim_all(store, at + chrono::Duration::seconds(1)).await;
    assert_eq!(due_later.len(), 1);
    assert_eq!(due_later[0].message.id, msg.id);

    let query = ListQuery {
        limit: 50,
        cursor: None,
        order: Order::Descending,
    };
    let by_tag = MessageFilter {
        tag: Some("vip".into()),
        ..Default::default()
    };
    let page = store.list_messages(&org, &app.id, &query, &by_tag).await.unwrap();
    assert_eq!(
        page.items.iter().map(|m| &m.id).collect::<Vec<_>>(),
        vec![&msg.id]
    );

    for d in &due_later {
        store
            .finish_attempt(d.id, attempt(DeliveryStatus::Success, 200), NextStep::Done)
            .await
            .unwrap();
    }
    let attempts = |filter: AttemptFilter| {
        let (org, app) = (org.clone(), app.id.clone());
        let query = query.clone();
        async move {
            store
                .list_attempts(&org, &app, &query, &filter)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|a| a.msg_id)
                .collect::<Vec<_>>()
        }
    };
    let endpoint = Some(ep.id.clone());
    assert_eq!(
        attempts(AttemptFilter {
            endpoint: endpoint.clone(),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        attempts(AttemptFilter {
            endpoint: endpoint.clone(),
            tag: Some("vip".into()),
            ..Default::default()
        })
        .await,
        vec![msg.id.clone()]
    );
    assert_eq!(
        attempts(AttemptFilter {
            endpoint: endpoint.clone(),
            channel: Some("blue".parse().unwrap()),
            ..Default::default()
        })
        .await,
        vec![now_msg.id.clone()]
    );
    assert!(
        attempts(AttemptFilter {
            endpoint,
            channel: Some("blue".parse().unwrap()),
            tag: Some("vip".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );

    let mut both = store
        .get_messages(
            &org,
            &app.id,
            &[msg.id.clone(), now_msg.id.clone(), MessageId::generate()],
        )
        .await
        .unwrap();
    both.sort_by(|a, b| a.id.cmp(&b.id));
    let mut wanted = vec![msg.id.clone(), now_msg.id.clone()];
    wanted.sort();
    assert_eq!(both.into_iter().map(|m| m.id).collect::<Vec<_>>(), wanted);
    assert!(
        store
            .get_messages(&other_org, &app.id, std::slice::from_ref(&msg.id))
            .await
            .unwrap()
            .is_empty(),
        "another organisation sees none"
    );
}

/// What an endpoint missed is found and queued once; bulk requeues skip pending
/// deliveries; payloads are removed in batches; attempts are counted per application.
pub async fn missing_messages_are_queued_and_payloads_purged_in_batches(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("replay", None))
        .await
        .unwrap();
    let since = Utc::now() - chrono::Duration::seconds(1);
    let mut msgs = Vec::new();
    for _ in 0..3 {
        msgs.push(
            store
                .create_message(&org, &app.id, new_message("a.b", None))
                .await
                .unwrap()
                .0,
        );
    }
    let late = store
        .create_endpoint(&org, &app.id, endpoint_data(Some("late")))
        .await
        .unwrap();
    let missing = store
        .messages_missing_endpoint(&org, &app.id, &late.id, since, None, None, 2)
        .await
        .unwrap();
    assert_eq!(
        missing.iter().map(|m| &m.id).collect::<Vec<_>>(),
        vec![&msgs[0].id, &msgs[1].id]
    );
    let rest = store
        .messages_missing_endpoint(&org, &app.id, &late.id, since, None, Some(&msgs[1].id), 2)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|m| &m.id).collect::<Vec<_>>(), vec![&msgs[2].id]);
    let ids: Vec<MessageId> = msgs.iter().map(|m| m.id.clone()).collect();
    assert_eq!(
        store
            .queue_deliveries(&org, &app.id, &late.id, &ids, AttemptTrigger::Scheduled)
            .await
            .unwrap(),
        3
    );
    assert!(
        store
            .messages_missing_endpoint(&org, &app.id, &late.id, since, None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .queue_deliveries(&org, &app.id, &late.id, &ids, AttemptTrigger::Manual)
            .await
            .unwrap(),
        0,
        "pending deliveries are not queued twice"
    );
    assert!(
        store
            .queue_deliveries(&other, &app.id, &late.id, &ids, AttemptTrigger::Manual)
            .await
            .is_err(),
        "another organisation's endpoint is not found"
    );
    let claimed = claim_all(store, Utc::now()).await;
    assert_eq!(claimed.len(), 3);
    for d in &claimed {
        store
            .finish_attempt(d.id, attempt(DeliveryStatus::Success, 200), NextStep::Done)
            .await
            .unwrap();
    }
    assert_eq!(
        store
            .queue_deliveries(&org, &app.id, &late.id, &ids[..1], AttemptTrigger::Manual)
            .await
            .unwrap(),
        1,
        "a delivered message is queued again"
    );
    let counted = store
        .count_attempts(
            &org,
            std::slice::from_ref(&app.id),
            since,
            Utc::now() + chrono::Duration::seconds(1),
        )
        .await
        .unwrap();
    assert_eq!(counted, vec![(app.id.clone(), 3)]);
    assert!(
        store
            .count_attempts(&other, std::slice::from_ref(&app.id), since, Utc::now())
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(store.expunge_payloads_batch(&org, &app.id, 2).await.unwrap(), 2);
    assert_eq!(store.expunge_payloads_batch(&org, &app.id, 2).await.unwrap(), 1);
    assert_eq!(store.expunge_payloads_batch(&org, &app.id, 2).await.unwrap(), 0);
    for m in &msgs {
        assert_eq!(
            store
                .get_message(&org, &app.id, m.id.as_str())
                .await
                .unwrap()
                .payload,
            None
        );
    }
    assert!(
        claim_all(store, Utc::now()).await.is_empty(),
        "the pending delivery was canceled"
    );
}
