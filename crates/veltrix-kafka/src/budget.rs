//! The memory budget for requests, and reading a request's body within it.
//!
//! Every request byte held in memory is covered by a permit of one semaphore of
//! `in_flight_bytes_max` permits, from before it is read until its response is
//! written. A small request (up to [`REQUEST_STEP_BYTES_MIN`]) reserves its
//! whole length before its body is read. A larger one reserves as its bytes
//! arrive, in steps that double from that size up to
//! [`REQUEST_STEP_BYTES_MAX`]: a client that announces 100 MiB and sends 8
//! bytes holds 64 KiB, not 100 MiB, and a client that stops halfway holds about
//! twice what it sent. The body must arrive within `request_body_ms_max` (time
//! spent waiting for the budget not counted), or the reservation is released
//! and the connection closed.
//!
//! Growing reservations could deadlock: requests holding part of what they
//! need, each waiting for the others' part. Two rules rule it out. A request
//! only grows while the budget has room now and no one waits for it; otherwise
//! it waits, first in line, for everything it still lacks. And the parts held
//! by bodies still arriving are capped by a second semaphore at
//! `in_flight_bytes_max - request_bytes_max`, so whoever waits first can always
//! be served from bytes that requests already read will give back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::metrics::KafkaMetrics;
use bytes::{BufMut, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A request at most this long reserves its whole length at once; a longer
/// one starts with this much.
pub const REQUEST_STEP_BYTES_MIN: usize = 64 << 10;
/// The largest step a growing reservation takes; the buffer of a request up to
/// this size is allocated at once (address space; pages are touched as bytes
/// arrive), a larger one grows with its reservation.
pub const REQUEST_STEP_BYTES_MAX: usize = 1 << 20;

/// The budget shared by every connection of a listener.
pub(crate) struct MemoryBudget {
    /// `in_flight_bytes_max` permits, one per byte.
    memory: Arc<Semaphore>,
    /// Permits for the part of `memory` held by bodies still arriving, so that
    /// the first waiter can always be served (see the module docs).
    arriving: Arc<Semaphore>,
    /// Requests waiting for `memory`: while any waits, no one grows past it.
    waiters: AtomicUsize,
    metrics: KafkaMetrics,
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the request's {received} of {len} bytes did not arrive within {limit_ms} ms")]
    TimedOut { received: usize, len: usize, limit_ms: u64 },
}

/// A request's share of the budget, counted in `veltrix_kafka_in_flight_bytes`
/// while held.
pub(crate) struct Budget {
    permit: Option<OwnedSemaphorePermit>,
    gauge: prometheus::IntGauge,
}

impl Budget {
    fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        self.gauge.add(more.num_permits() as i64);
        match &mut self.permit {
            Some(held) => held.merge(more),
            None => self.permit = Some(more),
        }
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes() as i64);
    }
}

