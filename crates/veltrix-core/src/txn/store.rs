//! Durable transaction state behind a narrow interface.
//!
//! The coordinator hands the store [`TxnChange`]s in the order it applies
//! them in memory and answers a client only once the store says the change is
//! durable. At start it replays what the store returns. [`LogTxnStore`] keeps
//! the changes in a change log on local disk and replaces them by a snapshot
//! (one `Put` per transactional id) when the log has grown; a store on a
//! database would keep one row per transactional id.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use super::TxnRecord;
use crate::changelog::ChangeLog;
use crate::error::Result;

/// One durable change of transaction state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnChange {
    /// A transactional id's whole state, replacing what was stored for it.
    Put(TxnRecord),
    /// The transactional id expired: it is forgotten.
    Remove { transactional_id: String },
}

/// Where a written change stands: wait for it with [`TxnStateStore::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub i64);

pub trait TxnStateStore: Send + Sync + std::fmt::Debug {
    /// Every change to replay, oldest first. Called once, at open.
    fn replay(&self) -> Result<Vec<TxnChange>>;
    /// Stores `change` after every change appended before it; not yet durable.
    fn append(&self, change: &TxnChange, now_ms: i64) -> Result<Ticket>;
    /// Blocks until the change of `ticket`, and every one before it, is durable.
    fn wait_durable(&self, ticket: Ticket) -> Result<()>;
    /// Whether the store would like its history replaced by a snapshot.
    fn compaction_due(&self) -> bool;
    /// Replaces everything stored by `state` (the whole current state),
    /// durably. The caller keeps writers out meanwhile.
    fn replace_with(&self, state: Vec<TxnChange>, now_ms: i64) -> Result<()>;
    /// Housekeeping.
    fn tick(&self) -> Result<()>;
    fn close(&self);
}

/// The transaction state store on local disk: a [`ChangeLog`] under the data
/// directory's `transactions/`.
#[derive(Debug)]
pub struct LogTxnStore {
    log: ChangeLog,
    /// What replaying the log found, handed out once.
    replayed: Mutex<Option<Vec<TxnChange>>>,
}

impl LogTxnStore {
    pub fn open(env: Arc<Env>, dir: &Path) -> Result<LogTxnStore> {
        let (log, changes) = ChangeLog::open_snapshotted(env, dir, "transaction state")?;
        Ok(LogTxnStore {
            log,
            replayed: Mutex::new(Some(changes)),
        })
    }
}

/// Rough JSON size of a change, to cut snapshots into records: a topic id
/// is an array of 16 numbers.
fn approx_bytes(c: &TxnChange) -> usize {
    match c {
        TxnChange::Put(r) => {
            r.transactional_id.len()
                + 160
                + r.partitions.len() * 80
                + r.groups.iter().map(|g| g.len() + 4).sum::<usize>()
        }
        TxnChange::Remove { transactional_id } => transactional_id.len() + 40,
    }
}

impl TxnStateStore for LogTxnStore {
    fn replay(&self) -> Result<Vec<TxnChange>> {
        Ok(self
            .replayed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default())
    }

    fn append(&self, change: &TxnChange, now_ms: i64) -> Result<Ticket> {
        let (_, next) = self.log.append_change(change, now_ms)?;
        Ok(Ticket(next))
    }

    fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.log.wait_durable(ticket.0)
    }

    fn compaction_due(&self) -> bool {
        self.log.compaction_due()
    }

    fn replace_with(&self, state: Vec<TxnChange>, now_ms: i64) -> Result<()> {
        self.log.replace_with_snapshot(state, approx_bytes, now_ms)
    }

    fn tick(&self) -> Result<()> {
        self.log.tick()
    }

    fn close(&self) {
        self.log.close();
    }
}
