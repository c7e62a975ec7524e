//! ListOffsets: earliest, latest, or the first offset at or after a time.

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::Ctx;
use crate::errors::{self, code};

/// The log answers by batch: the first batch whose largest timestamp reaches
/// `ts`. Kafka answers by record: the first record stamped at or after `ts`, with
/// that record's timestamp. This decodes that one batch (decompressing it if
/// needed) to find the record; if it cannot, the batch's answer stands, which
/// only makes a consumer re-read a few earlier records.
fn narrow(log: &veltrix_log::Log, ts: i64, hit: veltrix_log::TimestampHit) -> (i64, i64) {
    let batch_answer = (hit.max_timestamp, hit.offset);
    let Ok(read) = log.read(hit.offset, 1) else {
        return batch_answer;
    };
    let mut bytes = read.records;
    let Ok(sets) = RecordBatchDecoder::decode_all(&mut bytes) else {
        return batch_answer;
    };
    sets.iter()
        .flat_map(|set| set.records.iter())
        .find(|r| r.offset >= hit.offset && r.timestamp >= ts)
        .map_or(batch_answer, |r| (r.timestamp, r.offset))
}

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
                                    .map(|hit| hit.map_or((-1, -1), |h| narrow(log, ts, h)))
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
