//! Memory for fetch responses: counted in the broker's memory budget, capped to
//! a share of it, held until the response is written.
//!
//! A fetch response is sized by the client (`max_bytes`), not by what it sent,
//! so the request's own reservation says nothing about it. Before a fetch reads
//! from disk it reserves what it may return, first from the fetch share (half of
//! `in_flight_bytes_max`) and then from the budget that request bodies use too;
//! it gives back what it did not fill, and the server holds the rest until the
//! response's last byte is written. A fetch that does not fit waits, as a
//! produce does, instead of failing.
//!
//! The share keeps fetchers that never read their answers from taking the whole
//! budget: they can hold at most half of it, so produce and metadata requests
//! are still read. Each connection has at most one fetch response in memory,
//! since a fetch runs only after every earlier response of its connection is
//! written, and a connection whose answers are not being read stops being read
//! itself (its next request waits for the unwritten one).

use std::sync::{Arc, Mutex};

use crate::metrics::KafkaMetrics;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The fetch share and the whole budget, shared by every connection of a
/// listener.
#[derive(Debug, Clone)]
pub(crate) struct ResponseMemory {
    /// Every byte of fetch responses held now: at most half of the budget.
    share: Arc<Semaphore>,
    /// The budget request bodies are read into, `in_flight_bytes_max`.
    budget: Arc<Semaphore>,
    /// `share`'s size, so a reservation never asks for more than exists.
    share_bytes: usize,
}

/// Bytes reserved for one response, in both semaphores, counted in
/// `veltrix_kafka_in_flight_bytes` while held.
#[derive(Debug)]
pub(crate) struct Reservation {
    share: OwnedSemaphorePermit,
    budget: OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
}

impl ResponseMemory {
    /// `budget` is the listener's memory budget of `budget_bytes` bytes.
    pub(crate) fn new(budget: Arc<Semaphore>, budget_bytes: usize) -> ResponseMemory {
        let share_bytes = (budget_bytes / 2).max(1);
        ResponseMemory {
            share: Arc::new(Semaphore::new(share_bytes)),
            budget,
            share_bytes,
        }
    }

    /// Waits until `bytes` (at most the share) fit, and reserves them.
    pub(crate) async fn reserve(&self, bytes: usize, metrics: &KafkaMetrics) -> Reservation {
        let n = permits(bytes.min(self.share_bytes));
        let share = match self.share.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                metrics.fetch_memory_waits.inc();
                self.share.clone().acquire_many_owned(n).await.expect("never closed")
            }
        };
        // Under the share, so at most half of the budget is ever waited for here.
        let budget = self.budget.clone().acquire_many_owned(n).await.expect("never closed");
        metrics.in_flight_bytes.add(i64::from(n));
        Reservation {
            share,
            budget,
            gauge: metrics.in_flight_bytes.clone(),
        }
    }

    /// Makes `r` hold what a response read: `bytes`, grown within the share
    /// when they are more than reserved (the one batch a fetch returns whole
    /// even when it is larger than asked for, KIP-74), the rest given back.
    pub(crate) async fn fit(&self, r: &mut Reservation, bytes: usize) {
        if bytes > r.bytes() {
            let more = bytes - r.bytes();
            self.grow(r, more).await;
        }
        r.shrink_to(bytes);
    }

    /// Grows `r` by up to `bytes` more, within the share.
    async fn grow(&self, r: &mut Reservation, bytes: usize) {
        let room = self.share_bytes.saturating_sub(r.bytes());
        let n = permits(bytes.min(room));
        if n == 0 {
            return;
        }
        let share = self.share.clone().acquire_many_owned(n).await.expect("never closed");
        let budget = self.budget.clone().acquire_many_owned(n).await.expect("never closed");
        r.share.merge(share);
        r.budget.merge(budget);
        r.gauge.add(i64::from(n));
    }
}

impl Reservation {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.share.num_permits()
    }

    /// Gives back everything above `bytes`.
    pub(crate) fn shrink_to(&mut self, bytes: usize) {
        let excess = self.bytes().saturating_sub(bytes);
        if excess > 0 {
            drop(self.share.split(excess));
            drop(self.budget.split(excess));
            self.gauge.sub(excess as i64);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.gauge.sub(self.bytes() as i64);
    }
}

fn permits(bytes: usize) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// Where a handler leaves the reservation its response needs; the server moves
/// it next to the response, to be released once that is written.
#[derive(Debug, Default, Clone)]
pub(crate) struct Held(Arc<Mutex<Option<Reservation>>>);

impl Held {
    pub(crate) fn put(&self, r: Reservation) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
    }

    pub(crate) fn take(&self) -> Option<Reservation> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}
