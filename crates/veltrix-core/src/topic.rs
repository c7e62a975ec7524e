//! Topics and partitions as the adapters see them.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use veltrix_log::{Appended, Log, batch};

use crate::catalog::TopicConfig;
use crate::dedup::TopicDedup;
use crate::error::{CoreError, Result};
use crate::validate;

/// What [`Partition::append_batches`] appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedBatches {
    /// The offset of the first batch's first record.
    pub base_offset: i64,
    /// The offset after the last batch.
    pub next_offset: i64,
    /// The smallest and largest record timestamps, for timestamp policies.
    pub min_timestamp: i64,
    pub max_timestamp: i64,
}

/// How far [`Partition::try_append_batches`] got with a partition's batches.
#[derive(Debug, Clone, Copy)]
pub struct AppendProgress {
    batches_appended: usize,
    so_far: AppendedBatches,
}

impl AppendedBatches {
    /// Nothing appended yet: [`AppendedBatches::add`] widens it.
    pub(crate) fn none() -> AppendedBatches {
        AppendedBatches {
            base_offset: i64::MAX,
            next_offset: 0,
            min_timestamp: i64::MAX,
            max_timestamp: -1,
        }
    }

    pub(crate) fn add(&mut self, appended: &Appended, min_timestamp: i64, max_timestamp: i64) {
        self.base_offset = self.base_offset.min(appended.base_offset);
        self.next_offset = self.next_offset.max(appended.next_offset);
        self.min_timestamp = self.min_timestamp.min(min_timestamp);
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
    }
}

/// A producer's batch that passed validation, with the copy to store instead
/// when its max timestamp had to be corrected.
pub(crate) struct Checked<'a> {
    validated: validate::Validated<'a>,
    copy: Option<Vec<u8>>,
}

impl Checked<'_> {
    /// The bytes to store.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.copy.as_deref().unwrap_or(self.validated.verified.bytes())
    }

    pub(crate) fn verified(&self) -> batch::Verified<'_> {
        match &self.copy {
            None => self.validated.verified,
            // A programmer error if it fails: the copy differs from a
            // verified batch in the max timestamp and a CRC computed for it.
            Some(copy) => batch::Verified::new(copy, usize::MAX).expect("a corrected batch verifies"),
        }
    }

    pub(crate) fn record_count(&self) -> i32 {
        self.validated.header.record_count
    }

    pub(crate) fn min_timestamp(&self) -> i64 {
        self.validated.min_timestamp
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.validated.max_timestamp
    }
}

impl Default for AppendProgress {
    fn default() -> AppendProgress {
        AppendProgress {
            batches_appended: 0,
            so_far: AppendedBatches::none(),
        }
    }
}

/// A topic's id: random, never reused (Kafka's topic UUID).
pub type TopicId = [u8; 16];

/// One partition: its log, and a channel that carries its high watermark to
/// whoever waits for new records.
///
/// # Waiting for durability without a thread per waiter
///
/// [`Partition::commit_async`] does not block: a waiter asks for an offset to
/// be flushed and sleeps on `flushed`. At most one flusher per partition runs on
/// the blocking pool at a time; it fsyncs (through the log's group commit) until
/// everything asked for is durable, announcing each round, and then ends. So a
/// thousand produce requests waiting on one partition cost one thread and one
/// fsync per round, not a thread each.
#[derive(Debug)]
pub struct Partition {
    pub index: i32,
    log: Log,
    high_watermark: watch::Sender<i64>,
    flush: Mutex<FlushRequest>,
    /// Bumped after every flush round, whatever its outcome.
    flushed: watch::Sender<u64>,
}

/// What waiters have asked of the flusher.
#[derive(Debug, Default)]
struct FlushRequest {
    /// The highest offset a waiter needs durable (exclusive).
    requested: i64,
    /// A flusher is running and will look at `requested` again before it ends.
    running: bool,
}

