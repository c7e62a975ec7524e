//! Fetch: whole batches from disk, with long polling on the high watermark.
//! A `read_committed` fetch (isolation level 1) reads up to the last stable
//! offset and names the aborted transactions in the range it returns, so the
//! client drops their records; a `read_uncommitted` one reads up to the high
//! watermark.
//! As in Kafka, a consumer's fetch needs READ on each topic
//! (TOPIC_AUTHORIZATION_FAILED for its partitions otherwise, before their
//! existence is looked at), and a fetch naming a replica (a follower's)
//! CLUSTER_ACTION on the cluster.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId};
use veltrix_core::Broker;
use veltrix_core::acl::{AclOperation, ResourceType};

use super::Ctx;
use super::authz::Names;
use crate::errors::{self, ResponseError, core_error};

/// How one partition is read: `bytes_max` bounds the data unless `first` (no
/// earlier partition of the response has data), when one whole batch is
/// returned even if larger, so that a consumer can always make progress
/// (KIP-74); `committed` for a `read_committed` reader.
#[derive(Debug, Clone, Copy)]
struct Read {
    bytes_max: usize,
    first: bool,
    committed: bool,
}

/// A partition's answer before anything is known of it.
pub(super) fn empty_partition(p: i32) -> PartitionData {
    let mut d = PartitionData::default();
    d.partition_index = p;
    d.high_watermark = -1;
    d.last_stable_offset = -1;
    d.log_start_offset = -1;
    d.preferred_read_replica = BrokerId(-1);
    d
}

/// Reads one partition, as `read` says.
fn fetch_partition(broker: &Broker, topic: &str, p: i32, offset: i64, read: Read) -> PartitionData {
    let Read {
        bytes_max,
        first,
        committed,
    } = read;
    let mut d = empty_partition(p);
    match broker.partition(topic, p) {
        Err(e) => d.error_code = core_error(&e).code(),
        Ok(partition) => {
            let log = partition.log();
            d.high_watermark = log.high_watermark();
            d.last_stable_offset = log.last_stable_offset();
            d.log_start_offset = log.log_start();
            if !first && bytes_max == 0 {
                d.records = Some(Default::default());
                return d;
            }
            match log.read_isolated(offset, bytes_max.max(1), committed) {
                Ok(r) if !first && r.records.len() > bytes_max => {
                    d.high_watermark = r.high_watermark;
                    d.log_start_offset = r.log_start;
                    d.records = Some(Default::default());
                }
                Ok(r) => {
                    d.high_watermark = r.high_watermark;
                    d.log_start_offset = r.log_start;
                    if committed {
                        let aborted = log.aborted_transactions(offset, r.next_offset);
                        d.aborted_transactions = Some(
                            aborted
                                .into_iter()
                                .map(|a| {
                                    AbortedTransaction::default()
                                        .with_producer_id(ProducerId(a.producer_id))
                                        .with_first_offset(a.first_offset)
                                })
                                .collect(),
                        );
                    }
                    d.records = Some(r.records);
                }
                Err(e) => d.error_code = errors::log_error(&e).code(),
            }
        }
    }
    d
}

/// The topics the fetch may read: a follower's (`replica_id` >= 0) all of
/// them with CLUSTER_ACTION on the cluster and none without; a consumer's
/// those with READ.
fn readable(ctx: &Ctx, request: &FetchRequest) -> Names {
    if !ctx.broker.authorizer().enabled() {
        return Names::All;
    }
    let who = ctx.who();
    if request.replica_id.0 >= 0 {
        return if who.on_cluster(AclOperation::ClusterAction) {
            Names::All
        } else {
            Names::Only(Default::default())
        };
    }
    who.names(
        AclOperation::Read,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.topic.0.as_str()),
    )
}

/// A partition's answer when its topic may not be read.
pub(super) fn denied_partition(p: i32) -> PartitionData {
    let mut d = empty_partition(p);
    d.error_code = ResponseError::TopicAuthorizationFailed.code();
    d
}

/// The most a fetch may return: the client's `max_bytes`, cut to the broker's
/// `fetch_bytes_max` (counted when it bites).
fn response_bytes_max(ctx: &Ctx, request: &FetchRequest) -> usize {
    let asked = request.max_bytes.max(0) as usize;
    if asked > ctx.config.fetch_bytes_max {
        ctx.metrics.fetch_bytes_clamped.inc();
    }
    asked.min(ctx.config.fetch_bytes_max)
}

/// Reads every partition of the request, within `budget` bytes in all
/// (but for the first batch, see [`fetch_partition`]): the topics' answers
/// and the bytes read.
fn read_all(
    broker: &Broker,
    request: &FetchRequest,
    readable: &Names,
    mut budget: usize,
) -> (Vec<FetchableTopicResponse>, usize) {
    let mut total = 0;
    let responses = request
        .topics
        .iter()
        .map(|t| {
            let mut ft = FetchableTopicResponse::default();
            ft.topic = t.topic.clone();
            ft.topic_id = t.topic_id;
            let may_read = readable.contains(t.topic.0.as_str());
            ft.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    if !may_read {
                        return denied_partition(p.partition);
                    }
                    let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
                    let topic = t.topic.0.as_str();
                    let read = Read {
                        bytes_max: limit,
                        first: total == 0,
                        committed: request.isolation_level == 1,
                    };
                    let d = fetch_partition(broker, topic, p.partition, p.fetch_offset, read);
                    let n = d.records.as_ref().map_or(0, |r| r.len());
                    budget = budget.saturating_sub(n);
                    total += n;
                    d
                })
                .collect();
            ft
        })
        .collect();
    (responses, total)
}

