//! DeleteRecords: move partitions' log start forward (v0 to v2).
//!
//! Each partition is answered with its new low watermark, which is its log start
//! afterwards. An offset of -1 means the high watermark, i.e. everything
//! currently readable. An offset below the log start changes nothing and answers
//! the current log start; one above the high watermark, or below -1, is
//! OFFSET_OUT_OF_RANGE, as in Kafka. The new log start is fsynced before it takes
//! effect, so the work runs on tokio's blocking pool. Each topic needs DELETE,
//! as in Kafka (TOPIC_AUTHORIZATION_FAILED, before its existence is looked
//! at).
//!
//! On shared storage the catalog moves the start offset and removes the
//! batches wholly below it, releasing their objects to the collector
//! (`Shared::delete_records`); the high watermark is read from the catalog
//! first, for the same reason.

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use veltrix_core::Broker;
use veltrix_core::acl::{AclOperation, ResourceType};

use super::Ctx;
use crate::errors::{self, ResponseError, core_error};

/// Kafka's offset meaning "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// Deletes the records of one partition below `offset`; returns the log start
/// afterwards.
fn delete(broker: &Broker, topic: &str, partition: i32, offset: i64) -> Result<i64, ResponseError> {
    let partition = broker.partition(topic, partition).map_err(|e| core_error(&e))?;
    let log = partition.log();
    // The high watermark only grows, so reading it first and deleting up to it
    // never deletes past what is readable when the deletion happens.
    let offset = if offset == HIGH_WATERMARK {
        log.high_watermark()
    } else {
        offset
    };
    log.delete_records(offset).map_err(|e| {
        let c = errors::log_error(&e);
        if c != ResponseError::OffsetOutOfRange {
            tracing::warn!(topic, partition = partition.index, error = %e, "delete-records failed");
        }
        c
    })
}

/// A partition's answer: its new low watermark, or the error and Kafka's
/// "no low watermark".
fn answer(rp: &mut DeleteRecordsPartitionResult, outcome: Result<i64, ResponseError>) {
    match outcome {
        Ok(low_watermark) => rp.low_watermark = low_watermark,
        Err(error) => {
            rp.error_code = error.code();
            rp.low_watermark = -1;
        }
    }
}

/// One partition on shared storage.
async fn delete_shared(ctx: &Ctx, topic: &str, partition: i32, offset: i64) -> Result<i64, ResponseError> {
    let shared = ctx.config.shared.as_ref().expect("shared storage");
    if !shared.knows(&ctx.broker, topic, partition).await {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    let node = shared.node();
    let end = node
        .end_offset(topic, partition)
        .await
        .map_err(|e| errors::shared_error(&e))?;
    let offset = match offset {
        HIGH_WATERMARK => end,
        o if o < HIGH_WATERMARK || o > end => return Err(ResponseError::OffsetOutOfRange),
        o => o,
    };
    node.delete_records(topic, partition, offset).await.map_err(|e| {
        tracing::warn!(topic, partition, error = %e, "delete-records failed");
        errors::shared_error(&e)
    })
}

async fn delete_records_shared(
    ctx: &Ctx,
    request: &DeleteRecordsRequest,
    deletable: &super::authz::Names,
) -> Vec<DeleteRecordsTopicResult> {
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let mut rt = DeleteRecordsTopicResult::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = DeleteRecordsPartitionResult::default();
            rp.partition_index = p.partition_index;
            let outcome = if deletable.contains(t.name.0.as_str()) {
                delete_shared(ctx, t.name.0.as_str(), p.partition_index, p.offset).await
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            };
            answer(&mut rp, outcome);
            rt.partitions.push(rp);
        }
        topics.push(rt);
    }
    topics
}

pub(super) async fn delete_records(ctx: Ctx, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let deletable = ctx.who().names(
        AclOperation::Delete,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    if ctx.config.shared.is_some() {
        let mut r = DeleteRecordsResponse::default();
        r.topics = delete_records_shared(&ctx, &request, &deletable).await;
        return r;
    }
    let broker = ctx.broker.clone();
    let topics = tokio::task::spawn_blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let mut rt = DeleteRecordsTopicResult::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut rp = DeleteRecordsPartitionResult::default();
                        rp.partition_index = p.partition_index;
                        let outcome = if deletable.contains(t.name.0.as_str()) {
                            delete(&broker, t.name.0.as_str(), p.partition_index, p.offset)
                        } else {
                            Err(ResponseError::TopicAuthorizationFailed)
                        };
                        answer(&mut rp, outcome);
                        rp
                    })
                    .collect();
                rt
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut r = DeleteRecordsResponse::default();
    r.topics = topics;
    r
}