impl Partition {
    pub(crate) fn new(index: i32, log: Log) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Partition {
            index,
            log,
            high_watermark,
            flush: Mutex::new(FlushRequest::default()),
            flushed: watch::Sender::new(0),
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Writes a batch as it is, checking its header but not its records; see
    /// [`Log::append_shared`]. Not yet durable. Producers' batches go through
    /// [`Partition::append_batches`].
    pub fn append(&self, batch: &[u8]) -> Result<Appended> {
        Ok(self.log.append_shared(batch)?)
    }

    /// [`Partition::append`] for an asynchronous task: `None` when the append
    /// would have to roll the segment or wait for a lock held across an fsync;
    /// see [`Log::try_append_shared`].
    pub fn try_append(&self, batch: &[u8]) -> Result<Option<Appended>> {
        Ok(self.log.try_append_shared(batch)?)
    }

    /// Validates every batch of a producer's `records` (batches back to back,
    /// as a produce request carries them for one partition) and then appends
    /// them in order. Not yet durable.
    ///
    /// All are validated before the first is appended, so an invalid batch
    /// leaves the partition as it was, as in Kafka, which validates a
    /// partition's records whole before appending them. (An append can still
    /// fail part-way for reasons outside the bytes: a full disk, or an
    /// idempotent producer's sequence.) A retry of an idempotent producer's
    /// batch already in the log is answered with its original offsets.
    pub fn append_batches(&self, records: &[u8]) -> Result<AppendedBatches> {
        let appended = self.append_batches_from(records, &mut AppendProgress::default(), true)?;
        Ok(appended.expect("an append that may block always happens"))
    }

    /// [`Partition::append_batches`] for an asynchronous task: `None` when a
    /// batch would have to roll the segment or wait for a lock held across an
    /// fsync (see [`Log::try_append_shared`]). `progress` then says how far it
    /// got, and [`Partition::resume_append_batches`] goes on from there on a
    /// thread that may block. `progress` starts as `AppendProgress::default()`.
    pub fn try_append_batches(&self, records: &[u8], progress: &mut AppendProgress) -> Result<Option<AppendedBatches>> {
        self.append_batches_from(records, progress, false)
    }

    /// Finishes what [`Partition::try_append_batches`] left, with the same
    /// `records` and `progress`.
    pub fn resume_append_batches(&self, records: &[u8], progress: &mut AppendProgress) -> Result<AppendedBatches> {
        let appended = self.append_batches_from(records, progress, true)?;
        Ok(appended.expect("an append that may block always happens"))
    }

    fn append_batches_from(
        &self,
        records: &[u8],
        progress: &mut AppendProgress,
        may_block: bool,
    ) -> Result<Option<AppendedBatches>> {
        let checked = self.check_batches(records)?;
        // Validation is repeated when an append resumes (it is deterministic);
        // only batches not yet appended are appended.
        for c in checked.iter().skip(progress.batches_appended) {
            let appended = if may_block {
                self.log.append_verified(c.verified())?
            } else {
                match self.log.try_append_verified(c.verified())? {
                    Some(appended) => appended,
                    None => return Ok(None),
                }
            };
            progress.batches_appended += 1;
            progress.so_far.add(&appended, c.min_timestamp(), c.max_timestamp());
        }
        Ok(Some(progress.so_far))
    }

    /// Validates every batch of a producer's `records` as an append would
    /// (at least one batch; keys on a compacted topic; the max timestamp
    /// corrected), and answers each batch's bytes to store with its header:
    /// for partitions whose records live elsewhere (shared storage).
    pub fn checked_batches(&self, records: &[u8]) -> Result<Vec<(Vec<u8>, veltrix_log::batch::BatchHeader)>> {
        Ok(self
            .check_batches(records)?
            .iter()
            .map(|c| {
                let bytes = c.verified().bytes().to_vec();
                let mut header = c.validated.header;
                header.max_timestamp = c.max_timestamp();
                (bytes, header)
            })
            .collect())
    }

    /// Validates every batch of a producer's `records`, at least one.
    pub(crate) fn check_batches<'a>(&self, records: &'a [u8]) -> Result<Vec<Checked<'a>>> {
        let batch_bytes_max = self.log.config().batch_bytes_max as usize;
        let compacted = self.log.config().compaction.is_some();
        // One entry per batch, not per record. A batch whose max timestamp must
        // be corrected is copied; the others are appended from the request.
        let mut checked = Vec::with_capacity(1);
        for (batch, bytes) in validate::split(records).enumerate() {
            let invalid = |source| CoreError::InvalidBatch { batch, source };
            let validated = validate::validate(bytes.map_err(invalid)?, batch_bytes_max).map_err(invalid)?;
            if compacted {
                validate::require_keys(validated.verified.bytes(), &validated.header).map_err(invalid)?;
            }
            let copy = validated
                .needs_correction
                .then(|| validate::corrected(validated.verified.bytes(), &validated).into_owned());
            checked.push(Checked { validated, copy });
        }
        if checked.is_empty() {
            return Err(CoreError::InvalidBatch {
                batch: 0,
                source: validate::InvalidBatch::NoBatches,
            });
        }
        Ok(checked)
    }

    /// Blocks until everything below `next_offset` is durable (group commit), then
    /// tells waiting fetches that the high watermark moved.
    pub fn commit(&self, next_offset: i64) -> Result<()> {
        let outcome = self.log.wait_durable(next_offset);
        self.publish_high_watermark();
        Ok(outcome?)
    }

    /// [`Partition::commit`] for async callers: resolves once everything below
    /// `next_offset` is durable (or fails as `commit` would), without holding a
    /// thread while it waits. The flush is asked for when this is called, not
    /// when the future is first polled, so the waits of several partitions
    /// overlap however they are awaited. Needs a Tokio runtime.
    pub fn commit_async(self: &Arc<Self>, next_offset: i64) -> impl Future<Output = Result<()>> + use<> {
        let this = self.clone();
        let mut flushed = this.flushed.subscribe();
        this.flush_soon(next_offset);
        async move {
            loop {
                // Marked seen before the check: a round that ends after it wakes us.
                flushed.borrow_and_update();
                if let Some(outcome) = this.log.try_durable(next_offset) {
                    this.publish_high_watermark();
                    return Ok(outcome?);
                }
                this.flush_soon(next_offset);
                // The sender lives in `this`, which we hold: it cannot close.
                let _ = flushed.changed().await;
            }
        }
    }

    /// Starts making everything below `next_offset` durable without waiting for
    /// it: a flusher runs unless one already is. Readers see the batches once it
    /// is done (at once under a relaxed flush policy).
    pub fn flush_soon(self: &Arc<Self>, next_offset: i64) {
        if self.log.try_durable(next_offset).is_some() {
            self.publish_high_watermark();
            return;
        }
        let mut request = self.flush.lock().unwrap_or_else(|p| p.into_inner());
        request.requested = request.requested.max(next_offset);
        if request.running {
            return;
        }
        request.running = true;
        drop(request);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _unwinding = FlusherUnwinding(&this);
            this.flush_until_caught_up();
        });
    }

    /// The flusher: fsync rounds until nothing more is asked for, or until the
    /// log refuses (poisoned), which every waiter then sees for itself.
    fn flush_until_caught_up(&self) {
        loop {
            let target = {
                let mut request = self.flush.lock().unwrap_or_else(|p| p.into_inner());
                if self.log.try_durable(request.requested).is_some() {
                    // In the same critical section as the check: a waiter that
                    // asks after it starts a new flusher.
                    request.running = false;
                    drop(request);
                    // Made durable by someone else (a roll, a synchronous
                    // commit): the waiters that asked this flusher must still
                    // hear of it, or one that looked just before sleeps on.
                    self.flushed.send_modify(|round| *round = round.wrapping_add(1));
                    return;
                }
                request.requested
            };
            // Errors are the waiters' to report; the next check ends the loop.
            let _ = self.log.wait_durable(target);
            self.publish_high_watermark();
            self.flushed.send_modify(|round| *round = round.wrapping_add(1));
        }
    }

    /// Wakes fetches waiting on this partition if its high watermark moved,
    /// and produces waiting for their records to be durable
    /// ([`Partition::commit_async`]), whichever path made them so.
    pub fn publish_high_watermark(&self) {
        let hw = self.log.high_watermark();
        let moved = self.high_watermark.send_if_modified(|old| {
            let moved = *old != hw;
            *old = hw;
            moved
        });
        if moved {
            self.flushed.send_modify(|round| *round = round.wrapping_add(1));
        }
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }
}

