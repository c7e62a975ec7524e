//! Fetch on shared storage: each partition's committed batches from the
//! bucket (or the read cache), with their base offsets written, up to the
//! high watermark the metadata store gives. The long poll, memory budget,
//! quotas and tiers are the local fetch's (`fetch.rs`); only the reads and
//! the watermarks to wait on differ. There are no transactions on shared
//! storage, so `read_committed` reads up to the high watermark too, and the
//! log starts at 0 (no retention yet).

use std::sync::Arc;

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use veltrix_core::Broker;

use super::authz::Names;
use crate::errors::{ResponseError, shared_error};
use crate::shared::SharedStorage;

/// The high watermark to answer with: the last one known unless the fetch
/// is past it (another broker's commits not seen yet), then the store's,
/// read at most once per poll interval however many fetches ask (a client
/// fetching past the end in a loop costs the catalog nothing more).
async fn high_watermark(shared: &SharedStorage, topic: &str, p: i32, offset: i64) -> veltrix_shared::Result<i64> {
    let known = *shared.node().watch(topic, p).borrow();
    if known >= 0 && offset <= known {
        return Ok(known);
    }
    shared.node().recent_end_offset(topic, p).await
}

/// Reads one partition: at most `bytes_max` unless `first` (then one whole
/// batch however large, KIP-74).
async fn read_partition(
    shared: &SharedStorage,
    broker: &Arc<Broker>,
    topic: &str,
    p: i32,
    offset: i64,
    (bytes_max, first): (usize, bool),
) -> PartitionData {
    let mut d = super::fetch::empty_partition(p);
    if !shared.knows(broker, topic, p).await {
        d.error_code = ResponseError::UnknownTopicOrPartition.code();
        return d;
    }
    let hw = match high_watermark(shared, topic, p, offset).await {
        Ok(hw) => hw,
        Err(e) => {
            d.error_code = shared_error(&e).code();
            return d;
        }
    };
    d.high_watermark = hw;
    d.last_stable_offset = hw;
    d.log_start_offset = 0;
    if offset < 0 || offset > hw {
        d.error_code = ResponseError::OffsetOutOfRange.code();
        return d;
    }
    if offset == hw || (!first && bytes_max == 0) {
        d.records = Some(Default::default());
        return d;
    }
    let read = shared.node().read(topic, p, offset, bytes_max.max(1)).await;
    if let Ok((records, _)) = &read
        && starts_past(records, offset)
        && let Some(start) = trimmed_past(shared, topic, p, offset).await
    {
        d.log_start_offset = start;
        d.error_code = ResponseError::OffsetOutOfRange.code();
        return d;
    }
    match read {
        Ok((records, _)) if !first && records.len() > bytes_max => d.records = Some(Default::default()),
        Ok((records, next)) => {
            d.high_watermark = hw.max(next);
            d.last_stable_offset = d.high_watermark;
            d.records = Some(records);
        }
        Err(e) => {
            tracing::warn!(topic, partition = p, offset, error = %e, "a fetch from shared storage failed");
            d.error_code = shared_error(&e).code();
        }
    }
    d
}

/// Whether the read found nothing at `offset` itself: no batch, or a first
/// batch (its base offset is its first 8 bytes) after it.
fn starts_past(records: &[u8], offset: i64) -> bool {
    records
        .get(..8)
        .is_none_or(|b| i64::from_be_bytes(b.try_into().expect("8 bytes")) > offset)
}

/// The partition's start offset when retention removed `offset`; `None`
/// when it did not (or the catalog cannot say: the read's answer stands).
async fn trimmed_past(shared: &SharedStorage, topic: &str, p: i32, offset: i64) -> Option<i64> {
    match shared.node().start_offset(topic, p).await {
        Ok(start) if offset < start => Some(start),
        Ok(_) => None,
        Err(e) => {
            tracing::debug!(topic, partition = p, error = %e, "start offset unknown");
            None
        }
    }
}

/// Reads every partition of the request within `budget` bytes in all (but
/// for the first batch): the topics' answers and the bytes read.
pub(super) async fn read_all(
    shared: &SharedStorage,
    broker: &Arc<Broker>,
    request: &FetchRequest,
    readable: &Names,
    mut budget: usize,
) -> (Vec<FetchableTopicResponse>, usize) {
    let mut total = 0;
    let mut responses = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let mut ft = FetchableTopicResponse::default();
        ft.topic = t.topic.clone();
        ft.topic_id = t.topic_id;
        let topic = t.topic.0.as_str();
        let may_read = readable.contains(topic);
        for p in &t.partitions {
            if !may_read {
                ft.partitions.push(super::fetch::denied_partition(p.partition));
                continue;
            }
            let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
            let d = read_partition(shared, broker, topic, p.partition, p.fetch_offset, (limit, total == 0)).await;
            let n = d.records.as_ref().map_or(0, |r| r.len());
            budget = budget.saturating_sub(n);
            total += n;
            ft.partitions.push(d);
        }
        responses.push(ft);
    }
    (responses, total)
}
