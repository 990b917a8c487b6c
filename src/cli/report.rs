//! What the commands print: each report is a `Display` impl over the
//! library's result, so `main` only chooses where it goes (stdout for
//! `demo` and `bench`, stderr for the summaries of `replay` and `loadgen`,
//! whose stdout may carry data).

use std::fmt;
use std::net::SocketAddr;

use coupon_stream_core::reason::Outcome;
use coupon_stream_core::state::StateStats;

use crate::kafka::config::Guarantee;
use crate::ops::telemetry::Progress;
use crate::replay::ReplayTally;
use crate::tools::bench::{BenchOptions, BenchReport, LatencyMs, Mode};
use crate::tools::demo::{DemoReport, Tick};
use crate::tools::loadgen::LoadSummary;
use crate::tools::scrape::DecisionBatches;

const MIB: f64 = (1 << 20) as f64;

/// `bench`'s table: one row per run, then throughput against the baseline
/// and the last run's outcomes.
#[derive(Debug)]
pub struct BenchTable<'a> {
    pub options: &'a BenchOptions,
    pub reports: &'a [BenchReport],
}

impl<'a> BenchTable<'a> {
    pub fn new(options: &'a BenchOptions, reports: &'a [BenchReport]) -> BenchTable<'a> {
        BenchTable { options, reports }
    }
}

impl fmt::Display for BenchTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (options, reports) = (self.options, self.reports);
        let rate = match options.rate {
            Some(r) => format!("{r} events/s offered"),
            None => "saturation".to_owned(),
        };
        writeln!(
            f,
            "{} events, {} partitions, {}, broker {}{}",
            options.events,
            options.partitions,
            rate,
            reports.first().map_or("", |r| r.broker.as_str()),
            if reports.first().is_some_and(|r| r.embedded_broker) {
                " (embedded)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "{:<14} {:>12} {:>9} {:>9} {:>9} {:>9} {:>10} {:>12} {:>10}",
            "",
            "events/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "cpu s",
            "cpu s/M ev",
            "peak MiB"
        )?;
        let mut warm_up_kept = false;
        for r in reports {
            let latency = |pick: fn(&LatencyMs) -> f64| {
                r.latency_ms
                    .as_ref()
                    .map_or("-".to_owned(), |l| format!("{:.1}", pick(l)))
            };
            warm_up_kept |= r.latency_ms.as_ref().is_some_and(|l| !l.warm_up_excluded);
            writeln!(
                f,
                "{:<14} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>10.2} {:>12.2} {:>10.1}",
                bench_label(r),
                r.events_per_second,
                latency(|l| l.p50),
                latency(|l| l.p99),
                latency(|l| l.p999),
                latency(|l| l.max),
                r.cpu_seconds,
                r.cpu_seconds_per_million_events,
                r.peak_rss_bytes as f64 / MIB
            )?;
        }
        if warm_up_kept {
            writeln!(
                f,
                "latency: every event counted (too few were produced in the second after the first record to leave it out)"
            )?;
        }
        for r in reports {
            if let Some(first) = r.first_record_seconds {
                writeln!(
                    f,
                    "{} first record read back {first:.2} s after the load began",
                    bench_label(r)
                )?;
            }
        }
        for r in reports {
            let threads: Vec<String> = r
                .cpu_by_thread
                .iter()
                .filter(|t| t.cpu_seconds >= 0.005)
                .map(|t| match t.threads {
                    0 | 1 => format!("{} {:.2}", t.name, t.cpu_seconds),
                    n => format!("{} x{n} {:.2}", t.name, t.cpu_seconds),
                })
                .collect();
            writeln!(
                f,
                "{} cpu s by thread: {}",
                bench_label(r),
                threads.join(", ")
            )?;
        }
        for r in reports.iter().filter(|r| r.mode == Mode::Processor) {
            writeln!(
                f,
                "{}",
                BatchLine {
                    label: bench_label(r),
                    batches: r.decision_batches.as_ref(),
                }
            )?;
        }
        if let Some(baseline) = reports.iter().find(|r| r.guarantee.is_none()) {
            for processor in reports.iter().filter(|r| r.guarantee.is_some()) {
                writeln!(
                    f,
                    "{} / baseline throughput: {:.0}%",
                    bench_label(processor),
                    100.0 * processor.events_per_second / baseline.events_per_second.max(1e-9)
                )?;
            }
        }
        if let Some(r) = reports.last() {
            let outcomes: Vec<String> =
                r.outcomes.iter().map(|(o, n)| format!("{o}={n}")).collect();
            writeln!(f, "outcomes: {}", outcomes.join(" "))?;
            writeln!(f, "load generator: {:.0} events/s", r.produced_per_second)?;
        }
        Ok(())
    }
}