/// A topic. Immutable: adding partitions replaces the `Topic` in the broker,
/// sharing the existing partitions.
#[derive(Debug)]
pub struct Topic {
    pub name: String,
    pub id: TopicId,
    pub config: TopicConfig,
    pub partitions: Vec<Arc<Partition>>,
    /// The duplicate window, on a topic that has one.
    pub dedup: Option<Arc<TopicDedup>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}

/// A flusher that panics is not running any more: the next waiter must be able
/// to start another, and the current ones must look again, or they would wait
/// forever.
struct FlusherUnwinding<'a>(&'a Partition);

impl Drop for FlusherUnwinding<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.flush.lock().unwrap_or_else(|p| p.into_inner()).running = false;
            self.0.flushed.send_modify(|round| *round = round.wrapping_add(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use veltrix_log::batch::build;
    use veltrix_log::sim::{SimClock, SimStorage};
    use veltrix_log::{Env, LogError};

    use super::Partition;
    use crate::broker::{Broker, BrokerConfig};
    use crate::catalog::TopicConfig;
    use crate::error::CoreError;

    fn partition(storage: &SimStorage, config: TopicConfig) -> (Broker, Arc<Partition>) {
        let env = Env::new(
            Arc::new(storage.clone()),
            Arc::new(SimClock::new(1_700_000_000_000)),
            64,
        );
        let broker = Broker::open(env, "/data", BrokerConfig::default()).unwrap();
        broker.create_topic("t", Some(1), config).unwrap();
        let p = broker.partition("t", 0).unwrap();
        (broker, p)
    }

    /// An append on an asynchronous task never rolls a segment (which fsyncs
    /// under the partition's lock): it stops before the batch that needs the
    /// roll, and the blocking continuation appends the rest, each batch once.
    #[test]
    fn an_append_that_must_not_block_stops_before_a_roll_and_resumes_where_it_stopped() {
        let storage = SimStorage::new();
        let config = TopicConfig {
            segment_bytes_max: Some(4096),
            batch_bytes_max: Some(2048),
            ..TopicConfig::default()
        };
        let (_broker, p) = partition(&storage, config);
        let one = crate::validate::tests::uncompressed(70);
        assert!(one.len() * 2 < 4096 && one.len() * 3 > 4096, "{} bytes", one.len());
        let records: Vec<u8> = std::iter::repeat_n(one.clone(), 3).flatten().collect();
        let mut progress = super::AppendProgress::default();
        assert!(p.try_append_batches(&records, &mut progress).unwrap().is_none());
        assert_eq!(p.log().log_end(), 140, "the batches before the roll were appended");
        assert_eq!(p.log().segment_count(), 1, "no roll on the task that must not block");
        let appended = p.resume_append_batches(&records, &mut progress).unwrap();
        assert_eq!((appended.base_offset, appended.next_offset), (0, 210));
        assert_eq!(p.log().segment_count(), 2);
        assert_eq!(p.log().log_end(), 210, "each batch appended once");
    }

    fn append(p: &Partition) -> i64 {
        p.append(&build::batch(build::Spec::default(), 100, 1))
            .unwrap()
            .next_offset
    }

    /// Waits at most 10 s: a waiter that is never woken fails the test instead
    /// of hanging it.
    async fn bounded<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .expect("a commit never finished")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_async_commits_share_fsyncs() {
        let storage = SimStorage::new();
        let (_broker, p) = partition(&storage, TopicConfig::default());
        storage.set_sync_delay(Some(Duration::from_millis(5)));
        let (syncs_before, _) = storage.sync_counts();
        let waiters: Vec<_> = (0..200)
            .map(|_| {
                let p = p.clone();
                tokio::spawn(async move {
                    let next = append(&p);
                    p.commit_async(next).await
                })
            })
            .collect();
        for w in waiters {
            bounded(w).await.unwrap().unwrap();
        }
        let syncs = storage.sync_counts().0 - syncs_before;
        assert!((1..50).contains(&syncs), "{syncs} fsyncs for 200 commits");
        assert_eq!(p.log().high_watermark(), 200);
        assert_eq!(*p.watch_high_watermark().borrow(), 200, "fetches were told");
    }

    /// A waiter that found its records not yet durable, while a synchronous
    /// commit made them so before it asked for a flush, slept until the next
    /// produce to the partition: the last produce to an idle partition could
    /// wait forever for its acknowledgement.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_commit_wakes_when_a_synchronous_commit_makes_its_records_durable() {
        let storage = SimStorage::new();
        let (_broker, p) = partition(&storage, TopicConfig::default());
        for _ in 0..300 {
            let next = append(&p);
            let waiter = tokio::spawn(p.commit_async(next));
            let other = p.clone();
            tokio::task::spawn_blocking(move || other.commit(next))
                .await
                .unwrap()
                .unwrap();
            bounded(waiter).await.unwrap().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fsync_fails_every_async_waiter_once() {
        let storage = SimStorage::new();
        let (_broker, p) = partition(&storage, TopicConfig::default());
        let next = append(&p);
        bounded(p.commit_async(next)).await.unwrap();
        storage.set_sync_delay(Some(Duration::from_millis(5)));
        storage.fail_syncs(true);
        let waits: Vec<_> = (0..20).map(|_| p.commit_async(append(&p))).collect();
        for w in waits {
            let err = bounded(w).await.unwrap_err();
            assert!(matches!(err, CoreError::Log(LogError::Poisoned { .. })), "{err}");
        }
        assert_eq!(storage.sync_counts().1, 1, "the failed fsync was not retried");
        assert_eq!(p.log().high_watermark(), next, "nothing after the failure is visible");
        // Later waiters fail at once, and what was durable before still is.
        assert!(bounded(p.commit_async(next + 1)).await.is_err());
        bounded(p.commit_async(next)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_soon_makes_batches_visible_without_a_waiter() {
        let storage = SimStorage::new();
        let (_broker, p) = partition(&storage, TopicConfig::default());
        let mut hw = p.watch_high_watermark();
        let mut next = 0;
        for _ in 0..5 {
            next = append(&p);
        }
        p.flush_soon(next);
        bounded(hw.wait_for(|hw| *hw == next)).await.unwrap();
        assert_eq!(p.log().high_watermark(), next);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relaxed_topic_answers_without_an_fsync() {
        let storage = SimStorage::new();
        let relaxed = TopicConfig {
            flush_interval_ms: Some(60_000),
            ..TopicConfig::default()
        };
        let (_broker, p) = partition(&storage, relaxed);
        let (syncs_before, _) = storage.sync_counts();
        let next = append(&p);
        bounded(p.commit_async(next)).await.unwrap();
        assert_eq!(storage.sync_counts().0, syncs_before);
        assert_eq!(*p.watch_high_watermark().borrow(), next);
    }
}
