//! Reading: Fetch (raw record batches of chosen partitions from chosen offsets,
//! with long polling) and ListOffsets (earliest, latest, or first at a time).
//!
//! A fetch returns each partition's bytes as the broker sent them; decode them
//! with [`crate::decode_batches`]. The response may end with a partial batch,
//! which the decoder leaves out.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest};

use crate::Client;
use crate::admin::topic_name;
use crate::connection::kafka_error;
use crate::error::{ClientError, KafkaError, check};

/// Which offset ListOffsets should find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The first record stamped at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ms) => ms,
        }
    }
}

/// A ListOffsets answer for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    pub partition: i32,
    /// `None` when looking up a time after the last record.
    pub offset: Option<i64>,
    /// The found record's timestamp, for lookups by time.
    pub timestamp: Option<i64>,
}

/// Limits of one fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOptions {
    /// How long the broker may wait for data before answering empty-handed.
    pub max_wait: Duration,
    /// Bytes of records across all partitions. The broker still returns one
    /// whole batch of the first partition with data if it is larger.
    pub bytes_max: i32,
    /// Bytes of records per partition, with the same exception.
    pub partition_bytes_max: i32,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        FetchOptions {
            max_wait: Duration::from_millis(500),
            bytes_max: 16 << 20,
            partition_bytes_max: 1 << 20,
        }
    }
}

/// One partition of a fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub partition: i32,
    /// The partition's error, e.g. OFFSET_OUT_OF_RANGE; no records then.
    pub error: Option<KafkaError>,
    pub high_watermark: i64,
    /// -1 before Fetch v5.
    pub log_start_offset: i64,
    /// Record batches as stored, possibly ending with a partial batch.
    pub records: Bytes,
}

impl Client {
    /// Looks up an offset in each of the given partitions of `topic`. An error
    /// for any partition fails the whole call, naming the partition.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[(i32, OffsetSpec)],
    ) -> Result<Vec<ListedOffset>, ClientError> {
        let version = self.connection.version(ApiKey::ListOffsets)?;
        let request = ListOffsetsRequest::default()
            // -1: a consumer, which sees offsets up to the high watermark. The
            // codec's default, 0, would ask as follower broker 0.
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(p, spec)| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(*p)
                                    .with_timestamp(spec.wire())
                            })
                            .collect(),
                    ),
            ]);
        let response = self.connection.call(&request, version).await?;
        let answered = response
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("ListOffsets does not mention topic `{topic}`")))?;
        partitions
            .iter()
            .map(|(p, _)| {
                let r = answered
                    .partitions
                    .iter()
                    .find(|r| r.partition_index == *p)
                    .ok_or_else(|| {
                        ClientError::UnexpectedResponse(format!(
                            "ListOffsets does not mention partition {p} of `{topic}`"
                        ))
                    })?;
                check(r.error_code, None, || {
                    format!("listing offsets of topic `{topic}` partition {p}")
                })?;
                Ok(ListedOffset {
                    partition: *p,
                    offset: (r.offset >= 0).then_some(r.offset),
                    timestamp: (r.timestamp >= 0).then_some(r.timestamp),
                })
            })
            .collect()
    }

    /// Fetches from each `(partition, offset)` of `topic`. Per-partition errors
    /// are returned in [`FetchedPartition::error`]; a request-level error fails
    /// the call.
    pub async fn fetch(
        &mut self,
        topic: &str,
        partitions: &[(i32, i64)],
        options: &FetchOptions,
    ) -> Result<Vec<FetchedPartition>, ClientError> {
        // A broker may exceed `bytes_max` by a batch to make progress; the
        // response, with that batch, must still fit the frame limit.
        let response_bytes_max = self.connection.config().response_bytes_max;
        let fits = usize::try_from(options.bytes_max)
            .ok()
            .zip(usize::try_from(options.partition_bytes_max).ok())
            .is_some_and(|(all, one)| all.saturating_add(one) < response_bytes_max);
        if !fits {
            return Err(ClientError::InvalidArgument(format!(
                "fetch limits of {} and {} bytes per partition do not fit responses of {response_bytes_max} bytes",
                options.bytes_max, options.partition_bytes_max
            )));
        }
        let version = self.connection.version(ApiKey::Fetch)?;
        let max_wait_ms = i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX);
        let fetch_partitions = partitions
            .iter()
            .map(|(p, offset)| {
                FetchPartition::default()
                    .with_partition(*p)
                    .with_fetch_offset(*offset)
                    .with_partition_max_bytes(options.partition_bytes_max)
            })
            .collect();
        let request = FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(options.bytes_max)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(fetch_partitions),
            ]);
        // The broker may hold the request for max_wait before it answers.
        let timeout = self.connection.config().request_timeout + options.max_wait;
        let response = self.connection.call_within(&request, version, timeout).await?;
        check(response.error_code, None, || format!("fetching from topic `{topic}`"))?;
        let mut out = Vec::with_capacity(partitions.len());
        for (p, _) in partitions {
            let data = response
                .responses
                .iter()
                .filter(|t| t.topic.0.as_str() == topic)
                .flat_map(|t| t.partitions.iter())
                .find(|d| d.partition_index == *p)
                .ok_or_else(|| {
                    ClientError::UnexpectedResponse(format!("Fetch does not mention partition {p} of `{topic}`"))
                })?;
            out.push(FetchedPartition {
                partition: *p,
                error: kafka_error(data.error_code, None),
                high_watermark: data.high_watermark,
                log_start_offset: data.log_start_offset,
                records: data.records.clone().unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
