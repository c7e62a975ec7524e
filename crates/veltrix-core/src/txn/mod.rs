//! The transaction coordinator (Kafka's KIP-98): one state machine per
//! transactional id, durable before every answer.
//!
//! A transactional producer is known by its transactional id. InitProducerId
//! gives it a producer id and an epoch; a new InitProducerId for the same
//! transactional id bumps the epoch, which fences the older producer (every
//! request it sends afterwards is refused as fenced) and aborts the
//! transaction it left open. Within a transaction the producer names the
//! partitions it writes to (AddPartitionsToTxn) and the groups whose offsets
//! it commits (AddOffsetsToTxn), then ends it (EndTxn) with a commit or an
//! abort.
//!
//! Ending is two-phase, as in Kafka. The coordinator first stores
//! `PrepareCommit` or `PrepareAbort`; from then on the outcome is decided. It
//! hands the caller a [`Completion`]: the partitions that need a commit or
//! abort marker and the groups whose transactional offsets are to be applied
//! or dropped. When the caller has written those durably it calls
//! [`TxnCoordinator::completed`], which stores `CompleteCommit` or
//! `CompleteAbort`. A crash in between leaves the transaction prepared; after
//! the restart [`TxnCoordinator::claim_pending`] hands out its completion
//! again, so a transaction is never left half-visible.
//!
//! A completion has one writer at a time: whoever it was handed to (EndTxn,
//! InitProducerId, the timeout's abort, housekeeping) holds it until
//! [`TxnCoordinator::completed`] or [`TxnCoordinator::release`]. A second
//! writer would be harmful, not merely redundant: a marker closes whatever
//! transaction of its producer is open in the partition, so one written late,
//! after the producer's next transaction began there, would end that one too.
//!
//! A transaction open longer than its timeout is aborted the same way by
//! [`TxnCoordinator::expire`], with the epoch bumped so the producer that
//! left it cannot commit it late. A transactional id idle for
//! `transactional_id_expiration_ms` is forgotten.
//!
//! Nothing here writes to partitions or groups: the broker does, from the
//! completions. Time comes from the injected clock; state goes through a
//! [`TxnStateStore`]. Every call that changes state waits for the store's
//! fsync (never holding a lock meanwhile): call those where blocking is
//! allowed. The checks Produce and TxnOffsetCommit make
//! ([`TxnCoordinator::verify_partition`], [`TxnCoordinator::verify_group`])
//! only take the in-memory state's lock.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use serde::{Deserialize, Serialize};
use veltrix_log::Env;

use crate::topic::TopicId;

pub mod marker;
pub(crate) mod metrics;
pub mod store;
#[cfg(test)]
mod tests;

pub use store::{LogTxnStore, Ticket, TxnChange, TxnStateStore};

/// Longest transactional id, in bytes.
pub const TRANSACTIONAL_ID_BYTES_MAX: usize = 1024;

/// Limits and times of the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnConfig {
    /// Kafka's `transaction.max.timeout.ms`: the longest transaction timeout
    /// a producer may ask for.
    pub transaction_timeout_ms_max: i32,
    /// Transactional ids known at once; InitProducerId for one more is
    /// refused.
    pub transactional_ids_max: usize,
    /// Partitions one transaction may write to.
    pub transaction_partitions_max: usize,
    /// Groups one transaction may commit offsets of.
    pub transaction_groups_max: usize,
    /// Kafka's `transactional.id.expiration.ms`: an id with no transaction
    /// open, unused this long, is forgotten.
    pub transactional_id_expiration_ms: i64,
}

