//! Criterion benchmarks of the pure decision core on a realistic payload
//! mix from the workload generator (issue, redeem and release with their
//! rejections, setting changes, ~1% duplicates, ~0.5% invalid values):
//! decode alone, the rules alone, encode alone, and the three together as
//! the Kafka processor and `replay` run them; and the local-day lookup of
//! the daily quota, by library, with and without the per-seller cache.
//!
//! Run: `cargo bench --bench core`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::{Decision, Source};
use coupon_stream_core::decision_core::{DecisionCore, Message};
use coupon_stream_core::decode::decode;
use coupon_stream_core::encode::encode_decision;
use coupon_stream_core::event::EventType;
use coupon_stream_core::state::{PartitionState, Ruling, UserResult};
use coupon_stream_core::workload::{Workload, WorkloadConfig};

/// Events per measured batch.
const BATCH: usize = 10_000;
/// Events processed before measuring, so state is warm and sizeable.
const WARMUP_EVENTS: usize = 200_000;

fn generate(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut w = Workload::new(WorkloadConfig {
        seed,
        ..WorkloadConfig::default()
    });
    let mut v = Vec::new();
    (0..n)
        .map(|_| {
            w.next_into(&mut v);
            v.clone()
        })
        .collect()
}

fn message(value: &[u8], offset: usize) -> Message<'_> {
    Message {
        value,
        source: Source {
            partition: 0,
            offset: offset as i64,
        },
        key_check: None,
    }
}

fn benches(c: &mut Criterion) {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs each
    // benchmark once as a smoke test, on a smaller stream.
    let scale = if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        20
    };
    // One stream: the first part warms the state, the rest is measured in
    // consecutive batches, as a running processor would see it.
    let values = generate((WARMUP_EVENTS + 200 * BATCH) / scale, 42);
    let (warmup, measured) = values.split_at(WARMUP_EVENTS / scale);
    let bytes: usize = measured[..BATCH].iter().map(Vec::len).sum();

    let mut group = c.benchmark_group("core");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);

    // Baseline on the same payloads: serde_json only validating and skipping
    // each value, no fields read. A floor for any serde_json-based decoder
    // on this machine, measured in the same run for comparison.
    group.bench_function("baseline_serde_json_skip", |b| {
        let batch = &measured[..BATCH];
        b.iter(|| {
            for v in batch {
                let _ = black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(
                    v,
                )));
            }
        })
    });

    group.bench_function("decode", |b| {
        let batch = &measured[..BATCH];
        b.iter(|| {
            for v in batch {
                let _ = black_box(decode(black_box(v), 65_536));
            }
        })
    });

    // The rules alone, on pre-decoded events, against a warm state.
    group.bench_function("decide", |b| {
        let mut state = PartitionState::new(CoreConfig::default().seller_defaults);
        for v in warmup {
            if let Ok(e) = decode(v, 65_536) {
                state.apply(&e);
            }
        }
        let events: Vec<_> = measured
            .iter()
            .filter_map(|v| decode(v, 65_536).ok())
            .collect();
        let mut next = 0;
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(state.apply(&events[next % events.len()]));
                next += 1;
            }
        })
    });

    // Encoding alone, of decisions recorded from a real run.
    group.bench_function("encode", |b| {
        let events: Vec<_> = measured[..BATCH]
            .iter()
            .filter_map(|v| decode(v, 65_536).ok())
            .collect();
        let mut state = PartitionState::new(CoreConfig::default().seller_defaults);
        let rulings: Vec<(Ruling, Vec<UserResult>)> = events
            .iter()
            .map(|e| {
                let r = state.apply(e);
                let results = match e.event_type() {
                    EventType::Issue => state.issue_results().to_vec(),
                    _ => Vec::new(),
                };
                (r, results)
            })
            .collect();
        let mut out = Vec::with_capacity(4 << 20);
        b.iter(|| {
            out.clear();
            for (i, (e, (ruling, results))) in events.iter().zip(&rulings).enumerate() {
                let d = Decision::Ruled {
                    source: Source {
                        partition: 0,
                        offset: i as i64,
                    },
                    event: e,
                    ruling: *ruling,
                    issue_results: results,
                };
                encode_decision(&d, &mut out);
            }
            black_box(out.len())
        })
    });

    // Decode + duplicate check + rules + encode: the processor's step.
    group.bench_function("process", |b| {
        let mut core = DecisionCore::new(CoreConfig::default());
        let mut out = Vec::with_capacity(4 << 20);
        for (i, v) in warmup.iter().enumerate() {
            out.clear();
            core.process(&message(v, i), &mut out);
        }
        let mut next = 0;
        b.iter_batched_ref(
            || (),
            |_| {
                out.clear();
                for _ in 0..BATCH {
                    let v = &measured[next % measured.len()];
                    black_box(core.process(&message(v, next), &mut out));
                    next += 1;
                }
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    eprintln!(
        "payload: {} bytes per event on average",
        bytes / BATCH.max(1)
    );
}

/// The local day of an event time: chrono-tz (before contract v1.1),
/// jiff directly, and through a seller's [`DayCache`] as the rules use it.
/// 10,000 event times 13 s apart (36 hours, so two local midnights) per
/// iteration; chrono-tz only where its tables still hold.
fn local_day_benches(c: &mut Criterion) {
    use chrono::{Offset, TimeZone};
    use coupon_stream_core::local_day::{DayCache, local_day};
    use coupon_stream_core::zone::Zone;

    const N: u64 = 10_000;
    let mut group = c.benchmark_group("local_day");
    group.throughput(Throughput::Elements(N));
    group.sample_size(30);
    // 2025-11-10T16:00Z, 2100-03-12T12:00Z, and the last 36 hours of 2^53-1.
    let starts = [
        ("2025", 1_762_790_400_000u64),
        ("2100", 4_108_536_000_000),
        ("max", (1u64 << 53) - 1 - N * 13_000),
    ];
    for name in ["Asia/Shanghai", "America/New_York"] {
        let zone = Zone::parse(name).unwrap();
        let tz: chrono_tz::Tz = name.parse().unwrap();
        for (when, start) in starts {
            let ts: Vec<u64> = (0..N).map(|i| start + i * 13_000).collect();
            if when == "2025" {
                group.bench_function(format!("chrono_tz/{name}/{when}"), |b| {
                    b.iter(|| {
                        for &t in &ts {
                            let t = black_box(t) as i64;
                            let offset = match tz.timestamp_millis_opt(t) {
                                chrono::LocalResult::Single(dt) => {
                                    i64::from(dt.offset().fix().local_minus_utc()) * 1000
                                }
                                _ => 0,
                            };
                            black_box((t + offset).div_euclid(86_400_000));
                        }
                    })
                });
            }
            group.bench_function(format!("jiff/{name}/{when}"), |b| {
                b.iter(|| {
                    for &t in &ts {
                        black_box(local_day(zone, black_box(t)));
                    }
                })
            });
            group.bench_function(format!("cached/{name}/{when}"), |b| {
                let mut cache = DayCache::new(zone);
                b.iter(|| {
                    for &t in &ts {
                        black_box(cache.span(zone, black_box(t)).day);
                    }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(core, benches, local_day_benches);
criterion_main!(core);
