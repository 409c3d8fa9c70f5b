#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use hookd_core::filter::Subject;
use serde_json::{Value, json};

use crate::definition::{Action, DocumentOp, Flow, SmsSender, Trigger, find_call_cycle};
use crate::template::{Kind, Mapping, RunData, Template};

pub(crate) fn invoice_flow() -> Value {
    json!({
        "name": "invoice-paid",
        "trigger": {"type": "source.request", "source": "stripe"},
        "steps": [
            {"name": "big", "type": "condition",
             "filter": {"trigger": {"body": {"data": {"object": {"amount_paid": {"$gte": 1000}}}}}}},
            {"name": "activate", "type": "document.patch", "app": "shop", "collection": "customers",
             "key": "{{ trigger.body.data.object.customer }}", "body": {"status": "active"}},
            {"name": "mail", "type": "email", "to": ["{{ trigger.body.data.object.customer_email }}"],
             "subject": "Payment of {{ trigger.body.data.object.amount_paid / 100 }} received",
             "text": "Thank you.", "html": "<p>Thank you, {{ trigger.body.data.object.customer_name }}.</p>",
             "credentials": "smtp-main"},
            {"name": "admin", "type": "sms", "if": {"steps": {"activate": {"status": "active"}}},
             "to": "+15550001111", "from": "+15550002222", "body": "Paid: {{ trigger.body.id }}",
             "credentials": "twilio-main"}
        ]
    })
}

fn run_data(trigger: Value) -> RunData {
    RunData {
        trigger,
        ..RunData::default()
    }
}

#[test]
fn a_payment_flow_parses_with_every_part_checked() {
    let flow = Flow::parse(&invoice_flow()).unwrap();
    assert_eq!(flow.name.as_str(), "invoice-paid");
    assert!(flow.enabled);
    assert_eq!(
        flow.trigger,
        Trigger::SourceRequest {
            source: "stripe".into()
        }
    );
    assert_eq!(flow.steps.len(), 4);
    assert!(matches!(
        flow.steps[1].action,
        Action::Document {
            op: DocumentOp::Patch,
            ..
        }
    ));
    assert!(flow.steps[3].when.is_some());
    assert!(matches!(
        &flow.steps[3].action,
        Action::Sms {
            sender: SmsSender::From(_),
            ..
        }
    ));
    assert_eq!(flow.secrets().collect::<Vec<_>>(), ["smtp-main", "twilio-main"]);
    assert_eq!(flow.document(), &invoice_flow());

    // The condition sees the trigger.
    let Action::Condition { filter } = &flow.steps[0].action else {
        panic!()
    };
    let small = json!({"body": {"data": {"object": {"amount_paid": 999}}}});
    assert!(!filter.matches(&Subject {
        trigger: Some(&small),
        ..Subject::default()
    }));
}

