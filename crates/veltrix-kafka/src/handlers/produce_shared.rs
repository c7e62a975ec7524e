//! Produce on shared storage: each partition's batches validated as a local
//! append validates them, then queued, in request order, for the broker's
//! next object; the answer waits for the commit that gives them offsets,
//! whatever `acks` says (no offset exists before it). The same ACL, acks
//! and disk rules as a local produce; transactional batches are refused
//! (transactions are not served on shared storage yet).

use bytes::Bytes;
use futures_util::future::BoxFuture;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use veltrix_shared::{AppendRequest, Appended, ProducerStamp};

use super::Ctx;
use super::produce::{
    Authorized, Position, Refused, Written, answer_refused, authorize, has_transactional_batches, refused_by_acl,
    warn_about_risks,
};
use crate::errors::{ResponseError, shared_error};

/// A partition's batches queued: the commits to wait for, in order.
pub(crate) struct Queued {
    at: Position,
    topic: String,
    records: i64,
    bytes: usize,
    with_messages: bool,
    commits: Vec<BoxFuture<'static, veltrix_shared::Result<Appended>>>,
}

fn refusal(e: &veltrix_shared::Error) -> Refused {
    Refused {
        error: shared_error(e),
        message: e.to_string(),
        record: None,
    }
}

/// Validates and queues every partition's batches, in request order.
pub(super) async fn write(ctx: Ctx, request: ProduceRequest) -> Written {
    warn_about_risks(&ctx, &request);
    let transactional = has_transactional_batches(&request);
    let authorized = authorize(&ctx, &request, transactional);
    let with_messages = ctx.version >= 8;
    let mut responses = Vec::with_capacity(request.topic_data.len());
    let mut queued = Vec::new();
    for (ti, topic) in request.topic_data.iter().enumerate() {
        let name = topic.name.0.as_str();
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        for (pi, pd) in topic.partition_data.iter().enumerate() {
            let at = Position {
                topic: ti,
                partition: pi,
            };
            let mut p = PartitionProduceResponse::default();
            p.index = pd.index;
            p.base_offset = -1;
            p.log_append_time_ms = -1;
            let records = pd.records.clone().unwrap_or_default();
            match queue(&ctx, &authorized, request.acks, transactional, name, pd.index, &records).await {
                Ok(commits) => queued.push(Queued {
                    at,
                    topic: name.to_owned(),
                    records: 0,
                    bytes: records.len(),
                    with_messages,
                    commits,
                }),
                Err(refused) => answer_refused(&mut p, refused, with_messages, &ctx.metrics),
            }
            t.partition_responses.push(p);
        }
        responses.push(t);
    }
    Written {
        acks: request.acks,
        responses,
        to_commit: Vec::new(),
        shared: queued,
        metrics: ctx.metrics.clone(),
    }
}

/// One partition's batches checked and queued.
async fn queue(
    ctx: &Ctx,
    authorized: &Authorized,
    acks: i16,
    transactional: bool,
    topic: &str,
    partition: i32,
    records: &Bytes,
) -> Result<Vec<BoxFuture<'static, veltrix_shared::Result<Appended>>>, Refused> {
    if let Some(refused) = refused_by_acl(authorized, topic) {
        return Err(refused);
    }
    if !matches!(acks, -1..=1) {
        return Err(Refused {
            error: ResponseError::InvalidRequiredAcks,
            message: format!("acks must be -1, 0 or 1, not {acks}"),
            record: None,
        });
    }
    if transactional {
        return Err(Refused {
            error: ResponseError::TransactionalIdAuthorizationFailed,
            message: "transactions are not served on shared storage (docs/scale-out.md)".to_owned(),
            record: None,
        });
    }
    let shared = ctx.config.shared.as_ref().expect("shared storage");
    shared.knows(&ctx.broker, topic, partition).await;
    let local = ctx.broker.partition(topic, partition).map_err(Refused::from)?;
    let checked = local.checked_batches(records).map_err(Refused::from)?;
    let name: std::sync::Arc<str> = topic.into();
    let mut commits = Vec::with_capacity(checked.len());
    for (bytes, header) in checked {
        let producer = (header.producer_id >= 0).then_some(ProducerStamp {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_seq: header.base_sequence,
        });
        let request = AppendRequest {
            topic: name.clone(),
            partition,
            record_count: header.last_offset_delta + 1,
            max_timestamp: header.max_timestamp,
            producer,
            bytes: Bytes::from(bytes),
        };
        // Each batch is queued before the next, so they commit in order.
        let commit = shared.node().clone().submit(request).await.map_err(|e| refusal(&e))?;
        commits.push(commit);
    }
    Ok(commits)
}

/// Waits for every queued partition's commits and answers their offsets:
/// the first batch's base offset, or the error of the first that failed.
pub(super) async fn finish(written: Written) -> Option<ProduceResponse> {
    let Written {
        acks,
        mut responses,
        shared,
        metrics,
        ..
    } = written;
    for q in shared {
        let mut base = None;
        let mut failed = None;
        let mut records = q.records;
        for commit in q.commits {
            match commit.await {
                Ok(a) => {
                    base.get_or_insert(a.base_offset);
                    if !a.duplicate {
                        records += a.last_offset - a.base_offset + 1;
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        let p = &mut responses[q.at.topic].partition_responses[q.at.partition];
        match (failed, base) {
            (Some(e), _) => answer_refused(p, refusal(&e), q.with_messages, &metrics),
            (None, Some(base)) => {
                p.base_offset = base;
                p.log_start_offset = 0;
                if metrics.enabled() {
                    let label = [q.topic.as_str()];
                    metrics.produce_bytes.with_label_values(&label).inc_by(q.bytes as u64);
                    metrics
                        .produce_records
                        .with_label_values(&label)
                        .inc_by(u64::try_from(records).unwrap_or(0));
                    metrics
                        .traffic
                        .produced(q.bytes as u64, u64::try_from(records).unwrap_or(0));
                }
            }
            (None, None) => {}
        }
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}
