//! The Svix API beyond the first week, driven with the official `svix` crate:
//! scheduled messages (`deliverAt`), attempt and message list filters, background
//! tasks (recover, replay-missing, bulk replay, expunge-all-contents, statistics) and
//! the event-type catalogue's OpenAPI import and export.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use chrono::Utc;
use common::receiver::Receiver;
use common::{TestServer, call, settle, status_of, wait_for_attempts};
use reqwest::Method;
use serde_json::json;
use svix::api::{MessageAttemptListByEndpointOptions, MessageAttemptListByMsgOptions, MessageListOptions};
use svix::models::*;

/// A server that may deliver to the loopback receiver, with a fast retry schedule.
async fn server() -> TestServer {
    TestServer::start_with(&[
        ("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8"),
        ("HOOKD_RETRY_SCHEDULE", "200ms"),
        ("HOOKD_DELIVERY_POLL_INTERVAL", "50ms"),
    ])
    .await
}

/// An application with one endpoint at `receiver` + `path`: (app id, endpoint id).
async fn app_with_endpoint(server: &TestServer, receiver: &Receiver, path: &str) -> (String, String) {
    let svix = server.svix();
    let app = svix
        .application()
        .create(ApplicationIn::new("shop".into()), None)
        .await
        .unwrap();
    let ep = svix
        .endpoint()
        .create(
            app.id.clone(),
            EndpointIn::new(format!("{}{path}", receiver.url)),
            None,
        )
        .await
        .unwrap();
    (app.id, ep.id)
}

fn message(event_type: &str, payload: serde_json::Value) -> MessageIn {
    MessageIn::new(event_type.into(), payload)
}

