//! Produce: append batches; answer after the fsync for acks=all. As in
//! Kafka, each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED for its
//! partitions otherwise), and a request with transactional batches WRITE on
//! its transactional id (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every
//! partition otherwise), before anything else is looked at.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::{AppendProgress, Partition};
use veltrix_log::batch;

use super::Ctx;
use super::authz::{Names, TOPIC_DENIED, TRANSACTIONAL_ID_DENIED};
use crate::errors::{self, ResponseError, core_error};
use crate::metrics::KafkaMetrics;

/// A partition's produce failed: its error code and message, and for a batch
/// refused because of one record, that record's position (Produce v8+
/// `record_errors`).
pub(super) struct Refused {
    pub(super) error: ResponseError,
    pub(super) message: String,
    pub(super) record: Option<i32>,
}

impl From<veltrix_core::CoreError> for Refused {
    fn from(e: veltrix_core::CoreError) -> Refused {
        let record = match &e {
            veltrix_core::CoreError::InvalidBatch { source, .. } => source.record_index(),
            _ => None,
        };
        Refused {
            error: core_error(&e),
            message: e.to_string(),
            record,
        }
    }
}

/// Logs, once per client id, a producer's settings that can lose or
/// duplicate records: acks=0 or 1 to a topic marked critical, and batches
/// without a producer id (idempotence off).
pub(super) fn warn_about_risks(ctx: &Ctx, request: &ProduceRequest) {
    let client = ctx.client_id.as_str();
    if request.acks != -1
        && let Some(topic) = request
            .topic_data
            .iter()
            .find(|t| ctx.config.critical_topics.contains(t.name.0.as_str()))
        && ctx.warnings.first(client, "acks")
    {
        tracing::warn!(
            client_id = client,
            peer = %ctx.peer,
            topic = %topic.name.0.as_str(),
            acks = request.acks,
            "a producer writes to a critical topic with acks={}: records are acknowledged before they are durable, \
             so a crash right after an acknowledgement loses them; use acks=all",
            request.acks
        );
    }
    let non_idempotent = request.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records
                .as_ref()
                .and_then(|r| batch::parse_fixed(r).ok())
                .is_some_and(|h| h.producer_id < 0)
        })
    });
    if non_idempotent && ctx.warnings.first(client, "idempotence") {
        tracing::warn!(
            client_id = client,
            peer = %ctx.peer,
            "a producer sends without idempotence: when a request times out and is retried, its records can be \
             stored twice; set enable.idempotence=true"
        );
    }
}

/// A produce request whose batches are written: what is left is to wait for
/// them to be durable (acks=all) and answer. Splitting the two lets a connection
/// append its next request while this one's fsync runs; see `server.rs`.
pub(crate) struct Written {
    pub(super) acks: i16,
    pub(super) responses: Vec<TopicProduceResponse>,
    /// The partitions appended to, to wait for.
    pub(super) to_commit: Vec<ToCommit>,
    /// On shared storage: each partition's batches queued for an object,
    /// whose commits give their offsets.
    pub(super) shared: Vec<super::produce_shared::Queued>,
    pub(super) metrics: KafkaMetrics,
}

/// Where a partition of a request stands in its response: topic and
/// partition positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) topic: usize,
    pub(super) partition: usize,
}

/// A partition appended to, and the offset after its batches: the commit to
/// wait for before answering.
pub(super) struct ToCommit {
    at: Position,
    partition: Arc<Partition>,
    next: i64,
}

/// Requests with at most this many bytes of batches are appended on the
/// connection's task: a write into the page cache of up to 1 MiB (plus its CRC
/// check) takes a few hundred microseconds, less than handing it to the blocking
/// pool and back costs in wake-ups and context switches. Larger ones go to the
/// blocking pool, so that one huge request cannot stall the other connections
/// of its worker.
pub const INLINE_APPEND_BYTES_MAX: usize = 1 << 20;

/// What a produce request's principal may write, as Kafka's
/// `handleProduceRequest` decides it before appending anything.
pub(super) enum Authorized {
    /// The topics it has WRITE on.
    Topics(Names),
    /// Transactional batches without WRITE on the request's transactional
    /// id (or without one): every partition is refused.
    NotTransactionalId,
}

