#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

fn sandbox() -> Sandbox {
    Sandbox::start(Limits::default(), 1).unwrap()
}

/// Runs `code`'s handler on `{}` in a context of its own.
async fn run(sb: &Sandbox, code: &str) -> Result<serde_json::Value, ScriptError> {
    sb.call(None, code, "handler", &json!({})).await
}

#[tokio::test]
async fn a_handler_gets_its_input_and_its_result_comes_back() {
    let sb = sandbox();
    let out = sb
        .call(
            None,
            "function handler(w) { w.payload.n += 1; w.seen = typeof require; return w }",
            "handler",
            &json!({"payload": {"n": 1}}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"payload": {"n": 2}, "seen": "undefined"}));
}

#[tokio::test]
async fn a_thrown_error_names_its_line_and_column() {
    let sb = sandbox();
    let err = run(
        &sb,
        "function handler(w) {\n  let x = 1;\n  throw new TypeError('no ' + x);\n}",
    )
    .await
    .unwrap_err();
    let ScriptError::Thrown { message, at } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(message, "TypeError: no 1");
    assert_eq!(at.map(|(line, _)| line), Some(3), "{err}");
    assert!(
        err.to_string().starts_with("TypeError: no 1 (line 3, column "),
        "{err}"
    );
    let err = run(&sb, "function handler(w) { throw 'plain' }")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "plain");
}

