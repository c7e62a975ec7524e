//! ListOffsets: earliest, latest, the first offset at or after a time, or
//! (from v7, KIP-734) the record with the largest timestamp. Each topic
//! needs DESCRIBE, as in Kafka (TOPIC_AUTHORIZATION_FAILED for its
//! partitions otherwise).

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use veltrix_client::{DecodeLimits, decode_batches};
use veltrix_core::acl::{AclOperation, ResourceType};

use super::Ctx;
use crate::errors::{self, ResponseError, core_error};

/// The most bytes one stored batch may decompress to when ListOffsets looks
/// inside it for a record's timestamp. A producer chooses what its compressed
/// batch expands to, so without a bound a small stored batch could make each
/// lookup allocate gigabytes. Past the bound the batch's own answer stands (see
/// [`narrow`]); the client bounds its decompression the same way, with the same
/// code (`veltrix_client::DecodeLimits`).
pub const LIST_OFFSETS_DECOMPRESSED_BYTES_MAX: usize = 16 << 20;

/// The log answers by batch: the first batch whose largest timestamp reaches
/// `ts`. Kafka answers by record: the first record stamped at or after `ts`, with
/// that record's timestamp. This decodes that one batch (decompressing it, to at
/// most [`LIST_OFFSETS_DECOMPRESSED_BYTES_MAX`]) to find the record; if it cannot, the
/// batch's answer stands, which only makes a consumer re-read a few earlier
/// records, and a warning says why.
fn narrow(log: &veltrix_log::Log, ts: i64, hit: veltrix_log::TimestampHit) -> Found {
    let batch_answer = Found {
        timestamp: hit.max_timestamp,
        offset: hit.offset,
    };
    match first_record_at_or_after(log, ts, hit.offset) {
        Ok(answer) => answer.unwrap_or(batch_answer),
        Err(reason) => {
            tracing::warn!(
                offset = hit.offset,
                %reason,
                "ListOffsets answers with the batch's timestamp: its records cannot be read"
            );
            batch_answer
        }
    }
}

/// The first record at or after `offset` stamped at or after `ts`, in the
/// batch that holds `offset`.
fn first_record_at_or_after(log: &veltrix_log::Log, ts: i64, offset: i64) -> Result<Option<Found>, String> {
    let read = log.read(offset, 1).map_err(|e| e.to_string())?;
    let limits = DecodeLimits {
        decompressed_bytes_max: LIST_OFFSETS_DECOMPRESSED_BYTES_MAX,
    };
    let batches = decode_batches(&read.records, &limits).map_err(|e| e.to_string())?;
    Ok(batches
        .iter()
        .flat_map(|b| b.records.iter())
        .find(|r| r.offset >= offset && r.timestamp >= ts)
        .map(|r| Found {
            timestamp: r.timestamp,
            offset: r.offset,
        }))
}

/// A ListOffsets answer: an offset and the timestamp found there (-1 for
/// none, as for the start and the end).
struct Found {
    timestamp: i64,
    offset: i64,
}

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// No offset and no timestamp: what a partition without the record asked for
/// answers.
const NOT_FOUND: Found = Found {
    timestamp: -1,
    offset: -1,
};

/// One partition's answer for `timestamp`, asked in ListOffsets `version`;
/// the end is the last stable offset for a `read_committed` reader.
fn partition_answer(
    log: &veltrix_log::Log,
    timestamp: i64,
    version: i16,
    committed: bool,
) -> Result<Found, ResponseError> {
    match timestamp {
        LATEST => Ok(Found {
            timestamp: -1,
            offset: if committed {
                log.last_stable_offset()
            } else {
                log.high_watermark()
            },
        }),
        EARLIEST => Ok(Found {
            timestamp: -1,
            offset: log.log_start(),
        }),
        // Kafka serves it from v7, the version that introduced it.
        MAX_TIMESTAMP if version < 7 => Err(ResponseError::UnsupportedVersion),
        MAX_TIMESTAMP => max_timestamp_record(log),
        ts if ts >= 0 => log
            .offset_for_timestamp(ts)
            .map(|hit| hit.map_or(NOT_FOUND, |h| narrow(log, ts, h)))
            .map_err(|e| errors::log_error(&e)),
        _ => Err(ResponseError::InvalidRequest),
    }
}

/// The first record carrying the partition's largest timestamp. Each segment
/// keeps its largest timestamp, so no record is read to find it; the log's
/// time index then leads to the first batch that carries it (a walk of batch
/// headers from the index entry before it), and [`narrow`] to the record in
/// that batch, decompressing at most [`LIST_OFFSETS_DECOMPRESSED_BYTES_MAX`].
/// An empty partition answers -1 and -1, as Kafka does; so does one whose
/// largest timestamp belongs to records DeleteRecords removed from a segment
/// that still holds later ones (the segment's largest is not recomputed).
fn max_timestamp_record(log: &veltrix_log::Log) -> Result<Found, ResponseError> {
    let Some(max) = log.max_timestamp() else {
        return Ok(NOT_FOUND);
    };
    log.offset_for_timestamp(max)
        .map(|hit| hit.map_or(NOT_FOUND, |h| narrow(log, max, h)))
        .map_err(|e| errors::log_error(&e))
}

pub(super) async fn list_offsets(ctx: Ctx, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = ctx.broker.clone();
    // Only v4 and later carry the leader epoch; the codec refuses it before.
    let with_epoch = ctx.version >= 4;
    let version = ctx.version;
    // The isolation level exists from v2 on.
    let committed = version >= 2 && request.isolation_level == 1;
    let describable = ctx.who().names(
        AclOperation::Describe,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
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
                        let answer = if describable.contains(t.name.0.as_str()) {
                            broker
                                .partition(t.name.0.as_str(), p.partition_index)
                                .map_err(|e| core_error(&e))
                        } else {
                            Err(ResponseError::TopicAuthorizationFailed)
                        };
                        let answer = answer
                            .and_then(|partition| partition_answer(partition.log(), p.timestamp, version, committed));
                        match answer {
                            Ok(Found { timestamp, offset }) => {
                                rp.timestamp = timestamp;
                                rp.offset = offset;
                                if with_epoch {
                                    rp.leader_epoch = veltrix_log::LEADER_EPOCH;
                                }
                            }
                            Err(c) => rp.error_code = c.code(),
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