impl Default for TxnConfig {
    fn default() -> TxnConfig {
        TxnConfig {
            transaction_timeout_ms_max: 900_000,
            transactional_ids_max: 100_000,
            transaction_partitions_max: 10_000,
            transaction_groups_max: 100,
            transactional_id_expiration_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// A transaction's state, named as Kafka's DescribeTransactions names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    /// The state of that name (ListTransactions' state filter).
    pub fn parse(name: &str) -> Option<TxnState> {
        [
            TxnState::Empty,
            TxnState::Ongoing,
            TxnState::PrepareCommit,
            TxnState::PrepareAbort,
            TxnState::CompleteCommit,
            TxnState::CompleteAbort,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    fn prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// What is stored of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The id and epoch the producer had before the last bump (-1 if none):
    /// a producer whose answer was lost may name them (KIP-360).
    pub last_producer_id: i64,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions and groups of the open (or prepared) transaction.
    pub partitions: BTreeSet<(TopicId, i32)>,
    pub groups: BTreeSet<String>,
    /// When the open transaction started (-1 when none is open).
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// Why a request was refused, as Kafka's error codes say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// INVALID_TRANSACTION_TIMEOUT
    #[error("transaction timeout {0} ms is not between 1 and {1} ms")]
    InvalidTimeout(i32, i32),
    /// CONCURRENT_TRANSACTIONS: the previous transaction is still being
    /// completed; try again.
    #[error("the previous transaction of this transactional id is still being completed")]
    ConcurrentTransactions,
    /// PRODUCER_FENCED (INVALID_PRODUCER_EPOCH before its version)
    #[error("producer epoch {0} is not the transactional id's current epoch {1}: a newer producer fenced it")]
    ProducerFenced(i16, i16),
    /// INVALID_PRODUCER_ID_MAPPING
    #[error("producer id {0} is not the producer id of this transactional id")]
    InvalidProducerIdMapping(i64),
    /// INVALID_TXN_STATE
    #[error("{0}")]
    InvalidTxnState(String),
    /// TRANSACTIONAL_ID_NOT_FOUND
    #[error("no transactional id {0}")]
    NotFound(String),
    /// INVALID_REQUEST
    #[error("{0}")]
    InvalidRequest(String),
    /// A named limit; the adapter answers with a fatal error and the message.
    #[error("{0}")]
    LimitReached(String),
    /// COORDINATOR_NOT_AVAILABLE: the state store failed; nothing more is
    /// accepted until a restart recovers it.
    #[error("the transaction coordinator is not available: {0}")]
    Unavailable(String),
}

/// A decided transaction whose markers and group offsets are to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The epoch the markers carry (bumped when the abort fenced the producer).
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: Vec<(TopicId, i32)>,
    pub groups: Vec<String>,
}

/// What InitProducerId found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer may go ahead with this id and epoch.
    Ready { producer_id: i64, producer_epoch: i16 },
    /// A transaction of the older producer was open: it is now decided
    /// (aborted, the older producer fenced). Write the completion, call
    /// [`TxnCoordinator::completed`], and ask again.
    AbortFirst(Completion),
}

/// What EndTxn found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Already ended this way (a retry): nothing to do.
    Done,
    /// Decided; write the completion, then call [`TxnCoordinator::completed`].
    Complete(Completion),
}

/// One transactional id as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnDescription {
    pub transactional_id: String,
    pub state: TxnState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub started_ms: i64,
    pub partitions: Vec<(TopicId, i32)>,
    pub groups: Vec<String>,
}

/// The transaction coordinator of this broker.
#[derive(Debug)]
pub struct TxnCoordinator {
    env: Arc<Env>,
    config: TxnConfig,
    state: Mutex<State>,
    store: Box<dyn TxnStateStore>,
    /// Shared by writers of the store, exclusive while it is compacted, so a
    /// snapshot sees every change before it and none after while readers
    /// (Produce's checks, describe) only ever wait for the state lock, which
    /// is never held across an fsync. Always taken before the state lock.
    writers: RwLock<()>,
    /// Set when the store failed: memory may be ahead of disk, so nothing is
    /// answered from it any more.
    failed: AtomicBool,
    /// What was decided and refused since the broker started.
    totals: TxnTotals,
}