impl MemoryBudget {
    /// A budget of `in_flight_bytes_max` bytes for requests of at most
    /// `request_bytes_max`.
    pub(crate) fn new(in_flight_bytes_max: usize, request_bytes_max: usize, metrics: KafkaMetrics) -> MemoryBudget {
        assert!(
            request_bytes_max <= in_flight_bytes_max,
            "request_bytes_max must fit in in_flight_bytes_max, or a largest request could never be read"
        );
        metrics
            .in_flight_bytes_max
            .set(i64::try_from(in_flight_bytes_max).unwrap_or(i64::MAX));
        MemoryBudget {
            memory: Arc::new(Semaphore::new(in_flight_bytes_max)),
            arriving: Arc::new(Semaphore::new(in_flight_bytes_max - request_bytes_max)),
            waiters: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Waits, in line, for `bytes` more for `budget`; returns how long it took.
    /// The semaphore behind the budget, for reservations other than request
    /// bodies (fetch responses).
    pub(crate) fn semaphore(&self) -> Arc<Semaphore> {
        self.memory.clone()
    }

    async fn wait_for(&self, budget: &mut Budget, bytes: usize) -> Duration {
        let waiting = Instant::now();
        self.waiters.fetch_add(1, Ordering::SeqCst);
        // `bytes` is at most `request_bytes_max`, which is below 2^31.
        let permit = self.memory.clone().acquire_many_owned(bytes as u32).await;
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        budget.add(permit.expect("semaphore never closed"));
        let waited = waiting.elapsed();
        if self.metrics.enabled() {
            self.metrics.memory_wait_seconds.observe(waited.as_secs_f64());
        }
        waited
    }

    /// `bytes` more for `budget` and `arriving`, if there is room now and no
    /// one waits.
    fn try_grow(&self, budget: &mut Budget, arriving: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> bool {
        if self.waiters.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let Ok(part) = self.arriving.clone().try_acquire_many_owned(bytes as u32) else {
            return false;
        };
        let Ok(more) = self.memory.clone().try_acquire_many_owned(bytes as u32) else {
            return false;
        };
        budget.add(more);
        match arriving {
            Some(held) => held.merge(part),
            None => *arriving = Some(part),
        }
        true
    }

    /// Reads a body of `len` bytes (at most `request_bytes_max`) with its share
    /// of the budget, within `limit` of reading time.
    pub(crate) async fn read_body<R: tokio::io::AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        len: usize,
        limit: Duration,
    ) -> Result<(BytesMut, Budget), BodyError> {
        let mut budget = Budget {
            permit: None,
            gauge: self.metrics.in_flight_bytes.clone(),
        };
        let mut arriving = None;
        let mut frame = BytesMut::with_capacity(len.min(REQUEST_STEP_BYTES_MAX));
        let mut deadline = Instant::now() + limit;
        if len <= REQUEST_STEP_BYTES_MIN {
            deadline += self.wait_for(&mut budget, len).await;
        }
        while frame.len() < len {
            if budget.bytes() == frame.len() {
                let step =
                    (len - budget.bytes()).min(budget.bytes().clamp(REQUEST_STEP_BYTES_MIN, REQUEST_STEP_BYTES_MAX));
                if !self.try_grow(&mut budget, &mut arriving, step) {
                    let rest = len - budget.bytes();
                    deadline += self.wait_for(&mut budget, rest).await;
                }
                frame.reserve(budget.bytes() - frame.len());
            }
            // Limited: the buffer may have room past the reservation, and the
            // bytes after `len` are the next request.
            let want = budget.bytes() - frame.len();
            let read = tokio::time::timeout_at(deadline, reader.read_buf(&mut (&mut frame).limit(want))).await;
            match read {
                Ok(Ok(0)) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    return Err(BodyError::TimedOut {
                        received: frame.len(),
                        len,
                        limit_ms: limit.as_millis() as u64,
                    });
                }
            }
        }
        // Whole: from here the bytes wait for their answer like any request's,
        // and no longer count against the part held by arriving bodies.
        drop(arriving);
        Ok((frame, budget))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use veltrix_core::Metrics;

    use super::{BodyError, MemoryBudget, REQUEST_STEP_BYTES_MIN};
    use crate::metrics::KafkaMetrics;

    async fn pair() -> (
        TcpStream,
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (reader, writer) = server.into_split();
        (client, reader, writer)
    }

    /// A body is read to its length and no further, whatever the buffer's spare
    /// room: the bytes after it belong to the next request.
    #[tokio::test]
    async fn a_body_is_read_to_its_length_and_no_further() {
        let (mut client, mut reader, _writer) = pair().await;
        let budget = MemoryBudget::new(1 << 20, 1 << 20, KafkaMetrics::new(&Metrics::new(true)));
        let first: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let sender = tokio::spawn(async move {
            // In pieces, the second body glued to the first.
            for chunk in first.chunks(7_777) {
                client.write_all(chunk).await.unwrap();
            }
            client.write_all(b"next").await.unwrap();
            client
        });
        let limit = Duration::from_secs(10);
        let (body, held) = budget.read_body(&mut reader, 300_000, limit).await.unwrap();
        assert_eq!(body.len(), 300_000);
        assert!(body.iter().enumerate().all(|(i, b)| *b == i as u8));
        assert_eq!(held.bytes(), 300_000, "a whole body holds its length");
        assert_eq!(&budget.read_body(&mut reader, 4, limit).await.unwrap().0[..], b"next");
        // The peer closes halfway through a body.
        let mut client = sender.await.unwrap();
        client.write_all(b"half").await.unwrap();
        drop(client);
        let Err(err) = budget.read_body(&mut reader, 8, limit).await else {
            panic!("a body cut short was read");
        };
        assert!(matches!(err, BodyError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof));
    }

    /// A body that stops arriving holds one step of the budget, not its
    /// announced length, and gives it back when its time is up.
    #[tokio::test]
    async fn a_stalled_body_holds_one_step_and_times_out() {
        let (mut client, mut reader, _writer) = pair().await;
        let metrics = KafkaMetrics::new(&Metrics::new(true));
        let budget = MemoryBudget::new(64 << 20, 32 << 20, metrics.clone());
        client.write_all(&[7u8; 8]).await.unwrap();
        let reading = budget.read_body(&mut reader, 32 << 20, Duration::from_millis(300));
        let err = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::pin!(reading);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            // Held while it waits: one step, not 32 MiB.
            loop {
                tokio::select! {
                    done = &mut reading => match done {
                        Ok(_) => panic!("a stalled body was read"),
                        Err(e) => return e,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                }
                let held = metrics.in_flight_bytes.get();
                assert!(held <= REQUEST_STEP_BYTES_MIN as i64, "holds {held} bytes");
                assert!(tokio::time::Instant::now() < deadline, "never timed out");
            }
        })
        .await
        .expect("the body timed out");
        assert!(matches!(err, BodyError::TimedOut { received: 8, .. }), "{err:?}");
        assert_eq!(metrics.in_flight_bytes.get(), 0, "the budget was given back");
        assert_eq!(budget.memory.available_permits(), 64 << 20);
        assert_eq!(budget.arriving.available_permits(), 32 << 20);
    }

    /// Large bodies arriving together on more connections than the budget
    /// holds at once all complete: partial reservations never wait on each
    /// other.
    #[tokio::test]
    async fn large_bodies_arriving_together_never_deadlock() {
        let len = 3 << 20;
        let budget = std::sync::Arc::new(MemoryBudget::new(4 << 20, len, KafkaMetrics::new(&Metrics::new(true))));
        let mut readers = Vec::new();
        for _ in 0..8 {
            let (mut client, mut reader, writer) = pair().await;
            tokio::spawn(async move {
                let body = vec![1u8; len];
                for chunk in body.chunks(100_000) {
                    client.write_all(chunk).await.unwrap();
                }
                client
            });
            let budget = budget.clone();
            readers.push(tokio::spawn(async move {
                let _writer = writer;
                let (body, _held) = budget
                    .read_body(&mut reader, len, Duration::from_secs(30))
                    .await
                    .unwrap();
                body.len()
            }));
        }
        for r in readers {
            let got = tokio::time::timeout(Duration::from_secs(20), r)
                .await
                .expect("no deadlock");
            assert_eq!(got.unwrap(), len);
        }
        assert_eq!(budget.memory.available_permits(), 4 << 20);
    }
}
