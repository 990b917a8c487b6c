//! `replay --partitions N --threads T`: each line decided by the core of the
//! partition Kafka's partitioner gives its `seller_id`, and the same bytes
//! out whatever the thread count and however the pipeline is cut.

use std::io::BufReader;

use proptest::prelude::*;
use serde_json::Value;

use coupon_stream::replay::pipeline::{PipelineOptions, replay_pipelined};
use coupon_stream::replay::{ReplayOptions, replay, replay_on_cores, replay_sharded};
use coupon_stream_core::config::CoreConfig;
use coupon_stream_core::decision::Source;
use coupon_stream_core::decision_core::{DecisionCore, Message};
use coupon_stream_core::partitioner::partition_for;
use coupon_stream_core::workload::{Profile, Workload, WorkloadConfig};

/// A small event limit, so over-long lines are cheap to make.
const MAX_EVENT_BYTES: usize = 2_048;

fn config() -> CoreConfig {
    CoreConfig {
        max_event_bytes: MAX_EVENT_BYTES,
        ..CoreConfig::default()
    }
}

/// Generated traffic (duplicates and invalid values included) with extra
/// lines of every awkward kind mixed in: empty, not JSON, arrays, escaped
/// seller ids, nested and repeated `seller_id`s, over-long lines, CRLF.
/// `tail` decides whether the last line ends in `\n`.
fn traffic(seed: u64, events: usize, profile: Profile, tail: bool) -> Vec<u8> {
    let mut workload = Workload::new(WorkloadConfig {
        profile,
        sellers: 40,
        users: 300,
        seed,
        duplicate_fraction: 0.05,
        invalid_fraction: 0.03,
    });
    let awkward: [&[u8]; 9] = [
        b"",
        b"not json at all",
        b"[1,2,3]",
        br#"{"type":"redeem","event_id":"x1","ts":1762790400000,"seller_id":"s\u0031","coupon_id":"c0:1","user_id":"u1","order_id":"o1","order_cents":5000}"#,
        br#"{"meta":{"seller_id":"s5"},"type":"release","event_id":"x2","ts":1762790400001,"seller_id":"s2","coupon_id":"c1:1","user_id":"u2","order_id":"o2"}"#,
        br#"{"seller_id":"s3","type":"release","event_id":"x3","ts":1762790400002,"seller_id":"s4","coupon_id":"c1:1","user_id":"u2","order_id":"o2"}"#,
        br#"{"type":"issue","event_id":"x4","ts":1762790400003,"seller_id":7,"campaign_id":"c0","user_ids":["u1"]}"#,
        b"{\"type\":\"seller\",\"event_id\":\"x5\",\"ts\":1762790400004,\"seller_id\":\"s6\"}\r",
        b"{\"type\":\"redeem\",",
    ];
    let mut rng = seed;
    let mut next = move || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        rng >> 33
    };
    let mut out = Vec::new();
    let mut value = Vec::new();
    for _ in 0..events {
        match next() % 40 {
            0 => out.extend_from_slice(awkward[(next() % awkward.len() as u64) as usize]),
            1 => {
                let mut long = br#"{"seller_id":"s1","pad":""#.to_vec();
                long.resize(MAX_EVENT_BYTES + (next() % 3_000) as usize, b'x');
                long.extend_from_slice(b"\"}");
                out.extend_from_slice(&long);
            }
            _ => {
                workload.next_into(&mut value);
                out.extend_from_slice(&value);
            }
        }
        out.push(b'\n');
    }
    if !tail {
        out.pop();
    }
    out
}

fn sequential(input: &[u8], partitions: u32) -> Vec<u8> {
    let mut cores: Vec<DecisionCore> = (0..partitions)
        .map(|_| DecisionCore::new(config()))
        .collect();
    let mut out = Vec::new();
    replay_on_cores(&mut cores, BufReader::new(input), &mut out).unwrap();
    out
}

fn pipelined(input: &[u8], partitions: u32, options: PipelineOptions) -> Vec<u8> {
    let cores: Vec<DecisionCore> = (0..partitions)
        .map(|_| DecisionCore::new(config()))
        .collect();
    let mut out = Vec::new();
    let (cores, tally, stages) = replay_pipelined(cores, options, input, &mut out).unwrap();
    assert_eq!(cores.len(), partitions as usize);
    assert_eq!(
        tally.messages as usize,
        out.iter().filter(|&&b| b == b'\n').count()
    );
    assert_eq!(
        stages.decide.len(),
        options.threads.min(partitions as usize)
    );
    out
}