#[tokio::test]
async fn a_scheduled_message_is_delivered_at_its_time_not_before() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, ep) = app_with_endpoint(&server, &receiver, "/later").await;
    let svix = server.svix();

    let (start, start_utc) = (std::time::Instant::now(), Utc::now());
    let at = start_utc + chrono::Duration::seconds(2);
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn {
                deliver_at: Some(at),
                ..message("invoice.due", json!({"n": 1}))
            },
            None,
        )
        .await
        .unwrap();
    let echoed = msg.deliver_at.expect("deliverAt is answered");
    assert!((echoed - at).num_milliseconds().abs() <= 1, "{echoed} vs {at}");
    let now_msg = svix
        .message()
        .create(app.clone(), message("invoice.now", json!({"n": 2})), None)
        .await
        .unwrap();
    assert_eq!(now_msg.deliver_at, None);

    // The unscheduled one arrives at once; the scheduled one waits for its time.
    receiver.wait_for("/later", 1, Duration::from_secs(10)).await;
    let pending = svix
        .message_attempt()
        .list_attempted_destinations(app.clone(), msg.id.clone(), None)
        .await
        .unwrap()
        .data;
    assert_eq!(pending[0].status, MessageStatus::Pending);
    let next = pending[0].next_attempt.expect("the delivery is due at deliverAt");
    assert!((next - at).num_milliseconds().abs() <= 1, "{next} vs {at}");

    let got = receiver.wait_for("/later", 2, Duration::from_secs(10)).await;
    let scheduled = got
        .iter()
        .find(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["n"] == 1)
        .expect("the scheduled message arrived");
    let arrived = start_utc + chrono::Duration::from_std(scheduled.at - start).unwrap();
    assert!(
        arrived >= at - chrono::Duration::milliseconds(5),
        "delivered at {arrived}, before its deliverAt {at}"
    );
    assert_eq!(
        svix.message()
            .get(app.clone(), msg.id.clone(), None)
            .await
            .unwrap()
            .deliver_at
            .map(|d| d.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    let _ = ep;
    server.stop().await;
}

#[tokio::test]
async fn deliver_at_out_of_bounds_is_refused_and_nothing_is_sent() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, _) = app_with_endpoint(&server, &receiver, "/x").await;
    let svix = server.svix();
    let cases = [
        (Utc::now() - chrono::Duration::hours(1), None, "in the past"),
        (Utc::now() + chrono::Duration::days(31), None, "at most 30 days"),
        (
            Utc::now() + chrono::Duration::hours(3),
            Some(1),
            "after the payload's retention",
        ),
    ];
    for (at, hours, why) in cases {
        let err = svix
            .message()
            .create(
                app.clone(),
                MessageIn {
                    deliver_at: Some(at),
                    payload_retention_hours: hours,
                    ..message("a.b", json!({}))
                },
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(status_of(&err), 422, "{why}: {err:?}");
        assert!(format!("{err:?}").contains(why), "{why}: {err:?}");
    }
    // A time a little in the past (clock skew) means now.
    let msg = svix
        .message()
        .create(
            app.clone(),
            MessageIn {
                deliver_at: Some(Utc::now() - chrono::Duration::seconds(30)),
                ..message("a.b", json!({}))
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(msg.deliver_at, None);
    receiver.wait_for("/x", 1, Duration::from_secs(10)).await;
    let listed = svix.message().list(app.clone(), None).await.unwrap().data;
    assert_eq!(listed.len(), 1, "the refused messages were not kept");
    server.stop().await;
}

#[tokio::test]
async fn attempt_and_message_lists_filter_by_channel_and_tag_and_carry_the_message() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, ep) = app_with_endpoint(&server, &receiver, "/f").await;
    let svix = server.svix();
    let red = svix
        .message()
        .create(
            app.clone(),
            MessageIn {
                channels: Some(["red".to_string()].into()),
                tags: Some(["vip".to_string()].into()),
                ..message("order.paid", json!({"colour": "red"}))
            },
            None,
        )
        .await
        .unwrap();
    let blue = svix
        .message()
        .create(
            app.clone(),
            MessageIn {
                channels: Some(["blue".to_string()].into()),
                tags: Some(["plain".to_string()].into()),
                ..message("order.paid", json!({"colour": "blue"}))
            },
            None,
        )
        .await
        .unwrap();
    wait_for_attempts(&svix, &app, &red.id, 1).await;
    wait_for_attempts(&svix, &app, &blue.id, 1).await;

    let by_endpoint = |o: MessageAttemptListByEndpointOptions| {
        let (svix, app, ep) = (server.svix(), app.clone(), ep.clone());
        async move {
            svix.message_attempt()
                .list_by_endpoint(app, ep, Some(o))
                .await
                .unwrap()
                .data
        }
    };
    let all = by_endpoint(Default::default()).await;
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|a| a.msg.is_none()), "no msg unless asked for");
    // The SDK sends with_content=false unless told otherwise; a plain request (no
    // parameter) gets the responses, as Svix answers v1 clients.
    assert!(all.iter().all(|a| a.response.is_empty()), "{all:?}");
    let (_, plain_request) = call(
        &server,
        Method::GET,
        &format!("/api/v1/app/{app}/attempt/endpoint/{ep}"),
        None,
    )
    .await;
    assert_eq!(plain_request["data"][0]["response"], "receiver says hi");

    let red_only = by_endpoint(MessageAttemptListByEndpointOptions {
        channel: Some("red".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(red_only.len(), 1);
    assert_eq!(red_only[0].msg_id, red.id);
    let plain = by_endpoint(MessageAttemptListByEndpointOptions {
        tag: Some("plain".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(plain.len(), 1);
    assert_eq!(plain[0].msg_id, blue.id);
    let none = by_endpoint(MessageAttemptListByEndpointOptions {
        channel: Some("red".into()),
        tag: Some("plain".into()),
        ..Default::default()
    })
    .await;
    assert!(none.is_empty());

    let with_msg = by_endpoint(MessageAttemptListByEndpointOptions {
        with_msg: Some(true),
        with_content: Some(false),
        ..Default::default()
    })
    .await;
    assert_eq!(with_msg.len(), 2);
    for a in &with_msg {
        let m = a.msg.as_ref().expect("with_msg=true carries the message");
        assert_eq!(m.id, a.msg_id);
        assert_eq!(m.event_type, "order.paid");
        assert_eq!(m.payload, json!({}), "never the payload");
        assert!(a.response.is_empty(), "with_content=false: no response");
    }

    let by_msg = svix
        .message_attempt()
        .list_by_msg(
            app.clone(),
            red.id.clone(),
            Some(MessageAttemptListByMsgOptions {
                tag: Some("plain".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .data;
    assert!(by_msg.is_empty(), "the red message has no tag plain");

    let tagged = svix
        .message()
        .list(
            app.clone(),
            Some(MessageListOptions {
                tag: Some("vip".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(tagged.len(), 1);
    assert_eq!(tagged[0].id, red.id);
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/api/v1/app/{app}/msg?tag=not%20a%20tag!"),
        None,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["query", "tag"]));
    let on_endpoint = settle(
        || async {
            call(
                &server,
                Method::GET,
                &format!("/api/v1/app/{app}/endpoint/{ep}/msg?tag=vip"),
                None,
            )
            .await
            .1
        },
        |b| b["data"].as_array().is_some_and(|d| d.len() == 1),
    )
    .await;
    assert_eq!(on_endpoint["data"][0]["id"], json!(red.id));
    server.stop().await;
}

/// Polls a background task through the SDK until it is no longer running.
async fn finished_task(svix: &svix::api::Svix, id: &str) -> BackgroundTaskOut {
    settle(
        || async { svix.background_task().get(id.to_owned()).await.unwrap() },
        |t| t.status != BackgroundTaskStatus::Running,
    )
    .await
}

#[tokio::test]
async fn replays_purge_and_statistics_run_as_background_tasks_the_sdk_polls() {
    let server = server().await;
    let receiver = Receiver::start().await;
    let (app, a) = app_with_endpoint(&server, &receiver, "/a").await;
    let svix = server.svix();
    let since = Utc::now() - chrono::Duration::seconds(1);
    for (event_type, n) in [("a.b", 1), ("a.b", 2), ("c.d", 3)] {
        svix.message()
            .create(app.clone(), message(event_type, json!({"n": n})), None)
            .await
            .unwrap();
    }
    receiver.wait_for("/a", 3, Duration::from_secs(10)).await;

    // An endpoint added later, for a.b only, gets what it missed: two messages, once.
    for name in ["a.b", "c.d"] {
        svix.event_type()
            .create(EventTypeIn::new(name.into(), "an event".into()), None)
            .await
            .unwrap();
    }
    let b = svix
        .endpoint()
        .create(
            app.clone(),
            EndpointIn {
                event_types: Some(["a.b".to_string()].into()),
                ..EndpointIn::new(format!("{}/b", receiver.url))
            },
            None,
        )
        .await
        .unwrap();
    let replay = svix
        .endpoint()
        .replay_missing(app.clone(), b.id.clone(), ReplayIn { since, until: None }, None)
        .await
        .unwrap();
    assert_eq!(replay.task, BackgroundTaskType::EndpointReplay);
    let done = finished_task(&svix, &replay.id).await;
    assert_eq!(done.status, BackgroundTaskStatus::Finished, "{done:?}");
    assert_eq!(done.data["messagesSent"], 2, "{done:?}");
    assert!(done.data["finishedAt"].is_string());
    let got = receiver.wait_for("/b", 2, Duration::from_secs(10)).await;
    assert!(
        got.iter()
            .all(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["n"] != 3)
    );
    let again = svix
        .endpoint()
        .replay_missing(app.clone(), b.id.clone(), ReplayIn { since, until: None }, None)
        .await
        .unwrap();
    assert_eq!(
        finished_task(&svix, &again.id).await.data["messagesSent"],
        0,
        "nothing is sent twice"
    );

    // Bulk replay sends again what an endpoint got, filtered.
    let bulk = svix
        .endpoint()
        .bulk_replay(
            app.clone(),
            a.clone(),
            BulkReplayIn {
                event_types: Some(["a.b".to_string()].into()),
                status: Some(MessageStatus::Success),
                ..BulkReplayIn::new(since)
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(finished_task(&svix, &bulk.id).await.data["messagesSent"], 2);
    receiver.wait_for("/a", 5, Duration::from_secs(10)).await;
    let by_class = svix
        .endpoint()
        .bulk_replay(
            app.clone(),
            a.clone(),
            BulkReplayIn {
                status_code_class: Some(StatusCodeClass::CodeNone),
                ..BulkReplayIn::new(since)
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        finished_task(&svix, &by_class.id).await.data["messagesSent"],
        0,
        "no attempt went unanswered"
    );

    // Statistics: attempts per application, and what endpoints subscribe to.
    let stats = svix
        .statistics()
        .aggregate_app_stats(
            AppUsageStatsIn {
                app_ids: Some([app.clone(), "no-such-app".to_string()].into()),
                ..AppUsageStatsIn::new(Utc::now() + chrono::Duration::hours(1), since)
            },
            None,
        )
        .await;
    assert_eq!(status_of(&stats.unwrap_err()), 422, "until before since");
    let stats = svix
        .statistics()
        .aggregate_app_stats(
            AppUsageStatsIn {
                app_ids: Some([app.clone(), "no-such-app".to_string()].into()),
                ..AppUsageStatsIn::new(since, Utc::now() + chrono::Duration::hours(1))
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(stats.unresolved_app_ids, ["no-such-app".to_string()].into());
    let counted = finished_task(&svix, &stats.id).await;
    assert_eq!(counted.data["appStats"][0]["appId"], json!(app), "{counted:?}");
    let attempts = counted.data["appStats"][0]["messageDestinations"]
        .as_u64()
        .unwrap();
    assert!(attempts >= 5, "{counted:?}");
    let aggregate = svix.statistics().aggregate_event_types().await.unwrap();
    let aggregated = finished_task(&svix, &aggregate.id).await;
    assert_eq!(
        aggregated.data["event_types"],
        json!([{"appId": app, "explicitlySubscribedEventTypes": ["a.b"], "hasCatchAllEndpoint": true}])
    );

    // Purging every payload.
    let purge = svix
        .message()
        .expunge_all_contents(app.clone(), None)
        .await
        .unwrap();
    assert_eq!(purge.task, BackgroundTaskType::ApplicationPurgeContent);
    assert_eq!(finished_task(&svix, &purge.id).await.data["messagesPurged"], 3);
    let listed = svix
        .message()
        .list(
            app.clone(),
            Some(MessageListOptions {
                with_content: Some(true),
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .data;
    assert!(listed.iter().all(|m| m.payload == json!({})), "{listed:?}");

    // The list, newest first, filtered by kind and status; another org sees none.
    let all = svix.background_task().list(None).await.unwrap().data;
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].id, purge.id);
    let replays = svix
        .background_task()
        .list(Some(svix::api::BackgroundTaskListOptions {
            task: Some(BackgroundTaskType::EndpointReplay),
            status: Some(BackgroundTaskStatus::Finished),
            ..Default::default()
        }))
        .await
        .unwrap()
        .data;
    assert_eq!(replays.len(), 2);
    let other = server.svix_with(&server.token_for("other-org").await);
    assert!(other.background_task().list(None).await.unwrap().data.is_empty());
    assert_eq!(
        status_of(&other.background_task().get(purge.id.clone()).await.unwrap_err()),
        404
    );
    let (status, body) = call(&server, Method::GET, "/api/v1/background-task?task=nope", None).await;
    assert_eq!(status, 422, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn event_types_import_from_an_openapi_document_and_export_back() {
    let server = server().await;
    let svix = server.svix();
    let spec = json!({
        "openapi": "3.1.0",
        "info": {"title": "Shop", "version": "1"},
        "webhooks": {
            "order.paid": {"post": {
                "description": "An order was paid",
                "x-svix-group-name": "orders",
                "requestBody": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Order"},
                    "example": {"id": "o_1", "total": 12}
                }}}
            }},
            "order.refunded": {"post": {"summary": "Refunded", "deprecated": true}}
        },
        "components": {"schemas": {"Order": {"type": "object", "required": ["id"],
            "properties": {"id": {"type": "string"}, "total": {"type": "number"}}}}}
    });
    svix.event_type()
        .create(EventTypeIn::new("legacy.thing".into(), "old".into()), None)
        .await
        .unwrap();

    let dry = svix
        .event_type()
        .import_openapi(
            EventTypeImportOpenApiIn {
                spec: Some(spec.clone()),
                dry_run: Some(true),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(dry.data.modified.is_empty());
    let would: Vec<_> = dry.data.to_modify.unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(would, vec!["order.paid", "order.refunded"]);
    assert_eq!(
        status_of(&svix.event_type().get("order.paid".into()).await.unwrap_err()),
        404,
        "a dry run changes nothing"
    );

    let done = svix
        .event_type()
        .import_openapi(
            EventTypeImportOpenApiIn {
                spec: Some(spec.clone()),
                replace_all: Some(true),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        done.data.modified,
        vec!["order.paid", "order.refunded", "legacy.thing"]
    );
    let paid = svix.event_type().get("order.paid".into()).await.unwrap();
    assert_eq!(paid.description, "An order was paid");
    assert_eq!(paid.group_name.as_deref(), Some("orders"));
    assert_eq!(paid.schemas.as_ref().unwrap()["1"]["required"], json!(["id"]));
    assert_eq!(
        paid.schemas.as_ref().unwrap()["1"]["examples"],
        json!([{"id": "o_1", "total": 12}])
    );
    assert!(
        svix.event_type()
            .get("order.refunded".into())
            .await
            .unwrap()
            .deprecated
    );
    assert_eq!(
        svix.event_type()
            .get("legacy.thing".into())
            .await
            .unwrap()
            .archived,
        Some(true),
        "replaceAll archives"
    );

    // Importing the same document again changes nothing.
    let again = svix
        .event_type()
        .import_openapi(
            EventTypeImportOpenApiIn {
                spec: Some(spec.clone()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(again.data.modified.is_empty(), "{:?}", again.data.modified);

    // The imported example is what send-example sends.
    let receiver = Receiver::start().await;
    let (app, ep) = app_with_endpoint(&server, &receiver, "/ex").await;
    svix.endpoint()
        .send_example(
            app.clone(),
            ep.clone(),
            EventExampleIn::new("order.paid".into()),
            None,
        )
        .await
        .unwrap();
    let got = receiver.wait_for("/ex", 1, Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got[0].body).unwrap(),
        json!({"id": "o_1", "total": 12})
    );

    // The export imports into another organisation as the same catalogue (YAML too).
    let (status, exported) = call(&server, Method::GET, "/api/v1/event-type/export/openapi", None).await;
    assert_eq!(status, 200);
    assert_eq!(exported["openapi"], "3.1.0");
    assert!(
        exported["webhooks"].get("legacy.thing").is_none(),
        "archived ones are left out"
    );
    let other = server.svix_with(&server.token_for("copy-org").await);
    let yaml = "openapi: 3.1.0\ninfo: {title: t, version: '1'}\nx-webhooks:\n  yaml.only:\n    post:\n      description: from yaml\n";
    for body in [json!({"spec": exported}), json!({"specRaw": yaml})] {
        let imported = other
            .event_type()
            .import_openapi(
                EventTypeImportOpenApiIn {
                    spec: body.get("spec").cloned(),
                    spec_raw: body["specRaw"].as_str().map(str::to_owned),
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap();
        assert!(!imported.data.modified.is_empty());
    }
    let copied = other.event_type().get("order.paid".into()).await.unwrap();
    assert_eq!(
        (copied.description, copied.schemas),
        (paid.description, paid.schemas)
    );
    assert_eq!(
        other
            .event_type()
            .get("yaml.only".into())
            .await
            .unwrap()
            .description,
        "from yaml"
    );

    // Neither or both forms: 400; a document without webhooks or with a bad name: 422.
    for (body, want) in [
        (json!({}), 400),
        (json!({"spec": spec, "specRaw": "{}"}), 400),
        (json!({"spec": {"openapi": "3.1.0"}}), 422),
        (json!({"spec": {"webhooks": {"bad name!": {"post": {}}}}}), 422),
        (json!({"specRaw": "webhooks: [unclosed"}), 422),
    ] {
        let (status, err) = call(
            &server,
            Method::POST,
            "/api/v1/event-type/import/openapi",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{body}: {err}");
        assert!(err["code"].is_string(), "{err}");
    }
    server.stop().await;
}
