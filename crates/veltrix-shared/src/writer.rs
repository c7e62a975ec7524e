//! [`Writer`]: batches for any partitions gathered into one object, written,
//! then committed in one catalog transaction. Objects start at most once per
//! `flush_interval_ms` (sooner only when one reaches `flush_bytes_max` /
//! `flush_batches_max`): a batch that finds the writer idle for an interval
//! is written at once with whatever else is queued, and one that comes
//! sooner waits for the interval since the last object began. So the
//! interval bounds both a batch's wait and the PUTs per second, and a
//! trickle of batches is not delayed by it. Each caller is
//! answered with its batch's offsets only after the commit; when the PUT or
//! the commit fails or times out, every batch of the flush gets a retriable
//! error and nothing is acknowledged.
//!
//! Objects are written one at a time and committed one at a time, in the
//! order written, on a task of their own: the next object fills and is
//! written while the current one commits, and a producer's batches are
//! committed in the order they came (an idempotent producer's sequences
//! depend on it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::catalog::{Appended, BatchEntry, Catalog, ObjectCommit, ProducerStamp};
use crate::error::{Error, Result};
use crate::limits::WriterConfig;
use crate::store::{object_key, store_unavailable};

/// A batch to append.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub topic: Arc<str>,
    pub partition: i32,
    /// Records in the batch (its `last_offset_delta + 1`).
    pub record_count: i32,
    pub max_timestamp: i64,
    pub producer: Option<ProducerStamp>,
    /// The batch as stored and served back; opaque to this crate.
    pub bytes: Bytes,
}

struct Pending {
    request: AppendRequest,
    arrived: Instant,
    answer: oneshot::Sender<Result<Appended>>,
    /// Its bytes' share of `buffered_bytes_max`, returned when answered.
    _room: OwnedSemaphorePermit,
}

/// Counters of a writer's work.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub objects_written: AtomicU64,
    pub bytes_written: AtomicU64,
    pub batches_committed: AtomicU64,
    pub flushes_failed: AtomicU64,
    /// Sum of the flushes' times from their first batch's arrival to the
    /// commit, in microseconds.
    pub flush_micros_total: AtomicU64,
}

/// A batch queued by [`Writer::submit`]: resolves to its offsets once
/// committed, or to the error that failed its flush.
pub struct Submitted(oneshot::Receiver<Result<Appended>>);

