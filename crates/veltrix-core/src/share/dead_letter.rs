//! The coordinator's side of dead letters (KIP-1191): which archived records
//! still need theirs, and marking them written.
//!
//! A group that names a dead-letter topic archives a record as `Archiving`,
//! stored as such before the answer that archived it. The broker's
//! dead-letter writer (`dead_letters.rs` beside the broker) copies each such
//! record to the topic, waits until the copy is durable, and only then marks
//! the record `Archived` here. The start offset does not pass an `Archiving`
//! record, so none is forgotten; a crash between the copy and the mark
//! writes the copy again after the restart, and the dead-letter topic's
//! duplicate window (keyed on the letter's id) drops the second one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::partition::PendingDeadLetter;
use super::{Key, ShareCoordinator, ShareError, lock};

/// The dead letters one share-partition owes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterWork {
    pub key: Key,
    /// The group's dead-letter topic; `None` if it no longer names one (its
    /// records are then archived without a letter).
    pub topic: Option<Arc<str>>,
    pub records: Vec<PendingDeadLetter>,
}

impl ShareCoordinator {
    /// The dead-letter topic `group` names, if any.
    pub fn dead_letter_topic(&self, group: &str) -> Option<Arc<str>> {
        lock(&self.groups).get(group).and_then(|g| g.dead_letter_topic.clone())
    }

    /// The client id of a member of `group`, while it is in the group.
    pub fn member_client_id(&self, group: &str, member: &str) -> Option<String> {
        lock(&self.groups)
            .get(group)
            .and_then(|g| g.members.get(member))
            .map(|m| m.client_id.clone())
    }

    /// Dead letters owed, at most `records_max` in all, by share-partition.
    /// Empty at once unless a record was archived with a letter to write
    /// since the last call that found everything done.
    pub fn dead_letter_work(&self, records_max: usize) -> Vec<DeadLetterWork> {
        if self.now_ms() < self.dead_letters_retry_ms.load(Ordering::Acquire)
            || !self.dead_letters_due.swap(false, Ordering::AcqRel)
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut left = records_max;
        for (key, p) in self.partitions_snapshot() {
            let records = lock(&p).dead_letters_pending(left);
            if records.is_empty() {
                continue;
            }
            left -= records.len();
            out.push(DeadLetterWork {
                topic: self.dead_letter_topic(&key.group),
                key,
                records,
            });
            if left == 0 {
                // More may be owed, here or in the partitions after it
                // (even when this one took the last place): look again
                // next time.
                self.dead_letters_due.store(true, Ordering::Release);
                break;
            }
        }
        out
    }

    /// Asks for another look at the dead letters owed at `at_ms` (a write
    /// failed and is to be tried again then).
    pub fn dead_letters_retry(&self, at_ms: i64) {
        self.dead_letters_retry_ms.store(at_ms, Ordering::Release);
        self.dead_letters_due.store(true, Ordering::Release);
    }

    /// Marks the dead letters of `offsets` of `key` written, durably; their
    /// records are archived for good and the start offset may pass them.
    pub fn dead_letters_written(&self, key: &Key, offsets: &[i64]) -> Result<usize, ShareError> {
        let Some(p) = self.partition(key) else {
            return Ok(0);
        };
        let (n, ticket) = {
            let _shared = self.writers.read().unwrap_or_else(|p| p.into_inner());
            let mut p = lock(&p);
            let mut persist = Vec::new();
            let n = p.dead_letters_written(offsets, &mut persist);
            if persist.is_empty() {
                return Ok(0);
            }
            (n, self.append_records(key, &p, None, persist, self.now_ms())?)
        };
        self.store().wait_durable(ticket)?;
        // The window moved: fetches waiting for room look again.
        self.wake();
        Ok(n)
    }
}
