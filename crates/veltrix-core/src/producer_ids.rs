//! Producer ids for idempotent producers (Kafka's InitProducerId).
//!
//! Ids must never be handed out twice, across restarts included, or a new
//! producer could inherit an old one's sequence state and have its first batches
//! taken for duplicates. The broker reserves ids in blocks: before the first id of
//! a block is handed out, the end of the block is written durably to
//! `producer-ids`; after a restart allocation resumes at that end. A crash wastes
//! at most the rest of one block.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use veltrix_log::checkpoint;
use veltrix_log::io::Storage;

use crate::error::{CoreError, Result};

/// The checkpoint holding the end of the reserved block.
pub(crate) const PRODUCER_IDS_FILE: &str = "producer-ids";
/// Ids reserved per durable write.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug)]
struct Block {
    next: i64,
    end: i64,
}

/// Allocates producer ids; one per broker.
#[derive(Debug)]
pub(crate) struct ProducerIds {
    dir: PathBuf,
    block: Mutex<Block>,
}

impl ProducerIds {
    pub(crate) fn open(storage: &dyn Storage, dir: &Path) -> Result<ProducerIds> {
        let start = checkpoint::read_checkpoint(storage, dir, PRODUCER_IDS_FILE)?.unwrap_or(0);
        Ok(ProducerIds {
            dir: dir.to_path_buf(),
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    /// The next unused id; writes a new block reservation first when the current
    /// one is used up. A failed write hands out nothing.
    pub(crate) fn allocate(&self, storage: &dyn Storage) -> Result<i64> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.next >= block.end {
            let end = block
                .next
                .checked_add(PRODUCER_ID_BLOCK)
                .filter(|e| *e <= veltrix_log::batch::BASE_OFFSET_MAX)
                .ok_or_else(|| CoreError::LimitReached("every producer id has been handed out".into()))?;
            checkpoint::write_checkpoint(storage, &self.dir, PRODUCER_IDS_FILE, end).map_err(|e| CoreError::Io {
                op: "write",
                path: self.dir.join(PRODUCER_IDS_FILE),
                source: e,
            })?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use veltrix_log::sim::SimStorage;

    use super::*;

    #[test]
    fn ids_are_unique_across_restarts_and_crashes() {
        let storage = SimStorage::new();
        let dir = PathBuf::from("/data");
        storage.create_dir_all(&dir).unwrap();
        let mut seen = std::collections::HashSet::new();
        for round in 0..4u64 {
            let ids = ProducerIds::open(&storage, &dir).unwrap();
            for _ in 0..(PRODUCER_ID_BLOCK + 7) {
                let id = ids.allocate(&storage).unwrap();
                assert!(seen.insert(id), "id {id} handed out twice (round {round})");
            }
            storage.crash(round % 2 == 0, round);
        }
    }

    #[test]
    fn a_failed_reservation_hands_out_nothing() {
        let storage = SimStorage::new();
        let dir = PathBuf::from("/data");
        storage.create_dir_all(&dir).unwrap();
        let ids = ProducerIds::open(&storage, &dir).unwrap();
        storage.fail_syncs(true);
        assert!(ids.allocate(&storage).is_err());
        storage.fail_syncs(false);
        assert_eq!(ids.allocate(&storage).unwrap(), 0);
    }
}
