//! Contract checks: Durable background jobs.

#![allow(clippy::unwrap_used)]

use super::*;

pub async fn jobs_are_leased_stepped_and_taken_over(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let t0 = Utc::now();
    let lease = chrono::Duration::seconds(30);
    let job = store
        .create_job(&org, "endpoint.recover", serde_json::json!({"done": 0}), t0, None)
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
        .create_job(&org, "endpoint.recover", serde_json::json!({}), much_later, None)
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
            .create_job(&org, "k", serde_json::json!({"i": i}), now, None)
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

pub async fn a_job_made_leased_is_its_owners_until_the_lease_runs_out(store: &dyn Store) {
    let (org, _) = two_orgs(store).await;
    let t0 = Utc::now();
    let lease = chrono::Duration::seconds(30);
    let job = store
        .create_job(
            &org,
            "source.replay",
            serde_json::json!({}),
            t0,
            Some(JobLease {
                owner: "request".into(),
                until: t0 + lease,
            }),
        )
        .await
        .unwrap();
    // No runner takes a job its owner is running...
    assert!(store.claim_job(t0, t0 + lease, "runner").await.unwrap().is_none());
    // ...its owner commits its steps...
    assert!(
        store
            .save_job(
                &job.id,
                "request",
                JobStep {
                    state: serde_json::json!({"n": 1}),
                    status: JobStatus::Running,
                    error: None,
                    now: t0,
                    lease_until: t0 + lease,
                }
            )
            .await
            .unwrap()
    );
    // ...and once the owner stops renewing it, a runner takes it over where it stood.
    let later = t0 + lease * 2;
    let taken = store
        .claim_job(later, later + lease, "runner")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((taken.id, taken.state), (job.id, serde_json::json!({"n": 1})));
}

/// Jobs list by id within the organisation, by kind and status.
pub async fn jobs_list_by_kind_and_status(store: &dyn Store) {
    let (org, other) = two_orgs(store).await;
    let now = Utc::now();
    let mut made = Vec::new();
    for kind in ["endpoint.replay", "endpoint.recover", "source.replay"] {
        made.push(store.create_job(&org, kind, json!({}), now, None).await.unwrap());
    }
    store
        .create_job(&other, "endpoint.replay", json!({}), now, None)
        .await
        .unwrap();
    let held = store
        .claim_job(now, now + chrono::Duration::seconds(30), "n")
        .await
        .unwrap()
        .unwrap();
    let finish = JobStep {
        state: json!({"done": true}),
        status: JobStatus::Finished,
        error: None,
        now,
        lease_until: now,
    };
    assert!(store.save_job(&held.id, "n", finish).await.unwrap());
    let query = ListQuery {
        limit: 10,
        cursor: None,
        order: Order::Descending,
    };
    let svix = ["endpoint.replay", "endpoint.recover"];
    let listed = store.list_jobs(&org, &query, None, &svix).await.unwrap();
    let ids: Vec<_> = listed.items.iter().map(|j| j.id.clone()).collect();
    assert_eq!(
        ids,
        vec![made[1].id.clone(), made[0].id.clone()],
        "newest first, of those kinds"
    );
    let finished = store
        .list_jobs(
            &org,
            &query,
            Some(JobStatus::Finished),
            &["endpoint.replay", "endpoint.recover", "source.replay"],
        )
        .await
        .unwrap();
    assert_eq!(finished.items.len(), 1);
    assert_eq!(finished.items[0].id, held.id);
    assert!(
        store
            .list_jobs(&org, &query, None, &[])
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