/// Whether a batch of the request is transactional: a header walk.
pub(super) fn has_transactional_batches(request: &ProduceRequest) -> bool {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .filter_map(|p| p.records.as_deref())
        .any(|mut rest| {
            while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
                if batch::parse_fixed(&rest[..size]).is_ok_and(|h| h.is_transactional()) {
                    return true;
                }
                rest = &rest[size..];
            }
            false
        })
}

pub(super) fn authorize(ctx: &Ctx, request: &ProduceRequest, transactional: bool) -> Authorized {
    if !ctx.broker.authorizer().enabled() {
        return Authorized::Topics(Names::All);
    }
    let who = ctx.who();
    if transactional {
        let allowed = match &request.transactional_id {
            Some(id) => who.allowed(AclOperation::Write, ResourceType::TransactionalId, id.0.as_str()),
            None => {
                who.deny(AclOperation::Write, ResourceType::TransactionalId, "");
                false
            }
        };
        if !allowed {
            return Authorized::NotTransactionalId;
        }
    }
    let topics = request.topic_data.iter().map(|t| t.name.0.as_str());
    Authorized::Topics(who.names(AclOperation::Write, ResourceType::Topic, topics))
}

/// Why a partition's transactional batches are refused: their producer has
/// no transaction open at the coordinator that names this partition
/// (INVALID_TXN_STATE), another producer id holds the transactional id
/// (INVALID_PRODUCER_ID_MAPPING), or a newer producer fenced this one
/// (INVALID_PRODUCER_EPOCH). Appending them would open a transaction here
/// that no marker would end, holding `read_committed` readers back.
fn transaction_refusal(broker: &veltrix_core::Broker, topic: &str, partition: i32, mut rest: &[u8]) -> Option<Refused> {
    let topic_id = broker.topic(topic)?.id;
    while let Some(size) = batch::peek_size(rest).filter(|s| *s <= rest.len()) {
        if let Ok(h) = batch::parse_fixed(&rest[..size])
            && h.is_transactional()
            && let Err(e) = broker
                .transactions()
                .verify_partition(h.producer_id, h.producer_epoch, topic_id, partition)
        {
            return Some(Refused {
                error: super::transactions::txn_error(&e, 0, i16::MAX),
                message: e.to_string(),
                record: None,
            });
        }
        rest = &rest[size..];
    }
    None
}

/// The refusal of a partition the principal may not write to, if it may not.
pub(super) fn refused_by_acl(authorized: &Authorized, topic: &str) -> Option<Refused> {
    let (error, message) = match authorized {
        Authorized::Topics(names) if names.contains(topic) => return None,
        Authorized::Topics(_) => (ResponseError::TopicAuthorizationFailed, TOPIC_DENIED),
        Authorized::NotTransactionalId => (
            ResponseError::TransactionalIdAuthorizationFailed,
            TRANSACTIONAL_ID_DENIED,
        ),
    };
    Some(Refused {
        error,
        message: message.to_owned(),
        record: None,
    })
}

/// A produce request being appended, partition by partition in request order,
/// first on the connection's task and, if that would block, on the blocking
/// pool from where it stopped.
struct Appending {
    request: ProduceRequest,
    broker: Arc<veltrix_core::Broker>,
    metrics: KafkaMetrics,
    /// The per-partition error message exists from v8.
    with_messages: bool,
    /// What the principal may write to.
    authorized: Authorized,
    /// Whether the request carries transactional batches.
    transactional: bool,
    responses: Vec<TopicProduceResponse>,
    to_commit: Vec<ToCommit>,
    /// The next partition to append.
    at: Position,
    /// How far the partition at `at` got.
    progress: AppendProgress,
}

impl Appending {
    /// Appends from where it stopped. With `may_block` false it never waits for
    /// a lock held across an fsync, nor rolls a segment: it stops instead and
    /// returns false, and is then run again with `may_block`.
    fn run(&mut self, may_block: bool) -> bool {
        while self.at.topic < self.request.topic_data.len() {
            let ti = self.at.topic;
            if self.responses.len() == ti {
                let mut t = TopicProduceResponse::default();
                t.name = self.request.topic_data[ti].name.clone();
                self.responses.push(t);
            }
            while self.at.partition < self.request.topic_data[ti].partition_data.len() {
                let Some(p) = self.partition(may_block) else {
                    return false;
                };
                self.responses[ti].partition_responses.push(p);
                self.at.partition += 1;
                self.progress = AppendProgress::default();
            }
            self.at = Position {
                topic: ti + 1,
                partition: 0,
            };
        }
        true
    }