/// A processor run's decision batches, read from its `/metrics`.
struct BatchLine<'a> {
    label: String,
    batches: Option<&'a DecisionBatches>,
}

impl fmt::Display for BatchLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} decision batches: ", self.label)?;
        let Some(b) = self.batches else {
            return write!(f, "not read (its /metrics did not answer)");
        };
        write!(
            f,
            "{}, {:.2} ms mean, {:.2} s deciding",
            b.batches, b.mean_ms, b.seconds
        )?;
        if let Some(p99) = b.p99_ms_at_most {
            write!(f, ", p99 <= {p99} ms")?;
        }
        // Up to the first bound no batch passed.
        let listed = b
            .slower_than_ms
            .iter()
            .position(|&(_, n)| n == 0)
            .map_or(b.slower_than_ms.len(), |i| i + 1);
        let slower: Vec<String> = b.slower_than_ms[..listed]
            .iter()
            .map(|(ms, n)| format!("{ms} ms: {n}"))
            .collect();
        if !slower.is_empty() {
            write!(f, "; slower than {}", slower.join(", "))?;
        }
        Ok(())
    }
}

fn bench_label(r: &BenchReport) -> String {
    match r.guarantee {
        Some(Guarantee::ExactlyOnce) => "processor eos".to_owned(),
        _ => r.mode.as_str().to_owned(),
    }
}

/// `demo`'s once-a-second line: totals, rates since the previous line and
/// outcome counts.
#[derive(Debug, Default)]
pub struct DemoTicker {
    /// Produced, decided and seconds at the previous line.
    last: (u64, u64, f64),
}

impl DemoTicker {
    pub fn line(&mut self, tick: &Tick, progress: &Progress) -> String {
        let t = tick.elapsed.as_secs_f64();
        let dt = (t - self.last.2).max(1e-9);
        let counts: Vec<String> = [
            Outcome::Issued,
            Outcome::Partial,
            Outcome::Rejected,
            Outcome::Accepted,
            Outcome::Duplicate,
            Outcome::Invalid,
        ]
        .iter()
        .map(|&o| format!("{}={}", o.as_str(), progress.outcome(o)))
        .collect();
        let line = format!(
            "{:>4.0}s  produced {:>10} ({:>7.0}/s)  decided {:>10} ({:>7.0}/s)  {}",
            t,
            tick.produced,
            (tick.produced - self.last.0.min(tick.produced)) as f64 / dt,
            tick.decided,
            (tick.decided - self.last.1.min(tick.decided)) as f64 / dt,
            counts.join(" ")
        );
        self.last = (tick.produced, tick.decided, t);
        line
    }
}

/// `demo`'s first line, once the broker and the HTTP endpoint are up.
pub fn demo_started(brokers: &str, http: SocketAddr, seconds: u64) -> String {
    format!(
        "broker {brokers}; metrics at http://{http}/metrics; producing for {seconds} s (Ctrl-C stops early)"
    )
}

