//! The contract every store backend must pass, one file per aggregate (orgs,
//! applications, event types, endpoints, messages, deliveries, idempotency, ingest,
//! data, jobs); the helpers they share are here.
//!
//! A backend's test target calls [`contract_tests!`](crate::contract_tests) with an
//! async expression that makes a fresh, empty store; each check becomes its own test.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use chrono::Utc;
use hookd_core::api_token::{ApiToken, UiCredential};
use hookd_core::filter::{FilterTarget, FilterText};
use hookd_core::id::{ApplicationId, EndpointId, OrgId};
use hookd_core::name::EventTypeName;
use hookd_core::secret::EndpointSecret;
use serde_json::json;

use crate::*;

mod applications;
mod data;
mod deliveries;
mod endpoints;
mod event_types;
mod flows;
mod idempotency;
mod ingest;
mod jobs;
mod messages;
mod orgs;

pub use applications::*;
pub use data::*;
pub use deliveries::*;
pub use endpoints::*;
pub use event_types::*;
pub use flows::*;
pub use idempotency::*;
pub use ingest::*;
pub use jobs::*;
pub use messages::*;
pub use orgs::*;

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
            ui_sign_in_links_work_once_and_portal_sessions_expire_per_app,
            orgs_are_created_once,
            applications_round_trip,
            nul_characters_are_stored_or_refused_never_a_server_error,
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
            filtered_out_endpoints_get_no_delivery,
            event_ids_are_unique_per_app,
            messages_for_a_deleted_application_are_not_found,
            concurrent_messages_are_each_answered_as_if_alone,
            claims_lease_and_expired_leases_are_reclaimed,
            claims_keep_within_each_endpoints_room,
            claims_serve_endpoints_in_turn,
            attempts_are_recorded_and_retries_scheduled,
            concurrent_attempt_records_are_each_answered_as_if_alone,
            waiting_retries_of_an_endpoint_are_made_due,
            expunged_and_disabled_deliveries_are_canceled,
            messages_and_attempts_are_tenant_scoped,
            scheduled_messages_wait_and_lists_filter_by_tag,
            missing_messages_are_queued_and_payloads_purged_in_batches,
            jobs_list_by_kind_and_status,
            idempotency_keys_claim_replay_and_expire,
            retention_expires_payloads_and_deletes_old_messages,
            operational_apps_are_hidden_and_one_per_org,
            endpoints_failing_for_long_are_disabled_once,
            sources_round_trip_and_are_tenant_scoped,
            source_tokens_rotate_with_a_grace_period,
            accepted_requests_are_forwarded_once_per_dedup_key,
            destination_filters_match_the_received_request,
            forwarded_requests_carry_their_exact_body,
            cron_firings_are_recorded_once,
            ingest_logs_filter_page_and_expire,
            concurrent_claims_never_overlap,
            concurrent_idempotency_claims_run_once,
            concurrent_event_ids_are_unique,
            concurrent_exhaustion_disables_once,
            shared_throttle_allows_the_rate,
            listener_holds_are_seen_by_the_other_nodes,
            data_definitions_round_trip_and_are_tenant_scoped,
            documents_version_filter_and_go_with_their_collection,
            concurrent_document_edits_apply_one_after_another,
            document_changes_publish_events_in_the_same_write,
            scores_follow_policies_ranks_and_periods,
            concurrent_scores_add_up_exactly,
            ranks_stay_exact_on_a_board_past_the_index_bounds,
            api_keys_are_found_scoped_and_revoked,
            usage_adds_up_per_org_and_day,
            jobs_are_leased_stepped_and_taken_over,
            concurrent_job_claims_never_overlap,
            a_job_made_leased_is_its_owners_until_the_lease_runs_out,
            flows_round_trip_by_id_or_name_and_are_tenant_scoped,
            flows_are_found_by_their_trigger_when_enabled,
            flow_runs_are_leased_stepped_waited_and_taken_over,
            a_flow_runs_data_step_commits_with_its_state_or_not_at_all,
            flow_secrets_are_replaced_listed_and_tenant_scoped,
            a_received_request_starts_its_flows_runs_with_it_unless_a_duplicate,
            events_commit_the_runs_they_start_in_their_own_transaction,
            a_flow_runs_score_and_child_run_commit_with_its_step,
            a_flows_concurrency_bounds_its_leased_runs,
            concurrent_flow_run_claims_keep_the_flows_concurrency,
            flows_share_a_throttle_between_nodes,
            ended_flow_runs_are_pruned_and_live_ones_kept
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
        filter: None,
        transformation: None,
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
        flow_runs: Default::default(),
        deliver_at: None,
    }
}

/// The endpoints of every delivery due now, claimed, sorted.
async fn claimed_endpoints(store: &dyn Store) -> Vec<EndpointId> {
    let mut got: Vec<EndpointId> = claim_all(store, Utc::now())
        .await
        .into_iter()
        .map(|d| d.endpoint.id)
        .collect();
    got.sort();
    got
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
        transformed: false,
        headers: Default::default(),
    }
}

// ---------------------------------------------------------------------------------
// Ingest.

fn source_data(uid: Option<&str>, kind: &str) -> SourceData {
    SourceData {
        uid: uid.map(|u| u.parse().unwrap()),
        name: "source".into(),
        kind: hookd_core::ingest::SourceKind::parse(kind, Some(&serde_json::json!({"secret": "s"}))).unwrap(),
        options: Default::default(),
        metadata: Default::default(),
    }
}

fn received_filter(doc: serde_json::Value) -> FilterText {
    FilterText::new(&doc, FilterTarget::Received).unwrap()
}

fn received(body: &[u8], dedup: Option<&str>, forward: bool) -> NewIngestRequest {
    let now = Utc::now();
    NewIngestRequest {
        id: IngestLogId::generate(),
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
        flow_runs: Vec::new(),
    }
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
