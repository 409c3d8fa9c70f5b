//! The management API driven by the official `svix` crate, as its users would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{TestServer, status_of};
use js_option::JsOption;
use svix::api::{ApplicationListOptions, EndpointListOptions, EventTypeDeleteOptions, EventTypeListOptions};
use svix::models::*;

fn app_in(name: &str, uid: Option<&str>) -> ApplicationIn {
    ApplicationIn {
        uid: uid.map(Into::into),
        ..ApplicationIn::new(name.into())
    }
}

#[tokio::test]
async fn applications_crud_and_pagination() {
    let server = TestServer::start().await;
    let svix = server.svix();

    let mut input = app_in("Shop", Some("shop"));
    input.metadata = Some(BTreeMap::from([("tier".into(), "gold".into())]));
    input.throttle_rate = Some(20);
    let app = svix.application().create(input, None).await.unwrap();
    assert!(app.id.starts_with("app_") && app.id.len() == 31, "{}", app.id);
    assert_eq!(app.uid.as_deref(), Some("shop"));
    assert_eq!(app.throttle_rate, Some(20));
    assert_eq!(app.metadata["tier"], "gold");

    // By id and by uid.
    assert_eq!(svix.application().get(app.id.clone()).await.unwrap(), app);
    assert_eq!(svix.application().get("shop".into()).await.unwrap(), app);

    // get_or_create answers with the existing application.
    let again = svix
        .application()
        .get_or_create(app_in("Other name", Some("shop")), None)
        .await
        .unwrap();
    assert_eq!(again.id, app.id);
    assert_eq!(again.name, "Shop");

    // A duplicate uid is a conflict.
    let err = svix
        .application()
        .create(app_in("Dup", Some("shop")), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 409);

    // PUT replaces; by a new uid it creates.
    let replaced = svix
        .application()
        .upsert("shop".into(), app_in("Shop v2", None))
        .await
        .unwrap();
    assert_eq!(replaced.id, app.id);
    assert_eq!(replaced.name, "Shop v2");
    assert_eq!(
        replaced.uid.as_deref(),
        Some("shop"),
        "a PUT without uid keeps the uid"
    );
    assert_eq!(replaced.throttle_rate, None);
    let created = svix
        .application()
        .upsert("brand-new".into(), app_in("New", None))
        .await
        .unwrap();
    assert_eq!(created.uid.as_deref(), Some("brand-new"));

    // PATCH changes only what it names; null clears.
    let patch = ApplicationPatch {
        name: Some("Shop v3".into()),
        uid: JsOption::Null,
        ..ApplicationPatch::new()
    };
    let patched = svix.application().patch(app.id.clone(), patch).await.unwrap();
    assert_eq!(patched.name, "Shop v3");
    assert_eq!(patched.uid, None);
    assert_eq!(patched.metadata, replaced.metadata);

    // Pagination: 2 so far + 5 = 7 applications, pages of 3, forwards and back.
    for i in 0..5 {
        svix.application()
            .create(app_in(&format!("app {i}"), None), None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut iterator = None;
    let mut pages = 0;
    loop {
        let opts = ApplicationListOptions {
            limit: Some(3),
            iterator: iterator.clone(),
            ..Default::default()
        };
        let page = svix.application().list(Some(opts)).await.unwrap();
        pages += 1;
        seen.extend(page.data.iter().map(|a| a.id.clone()));
        if page.done {
            break;
        }
        iterator = page.iterator;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 7);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "ascending by creation");
    let second = svix
        .application()
        .list(Some(ApplicationListOptions {
            limit: Some(3),
            iterator: Some(seen[2].clone()),
            ..Default::default()
        }))
        .await
        .unwrap();
    let back = svix
        .application()
        .list(Some(ApplicationListOptions {
            limit: Some(3),
            iterator: second.prev_iterator,
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(
        back.data.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        seen[0..3]
    );
    let newest = svix
        .application()
        .list(Some(ApplicationListOptions {
            limit: Some(1),
            order: Some(Ordering::Descending),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(newest.data[0].id, seen[6]);

    // Delete.
    svix.application().delete(app.id.clone()).await.unwrap();
    let err = svix.application().get(app.id.clone()).await.unwrap_err();
    assert_eq!(status_of(&err), 404);
    server.stop().await;
}

#[tokio::test]
async fn application_filters_by_endpoints() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let bare = svix
        .application()
        .create(app_in("bare", None), None)
        .await
        .unwrap();
    let with = svix
        .application()
        .create(app_in("with", None), None)
        .await
        .unwrap();
    svix.endpoint()
        .create(
            with.id.clone(),
            EndpointIn::new("https://example.com/h".into()),
            None,
        )
        .await
        .unwrap();
    let opts = ApplicationListOptions {
        exclude_apps_with_no_endpoints: Some(true),
        ..Default::default()
    };
    let page = svix.application().list(Some(opts)).await.unwrap();
    assert_eq!(
        page.data.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        [with.id]
    );
    let _ = bare;
}

#[tokio::test]
async fn event_types_crud_archive_and_expunge() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let schema = serde_json::json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}}});
    let et = svix
        .event_type()
        .create(
            EventTypeIn {
                schemas: Some(schema.clone()),
                group_name: Some("invoice".into()),
                feature_flags: Some(BTreeSet::from(["beta".to_owned()])),
                ..EventTypeIn::new("invoice.paid".into(), "An invoice was paid".into())
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(et.name, "invoice.paid");
    assert_eq!(et.schemas, Some(schema.clone()));
    assert_eq!(et.group_name.as_deref(), Some("invoice"));
    assert_eq!(et.feature_flag.as_deref(), Some("beta"));
    assert!(!et.deprecated);

    let err = svix
        .event_type()
        .create(EventTypeIn::new("invoice.paid".into(), "again".into()), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 409);
    let err = svix
        .event_type()
        .create(EventTypeIn::new("bad name!".into(), "x".into()), None)
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 422);

    assert_eq!(svix.event_type().get("invoice.paid".into()).await.unwrap(), et);

    let patched = svix
        .event_type()
        .patch(
            "invoice.paid".into(),
            EventTypePatch {
                deprecated: Some(true),
                group_name: JsOption::Null,
                ..EventTypePatch::new()
            },
        )
        .await
        .unwrap();
    assert!(patched.deprecated);
    assert_eq!(patched.group_name, None);
    assert_eq!(patched.schemas, Some(schema));

    let upserted = svix
        .event_type()
        .upsert(
            "user.signup".into(),
            EventTypeUpsertIn::new("A user signed up".into()),
        )
        .await
        .unwrap();
    assert_eq!(upserted.description, "A user signed up");
    let replaced = svix
        .event_type()
        .upsert("user.signup".into(), EventTypeUpsertIn::new("Signed up".into()))
        .await
        .unwrap();
    assert_eq!(replaced.description, "Signed up");
    assert_eq!(replaced.created_at, upserted.created_at);

    // Lists: without content (the SDK's default) schemas are left out.
    let list = svix.event_type().list(None).await.unwrap();
    assert_eq!(
        list.data.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        ["invoice.paid", "user.signup"]
    );
    assert!(list.data[0].schemas.is_none());
    let with_content = EventTypeListOptions {
        with_content: Some(true),
        ..Default::default()
    };
    assert!(
        svix.event_type().list(Some(with_content)).await.unwrap().data[0]
            .schemas
            .is_some()
    );

    // Delete archives; expunge removes.
    svix.event_type()
        .delete("invoice.paid".into(), None)
        .await
        .unwrap();
    assert_eq!(
        svix.event_type()
            .get("invoice.paid".into())
            .await
            .unwrap()
            .archived,
        Some(true)
    );
    assert_eq!(svix.event_type().list(None).await.unwrap().data.len(), 1);
    let archived = EventTypeListOptions {
        include_archived: Some(true),
        ..Default::default()
    };
    assert_eq!(
        svix.event_type().list(Some(archived)).await.unwrap().data.len(),
        2
    );
    svix.event_type()
        .delete(
            "invoice.paid".into(),
            Some(EventTypeDeleteOptions { expunge: Some(true) }),
        )
        .await
        .unwrap();
    assert_eq!(
        status_of(&svix.event_type().get("invoice.paid".into()).await.unwrap_err()),
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn endpoints_crud_headers_secret_and_rotation() {
    let server = TestServer::start().await;
    let svix = server.svix();
    let app = svix
        .application()
        .create(app_in("Shop", Some("shop")), None)
        .await
        .unwrap();
    for name in ["invoice.paid", "invoice.failed"] {
        svix.event_type()
            .create(EventTypeIn::new(name.into(), name.into()), None)
            .await
            .unwrap();
    }

    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned();
    let ep = svix
        .endpoint()
        .create(
            "shop".into(),
            EndpointIn {
                uid: Some("primary".into()),
                description: Some("Main receiver".into()),
                event_types: Some(BTreeSet::from(["invoice.paid".to_owned()])),
                channels: Some(BTreeSet::from(["project_1".to_owned(), "team:2".to_owned()])),
                metadata: Some(BTreeMap::from([("k".into(), "v".into())])),
                headers: Some(BTreeMap::from([
                    ("X-Example".into(), "123".into()),
                    ("Authorization".into(), "Bearer downstream".into()),
                ])),
                throttle_rate: Some(10),
                secret: Some(secret.clone()),
                ..EndpointIn::new("https://example.com/webhook/".into())
            },
            None,
        )
        .await
        .unwrap();
    assert!(ep.id.starts_with("ep_") && ep.id.len() == 30, "{}", ep.id);
    assert_eq!(ep.url, "https://example.com/webhook/");
    assert_eq!(ep.uid.as_deref(), Some("primary"));
    assert_eq!(ep.event_types, Some(BTreeSet::from(["invoice.paid".to_owned()])));
    assert_eq!(ep.channels.as_ref().map(BTreeSet::len), Some(2));
    assert_eq!(ep.throttle_rate, Some(10));
    assert_eq!(ep.disabled, Some(false));

    // Get by id or uid, through the app's id or uid.
    assert_eq!(
        svix.endpoint()
            .get(app.id.clone(), "primary".into())
            .await
            .unwrap(),
        ep
    );
    assert_eq!(
        svix.endpoint().get("shop".into(), ep.id.clone()).await.unwrap(),
        ep
    );

    // Secret as given; rotation returns the new one and keeps serving it.
    assert_eq!(
        svix.endpoint()
            .get_secret("shop".into(), "primary".into())
            .await
            .unwrap()
            .key,
        secret
    );
    let rotated = svix
        .endpoint()
        .rotate_secret(
            "shop".into(),
            "primary".into(),
            EndpointSecretRotateIn::new(),
            None,
        )
        .await
        .unwrap();
    assert_ne!(rotated.key, secret);
    assert!(rotated.key.starts_with("whsec_"));
    assert_eq!(
        svix.endpoint()
            .get_secret("shop".into(), "primary".into())
            .await
            .unwrap()
            .key,
        rotated.key
    );
    let chosen = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
    let rotated2 = svix
        .endpoint()
        .rotate_secret(
            "shop".into(),
            "primary".into(),
            EndpointSecretRotateIn {
                key: Some(chosen.clone()),
                grace_period_seconds: Some(0),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(rotated2.key, chosen);
    let err = svix
        .endpoint()
        .rotate_secret(
            "shop".into(),
            "primary".into(),
            EndpointSecretRotateIn {
                key: Some("whsec_short".into()),
                grace_period_seconds: None,
            },
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 422);

    // Headers: credentials are withheld; PUT replaces; PATCH merges and deletes.
    let headers = svix
        .endpoint()
        .get_headers("shop".into(), "primary".into())
        .await
        .unwrap();
    assert_eq!(
        headers.headers,
        BTreeMap::from([("X-Example".into(), "123".into())])
    );
    assert_eq!(headers.sensitive, BTreeSet::from(["Authorization".to_owned()]));
    svix.endpoint()
        .set_headers(
            "shop".into(),
            "primary".into(),
            EndpointHeadersIn::new(BTreeMap::from([
                ("X-One".into(), "1".into()),
                ("X-Two".into(), "2".into()),
            ])),
        )
        .await
        .unwrap();
    svix.endpoint()
        .patch_headers(
            "shop".into(),
            "primary".into(),
            EndpointHeadersPatchIn {
                delete_headers: Some(vec!["x-one".into()]),
                ..EndpointHeadersPatchIn::new(BTreeMap::from([("X-Three".into(), "3".into())]))
            },
        )
        .await
        .unwrap();
    let headers = svix
        .endpoint()
        .get_headers("shop".into(), "primary".into())
        .await
        .unwrap();
    assert_eq!(
        headers.headers,
        BTreeMap::from([("X-Three".into(), "3".into()), ("X-Two".into(), "2".into())])
    );
    assert!(headers.sensitive.is_empty());
    let err = svix
        .endpoint()
        .set_headers(
            "shop".into(),
            "primary".into(),
            EndpointHeadersIn::new(BTreeMap::from([("webhook-signature".into(), "v1,forged".into())])),
        )
        .await
        .unwrap_err();
    assert_eq!(status_of(&err), 422);

    // PUT replaces fields and keeps the secret and headers.
    let updated = svix
        .endpoint()
        .upsert(
            "shop".into(),
            "primary".into(),
            EndpointUpsertIn {
                event_types: Some(BTreeSet::from(["invoice.failed".to_owned()])),
                disabled: Some(true),
                ..EndpointUpsertIn::new("https://example.org/new".into())
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.id, ep.id);
    assert_eq!(updated.url, "https://example.org/new");
    assert_eq!(updated.disabled, Some(true));
    assert_eq!(updated.channels, None);
    assert_eq!(updated.uid.as_deref(), Some("primary"));
    assert_eq!(
        svix.endpoint()
            .get_secret("shop".into(), "primary".into())
            .await
            .unwrap()
            .key,
        chosen
    );
    assert_eq!(
        svix.endpoint()
            .get_headers("shop".into(), "primary".into())
            .await
            .unwrap()
            .headers
            .len(),
        2
    );

    // PATCH.
    let patched = svix
        .endpoint()
        .patch(
            "shop".into(),
            "primary".into(),
            EndpointPatch {
                disabled: Some(false),
                event_types: JsOption::Null,
                description: Some("patched".into()),
                ..EndpointPatch::new()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.disabled, Some(false));
    assert_eq!(patched.event_types, None);
    assert_eq!(patched.description, "patched");
    assert_eq!(patched.url, "https://example.org/new");

    // Validation: unknown event type, bad URL, duplicate uid.
    let bad = EndpointIn {
        event_types: Some(BTreeSet::from(["no.such.type".to_owned()])),
        ..EndpointIn::new("https://example.com".into())
    };
    assert_eq!(
        status_of(
            &svix
                .endpoint()
                .create("shop".into(), bad, None)
                .await
                .unwrap_err()
        ),
        422
    );
    let bad = EndpointIn::new("not a url".into());
    assert_eq!(
        status_of(
            &svix
                .endpoint()
                .create("shop".into(), bad, None)
                .await
                .unwrap_err()
        ),
        422
    );
    let dup = EndpointIn {
        uid: Some("primary".into()),
        ..EndpointIn::new("https://example.com".into())
    };
    assert_eq!(
        status_of(
            &svix
                .endpoint()
                .create("shop".into(), dup, None)
                .await
                .unwrap_err()
        ),
        409
    );

    // Generated secrets look like Svix ones.
    let second = svix
        .endpoint()
        .create("shop".into(), EndpointIn::new("https://example.net".into()), None)
        .await
        .unwrap();
    let key = svix
        .endpoint()
        .get_secret("shop".into(), second.id.clone())
        .await
        .unwrap()
        .key;
    assert!(key.starts_with("whsec_") && key.len() == 38, "{key}");

    // List and delete.
    let list = svix
        .endpoint()
        .list(
            "shop".into(),
            Some(EndpointListOptions {
                limit: Some(1),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(list.data.len(), 1);
    assert!(!list.done);
    svix.endpoint()
        .delete("shop".into(), "primary".into())
        .await
        .unwrap();
    assert_eq!(
        status_of(
            &svix
                .endpoint()
                .get("shop".into(), "primary".into())
                .await
                .unwrap_err()
        ),
        404
    );
    let list = svix.endpoint().list("shop".into(), None).await.unwrap();
    assert_eq!(list.data.len(), 1);
    assert!(list.done);

    // Endpoints of a missing application.
    assert_eq!(
        status_of(&svix.endpoint().list("nope".into(), None).await.unwrap_err()),
        404
    );
    server.stop().await;
}

#[tokio::test]
async fn health_answers_through_the_sdk() {
    let server = TestServer::start().await;
    server.svix().health().get().await.unwrap();
    server.stop().await;
}