#[test]
fn mistakes_are_named_by_their_pointer() {
    let refused = |patch: &dyn Fn(&mut Value)| {
        let mut doc = invoice_flow();
        patch(&mut doc);
        Flow::parse(&doc).unwrap_err()
    };
    assert_eq!(refused(&|d| d["extra"] = json!(1)).pointer, "/extra");
    assert_eq!(refused(&|d| d["name"] = json!("has space")).pointer, "/name");
    assert_eq!(refused(&|d| d["steps"] = json!([])).pointer, "/steps");
    assert_eq!(
        refused(&|d| d["steps"][2]["name"] = json!("activate")).pointer,
        "/steps/2/name"
    );
    assert_eq!(
        refused(&|d| d["steps"][1]["key"] = json!("{{ unclosed")).pointer,
        "/steps/1/key"
    );
    assert_eq!(
        refused(&|d| d["steps"][1]["body"] = json!({"a": [1, "{% if %}"]})).pointer,
        "/steps/1/body/a/1"
    );
    assert_eq!(
        refused(&|d| d["steps"][0]["filter"] = json!({"trigger": {"x": {"$regex": "("}}})).pointer,
        "/steps/0/filter/trigger/x/$regex"
    );
    assert_eq!(
        refused(&|d| d["steps"][3]["if"] = json!({"body": {}})).pointer,
        "/steps/3/if/body",
        "a flow filter names trigger and steps"
    );
    let e = refused(&|d| d["steps"][2]["bcc"] = json!(["x"]));
    assert_eq!(e.pointer, "/steps/2");
    assert!(e.message.contains("bcc"), "{e}");
    let e = refused(&|d| d["steps"][2]["type"] = json!("fax"));
    assert_eq!(e.pointer, "/steps/2");
    assert!(e.message.contains("fax"), "{e}");
    assert_eq!(
        refused(&|d| d["steps"][2]["to"] = json!([])).pointer,
        "/steps/2/to"
    );
    assert_eq!(
        refused(&|d| {
            d["steps"][3].as_object_mut().unwrap().remove("from");
        })
        .pointer,
        "/steps/3/from"
    );
    assert_eq!(
        refused(&|d| d["steps"][3]["credentials"] = json!("no spaces!")).pointer,
        "/steps/3/credentials"
    );
    assert_eq!(
        refused(&|d| d["trigger"] = json!({"type": "cron", "schedule": "every day"})).pointer,
        "/trigger/schedule"
    );
    assert_eq!(
        refused(&|d| d["response"] = json!({"status": 200})).pointer,
        "/response",
        "not a mode flow"
    );
    assert_eq!(
        refused(&|d| d["steps"][0] = json!({"name": "wait", "type": "delay", "duration": "31d"})).pointer,
        "/steps/0/duration"
    );
    assert_eq!(
        refused(&|d| d["steps"][0] = json!({"name": "v", "type": "validate", "schema": {"type": 12}}))
            .pointer,
        "/steps/0/schema"
    );
    assert_eq!(
        refused(&|d| d["steps"][0] =
            json!({"name": "h", "type": "http", "url": "https://x", "headers": {"Content-Length": "1"}}))
        .pointer,
        "/steps/0/headers/Content-Length"
    );
    assert_eq!(
        refused(&|d| d["steps"][0] = json!({"name": "p", "type": "message.publish", "app": "shop", "eventType": "bad type", "payload": {}})).pointer,
        "/steps/0/eventType"
    );
    let too_many: Vec<Value> = (0..51)
        .map(|i| json!({"name": format!("s{i}"), "type": "delay", "duration": "1s"}))
        .collect();
    assert_eq!(refused(&|d| d["steps"] = json!(too_many)).pointer, "/steps");
}

