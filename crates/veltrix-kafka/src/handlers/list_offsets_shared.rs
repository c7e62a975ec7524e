//! ListOffsets on shared storage: the latest offset is the metadata store's
//! high watermark, the earliest the partition's start offset (retention
//! moves it), and a time the first
//! batch whose largest timestamp reaches it (by batch, not by record as a
//! local partition narrows it: a consumer may re-read a few earlier
//! records). The largest timestamp (-3, KIP-734) names the batch holding it,
//! by the same walk of the batch rows.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use veltrix_core::acl::{AclOperation, ResourceType};

use super::Ctx;
use crate::errors::{ResponseError, shared_error};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

async fn answer(ctx: &Ctx, topic: &str, partition: i32, timestamp: i64) -> Result<(i64, i64), ResponseError> {
    let shared = ctx.config.shared.as_ref().expect("shared storage");
    if !shared.knows(&ctx.broker, topic, partition).await {
        return Err(ResponseError::UnknownTopicOrPartition);
    }
    let node = shared.node();
    match timestamp {
        LATEST => node
            .end_offset(topic, partition)
            .await
            .map(|o| (-1, o))
            .map_err(|e| shared_error(&e)),
        EARLIEST => node
            .start_offset(topic, partition)
            .await
            .map(|o| (-1, o))
            .map_err(|e| shared_error(&e)),
        MAX_TIMESTAMP => match node.max_timestamp(topic, partition).await {
            Ok(Some((offset, at))) => Ok((at, offset)),
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err(shared_error(&e)),
        },
        ts if ts < 0 => Err(ResponseError::UnsupportedVersion),
        ts => match node.offset_for_timestamp(topic, partition, ts).await {
            Ok(Some((offset, at))) => Ok((at, offset)),
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err(shared_error(&e)),
        },
    }
}

pub(super) async fn list_offsets(ctx: Ctx, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let with_epoch = ctx.version >= 4;
    let describable = ctx.who().names(
        AclOperation::Describe,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    let mut r = ListOffsetsResponse::default();
    for t in &request.topics {
        let mut rt = ListOffsetsTopicResponse::default();
        rt.name = t.name.clone();
        for p in &t.partitions {
            let mut rp = ListOffsetsPartitionResponse::default();
            rp.partition_index = p.partition_index;
            rp.timestamp = -1;
            rp.offset = -1;
            let found = if describable.contains(t.name.0.as_str()) {
                answer(&ctx, t.name.0.as_str(), p.partition_index, p.timestamp).await
            } else {
                Err(ResponseError::TopicAuthorizationFailed)
            };
            match found {
                Ok((timestamp, offset)) => {
                    rp.timestamp = timestamp;
                    rp.offset = offset;
                    if with_epoch {
                        rp.leader_epoch = veltrix_log::LEADER_EPOCH;
                    }
                }
                Err(e) => rp.error_code = e.code(),
            }
            rt.partitions.push(rp);
        }
        r.topics.push(rt);
    }
    r
}
