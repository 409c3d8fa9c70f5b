//! Micro-benchmarks of the per-message and per-request work that does no IO: signing a
//! delivery, verifying a received request with each preset (on the providers' own
//! vectors, `tests/data`), matching a message against an application's endpoints, and
//! payload filters.
//!
//! `cargo bench -p hookd-core` (figures in docs/benchmarks.md once the load harness
//! lands; see issue 6).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookd_core::ingest::{IncomingRequest, SourceKind, SourceOptions, Verdict, verify};
use hookd_core::matching::{Subscription, accepts};
use hookd_core::name::{ChannelName, EventTypeName};
use hookd_core::secret::EndpointSecret;
use hookd_core::signature;
use serde::Deserialize;
use serde_json::Value;

fn signing(c: &mut Criterion) {
    let secret: EndpointSecret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".parse().unwrap();
    let rotated = [secret.clone(), EndpointSecret::generate()];
    let mut group = c.benchmark_group("sign");
    for size in [256usize, 1024, 64 * 1024] {
        let body = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("one secret", size), &body, |b, body| {
            b.iter(|| {
                signature::sign(
                    &secret,
                    black_box("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
                    1_649_367_553,
                    body,
                )
            })
        });
        group.bench_with_input(
            BenchmarkId::new("rotation, two secrets", size),
            &body,
            |b, body| {
                b.iter(|| {
                    signature::signature_header(
                        rotated.iter(),
                        black_box("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
                        1_649_367_553,
                        body,
                    )
                })
            },
        );
    }
    group.finish();
}

#[derive(Deserialize)]
struct Vector {
    name: String,
    #[serde(rename = "type")]
    type_name: String,
    config: Value,
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    now: i64,
}

fn verification(c: &mut Criterion) {
    let mut vectors: Vec<Vector> =
        serde_json::from_str(include_str!("../tests/data/ingest_vectors_pypi.json")).unwrap();
    vectors.extend(
        serde_json::from_str::<Vec<Vector>>(include_str!("../tests/data/ingest_vectors_npm.json")).unwrap(),
    );
    let options = SourceOptions::default();
    let mut group = c.benchmark_group("verify");
    for v in &vectors {
        let kind = SourceKind::parse(&v.type_name, Some(&v.config)).unwrap();
        let query = v.url.split_once('?').map_or("", |(_, q)| q);
        let req = IncomingRequest {
            method: "POST",
            url: &v.url,
            query,
            headers: &v.headers,
            body: v.body.as_bytes(),
            client: None,
            now: v.now,
        };
        // Only accepted requests are measured: a benchmark of a refusal proves nothing.
        assert!(
            matches!(
                verify::check(&kind, &options, &req),
                Verdict::Accept | Verdict::Challenge { .. }
            ),
            "{}",
            v.name
        );
        group.bench_function(&v.name, |b| {
            b.iter(|| verify::check(&kind, &options, black_box(&req)))
        });
    }
    group.finish();
}

fn matching(c: &mut Criterion) {
    let names: Vec<EventTypeName> = (0..50)
        .map(|i| format!("order.event{i}").parse().unwrap())
        .collect();
    let channels: Vec<ChannelName> = (0..20).map(|i| format!("region-{i}").parse().unwrap()).collect();
    let mut group = c.benchmark_group("match");
    for endpoints in [1usize, 100, 1_000] {
        // Each endpoint filters on 5 event types and, every other one, on 2 channels.
        let subs: Vec<(BTreeSet<EventTypeName>, Option<BTreeSet<ChannelName>>)> = (0..endpoints)
            .map(|e| {
                let types = (0..5).map(|k| names[(e + k * 7) % names.len()].clone()).collect();
                let chans = (e % 2 == 0).then(|| {
                    (0..2)
                        .map(|k| channels[(e + k) % channels.len()].clone())
                        .collect()
                });
                (types, chans)
            })
            .collect();
        let message_channels: BTreeSet<ChannelName> = [channels[3].clone()].into();
        group.throughput(Throughput::Elements(endpoints as u64));
        group.bench_function(BenchmarkId::new("endpoints", endpoints), |b| {
            b.iter(|| {
                subs.iter()
                    .filter(|(types, chans)| {
                        accepts(
                            Subscription {
                                disabled: false,
                                event_types: Some(types),
                                channels: chans.as_ref(),
                            },
                            black_box(&names[7]),
                            Some(&message_channels),
                        )
                    })
                    .count()
            })
        });
    }
    group.finish();
}

/// A 5-clause filter on a 1 KiB body: matched (the body parsed once per message, as
/// fan-out does), parsed (a filter is read from its endpoint's row per message), and
/// the body parse itself, so the three costs can be told apart.
fn filtering(c: &mut Criterion) {
    use hookd_core::filter::{Filter, FilterTarget, Subject};
    let items: Vec<Value> = (0..20)
        .map(|i| serde_json::json!({"sku": format!("sku-{i:04}"), "qty": i, "price": 1999}))
        .collect();
    let body = serde_json::json!({
        "type": "invoice.paid", "id": "in_1MtHbELkdIwHu7ixl4OzzPMv", "amount": 12_000, "currency": "EUR",
        "customer": {"id": "cus_NffrFeUfNV2Hib", "country": "NL", "vip": true},
        "items": items,
    });
    let text = serde_json::to_string(&body).unwrap();
    assert!((900..1300).contains(&text.len()), "about 1 KiB: {}", text.len());
    let doc = serde_json::json!({
        "eventType": {"$startsWith": "invoice."},
        "body": {
            "amount": {"$gte": 10_000},
            "currency": {"$in": ["EUR", "USD"]},
            "customer": {"country": "NL"},
            "items": [{"sku": "sku-0007"}]
        }
    });
    let filter = Filter::parse(&doc, FilterTarget::Sent).unwrap();
    let et = Value::String("invoice.paid".into());
    let subject = Subject {
        body: Some(&body),
        event_type: Some(&et),
        ..Subject::default()
    };
    assert!(filter.matches(&subject));
    let mut group = c.benchmark_group("filter");
    group.bench_function("match, 5 clauses, 1 KiB body", |b| {
        b.iter(|| filter.matches(black_box(&subject)))
    });
    group.bench_function("parse the filter", |b| {
        b.iter(|| Filter::parse(black_box(&doc), FilterTarget::Sent).unwrap())
    });
    group.bench_function("parse the 1 KiB body", |b| {
        b.iter(|| serde_json::from_str::<Value>(black_box(&text)).unwrap())
    });
    group.finish();
}

/// Secrets at rest: what reading an endpoint adds per claimed delivery (its secret,
/// previous secrets and headers are each opened once).
fn sealing(c: &mut Criterion) {
    let key = hookd_core::sealed::SealingKey::generate();
    let secret = "whsec_c2VjcmV0LWF0LXJlc3QtdGVzdC1rZXktMTIzNDU2Nzg=";
    let sealed = key.seal(secret.as_bytes(), "endpoint/ep_2x/secret");
    let mut group = c.benchmark_group("sealed");
    group.bench_function("open an endpoint secret", |b| {
        b.iter(|| key.open(black_box(&sealed), "endpoint/ep_2x/secret").unwrap())
    });
    group.bench_function("seal an endpoint secret", |b| {
        b.iter(|| key.seal(black_box(secret.as_bytes()), "endpoint/ep_2x/secret"))
    });
    group.finish();
}

criterion_group!(benches, signing, verification, matching, filtering, sealing);
criterion_main!(benches);