/// Transactions decided and requests refused by a limit since the broker
/// started (the metrics read them).
#[derive(Debug, Default)]
pub struct TxnTotals {
    /// Committed by their producer (EndTxn).
    pub committed: AtomicU64,
    /// Aborted by their producer (EndTxn).
    pub aborted_by_producer: AtomicU64,
    /// Aborted because they stayed open longer than their timeout.
    pub aborted_by_timeout: AtomicU64,
    /// Aborted because a new producer of the same transactional id started
    /// (InitProducerId), fencing the one that left them open.
    pub aborted_by_new_producer: AtomicU64,
    /// InitProducerId refused by `transactional_ids_max`.
    pub refused_ids: AtomicU64,
    /// AddPartitionsToTxn refused by `transaction_partitions_max`.
    pub refused_partitions: AtomicU64,
    /// AddOffsetsToTxn refused by `transaction_groups_max`.
    pub refused_groups: AtomicU64,
}

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Default)]
struct State {
    txns: BTreeMap<String, TxnRecord>,
    /// Producer id → transactional id, for the checks of Produce.
    by_producer: HashMap<i64, String>,
    /// Transactional ids whose decided transaction is being written by the
    /// caller it was handed to; no one else is handed it meanwhile. Only
    /// prepared transactions are here. In memory only: after a restart
    /// nothing is being written.
    writing: HashSet<String>,
}

impl State {
    fn put(&mut self, r: TxnRecord) {
        if let Some(old) = self.txns.get(&r.transactional_id)
            && old.producer_id != r.producer_id
        {
            self.by_producer.remove(&old.producer_id);
        }
        self.by_producer.insert(r.producer_id, r.transactional_id.clone());
        self.txns.insert(r.transactional_id.clone(), r);
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.txns.remove(id) {
            self.by_producer.remove(&old.producer_id);
        }
    }
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The next epoch of `r`, or a new producer id from `allocate` with epoch 0
/// when the epoch is used up (as Kafka does at `i16::MAX - 1`).
fn bump(r: &mut TxnRecord, allocate: &mut dyn FnMut() -> crate::Result<i64>) -> Result<(), TxnError> {
    r.last_producer_id = r.producer_id;
    r.last_producer_epoch = r.producer_epoch;
    if r.producer_epoch >= i16::MAX - 1 {
        r.producer_id = allocate().map_err(|e| TxnError::Unavailable(e.to_string()))?;
        r.producer_epoch = 0;
    } else {
        r.producer_epoch += 1;
    }
    Ok(())
}

fn completion_of(r: &TxnRecord) -> Completion {
    Completion {
        transactional_id: r.transactional_id.clone(),
        producer_id: r.producer_id,
        producer_epoch: r.producer_epoch,
        commit: r.state == TxnState::PrepareCommit,
        partitions: r.partitions.iter().copied().collect(),
        groups: r.groups.iter().cloned().collect(),
    }
}

pub fn check_transactional_id(id: &str) -> Result<(), TxnError> {
    if id.is_empty() {
        return Err(TxnError::InvalidRequest("the transactional id is empty".into()));
    }
    if id.len() > TRANSACTIONAL_ID_BYTES_MAX {
        return Err(TxnError::InvalidRequest(format!(
            "a transactional id of {} bytes is longer than {TRANSACTIONAL_ID_BYTES_MAX}",
            id.len()
        )));
    }
    Ok(())
}

impl TxnCoordinator {
    /// Opens the coordinator over `store`, replaying its changes.
    pub fn open(env: Arc<Env>, config: TxnConfig, store: Box<dyn TxnStateStore>) -> crate::Result<TxnCoordinator> {
        let mut state = State::default();
        for change in store.replay()? {
            match change {
                TxnChange::Put(r) => state.put(r),
                TxnChange::Remove { transactional_id } => state.remove(&transactional_id),
            }
        }
        Ok(TxnCoordinator {
            env,
            config,
            state: Mutex::new(state),
            store,
            writers: RwLock::new(()),
            failed: AtomicBool::new(false),
            totals: TxnTotals::default(),
        })
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// What was decided and refused since the broker started.
    pub fn totals(&self) -> &TxnTotals {
        &self.totals
    }

    fn now_ms(&self) -> i64 {
        self.env.clock.now_ms()
    }

    fn writer(&self) -> RwLockReadGuard<'_, ()> {
        self.writers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn available(&self) -> Result<(), TxnError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(TxnError::Unavailable(
                "its state store failed; restart the broker".into(),
            ));
        }
        Ok(())
    }

