//! `replay --stage-times`: where a replay's time went, per stage and per
//! thread, as lines on stderr.

use std::fmt;
use std::time::Duration;

use crate::replay::ReplayReport;

/// Renders a replay's stage times; one line when one thread decided.
#[derive(Debug)]
pub struct StageReport<'a> {
    pub report: &'a ReplayReport,
    /// Wall time of the whole replay.
    pub seconds: f64,
}

impl fmt::Display for StageReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let events = self.report.tally.messages.max(1) as f64;
        let per_event = |d: Duration| d.as_secs_f64() * 1e9 / events;
        let cpu = |d: Option<Duration>| {
            d.map_or("cpu n/a".to_owned(), |d| {
                format!(
                    "cpu {:.3} s = {:.0} ns/event",
                    d.as_secs_f64(),
                    per_event(d)
                )
            })
        };
        let Some(stages) = &self.report.stages else {
            return write!(
                f,
                "stages: one thread read, split, decided and wrote: {:.0} ns/event wall",
                self.seconds * 1e9 / events
            );
        };
        writeln!(
            f,
            "stages, summed over the workers (wall s, ns/event): read {:.3} ({:.0}), split {:.3} ({:.0}), merge {:.3} ({:.0}), write {:.3} ({:.0}), waiting {:.3} ({:.0})",
            stages.read.as_secs_f64(),
            per_event(stages.read),
            stages.split.as_secs_f64(),
            per_event(stages.split),
            stages.merge.as_secs_f64(),
            per_event(stages.merge),
            stages.write.as_secs_f64(),
            per_event(stages.write),
            stages.wait.as_secs_f64(),
            per_event(stages.wait),
        )?;
        for (w, (decide, worker_cpu)) in stages.decide.iter().zip(&stages.worker_cpu).enumerate() {
            let line = format!(
                "worker {w}: decide {:.3} s wall ({:.0} ns per event of the whole input); {}",
                decide.as_secs_f64(),
                per_event(*decide),
                cpu(*worker_cpu)
            );
            if w + 1 < stages.decide.len() {
                writeln!(f, "{line}")?;
            } else {
                write!(f, "{line}")?;
            }
        }
        Ok(())
    }
}