pub(super) async fn fetch(ctx: Ctx, request: FetchRequest) -> FetchResponse {
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(ctx.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(0) as usize;
    // Under a consumer quota, one response never exceeds what the quota lets
    // through over its windows (as Kafka caps it), so a client can always
    // get on.
    let bytes_max = match crate::quota::fetch_cap(&ctx) {
        Some(cap) => response_bytes_max(&ctx, &request).min(cap),
        None => response_bytes_max(&ctx, &request),
    };
    let readable = Arc::new(readable(&ctx, &request));
    let request = Arc::new(request);
    loop {
        // Subscribe before reading, so a record that lands in between wakes us.
        let mut watches = Vec::new();
        for t in request.topics.iter().filter(|t| readable.contains(t.topic.0.as_str())) {
            for p in &t.partitions {
                if let Some(shared) = &ctx.config.shared {
                    watches.push(shared.node().watch(t.topic.0.as_str(), p.partition));
                } else if let Ok(partition) = ctx.broker.partition(t.topic.0.as_str(), p.partition) {
                    watches.push(partition.watch_high_watermark());
                }
            }
        }
        // Reserved before reading and only while reading, not while waiting
        // for data: an idle consumer's long poll holds no memory.
        let mut reservation = ctx.responses.reserve(bytes_max, &ctx.metrics).await;
        let broker = ctx.broker.clone();
        let req = request.clone();
        let readable = readable.clone();
        let reserved = reservation.bytes();
        let (responses, total) = match &ctx.config.shared {
            Some(shared) => super::fetch_shared::read_all(shared, &broker, &req, &readable, reserved).await,
            None => tokio::task::spawn_blocking(move || read_all(&broker, &req, &readable, reserved))
                .await
                .unwrap_or_default(),
        };
        // The one batch returned whole past the limit (KIP-74) is counted too;
        // the encoded response is about the records' size. Only what was read
        // is kept, also while waiting for more.
        ctx.responses.fit(&mut reservation, total).await;
        let now = tokio::time::Instant::now();
        let done = total >= min_bytes.max(1) || now >= deadline || watches.is_empty();
        let woken = !done && woken(&mut watches, deadline, &ctx.shutdown).await;
        if !woken {
            let mut r = FetchResponse::default();
            r.responses = responses;
            // A client still owing a wait for its quota gets no records this
            // time (they are not counted), only the time left to wait, as
            // Kafka answers it.
            // Shed by tier too: a fetch of bulk (then standard) topics while
            // the memory budget is filling goes without its records.
            let tier = crate::tiers::request_tier(&ctx, request.topics.iter().map(|t| t.topic.0.as_str()));
            let tier_ms = crate::tiers::admit(&ctx, tier, "fetch");
            let (quota_ms, withheld) = if tier_ms > 0 {
                (0, true)
            } else {
                crate::quota::record_fetch(&ctx, total)
            };
            r.throttle_time_ms = quota_ms.max(tier_ms);
            if withheld {
                for p in r.responses.iter_mut().flat_map(|t| t.partitions.iter_mut()) {
                    p.records = None;
                }
            }
            ctx.held.put(reservation);
            count_fetched(&ctx, &r.responses);
            return r;
        }
        drop(reservation);
    }
}

/// Adds what a fetch returns to the per-topic fetch counters: bytes, and
/// records by the batch headers' counts.
fn count_fetched(ctx: &Ctx, responses: &[FetchableTopicResponse]) {
    let metrics = &ctx.metrics;
    if !metrics.enabled() {
        return;
    }
    for t in responses {
        let (mut bytes, mut records) = (0u64, 0u64);
        for p in &t.partitions {
            errors::count_error(metrics, "Fetch", p.error_code);
            let Some(data) = &p.records else { continue };
            bytes += data.len() as u64;
            let mut rest = &data[..];
            while let Some(size) = veltrix_log::batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                if let Ok(h) = veltrix_log::batch::parse_fixed(&rest[..size]) {
                    records += u64::try_from(h.record_count).unwrap_or(0);
                }
                rest = &rest[size..];
            }
        }
        if bytes > 0 {
            let name = [t.topic.0.as_str()];
            metrics.fetch_bytes.with_label_values(&name).inc_by(bytes);
            metrics.fetch_records.with_label_values(&name).inc_by(records);
            metrics.traffic.fetched(bytes, records);
        }
    }
}

/// Waits for a long poll: true when one of `watches` changed before the
/// deadline, false when the deadline passed or the broker is shutting down
/// (then the poll is answered at once with what there is, so that the
/// connection can drain).
pub(super) async fn woken(
    watches: &mut [tokio::sync::watch::Receiver<i64>],
    deadline: tokio::time::Instant,
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> bool {
    let changed = futures_any(watches);
    let mut shutdown = shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        woken = tokio::time::timeout_at(deadline, changed) => woken.is_ok(),
        () = stopping => false,
    }
}

/// Resolves when any of the high watermarks moves (or its partition goes away).
/// Polls every receiver in place: no task per partition.
async fn futures_any(watches: &mut [tokio::sync::watch::Receiver<i64>]) {
    let mut changes: Vec<_> = watches.iter_mut().map(|w| Box::pin(w.changed())).collect();
    std::future::poll_fn(|cx| {
        for change in &mut changes {
            if change.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}