/// The reference, written independently of `replay`: serde_json reads each
/// line's `seller_id` (lines it cannot read go to partition 0), each
/// partition's lines go through that partition's own core in input order,
/// with the line number as the offset.
fn recomputed(input: &[u8], partitions: u32) -> Vec<u8> {
    let mut cores: Vec<DecisionCore> = (0..partitions)
        .map(|_| DecisionCore::new(config()))
        .collect();
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if input.last() == Some(&b'\n') || input.is_empty() {
        lines.pop();
    }
    let mut out = Vec::new();
    for (n, line) in lines.into_iter().enumerate() {
        let seller = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("seller_id")?.as_str().map(str::to_owned));
        let partition = seller.map_or(0, |s| partition_for(s.as_bytes(), partitions));
        let line = &line[..line.len().min(MAX_EVENT_BYTES + 1)];
        cores[partition as usize].process(
            &Message {
                value: line,
                source: Source {
                    partition: partition as i32,
                    offset: n as i64,
                },
                key_check: None,
            },
            &mut out,
        );
        out.push(b'\n');
    }
    out
}

/// Where two outputs first differ, with the input line, for a readable
/// failure.
fn first_difference(input: &[u8], got: &[u8], want: &[u8]) -> String {
    let lines = |b: &[u8]| -> Vec<String> {
        b.split(|&c| c == b'\n')
            .map(|l| String::from_utf8_lossy(&l[..l.len().min(300)]).into_owned())
            .collect()
    };
    let (input, got, want) = (lines(input), lines(got), lines(want));
    match (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        None => "no difference".to_owned(),
        Some(i) => format!(
            "line {i}: input {:?}\n got  {:?}\n want {:?}",
            input.get(i),
            got.get(i),
            want.get(i)
        ),
    }
}

fn decisions(out: &[u8]) -> Vec<Value> {
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn partitions_decide_what_kafka_partitions_would() {
    for (seed, profile) in [(1, Profile::Steady), (2, Profile::FlashSale)] {
        let input = traffic(seed, 6_000, profile, true);
        for partitions in [1, 2, 3, 5] {
            let want = recomputed(&input, partitions);
            let got = sequential(&input, partitions);
            assert!(
                got == want,
                "seed {seed}, {partitions} partitions: {}",
                first_difference(&input, &got, &want)
            );
        }
        let got = decisions(&sequential(&input, 4));
        assert_eq!(got.len(), input.split(|&b| b == b'\n').count() - 1);
        // Every partition decided something, and sources name the line.
        for p in 0..4 {
            assert!(got.iter().any(|d| d["source"]["partition"] == p), "{p}");
        }
        for (n, d) in got.iter().enumerate() {
            assert_eq!(d["source"]["offset"], n as u64);
        }
        assert!(got.iter().any(|d| d["outcome"] == "duplicate"));
        assert!(got.iter().any(|d| d["reason"] == "too_large"));
        assert!(got.iter().any(|d| d["reason"] == "malformed"));
    }
}

#[test]
fn one_partition_is_todays_replay() {
    let input = traffic(3, 4_000, Profile::Steady, false);
    let mut core = DecisionCore::new(config());
    let mut want = Vec::new();
    replay(&mut core, BufReader::new(input.as_slice()), &mut want).unwrap();
    assert_eq!(sequential(&input, 1), want);
    for threads in [1, 4] {
        let mut got = Vec::new();
        let report = replay_sharded(
            config(),
            ReplayOptions {
                partitions: 1,
                threads,
            },
            input.as_slice(),
            &mut got,
        )
        .unwrap();
        assert!(got == want);
        assert_eq!(report.threads, 1);
        assert!(report.stages.is_none());
    }
}

#[test]
fn output_is_byte_identical_whatever_the_thread_count() {
    for (seed, tail) in [(4, true), (5, false)] {
        let input = traffic(seed, 6_000, Profile::FlashSale, tail);
        for partitions in [2, 3, 4, 7] {
            let want = sequential(&input, partitions);
            for threads in 1..=partitions as usize + 1 {
                let mut got = Vec::new();
                let report = replay_sharded(
                    config(),
                    ReplayOptions {
                        partitions,
                        threads,
                    },
                    input.as_slice(),
                    &mut got,
                )
                .unwrap();
                assert!(
                    got == want,
                    "seed {seed}, {partitions} partitions, {threads} threads: {}",
                    first_difference(&input, &got, &want)
                );
                assert_eq!(report.threads, threads.min(partitions as usize));
                assert_eq!(report.stages.is_some(), report.threads > 1);
                assert_eq!(
                    report.tally.messages as usize,
                    want.iter().filter(|&&b| b == b'\n').count()
                );
            }
        }
    }
}

#[test]
fn a_failing_writer_stops_the_pipeline_with_its_error() {
    struct Broken;
    impl std::io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let input = traffic(6, 3_000, Profile::Steady, true);
    let cores: Vec<DecisionCore> = (0..3).map(|_| DecisionCore::new(config())).collect();
    let options = PipelineOptions {
        threads: 2,
        chunk_bytes: 1_000,
        chunks_in_flight: 2,
    };
    let error = replay_pipelined(cores, options, input.as_slice(), Broken)
        .err()
        .unwrap();
    assert!(error.to_string().contains("disk full"), "{error}");
}

/// A reader that fails part way: every worker stops, none waits forever
/// for the chunk that could not be read, and the replay returns the error.
#[test]
fn a_failing_reader_stops_the_pipeline_with_its_error() {
    struct FailsAfter<'a> {
        input: &'a [u8],
        left: usize,
    }
    impl std::io::Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                return Err(std::io::Error::other("device gone"));
            }
            let n = buf.len().min(self.left).min(self.input.len());
            buf[..n].copy_from_slice(&self.input[..n]);
            self.input = &self.input[n..];
            self.left -= n;
            Ok(n)
        }
    }
    let input = traffic(8, 3_000, Profile::Steady, true);
    for (threads, in_flight, left) in [(2, 2, 0), (2, 1, 5_000), (3, 4, 20_000), (4, 8, 100_000)] {
        let cores: Vec<DecisionCore> = (0..4).map(|_| DecisionCore::new(config())).collect();
        let options = PipelineOptions {
            threads,
            chunk_bytes: 1_500,
            chunks_in_flight: in_flight,
        };
        let reader = FailsAfter {
            input: &input,
            left,
        };
        let mut out = Vec::new();
        let error = replay_pipelined(cores, options, reader, &mut out)
            .err()
            .unwrap();
        assert!(error.to_string().contains("device gone"), "{error}");
    }
}