    /// Whether the disk watermarks admit produce to `topic`'s tier.
    fn disk_admits(&self, topic: &str) -> Result<(), (veltrix_core::Tier, veltrix_core::disk::DiskLevel)> {
        let tier = self.broker.topic(topic).and_then(|t| t.config.tier).unwrap_or_default();
        self.broker.disk_admits(tier).map_err(|level| (tier, level))
    }

    /// Why a partition of `topic` is refused before anything is appended:
    /// no WRITE on it (or on the transactional id), or acks Kafka does not
    /// define.
    fn refused_before_append(&self, topic: &str) -> Option<Refused> {
        if let Some(refused) = refused_by_acl(&self.authorized, topic) {
            return Some(refused);
        }
        let acks = self.request.acks;
        (!matches!(acks, -1..=1)).then(|| Refused {
            error: ResponseError::InvalidRequiredAcks,
            message: format!("acks must be -1, 0 or 1, not {acks}"),
            record: None,
        })
    }

    /// Adds an append to the per-topic produce counters.
    fn count_appended(&self, topic: &str, bytes: usize, records: i64) {
        let metrics = &self.metrics;
        if metrics.enabled() {
            metrics.produce_bytes.with_label_values(&[topic]).inc_by(bytes as u64);
            let records = u64::try_from(records).unwrap_or(0);
            metrics.produce_records.with_label_values(&[topic]).inc_by(records);
            metrics.traffic.produced(bytes as u64, records);
        }
    }

    /// The answer for the partition at `at`, or `None` if its append stopped.
    fn partition(&mut self, may_block: bool) -> Option<PartitionProduceResponse> {
        let Position {
            topic: ti,
            partition: pi,
        } = self.at;
        let topic = &self.request.topic_data[ti];
        let topic_name = topic.name.0.as_str();
        let pd = &topic.partition_data[pi];
        let mut p = PartitionProduceResponse::default();
        p.index = pd.index;
        p.base_offset = -1;
        p.log_append_time_ms = -1;
        let transaction_refused = || {
            let records = pd.records.as_deref().unwrap_or_default();
            transaction_refusal(&self.broker, topic_name, pd.index, records)
        };
        let result = if let Some(refused) = self.refused_before_append(topic_name) {
            Err(refused)
        } else if let Some(refused) = self.transactional.then(transaction_refused).flatten() {
            Err(refused)
        } else {
            match self.broker.partition_and_dedup(topic_name, pd.index) {
                Err(e) => Err(Refused::from(e)),
                // Below its disk watermark a tier is refused, retriably:
                // the producer retries once space comes back.
                Ok(_) if let Err((tier, level)) = self.disk_admits(topic_name) => Err(Refused {
                    error: ResponseError::KafkaStorageError,
                    message: format!(
                        "the disk is filling ({}, {} bytes free): produce to {} topics is refused until space comes back",
                        level.name(),
                        self.broker.disk().available_bytes(),
                        tier.name()
                    ),
                    record: None,
                }),
                Ok((partition, dedup)) => {
                    let records = pd.records.as_deref().unwrap_or_default();
                    let appended = match dedup {
                        // A topic with a duplicate window decodes its records
                        // and may wait for another produce of the same id:
                        // always on the blocking pool.
                        Some(_) if !may_block => return None,
                        Some(dedup) => dedup.append(&partition, records).map(Some),
                        None if may_block => partition.resume_append_batches(records, &mut self.progress).map(Some),
                        None => partition.try_append_batches(records, &mut self.progress),
                    };
                    match appended {
                        Ok(None) => return None,
                        Err(e) => Err(Refused::from(e)),
                        Ok(Some(appended)) => {
                            let (base, next) = (appended.base_offset, appended.next_offset);
                            self.count_appended(topic_name, records.len(), next - base);
                            p.log_start_offset = partition.log().log_start();
                            self.to_commit.push(ToCommit {
                                at: self.at,
                                partition,
                                next,
                            });
                            Ok(base)
                        }
                    }
                }
            }
        };
        match result {
            Ok(base) => p.base_offset = base,
            Err(refused) => answer_refused(&mut p, refused, self.with_messages, &self.metrics),
        }
        Some(p)
    }

