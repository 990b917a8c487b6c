//! Criterion benchmarks of the pure decision core on a realistic payload
//! mix from the workload generator (issue, redeem and release with their
//! rejections, setting changes, ~1% duplicates, ~0.5% invalid values):
//! decode alone, the rules alone, encode alone, and the three together as
//! the Kafka processor and `replay` run them; and the local-day lookup of
//! the daily quota, by library, with and without the per-seller cache; and
//! the duplicate window alone, as it is and as it was before issue 15
//! (`OldDedupWindow`, kept here for comparison in one run).
//!
//! Run: `cargo bench --bench core`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::{Decision, Source};
use coupon_stream_core::decision_core::{DecisionCore, Message};
use coupon_stream_core::decode::{decode, decode_strict};
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

    // The strict decoder alone, as every value was decoded before the fast
    // path (issue 15), on the same payloads in the same run.
    group.bench_function("decode_strict", |b| {
        let batch = &measured[..BATCH];
        b.iter(|| {
            for v in batch {
                let _ = black_box(decode_strict(black_box(v)));
            }
        })
    });

    // The rules alone, on pre-decoded events, against a warm state.
    group.bench_function("decide", |b| {
        let mut state = PartitionState::new(CoreConfig::default().seller_defaults);
        for v in warmup {
            if let Ok(e) = decode(v, 65_536) {
                state.apply(&e, &Default::default());
            }
        }
        let events: Vec<_> = measured
            .iter()
            .filter_map(|v| decode(v, 65_536).ok())
            .collect();
        let mut next = 0;
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(state.apply(&events[next % events.len()], &Default::default()));
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
                let r = state.apply(e, &Default::default());
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

/// The duplicate window before issue 15: a `u128 -> ts` map and the ids
/// filed in buckets by first-seen time, a bucket dropped once the watermark
/// has moved a whole bucket past the window. Kept only for `dedup_benches`.
mod old_dedup {
    use std::collections::{BTreeMap, VecDeque};
    use std::hash::{BuildHasherDefault, Hasher};

    use hashbrown::HashMap;

    const BUCKETS_PER_WINDOW: u64 = 16;

    #[derive(Debug, Default)]
    pub(crate) struct PrehashedHasher(u64);

    impl Hasher for PrehashedHasher {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u128(&mut self, v: u128) {
            self.0 = v as u64;
        }
    }

    type Prehashed = BuildHasherDefault<PrehashedHasher>;

    pub(crate) struct OldDedupWindow {
        window_ms: u64,
        bucket_ms: u64,
        first_seen: HashMap<u128, u64, Prehashed>,
        buckets: BTreeMap<u64, VecDeque<u128>>,
    }

    impl OldDedupWindow {
        pub(crate) fn new(window_ms: u64) -> OldDedupWindow {
            OldDedupWindow {
                window_ms,
                bucket_ms: (window_ms / BUCKETS_PER_WINDOW).max(1),
                first_seen: HashMap::default(),
                buckets: BTreeMap::new(),
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.first_seen.len()
        }

        pub(crate) fn check_and_remember(&mut self, id: u128, ts: u64, watermark: u64) -> bool {
            self.expire(watermark);
            let cutoff = watermark.saturating_sub(self.window_ms);
            if let Some(&ts0) = self.first_seen.get(&id)
                && ts0 >= cutoff
            {
                return true;
            }
            if ts >= cutoff {
                self.first_seen.insert(id, ts);
                self.buckets
                    .entry(ts / self.bucket_ms)
                    .or_default()
                    .push_back(id);
            }
            false
        }

        fn expire(&mut self, watermark: u64) {
            let cutoff = watermark.saturating_sub(self.window_ms);
            while let Some(entry) = self.buckets.first_entry() {
                let bucket_end = (entry.key() + 1).saturating_mul(self.bucket_ms);
                if bucket_end > cutoff {
                    break;
                }
                for id in entry.remove() {
                    if let Some(&ts0) = self.first_seen.get(&id)
                        && ts0 < cutoff
                    {
                        self.first_seen.remove(&id);
                    }
                }
            }
        }

        /// As the old `heap_bytes` counted: by capacity.
        pub(crate) fn heap_bytes(&self) -> usize {
            self.first_seen.capacity() * (std::mem::size_of::<(u128, u64)>() + 1)
                + self
                    .buckets
                    .values()
                    .map(|b| b.capacity() * std::mem::size_of::<u128>() + 64)
                    .sum::<usize>()
        }

        /// The map's whole allocation, and the buckets as above.
        pub(crate) fn allocation_bytes(&self) -> usize {
            self.first_seen.allocation_size()
                + self
                    .buckets
                    .values()
                    .map(|b| b.capacity() * std::mem::size_of::<u128>() + 64)
                    .sum::<usize>()
        }
    }
}

/// A steady stream for the duplicate window: one event per ms of event
/// time under the default 600 s window (so ~600,000 ids remembered), every
/// 100th event repeating an id from up to 300 s earlier (a duplicate), one
/// in 16 arriving up to 2 s late. Event `n`'s `(id, ts)`; ids are random.
fn dedup_event(n: u64) -> (u128, u64) {
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let r = mix(n ^ 0x5555);
    let source = if n % 100 == 99 {
        n.saturating_sub(1 + r % 300_000)
    } else {
        n
    };
    let id = u128::from(mix(source)) << 64 | u128::from(mix(!source));
    let ts = if r.is_multiple_of(16) {
        n.saturating_sub(r >> 40 & 2047)
    } else {
        n
    };
    (id, ts)
}

/// `check_and_remember` per event on `dedup_event`'s stream, after 1.2 M
/// events of warm-up (two windows): the window as it is, and as it was.
fn dedup_benches(c: &mut Criterion) {
    use coupon_stream_core::dedup::DedupWindow;
    use old_dedup::OldDedupWindow;

    const WARMUP: u64 = 1_200_000;
    let window_ms = CoreConfig::default().dedup_window_ms;
    let mut group = c.benchmark_group("dedup");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(30);

    let mut old = OldDedupWindow::new(window_ms);
    let mut new = DedupWindow::new(window_ms);
    let (mut old_watermark, mut new_watermark) = (0u64, 0u64);
    let mut duplicates = [0u64; 2];
    for n in 0..WARMUP {
        let (id, ts) = dedup_event(n);
        old_watermark = old_watermark.max(ts);
        new_watermark = new_watermark.max(ts);
        let a = old.check_and_remember(id, ts, old_watermark);
        let b = new.check_and_remember(id, ts, new_watermark);
        assert_eq!(a, b, "event {n}");
        duplicates[usize::from(a)] += 1;
    }
    eprintln!(
        "dedup: {} of {WARMUP} warm-up events duplicate; old holds {} ids, {:.1} B/id \
         by its heap_bytes, {:.1} B/id by allocation; new holds {} ids, {:.1} B/id",
        duplicates[1],
        old.len(),
        old.heap_bytes() as f64 / old.len() as f64,
        old.allocation_bytes() as f64 / old.len() as f64,
        new.len(),
        new.heap_bytes() as f64 / new.len() as f64,
    );

    let mut next = WARMUP;
    group.bench_function("check_and_remember/old", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let (id, ts) = dedup_event(next);
                old_watermark = old_watermark.max(ts);
                black_box(old.check_and_remember(black_box(id), ts, old_watermark));
                next += 1;
            }
        })
    });
    let mut next = WARMUP;
    group.bench_function("check_and_remember/new", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                let (id, ts) = dedup_event(next);
                new_watermark = new_watermark.max(ts);
                black_box(new.check_and_remember(black_box(id), ts, new_watermark));
                next += 1;
            }
        })
    });
    // The stream alone, to subtract.
    let mut next = WARMUP;
    group.bench_function("stream_only", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(dedup_event(black_box(next)));
                next += 1;
            }
        })
    });
    group.finish();
    eprintln!(
        "dedup: after measuring, old holds {} ids, {:.1} B/id by allocation; new holds {} \
         ids, {:.1} B/id",
        old.len(),
        old.allocation_bytes() as f64 / old.len() as f64,
        new.len(),
        new.heap_bytes() as f64 / new.len() as f64,
    );
}

criterion_group!(core, benches, local_day_benches, dedup_benches);
criterion_main!(core);