/// `demo`'s closing summary.
impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(o, n)| format!("{}={}", o.as_str(), n))
            .collect();
        writeln!(
            f,
            "summary: {} events produced, {} decided in {:.1} s ({:.0} events/s end to end){}",
            self.produced,
            self.decided,
            self.seconds,
            self.decided as f64 / self.seconds.max(1e-9),
            if self.caught_up {
                ""
            } else {
                "; the processor had not caught up when the demo stopped"
            }
        )?;
        writeln!(f, "outcomes: {}", outcomes.join(" "))?;
        write!(
            f,
            "coupons issued: {}; records acknowledged by the broker: {} ({} decisions + {} dead letters{}){}",
            self.coupons_issued,
            self.acknowledged,
            self.decided,
            self.invalid,
            if self.acknowledged == self.decided + self.invalid {
                ", all"
            } else {
                ", NOT all"
            },
            if self.embedded {
                "; embedded broker, discarded on exit"
            } else {
                ""
            }
        )
    }
}

/// `replay`'s summary line: speed, outcomes and the state it left.
#[derive(Debug)]
pub struct ReplaySummary<'a> {
    pub tally: &'a ReplayTally,
    pub seconds: f64,
    pub stats: StateStats,
}

impl<'a> ReplaySummary<'a> {
    pub fn new(tally: &'a ReplayTally, seconds: f64, stats: StateStats) -> ReplaySummary<'a> {
        ReplaySummary {
            tally,
            seconds,
            stats,
        }
    }
}

impl fmt::Display for ReplaySummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|&&o| self.tally.outcome(o) > 0)
            .map(|&o| format!("{}={}", o.as_str(), self.tally.outcome(o)))
            .collect();
        let stats = &self.stats;
        write!(
            f,
            "replayed {} messages in {:.3} s ({:.0} msg/s): {}; state: {} coupons, {} campaigns, {} sellers, {} users, {:.1} MiB heap",
            self.tally.messages,
            self.seconds,
            self.tally.messages as f64 / self.seconds.max(1e-9),
            counts.join(" "),
            stats.coupons,
            stats.campaigns,
            stats.sellers,
            stats.users,
            stats.heap_bytes as f64 / MIB,
        )
    }
}

/// `loadgen`'s summary after producing to Kafka.
#[derive(Debug)]
pub struct ProducedSummary<'a> {
    pub summary: &'a LoadSummary,
    pub topic: &'a str,
    pub brokers: &'a str,
}

impl<'a> ProducedSummary<'a> {
    pub fn new(summary: &'a LoadSummary, topic: &'a str, brokers: &'a str) -> ProducedSummary<'a> {
        ProducedSummary {
            summary,
            topic,
            brokers,
        }
    }
}

impl fmt::Display for ProducedSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.summary;
        write!(
            f,
            "produced {} events to {} at {} in {:.3} s ({:.0} events/s), all acknowledged",
            s.events,
            self.topic,
            self.brokers,
            s.seconds,
            s.events as f64 / s.seconds.max(1e-9)
        )
    }
}

/// `loadgen`'s summary after writing to a file.
pub fn generated(events: u64, took: std::time::Duration) -> String {
    format!("generated {events} events in {:.3} s", took.as_secs_f64())
}

/// `loadgen`'s progress bar on a terminal (hidden otherwise).
pub fn progress_bar(events: u64) -> indicatif::ProgressBar {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(events);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_line_lists_slow_batches_up_to_the_first_bound_none_passed() {
        let batches = DecisionBatches {
            batches: 283,
            seconds: 1.39,
            mean_ms: 4.912,
            p99_ms_at_most: Some(100.0),
            slower_than_ms: vec![(10.0, 22), (25.0, 12), (50.0, 3), (100.0, 0), (250.0, 0)],
        };
        let line = BatchLine {
            label: "processor".to_owned(),
            batches: Some(&batches),
        };
        assert_eq!(
            line.to_string(),
            "processor decision batches: 283, 4.91 ms mean, 1.39 s deciding, p99 <= 100 ms; \
             slower than 10 ms: 22, 25 ms: 12, 50 ms: 3, 100 ms: 0"
        );
        let unread = BatchLine {
            label: "processor eos".to_owned(),
            batches: None,
        };
        assert_eq!(
            unread.to_string(),
            "processor eos decision batches: not read (its /metrics did not answer)"
        );
    }
}
