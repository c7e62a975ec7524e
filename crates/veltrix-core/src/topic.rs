//! Topics and partitions as the adapters see them.

use std::sync::Arc;

use tokio::sync::watch;
use veltrix_log::{Appended, Log};

use crate::catalog::TopicConfig;
use crate::error::Result;

/// A topic's id: random, never reused (Kafka's topic UUID).
pub type TopicId = [u8; 16];

/// One partition: its log, and a channel that carries its high watermark to
/// whoever waits for new records.
#[derive(Debug)]
pub struct Partition {
    pub index: i32,
    log: Log,
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    pub(crate) fn new(index: i32, log: Log) -> Partition {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Partition {
            index,
            log,
            high_watermark,
        }
    }

    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Writes a producer's batch; see [`Log::append`]. Not yet durable.
    pub fn append(&self, batch: &mut [u8]) -> Result<Appended> {
        Ok(self.log.append(batch)?)
    }

    /// Blocks until everything below `next_offset` is durable (group commit), then
    /// tells waiting fetches that the high watermark moved.
    pub fn commit(&self, next_offset: i64) -> Result<()> {
        let outcome = self.log.wait_durable(next_offset);
        self.publish_high_watermark();
        Ok(outcome?)
    }

    /// Wakes fetches waiting on this partition if its high watermark moved.
    pub fn publish_high_watermark(&self) {
        let hw = self.log.high_watermark();
        self.high_watermark.send_if_modified(|old| {
            let moved = *old != hw;
            *old = hw;
            moved
        });
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
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}
