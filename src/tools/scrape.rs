//! One histogram read back from a Prometheus text exposition (what a
//! child's `/metrics` serves): how `bench` reports the processor's own
//! decision-batch times beside the latencies it measures from outside.
//!
//! Only the three series of a classic histogram are read (`_bucket` by
//! `le`, `_sum`, `_count`); series of the same name with other labels are
//! added together. Anything else in the text is skipped.

use serde::Serialize;

/// A histogram's cumulative buckets, count and sum, as exposed.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedHistogram {
    /// `(le, observations at or below le)`, ascending by `le`, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

/// Reads histogram `name` from `text`; `None` when its `_count` is absent.
pub fn histogram(text: &str, name: &str) -> Option<ScrapedHistogram> {
    let mut buckets: Vec<(f64, u64)> = Vec::new();
    let (mut count, mut sum) = (None::<u64>, 0.0f64);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (series, labels, value) = match split_sample(rest) {
            Some(parts) => parts,
            None => continue,
        };
        match series {
            "_bucket" => {
                let Some(le) = label(labels, "le").and_then(parse_le) else {
                    continue;
                };
                let Some(n) = parse_count(value) else {
                    continue;
                };
                match buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, total)) => *total += n,
                    None => buckets.push((le, n)),
                }
            }
            "_count" => {
                if let Some(n) = parse_count(value) {
                    count = Some(count.unwrap_or(0) + n);
                }
            }
            "_sum" => {
                if let Ok(s) = value.parse::<f64>() {
                    sum += s;
                }
            }
            _ => {}
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(ScrapedHistogram {
        buckets,
        count: count?,
        sum,
    })
}

impl ScrapedHistogram {
    /// Observations above `le`, when `le` is one of the bucket bounds.
    pub fn above(&self, le: f64) -> Option<u64> {
        self.buckets
            .iter()
            .find(|(b, _)| *b == le)
            .map(|(_, n)| self.count.saturating_sub(*n))
    }

    /// The smallest bucket bound holding at least `quantile` of the
    /// observations (an upper bound on that quantile); `None` when there
    /// are none, and infinity when only `+Inf` holds enough.
    pub fn quantile_at_most(&self, quantile: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let needed = (quantile * self.count as f64).ceil() as u64;
        self.buckets
            .iter()
            .find(|(_, n)| *n >= needed)
            .map(|(le, _)| *le)
    }
}

/// The processor's decision batches over a bench run, from its
/// `coupon_stream_batch_duration_seconds` (start-up included): how much of
/// the end-to-end latency the decision step itself can explain.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionBatches {
    pub batches: u64,
    /// Time spent deciding, all batches.
    pub seconds: f64,
    pub mean_ms: f64,
    /// Upper bound of the bucket holding the 99th percentile batch.
    pub p99_ms_at_most: Option<f64>,
    /// `(bound in ms, batches slower than it)` for the buckets from 10 ms.
    pub slower_than_ms: Vec<(f64, u64)>,
}

impl DecisionBatches {
    /// Slow-batch counts are listed from this bound (s) up.
    const LISTED_FROM_SECONDS: f64 = 0.01;

    pub fn from_histogram(h: &ScrapedHistogram) -> DecisionBatches {
        DecisionBatches {
            batches: h.count,
            seconds: h.sum,
            mean_ms: if h.count == 0 {
                0.0
            } else {
                1e3 * h.sum / h.count as f64
            },
            p99_ms_at_most: h
                .quantile_at_most(0.99)
                .filter(|le| le.is_finite())
                .map(|le| le * 1e3),
            slower_than_ms: h
                .buckets
                .iter()
                .filter(|(le, _)| *le >= Self::LISTED_FROM_SECONDS && le.is_finite())
                .map(|&(le, n)| (le * 1e3, h.count.saturating_sub(n)))
                .collect(),
        }
    }
}