/// A writer that takes at most `max` bytes a call, across slices and
/// within one, and reports `Interrupted` on every third call: the pipeline
/// still writes every byte, in order.
#[test]
fn a_writer_taking_a_few_bytes_at_a_time_gets_every_byte() {
    struct Trickle {
        out: Vec<u8>,
        max: usize,
        calls: usize,
    }
    impl std::io::Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.write_vectored(&[std::io::IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let mut left = self.max;
            for buf in bufs {
                let n = buf.len().min(left);
                self.out.extend_from_slice(&buf[..n]);
                left -= n;
                if left == 0 {
                    break;
                }
            }
            Ok(self.max - left)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let input = traffic(7, 2_000, Profile::FlashSale, true);
    let want = sequential(&input, 3);
    for max in [1, 7, 4_096] {
        let cores: Vec<DecisionCore> = (0..3).map(|_| DecisionCore::new(config())).collect();
        let options = PipelineOptions {
            threads: 2,
            chunk_bytes: 3_000,
            chunks_in_flight: 2,
        };
        let mut writer = Trickle {
            out: Vec::new(),
            max,
            calls: 0,
        };
        replay_pipelined(cores, options, input.as_slice(), &mut writer).unwrap();
        assert!(
            writer.out == want,
            "{max} bytes a call: {}",
            first_difference(&input, &writer.out, &want)
        );
        assert!(
            writer.calls > want.len() / max.max(1) / 2,
            "{max}: {} calls",
            writer.calls
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// However the input is cut into chunks and however many chunks are in
    /// flight, the pipeline writes what one thread writes.
    #[test]
    fn pipeline_matches_one_thread(
        seed in 0u64..1_000,
        events in 0usize..700,
        partitions in 1u32..6,
        threads in 1usize..5,
        chunk_bytes in 1usize..6_000,
        chunks_in_flight in 1usize..5,
        tail in any::<bool>(),
    ) {
        let input = traffic(seed, events, Profile::FlashSale, tail);
        let want = sequential(&input, partitions);
        let options = PipelineOptions { threads, chunk_bytes, chunks_in_flight };
        let got = pipelined(&input, partitions, options);
        prop_assert!(got == want, "{}", first_difference(&input, &got, &want));
    }
}
