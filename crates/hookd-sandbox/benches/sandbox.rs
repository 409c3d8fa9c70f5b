//! A transformation run on a warm pool: a trivial rewrite of a 1 KiB payload, through
//! the whole path a delivery takes (webhook to JSON, the hop to a worker thread, the
//! call, the result read back and checked), on kept code (warm) and on a fresh
//! context (cold). `cargo bench -p hookd-sandbox`; figures in
//! docs/benchmarks.md.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use criterion::{Criterion, criterion_group, criterion_main};
use hookd_sandbox::transform::{self, Method, Webhook};
use hookd_sandbox::{Limits, Sandbox};
use serde_json::json;

fn transformation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let sandbox = Sandbox::start(Limits::default(), 1).unwrap();
    let items: Vec<_> = (0..24)
        .map(|i| json!({"sku": format!("sku-{i:04}"), "qty": i, "price": 1999}))
        .collect();
    let payload = json!({"id": "evt_1", "type": "invoice.paid", "items": items});
    assert!(
        (900..1300).contains(&payload.to_string().len()),
        "{}",
        payload.to_string().len()
    );
    let webhook = Webhook {
        method: Method::Post,
        url: "https://example.com/hook".into(),
        payload,
        event_type: "invoice.paid".into(),
        channels: vec![],
        headers: BTreeMap::new(),
        cancel: false,
        variables: BTreeMap::new(),
        request: None,
    };
    let code =
        "function handler(webhook) { webhook.payload.seen = true; webhook.url += '?v=2'; return webhook }";
    // Warm: the endpoint's code is kept by the worker (every run after its first).
    c.bench_function("transformation/1 KiB trivial rewrite, warm", |b| {
        b.iter(|| {
            rt.block_on(transform::run(&sandbox, Some("ep_bench"), code, &webhook))
                .unwrap()
        })
    });
    // Cold: a context built and the code declared for every run (a simulation).
    c.bench_function("transformation/1 KiB trivial rewrite, cold", |b| {
        b.iter(|| {
            rt.block_on(transform::run(&sandbox, None, code, &webhook))
                .unwrap()
        })
    });
}

criterion_group!(benches, transformation);
criterion_main!(benches);