#[test]
fn every_trigger_and_step_type_parses() {
    let triggers = [
        json!({"type": "source.request", "source": "src_1"}),
        json!({"type": "message.created", "app": "shop", "eventTypes": ["invoice.paid"], "channels": ["eu"]}),
        json!({"type": "document.changed", "app": "shop", "collection": "orders", "on": ["created"]}),
        json!({"type": "leaderboard.submitted", "app": "game", "leaderboard": "points"}),
        json!({"type": "mode", "app": "shop", "mode": "signup"}),
        json!({"type": "cron", "schedule": "*/5 * * * *", "payload": {"tick": true}}),
        json!({"type": "manual"}),
    ];
    for trigger in triggers {
        let doc = json!({"name": "t", "trigger": trigger, "steps": [{"name": "w", "type": "delay", "duration": "2s"}]});
        Flow::parse(&doc).unwrap_or_else(|e| panic!("{trigger}: {e}"));
    }
    let steps = json!([
        {"name": "c", "type": "condition", "filter": {"trigger": {"ok": true}}},
        {"name": "t", "type": "transform", "code": "function handler(input) { return input.trigger }"},
        {"name": "v", "type": "validate", "schema": {"type": "object", "required": ["email"]}},
        {"name": "put", "type": "document.put", "app": "a", "collection": "c", "key": "k", "body": {"x": "{{ trigger.x }}"}},
        {"name": "inc", "type": "document.increment", "app": "a", "collection": "c", "key": "k", "by": {"n": 1}},
        {"name": "del", "type": "document.delete", "app": "a", "collection": "c", "key": "k"},
        {"name": "score", "type": "leaderboard.submit", "app": "a", "leaderboard": "points", "player": "{{ trigger.player }}", "score": "{{ trigger.score }}"},
        {"name": "pub", "type": "message.publish", "app": "a", "eventType": "order.done", "payload": {"id": "{{ trigger.id }}"}, "channels": ["eu"]},
        {"name": "call", "type": "http", "method": "PUT", "url": "https://example.com/{{ trigger.id }}", "headers": {"X-Id": "{{ run.id }}"}, "body": {"a": 1}, "signWith": "partner-key"},
        {"name": "mail", "type": "email", "to": ["a@example.com"], "cc": ["b@example.com"], "subject": "s", "credentials": "smtp", "html": "<b>{{ trigger.id }}</b>"},
        {"name": "sms", "type": "sms", "to": "+1555", "messagingServiceSid": "MG123", "body": "hi", "credentials": "twilio"},
        {"name": "wait", "type": "delay", "duration": "3days"},
        {"name": "next", "type": "flow.call", "flow": "second", "input": {"from": "{{ run.flow }}"}}
    ]);
    let doc = json!({"name": "all", "trigger": {"type": "manual"}, "steps": steps});
    let flow = Flow::parse(&doc).unwrap();
    assert_eq!(flow.steps.len(), 13);
    assert_eq!(flow.calls().collect::<Vec<_>>(), ["second"]);
    let mut secrets: Vec<_> = flow.secrets().collect();
    secrets.sort();
    assert_eq!(secrets, ["partner-key", "smtp", "twilio"]);
    let mode = json!({"name": "form", "trigger": {"type": "mode", "app": "a", "mode": "signup"},
                      "steps": [{"name": "w", "type": "delay", "duration": "1s"}],
                      "response": {"status": 201, "body": {"ok": true, "run": "{{ run.id }}"}}});
    assert_eq!(Flow::parse(&mode).unwrap().response.unwrap().status, 201);
}

#[test]
fn templates_render_values_and_escape_html() {
    let data = run_data(json!({"name": "<Ada & Co>", "amount": 1250, "items": [1, 2, 3]}));
    let text = Template::parse("Hello {{ trigger.name }}: {{ trigger.amount / 100 }}", Kind::Text).unwrap();
    assert_eq!(text.render(&data).unwrap(), "Hello <Ada & Co>: 12.5");
    let html = Template::parse("<p>{{ trigger.name }}</p>", Kind::Html).unwrap();
    assert_eq!(html.render(&data).unwrap(), "<p>&lt;Ada &amp; Co&gt;</p>");
    // A missing value is an error, unless defaulted.
    let missing = Template::parse("{{ trigger.nope }}", Kind::Text).unwrap();
    assert!(missing.render(&data).is_err());
    let defaulted = Template::parse("{{ trigger.nope | default('none') }}", Kind::Text).unwrap();
    assert_eq!(defaulted.render(&data).unwrap(), "none");

    // A mapping keeps types for a sole expression, renders text otherwise.
    let m = Mapping::parse(
        &json!({"amount": "{{ trigger.amount }}", "items": "{{ trigger.items }}",
                                    "label": "n={{ trigger.amount }}", "fixed": [true, null, 3]}),
    )
    .unwrap();
    assert_eq!(
        m.render(&data).unwrap(),
        json!({"amount": 1250, "items": [1, 2, 3], "label": "n=1250", "fixed": [true, null, 3]})
    );
    assert!(
        Mapping::parse(&json!({"x": "{{ trigger.nope }}"}))
            .unwrap()
            .render(&data)
            .is_err()
    );
}