impl std::future::Future for Submitted {
    type Output = Result<Appended>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

/// The write path. Cheap to share behind an `Arc`; [`Writer::close`] flushes
/// what it holds and stops.
pub struct Writer {
    sender: mpsc::Sender<Pending>,
    room: Arc<Semaphore>,
    config: Arc<WriterConfig>,
    stats: Arc<WriterStats>,
    task: JoinHandle<()>,
}

impl Writer {
    /// Starts the flusher task on the current runtime.
    pub fn start<C: Catalog>(config: WriterConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Writer> {
        config.validate()?;
        let config = Arc::new(config);
        let (sender, receiver) = mpsc::channel(config.pending_appends_max);
        let stats = Arc::new(WriterStats::default());
        let flusher = Flusher {
            config: config.clone(),
            catalog,
            store,
            stats: stats.clone(),
            sequence: 0,
            last_start: None,
        };
        let task = tokio::spawn(flusher.run(receiver));
        Ok(Writer {
            sender,
            room: Arc::new(Semaphore::new(config.buffered_bytes_max)),
            config,
            stats,
            task,
        })
    }

    /// Appends one batch; answers its offsets once they are committed.
    pub async fn append(&self, request: AppendRequest) -> Result<Appended> {
        self.submit(request).await?.await
    }

    /// Hands one batch to the flusher and returns once it is queued, with the
    /// answer to wait for. Batches submitted one after another (each awaited
    /// before the next) are committed in that order, the same flush or a
    /// later one: what a producer's consecutive batches need, without waiting
    /// for one's commit before queueing the next.
    pub async fn submit(&self, request: AppendRequest) -> Result<Submitted> {
        let len = request.bytes.len();
        if len > self.config.batch_bytes_max || len == 0 {
            return Err(Error::BatchTooLarge {
                bytes: len,
                max: self.config.batch_bytes_max,
            });
        }
        let wait = Duration::from_millis(self.config.buffer_wait_ms);
        let deadline = Instant::now() + wait;
        let room = tokio::time::timeout_at(deadline, self.room.clone().acquire_many_owned(len as u32))
            .await
            .map_err(|_| Error::Busy {
                limit: "buffered_bytes_max",
                waited: wait,
            })?
            .map_err(|_| Error::Closed)?;
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            request,
            arrived: Instant::now(),
            answer,
            _room: room,
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        self.sender
            .send_timeout(pending, remaining)
            .await
            .map_err(|e| match e {
                mpsc::error::SendTimeoutError::Timeout(_) => Error::Busy {
                    limit: "pending_appends_max",
                    waited: wait,
                },
                mpsc::error::SendTimeoutError::Closed(_) => Error::Closed,
            })?;
        Ok(Submitted(answered))
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Flushes what was accepted, answers it, and stops.
    pub async fn close(self) {
        drop(self.sender);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "the writer's flusher failed");
        }
    }
}

struct Flusher<C> {
    config: Arc<WriterConfig>,
    catalog: Arc<C>,
    store: Arc<dyn ObjectStore>,
    stats: Arc<WriterStats>,
    sequence: u64,
    /// When the last object's gathering ended: the next starts an interval later.
    last_start: Option<Instant>,
}

/// An object written to the bucket, on its way to its commit.
struct Written {
    commit: ObjectCommit,
    flush: Vec<Pending>,
}

impl<C: Catalog> Flusher<C> {
    /// Gathers and writes objects one after another; their commits run on a
    /// task of their own, one at a time in the order written, so the next
    /// object's gathering and PUT overlap the current one's commit. At most
    /// one written object waits for its commit beside the one committing.
    async fn run(mut self, mut receiver: mpsc::Receiver<Pending>) {
        let (to_commit, written) = mpsc::channel::<Written>(1);
        let committer = tokio::spawn(commit_in_order(
            self.config.clone(),
            self.catalog.clone(),
            self.stats.clone(),
            written,
        ));
        let mut carried: Option<Pending> = None;
        loop {
            let first = match carried.take() {
                Some(p) => p,
                None => match receiver.recv().await {
                    Some(p) => p,
                    None => break,
                },
            };
            let (flush, next) = self.gather(first, &mut receiver).await;
            carried = next;
            match self.write(&flush).await {
                Ok(commit) => {
                    if let Err(mpsc::error::SendError(w)) = to_commit.send(Written { commit, flush }).await {
                        answer_all(w.flush, &Error::Closed);
                    }
                }
                Err(e) => {
                    self.stats.flushes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, batches = flush.len(), "flush failed; nothing acknowledged");
                    answer_all(flush, &e);
                }
            }
        }
        drop(to_commit);
        if let Err(e) = committer.await {
            tracing::error!(error = %e, "the writer's committer failed");
        }
    }

    /// The batches of one flush: `first` and those that come until an
    /// interval has passed since the last flush began (at once when it has,
    /// taking what is already queued), or until a limit is reached; a batch
    /// that would pass `flush_bytes_max` is carried to the next flush.
    async fn gather(
        &mut self,
        first: Pending,
        receiver: &mut mpsc::Receiver<Pending>,
    ) -> (Vec<Pending>, Option<Pending>) {
        let deadline = flush_deadline(self.last_start, first.arrived, self.config.flush_interval());
        let gathered = self.gather_until(deadline, first, receiver).await;
        self.last_start = Some(Instant::now());
        gathered
    }

