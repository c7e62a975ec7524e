//! The broker's side of transactions: the coordinator's decisions
//! ([`crate::txn`]) written to partitions (markers) and groups (pending
//! offsets applied or dropped), durably, before a transaction is complete.
//!
//! Every call here blocks on fsyncs: the front doors call them on the
//! blocking pool.

use std::sync::Arc;

use crate::broker::Broker;
use crate::error::{CoreError, Result};
use crate::topic::Partition;
use crate::txn::marker::marker_batch;
use crate::txn::{Completion, EndOutcome, InitOutcome, TxnCoordinator, TxnError};

/// Rounds of InitProducerId: the second always finds no transaction open
/// (the first aborted it).
const INIT_ROUNDS_MAX: usize = 3;

fn unavailable(e: CoreError) -> TxnError {
    TxnError::Unavailable(e.to_string())
}

impl Broker {
    /// The transaction coordinator.
    pub fn transactions(&self) -> &TxnCoordinator {
        &self.txn
    }

    /// InitProducerId with a transactional id: a producer id and epoch for
    /// it, the older producer fenced and its open transaction aborted first.
    pub fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> std::result::Result<(i64, i16), TxnError> {
        for _ in 0..INIT_ROUNDS_MAX {
            let outcome = self
                .txn
                .init_producer_id(transactional_id, timeout_ms, expected, &mut || self.init_producer_id())?;
            match outcome {
                InitOutcome::Ready {
                    producer_id,
                    producer_epoch,
                } => return Ok((producer_id, producer_epoch)),
                InitOutcome::AbortFirst(abort) => self.complete_transaction(&abort).map_err(unavailable)?,
            }
        }
        Err(TxnError::ConcurrentTransactions)
    }

    /// EndTxn: decides the transaction and writes the decision before
    /// answering, so that once a commit is answered its records are visible
    /// to `read_committed` readers.
    pub fn end_transaction(
        &self,
        transactional_id: &str,
        pid: i64,
        epoch: i16,
        commit: bool,
    ) -> std::result::Result<(), TxnError> {
        match self.txn.end(transactional_id, pid, epoch, commit)? {
            EndOutcome::Done => Ok(()),
            EndOutcome::Complete(c) => self.complete_transaction(&c).map_err(unavailable),
        }
    }

    /// Writes the markers and group offsets of a decided transaction, then
    /// records it complete. `c` must have been handed to the caller (by
    /// EndTxn, InitProducerId, the timeout's abort or
    /// [`TxnCoordinator::claim_pending`]), which makes it the only writer:
    /// a marker ends whatever transaction of its producer is open in the
    /// partition, so a second writer's late marker could end the producer's
    /// next transaction there. On failure the claim is released, and the
    /// next housekeeping writes it again (after a partial write, a second
    /// marker in a partition finds no transaction open: it only takes an
    /// offset).
    pub fn complete_transaction(&self, c: &Completion) -> Result<()> {
        let written = self.write_completion(c);
        if written.is_err() {
            self.txn.release(c);
        }
        written
    }

    fn write_completion(&self, c: &Completion) -> Result<()> {
        for (topic, partition) in &c.partitions {
            // A topic deleted since has nothing left to end.
            if let Some(p) = self.topic_by_id(topic).and_then(|t| t.partition(*partition).cloned()) {
                self.write_marker(&p, c.producer_id, c.producer_epoch, c.commit)?;
            }
        }
        for group in &c.groups {
            self.groups().end_transaction(group, c.producer_id, c.commit)?;
        }
        self.txn
            .completed(c)
            .map_err(|e| CoreError::InvalidConfig(e.to_string()))?;
        Ok(())
    }

    /// Appends the marker ending `pid`'s transaction in `p`, durably.
    fn write_marker(&self, p: &Arc<Partition>, pid: i64, epoch: i16, commit: bool) -> Result<()> {
        let mut marker = marker_batch(pid, epoch, commit, 0, self.env().clock.now_ms());
        let appended = p.log().append(&mut marker)?;
        p.commit(appended.next_offset)
    }

    /// Appends an abort marker for `pid`'s transaction open in `p` since
    /// `first`, durably, unless that transaction ended meanwhile (its EndTxn
    /// completing between the look and the write): a marker written then
    /// would end the producer's next transaction in the partition instead.
    fn abort_hanging(&self, p: &Arc<Partition>, (pid, epoch): (i64, i16), first: i64) -> Result<()> {
        let mut marker = marker_batch(pid, epoch, false, 0, self.env().clock.now_ms());
        match p.log().append_marker_if_open(&mut marker, first)? {
            Some(appended) => p.commit(appended.next_offset),
            None => Ok(()),
        }
    }

    /// Periodic: transactions past their timeout are aborted, decided ones a
    /// failure left unwritten are written again, and a transaction open in a
    /// partition that the coordinator does not know (a batch appended after
    /// its transaction ended) is aborted there, so that it cannot hold
    /// `read_committed` readers back.
    pub(crate) fn tick_transactions(&self) {
        let mut due = match self.txn.expire(&mut || self.init_producer_id()) {
            Ok(aborts) => aborts,
            Err(e) => {
                tracing::error!(error = %e, "expiring transactions failed");
                Vec::new()
            }
        };
        // Those being written by their EndTxn or InitProducerId right now
        // are not handed out: written twice, they could end a later
        // transaction of the same producer.
        due.extend(self.txn.claim_pending());
        for c in due {
            if let Err(e) = self.complete_transaction(&c) {
                tracing::error!(
                    transactional_id = %c.transactional_id,
                    error = %e,
                    "writing a transaction's outcome failed; it is tried again"
                );
            }
        }
        self.abort_hanging_transactions();
        if let Err(e) = self.txn.tick() {
            tracing::error!(error = %e, "transaction state housekeeping failed");
        }
    }

    fn abort_hanging_transactions(&self) {
        for topic in self.topics() {
            for p in &topic.partitions {
                for (pid, epoch, first) in p.log().open_transactions() {
                    if self.txn.knows_open(pid, topic.id, p.index) {
                        continue;
                    }
                    tracing::warn!(
                        topic = %topic.name,
                        partition = p.index,
                        producer_id = pid,
                        first_offset = first,
                        "aborting a transaction open in a partition with no transaction at its coordinator"
                    );
                    if let Err(e) = self.abort_hanging(p, (pid, epoch.max(0)), first) {
                        tracing::error!(topic = %topic.name, partition = p.index, error = %e, "aborting a hanging transaction failed");
                    }
                }
            }
        }
    }
}
