//! Durable share-group state behind a narrow interface.
//!
//! The coordinator hands the store [`ShareChange`]s in the order it applies
//! them in memory and answers a client only once the store says the change is
//! durable. At start it replays what the store returns. A store keeps what
//! replaying needs, nothing more: [`LogShareStore`] keeps the changes in a
//! change log on local disk and replaces them by a snapshot of the current
//! state when the log has grown; a store on a database could keep rows.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use super::partition::Persist;
use crate::changelog::ChangeLog;
use crate::error::Result;

/// One durable change of share-group state. Topics are named by their id
/// (hex), so a topic deleted and created again starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShareChange {
    /// Records of one share-partition changed state; `start`, when set, moved
    /// the SPSO first (initialisation, an offset reset).
    Records {
        group: String,
        topic: String,
        partition: i32,
        start: Option<i64>,
        ranges: Vec<Persist>,
    },
    /// The SPSOs of some of the group's share-partitions were set
    /// (AlterShareGroupOffsets): (topic, partition, start offset). Records
    /// before a start are done, those from it on delivered afresh.
    Starts {
        group: String,
        starts: Vec<(String, i32, i64)>,
    },
    /// The share-partitions' state is gone (DeleteShareGroupOffsets).
    DeletePartitions {
        group: String,
        partitions: Vec<(String, i32)>,
    },
    /// The group is gone, with its state and settings.
    DeleteGroup { group: String },
    /// The topic is gone: its state goes from every group.
    DeleteTopic { topic: String },
    /// The group's settings (IncrementalAlterConfigs on the group), whole.
    Settings {
        group: String,
        settings: Vec<(String, String)>,
    },
}

/// Where a written change stands: wait for it with [`ShareStateStore::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(pub i64);

pub trait ShareStateStore: Send + Sync + std::fmt::Debug {
    /// Every change to replay, oldest first. Called once, at open.
    fn replay(&self) -> Result<Vec<ShareChange>>;
    /// Stores `change` after every change appended before it; not yet durable.
    fn append(&self, change: &ShareChange, now_ms: i64) -> Result<Ticket>;
    /// Blocks until the change of `ticket`, and every one before it, is durable.
    fn wait_durable(&self, ticket: Ticket) -> Result<()>;
    /// Whether the store would like its history replaced by a snapshot.
    fn compaction_due(&self) -> bool;
    /// Replaces everything stored by `state` (which says the whole current
    /// state), durably. The caller keeps writers out meanwhile.
    fn replace_with(&self, state: Vec<ShareChange>, now_ms: i64) -> Result<()>;
    /// Housekeeping.
    fn tick(&self) -> Result<()>;
    fn close(&self);
    /// Whether the store holds state beyond what [`replay`](Self::replay)
    /// gave: share-partitions are then loaded on first use with
    /// [`claim`](Self::claim), every change of one is handed over whole
    /// (its start and every range) rather than as a difference, and a
    /// share-partition whose change the store refuses is dropped from
    /// memory, to be loaded again. A store shared by brokers is one.
    fn on_demand(&self) -> bool {
        false
    }
    /// Takes a share-partition over for this broker and answers its stored
    /// state and its group's settings. Changes of it that another broker
    /// appends after are refused
    /// ([`CoreError::ShareStateMoved`](crate::error::CoreError::ShareStateMoved)).
    fn claim(&self, _group: &str, _topic: &str, _partition: i32) -> Result<Claimed> {
        Ok(Claimed::default())
    }
    /// On-demand stores: the stored start offset of each of `group`'s
    /// share-partitions, as (topic id in hex, partition, start), those
    /// served by other brokers included. `None`: memory holds them all.
    fn stored_starts(&self, _group: &str) -> Result<Option<Vec<(String, i32, i64)>>> {
        Ok(None)
    }
}

/// A share-partition as [`ShareStateStore::claim`] found it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claimed {
    /// Its stored start and ranges; `None` when nothing is stored.
    pub state: Option<(i64, Vec<Persist>)>,
    /// Its group's own settings as the store had them at the claim (empty
    /// when it sets none); `None` when the store does not keep them.
    pub settings: Option<Vec<(String, String)>>,
}

/// The share-group state store on local disk: a [`ChangeLog`] under the data
/// directory's `share/`.
#[derive(Debug)]
pub struct LogShareStore {
    log: ChangeLog,
    /// What replaying the log found, handed out once.
    replayed: Mutex<Option<Vec<ShareChange>>>,
}

impl LogShareStore {
    pub fn open(env: Arc<Env>, dir: &Path) -> Result<LogShareStore> {
        let (log, changes) = ChangeLog::open_snapshotted(env, dir, "share state")?;
        Ok(LogShareStore {
            log,
            replayed: Mutex::new(Some(changes)),
        })
    }
}

/// Rough JSON size of a change, to cut snapshots into records.
fn approx_bytes(c: &ShareChange) -> usize {
    match c {
        ShareChange::Records { group, ranges, .. } => group.len() + 96 + ranges.len() * 80,
        ShareChange::Settings { group, settings } => {
            group.len() + 32 + settings.iter().map(|(k, v)| k.len() + v.len() + 8).sum::<usize>()
        }
        ShareChange::Starts { group, starts } => group.len() + 32 + starts.len() * 64,
        ShareChange::DeletePartitions { group, partitions } => group.len() + 32 + partitions.len() * 48,
        ShareChange::DeleteGroup { group } => group.len() + 32,
        ShareChange::DeleteTopic { topic } => topic.len() + 32,
    }
}

impl ShareStateStore for LogShareStore {
    fn replay(&self) -> Result<Vec<ShareChange>> {
        Ok(self
            .replayed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default())
    }

    fn append(&self, change: &ShareChange, now_ms: i64) -> Result<Ticket> {
        let (_, next) = self.log.append_change(change, now_ms)?;
        Ok(Ticket(next))
    }

    fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.log.wait_durable(ticket.0)
    }

    fn compaction_due(&self) -> bool {
        self.log.compaction_due()
    }

    fn replace_with(&self, state: Vec<ShareChange>, now_ms: i64) -> Result<()> {
        self.log.replace_with_snapshot(state, approx_bytes, now_ms)
    }

    fn tick(&self) -> Result<()> {
        self.log.tick()
    }

    fn close(&self) {
        self.log.close();
    }
}

impl LogShareStore {
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
}
