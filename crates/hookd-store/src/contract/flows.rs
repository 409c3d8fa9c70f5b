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
        concurrency: None,
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

fn run_data(status: &str, next: u64, due_at: Option<chrono::DateTime<Utc>>) -> FlowRunData {
    FlowRunData {
        status: status.into(),
        state: json!({"next": next, "trigger": {"amount": 1200, "s": "é"}}),
        due_at,
    }
}

fn step(data: FlowRunData, lease_until: Option<chrono::DateTime<Utc>>) -> FlowRunStep {
    FlowRunStep {
        next: FlowNext::State(data),
        now: Utc::now(),
        lease_until,
        urgent: false,
    }
}

fn ms(t: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

pub async fn flow_runs_are_leased_stepped_waited_and_taken_over(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let f = store.create_flow(&org, flow("steps", "manual")).await.unwrap();
    let now = ms(Utc::now());
    let minute = chrono::Duration::seconds(60);

    // Only a flow of the same organisation has runs.
    assert!(matches!(
        store
            .create_flow_run(&other, &f.id, run_data("running", 0, Some(now)), now, None)
            .await,
        Err(StoreError::NotFound("flow"))
    ));
    let run = store
        .create_flow_run(&org, &f.id, run_data("running", 0, Some(now)), now, None)
        .await
        .unwrap();
    assert!(run.id.as_str().starts_with("run_"));
    assert_eq!(run.data, run_data("running", 0, Some(now)));
    assert_eq!(store.get_flow_run(&org, &run.id).await.unwrap(), run);
    assert!(matches!(
        store.get_flow_run(&other, &run.id).await,
        Err(StoreError::NotFound(_))
    ));

    // One runner at a time; a step by anyone else is refused and changes nothing.
    let claimed = store
        .claim_flow_run(now, now + minute, "a")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, run.id);
    assert_eq!(store.claim_flow_run(now, now + minute, "b").await.unwrap(), None);
    assert_eq!(
        store
            .save_flow_run(
                &run.id,
                "b",
                step(run_data("running", 1, Some(now)), Some(now + minute))
            )
            .await
            .unwrap(),
        FlowRunSaved::NotHeld
    );
    assert_eq!(store.get_flow_run(&org, &run.id).await.unwrap().data, run.data);

    // The holder's step is kept, and with its lease renewed nobody else takes it.
    assert_eq!(
        store
            .save_flow_run(
                &run.id,
                "a",
                step(run_data("running", 1, Some(now)), Some(now + minute))
            )
            .await
            .unwrap(),
        FlowRunSaved::Saved(None)
    );
    assert_eq!(
        store.get_flow_run(&org, &run.id).await.unwrap().data,
        run_data("running", 1, Some(now))
    );
    assert_eq!(store.claim_flow_run(now, now + minute, "b").await.unwrap(), None);

    // A wait gives the lease up: nobody takes the run before it is due, anyone after.
    let later = now + chrono::Duration::hours(2);
    assert_eq!(
        store
            .save_flow_run(&run.id, "a", step(run_data("waiting", 2, Some(later)), None))
            .await
            .unwrap(),
        FlowRunSaved::Saved(None)
    );
    assert_eq!(store.claim_flow_run(now, now + minute, "b").await.unwrap(), None);
    let taken = store
        .claim_flow_run(later, later + minute, "b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.data, run_data("waiting", 2, Some(later)));
    assert_eq!(
        store
            .save_flow_run(&run.id, "a", step(run_data("running", 3, Some(now)), None))
            .await
            .unwrap(),
        FlowRunSaved::NotHeld,
        "the first runner lost it"
    );
    // An ended run is never claimed again.
    assert_eq!(
        store
            .save_flow_run(&run.id, "b", step(run_data("succeeded", 3, None), None))
            .await
            .unwrap(),
        FlowRunSaved::Saved(None)
    );
    let far = later + chrono::Duration::days(400);
    assert_eq!(store.claim_flow_run(far, far + minute, "c").await.unwrap(), None);

    // A run made leased is its owner's until the lease runs out, then anyone's.
    let held = store
        .create_flow_run(
            &org,
            &f.id,
            run_data("running", 0, Some(now)),
            now,
            Some(JobLease {
                owner: "request".into(),
                until: now + minute,
            }),
        )
        .await
        .unwrap();
    assert_eq!(store.claim_flow_run(now, now + minute, "b").await.unwrap(), None);
    let after = now + minute + chrono::Duration::seconds(1);
    assert_eq!(
        store
            .claim_flow_run(after, after + minute, "b")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(held.id.clone())
    );

    // A cancel from outside takes the run from its holder, whose next step is refused.
    let canceled = store
        .update_flow_run(
            &org,
            &held.id,
            Box::new(|d| {
                d.status = "canceled".into();
                d.due_at = None;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(canceled.data.status, "canceled");
    assert_eq!(
        store
            .save_flow_run(
                &held.id,
                "b",
                step(run_data("running", 1, Some(now)), Some(now + minute))
            )
            .await
            .unwrap(),
        FlowRunSaved::NotHeld
    );
    assert_eq!(
        store.get_flow_run(&org, &held.id).await.unwrap().data.status,
        "canceled"
    );
    assert!(matches!(
        store
            .update_flow_run(&other, &held.id, Box::new(|_| Ok(())))
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Released leases are claimed again at once.
    let third = store
        .create_flow_run(
            &org,
            &f.id,
            run_data("running", 0, Some(now)),
            now,
            Some(JobLease {
                owner: "node-1".into(),
                until: far,
            }),
        )
        .await
        .unwrap();
    store.release_flow_runs("node-1").await.unwrap();
    assert_eq!(
        store
            .claim_flow_run(now, now + minute, "node-2")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(third.id.clone())
    );

    // The log lists by flow and status, in pages; deleting the flow deletes its runs.
    let g = store.create_flow(&org, flow("other", "manual")).await.unwrap();
    let lone = store
        .create_flow_run(&org, &g.id, run_data("running", 0, None), now, None)
        .await
        .unwrap();
    let list = |filter: FlowRunFilter, limit: usize| {
        let org = org.clone();
        async move {
            store
                .list_flow_runs(
                    &org,
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
    let ids = |page: Page<FlowRun>| page.items.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(list(FlowRunFilter::default(), 10).await),
        vec![run.id.clone(), held.id.clone(), third.id.clone(), lone.id.clone()]
    );
    // Started before or after a time.
    let future = Utc::now() + chrono::Duration::days(1);
    let started_after = FlowRunFilter {
        after: Some(future),
        ..FlowRunFilter::default()
    };
    assert!(list(started_after, 10).await.items.is_empty());
    let started_before = FlowRunFilter {
        before: Some(future),
        ..FlowRunFilter::default()
    };
    assert_eq!(
        list(started_before, 10).await.items.len(),
        list(FlowRunFilter::default(), 10).await.items.len()
    );
    let first = list(FlowRunFilter::default(), 1).await;
    assert!(first.has_more);
    assert_eq!(ids(first), vec![run.id.clone()]);
    assert_eq!(
        ids(list(
            FlowRunFilter {
                flow: Some(f.id.clone()),
                status: Some("canceled".into()),
                ..FlowRunFilter::default()
            },
            10
        )
        .await),
        vec![held.id.clone()]
    );
    assert_eq!(
        ids(list(
            FlowRunFilter {
                flow: Some(g.id.clone()),
                ..FlowRunFilter::default()
            },
            10
        )
        .await),
        vec![lone.id.clone()]
    );
    assert!(
        store
            .list_flow_runs(&other, &ListQuery::default(), &FlowRunFilter::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    store.delete_flow(&org, f.id.as_str()).await.unwrap();
    assert!(matches!(
        store.get_flow_run(&org, &run.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(ids(list(FlowRunFilter::default(), 10).await), vec![lone.id]);
}

pub async fn a_flow_runs_data_step_commits_with_its_state_or_not_at_all(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("flows", None))
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "customers", collection(false))
        .await
        .unwrap();
    let f = store.create_flow(&org, flow("paid", "manual")).await.unwrap();
    let now = ms(Utc::now());
    let minute = chrono::Duration::seconds(60);
    let run = store
        .create_flow_run(&org, &f.id, run_data("running", 0, Some(now)), now, None)
        .await
        .unwrap();
    store
        .claim_flow_run(now, now + minute, "a")
        .await
        .unwrap()
        .unwrap();
    // The state committed names what the write did.
    let write = |collection: &str, key: &str, next: u64| FlowWrite::Document {
        app: app.id.clone(),
        collection: dn(collection),
        key: ik(key),
        edit: put(json!({"status": "active"})),
        event_retain_until: far_future(),
        runs: RunsFrom::none(),
        then: Box::new(move |w| {
            let Written::Document(w) = w else {
                panic!("a document step wrote {w:?}");
            };
            let mut data = run_data("running", next, Some(now));
            data.state["version"] = json!(w.after.as_ref().map(|d| d.version));
            data
        }),
    };
    let with_version = |next: u64, version: i64| {
        let mut data = run_data("running", next, Some(now));
        data.state["version"] = json!(version);
        data
    };

    // The write and the step, together.
    let s = FlowRunStep {
        next: FlowNext::Write(write("customers", "cus_1", 1)),
        now: Utc::now(),
        lease_until: Some(now + minute),
        urgent: false,
    };
    let FlowRunSaved::Saved(Some(Written::Document(written))) =
        store.save_flow_run(&run.id, "a", s).await.unwrap()
    else {
        panic!("the step was not saved with its write");
    };
    assert_eq!(written.before, None);
    assert_eq!(written.after.as_ref().unwrap().version, 1);
    let doc = store
        .get_document(&org, &app.id, &dn("customers"), &ik("cus_1"))
        .await
        .unwrap();
    assert_eq!(doc.body, json!({"status": "active"}));
    assert_eq!(
        store.get_flow_run(&org, &run.id).await.unwrap().data,
        with_version(1, 1)
    );

    // A write that fails commits neither it nor the step.
    let s = FlowRunStep {
        next: FlowNext::Write(write("missing", "cus_1", 2)),
        now: Utc::now(),
        lease_until: Some(now + minute),
        urgent: false,
    };
    assert!(matches!(
        store.save_flow_run(&run.id, "a", s).await,
        Err(StoreError::NotFound("collection"))
    ));
    assert_eq!(
        store.get_flow_run(&org, &run.id).await.unwrap().data,
        with_version(1, 1)
    );

    // A runner that lost the run writes nothing.
    let s = FlowRunStep {
        next: FlowNext::Write(write("customers", "cus_2", 2)),
        now: Utc::now(),
        lease_until: Some(now + minute),
        urgent: false,
    };
    assert_eq!(
        store.save_flow_run(&run.id, "b", s).await.unwrap(),
        FlowRunSaved::NotHeld
    );
    assert!(matches!(
        store
            .get_document(&org, &app.id, &dn("customers"), &ik("cus_2"))
            .await,
        Err(StoreError::NotFound("document"))
    ));
}

pub async fn flow_secrets_are_replaced_listed_and_tenant_scoped(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let name: DataName = "smtp-main".parse().unwrap();
    let (first, created) = store
        .put_flow_secret(&org, &name, "hks1.first".into())
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (first.name.as_str(), first.sealed.as_str()),
        ("smtp-main", "hks1.first")
    );
    let (second, created) = store
        .put_flow_secret(&org, &name, "hks1.second".into())
        .await
        .unwrap();
    assert!(!created, "a second put replaces");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(store.get_flow_secret(&org, "smtp-main").await.unwrap(), second);
    store
        .put_flow_secret(&org, &"twilio".parse().unwrap(), "hks1.t".into())
        .await
        .unwrap();
    // Another organisation sees none of them, and keeps its own of the same name.
    assert!(matches!(
        store.get_flow_secret(&other, "smtp-main").await,
        Err(StoreError::NotFound(_))
    ));
    store
        .put_flow_secret(&other, &name, "hks1.other".into())
        .await
        .unwrap();
    assert_eq!(
        store.get_flow_secret(&org, "smtp-main").await.unwrap().sealed,
        "hks1.second"
    );
    let page = store
        .list_flow_secrets(
            &org,
            &ListQuery {
                limit: 1,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.has_more);
    assert_eq!(page.items[0].name.as_str(), "smtp-main");
    let rest = store
        .list_flow_secrets(
            &org,
            &ListQuery {
                cursor: Some(Cursor {
                    key: page.items[0].name.as_str().to_owned(),
                    backward: false,
                }),
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
    let names: Vec<_> = rest.items.iter().map(|s| s.name.as_str().to_owned()).collect();
    assert_eq!(names, ["twilio"]);
    store.delete_flow_secret(&org, "smtp-main").await.unwrap();
    assert!(matches!(
        store.delete_flow_secret(&org, "smtp-main").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.get_flow_secret(&other, "smtp-main").await.is_ok());
}

pub async fn a_received_request_starts_its_flows_runs_with_it_unless_a_duplicate(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let source = store
        .create_source(&org, source_data(None, "generic-webhook"), "tok-flow".into())
        .await
        .unwrap();
    let flow_a = store
        .create_flow(&org, flow("on-request", "source.request"))
        .await
        .unwrap();
    let foreign = store
        .create_flow(&other, flow("theirs", "source.request"))
        .await
        .unwrap();
    let run = |flow: &StoredFlow| NewFlowRun {
        flow: flow.id.clone(),
        data: FlowRunData {
            status: "running".into(),
            state: json!({"trigger": {"n": 1}}),
            due_at: Some(Utc::now()),
        },
    };
    let mut first = received(b"{}", Some("evt-1"), false);
    first.flow_runs = vec![run(&flow_a)];
    let recorded = store.record_ingest(&org, &source, first).await.unwrap();
    assert_eq!(recorded.flow_runs, 1);
    let runs = store
        .list_flow_runs(&org, &ListQuery::default(), &FlowRunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
    assert_eq!(runs.items[0].data.state, json!({"trigger": {"n": 1}}));
    // The run is due, and claimed like any other.
    let claimed = store
        .claim_flow_run(Utc::now(), Utc::now() + chrono::Duration::seconds(30), "node-x")
        .await
        .unwrap();
    assert_eq!(claimed.map(|r| r.id), Some(runs.items[0].id.clone()));
    // A duplicate, a rejected request, and another organisation's flow start nothing.
    let mut again = received(b"{}", Some("evt-1"), false);
    again.flow_runs = vec![run(&flow_a)];
    let dup = store.record_ingest(&org, &source, again).await.unwrap();
    assert_eq!((dup.status, dup.flow_runs), (IngestStatus::Duplicate, 0));
    let mut rejected = received(b"{}", None, false);
    rejected.status = IngestStatus::Rejected;
    rejected.flow_runs = vec![run(&flow_a)];
    assert_eq!(
        store
            .record_ingest(&org, &source, rejected)
            .await
            .unwrap()
            .flow_runs,
        0
    );
    // A run of a flow that is not the organisation's (or was deleted meanwhile) is
    // skipped; the request is kept.
    let mut stranger = received(b"{}", None, false);
    stranger.flow_runs = vec![run(&foreign)];
    let kept = store.record_ingest(&org, &source, stranger).await.unwrap();
    assert_eq!((kept.status, kept.flow_runs), (IngestStatus::Accepted, 0));
    // Nor is a run of a flow disabled since the caller looked.
    store
        .update_flow(
            &org,
            "on-request",
            Box::new(|f| {
                f.enabled = false;
                Ok(())
            }),
        )
        .await
        .unwrap();
    let mut late = received(b"{}", None, false);
    late.flow_runs = vec![run(&flow_a)];
    assert_eq!(
        store.record_ingest(&org, &source, late).await.unwrap().flow_runs,
        0
    );
    let runs = store
        .list_flow_runs(&org, &ListQuery::default(), &FlowRunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1, "nothing else was started");
    let theirs = store
        .list_flow_runs(&other, &ListQuery::default(), &FlowRunFilter::default())
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
}

pub async fn ended_flow_runs_are_pruned_and_live_ones_kept(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let f = store.create_flow(&org, flow("pruned", "manual")).await.unwrap();
    let data = |status: &str, due: Option<chrono::DateTime<Utc>>| FlowRunData {
        status: status.into(),
        state: json!({}),
        due_at: due,
    };
    let now = Utc::now();
    let ended = store
        .create_flow_run(&org, &f.id, data("succeeded", None), now, None)
        .await
        .unwrap();
    let waiting = store
        .create_flow_run(
            &org,
            &f.id,
            data("waiting", Some(now + chrono::Duration::days(365))),
            now,
            None,
        )
        .await
        .unwrap();
    // Nothing ended before the cutoff yet.
    assert_eq!(
        store
            .delete_ended_flow_runs_before(now - chrono::Duration::seconds(1), 10)
            .await
            .unwrap(),
        0
    );
    let later = Utc::now() + chrono::Duration::seconds(1);
    assert_eq!(store.delete_ended_flow_runs_before(later, 10).await.unwrap(), 1);
    assert!(matches!(
        store.get_flow_run(&org, &ended.id).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get_flow_run(&org, &waiting.id).await.unwrap().id,
        waiting.id
    );
    assert_eq!(store.delete_ended_flow_runs_before(later, 10).await.unwrap(), 0);
}

/// The runs a message, a document change and a score start are committed with them:
/// a message refused for its duplicate event id, a document write that changes
/// nothing or is refused, start none; a run of a flow disabled since the caller
/// looked is skipped, the event kept.
pub async fn events_commit_the_runs_they_start_in_their_own_transaction(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("events", None))
        .await
        .unwrap();
    store
        .create_definition(&org, &app.id, "docs", collection(false))
        .await
        .unwrap();
    store
        .create_definition(
            &org,
            &app.id,
            "points",
            board(Default::default(), Default::default()),
        )
        .await
        .unwrap();
    let f = store.create_flow(&org, flow("listener", "x")).await.unwrap();
    let runs_of = |label: &'static str| {
        let id = f.id.clone();
        move |seen: String| {
            vec![NewFlowRun {
                flow: id.clone(),
                data: FlowRunData {
                    status: "running".into(),
                    state: json!({"trigger": {"from": label, "seen": seen}}),
                    due_at: Some(Utc::now()),
                },
            }]
        }
    };
    let triggers = || async {
        let page = store
            .list_flow_runs(
                &org,
                &ListQuery {
                    limit: 100,
                    ..ListQuery::default()
                },
                &FlowRunFilter::default(),
            )
            .await
            .unwrap();
        let mut seen: Vec<(String, String)> = page
            .items
            .iter()
            .map(|r| {
                let t = &r.data.state["trigger"];
                (
                    t["from"].as_str().unwrap().to_owned(),
                    t["seen"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        seen.sort();
        seen
    };

    // A message: the run sees the message's own id; a duplicate event id starts none.
    let make = runs_of("message");
    let mut msg = new_message("a.b", None);
    msg.event_id = Some("evt-runs".parse().unwrap());
    msg.flow_runs = RunsFrom::new(move |m: &Message| make(m.id.to_string()));
    let (created, _) = store.create_message(&org, &app.id, msg.clone()).await.unwrap();
    assert!(matches!(
        store.create_message(&org, &app.id, msg).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(triggers().await, [("message".to_owned(), created.id.to_string())]);

    // A document: a change starts runs, the same body again does not, a refused edit
    // writes neither the document nor the run.
    let make = runs_of("document");
    let doc_runs = RunsFrom::new(move |w: &DocumentWritten| {
        make(w.after.as_ref().map_or("gone".into(), |d| d.version.to_string()))
    });
    for _ in 0..2 {
        store
            .write_document_starting(
                &org,
                &app.id,
                &dn("docs"),
                &ik("d1"),
                put(json!({"a": 1})),
                far_future(),
                doc_runs.clone(),
            )
            .await
            .unwrap();
    }
    let refused: DocumentEdit = Box::new(|_, _| Err(StoreError::rejected("body", "no")));
    assert!(
        store
            .write_document_starting(
                &org,
                &app.id,
                &dn("docs"),
                &ik("d2"),
                refused,
                far_future(),
                doc_runs.clone()
            )
            .await
            .is_err()
    );
    // A score: every submission starts runs, also one that changes nothing.
    let make = runs_of("score");
    let score_runs =
        RunsFrom::new(move |s: &ScoreSubmitted| make(format!("{}:{}", s.entry.score, s.changed)));
    for score in [10, 10] {
        store
            .submit_score_starting(
                &org,
                &app.id,
                &dn("points"),
                &ik("p1"),
                score,
                Utc::now(),
                score_runs.clone(),
            )
            .await
            .unwrap();
    }
    let mut want = vec![
        ("message".to_owned(), created.id.to_string()),
        ("document".to_owned(), "1".to_owned()),
        ("score".to_owned(), "10:true".to_owned()),
        ("score".to_owned(), "10:false".to_owned()),
    ];
    want.sort();
    assert_eq!(triggers().await, want);
    assert!(matches!(
        store.get_document(&org, &app.id, &dn("docs"), &ik("d2")).await,
        Err(StoreError::NotFound(_))
    ));

    // The flow disabled meanwhile: the write is kept, no run is started.
    store
        .update_flow(
            &org,
            "listener",
            Box::new(|f| {
                f.enabled = false;
                Ok(())
            }),
        )
        .await
        .unwrap();
    store
        .write_document_starting(
            &org,
            &app.id,
            &dn("docs"),
            &ik("d1"),
            put(json!({"a": 2})),
            far_future(),
            doc_runs,
        )
        .await
        .unwrap();
    assert_eq!(triggers().await.len(), 4);
}

/// A step's score and a `flow.call`'s child run commit with the step: the child of a
/// disabled or missing flow is refused and the step's state is not written.
pub async fn a_flow_runs_score_and_child_run_commit_with_its_step(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let app = store
        .create_application(&org, app_data("steps", None))
        .await
        .unwrap();
    store
        .create_definition(
            &org,
            &app.id,
            "points",
            board(Default::default(), Default::default()),
        )
        .await
        .unwrap();
    let parent = store.create_flow(&org, flow("parent", "manual")).await.unwrap();
    let child = store.create_flow(&org, flow("child", "manual")).await.unwrap();
    let now = ms(Utc::now());
    let minute = chrono::Duration::seconds(60);
    let run = store
        .create_flow_run(&org, &parent.id, run_data("running", 0, Some(now)), now, None)
        .await
        .unwrap();
    store
        .claim_flow_run(now, now + minute, "a")
        .await
        .unwrap()
        .unwrap();
    let step = |next: FlowWrite| FlowRunStep {
        next: FlowNext::Write(next),
        now: Utc::now(),
        lease_until: Some(now + minute),
        urgent: false,
    };
    let then = |next: u64| -> AfterWrite {
        Box::new(move |w: &Written| {
            let mut data = run_data("running", next, Some(now));
            data.state["wrote"] = json!(format!("{w:?}").split('(').next().unwrap_or_default());
            data
        })
    };

    let score = FlowWrite::Score {
        app: app.id.clone(),
        board: dn("points"),
        player: ik("p1"),
        score: 42,
        runs: RunsFrom::none(),
        then: then(1),
    };
    let FlowRunSaved::Saved(Some(Written::Score(s))) =
        store.save_flow_run(&run.id, "a", step(score)).await.unwrap()
    else {
        panic!("the score was not saved with the step");
    };
    assert_eq!((s.entry.score, s.entry.rank, s.changed), (42, 1, true));
    assert_eq!(
        store.get_flow_run(&org, &run.id).await.unwrap().data.state["wrote"],
        "Score"
    );

    let child_data = run_data("running", 0, Some(now));
    let call = FlowWrite::StartRun {
        flow: child.id.clone(),
        data: child_data.clone(),
        then: then(2),
    };
    let FlowRunSaved::Saved(Some(Written::Run(started))) =
        store.save_flow_run(&run.id, "a", step(call)).await.unwrap()
    else {
        panic!("the child run was not saved with the step");
    };
    assert_eq!(started.flow_id, child.id);
    assert_eq!(started.data, child_data);
    assert_eq!(
        store.get_flow_run(&org, &started.id).await.unwrap().data,
        child_data
    );

    // A disabled callee: refused, and the parent's state stays as it was.
    store
        .update_flow(
            &org,
            "child",
            Box::new(|f| {
                f.enabled = false;
                Ok(())
            }),
        )
        .await
        .unwrap();
    let before = store.get_flow_run(&org, &run.id).await.unwrap().data;
    let call = FlowWrite::StartRun {
        flow: child.id.clone(),
        data: child_data,
        then: then(3),
    };
    assert!(matches!(
        store.save_flow_run(&run.id, "a", step(call)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.get_flow_run(&org, &run.id).await.unwrap().data, before);
}

/// A flow's `concurrency` bounds its runs that hold a live lease, whichever way they
/// were leased (claimed, or made leased), and is kept across updates; a run over the
/// limit is made unleased and due, and claimed once a place frees.
pub async fn a_flows_concurrency_bounds_its_leased_runs(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut one_at_a_time = flow("one-at-a-time", "manual");
    one_at_a_time.concurrency = Some(1);
    let limited = store.create_flow(&org, one_at_a_time).await.unwrap();
    assert_eq!(limited.data.concurrency, Some(1));
    assert_eq!(
        store
            .get_flow(&org, "one-at-a-time")
            .await
            .unwrap()
            .data
            .concurrency,
        Some(1)
    );
    let free = store.create_flow(&org, flow("free", "manual")).await.unwrap();
    let now = ms(Utc::now());
    let minute = chrono::Duration::seconds(60);
    let due = |secs: i64| run_data("running", 0, Some(now - chrono::Duration::seconds(secs)));
    let first = store
        .create_flow_run(&org, &limited.id, due(3), now, None)
        .await
        .unwrap();
    let second = store
        .create_flow_run(&org, &limited.id, due(2), now, None)
        .await
        .unwrap();
    let other = store
        .create_flow_run(&org, &free.id, due(1), now, None)
        .await
        .unwrap();
    assert_eq!(first.lease_owner, None);

    let claim = |owner: &'static str| async move {
        store
            .claim_flow_run(now, now + minute, owner)
            .await
            .unwrap()
            .map(|r| r.id)
    };
    assert_eq!(claim("a").await, Some(first.id.clone()));
    // The second run of the limited flow waits; the other flow's run does not.
    assert_eq!(claim("b").await, Some(other.id.clone()));
    assert_eq!(claim("b").await, None);
    // Made leased while at the limit: kept unleased and due.
    let lease = JobLease {
        owner: "c".into(),
        until: now + minute,
    };
    let inline = store
        .create_flow_run(&org, &limited.id, due(0), now, Some(lease.clone()))
        .await
        .unwrap();
    assert_eq!(inline.lease_owner, None, "over the limit: not leased");
    let unlimited = store
        .create_flow_run(&org, &free.id, due(0), now, Some(lease))
        .await
        .unwrap();
    assert_eq!(unlimited.lease_owner.as_deref(), Some("c"));
    // The first run waits for a delay: its place frees, the next one is taken.
    let saved = store
        .save_flow_run(
            &first.id,
            "a",
            step(run_data("waiting", 1, Some(now + minute)), None),
        )
        .await
        .unwrap();
    assert!(matches!(saved, FlowRunSaved::Saved(None)));
    assert_eq!(claim("b").await, Some(second.id.clone()));
    assert_eq!(claim("b").await, None);
    // A lease that ran out holds no place.
    let later = store
        .claim_flow_run(now + minute * 2, now + minute * 3, "d")
        .await
        .unwrap()
        .map(|r| r.id);
    assert_eq!(
        later,
        Some(second.id.clone()),
        "past its lease, the second run is taken again"
    );
    assert_eq!(claim("e").await, None, "its new lease holds the place");
    // No limit any more: the run made over the limit is taken too.
    store
        .update_flow(
            &org,
            "one-at-a-time",
            Box::new(|f| {
                f.concurrency = None;
                Ok(())
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_flow(&org, "one-at-a-time")
            .await
            .unwrap()
            .data
            .concurrency,
        None
    );
    assert_eq!(claim("e").await, Some(inline.id));
}

/// Many runners claiming at once never lease more runs of a limited flow than its
/// `concurrency` (on PostgreSQL, nodes race for the last place).
pub async fn concurrent_flow_run_claims_keep_the_flows_concurrency(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let mut two = flow("two-at-a-time", "manual");
    two.concurrency = Some(2);
    let f = store.create_flow(&org, two).await.unwrap();
    let now = ms(Utc::now());
    for _ in 0..10 {
        store
            .create_flow_run(&org, &f.id, run_data("running", 0, Some(now)), now, None)
            .await
            .unwrap();
    }
    let claims = (0..8).map(|n| async move {
        let owner = format!("node-{n}");
        let mut got = Vec::new();
        while let Some(run) = store
            .claim_flow_run(now, now + chrono::Duration::seconds(30), &owner)
            .await
            .unwrap()
        {
            got.push(run.id.to_string());
        }
        got
    });
    let all: Vec<String> = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all.len(), 2, "two places, two leases: {all:?}");
}

/// A flow's shared throttle (on backends that share one between nodes): a burst of
/// one second's worth among racing runners, then one turn per interval; a flow gone
/// holds nothing back.
pub async fn flows_share_a_throttle_between_nodes(store: &dyn Store) {
    if !store.shares_throttle() {
        // Single-node backends throttle in the runner's memory (tested through the server).
        return;
    }
    let (org, _) = two_orgs(store).await;
    let f = store
        .create_flow(&org, flow("throttled", "manual"))
        .await
        .unwrap();
    let now = Utc::now();
    let five = hookd_core::throttle::ThrottleRate::new(5).unwrap();
    let takes = (0..20).map(|_| {
        let id = f.id.clone();
        async move { store.flow_throttle_take(&id, five, now).await.unwrap() }
    });
    let waits = futures_util::future::join_all(takes).await;
    assert_eq!(waits.iter().filter(|w| w.is_none()).count(), 5, "{waits:?}");
    assert!(
        waits
            .iter()
            .flatten()
            .all(|w| *w > std::time::Duration::ZERO && *w <= std::time::Duration::from_millis(200)),
        "{waits:?}"
    );
    let later = now + chrono::Duration::milliseconds(200);
    assert!(
        store
            .flow_throttle_take(&f.id, five, later)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .flow_throttle_take(&f.id, five, later)
            .await
            .unwrap()
            .is_some()
    );
    store.delete_flow(&org, "throttled").await.unwrap();
    assert!(
        store
            .flow_throttle_take(&f.id, five, later)
            .await
            .unwrap()
            .is_none()
    );
}