/// `(series suffix, labels without braces, value)` of the text after the
/// metric name, e.g. `_bucket{le="0.1"} 7`.
fn split_sample(rest: &str) -> Option<(&str, &str, &str)> {
    let name_end = rest.find(['{', ' ']).unwrap_or(rest.len());
    let series = &rest[..name_end];
    let after = &rest[name_end..];
    let (labels, tail) = match after.strip_prefix('{') {
        Some(inner) => {
            let close = inner.rfind('}')?;
            (&inner[..close], &inner[close + 1..])
        }
        None => ("", after),
    };
    // The value, then an optional timestamp.
    let value = tail.split_whitespace().next()?;
    Some((series, labels, value))
}

/// A label's value in `a="x",b="y"` (values here hold no quotes).
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

fn parse_le(le: &str) -> Option<f64> {
    match le {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        _ => le.parse().ok(),
    }
}

/// A count, which an exposition may write as a float (`7` or `7.0`).
fn parse_count(value: &str) -> Option<u64> {
    value
        .parse::<u64>()
        .ok()
        .or_else(|| value.parse::<f64>().ok().map(|v| v.max(0.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::telemetry;

    const NAME: &str = "coupon_stream_batch_duration_seconds";

    #[test]
    fn reads_a_histogram_the_exporter_rendered() {
        let recorder = telemetry::recorder().expect("the processor's buckets are valid");
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let h = metrics::histogram!(telemetry::BATCH_DURATION);
            for s in [0.0008, 0.002, 0.002, 0.003, 0.03, 0.3] {
                h.record(s);
            }
        });
        let h = histogram(&handle.render(), NAME).expect("the histogram is rendered");
        assert_eq!(h.count, 6);
        assert!((h.sum - 0.3378).abs() < 1e-9, "sum {}", h.sum);
        assert_eq!(h.buckets.last(), Some(&(f64::INFINITY, 6)));
        assert!(
            h.buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        assert_eq!(h.above(0.001), Some(5));
        assert_eq!(h.above(0.01), Some(2));
        assert_eq!(h.above(0.25), Some(1));
        assert_eq!(h.above(0.0123), None);
        let batches = DecisionBatches::from_histogram(&h);
        assert_eq!(batches.batches, 6);
        assert!((batches.mean_ms - 56.3).abs() < 1e-9);
        // The 6th of 6 observations (0.3 s) is the p99: in the 1 s bucket.
        assert_eq!(batches.p99_ms_at_most, Some(1000.0));
        assert_eq!(
            batches.slower_than_ms,
            vec![
                (10.0, 2),
                (25.0, 2),
                (50.0, 1),
                (100.0, 1),
                (250.0, 1),
                (1000.0, 0)
            ]
        );
    }

    #[test]
    fn adds_label_sets_and_skips_other_metrics() {
        let text = "\
# TYPE x_seconds histogram
x_seconds_bucket{partition=\"0\",le=\"0.1\"} 3
x_seconds_bucket{partition=\"1\",le=\"0.1\"} 4
x_seconds_bucket{partition=\"0\",le=\"+Inf\"} 5
x_seconds_bucket{partition=\"1\",le=\"+Inf\"} 4
x_seconds_sum{partition=\"0\"} 1.5
x_seconds_sum{partition=\"1\"} 0.25
x_seconds_count{partition=\"0\"} 5
x_seconds_count{partition=\"1\"} 4 1700000000000
x_seconds_total 99
y_seconds_count 1
";
        let h = histogram(text, "x_seconds").expect("present");
        assert_eq!(h.buckets, vec![(0.1, 7), (f64::INFINITY, 9)]);
        assert_eq!((h.count, h.sum), (9, 1.75));
        assert_eq!(h.quantile_at_most(0.5), Some(0.1));
        assert_eq!(h.quantile_at_most(0.99), Some(f64::INFINITY));
        assert_eq!(DecisionBatches::from_histogram(&h).p99_ms_at_most, None);
    }

    #[test]
    fn absent_or_empty_histograms() {
        assert_eq!(histogram("z_count 1\n", "x_seconds"), None);
        assert_eq!(histogram("", "x_seconds"), None);
        let empty =
            histogram("x_seconds_count 0\nx_seconds_sum 0\n", "x_seconds").expect("present");
        assert_eq!(empty.quantile_at_most(0.99), None);
        assert_eq!(DecisionBatches::from_histogram(&empty).mean_ms, 0.0);
    }
}
