//! [`Decision`]: the answer to one input message (contract section 5), as a
//! view over the event and the ruling; [`crate::encode`] writes it as JSON.

use crate::decode::Invalid;
use crate::event::{Event, EventType};
use crate::reason::{Outcome, Reason};
use crate::state::{Ruling, UserResult};

/// Where an input message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    /// Section 6: the message is not a valid event. Its fields are not
    /// copied into the decision, since none of them can be trusted.
    Invalid {
        source: Source,
        invalid: &'a Invalid,
    },
    /// Section 4: a repeat of an event seen within the window.
    Duplicate {
        source: Source,
        event: &'a Event<'a>,
    },
    /// Section 3: the rules' ruling on a valid event.
    Ruled {
        source: Source,
        event: &'a Event<'a>,
        ruling: Ruling,
        /// The per-recipient results of an `issue`, empty otherwise.
        issue_results: &'a [UserResult],
    },
}

impl Decision<'_> {
    pub fn source(&self) -> Source {
        match *self {
            Decision::Invalid { source, .. }
            | Decision::Duplicate { source, .. }
            | Decision::Ruled { source, .. } => source,
        }
    }

    pub fn event_type(&self) -> Option<EventType> {
        match self {
            Decision::Invalid { .. } => None,
            Decision::Duplicate { event, .. } | Decision::Ruled { event, .. } => {
                Some(event.event_type())
            }
        }
    }

    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Invalid { .. } => Outcome::Invalid,
            Decision::Duplicate { .. } => Outcome::Duplicate,
            Decision::Ruled { ruling, .. } => match *ruling {
                Ruling::Applied => Outcome::Applied,
                Ruling::Issue { outcome, .. } => outcome,
                Ruling::Redeemed { .. } => Outcome::Accepted,
                Ruling::Released { .. } => Outcome::Released,
                Ruling::Rejected(_) => Outcome::Rejected,
            },
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Decision::Invalid { invalid, .. } => Some(Reason::Invalid(invalid.reason)),
            Decision::Duplicate { .. } => None,
            Decision::Ruled { ruling, .. } => match *ruling {
                Ruling::Issue {
                    reason: Some(r), ..
                }
                | Ruling::Rejected(r) => Some(Reason::Rejected(r)),
                _ => None,
            },
        }
    }

    /// Coupons this decision issued.
    pub fn coupons_issued(&self) -> usize {
        match self {
            Decision::Ruled { issue_results, .. } => issue_results
                .iter()
                .filter(|r| matches!(r, UserResult::Issued { .. }))
                .count(),
            _ => 0,
        }
    }
}
