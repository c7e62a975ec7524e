//! [`SharedNode`]: one broker process on shared storage. What the front
//! doors call instead of a local partition's log: produce through the
//! [`Writer`], fetch through the [`Reader`], high watermarks to long-poll on,
//! the live brokers (by lease) and who leads a partition or coordinates a
//! group, producer ids, topics and groups' committed offsets, all from the
//! metadata store.
//!
//! Leadership is advisory: the catalog's transaction orders every batch
//! whichever broker commits it, so any broker accepts any partition's
//! batches, and a client that reaches a broker that is no longer a
//! partition's leader loses nothing. A group's coordinator is one live
//! broker, chosen by the group's name among the live brokers; its offset
//! commits are stored only while its own lease is live, checked in the same
//! transaction ([`Cluster::commit_offsets`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::future::BoxFuture;
use object_store::ObjectStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::catalog::{Appended, Catalog, Trimmed};
use crate::cluster::{
    BrokerLease, Cluster, ListenerAddr, LiveBroker, OffsetRow, ShareClaim, ShareKey, ShareState, TopicRow,
};
use crate::error::{Error, Result};
use crate::limits::{ReaderConfig, WriterConfig, check};
use crate::reader::Reader;
use crate::writer::{AppendRequest, Submitted, Writer};

/// ListOffsets by time walks the batch rows in pages of this many, at most
/// this many pages: there is no time index in the catalog yet.
const TIMESTAMP_SCAN_ROWS: usize = 1_000;
const TIMESTAMP_SCAN_PAGES_MAX: usize = 100;

/// Ids reserved from the metadata store at a time for InitProducerId.
const PRODUCER_ID_BLOCK: i64 = 1_000;

/// A broker on shared storage: its identity, lease and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    pub broker_id: i32,
    /// Random per data directory, kept there: tells this broker's restarts
    /// (which take over its own lease at once) from another process claiming
    /// the id (refused while the lease is live).
    pub incarnation: i64,
    /// Host and port clients are told.
    pub host: String,
    pub port: i32,
    /// Every Kafka listener's advertised address, by name.
    pub listeners: Vec<ListenerAddr>,
    /// How long a lease lasts without renewal (1,000..=300,000 ms); renewed
    /// every third of it. A dead broker's partitions and groups move to the
    /// others within it.
    pub lease_ms: u64,
    /// How often the high watermarks of partitions someone long-polls on are
    /// read from the catalog (5..=1,000 ms).
    pub watch_poll_ms: u64,
    pub writer: WriterConfig,
    pub reader: ReaderConfig,
}

impl NodeConfig {
    pub fn validate(&self) -> Result<()> {
        check("broker_id", self.broker_id as u64, 0, 1023)?;
        check("lease_ms", self.lease_ms, 1_000, 300_000)?;
        check("watch_poll_ms", self.watch_poll_ms, 5, 1_000)?;
        self.writer.validate()?;
        self.reader.validate()
    }
}

/// Counters of the node's work beside the writer's.
#[derive(Debug, Default)]
pub struct NodeStats {
    pub lease_renewals_failed: std::sync::atomic::AtomicU64,
    pub leases_lost: std::sync::atomic::AtomicU64,
    pub reads_failed: std::sync::atomic::AtomicU64,
    pub batches_trimmed: std::sync::atomic::AtomicU64,
}

type PartitionKey = (Arc<str>, i32);

/// Batches one retention transaction removes at most: a partition far past
/// its retention is trimmed over several rounds, each transaction short.
pub const TRIM_ROWS_MAX: usize = 10_000;

/// Transactions one DeleteRecords runs at most (a million batches): the
/// start offset moves in the first; batches left below it past that many
/// go with the next DeleteRecords.
pub const DELETE_TRANSACTIONS_MAX: usize = 100;

/// A partition's high watermark as this broker knows it.
struct Watched {
    sender: watch::Sender<i64>,
    /// When it was last read from the catalog.
    read_at: Option<tokio::time::Instant>,
}