#[test]
fn templates_are_sandboxed_and_bounded() {
    let data = RunData::default();
    // No other template can be reached: include, import and extends are not in the
    // language hookd builds (minijinja without `multi_template`), so they are refused
    // when the flow is saved.
    for source in [
        "{% include '/etc/passwd' %}",
        "{% import 'x.txt' as x %}",
        "{% extends '../../secret' %}",
    ] {
        let e = Template::parse(source, Kind::Text).unwrap_err();
        assert!(e.0.contains("unknown statement"), "{source}: {e}");
    }
    // A runaway loop ends on its fuel.
    let t = Template::parse(
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        Kind::Text,
    )
    .unwrap();
    let e = t.render(&data).unwrap_err();
    assert!(e.0.contains("fuel"), "{e}");
    // Sources are bounded.
    assert!(Template::parse(&"x".repeat(20_000), Kind::Text).is_err());
}

#[test]
fn call_cycles_are_found() {
    let calls = BTreeMap::from([
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec![]),
        ("d", vec!["a"]),
    ]);
    assert_eq!(find_call_cycle(&calls), None);
    let calls = BTreeMap::from([("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]);
    assert_eq!(find_call_cycle(&calls), Some(vec!["a", "b", "c", "a"]));
    let calls = BTreeMap::from([("self", vec!["self"])]);
    assert_eq!(find_call_cycle(&calls), Some(vec!["self", "self"]));
}

mod planning {
    use serde_json::json;

    use super::invoice_flow;
    use crate::definition::{DocumentOp, Flow};
    use crate::plan::{Effect, SmsTo, idempotency_key, plan};
    use crate::template::RunData;

    fn stripe_trigger(amount: i64) -> RunData {
        RunData {
            trigger: json!({"body": {"id": "evt_1", "type": "invoice.paid", "data": {"object": {
                "amount_paid": amount, "customer": "cus_42", "customer_email": "ada@example.com",
                "customer_name": "Ada <Lovelace>"}}},
                "headers": {"stripe-signature": "t=1,v1=x"}}),
            ..RunData::default()
        }
    }

    #[test]
    fn a_payment_flows_steps_plan_to_rendered_checked_effects() {
        let flow = Flow::parse(&invoice_flow()).unwrap();
        let mut data = stripe_trigger(2500);
        assert_eq!(
            plan(&flow.steps[0], &data).unwrap(),
            Effect::Output(json!({"matched": true}))
        );
        let Effect::Document { op, key, body, .. } = plan(&flow.steps[1], &data).unwrap() else {
            panic!()
        };
        assert_eq!(op, DocumentOp::Patch);
        assert_eq!(key.as_str(), "cus_42");
        assert_eq!(body, Some(json!({"status": "active"})));
        let Effect::Email {
            to, subject, html, ..
        } = plan(&flow.steps[2], &data).unwrap()
        else {
            panic!()
        };
        assert_eq!(to, ["ada@example.com"]);
        assert_eq!(subject, "Payment of 25.0 received");
        assert_eq!(html.unwrap(), "<p>Thank you, Ada &lt;Lovelace&gt;.</p>");
        // The SMS runs only once the record says active.
        assert_eq!(plan(&flow.steps[3], &data).unwrap(), Effect::Skip);
        data.steps.insert("activate".into(), json!({"status": "active"}));
        let Effect::Sms {
            to,
            sender,
            body,
            credentials,
        } = plan(&flow.steps[3], &data).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (to.as_str(), body.as_str(), credentials.as_str()),
            ("+15550001111", "Paid: evt_1", "twilio-main")
        );
        assert_eq!(sender, SmsTo::From("+15550002222".into()));
        // Under the threshold, the first step stops the run.
        assert_eq!(plan(&flow.steps[0], &stripe_trigger(999)).unwrap(), Effect::Stop);
        assert_eq!(idempotency_key("frun_1", 2, 0), "frun_1.2");
        assert_eq!(idempotency_key("frun_1", 2, 3), "frun_1.2.r3");
    }

    #[test]
    fn values_that_render_wrong_fail_the_step_naming_the_field() {
        let flow = |step: serde_json::Value| {
            Flow::parse(&json!({"name": "f", "trigger": {"type": "manual"}, "steps": [step]})).unwrap()
        };
        let data = RunData {
            trigger: json!({"key": "has space", "evil": "x\r\nBcc: all@example.com", "n": "12", "url": "ftp://x"}),
            ..RunData::default()
        };
        let fails = |step: serde_json::Value| plan(&flow(step).steps[0], &data).unwrap_err().field;
        assert_eq!(
            fails(
                json!({"name": "d", "type": "document.delete", "app": "a", "collection": "c", "key": "{{ trigger.key }}"})
            ),
            "key"
        );
        assert_eq!(
            fails(
                json!({"name": "m", "type": "email", "to": ["{{ trigger.evil }}"], "subject": "s", "credentials": "smtp", "text": "t"})
            ),
            "to/0"
        );
        assert_eq!(
            fails(
                json!({"name": "m", "type": "email", "to": ["a@b.c"], "subject": "{{ trigger.evil }}", "credentials": "smtp", "text": "t"})
            ),
            "subject"
        );
        assert_eq!(
            fails(
                json!({"name": "h", "type": "http", "url": "https://x.example", "headers": {"X-A": "{{ trigger.evil }}"}})
            ),
            "headers/X-A"
        );
        assert_eq!(
            fails(json!({"name": "h", "type": "http", "url": "{{ trigger.url }}"})),
            "url"
        );
        assert_eq!(
            fails(
                json!({"name": "p", "type": "message.publish", "app": "a", "eventType": "e", "payload": "{{ trigger.n }}"})
            ),
            "payload"
        );
        assert_eq!(
            fails(
                json!({"name": "m", "type": "email", "to": ["{{ trigger.nobody }}"], "subject": "s", "credentials": "smtp", "text": "t"})
            ),
            "to/0"
        );
        // A string score that is an integer is taken.
        let Effect::LeaderboardSubmit { score, .. } = plan(
            &flow(json!({"name": "s", "type": "leaderboard.submit", "app": "a", "leaderboard": "b", "player": "p1", "score": "{{ trigger.n }}"})).steps[0],
            &data,
        )
        .unwrap() else { panic!() };
        assert_eq!(score, 12);
    }

    #[test]
    fn validate_checks_the_body_and_reports_each_error() {
        let flow = Flow::parse(&json!({"name": "form", "trigger": {"type": "mode", "app": "a", "mode": "signup"},
            "steps": [{"name": "v", "type": "validate", "schema": {"type": "object", "required": ["email"],
                       "properties": {"email": {"type": "string", "format": "email"}, "age": {"type": "integer", "minimum": 13}}}}]}))
        .unwrap();
        let run = |body| RunData {
            trigger: json!({"body": body}),
            ..RunData::default()
        };
        assert_eq!(
            plan(&flow.steps[0], &run(json!({"email": "a@b.c", "age": 30}))).unwrap(),
            Effect::Output(json!({"valid": true}))
        );
        let Effect::Invalid(errors) = plan(&flow.steps[0], &run(json!({"age": 3}))).unwrap() else {
            panic!()
        };
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("email")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("/age")), "{errors:?}");
    }
}

