//! Contract checks: The data API: definitions, documents, scores, API keys, usage.

#![allow(clippy::unwrap_used)]

use super::*;

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
            &Period::Named(yesterday.format("%Y-%m-%d").to_string().parse().unwrap()),
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

/// Every rank a store reports equals the player's place in the board's order, on a
/// board large enough for the rank index to split several levels deep (scores spread
/// wide, many players tied on one score, scores moving up and down, concurrent
/// submissions), and again after a reset.
pub async fn ranks_stay_exact_on_a_board_past_the_index_bounds(store: &dyn Store) {
    use hookd_core::data::{ScoreOrder, ScorePolicy};
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("arena", None))
        .await
        .unwrap();
    let ladder = dn("ladder");
    store
        .create_definition(
            &org,
            &app.id,
            "ladder",
            board(ScorePolicy::Latest, ScoreOrder::Desc),
        )
        .await
        .unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    // Player i scores in a narrow band (ties) when i is even, anywhere when odd.
    let mut submissions: Vec<(String, i64)> = (0..700)
        .map(|i| {
            let score = if i % 2 == 0 {
                random(8)
            } else {
                random(2_000_000_000)
            };
            (format!("p{i}"), score as i64 - 1_000)
        })
        .collect();
    submissions.extend((0..300).map(|_| (format!("p{}", random(700)), random(5_000) as i64)));
    let check = |label: &'static str| {
        let (org, app, board) = (org.clone(), app.id.clone(), ladder.clone());
        async move {
            let (_, order) = store
                .top_scores(&org, &app, &board, &Period::At(Utc::now()), 1000)
                .await
                .unwrap();
            for (place, entry) in order.iter().enumerate() {
                assert_eq!(entry.rank, place as u64 + 1, "{label}: top list");
                let (_, around) = store
                    .scores_around(&org, &app, &board, &entry.player, 1, &Period::At(Utc::now()))
                    .await
                    .unwrap();
                let ranks: Vec<(String, u64)> =
                    around.iter().map(|e| (e.player.to_string(), e.rank)).collect();
                let want: Vec<(String, u64)> = order[place.saturating_sub(1)..(place + 2).min(order.len())]
                    .iter()
                    .map(|e| (e.player.to_string(), e.rank))
                    .collect();
                assert_eq!(ranks, want, "{label}: around {}", entry.player);
            }
            order.len()
        }
    };
    for (player, score) in &submissions {
        let submitted = store
            .submit_score(&org, &app.id, &ladder, &ik(player), *score, Utc::now())
            .await
            .unwrap();
        assert_eq!(submitted.entry.score, *score);
    }
    assert_eq!(check("one at a time").await, 700);
    // Concurrent submissions: new players and moves at once.
    let results = at_once(64, |i| {
        let (org, app, board) = (org.clone(), app.id.clone(), ladder.clone());
        async move {
            let player = if i % 2 == 0 {
                format!("new{i}")
            } else {
                format!("p{i}")
            };
            store
                .submit_score(&org, &app, &board, &ik(&player), (i as i64 % 5) * 100, Utc::now())
                .await
        }
    })
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(check("concurrent").await, 732);
    store.reset_leaderboard(&org, &app.id, &ladder).await.unwrap();
    for (player, score) in submissions.iter().take(300) {
        store
            .submit_score(&org, &app.id, &ladder, &ik(player), *score, Utc::now())
            .await
            .unwrap();
    }
    let players: BTreeSet<&String> = submissions.iter().take(300).map(|(p, _)| p).collect();
    assert_eq!(check("after a reset").await, players.len());
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