/// One broker process on shared storage. Start with [`SharedNode::start`];
/// [`SharedNode::close`] flushes, resigns the lease and stops its tasks.
pub struct SharedNode<C> {
    config: NodeConfig,
    catalog: Arc<C>,
    writer: Writer,
    reader: Reader<C>,
    live: RwLock<Vec<LiveBroker>>,
    /// High watermarks, moved by this broker's commits at once and by the
    /// poll for everyone else's.
    watches: Mutex<HashMap<PartitionKey, Watched>>,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    stats: NodeStats,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<C: Catalog + Cluster> SharedNode<C> {
    /// Registers the broker (waiting up to two leases for another
    /// incarnation's live lease on the id to expire) and starts the lease and
    /// watermark tasks and the writer.
    pub async fn start(config: NodeConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Arc<Self>> {
        config.validate()?;
        let lease = BrokerLease {
            broker_id: config.broker_id,
            incarnation: config.incarnation,
            host: config.host.clone(),
            port: config.port,
            listeners: config.listeners.clone(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(config.lease_ms * 2);
        loop {
            match catalog.register(&lease, config.lease_ms).await {
                Ok(()) => break,
                Err(e @ Error::BrokerIdInUse(_)) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(Error::BrokerIdInUse(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                Err(e) => return Err(e),
            }
        }
        let writer = Writer::start(config.writer.clone(), catalog.clone(), store.clone())?;
        let reader = Reader::new(config.reader.clone(), catalog.clone(), store)?;
        let live = catalog.live_brokers().await?;
        let node = Arc::new(SharedNode {
            config,
            catalog,
            writer,
            reader,
            live: RwLock::new(live),
            watches: Mutex::new(HashMap::new()),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            stats: NodeStats::default(),
            tasks: Mutex::new(Vec::new()),
        });
        let lease_task = tokio::spawn(lease_loop(Arc::downgrade(&node), lease));
        let watch_task = tokio::spawn(watch_loop(Arc::downgrade(&node)));
        node.tasks.lock().expect("tasks").extend([lease_task, watch_task]);
        Ok(node)
    }

    pub fn broker_id(&self) -> i32 {
        self.config.broker_id
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    pub fn reader(&self) -> &Reader<C> {
        &self.reader
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    pub fn catalog(&self) -> &Arc<C> {
        &self.catalog
    }

    /// Queues a batch for the next object; resolves once committed. Batches
    /// submitted one after another are committed in that order.
    pub async fn submit(
        self: &Arc<Self>,
        request: AppendRequest,
    ) -> Result<impl Future<Output = Result<Appended>> + use<C>> {
        let key: PartitionKey = (request.topic.clone(), request.partition);
        let submitted: Submitted = self.writer.submit(request).await?;
        let node = Arc::downgrade(self);
        Ok(async move {
            let appended = submitted.await?;
            if let Some(node) = node.upgrade() {
                node.advance(&key, appended.last_offset + 1, false);
            }
            Ok(appended)
        })
    }

    /// Moves a partition's known high watermark forward (never back);
    /// `read` when `end` was just read from the catalog.
    fn advance(&self, key: &PartitionKey, end: i64, read: bool) {
        let mut watches = self.watches.lock().expect("watches");
        if let Some(w) = watches.get_mut(key) {
            if read {
                w.read_at = Some(tokio::time::Instant::now());
            }
            w.sender.send_if_modified(|hw| {
                let moved = end > *hw;
                *hw = (*hw).max(end);
                moved
            });
        }
    }

    /// A partition's high watermark as last known, to long-poll on: moved
    /// by this broker's commits and by a poll of the catalog every
    /// `watch_poll_ms` while someone watches.
    pub fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        let mut watches = self.watches.lock().expect("watches");
        watches
            .entry((topic.into(), partition))
            .or_insert_with(|| Watched {
                sender: watch::channel(-1).0,
                read_at: None,
            })
            .sender
            .subscribe()
    }

    /// The partition's high watermark, from the catalog.
    pub async fn end_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        let end = self
            .catalog
            .end_offset(topic, partition)
            .await?
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.into(),
                partition,
            })?;
        self.advance(&(topic.into(), partition), end, true);
        Ok(end)
    }

    /// The partition's high watermark, from the catalog unless it was read
    /// from there within `watch_poll_ms`: however many fetches ask, a
    /// partition costs the catalog at most one read per interval.
    pub async fn recent_end_offset(&self, topic: &str, partition: i32) -> Result<i64> {
        let fresh = Duration::from_millis(self.config.watch_poll_ms);
        let known = {
            let watches = self.watches.lock().expect("watches");
            watches
                .get(&(topic.into(), partition))
                .filter(|w| w.read_at.is_some_and(|at| at.elapsed() < fresh))
                .map(|w| *w.sender.borrow())
        };
        match known {
            Some(end) if end >= 0 => Ok(end),
            _ => self.end_offset(topic, partition).await,
        }
    }

    /// Committed batches from the one holding `offset`, at most `bytes_max`
    /// (but at least one batch), each with its base offset written into it,
    /// back to back: a Fetch's records. Also answers the offset after them.
    pub async fn read(&self, topic: &str, partition: i32, offset: i64, bytes_max: usize) -> Result<(Bytes, i64)> {
        let batches = match self.reader.read(topic, partition, offset, bytes_max).await {
            Ok(b) => b,
            Err(e) => {
                self.stats
                    .reads_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Err(e);
            }
        };
        let size = batches.iter().map(|b| b.bytes.len()).sum();
        let mut out = BytesMut::with_capacity(size);
        let mut next = offset;
        for b in &batches {
            let start = out.len();
            out.extend_from_slice(&b.bytes);
            assign_base_offset(&mut out[start..], b.base_offset);
            next = b.last_offset + 1;
        }
        if next > offset {
            self.advance(&(topic.into(), partition), next, false);
        }
        Ok((out.freeze(), next))
    }

    /// The brokers whose leases were live at the last look, by id.
    pub fn live_brokers(&self) -> Vec<LiveBroker> {
        self.live.read().expect("live").clone()
    }

    /// The broker that leads a partition: spread over the live brokers by
    /// topic and partition. Advisory (see the module's notes); this broker
    /// when no other is known.
    pub fn leader_of(&self, topic: &str, partition: i32) -> i32 {
        let live = self.live.read().expect("live");
        if live.is_empty() {
            return self.config.broker_id;
        }
        let at = (name_hash(topic) as usize).wrapping_add(partition.max(0) as usize) % live.len();
        live[at].broker_id
    }

    /// The broker that coordinates a group: one of the live brokers by the
    /// group's name; this broker when no other is known.
    pub fn coordinator_of(&self, group: &str) -> LiveBroker {
        let live = self.live.read().expect("live");
        if live.is_empty() {
            return LiveBroker {
                broker_id: self.config.broker_id,
                host: self.config.host.clone(),
                port: self.config.port,
                listeners: self.config.listeners.clone(),
            };
        }
        live[name_hash(group) as usize % live.len()].clone()
    }

    /// Whether this broker coordinates `group` now.
    pub fn coordinates(&self, group: &str) -> bool {
        self.coordinator_of(group).broker_id == self.config.broker_id
    }

    /// A producer id never handed out before by any broker.
    pub async fn producer_id(&self) -> Result<i64> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let first = self.catalog.allocate_producer_ids(PRODUCER_ID_BLOCK).await?;
            *ids = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Hands a partition's batch rows to `visit` in offset order, from the
    /// first, until it answers false or the rows end; at most
    /// `TIMESTAMP_SCAN_PAGES_MAX` pages of `TIMESTAMP_SCAN_ROWS` (there is no
    /// time index in the catalog), past which it fails.
    async fn walk_batches(
        &self,
        topic: &str,
        partition: i32,
        mut visit: impl FnMut(&crate::catalog::BatchRow) -> bool,
    ) -> Result<()> {
        let mut offset = 0;
        for _ in 0..TIMESTAMP_SCAN_PAGES_MAX {
            let rows = self
                .catalog
                .batches(topic, partition, offset, TIMESTAMP_SCAN_ROWS)
                .await?;
            for r in &rows {
                if !visit(r) {
                    return Ok(());
                }
            }
            match rows.last() {
                Some(last) => offset = last.last_offset + 1,
                None => return Ok(()),
            }
        }
        Err(Error::Other(format!(
            "{topic}-{partition} has more than {} batches to look through by time",
            TIMESTAMP_SCAN_PAGES_MAX * TIMESTAMP_SCAN_ROWS
        )))
    }

    /// Stores a group's offsets while this broker's lease is live.
    pub async fn commit_offsets(&self, group: &str, offsets: &[OffsetRow]) -> Result<()> {
        self.catalog
            .commit_offsets(group, self.config.broker_id, self.config.incarnation, offsets)
            .await
    }

    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<OffsetRow>> {
        self.catalog.fetch_offsets(group).await
    }

    /// [`Cluster::claim_share_state`] for this broker, under its lease.
    pub async fn claim_share_state(&self, key: &ShareKey) -> Result<ShareClaim> {
        self.catalog
            .claim_share_state(key, self.config.broker_id, self.config.incarnation)
            .await
    }

    pub async fn set_share_settings(&self, group: &str, settings: &str) -> Result<()> {
        self.catalog.set_share_settings(group, settings).await
    }

    pub async fn share_settings(&self) -> Result<Vec<(String, String)>> {
        self.catalog.share_settings().await
    }

    pub async fn delete_share_group(&self, group: &str) -> Result<()> {
        self.catalog.delete_share_group(group).await
    }

    /// [`Cluster::set_share_states`] under this broker's lease.
    pub async fn set_share_states(&self, group: &str, states: &[([u8; 16], i32, Option<ShareState>)]) -> Result<()> {
        self.catalog
            .set_share_states(group, (self.config.broker_id, self.config.incarnation), states)
            .await
    }

    /// [`Cluster::store_share_state`] for this broker, under its lease.
    pub async fn store_share_state(&self, key: &ShareKey, claim: i64, state: &ShareState) -> Result<()> {
        self.catalog
            .store_share_state(key, (self.config.broker_id, self.config.incarnation), claim, state)
            .await
    }

    pub async fn create_topic(&self, topic: &TopicRow) -> Result<()> {
        self.catalog.create_topic(topic).await
    }

    pub async fn topics(&self) -> Result<Vec<TopicRow>> {
        self.catalog.topics().await
    }

    /// Flushes what the writer holds, resigns the lease and stops.
    pub async fn close(self: Arc<Self>) {
        for task in self.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
        if let Err(e) = self
            .catalog
            .resign(self.config.broker_id, self.config.incarnation)
            .await
        {
            tracing::warn!(error = %e, "resigning the broker's lease failed; it expires by itself");
        }
        match Arc::try_unwrap(self) {
            Ok(node) => node.writer.close().await,
            Err(_) => tracing::warn!("the shared storage node is still in use at close; its writer stops with it"),
        }
    }
}

/// Writes a served batch's base offset; the bytes stored are the producer's,
/// without it. The leader epoch stays the producer's -1 as a local log's.
fn assign_base_offset(batch: &mut [u8], base_offset: i64) {
    if batch.len() >= 8 {
        batch[..8].copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// FNV-1a of a name: stable across builds and brokers, which every broker
/// must agree on.
fn name_hash(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Renews the lease every third of it and refreshes the live brokers; a lost
/// lease is registered again.
async fn lease_loop<C: Catalog + Cluster>(node: std::sync::Weak<SharedNode<C>>, lease: BrokerLease) {
    let Some(lease_ms) = node.upgrade().map(|n| n.config.lease_ms) else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_millis(lease_ms / 3));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(node) = node.upgrade() else { return };
        let renewed = node.catalog.renew(lease.broker_id, lease.incarnation, lease_ms).await;
        match renewed {
            Ok(()) => {}
            Err(Error::LeaseLost(_)) => {
                node.stats
                    .leases_lost
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    broker_id = lease.broker_id,
                    "the broker's lease was lost; registering again"
                );
                if let Err(e) = node.catalog.register(&lease, lease_ms).await {
                    tracing::warn!(error = %e, "registering the broker again failed");
                }
            }
            Err(e) => {
                node.stats
                    .lease_renewals_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(error = %e, "renewing the broker's lease failed");
            }
        }
        match node.catalog.live_brokers().await {
            Ok(live) => *node.live.write().expect("live") = live,
            Err(e) => tracing::debug!(error = %e, "reading the live brokers failed"),
        }
    }
}

/// Reads the high watermarks of the partitions someone watches, every
/// `watch_poll_ms`; forgets partitions nobody watches.
async fn watch_loop<C: Catalog + Cluster>(node: std::sync::Weak<SharedNode<C>>) {
    let Some(poll_ms) = node.upgrade().map(|n| n.config.watch_poll_ms) else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_millis(poll_ms));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(node) = node.upgrade() else { return };
        let watched: Vec<PartitionKey> = {
            let mut watches = node.watches.lock().expect("watches");
            watches.retain(|_, w| w.sender.receiver_count() > 0);
            watches.keys().cloned().collect()
        };
        for (topic, partition) in watched {
            if let Ok(Some(end)) = node.catalog.end_offset(&topic, partition).await {
                node.advance(&(topic, partition), end, true);
            }
        }
    }
}

/// What the front doors use of a [`SharedNode`], object-safe so they need
/// not know its catalog's type (PostgreSQL in a broker, memory in tests).
pub trait Shared: Send + Sync + 'static {
    fn broker_id(&self) -> i32;
    /// [`SharedNode::submit`]: queued in order now, committed later.
    fn submit(
        self: Arc<Self>,
        request: AppendRequest,
    ) -> BoxFuture<'static, Result<BoxFuture<'static, Result<Appended>>>>;
    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64>;
    fn end_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>>;
    /// [`SharedNode::recent_end_offset`].
    fn recent_end_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>>;
    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        offset: i64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<(Bytes, i64)>>;
    fn live_brokers(&self) -> Vec<LiveBroker>;
    fn leader_of(&self, topic: &str, partition: i32) -> i32;
    fn coordinator_of(&self, group: &str) -> LiveBroker;
    fn producer_id(&self) -> BoxFuture<'_, Result<i64>>;
    fn commit_offsets<'a>(&'a self, group: &'a str, offsets: &'a [OffsetRow]) -> BoxFuture<'a, Result<()>>;
    fn fetch_offsets<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<OffsetRow>>>;
    /// The groups with committed offsets, by name.
    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>>>;
    /// [`SharedNode::claim_share_state`].
    fn claim_share_state<'a>(&'a self, key: &'a ShareKey) -> BoxFuture<'a, Result<ShareClaim>>;
    fn set_share_settings<'a>(&'a self, group: &'a str, settings: &'a str) -> BoxFuture<'a, Result<()>>;
    fn share_settings(&self) -> BoxFuture<'_, Result<Vec<(String, String)>>>;
    fn delete_share_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<()>>;
    /// [`Cluster::share_claims`].
    fn share_claims<'a>(&'a self, keys: &'a [ShareKey]) -> BoxFuture<'a, Result<Vec<(ShareKey, i64)>>>;
    /// [`Cluster::share_starts`].
    fn share_starts<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<(ShareKey, i64)>>>;
    /// [`SharedNode::set_share_states`].
    fn set_share_states<'a>(
        &'a self,
        group: &'a str,
        states: &'a [([u8; 16], i32, Option<ShareState>)],
    ) -> BoxFuture<'a, Result<()>>;
    /// [`SharedNode::store_share_state`].
    fn store_share_state<'a>(
        &'a self,
        key: &'a ShareKey,
        claim: i64,
        state: &'a ShareState,
    ) -> BoxFuture<'a, Result<()>>;
    fn create_topic<'a>(&'a self, topic: &'a TopicRow) -> BoxFuture<'a, Result<()>>;
    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicRow>>>;
    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>>;
    fn set_partitions<'a>(&'a self, name: &'a str, total: i32) -> BoxFuture<'a, Result<()>>;
    fn set_topic_config<'a>(&'a self, name: &'a str, config: &'a str) -> BoxFuture<'a, Result<()>>;
    fn delete_offsets<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<()>>;
    /// The first batch whose largest timestamp reaches `timestamp`: its base
    /// offset and that timestamp (ListOffsets by time); `None` past the end.
    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        timestamp: i64,
    ) -> BoxFuture<'a, Result<Option<(i64, i64)>>>;
    /// The batch with the largest timestamp (the first of equals): its base
    /// offset and that timestamp (ListOffsets' -3, KIP-734); `None` when empty.
    fn max_timestamp<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<Option<(i64, i64)>>>;
    /// The partition's first offset still kept: ListOffsets' earliest, and
    /// below it a Fetch is out of range.
    fn start_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>>;
    /// Retention of one partition: removes its batches whose largest
    /// timestamp is before `before_ms`, from the start, at most
    /// `trim_rows_max` per call (see [`Catalog::trim`]).
    fn trim<'a>(&'a self, topic: &'a str, partition: i32, before_ms: i64) -> BoxFuture<'a, Result<Option<Trimmed>>>;
    /// DeleteRecords: the partition's start moved up to `offset` (clamped to
    /// its end) and every batch wholly below it removed, in transactions of
    /// at most `TRIM_ROWS_MAX` batches, `DELETE_TRANSACTIONS_MAX` at most.
    /// Answers the start offset after.
    fn delete_records<'a>(&'a self, topic: &'a str, partition: i32, offset: i64) -> BoxFuture<'a, Result<i64>>;
    fn stats(&self) -> SharedStats;
}

