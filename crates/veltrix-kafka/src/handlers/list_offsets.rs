//! ListOffsets: earliest, latest, or the first offset at or after a time.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::Ctx;
use crate::errors::{self, code};

pub(super) async fn list_offsets(ctx: Ctx, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = ctx.broker.clone();
    // Only v4 and later carry the leader epoch; the codec refuses it before.
    let with_epoch = ctx.version >= 4;
    let topics = tokio::task::spawn_blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let mut rt = ListOffsetsTopicResponse::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut rp = ListOffsetsPartitionResponse::default();
                        rp.partition_index = p.partition_index;
                        rp.timestamp = -1;
                        rp.offset = -1;
                        let answer = broker
                            .partition(t.name.0.as_str(), p.partition_index)
                            .map_err(|e| code(&e));
                        let answer = answer.and_then(|partition| {
                            let log = partition.log();
                            match p.timestamp {
                                -1 => Ok((-1, log.high_watermark())),
                                -2 => Ok((-1, log.log_start())),
                                ts if ts >= 0 => log
                                    .offset_for_timestamp(ts)
                                    .map(|hit| hit.map_or((-1, -1), |h| (h.max_timestamp, h.offset)))
                                    .map_err(|e| errors::log_code(&e)),
                                _ => Err(errors::INVALID_REQUEST),
                            }
                        });
                        match answer {
                            Ok((timestamp, offset)) => {
                                rp.timestamp = timestamp;
                                rp.offset = offset;
                                if with_epoch {
                                    rp.leader_epoch = veltrix_log::LEADER_EPOCH;
                                }
                            }
                            Err(c) => rp.error_code = c,
                        }
                        rp
                    })
                    .collect();
                rt
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    let mut r = ListOffsetsResponse::default();
    r.topics = topics;
    r
}