#[tokio::test]
async fn code_that_does_not_parse_is_refused_by_check_without_running() {
    let sb = sandbox();
    let err = sb
        .check("function handler(w) {\n  return w +;\n}")
        .await
        .unwrap_err();
    assert!(matches!(err, ScriptError::Thrown { .. }), "{err:?}");
    assert!(err.to_string().contains("SyntaxError"), "{err}");
    // Checking runs nothing: an endless loop at the top level still only parses.
    sb.check("while (true) {}\nfunction handler(w) { return w }")
        .await
        .unwrap();
    sb.check("function handler(w) { return w }").await.unwrap();
    assert!(matches!(sb.check("x").await, Err(ScriptError::BadCode(_))));
    let long = format!(
        "function handler(w) {{ return w }} // {}",
        "x".repeat(MAX_CODE_CHARS)
    );
    assert!(matches!(sb.check(&long).await, Err(ScriptError::BadCode(_))));
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_time_limit_and_the_worker_serves_the_next_run() {
    let sb = sandbox();
    let started = Instant::now();
    let err = run(&sb, "function handler(w) { while (true) {} }")
        .await
        .unwrap_err();
    assert_eq!(err, ScriptError::TimedOut(Limits::default().time));
    assert!(started.elapsed() < Duration::from_secs(5));
    // A loop that catches everything is stopped all the same (the interrupt cannot be caught).
    let err = run(
        &sb,
        "function handler(w) { for (;;) { try { while (true) {} } catch (e) {} } }",
    )
    .await
    .unwrap_err();
    assert_eq!(err, ScriptError::TimedOut(Limits::default().time));
    let out = run(&sb, "function handler(w) { return 7 }").await.unwrap();
    assert_eq!(out, json!(7));
}

#[tokio::test]
async fn a_100_mib_allocation_ends_as_out_of_memory_and_the_worker_serves_the_next_run() {
    let sb = sandbox();
    // A buffer, a string and an array: each 100 MiB, each refused at the limit.
    for code in [
        "function handler(w) { const a = new ArrayBuffer(100 * 1024 * 1024); return a.byteLength }",
        "function handler(w) { return 'x'.repeat(100 * 1024 * 1024) }",
        "function handler(w) { return new Array(100 * 1024 * 1024 / 8).fill(1.5).length }",
    ] {
        let err = run(&sb, code).await.unwrap_err();
        assert_eq!(
            err,
            ScriptError::OutOfMemory(Limits::default().memory_bytes),
            "{code}: {err}"
        );
    }
    let out = run(&sb, "function handler(w) { return [1, 2] }").await.unwrap();
    assert_eq!(out, json!([1, 2]));
}

#[tokio::test]
async fn endless_recursion_ends_as_a_stack_overflow_and_the_worker_serves_the_next_run() {
    let sb = sandbox();
    let err = run(
        &sb,
        "function f(n) { return f(n + 1) + 1 }\nfunction handler(w) { return f(0) }",
    )
    .await
    .unwrap_err();
    assert_eq!(
        err,
        ScriptError::StackOverflow(Limits::default().stack_bytes),
        "{err}"
    );
    let out = run(&sb, "function handler(w) { return 'ok' }").await.unwrap();
    assert_eq!(out, json!("ok"));
}

#[tokio::test]
async fn one_run_never_sees_what_another_left_behind() {
    let sb = sandbox();
    run(
        &sb,
        "globalThis.secret = 'tenant a'; Object.prototype.leak = 1; function handler(w) { return 1 }",
    )
    .await
    .unwrap();
    let out = run(
        &sb,
        "function handler(w) { return [typeof secret, ({}).leak === undefined] }",
    )
    .await
    .unwrap();
    assert_eq!(out, json!(["undefined", true]));
}

#[tokio::test]
async fn a_scopes_code_is_kept_for_its_next_run_and_never_seen_by_another_scope() {
    let sb = sandbox();
    let code = "var runs = (typeof runs === 'number' ? runs : 0) + 1; globalThis.last = globalThis.last; function handler(w) { const seen = globalThis.last; globalThis.last = w; return [runs, seen === undefined ? null : seen] }";
    let a1 = sb
        .call(Some("ep_a"), code, "handler", &json!("a1"))
        .await
        .unwrap();
    let a2 = sb
        .call(Some("ep_a"), code, "handler", &json!("a2"))
        .await
        .unwrap();
    assert_eq!(a1, json!([1, null]));
    assert_eq!(
        a2,
        json!([1, "a1"]),
        "the code was declared once and kept for the same scope"
    );
    // Another scope with the very same code gets its own context: nothing of ep_a's.
    let b1 = sb
        .call(Some("ep_b"), code, "handler", &json!("b1"))
        .await
        .unwrap();
    assert_eq!(b1, json!([1, null]));
    // New code for a scope starts afresh.
    let changed = format!("{code} ");
    assert_eq!(
        sb.call(Some("ep_a"), &changed, "handler", &json!("a3"))
            .await
            .unwrap(),
        json!([1, null])
    );
    // A failed run drops the scope's context.
    let flaky = "var n = (typeof n === 'number' ? n : 0); function handler(w) { n++; if (w === 'boom') throw new Error('boom'); return n }";
    assert_eq!(
        sb.call(Some("ep_c"), flaky, "handler", &json!("x"))
            .await
            .unwrap(),
        json!(1)
    );
    assert_eq!(
        sb.call(Some("ep_c"), flaky, "handler", &json!("x"))
            .await
            .unwrap(),
        json!(2)
    );
    assert!(
        sb.call(Some("ep_c"), flaky, "handler", &json!("boom"))
            .await
            .is_err()
    );
    assert_eq!(
        sb.call(Some("ep_c"), flaky, "handler", &json!("x"))
            .await
            .unwrap(),
        json!(1)
    );
}

#[tokio::test]
async fn a_scope_that_ran_out_of_memory_does_not_starve_the_others() {
    let sb = sandbox();
    // ep_big keeps 9 MiB alive in its context; a run of another scope that needs 9
    // MiB more is still served (the runtime is started afresh and the run tried again).
    let hog = "var keep = new ArrayBuffer(9 * 1024 * 1024); function handler(w) { return keep.byteLength }";
    assert_eq!(
        sb.call(Some("ep_big"), hog, "handler", &json!(0)).await.unwrap(),
        json!(9 * 1024 * 1024)
    );
    let other = "function handler(w) { return new ArrayBuffer(9 * 1024 * 1024).byteLength }";
    assert_eq!(
        sb.call(Some("ep_other"), other, "handler", &json!(0))
            .await
            .unwrap(),
        json!(9 * 1024 * 1024)
    );
}

#[tokio::test]
async fn results_that_are_missing_too_big_or_not_json_are_refused() {
    let sb = sandbox();
    let none = run(&sb, "function handler(w) { }").await.unwrap_err();
    assert!(matches!(none, ScriptError::BadResult(_)), "{none:?}");
    let missing = run(&sb, "function other(w) { return w }").await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        "the code must declare a function named handler"
    );
    let big = run(&sb, "function handler(w) { return 'x'.repeat(2 * 1024 * 1024) }")
        .await
        .unwrap_err();
    assert!(big.to_string().contains("more than the 1048576 allowed"), "{big}");
    let func = run(&sb, "function handler(w) { return handler }")
        .await
        .unwrap_err();
    assert!(matches!(func, ScriptError::BadResult(_)), "{func:?}");
}

#[tokio::test]
async fn there_are_no_timers_modules_or_host_objects() {
    let sb = sandbox();
    let out = run(&sb, "function handler(w) { return [typeof setTimeout, typeof require, typeof process, typeof std, typeof os, typeof fetch, typeof XMLHttpRequest] }").await
        .unwrap();
    assert_eq!(out, serde_json::Value::from(vec!["undefined"; 7]));
}

#[test]
fn positions_are_read_from_the_stack() {
    assert_eq!(
        position("    at handler (transformation.js:3:11)\n"),
        Some((3, 11))
    );
    assert_eq!(position("    at <eval> (eval_script:1:1)\n"), None);
}