    fn into_written(self) -> Written {
        Written {
            acks: self.request.acks,
            responses: self.responses,
            to_commit: self.to_commit,
            shared: Vec::new(),
            metrics: self.metrics,
        }
    }
}

/// A partition's answer for a refusal: its code, counted, and from v8 its
/// message (and the record it is about).
pub(super) fn answer_refused(
    p: &mut PartitionProduceResponse,
    refused: Refused,
    with_messages: bool,
    metrics: &KafkaMetrics,
) {
    p.error_code = refused.error.code();
    errors::count_error(metrics, "Produce", p.error_code);
    if with_messages {
        if let Some(index) = refused.record {
            p.record_errors = vec![
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(index)
                    .with_batch_index_error_message(Some(StrBytes::from_string(refused.message.clone()))),
            ];
        }
        p.error_message = Some(StrBytes::from_string(refused.message));
    }
}

/// Validates and appends every batch of the request, in request order. A
/// request of up to [`INLINE_APPEND_BYTES_MAX`] is appended on the connection's
/// task unless an append would wait for an fsync (a roll, or the partition's
/// lock held across one); the rest then goes to the blocking pool, so that a
/// slow disk never stalls the other connections of the worker.
/// The record bytes a produce request carries: what a producer's quota counts.
pub(crate) fn records_bytes(request: &ProduceRequest) -> usize {
    request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum()
}

pub(crate) async fn write(ctx: Ctx, request: ProduceRequest) -> Option<Written> {
    if ctx.config.shared.is_some() {
        return Some(super::produce_shared::write(ctx, request).await);
    }
    warn_about_risks(&ctx, &request);
    let transactional = has_transactional_batches(&request);
    let authorized = authorize(&ctx, &request, transactional);
    let bytes: usize = request
        .topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .map(|p| p.records.as_ref().map_or(0, Bytes::len))
        .sum();
    let mut appending = Appending {
        responses: Vec::with_capacity(request.topic_data.len()),
        request,
        broker: ctx.broker.clone(),
        metrics: ctx.metrics.clone(),
        with_messages: ctx.version >= 8,
        authorized,
        transactional,
        to_commit: Vec::new(),
        at: Position { topic: 0, partition: 0 },
        progress: AppendProgress::default(),
    };
    if bytes <= INLINE_APPEND_BYTES_MAX && appending.run(false) {
        return Some(appending.into_written());
    }
    tokio::task::spawn_blocking(move || {
        appending.run(true);
        appending.into_written()
    })
    .await
    .ok()
}

impl Written {
    /// Waits until the written batches may be acknowledged and builds the answer;
    /// `None` for acks=0. With acks=all every partition's batches must be durable,
    /// and the partitions' fsyncs run concurrently. With acks=0 and 1 the answer
    /// does not wait, but the commit still runs so that the high watermark moves.
    pub(crate) async fn finish(self) -> Option<ProduceResponse> {
        if !self.shared.is_empty() {
            return super::produce_shared::finish(self).await;
        }
        let Written {
            acks,
            mut responses,
            to_commit,
            metrics,
            shared: _,
        } = self;
        if acks != -1 {
            // Not waited for, but the batches still become durable and visible.
            for c in &to_commit {
                c.partition.flush_soon(c.next);
            }
            return (acks != 0).then(|| ProduceResponse::default().with_responses(responses));
        }
        // Each partition's flush is asked for here, so they run concurrently.
        let waits: Vec<_> = to_commit
            .into_iter()
            .map(|c| (c.at, c.partition.commit_async(c.next)))
            .collect();
        for (at, wait) in waits {
            if let Err(e) = wait.await {
                let error_code = core_error(&e).code();
                errors::count_error(&metrics, "Produce", error_code);
                let p = &mut responses[at.topic].partition_responses[at.partition];
                p.error_code = error_code;
                p.base_offset = -1;
            }
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}

pub(super) async fn produce(ctx: Ctx, request: ProduceRequest) -> Option<ProduceResponse> {
    write(ctx, request).await?.finish().await
}