/// A snapshot of a node's counters, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedStats {
    pub objects_written: u64,
    pub bytes_written: u64,
    pub batches_committed: u64,
    pub flushes_failed: u64,
    pub flush_micros_total: u64,
    pub reads_failed: u64,
    pub lease_renewals_failed: u64,
    pub leases_lost: u64,
    pub cache_bytes: u64,
    pub live_brokers: u64,
    /// Batches retention removed.
    pub batches_trimmed: u64,
    /// GET requests the reads sent to the bucket, and the bytes answered.
    pub gets: u64,
    pub bytes_read: u64,
}

impl<C: Catalog + Cluster> Shared for SharedNode<C> {
    fn broker_id(&self) -> i32 {
        self.config.broker_id
    }

    fn submit(
        self: Arc<Self>,
        request: AppendRequest,
    ) -> BoxFuture<'static, Result<BoxFuture<'static, Result<Appended>>>> {
        Box::pin(async move {
            let answer = SharedNode::submit(&self, request).await?;
            Ok(Box::pin(answer) as BoxFuture<'static, Result<Appended>>)
        })
    }

    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        SharedNode::watch(self, topic, partition)
    }

    fn end_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>> {
        Box::pin(SharedNode::end_offset(self, topic, partition))
    }

    fn recent_end_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>> {
        Box::pin(SharedNode::recent_end_offset(self, topic, partition))
    }