    /// Stores `r` (appended under the state lock, so changes reach the store
    /// in the order they were applied) and returns the ticket to wait for.
    fn persist(&self, st: &mut State, r: TxnRecord) -> Result<Ticket, TxnError> {
        let ticket = self.store.append(&TxnChange::Put(r.clone()), self.now_ms());
        match ticket {
            Ok(t) => {
                st.put(r);
                Ok(t)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn fail(&self, e: crate::CoreError) -> TxnError {
        self.failed.store(true, Ordering::Release);
        tracing::error!(error = %e, "the transaction state store failed; transactions are refused until a restart");
        TxnError::Unavailable(e.to_string())
    }

    /// Waits, without the state lock, until `ticket` is durable.
    fn durable(&self, ticket: Ticket) -> Result<(), TxnError> {
        self.store.wait_durable(ticket).map_err(|e| self.fail(e))
    }

    /// The record of `id` for a request of producer `pid` at `epoch`.
    fn producer_record<'a>(st: &'a State, id: &str, pid: i64, epoch: i16) -> Result<&'a TxnRecord, TxnError> {
        let r = st.txns.get(id).ok_or(TxnError::InvalidProducerIdMapping(pid))?;
        if r.producer_id != pid {
            return Err(TxnError::InvalidProducerIdMapping(pid));
        }
        if r.producer_epoch != epoch {
            return Err(TxnError::ProducerFenced(epoch, r.producer_epoch));
        }
        Ok(r)
    }

    /// InitProducerId with a transactional id. `expected` is the producer id
    /// and epoch the producer names (v3+, -1 when it has none); `allocate`
    /// hands out a fresh producer id.
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &mut dyn FnMut() -> crate::Result<i64>,
    ) -> Result<InitOutcome, TxnError> {
        self.available()?;
        check_transactional_id(id)?;
        let max = self.config.transaction_timeout_ms_max;
        if timeout_ms <= 0 || timeout_ms > max {
            return Err(TxnError::InvalidTimeout(timeout_ms, max));
        }
        let expected = expected.filter(|(pid, _)| *pid >= 0);
        let (outcome, ticket) = {
            let _writer = self.writer();
            let mut st = lock(&self.state);
            match st.txns.get(id).cloned() {
                None => self.init_new(&mut st, id, timeout_ms, expected, allocate)?,
                Some(r) => self.init_known(&mut st, r, timeout_ms, expected, allocate)?,
            }
        };
        if let Err(e) = self.durable(ticket) {
            if let InitOutcome::AbortFirst(abort) = &outcome {
                self.release(abort);
            }
            return Err(e);
        }
        if matches!(outcome, InitOutcome::AbortFirst(_)) {
            count(&self.totals.aborted_by_new_producer);
        }
        Ok(outcome)
    }

    /// InitProducerId of a transactional id not seen before.
    fn init_new(
        &self,
        st: &mut State,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &mut dyn FnMut() -> crate::Result<i64>,
    ) -> Result<(InitOutcome, Ticket), TxnError> {
        if st.txns.len() >= self.config.transactional_ids_max {
            count(&self.totals.refused_ids);
            return Err(TxnError::LimitReached(format!(
                "{} transactional ids are known, the most allowed \
                 ([limits] transactional_ids_max); expired ones are forgotten after \
                 transactional_id_expiration_ms",
                self.config.transactional_ids_max
            )));
        }
        if let Some((_, epoch)) = expected {
            // It names a producer this coordinator never gave out.
            return Err(TxnError::ProducerFenced(epoch, 0));
        }
        let producer_id = allocate().map_err(|e| TxnError::Unavailable(e.to_string()))?;
        let r = TxnRecord {
            transactional_id: id.to_owned(),
            producer_id,
            producer_epoch: 0,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: self.now_ms(),
        };
        let ticket = self.persist(st, r)?;
        let ready = InitOutcome::Ready {
            producer_id,
            producer_epoch: 0,
        };
        Ok((ready, ticket))
    }

