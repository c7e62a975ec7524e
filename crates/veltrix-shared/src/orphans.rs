//! The orphan collector: objects written but never committed (the writer
//! died, or its commit failed) are deleted once older than `grace_ms`; and
//! so are objects no batch refers to any more (retention removed their
//! batches, or their topics were deleted), `grace_ms` after their release.
//!
//! The catalog's object table decides between a late commit and the
//! collector: each inserts the object's key, the commit as committed, the
//! collector as an orphan, and the primary key lets only the first in. So a
//! collected object can never be committed afterwards, and a committed one
//! is never collected.
//!
//! Each round also forgets rows nobody needs any more: idempotent
//! producers' states idle for `producer_idle_ms`, and orphans' claims
//! `orphan_claims_kept_ms` after they were made.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use object_store::ObjectStore;
use object_store::path::Path;

use crate::catalog::{Catalog, ObjectState};
use crate::error::{Error, Result};
use crate::limits::CollectorConfig;
use crate::store::objects_prefix;

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CollectReport {
    /// Objects listed.
    pub listed: usize,
    /// Objects older than the grace period and not committed.
    pub orphans: usize,
    /// Objects deleted from the bucket.
    pub deleted: usize,
    /// Of those, objects whose batches were all released.
    pub dropped: usize,
    /// Idle producers' states forgotten (one per producer and partition).
    pub producers_expired: u64,
    /// Old orphans' claims pruned.
    pub claims_pruned: u64,
}

pub struct OrphanCollector<C> {
    catalog: Arc<C>,
    store: Arc<dyn ObjectStore>,
    config: CollectorConfig,
}

impl<C: Catalog> OrphanCollector<C> {
    pub fn new(config: CollectorConfig, catalog: Arc<C>, store: Arc<dyn ObjectStore>) -> Result<Self> {
        config.validate()?;
        Ok(OrphanCollector { catalog, store, config })
    }

    /// One round: lists the objects, claims the old uncommitted ones and
    /// deletes them, within the round's limits.
    pub async fn run_once(&self) -> Result<CollectReport> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis() as i64;
        let cutoff = now_ms - self.config.grace_ms as i64;
        let prefix = Path::from(objects_prefix(&self.config.key_prefix));
        let mut listing = self.store.list(Some(&prefix));
        let mut report = CollectReport::default();
        let mut old: Vec<(String, u64)> = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::StoreUnavailable(e.to_string()))?;
            report.listed += 1;
            if meta.last_modified.timestamp_millis() < cutoff {
                old.push((meta.location.to_string(), meta.size));
            }
            if report.listed >= self.config.listed_per_round_max || old.len() >= self.config.deletes_per_round_max {
                break;
            }
        }
        drop(listing);
        self.collect_dropped(&mut report).await?;
        self.forget_rows(&mut report).await?;
        if old.is_empty() {
            return Ok(report);
        }
        let keys: Vec<String> = old.iter().map(|(k, _)| k.clone()).collect();
        let states = self.catalog.object_states(&keys).await?;
        let unknown: Vec<(String, u64)> = old.iter().filter(|(k, _)| !states.contains_key(k)).cloned().collect();
        let mut doomed = self.catalog.claim_orphans(&unknown).await?;
        // Claimed by an earlier round whose delete did not happen.
        doomed.extend(
            states
                .iter()
                .filter(|(_, s)| **s == ObjectState::Orphan)
                .map(|(k, _)| k.clone()),
        );
        report.orphans = doomed.len();
        report.deleted += self.delete(&doomed).await.len();
        // Dropped by an earlier round whose delete did not happen.
        let dropped: Vec<String> = states
            .iter()
            .filter(|(_, s)| **s == ObjectState::Dropped)
            .map(|(k, _)| k.clone())
            .collect();
        self.delete_and_forget(&dropped, &mut report).await?;
        Ok(report)
    }

    /// Deletes the objects released at least `grace_ms` ago that no batch
    /// needs any more, and forgets them.
    async fn collect_dropped(&self, report: &mut CollectReport) -> Result<()> {
        let dropped = self
            .catalog
            .drop_released(self.config.grace_ms as i64, self.config.deletes_per_round_max)
            .await?;
        self.delete_and_forget(&dropped, report).await
    }

    /// Idle producers' states and old orphans' claims, within the round's
    /// limit.
    async fn forget_rows(&self, report: &mut CollectReport) -> Result<()> {
        let rows_max = self.config.rows_per_round_max;
        report.producers_expired = self
            .catalog
            .expire_producers(self.config.producer_idle_ms as i64, rows_max)
            .await?;
        report.claims_pruned = self
            .catalog
            .prune_orphan_claims(self.config.orphan_claims_kept_ms as i64, rows_max)
            .await?;
        Ok(())
    }

    async fn delete_and_forget(&self, dropped: &[String], report: &mut CollectReport) -> Result<()> {
        if dropped.is_empty() {
            return Ok(());
        }
        let deleted = self.delete(dropped).await;
        report.deleted += deleted.len();
        report.dropped += deleted.len();
        self.catalog.forget(&deleted).await
    }

    /// Deletes objects from the bucket; answers those gone (a missing one
    /// is gone). One that fails stays for the next round.
    async fn delete(&self, keys: &[String]) -> Vec<String> {
        let mut gone = Vec::with_capacity(keys.len());
        for key in keys {
            match self.store.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => gone.push(key.clone()),
                Err(e) => tracing::warn!(%key, error = %e, "object not deleted; next round"),
            }
        }
        gone
    }
}