    fn read<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        offset: i64,
        bytes_max: usize,
    ) -> BoxFuture<'a, Result<(Bytes, i64)>> {
        Box::pin(SharedNode::read(self, topic, partition, offset, bytes_max))
    }

    fn live_brokers(&self) -> Vec<LiveBroker> {
        SharedNode::live_brokers(self)
    }

    fn leader_of(&self, topic: &str, partition: i32) -> i32 {
        SharedNode::leader_of(self, topic, partition)
    }

    fn coordinator_of(&self, group: &str) -> LiveBroker {
        SharedNode::coordinator_of(self, group)
    }

    fn producer_id(&self) -> BoxFuture<'_, Result<i64>> {
        Box::pin(SharedNode::producer_id(self))
    }

    fn commit_offsets<'a>(&'a self, group: &'a str, offsets: &'a [OffsetRow]) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::commit_offsets(self, group, offsets))
    }

    fn fetch_offsets<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<OffsetRow>>> {
        Box::pin(SharedNode::fetch_offsets(self, group))
    }

    fn groups(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(self.catalog.groups())
    }

    fn claim_share_state<'a>(&'a self, key: &'a ShareKey) -> BoxFuture<'a, Result<ShareClaim>> {
        Box::pin(SharedNode::claim_share_state(self, key))
    }

    fn store_share_state<'a>(
        &'a self,
        key: &'a ShareKey,
        claim: i64,
        state: &'a ShareState,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::store_share_state(self, key, claim, state))
    }

    fn set_share_settings<'a>(&'a self, group: &'a str, settings: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::set_share_settings(self, group, settings))
    }

    fn share_claims<'a>(&'a self, keys: &'a [ShareKey]) -> BoxFuture<'a, Result<Vec<(ShareKey, i64)>>> {
        Box::pin(self.catalog.share_claims(keys))
    }

    fn share_starts<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<Vec<(ShareKey, i64)>>> {
        Box::pin(self.catalog.share_starts(group))
    }

    fn set_share_states<'a>(
        &'a self,
        group: &'a str,
        states: &'a [([u8; 16], i32, Option<ShareState>)],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::set_share_states(self, group, states))
    }

    fn share_settings(&self) -> BoxFuture<'_, Result<Vec<(String, String)>>> {
        Box::pin(SharedNode::share_settings(self))
    }

    fn delete_share_group<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::delete_share_group(self, group))
    }

    fn create_topic<'a>(&'a self, topic: &'a TopicRow) -> BoxFuture<'a, Result<()>> {
        Box::pin(SharedNode::create_topic(self, topic))
    }

    fn topics(&self) -> BoxFuture<'_, Result<Vec<TopicRow>>> {
        Box::pin(SharedNode::topics(self))
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.catalog.delete_topic(name))
    }

    fn set_partitions<'a>(&'a self, name: &'a str, total: i32) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.catalog.set_partitions(name, total))
    }

    fn set_topic_config<'a>(&'a self, name: &'a str, config: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.catalog.set_topic_config(name, config))
    }

    fn delete_offsets<'a>(&'a self, group: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.catalog.delete_offsets(group, None))
    }

    fn offset_for_timestamp<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        timestamp: i64,
    ) -> BoxFuture<'a, Result<Option<(i64, i64)>>> {
        Box::pin(async move {
            let mut hit = None;
            self.walk_batches(topic, partition, |r| {
                if r.max_timestamp >= timestamp {
                    hit = Some((r.base_offset, r.max_timestamp));
                }
                hit.is_none()
            })
            .await?;
            Ok(hit)
        })
    }

    fn max_timestamp<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<Option<(i64, i64)>>> {
        Box::pin(async move {
            let mut best: Option<(i64, i64)> = None;
            self.walk_batches(topic, partition, |r| {
                if best.is_none_or(|(_, ts)| r.max_timestamp > ts) {
                    best = Some((r.base_offset, r.max_timestamp));
                }
                true
            })
            .await?;
            Ok(best)
        })
    }

    fn start_offset<'a>(&'a self, topic: &'a str, partition: i32) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            self.catalog
                .start_offset(topic, partition)
                .await?
                .ok_or_else(|| Error::UnknownPartition {
                    topic: topic.into(),
                    partition,
                })
        })
    }

    fn trim<'a>(&'a self, topic: &'a str, partition: i32, before_ms: i64) -> BoxFuture<'a, Result<Option<Trimmed>>> {
        Box::pin(async move {
            let trimmed = self.catalog.trim(topic, partition, before_ms, TRIM_ROWS_MAX).await?;
            if let Some(t) = trimmed {
                self.stats
                    .batches_trimmed
                    .fetch_add(t.batches, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(trimmed)
        })
    }

    fn delete_records<'a>(&'a self, topic: &'a str, partition: i32, offset: i64) -> BoxFuture<'a, Result<i64>> {
        Box::pin(async move {
            let unknown = || Error::UnknownPartition {
                topic: topic.into(),
                partition,
            };
            let mut start = 0;
            for _ in 0..DELETE_TRANSACTIONS_MAX {
                let t = self
                    .catalog
                    .delete_before(topic, partition, offset, TRIM_ROWS_MAX)
                    .await?
                    .ok_or_else(unknown)?;
                self.stats
                    .batches_trimmed
                    .fetch_add(t.batches, std::sync::atomic::Ordering::Relaxed);
                start = t.start_offset;
                if t.batches < TRIM_ROWS_MAX as u64 {
                    break;
                }
            }
            Ok(start)
        })
    }

    fn stats(&self) -> SharedStats {
        use std::sync::atomic::Ordering::Relaxed;
        let w = self.writer.stats();
        SharedStats {
            objects_written: w.objects_written.load(Relaxed),
            bytes_written: w.bytes_written.load(Relaxed),
            batches_committed: w.batches_committed.load(Relaxed),
            flushes_failed: w.flushes_failed.load(Relaxed),
            flush_micros_total: w.flush_micros_total.load(Relaxed),
            reads_failed: self.stats.reads_failed.load(Relaxed),
            lease_renewals_failed: self.stats.lease_renewals_failed.load(Relaxed),
            leases_lost: self.stats.leases_lost.load(Relaxed),
            cache_bytes: self.reader.cache_bytes() as u64,
            live_brokers: self.live.read().expect("live").len() as u64,
            batches_trimmed: self.stats.batches_trimmed.load(Relaxed),
            gets: self.reader.gets().0,
            bytes_read: self.reader.gets().1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hash_the_same_everywhere() {
        // Every broker must place a group or partition alike: the hash is
        // fixed, never a per-process random state.
        assert_eq!(name_hash(""), 0x811c_9dc5);
        assert_eq!(name_hash("a"), 0xe40c_292c);
        assert_eq!(name_hash("foobar"), 0xbf9c_f968);
    }
}