    /// InitProducerId of a known transactional id: fences the producer
    /// before, aborting its open transaction first.
    fn init_known(
        &self,
        st: &mut State,
        mut r: TxnRecord,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &mut dyn FnMut() -> crate::Result<i64>,
    ) -> Result<(InitOutcome, Ticket), TxnError> {
        if let Some((pid, epoch)) = expected {
            let current_one = (pid, epoch) == (r.producer_id, r.producer_epoch);
            let previous_one = (pid, epoch) == (r.last_producer_id, r.last_producer_epoch);
            if !current_one && !previous_one {
                return Err(TxnError::ProducerFenced(epoch, r.producer_epoch));
            }
        }
        r.updated_ms = self.now_ms();
        match r.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => Err(TxnError::ConcurrentTransactions),
            TxnState::Ongoing => {
                // The older producer left a transaction open: fence it and
                // abort its transaction before anything else.
                bump(&mut r, allocate)?;
                r.state = TxnState::PrepareAbort;
                let completion = completion_of(&r);
                let ticket = self.persist(st, r)?;
                st.writing.insert(completion.transactional_id.clone());
                Ok((InitOutcome::AbortFirst(completion), ticket))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                // A producer fenced by a timeout that names its old epoch
                // gets the current one, not another bump (KIP-360).
                let retry_after_fence = expected.is_some_and(|e| e == (r.last_producer_id, r.last_producer_epoch));
                if !retry_after_fence {
                    bump(&mut r, allocate)?;
                }
                r.timeout_ms = timeout_ms;
                r.state = TxnState::Empty;
                r.partitions.clear();
                r.groups.clear();
                r.started_ms = -1;
                let ready = InitOutcome::Ready {
                    producer_id: r.producer_id,
                    producer_epoch: r.producer_epoch,
                };
                Ok((ready, self.persist(st, r)?))
            }
        }
    }

    /// Adds partitions (AddPartitionsToTxn) and groups (AddOffsetsToTxn) to
    /// the transaction of `id`, starting it if none is open.
    pub fn add(
        &self,
        id: &str,
        pid: i64,
        epoch: i16,
        partitions: &[(TopicId, i32)],
        groups: &[&str],
    ) -> Result<(), TxnError> {
        self.available()?;
        let now = self.now_ms();
        let ticket = {
            let _writer = self.writer();
            let mut st = lock(&self.state);
            let current = Self::producer_record(&st, id, pid, epoch)?;
            if current.state.prepared() {
                return Err(TxnError::ConcurrentTransactions);
            }
            let ongoing = current.state == TxnState::Ongoing;
            let known = ongoing
                && partitions.iter().all(|p| current.partitions.contains(p))
                && groups.iter().all(|g| current.groups.contains(*g));
            if known {
                return Ok(());
            }
            let mut r = current.clone();
            if !ongoing {
                r.state = TxnState::Ongoing;
                r.partitions.clear();
                r.groups.clear();
                r.started_ms = now;
            }
            r.partitions.extend(partitions.iter().copied());
            r.groups.extend(groups.iter().map(|g| (*g).to_owned()));
            if r.partitions.len() > self.config.transaction_partitions_max {
                count(&self.totals.refused_partitions);
                return Err(TxnError::LimitReached(format!(
                    "a transaction may write to at most {} partitions ([limits] transaction_partitions_max)",
                    self.config.transaction_partitions_max
                )));
            }
            if r.groups.len() > self.config.transaction_groups_max {
                count(&self.totals.refused_groups);
                return Err(TxnError::LimitReached(format!(
                    "a transaction may commit offsets of at most {} groups ([limits] transaction_groups_max)",
                    self.config.transaction_groups_max
                )));
            }
            r.updated_ms = now;
            self.persist(&mut st, r)?
        };
        self.durable(ticket)
    }

    /// EndTxn: decides the open transaction of `id`.
    pub fn end(&self, id: &str, pid: i64, epoch: i16, commit: bool) -> Result<EndOutcome, TxnError> {
        self.available()?;
        let now = self.now_ms();
        let (completion, ticket) = {
            let _writer = self.writer();
            let mut st = lock(&self.state);
            let current = Self::producer_record(&st, id, pid, epoch)?;
            let wanted = if commit { "commit" } else { "abort" };
            match (current.state, commit) {
                (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => return Ok(EndOutcome::Done),
                (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                    return Err(TxnError::ConcurrentTransactions);
                }
                (TxnState::Ongoing, _) => {}
                (state, _) => {
                    return Err(TxnError::InvalidTxnState(format!(
                        "cannot {wanted} transactional id {id}: its transaction is {}",
                        state.name()
                    )));
                }
            }
            let mut r = current.clone();
            r.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            r.updated_ms = now;
            let completion = completion_of(&r);
            let ticket = self.persist(&mut st, r)?;
            st.writing.insert(id.to_owned());
            (completion, ticket)
        };
        if let Err(e) = self.durable(ticket) {
            self.release(&completion);
            return Err(e);
        }
        count(if commit {
            &self.totals.committed
        } else {
            &self.totals.aborted_by_producer
        });
        Ok(EndOutcome::Complete(completion))
    }

    /// The markers and offsets of `c` are written: its transaction is
    /// complete. A completion already recorded (or superseded) is ignored.
    pub fn completed(&self, c: &Completion) -> Result<(), TxnError> {
        self.available()?;
        let now = self.now_ms();
        let ticket = {
            let _writer = self.writer();
            let mut st = lock(&self.state);
            let Some(current) = st.txns.get(&c.transactional_id) else {
                return Ok(());
            };
            if !Self::is_decided(current, c) {
                return Ok(());
            }
            let mut r = current.clone();
            r.state = if c.commit {
                TxnState::CompleteCommit
            } else {
                TxnState::CompleteAbort
            };
            r.partitions.clear();
            r.groups.clear();
            r.started_ms = -1;
            r.updated_ms = now;
            let ticket = self.persist(&mut st, r)?;
            st.writing.remove(&c.transactional_id);
            ticket
        };
        self.durable(ticket)
    }

    /// Whether `r` is the decided transaction `c` is the completion of.
    fn is_decided(r: &TxnRecord, c: &Completion) -> bool {
        let prepared = if c.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        r.state == prepared && r.producer_id == c.producer_id && r.producer_epoch == c.producer_epoch
    }

    /// Writing `c` failed (or was not tried): it is handed out again by the
    /// next [`TxnCoordinator::claim_pending`]. Nothing if `c`'s transaction
    /// is no longer the decided one (then the claim is not `c`'s).
    pub fn release(&self, c: &Completion) {
        let mut st = lock(&self.state);
        if st.txns.get(&c.transactional_id).is_some_and(|r| Self::is_decided(r, c)) {
            st.writing.remove(&c.transactional_id);
        }
    }

    /// Every decided transaction not yet complete (what the metrics count),
    /// whether or not someone is writing it.
    pub fn pending(&self) -> Vec<Completion> {
        lock(&self.state)
            .txns
            .values()
            .filter(|r| r.state.prepared())
            .map(completion_of)
            .collect()
    }

    /// The decided transactions not yet complete that no one is writing:
    /// after a restart, or when writing a completion failed. The caller
    /// writes them and calls [`TxnCoordinator::completed`] (or
    /// [`TxnCoordinator::release`] when it fails); until then they are
    /// handed to no one else. One being written by the EndTxn that decided
    /// it is not handed out: written again later, its markers could land
    /// after the producer's next transaction began in the partition.
    pub fn claim_pending(&self) -> Vec<Completion> {
        let mut st = lock(&self.state);
        let due: Vec<Completion> = st
            .txns
            .values()
            .filter(|r| r.state.prepared() && !st.writing.contains(&r.transactional_id))
            .map(completion_of)
            .collect();
        for c in &due {
            st.writing.insert(c.transactional_id.clone());
        }
        due
    }

    /// Aborts every transaction open longer than its timeout (bumping the
    /// epoch, so the producer that left it is fenced) and forgets ids idle
    /// longer than the expiration. Returns the aborts to write.
    pub fn expire(&self, allocate: &mut dyn FnMut() -> crate::Result<i64>) -> Result<Vec<Completion>, TxnError> {
        self.available()?;
        let now = self.now_ms();
        let mut aborts = Vec::new();
        let decided = self.expire_locked(now, allocate, &mut aborts);
        let decided = match decided {
            Ok(Some(ticket)) => self.durable(ticket),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = decided {
            // The claims go with the aborts; the next housekeeping takes them.
            for abort in &aborts {
                self.release(abort);
            }
            return Err(e);
        }
        self.totals
            .aborted_by_timeout
            .fetch_add(aborts.len() as u64, Ordering::Relaxed);
        Ok(aborts)
    }

    /// The changes of [`TxnCoordinator::expire`], under the locks; the
    /// aborts decided (and claimed) go to `aborts`. The ticket of the last
    /// change, if any.
    fn expire_locked(
        &self,
        now: i64,
        allocate: &mut dyn FnMut() -> crate::Result<i64>,
        aborts: &mut Vec<Completion>,
    ) -> Result<Option<Ticket>, TxnError> {
        let mut last = None;
        {
            let _writer = self.writer();
            let mut st = lock(&self.state);
            let timed_out: Vec<TxnRecord> = st
                .txns
                .values()
                .filter(|r| r.state == TxnState::Ongoing && now - r.started_ms >= i64::from(r.timeout_ms))
                .cloned()
                .collect();
            for mut r in timed_out {
                tracing::info!(
                    transactional_id = %r.transactional_id,
                    producer_id = r.producer_id,
                    timeout_ms = r.timeout_ms,
                    "aborting a transaction open longer than its timeout"
                );
                bump(&mut r, allocate)?;
                r.state = TxnState::PrepareAbort;
                r.updated_ms = now;
                let abort = completion_of(&r);
                last = Some(self.persist(&mut st, r)?);
                st.writing.insert(abort.transactional_id.clone());
                aborts.push(abort);
            }
            let idle: Vec<String> = st
                .txns
                .values()
                .filter(|r| {
                    matches!(
                        r.state,
                        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
                    ) && now - r.updated_ms >= self.config.transactional_id_expiration_ms
                })
                .map(|r| r.transactional_id.clone())
                .collect();
            for id in idle {
                let change = TxnChange::Remove {
                    transactional_id: id.clone(),
                };
                last = Some(self.store.append(&change, now).map_err(|e| self.fail(e))?);
                st.remove(&id);
            }
        }
        Ok(last)
    }

    /// Whether producer `pid` at `epoch` may write a transactional batch to
    /// `partition` of `topic`: its transaction is open and names it.
    pub fn verify_partition(&self, pid: i64, epoch: i16, topic: TopicId, partition: i32) -> Result<(), TxnError> {
        self.available()?;
        let st = lock(&self.state);
        let id = st
            .by_producer
            .get(&pid)
            .ok_or(TxnError::InvalidProducerIdMapping(pid))?;
        let r = Self::producer_record(&st, id, pid, epoch)?;
        if r.state != TxnState::Ongoing || !r.partitions.contains(&(topic, partition)) {
            return Err(TxnError::InvalidTxnState(format!(
                "partition {partition} was not added to the open transaction of transactional id {id}"
            )));
        }
        Ok(())
    }

    /// Whether producer `pid` at `epoch` of `id` may commit offsets of
    /// `group` in its transaction (TxnOffsetCommit).
    pub fn verify_group(&self, id: &str, pid: i64, epoch: i16, group: &str) -> Result<(), TxnError> {
        self.available()?;
        let st = lock(&self.state);
        let r = Self::producer_record(&st, id, pid, epoch)?;
        if r.state != TxnState::Ongoing || !r.groups.contains(group) {
            return Err(TxnError::InvalidTxnState(format!(
                "group {group} was not added to the open transaction of transactional id {id}"
            )));
        }
        Ok(())
    }

    /// Whether a transaction of `pid` found open in `partition` of `topic`
    /// is one this coordinator knows: open or decided, with the partition in
    /// it. One it does not know is hanging (a batch appended after its
    /// transaction ended) and is aborted by the broker.
    pub fn knows_open(&self, pid: i64, topic: TopicId, partition: i32) -> bool {
        let st = lock(&self.state);
        st.by_producer
            .get(&pid)
            .and_then(|id| st.txns.get(id))
            .is_some_and(|r| {
                (r.state == TxnState::Ongoing || r.state.prepared()) && r.partitions.contains(&(topic, partition))
            })
    }

    /// DescribeTransactions of one id.
    pub fn describe(&self, id: &str) -> Result<TxnDescription, TxnError> {
        lock(&self.state)
            .txns
            .get(id)
            .map(description)
            .ok_or_else(|| TxnError::NotFound(id.to_owned()))
    }

    /// ListTransactions: every id in one of `states` (all when empty) held by
    /// one of `producer_ids` (all when empty), open for at least
    /// `open_ms_min` (-1: any), at most `limit` of them, in id order.
    pub fn list(
        &self,
        states: &[TxnState],
        producer_ids: &[i64],
        open_ms_min: i64,
        limit: usize,
    ) -> Vec<TxnDescription> {
        let now = self.now_ms();
        lock(&self.state)
            .txns
            .values()
            .filter(|r| states.is_empty() || states.contains(&r.state))
            .filter(|r| producer_ids.is_empty() || producer_ids.contains(&r.producer_id))
            .filter(|r| open_ms_min < 0 || (r.started_ms >= 0 && now - r.started_ms >= open_ms_min))
            .take(limit)
            .map(description)
            .collect()
    }

    /// Transactional ids known, and transactions open or prepared.
    pub fn counts(&self) -> (usize, usize) {
        let st = lock(&self.state);
        let open = st
            .txns
            .values()
            .filter(|r| matches!(r.state, TxnState::Ongoing) || r.state.prepared())
            .count();
        (st.txns.len(), open)
    }

    /// Housekeeping: the store's, and its compaction when due.
    pub fn tick(&self) -> Result<(), TxnError> {
        self.store.tick().map_err(|e| self.fail(e))?;
        if self.store.compaction_due() {
            self.compact()?;
        }
        Ok(())
    }

    /// Replaces the store's history by the current state, writers held off
    /// so that the snapshot is exactly that state.
    pub(crate) fn compact(&self) -> Result<(), TxnError> {
        self.available()?;
        let _no_writers = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let state: Vec<TxnChange> = lock(&self.state).txns.values().cloned().map(TxnChange::Put).collect();
        self.store.replace_with(state, self.now_ms()).map_err(|e| self.fail(e))
    }

    pub fn close(&self) {
        self.store.close();
    }
}

fn description(r: &TxnRecord) -> TxnDescription {
    TxnDescription {
        transactional_id: r.transactional_id.clone(),
        state: r.state,
        producer_id: r.producer_id,
        producer_epoch: r.producer_epoch,
        timeout_ms: r.timeout_ms,
        started_ms: r.started_ms,
        partitions: r.partitions.iter().copied().collect(),
        groups: r.groups.iter().cloned().collect(),
    }
}