mod runs {
    use chrono::{Duration, Utc};
    use serde_json::json;

    use super::invoice_flow;
    use crate::definition::Flow;
    use crate::run::{MAX_ATTEMPTS, MAX_DEPTH, Outcome, RunState, RunStatus, StepStatus};

    #[test]
    fn a_run_moves_step_by_step_and_each_record_is_its_log() {
        let flow = Flow::parse(&invoice_flow()).unwrap();
        let now = Utc::now();
        let mut run = RunState::new(json!({"body": {"id": "evt_1"}}), 0).unwrap();
        assert!(run.is_due(now));
        run.record(&flow, Outcome::Done(json!({"matched": true})), None, now, now);
        run.record(&flow, Outcome::Done(json!({"status": "active"})), None, now, now);
        assert_eq!(
            run.data("frun_1", &flow).steps["activate"],
            json!({"status": "active"})
        );
        assert_eq!(run.data("frun_1", &flow).run["id"], "frun_1");
        // The email fails for now twice, then goes.
        for _ in 0..2 {
            run.record(
                &flow,
                Outcome::Retry {
                    error: "451 try later".into(),
                    at: now + Duration::seconds(5),
                },
                None,
                now,
                now,
            );
            assert_eq!(run.status, RunStatus::Running);
            assert!(!run.is_due(now) && run.is_due(now + Duration::seconds(5)));
        }
        run.record(
            &flow,
            Outcome::Done(json!({"messageId": "frun_1.2"})),
            None,
            now,
            now,
        );
        assert_eq!(run.steps[2].attempts, 3);
        assert_eq!(run.steps[2].status, StepStatus::Succeeded);
        run.record(&flow, Outcome::Skipped, None, now, now);
        assert_eq!(run.status, RunStatus::Succeeded);
        let log: Vec<_> = run.steps.iter().map(|s| (s.name.as_str(), s.status)).collect();
        assert_eq!(
            log,
            [
                ("big", StepStatus::Succeeded),
                ("activate", StepStatus::Succeeded),
                ("mail", StepStatus::Succeeded),
                ("admin", StepStatus::Skipped)
            ]
        );
        // The state survives a round trip through its stored JSON.
        let stored = serde_json::to_value(&run).unwrap();
        assert_eq!(serde_json::from_value::<RunState>(stored).unwrap(), run);
    }