    async fn gather_until(
        &self,
        deadline: Instant,
        first: Pending,
        receiver: &mut mpsc::Receiver<Pending>,
    ) -> (Vec<Pending>, Option<Pending>) {
        let mut bytes = first.request.bytes.len();
        let mut flush = vec![first];
        while flush.len() < self.config.flush_batches_max {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(p)) if bytes + p.request.bytes.len() > self.config.flush_bytes_max => {
                    return (flush, Some(p));
                }
                Ok(Some(p)) => {
                    bytes += p.request.bytes.len();
                    flush.push(p);
                }
                Ok(None) | Err(_) => break,
            }
        }
        (flush, None)
    }

    /// The flush's batches as one object in the bucket: what to commit.
    async fn write(&mut self, flush: &[Pending]) -> Result<ObjectCommit> {
        let size: usize = flush.iter().map(|p| p.request.bytes.len()).sum();
        let mut body = BytesMut::with_capacity(size);
        let mut batches = Vec::with_capacity(flush.len());
        for p in flush {
            let r = &p.request;
            batches.push(BatchEntry {
                topic: r.topic.clone(),
                partition: r.partition,
                record_count: r.record_count,
                max_timestamp: r.max_timestamp,
                producer: r.producer,
                byte_start: body.len() as u64,
                byte_len: r.bytes.len() as u32,
                crc32c: crc32c::crc32c(&r.bytes),
            });
            body.extend_from_slice(&r.bytes);
        }
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.sequence += 1;
        let key = object_key(&self.config.key_prefix, &self.config.writer_id, unix_ms, self.sequence);
        let body: Bytes = body.freeze();
        let put_timeout = Duration::from_millis(self.config.put_timeout_ms);
        let path = Path::from(key.as_str());
        tokio::time::timeout(put_timeout, self.store.put(&path, PutPayload::from(body)))
            .await
            .map_err(|_| Error::StoreUnavailable(format!("PUT timed out after {put_timeout:?}")))?
            .map_err(|e| store_unavailable(&e))?;
        self.stats.objects_written.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(size as u64, Ordering::Relaxed);
        Ok(ObjectCommit {
            key,
            size: size as u64,
            batches,
        })
    }
}

/// When a flush whose first batch arrived at `arrived` ends its gathering:
/// an interval after the last flush began, and never before `arrived` (a
/// writer idle for an interval flushes at once).
fn flush_deadline(last_start: Option<Instant>, arrived: Instant, interval: Duration) -> Instant {
    last_start.map_or(arrived, |s| (s + interval).max(arrived))
}

/// Every batch of a flush answered with `e`; nothing of it acknowledged.
fn answer_all(flush: Vec<Pending>, e: &Error) {
    for pending in flush {
        let _ = pending.answer.send(Err(e.clone()));
    }
}

/// Commits the written objects one at a time, in the order written, and
/// answers their batches.
async fn commit_in_order<C: Catalog>(
    config: Arc<WriterConfig>,
    catalog: Arc<C>,
    stats: Arc<WriterStats>,
    mut written: mpsc::Receiver<Written>,
) {
    let commit_timeout = Duration::from_millis(config.commit_timeout_ms);
    while let Some(Written { commit, flush }) = written.recv().await {
        let started = flush.first().map(|p| p.arrived);
        let outcome = tokio::time::timeout(commit_timeout, catalog.commit(&commit))
            .await
            .map_err(|_| Error::CatalogUnavailable(format!("commit timed out after {commit_timeout:?}")))
            .and_then(|r| r);
        match outcome {
            Ok(outcomes) => {
                let committed = outcomes.iter().filter(|o| o.is_ok()).count();
                stats.batches_committed.fetch_add(committed as u64, Ordering::Relaxed);
                for (pending, outcome) in flush.into_iter().zip(outcomes) {
                    let _ = pending.answer.send(outcome);
                }
            }
            Err(e) => {
                stats.flushes_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, batches = flush.len(), "commit failed; nothing acknowledged");
                answer_all(flush, &e);
            }
        }
        if let Some(started) = started {
            let micros = started.elapsed().as_micros() as u64;
            stats.flush_micros_total.fetch_add(micros, Ordering::Relaxed);
        }
    }
}
