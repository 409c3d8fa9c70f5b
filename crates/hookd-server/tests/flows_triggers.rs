//! Flows started by what happens in hookd, end to end against the real server
//! (SQLite, or PostgreSQL with `HOOKD_TEST_DATABASE_URL`) and a real receiver: a
//! document change publishes a signed event, a message runs the flows of its event
//! type and channel, a form posted to a mode is validated and answered, a score
//! submitted runs its board's flows, `flow.call` chains and their loops, and flows
//! that set each other off through data stop at the depth limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{TestServer, call, ended_run, ok, settle};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ACCOUNT: &str = "test-org";

/// The runs of flow `flow`, newest first, once `count` of them have ended.
async fn ended_runs(server: &TestServer, flow: &str, count: usize) -> Vec<Value> {
    settle(
        || async {
            call(
                server,
                Method::GET,
                &format!("/api/v1/flow-run?flow={flow}&limit=100"),
                None,
            )
            .await
            .1["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        },
        |runs: &Vec<Value>| {
            runs.len() >= count
                && runs
                    .iter()
                    .all(|r| r["status"] != "running" && r["status"] != "waiting")
        },
    )
    .await
}

async fn app_with_collection(server: &TestServer, app: &str, collection: &str) {
    ok(
        server,
        Method::POST,
        "/api/v1/app",
        json!({"name": app, "uid": app}),
    )
    .await;
    ok(
        server,
        Method::POST,
        &format!("/api/v1/app/{app}/collection"),
        json!({"name": collection}),
    )
    .await;
}

async fn document(server: &TestServer, app: &str, collection: &str, key: &str) -> (StatusCode, Value) {
    call(
        server,
        Method::GET,
        &format!("/api/v1/app/{app}/collection/{collection}/document/{key}"),
        None,
    )
    .await
}

#[tokio::test]
async fn a_document_update_publishes_a_signed_event_to_the_apps_endpoint() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    app_with_collection(&server, "crm", "tickets").await;
    ok(
        &server,
        Method::POST,
        "/api/v1/event-type",
        json!({"name": "ticket.closed", "description": "A ticket was closed"}),
    )
    .await;
    let ep = ok(
        &server,
        Method::POST,
        "/api/v1/app/crm/endpoint",
        json!({"url": format!("{}/events", receiver.url), "filterTypes": ["ticket.closed"]}),
    )
    .await;
    // A collection that is not there is refused at the trigger's field.
    let (status, out) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(
            json!({"name": "x", "trigger": {"type": "document.changed", "app": "crm", "collection": "nope"},
                    "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "trigger", "collection"]));
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "closed-tickets",
               "trigger": {"type": "document.changed", "app": "crm", "collection": "tickets", "on": ["updated"]},
               "steps": [
                 {"name": "closed", "type": "condition",
                  "filter": {"trigger": {"document": {"status": "closed"}, "previous": {"status": {"$neq": "closed"}}}}},
                 {"name": "tell", "type": "message.publish", "app": "crm", "eventType": "ticket.closed",
                  "payload": {"ticket": "{{ trigger.key }}", "version": "{{ trigger.version }}",
                              "by": "{{ trigger.document.closedBy }}"}}
               ]}),
    )
    .await;

    // The docs' third example, its SMS swapped for a record: an incident that becomes
    // urgent, created so or changed to it.
    ok(
        &server,
        Method::POST,
        "/api/v1/app/crm/collection",
        json!({"name": "incidents"}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "urgent-ticket",
               "trigger": {"type": "document.changed", "app": "crm", "collection": "incidents", "on": ["created", "updated"]},
               "steps": [
                 {"name": "became-urgent", "type": "condition",
                  "filter": {"trigger": {"document": {"priority": "urgent"},
                                         "previous": {"$not": {"priority": "urgent"}}}}},
                 {"name": "page", "type": "document.increment", "app": "crm", "collection": "incidents",
                  "key": "pages", "by": {"n": 1}}
               ]}),
    )
    .await;
    for (key, body) in [
        ("u-1", json!({"priority": "urgent"})),
        ("u-1", json!({"priority": "urgent", "title": "still"})),
        ("u-2", json!({"priority": "low"})),
        ("u-2", json!({"priority": "urgent"})),
    ] {
        ok(
            &server,
            Method::PUT,
            &format!("/api/v1/app/crm/collection/incidents/document/{key}"),
            body,
        )
        .await;
    }
    // Four writes, and the two pages the flow wrote (stopped by the condition).
    let urgent = ended_runs(&server, "urgent-ticket", 6).await;
    assert_eq!(urgent.len(), 6, "{urgent:?}");
    let paged = urgent.iter().filter(|r| r["status"] == "succeeded").count();
    assert_eq!(paged, 2, "created urgent, and changed to urgent: {urgent:?}");

    let put = |body: Value| {
        let server = &server;
        async move {
            ok(
                server,
                Method::PUT,
                "/api/v1/app/crm/collection/tickets/document/t-1",
                body,
            )
            .await
        }
    };
    // Created: not an event this flow listens to.
    put(json!({"status": "open"})).await;
    // Updated, but the condition does not hold: the run stops.
    put(json!({"status": "pending"})).await;
    // Updated to closed: the event is published.
    put(json!({"status": "closed", "closedBy": "ana"})).await;
    // The same body again is no change and starts nothing.
    put(json!({"status": "closed", "closedBy": "ana"})).await;

    let runs = ended_runs(&server, "closed-tickets", 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    let mut statuses: Vec<&str> = runs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["stopped", "succeeded"], "{runs:?}");
    let done = runs.iter().find(|r| r["status"] == "succeeded").unwrap();
    let trigger = &done["trigger"];
    assert_eq!(trigger["event"], "updated", "{done}");
    assert_eq!(trigger["key"], "t-1");
    assert_eq!(trigger["version"], 3);
    assert_eq!(trigger["previous"], json!({"status": "pending"}));

    let got = receiver.wait_for("/events", 1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body, json!({"ticket": "t-1", "version": 3, "by": "ana"}));
    let secret = server
        .svix()
        .endpoint()
        .get_secret("crm".into(), ep["id"].as_str().unwrap().to_owned())
        .await
        .unwrap()
        .key;
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].body, &common::http_headers(&got[0].headers))
        .expect("the published event verifies");
    server.stop().await;
}

