//! The merger: small objects rewritten into one larger one, so a trickle of
//! traffic (one object per flush interval, however little it holds) does
//! not leave the bucket with millions of tiny objects to list, cache and
//! GET one by one.
//!
//! A round takes the oldest committed objects under `small_bytes_max` that
//! still hold batches, up to `merged_bytes_max` in all (at least two, or
//! there is nothing to gain), reads them whole, checks each batch's CRC32C,
//! writes their batches as one object ordered by topic, partition and
//! offset (a partition's batches side by side), then in one transaction
//! points every batch still in its old object at its new place and releases
//! the old objects. The collector deletes those once no batch needs them
//! and their grace period has passed, so a read that looked a batch up in
//! its old object finishes. A batch removed meanwhile (retention, a deleted
//! topic) is simply not moved; a batch whose bytes fail their check stays
//! where it is, and so does its object.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::catalog::{Catalog, Moved};
use crate::error::{Error, Result};
use crate::limits::MergeConfig;
use crate::store::{object_key, store_unavailable};

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MergeReport {
    /// Small objects rewritten (released for the collector).
    pub objects_merged: usize,
    /// Batches pointed at the merged object.
    pub batches_moved: usize,
    /// The merged object's size.
    pub bytes: u64,
    /// Batches left where they were: their bytes failed their check.
    pub batches_damaged: usize,
}

pub struct Merger<C> {
    catalog: Arc<C>,
    store: Arc<dyn ObjectStore>,
    config: MergeConfig,
    sequence: std::sync::atomic::AtomicU64,
}

impl<C: Catalog> Merger<C> {
    pub fn new(config: MergeConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Self> {
        config.validate()?;
        Ok(Merger {
            catalog,
            store,
            config,
            sequence: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// One round; nothing to do when merging is off or fewer than two small
    /// objects are old enough.
    pub async fn run_once(&self) -> Result<MergeReport> {
        let mut report = MergeReport::default();
        if self.config.small_bytes_max == 0 {
            return Ok(report);
        }
        let small = self
            .catalog
            .small_objects(
                self.config.small_bytes_max,
                self.config.age_min_ms as i64,
                self.config.objects_per_round_max,
            )
            .await?;
        let mut total = 0;
        let chosen: Vec<String> = small
            .into_iter()
            .take_while(|(_, size)| {
                total += size;
                total <= self.config.merged_bytes_max
            })
            .map(|(key, _)| key)
            .collect();
        if chosen.len() < 2 {
            return Ok(report);
        }
        let mut batches = self.catalog.batches_in(&chosen).await?;
        batches.sort_by(|a, b| (&a.topic, a.partition, a.base_offset).cmp(&(&b.topic, b.partition, b.base_offset)));
        let bodies = self.fetch(&chosen).await?;
        let mut body = BytesMut::new();
        let mut moves = Vec::with_capacity(batches.len());
        for b in &batches {
            let start = b.byte_start as usize;
            let bytes = bodies
                .get(&b.object_key)
                .and_then(|o| o.get(start..start + b.byte_len as usize))
                .filter(|bytes| crc32c::crc32c(bytes) == b.crc32c);
            let Some(bytes) = bytes else {
                tracing::warn!(key = %b.object_key, topic = %b.topic, partition = b.partition,
                    offset = b.base_offset, "a batch failed its check; left where it is");
                report.batches_damaged += 1;
                continue;
            };
            moves.push(Moved {
                topic: b.topic.clone(),
                partition: b.partition,
                base_offset: b.base_offset,
                from_key: b.object_key.clone(),
                byte_start: body.len() as u64,
            });
            body.extend_from_slice(bytes);
        }
        if moves.is_empty() {
            return Ok(report);
        }
        let size = body.len() as u64;
        let key = self.put(body.freeze()).await?;
        report.batches_moved = self.catalog.rewrite(&key, size, &moves, &chosen).await?;
        if report.batches_moved > 0 {
            report.objects_merged = chosen.len();
            report.bytes = size;
        }
        Ok(report)
    }

    /// The chosen objects, whole (they are small: `merged_bytes_max` in all).
    async fn fetch(&self, keys: &[String]) -> Result<HashMap<String, Bytes>> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let mut bodies = HashMap::with_capacity(keys.len());
        for key in keys {
            let path = Path::from(key.as_str());
            let body = tokio::time::timeout(timeout, async { self.store.get(&path).await?.bytes().await })
                .await
                .map_err(|_| Error::StoreUnavailable(format!("GET of {key} timed out after {timeout:?}")))?;
            match body {
                Ok(b) => {
                    bodies.insert(key.clone(), b);
                }
                // Its batches fail their check below and stay put.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_unavailable(&e)),
            }
        }
        Ok(bodies)
    }

    async fn put(&self, body: Bytes) -> Result<String> {
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let sequence = self.sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = object_key(&self.config.key_prefix, &self.config.writer_id, unix_ms, sequence);
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        tokio::time::timeout(
            timeout,
            self.store.put(&Path::from(key.as_str()), PutPayload::from(body)),
        )
        .await
        .map_err(|_| Error::StoreUnavailable(format!("PUT timed out after {timeout:?}")))?
        .map_err(|e| store_unavailable(&e))?;
        Ok(key)
    }
}
