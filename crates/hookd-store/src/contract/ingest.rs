//! Contract checks: Ingest sources, their log, dedup, forwarding and cron.

#![allow(clippy::unwrap_used)]

use super::*;

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
    let mut data = source_data(None, "github");
    data.kind = hookd_core::ingest::SourceKind::parse(
        "cron",
        Some(&serde_json::json!({"schedule": "*/5 * * * *", "payload": "{}"})),
    )
    .unwrap();
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

/// A destination's filter is matched on the received request (headers, query, path,
/// body), when it is recorded and when a logged request is forwarded again; a request
/// the source filtered is kept and forwarded nowhere.
pub async fn destination_filters_match_the_received_request(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "generic-webhook"), "tok-f".into())
        .await
        .unwrap();
    let mut by_header = endpoint_data(Some("by-header"));
    by_header.filter = Some(received_filter(
        json!({"headers": {"X-A": "1"}, "query": {"a": "1"}, "path": "/"}),
    ));
    let by_header = store
        .create_endpoint(&org, &source.app_id, by_header)
        .await
        .unwrap();
    let mut by_body = endpoint_data(Some("by-body"));
    by_body.filter = Some(received_filter(json!({"body": {"kind": "order"}})));
    let by_body = store
        .create_endpoint(&org, &source.app_id, by_body)
        .await
        .unwrap();

    let order = store
        .record_ingest(&org, &source, received(br#"{"kind": "order"}"#, None, true))
        .await
        .unwrap();
    assert_eq!(order.deliveries, 2);
    let other = store
        .record_ingest(&org, &source, received(br#"{"kind": "refund"}"#, None, true))
        .await
        .unwrap();
    assert_eq!(other.deliveries, 1, "the body filter left it out");
    let got = claimed_endpoints(store).await;
    let mut wanted = vec![by_header.id.clone(), by_body.id.clone(), by_header.id.clone()];
    wanted.sort();
    assert_eq!(got, wanted);

    // Forwarding a logged request again matches the request as it was received.
    let again = NewMessage {
        event_type: "ingest.generic-webhook".parse().unwrap(),
        event_id: None,
        channels: None,
        tags: BTreeSet::new(),
        payload: String::new(),
        retain_until: Utc::now() + chrono::Duration::days(1),
        only_endpoint: None,
        forward: Some(ForwardedRequest {
            log_id: other.id.clone(),
            headers: Vec::new(),
        }),
        flow_runs: Default::default(),
        deliver_at: None,
    };
    let (_, n) = store.create_message(&org, &source.app_id, again).await.unwrap();
    assert_eq!(n, 1, "a replay of the refund skips the order destination");

    // Filtered by the source: kept, never forwarded.
    let mut filtered = received(b"{}", None, true);
    filtered.status = IngestStatus::Filtered;
    filtered.forward = None;
    let r = store.record_ingest(&org, &source, filtered).await.unwrap();
    assert_eq!(
        (r.status, r.deliveries, r.msg_id),
        (IngestStatus::Filtered, 0, None)
    );
    let logged = store.get_ingest_request(&org, &source.id, &r.id).await.unwrap();
    assert_eq!(logged.status, IngestStatus::Filtered);
}