    #[test]
    fn stops_failures_delays_reruns_and_cancels() {
        let flow = Flow::parse(&invoice_flow()).unwrap();
        let now = Utc::now();
        let mut stopped = RunState::new(json!({}), 0).unwrap();
        stopped.record(&flow, Outcome::Stopped, None, now, now);
        assert_eq!(stopped.status, RunStatus::Stopped);
        assert!(!stopped.is_due(now));

        let mut failing = RunState::new(json!({}), 0).unwrap();
        failing.record(&flow, Outcome::Done(json!({})), None, now, now);
        for _ in 0..MAX_ATTEMPTS {
            failing.record(
                &flow,
                Outcome::Retry {
                    error: "timeout".into(),
                    at: now,
                },
                None,
                now,
                now,
            );
        }
        assert_eq!(failing.status, RunStatus::Failed);
        assert_eq!(failing.steps[1].attempts, MAX_ATTEMPTS);
        assert!(
            failing.error.as_deref().unwrap().starts_with("activate: timeout"),
            "{:?}",
            failing.error
        );
        // Re-run from the failed step: the first step's record stays.
        let key = failing.idempotency_key("run_1");
        failing.rerun_from(1);
        assert_eq!(
            (failing.status, failing.next, failing.steps.len()),
            (RunStatus::Running, 1, 1)
        );
        assert_ne!(
            failing.idempotency_key("run_1"),
            key,
            "a re-run acts again: its side effects are keyed anew"
        );
        assert!(failing.cancel());
        assert!(!failing.cancel(), "an ended run is not canceled again");

        let delayed = Flow::parse(&json!({"name": "d", "trigger": {"type": "manual"}, "steps": [
            {"name": "wait", "type": "delay", "duration": "2s"}, {"name": "after", "type": "delay", "duration": "1s"}]}))
        .unwrap();
        let mut run = RunState::new(json!({}), 0).unwrap();
        run.record(
            &delayed,
            Outcome::Wait {
                until: now + Duration::seconds(2),
            },
            None,
            now,
            now,
        );
        assert_eq!(run.status, RunStatus::Waiting);
        assert!(!run.is_due(now + Duration::seconds(1)) && run.is_due(now + Duration::seconds(2)));
        run.record(
            &delayed,
            Outcome::Wait {
                until: now + Duration::seconds(3),
            },
            None,
            now,
            now,
        );
        assert_eq!(
            (run.status, run.next),
            (RunStatus::Waiting, 2),
            "a delay as the last step is waited out"
        );
        run.record(&delayed, Outcome::Skipped, None, now, now);
        assert_eq!(run.status, RunStatus::Succeeded);

        assert!(
            RunState::new(json!({}), MAX_DEPTH + 1).is_err(),
            "flow.call chains are bounded"
        );
    }
}
