//! What a replay reports: its error type and the counts of its decisions.

use std::io;

use thiserror::Error;

use coupon_stream_core::decision_core::Verdict;
use coupon_stream_core::reason::Outcome;

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("reading input: {0}")]
    Read(#[source] io::Error),
    #[error("writing decisions: {0}")]
    Write(#[source] io::Error),
    #[error("starting a replay thread: {0}")]
    Spawn(#[source] io::Error),
    #[error("a replay thread panicked")]
    Panicked,
}

/// Counts of a replay's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayTally {
    pub messages: u64,
    pub coupons_issued: u64,
    by_outcome: [u64; Outcome::ALL.len()],
}

impl ReplayTally {
    pub fn record(&mut self, verdict: &Verdict) {
        self.messages += 1;
        self.coupons_issued += verdict.coupons_issued as u64;
        self.by_outcome[verdict.outcome as usize] += 1;
    }

    pub fn outcome(&self, outcome: Outcome) -> u64 {
        self.by_outcome[outcome as usize]
    }

    /// Adds another tally's counts to this one.
    pub fn add(&mut self, other: &ReplayTally) {
        self.messages += other.messages;
        self.coupons_issued += other.coupons_issued;
        for (mine, theirs) in self.by_outcome.iter_mut().zip(other.by_outcome) {
            *mine += theirs;
        }
    }
}
