//! Produce: send built record batches to partitions of a topic and report, per
//! partition, the base offset the broker assigned or the error it refused with.
//!
//! There are no retries: without an idempotent producer a retried batch that
//! had in fact been written would be written twice, so a failure is reported
//! and the caller decides.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest};

use crate::Client;
use crate::admin::topic_name;
use crate::connection::{duration_ms, kafka_error};
use crate::error::{ClientError, KafkaError};

/// Extra time the client waits beyond the timeout it gives the broker, so that
/// the broker's own timeout answer can arrive.
const PRODUCE_GRACE: Duration = Duration::from_secs(1);

/// How many acknowledgements a produce waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// None: the broker sends no response at all.
    None,
    /// The leader has appended the batch.
    Leader,
    /// Every in-sync replica has it; on Veltrix, it is durable on disk.
    All,
}

impl Acks {
    fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// The broker's answer for one partition's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionAck {
    pub partition: i32,
    /// The offset of the batch's first record, or why it was refused.
    pub result: Result<i64, KafkaError>,
}

impl Client {
    /// Sends one batch per partition (`(partition, batch)`, partitions distinct)
    /// to `topic`. Returns `None` for [`Acks::None`], which gets no answer, and
    /// otherwise one [`PartitionAck`] per batch, in the order given.
    pub async fn produce(
        &mut self,
        topic: &str,
        acks: Acks,
        batches: Vec<(i32, Bytes)>,
    ) -> Result<Option<Vec<PartitionAck>>, ClientError> {
        let partitions: Vec<i32> = batches.iter().map(|(p, _)| *p).collect();
        if (1..partitions.len()).any(|i| partitions[..i].contains(&partitions[i])) {
            return Err(ClientError::InvalidArgument(
                "a produce request carries at most one batch per partition".to_owned(),
            ));
        }
        let version = self.connection.version(ApiKey::Produce)?;
        let timeout = self.connection.config().request_timeout;
        let data = batches
            .into_iter()
            .map(|(p, batch)| PartitionProduceData::default().with_index(p).with_records(Some(batch)))
            .collect();
        let request = ProduceRequest::default()
            .with_acks(acks.wire())
            .with_timeout_ms(i32::try_from(duration_ms(timeout)).unwrap_or(i32::MAX))
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(data),
            ]);
        if acks == Acks::None {
            self.connection.send_only(&request, version).await?;
            return Ok(None);
        }
        let response = self
            .connection
            .call_within(&request, version, timeout + PRODUCE_GRACE)
            .await?;
        let answered: Vec<_> = response
            .responses
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partition_responses.iter())
            .collect();
        partitions
            .iter()
            .map(|p| {
                let r = answered.iter().find(|r| r.index == *p).ok_or_else(|| {
                    ClientError::UnexpectedResponse(format!("Produce does not mention partition {p} of `{topic}`"))
                })?;
                let result = match kafka_error(r.error_code, r.error_message.as_ref()) {
                    Some(error) => Err(error),
                    None if r.base_offset < 0 => {
                        return Err(ClientError::UnexpectedResponse(format!(
                            "Produce acknowledged partition {p} of `{topic}` with base offset {}",
                            r.base_offset
                        )));
                    }
                    None => Ok(r.base_offset),
                };
                Ok(PartitionAck { partition: *p, result })
            })
            .collect::<Result<Vec<_>, ClientError>>()
            .map(Some)
    }
}