#[tokio::test]
async fn a_message_runs_the_flows_of_its_event_type_and_channel() {
    let server = TestServer::start().await;
    app_with_collection(&server, "shop", "counts").await;
    for name in ["order.paid", "order.refunded"] {
        ok(
            &server,
            Method::POST,
            "/api/v1/event-type",
            json!({"name": name, "description": name}),
        )
        .await;
    }
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "count-eu-paid",
               "trigger": {"type": "message.created", "app": "shop", "eventTypes": ["order.paid"], "channels": ["eu"]},
               "steps": [{"name": "count", "type": "document.increment", "app": "shop", "collection": "counts",
                          "key": "paid", "by": {"n": 1, "cents": "{{ trigger.payload.cents }}"}}]}),
    )
    .await;
    let svix = server.svix();
    let send = |event_type: &str, channels: Option<Vec<String>>, cents: i64| {
        let svix = &svix;
        let event_type = event_type.to_owned();
        async move {
            let mut msg = svix::models::MessageIn::new(event_type, json!({"cents": cents}));
            msg.channels = channels.map(|c| c.into_iter().collect());
            svix.message().create("shop".into(), msg, None).await.unwrap()
        }
    };
    let eu = Some(vec!["eu".to_owned()]);
    let paid = send("order.paid", eu.clone(), 1200).await;
    send("order.paid", Some(vec!["us".to_owned()]), 500).await;
    send("order.refunded", eu.clone(), 700).await;
    send("order.paid", None, 300).await;
    send("order.paid", Some(vec!["us".to_owned(), "eu".to_owned()]), 100).await;

    let runs = ended_runs(&server, "count-eu-paid", 2).await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let first = runs
        .iter()
        .find(|r| r["trigger"]["messageId"] == json!(paid.id))
        .unwrap();
    assert_eq!(first["trigger"]["eventType"], "order.paid");
    assert_eq!(first["trigger"]["payload"], json!({"cents": 1200}));
    assert_eq!(first["trigger"]["channels"], json!(["eu"]));
    let (_, doc) = document(&server, "shop", "counts", "paid").await;
    assert_eq!(doc["data"], json!({"n": 2, "cents": 1300}), "{doc}");
    server.stop().await;
}

