//! How many partitions of a topic a consumer group owns, from the group's
//! description (`DescribeGroups`: each member's assignment, in Kafka's
//! ConsumerProtocol encoding). The decoder reads untrusted broker bytes:
//! every count is checked against the bytes left before it is used, and
//! nothing is allocated from a count.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AssignmentError {
    #[error("the assignment ends inside {0}")]
    Truncated(&'static str),
    #[error("the assignment has a negative {0}")]
    Negative(&'static str),
}

/// The partitions of `topic` in one member's assignment
/// (`ConsumerProtocolAssignment`: version, then topics with their
/// partitions, then user data, which is ignored).
pub fn assigned_partitions(
    bytes: &[u8],
    topic: &str,
    into: &mut BTreeSet<i32>,
) -> Result<(), AssignmentError> {
    let mut r = Bytes(bytes);
    r.i16("version")?;
    let topics = r.count("topic count", 2 + 4)?;
    for _ in 0..topics {
        let name_len = r.i16("topic name length")?;
        let name_len = usize::try_from(name_len)
            .map_err(|_| AssignmentError::Negative("topic name length"))?;
        let name = r.take(name_len, "topic name")?;
        let partitions = r.count("partition count", 4)?;
        let ours = name == topic.as_bytes();
        for _ in 0..partitions {
            let partition = r.i32("partition")?;
            if ours {
                into.insert(partition);
            }
        }
    }
    Ok(())
}

/// How many partitions of `topic` the members of `group` own together, if
/// the broker says: `None` when the group cannot be described, is not
/// stable, or a member's assignment is not given (Tansu 0.6 describes
/// members without their assignments).
pub fn owned_by_group<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    group: &str,
    topic: &str,
    timeout: Duration,
) -> Option<usize> {
    let list = consumer.fetch_group_list(Some(group), timeout).ok()?;
    let info = list.groups().iter().find(|g| g.name() == group)?;
    if !info.state().eq_ignore_ascii_case("stable") || info.members().is_empty() {
        return None;
    }
    let mut owned = BTreeSet::new();
    for member in info.members() {
        let assignment = member.assignment().filter(|a| !a.is_empty())?;
        assigned_partitions(assignment, topic, &mut owned).ok()?;
    }
    Some(owned.len())
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], AssignmentError> {
        if self.0.len() < n {
            return Err(AssignmentError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, AssignmentError> {
        let b = self.take(2, what)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, AssignmentError> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An array length whose items take at least `item_bytes` each: a
    /// null array (-1) is empty, and a count the remaining bytes cannot
    /// hold is truncation.
    fn count(&mut self, what: &'static str, item_bytes: usize) -> Result<usize, AssignmentError> {
        let n = self.i32(what)?;
        if n == -1 {
            return Ok(0);
        }
        let n = usize::try_from(n).map_err(|_| AssignmentError::Negative(what))?;
        if n.saturating_mul(item_bytes) > self.0.len() {
            return Err(AssignmentError::Truncated(what));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (name, partitions) in topics {
            b.extend_from_slice(&(name.len() as i16).to_be_bytes());
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        // User data: null.
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn reads_the_topics_partitions() {
        let bytes = assignment(&[("other", &[0, 1]), ("coupon-events", &[3, 5, 7])]);
        let mut owned = BTreeSet::new();
        assigned_partitions(&bytes, "coupon-events", &mut owned).unwrap();
        assert_eq!(owned.into_iter().collect::<Vec<_>>(), vec![3, 5, 7]);
        let mut none = BTreeSet::new();
        assigned_partitions(&assignment(&[]), "coupon-events", &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn damaged_assignments_are_errors_not_allocations() {
        let bytes = assignment(&[("coupon-events", &[3, 5, 7])]);
        for cut in 0..bytes.len() - 4 {
            let mut owned = BTreeSet::new();
            assert!(
                assigned_partitions(&bytes[..cut], "coupon-events", &mut owned).is_err(),
                "cut at {cut}"
            );
        }
        // A count of 2^31-1 partitions in a few bytes.
        let mut huge = 0i16.to_be_bytes().to_vec();
        huge.extend_from_slice(&1i32.to_be_bytes());
        huge.extend_from_slice(&1i16.to_be_bytes());
        huge.push(b't');
        huge.extend_from_slice(&i32::MAX.to_be_bytes());
        let mut owned = BTreeSet::new();
        assert_eq!(
            assigned_partitions(&huge, "t", &mut owned),
            Err(AssignmentError::Truncated("partition count"))
        );
        let mut negative = 0i16.to_be_bytes().to_vec();
        negative.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(
            assigned_partitions(&negative, "t", &mut owned),
            Err(AssignmentError::Negative("topic count"))
        );
    }
}
