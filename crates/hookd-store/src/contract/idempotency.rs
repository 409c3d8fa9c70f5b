//! Contract checks: Idempotency keys.

#![allow(clippy::unwrap_used)]

use super::*;

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
