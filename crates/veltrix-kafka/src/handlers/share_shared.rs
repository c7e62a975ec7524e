//! The share group APIs on shared storage (`crate::shared_share`): what
//! differs is only where a share-partition is served (by its partition's
//! leader), what it is read from, and what wakes a waiting ShareFetch.

use std::sync::Arc;

use tokio::sync::watch;
use veltrix_core::share::{PartitionAcks, ShareError, ShareSource};
use veltrix_core::{Broker, TopicId};

use super::Ctx;
use crate::shared::SharedStorage;
use crate::shared_share::{SharedSource, not_leader};

/// The broker leading a partition, as share answers name it (this broker
/// on local storage).
pub(super) fn leader_id(ctx: &Ctx, topic: &TopicId, partition: i32) -> i32 {
    let Some(shared) = &ctx.config.shared else {
        return 0;
    };
    match ctx.broker.topic_by_id(topic) {
        Some(t) => shared.node().leader_of(&t.name, partition),
        None => shared.broker_id(),
    }
}

/// What a partition's share-partitions read from: its log on local
/// storage; on shared storage the node's reads, on the partition's leader
/// only. Blocks on shared storage: called on the blocking pool.
pub(super) fn source(
    broker: &Broker,
    shared: Option<&SharedStorage>,
    topic: &TopicId,
    partition: i32,
) -> Result<Arc<dyn ShareSource>, ShareError> {
    let t = broker.topic_by_id(topic).ok_or(ShareError::UnknownTopicOrPartition)?;
    let part = usize::try_from(partition)
        .ok()
        .and_then(|i| t.partitions.get(i).cloned())
        .ok_or(ShareError::UnknownTopicOrPartition)?;
    let Some(shared) = shared else {
        return Ok(part as Arc<dyn ShareSource>);
    };
    let leader = shared.node().leader_of(&t.name, partition);
    if leader != shared.broker_id() {
        return Err(not_leader(&t.name, partition, leader));
    }
    let handle = tokio::runtime::Handle::current();
    Ok(Arc::new(SharedSource::open(
        shared.node().clone(),
        handle,
        &t.name,
        partition,
    )?))
}

/// What moves when a partition gets new records.
pub(super) fn watch_end(ctx: &Ctx, topic: &TopicId, partition: i32) -> Option<watch::Receiver<i64>> {
    let t = ctx.broker.topic_by_id(topic)?;
    if let Some(shared) = &ctx.config.shared {
        return Some(shared.node().watch(&t.name, partition));
    }
    Some(
        t.partitions
            .get(usize::try_from(partition).ok()?)?
            .watch_high_watermark(),
    )
}

/// Acknowledgements split into those of partitions served here and those of
/// partitions another broker leads (on shared storage), each of the latter
/// with its refusal.
pub(super) fn served_acks(
    ctx: &Ctx,
    acks: Vec<PartitionAcks>,
) -> (Vec<PartitionAcks>, Vec<(PartitionAcks, ShareError)>) {
    let Some(shared) = &ctx.config.shared else {
        return (acks, Vec::new());
    };
    let mut here = Vec::with_capacity(acks.len());
    let mut elsewhere = Vec::new();
    for a in acks {
        let Some(t) = ctx.broker.topic_by_id(&a.topic) else {
            here.push(a);
            continue;
        };
        let leader = shared.node().leader_of(&t.name, a.partition);
        if leader == shared.broker_id() {
            here.push(a);
        } else {
            let e = not_leader(&t.name, a.partition, leader);
            elsewhere.push((a, e));
        }
    }
    (here, elsewhere)
}

/// Whether another broker coordinates the group (shared storage): its
/// membership and description are there.
pub(super) fn coordinated_elsewhere(ctx: &Ctx, group: &str) -> bool {
    ctx.config
        .shared
        .as_ref()
        .is_some_and(|s| s.node().coordinator_of(group).broker_id != s.broker_id())
}