#[tokio::test]
async fn a_form_posted_to_a_mode_is_validated_kept_and_answered() {
    let server = TestServer::start().await;
    app_with_collection(&server, "site", "signups").await;
    // The mode first: the flow listens to it by name.
    ok(
        &server,
        Method::POST,
        "/api/v1/app/site/mode",
        json!({"name": "signup", "method": "POST", "operation": "flow.run"}),
    )
    .await;
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/app/site/mode",
        Some(json!({"name": "bad", "method": "POST", "operation": "flow.run", "target": "signups"})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "flow.run takes no target"
    );
    let key = ok(
        &server,
        Method::POST,
        "/api/v1/app/site/api-key",
        json!({"name": "web", "scopes": ["write"]}),
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = |body: reqwest::RequestBuilder| async move {
        let resp = body.send().await.unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap_or(Value::Null))
    };
    let form = || {
        server
            .http()
            .post(server.url(&format!("/h/{ACCOUNT}/site/signup")))
            .bearer_auth(&key)
    };
    // No flow listens yet.
    let (status, out) = post(form().json(&json!({"email": "a@example.com"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{out}");

    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "signup",
        "trigger": {"type": "mode", "app": "site", "mode": "signup"},
        "response": {"status": 201, "body": {"welcome": "{{ trigger.body.email }}", "id": "{{ run.id }}"}},
        "steps": [
          {"name": "check", "type": "validate", "schema": {
             "type": "object", "required": ["email"],
             "properties": {"email": {"type": "string", "pattern": "@"},
                            "age": {"type": "integer", "minimum": 18}}}},
          {"name": "keep", "type": "document.put", "app": "site", "collection": "signups",
           "key": "{{ run.id }}", "body": "{{ trigger.body }}"}
        ]}),
    )
    .await;

    let shown = ok(&server, Method::GET, "/api/v1/flow/signup", Value::Null).await;
    assert_eq!(shown["response"]["status"], 201, "{shown}");
    let (status, out) = post(form().json(&json!({"email": "a@example.com", "age": 30}))).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert_eq!(out["welcome"], "a@example.com");
    let id = out["id"].as_str().unwrap().to_owned();
    let (status, doc) = document(&server, "site", "signups", &id).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["data"], json!({"email": "a@example.com", "age": 30}));
    let run = ok(
        &server,
        Method::GET,
        &format!("/api/v1/flow-run/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(run["trigger"]["mode"], "signup");
    assert!(run["trigger"]["headers"].get("authorization").is_none(), "{run}");

    // A schema-invalid form: 422 with each error, and nothing kept.
    let (status, out) = post(form().json(&json!({"age": 12}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["code"], "validation");
    assert_eq!(out["detail"].as_array().unwrap().len(), 2, "{out}");
    let (_, listed) = call(
        &server,
        Method::GET,
        "/api/v1/app/site/collection/signups/document",
        None,
    )
    .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");

    // A web form (urlencoded) is read as an object of strings.
    let (status, out) = post(form().form(&[("email", "b@example.com")])).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let (_, doc) = document(&server, "site", "signups", out["id"].as_str().unwrap()).await;
    assert_eq!(doc["data"], json!({"email": "b@example.com"}));
    // Not JSON and not a form: 400.
    let (status, _) = post(form().body("{oops")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.stop().await;
}

#[tokio::test]
async fn scores_run_their_boards_flows_and_a_flow_submits_scores() {
    let server = TestServer::start().await;
    app_with_collection(&server, "game", "records").await;
    ok(
        &server,
        Method::POST,
        "/api/v1/app/game/leaderboard",
        json!({"name": "points", "policy": "best"}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "personal-best",
               "trigger": {"type": "leaderboard.submitted", "app": "game", "leaderboard": "points"},
               "steps": [{"name": "keep", "type": "document.put", "app": "game", "collection": "records",
                          "if": {"trigger": {"changed": true}},
                          "key": "{{ trigger.player }}",
                          "body": {"best": "{{ trigger.best }}", "rank": "{{ trigger.rank }}"}}]}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "award", "trigger": {"type": "manual"},
               "steps": [{"name": "submit", "type": "leaderboard.submit", "app": "game", "leaderboard": "points",
                          "player": "{{ trigger.player }}", "score": "{{ trigger.points }}"}]}),
    )
    .await;
    let score = |player: &str, points: i64| {
        let server = &server;
        let path = format!("/api/v1/app/game/leaderboard/points/score/{player}");
        async move { ok(server, Method::POST, &path, json!({"score": points})).await }
    };
    score("ana", 50).await;
    score("ana", 20).await;
    let award = ok(
        &server,
        Method::POST,
        "/api/v1/flow/award/run",
        json!({"input": {"player": "bo", "points": 70}}),
    )
    .await;
    assert_eq!(award["status"], "succeeded", "{award}");
    assert_eq!(
        award["steps"][0]["output"],
        json!({"player": "bo", "score": 70, "rank": 1, "period": "all", "changed": true})
    );
    let runs = ended_runs(&server, "personal-best", 3).await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    // The flow's own submission started a run one level deeper.
    let bo = runs.iter().find(|r| r["trigger"]["player"] == "bo").unwrap();
    assert_eq!(bo["depth"], 1, "{bo}");
    assert_eq!(bo["trigger"]["score"], 70);
    let worse = runs.iter().find(|r| r["trigger"]["score"] == 20).unwrap();
    assert_eq!(worse["trigger"]["changed"], false);
    assert_eq!(worse["steps"][0]["status"], "skipped", "{worse}");
    let (_, ana) = document(&server, "game", "records", "ana").await;
    assert_eq!(ana["data"], json!({"best": 50, "rank": 1}), "{ana}");
    let (_, bo) = document(&server, "game", "records", "bo").await;
    assert_eq!(bo["data"], json!({"best": 70, "rank": 1}), "{bo}");
    server.stop().await;
}

#[tokio::test]
async fn a_chain_of_three_flows_runs_and_loops_are_refused_or_stopped() {
    let server = TestServer::start().await;
    app_with_collection(&server, "ops", "steps").await;
    let put = |name: &str| {
        json!({"name": name, "type": "document.put", "app": "ops", "collection": "steps",
               "key": name, "body": {"depth": "{{ run.depth }}", "from": "{{ trigger.from }}"}})
    };
    let (status, out) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(json!({"name": "first", "trigger": {"type": "manual"},
                    "steps": [{"name": "next", "type": "flow.call", "flow": "second"}]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a callee must exist: {out}"
    );
    assert_eq!(out["detail"][0]["loc"], json!(["body", "steps", "0", "flow"]));
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "third", "trigger": {"type": "manual"}, "steps": [put("third")]}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "second", "trigger": {"type": "manual"},
               "steps": [put("second"), {"name": "next", "type": "flow.call", "flow": "third",
                                         "input": {"from": "second"}}]}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "first", "trigger": {"type": "manual"},
               "steps": [put("first"), {"name": "next", "type": "flow.call", "flow": "second",
                                        "input": {"from": "first"}}]}),
    )
    .await;
    let run = ok(
        &server,
        Method::POST,
        "/api/v1/flow/first/run",
        json!({"input": {"from": "api"}}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let child = run["steps"][1]["output"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(run["steps"][1]["output"]["flow"], "second");
    let second = ended_run(&server, &child).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let grandchild = second["steps"][1]["output"]["runId"].as_str().unwrap().to_owned();
    assert_eq!(ended_run(&server, &grandchild).await["status"], "succeeded");
    for (name, depth, from) in [
        ("first", 0, "api"),
        ("second", 1, "first"),
        ("third", 2, "second"),
    ] {
        let (_, doc) = document(&server, "ops", "steps", name).await;
        assert_eq!(
            doc["data"],
            json!({"depth": depth, "from": from}),
            "{name}: {doc}"
        );
    }

    // Closing the loop is refused, by name or by id, and so is a flow calling itself.
    let first_id = ok(&server, Method::GET, "/api/v1/flow/first", Value::Null).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for callee in ["first", first_id.as_str()] {
        let (status, out) = call(
            &server,
            Method::PATCH,
            "/api/v1/flow/third",
            Some(json!({"steps": [put("third"), {"name": "again", "type": "flow.call", "flow": callee}]})),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        let msg = out["detail"][0]["msg"].as_str().unwrap();
        assert!(msg.contains("loop") && msg.contains("first"), "{msg}");
    }
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(json!({"name": "selfish", "trigger": {"type": "manual"},
                    "steps": [{"name": "me", "type": "flow.call", "flow": "selfish"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Flows that set each other off through data stop at the depth limit: each run
    // of `echo` writes the document that started it, 9 runs deep (0 to 8) and no more.
    ok(
        &server,
        Method::POST,
        "/api/v1/app/ops/collection",
        json!({"name": "echoes"}),
    )
    .await;
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "echo",
               "trigger": {"type": "document.changed", "app": "ops", "collection": "echoes"},
               "steps": [{"name": "bump", "type": "document.increment", "app": "ops", "collection": "echoes",
                          "key": "{{ trigger.key }}", "by": {"n": 1}}]}),
    )
    .await;
    ok(
        &server,
        Method::PUT,
        "/api/v1/app/ops/collection/echoes/document/e",
        json!({"n": 0}),
    )
    .await;
    let runs = ended_runs(&server, "echo", 9).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = ended_runs(&server, "echo", 9).await;
    assert_eq!(runs.len(), 9, "{runs:?}");
    assert_eq!(again.len(), 9, "no run past the depth limit");
    let (_, doc) = document(&server, "ops", "echoes", "e").await;
    assert_eq!(doc["data"], json!({"n": 9}), "{doc}");
    server.stop().await;
}

#[tokio::test]
async fn a_cron_flow_runs_once_per_slot_and_its_scheduler_runs_it_on_time() {
    let server = TestServer::start().await;
    app_with_collection(&server, "ops", "ticks").await;
    let (status, out) = call(
        &server,
        Method::POST,
        "/api/v1/flow",
        Some(
            json!({"name": "bad", "trigger": {"type": "cron", "schedule": "every tuesday"},
                    "steps": [{"name": "d", "type": "delay", "duration": "1s"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "trigger", "schedule"]));
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "hourly", "trigger": {"type": "cron", "schedule": "0 * * * *", "payload": {"job": "report"}},
               "steps": [{"name": "count", "type": "document.increment", "app": "ops", "collection": "ticks",
                          "key": "{{ trigger.body.job }}", "by": {"n": 1}}]}),
    )
    .await;
    // Stepped by hand at a time of the test's choosing: the slot fires once.
    let store = server.running.as_ref().unwrap().store();
    let later = chrono::Utc::now() + chrono::Duration::minutes(61);
    let fired = hookd_server::service::flow::triggers::fire_cron_flows(store.as_ref(), later)
        .await
        .unwrap();
    assert_eq!(fired.started, 1);
    let again = hookd_server::service::flow::triggers::fire_cron_flows(store.as_ref(), later)
        .await
        .unwrap();
    assert_eq!(
        again.started, 0,
        "the same slot (another node, or this one) starts nothing"
    );
    assert!(again.next.unwrap() > later);
    let runs = ended_runs(&server, "hourly", 1).await;
    assert_eq!(runs[0]["status"], "succeeded", "{runs:?}");
    assert_eq!(runs[0]["trigger"]["body"], json!({"job": "report"}));
    assert!(runs[0]["trigger"]["scheduledAt"].is_string());

    // The scheduler itself, every second.
    ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "every-second", "trigger": {"type": "cron", "schedule": "* * * * * *"},
               "steps": [{"name": "count", "type": "document.increment", "app": "ops", "collection": "ticks",
                          "key": "seconds", "by": {"n": 1}}]}),
    )
    .await;
    let runs = ended_runs(&server, "every-second", 2).await;
    assert!(runs.len() >= 2, "{runs:?}");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    // Disabled: no new firing.
    ok(
        &server,
        Method::PATCH,
        "/api/v1/flow/every-second",
        json!({"enabled": false}),
    )
    .await;
    let before = ended_runs(&server, "every-second", 2).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = ended_runs(&server, "every-second", 2).await.len();
    assert_eq!(after, before, "a disabled flow stops firing");
    server.stop().await;
}

/// The application `jobs` with the event type `job.queued`.
async fn jobs_app(server: &TestServer) {
    ok(
        server,
        Method::POST,
        "/api/v1/app",
        json!({"name": "jobs", "uid": "jobs"}),
    )
    .await;
    ok(
        server,
        Method::POST,
        "/api/v1/event-type",
        json!({"name": "job.queued", "description": "A job"}),
    )
    .await;
}

/// A limit of 0 (`concurrency`, `throttleRate`) is refused at its field.
async fn refused_limit(server: &TestServer, field: &str) {
    let (status, out) = call(
        server,
        Method::POST,
        "/api/v1/flow",
        Some(json!({"name": "bad", field: 0, "trigger": {"type": "manual"},
                    "steps": [{"name": "d", "type": "delay", "duration": "1s"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", field]));
}

#[tokio::test]
async fn a_flows_concurrency_holds_its_runs_to_one_at_a_time_while_others_overlap() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    // Every call takes 400 ms to answer.
    receiver.answer_always(common::receiver::Answer {
        status: 200,
        delay: Duration::from_millis(400),
        headers: vec![],
        body: None,
    });
    jobs_app(&server).await;
    refused_limit(&server, "concurrency").await;
    for (name, concurrency) in [("one-by-one", json!(1)), ("all-at-once", Value::Null)] {
        ok(
            &server,
            Method::POST,
            "/api/v1/flow",
            json!({"name": name, "concurrency": concurrency,
                   "trigger": {"type": "message.created", "app": "jobs"},
                   "steps": [{"name": "call", "type": "http", "url": format!("{}/{name}", receiver.url),
                              "body": {"job": "{{ trigger.payload.n }}"}}]}),
        )
        .await;
    }
    let flow = ok(&server, Method::GET, "/api/v1/flow/one-by-one", Value::Null).await;
    assert_eq!(flow["concurrency"], 1);
    for n in 0..3 {
        ok(
            &server,
            Method::POST,
            "/api/v1/app/jobs/msg",
            json!({"eventType": "job.queued", "payload": {"n": n}}),
        )
        .await;
    }
    let spaced = receiver.wait_for("/one-by-one", 3, Duration::from_secs(15)).await;
    let overlapping = receiver
        .wait_for("/all-at-once", 3, Duration::from_secs(15))
        .await;
    let gaps = |calls: &[common::receiver::Received]| -> Vec<Duration> {
        calls
            .windows(2)
            .map(|w| w[1].at.duration_since(w[0].at))
            .collect()
    };
    assert!(
        gaps(&spaced).iter().all(|g| *g >= Duration::from_millis(350)),
        "one at a time: each call after the last one's answer: {:?}",
        gaps(&spaced)
    );
    let first_to_last = overlapping[2].at.duration_since(overlapping[0].at);
    assert!(
        first_to_last < Duration::from_millis(350),
        "without a limit the runs overlap: {first_to_last:?}"
    );
    let runs = ended_runs(&server, "one-by-one", 3).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let all = ended_runs(&server, "all-at-once", 3).await;
    assert!(all.iter().all(|r| r["status"] == "succeeded"), "{all:?}");
    // Counted for operators.
    let metrics = server
        .http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hookd_flow_runs_ended_total{status=\"succeeded\"} 6"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flows_throttle_rate_spaces_its_runs_out() {
    let server = TestServer::start_with(&[("HOOKD_DELIVERY_ALLOW_NETWORKS", "127.0.0.0/8")]).await;
    let receiver = Receiver::start().await;
    jobs_app(&server).await;
    refused_limit(&server, "throttleRate").await;
    // Two runs a second: a burst of two, then one every half second.
    let flow = ok(
        &server,
        Method::POST,
        "/api/v1/flow",
        json!({"name": "gentle", "throttleRate": 2,
               "trigger": {"type": "message.created", "app": "jobs"},
               "steps": [{"name": "call", "type": "http", "url": format!("{}/gentle", receiver.url),
                          "body": {"job": "{{ trigger.payload.n }}"}}]}),
    )
    .await;
    assert_eq!(flow["throttleRate"], 2, "{flow}");
    for n in 0..6 {
        ok(
            &server,
            Method::POST,
            "/api/v1/app/jobs/msg",
            json!({"eventType": "job.queued", "payload": {"n": n}}),
        )
        .await;
    }
    let calls = receiver.wait_for("/gentle", 6, Duration::from_secs(15)).await;
    assert_eq!(calls.len(), 6);
    let span = calls[5].at.duration_since(calls[0].at);
    assert!(
        span >= Duration::from_millis(1_400),
        "six runs at two a second take about two seconds: {span:?}"
    );
    let runs = ended_runs(&server, "gentle", 6).await;
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    server.stop().await;
}
