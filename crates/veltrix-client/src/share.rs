//! Share groups (KIP-932): a topic read like a queue. Any number of members
//! read one partition; the broker hands each record to one member at a time
//! (acquired, under a lock that times out), and the member acknowledges it:
//! accepted (done), released (deliver again) or rejected (never again).
//!
//! [`ShareConsumer`] is one member of one group, subscribed to one topic, on
//! its own connection. It follows the flow of Kafka's clients:
//!
//! - The member id is the client's: a random UUID in Kafka's text form
//!   ([`member_id`]), kept for the member's life. ShareGroupHeartbeat with
//!   member epoch 0 joins; the broker answers with the member's epoch and,
//!   when it changed, its assignment (topic ids and partitions). Epoch -1
//!   leaves.
//! - ShareFetch runs in a share session ([`ShareSession`]): epoch 0 opens it
//!   and names every partition to read; each later request carries the next
//!   epoch (1, 2, ..., from `i32::MAX` back to 1) and names only the
//!   partitions it adds or acknowledges in, and in `forgotten_topics_data`
//!   the ones it drops. ShareAcknowledge at epoch -1 closes it.
//! - Acknowledgements ride on the next ShareFetch (or a ShareAcknowledge) as
//!   batches of `(first offset, last offset, [type])`. The broker answers
//!   them per partition (`acknowledge_error_code` in ShareFetch, `error_code`
//!   in ShareAcknowledge); an acknowledged partition missing from the answer
//!   counts as INVALID_RECORD_STATE, as librdkafka counts it. A session at
//!   epoch 0 has nothing to acknowledge against, so acknowledgements pending
//!   then are dropped and reported failed rather than sent.
//!
//! The session's bookkeeping is plain data ([`ShareSession`]: a request
//! built from state, a response applied to state), tested against frames
//! the codec builds; [`ShareConsumer`] adds the connection and the clock.
//!
//! Bounds: at most [`ACK_RANGES_MAX`] acknowledgement ranges wait for the
//! next request; a caller past it must fetch or flush first.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_request::{AcknowledgePartition, AcknowledgeTopic};
use kafka_protocol::messages::share_fetch_request::{AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{
    ApiKey, GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::connection::{Connection, kafka_error};
use crate::error::{ClientError, KafkaError, check};

/// The most acknowledgement ranges waiting for the next request, across
/// partitions. Contiguous ranges of one type merge, so a member accepting
/// everything it gets holds one per partition.
pub const ACK_RANGES_MAX: usize = 10_000;

/// Kafka's INVALID_RECORD_STATE: what an acknowledgement the broker did not
/// answer counts as.
const INVALID_RECORD_STATE: i16 = 121;
/// Kafka's INVALID_SHARE_SESSION_EPOCH: what acknowledgements dropped by a
/// session reset count as.
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;

/// What a member says of a record it acquired (KIP-932's acknowledge types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckType {
    /// An offset with no record (compaction, transaction markers).
    Gap,
    /// Processed: never delivered again.
    Accept,
    /// Not processed: delivered again, to any member.
    Release,
    /// Unprocessable: never delivered again.
    Reject,
}

impl AckType {
    fn wire(self) -> i8 {
        match self {
            AckType::Gap => 0,
            AckType::Accept => 1,
            AckType::Release => 2,
            AckType::Reject => 3,
        }
    }
}

/// Kafka's text form of a UUID (URL-safe base64 without padding, 22
/// characters), as Kafka's clients send their share member ids.
pub fn member_id(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        // A chunk of k bytes carries k + 1 characters.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Limits of one ShareFetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareFetchOptions {
    /// How long the broker may wait for records before answering.
    pub max_wait: Duration,
    /// Bytes the broker waits for, unless `max_wait` passes first.
    pub min_bytes: i32,
    /// Bytes of records in the answer (the broker may exceed it by a batch).
    pub bytes_max: i32,
    /// Records to acquire in one answer (`max.poll.records`).
    pub records_max: i32,
    /// Records the broker acquires at a time, a hint (librdkafka sends
    /// `records_max`).
    pub batch_size: i32,
}

impl Default for ShareFetchOptions {
    fn default() -> ShareFetchOptions {
        ShareFetchOptions {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            bytes_max: 16 << 20,
            records_max: 500,
            batch_size: 500,
        }
    }
}

/// A range of records acquired for this member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    /// How many times the broker has delivered these records, this time
    /// included.
    pub delivery_count: i16,
}

impl Acquired {
    /// Offsets in the range.
    pub fn count(&self) -> u64 {
        u64::try_from(self.last_offset - self.first_offset + 1).unwrap_or(0)
    }
}

/// One partition of a ShareFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    pub partition: i32,
    /// Why the partition brought no records, if it failed.
    pub error: Option<KafkaError>,
    /// Record batches as stored; they may hold records outside `acquired`.
    pub records: Bytes,
    /// What this member now holds, to acknowledge.
    pub acquired: Vec<Acquired>,
}

/// The broker's answer to one partition's acknowledgements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOutcome {
    pub partition: i32,
    /// Offsets the acknowledgements covered.
    pub records: u64,
    /// `None` when the broker recorded them.
    pub error: Option<KafkaError>,
}

/// A ShareFetch answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareFetched {
    pub partitions: Vec<SharePartition>,
    /// The outcome of the acknowledgements the request carried.
    pub acks: Vec<AckOutcome>,
    /// How long the records stay acquired, from the broker's answer.
    pub acquisition_lock_timeout_ms: i32,
}

impl ShareFetched {
    /// Offsets acquired, across partitions.
    pub fn acquired(&self) -> u64 {
        self.partitions
            .iter()
            .flat_map(|p| p.acquired.iter())
            .map(Acquired::count)
            .sum()
    }

    /// Offsets whose acknowledgements the broker recorded.
    pub fn acknowledged(&self) -> u64 {
        acknowledged(&self.acks)
    }
}

/// Offsets of `acks` that the broker recorded.
pub fn acknowledged(acks: &[AckOutcome]) -> u64 {
    acks.iter().filter(|a| a.error.is_none()).map(|a| a.records).sum()
}

/// Acknowledged offsets `first..=last` of one partition, all of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AckRange {
    first: i64,
    last: i64,
    kind: AckType,
}

impl AckRange {
    fn records(&self) -> u64 {
        u64::try_from(self.last - self.first + 1).unwrap_or(0)
    }

    fn fetch_batch(&self) -> AcknowledgementBatch {
        AcknowledgementBatch::default()
            .with_first_offset(self.first)
            .with_last_offset(self.last)
            .with_acknowledge_types(vec![self.kind.wire()])
    }

    fn acknowledge_batch(&self) -> kafka_protocol::messages::share_acknowledge_request::AcknowledgementBatch {
        kafka_protocol::messages::share_acknowledge_request::AcknowledgementBatch::default()
            .with_first_offset(self.first)
            .with_last_offset(self.last)
            .with_acknowledge_types(vec![self.kind.wire()])
    }
}

/// Acknowledgements carried by one request: offsets per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AcksSent {
    by_partition: BTreeMap<i32, u64>,
    /// Acknowledgements dropped before sending (a session at epoch 0).
    dropped: Vec<AckOutcome>,
}

/// Partitions a ShareFetch adds to or drops from the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    added: BTreeSet<i32>,
    forgotten: BTreeSet<i32>,
}

/// A share session's state on the client: its epoch, the partitions it
/// holds, and the acknowledgements waiting for the next request. Plain data:
/// requests are built from it and answers applied to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShareSession {
    /// The epoch of the next request: 0 opens a session.
    epoch: i32,
    /// Partitions the broker's session holds.
    partitions: BTreeSet<i32>,
    /// Acknowledgements waiting, per partition, in offset order.
    pending: BTreeMap<i32, Vec<AckRange>>,
    /// Ranges in `pending`, for [`ACK_RANGES_MAX`].
    pending_ranges: usize,
}

impl ShareSession {
    /// The epoch the next request carries.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// Offsets waiting to be acknowledged.
    pub fn pending(&self) -> u64 {
        self.pending.values().flatten().map(AckRange::records).sum()
    }

    /// Queues an acknowledgement of `first..=last` of `partition` for the
    /// next request; merges it into the previous range when contiguous and
    /// of the same type.
    pub fn acknowledge(&mut self, partition: i32, first: i64, last: i64, kind: AckType) -> Result<(), ClientError> {
        if first < 0 || last < first {
            return Err(ClientError::InvalidArgument(format!(
                "cannot acknowledge offsets {first} to {last}"
            )));
        }
        let batches = self.pending.entry(partition).or_default();
        if let Some(prev) = batches.last_mut()
            && prev.last.checked_add(1) == Some(first)
            && prev.kind == kind
        {
            prev.last = last;
            return Ok(());
        }
        if self.pending_ranges >= ACK_RANGES_MAX {
            return Err(ClientError::InvalidArgument(format!(
                "{ACK_RANGES_MAX} acknowledgement ranges are waiting; fetch or flush first"
            )));
        }
        batches.push(AckRange { first, last, kind });
        self.pending_ranges += 1;
        Ok(())
    }

    /// The acknowledgements waiting, taken out of the session. At epoch 0
    /// there is no session to acknowledge in: they are dropped, and reported
    /// as failed with INVALID_SHARE_SESSION_EPOCH.
    fn take_pending(&mut self) -> (BTreeMap<i32, Vec<AckRange>>, AcksSent) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_ranges = 0;
        let mut sent = AcksSent::default();
        if self.epoch == 0 {
            sent.dropped = pending
                .iter()
                .map(|(p, batches)| AckOutcome {
                    partition: *p,
                    records: batches.iter().map(AckRange::records).sum(),
                    error: KafkaError::from_code(INVALID_SHARE_SESSION_EPOCH, None),
                })
                .collect();
            return (BTreeMap::new(), sent);
        }
        sent.by_partition = pending
            .iter()
            .map(|(p, batches)| (*p, batches.iter().map(AckRange::records).sum()))
            .collect();
        (pending, sent)
    }

    /// The next ShareFetch: reads `assigned` of the topic `topic_id`, with
    /// the acknowledgements waiting. Returns what it adds and drops and
    /// which acknowledgements it carries, for [`ShareSession::fetched`].
    pub fn fetch_request(
        &mut self,
        group: &str,
        member_id: &str,
        topic_id: Uuid,
        assigned: &BTreeSet<i32>,
        options: &ShareFetchOptions,
    ) -> (ShareFetchRequest, SessionChange, AcksSent) {
        let (mut acks, sent) = self.take_pending();
        let change = SessionChange {
            added: assigned.difference(&self.partitions).copied().collect(),
            forgotten: if self.epoch == 0 {
                BTreeSet::new()
            } else {
                self.partitions.difference(assigned).copied().collect()
            },
        };
        // Acknowledgements for a partition being dropped still go out: the
        // broker takes them before it forgets the partition.
        let named: BTreeSet<i32> = change.added.iter().chain(acks.keys()).copied().collect();
        let partitions: Vec<FetchPartition> = named
            .iter()
            .map(|p| {
                FetchPartition::default()
                    .with_partition_index(*p)
                    .with_acknowledgement_batches(
                        acks.remove(p)
                            .unwrap_or_default()
                            .iter()
                            .map(AckRange::fetch_batch)
                            .collect(),
                    )
            })
            .collect();
        let topics = if partitions.is_empty() {
            Vec::new()
        } else {
            vec![
                FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions),
            ]
        };
        let forgotten = if change.forgotten.is_empty() {
            Vec::new()
        } else {
            vec![
                ForgottenTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(change.forgotten.iter().copied().collect()),
            ]
        };
        let request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_string(group.to_owned()))))
            .with_member_id(Some(StrBytes::from_string(member_id.to_owned())))
            .with_share_session_epoch(self.epoch)
            .with_max_wait_ms(i32::try_from(options.max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(options.min_bytes)
            .with_max_bytes(options.bytes_max)
            .with_max_records(options.records_max)
            .with_batch_size(options.batch_size)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten);
        (request, change, sent)
    }

    /// Applies a ShareFetch answer: the session moves to its next epoch and
    /// partitions, and the records and acknowledgement outcomes for
    /// `topic_id` are returned. A request-level error resets the session
    /// (the next request opens a new one) and fails.
    pub fn fetched(
        &mut self,
        topic_id: Uuid,
        change: SessionChange,
        sent: AcksSent,
        response: ShareFetchResponse,
    ) -> Result<ShareFetched, ClientError> {
        if let Some(error) = kafka_error(response.error_code, response.error_message.as_ref()) {
            self.reset();
            return Err(ClientError::Kafka {
                context: "ShareFetch".to_owned(),
                error,
            });
        }
        self.advance(change);
        let mut out = ShareFetched {
            acquisition_lock_timeout_ms: response.acquisition_lock_timeout_ms,
            ..ShareFetched::default()
        };
        let mut answered = BTreeMap::new();
        for t in response.responses.into_iter().filter(|t| t.topic_id == topic_id) {
            for p in t.partitions {
                if sent.by_partition.contains_key(&p.partition_index) {
                    let error = kafka_error(p.acknowledge_error_code, p.acknowledge_error_message.as_ref());
                    answered.insert(p.partition_index, error);
                }
                out.partitions.push(SharePartition {
                    partition: p.partition_index,
                    error: kafka_error(p.error_code, p.error_message.as_ref()),
                    records: p.records.unwrap_or_default(),
                    acquired: p
                        .acquired_records
                        .iter()
                        .filter(|a| a.last_offset >= a.first_offset)
                        .map(|a| Acquired {
                            first_offset: a.first_offset,
                            last_offset: a.last_offset,
                            delivery_count: a.delivery_count,
                        })
                        .collect(),
                });
            }
        }
        out.acks = outcomes(sent, answered);
        Ok(out)
    }

    /// A ShareAcknowledge of the acknowledgements waiting, at the session's
    /// epoch, or at -1 to close the session; `None` when there is nothing
    /// to send (no session, or nothing to acknowledge and no session to
    /// close).
    pub fn acknowledge_request(
        &mut self,
        group: &str,
        member_id: &str,
        topic_id: Uuid,
        close: bool,
    ) -> Option<(ShareAcknowledgeRequest, AcksSent)> {
        if self.epoch == 0 || (self.pending.is_empty() && !close) {
            return None;
        }
        let (acks, sent) = self.take_pending();
        let partitions: Vec<AcknowledgePartition> = acks
            .into_iter()
            .map(|(p, batches)| {
                AcknowledgePartition::default()
                    .with_partition_index(p)
                    .with_acknowledgement_batches(batches.iter().map(AckRange::acknowledge_batch).collect())
            })
            .collect();
        let topics = if partitions.is_empty() {
            Vec::new()
        } else {
            vec![
                AcknowledgeTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions),
            ]
        };
        let request = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_string(group.to_owned()))))
            .with_member_id(Some(StrBytes::from_string(member_id.to_owned())))
            .with_share_session_epoch(if close { -1 } else { self.epoch })
            .with_topics(topics);
        if close {
            self.reset();
        }
        Some((request, sent))
    }

    /// Applies a ShareAcknowledge answer; returns the outcome per partition.
    pub fn acknowledged(
        &mut self,
        topic_id: Uuid,
        sent: AcksSent,
        response: ShareAcknowledgeResponse,
    ) -> Result<Vec<AckOutcome>, ClientError> {
        if let Some(error) = kafka_error(response.error_code, response.error_message.as_ref()) {
            self.reset();
            return Err(ClientError::Kafka {
                context: "ShareAcknowledge".to_owned(),
                error,
            });
        }
        if self.epoch != 0 {
            self.advance(SessionChange::default());
        }
        let answered = response
            .responses
            .iter()
            .filter(|t| t.topic_id == topic_id)
            .flat_map(|t| t.partitions.iter())
            .filter(|p| sent.by_partition.contains_key(&p.partition_index))
            .map(|p| (p.partition_index, kafka_error(p.error_code, p.error_message.as_ref())))
            .collect();
        Ok(outcomes(sent, answered))
    }

    /// The next epoch, and the partitions the broker's session now holds.
    fn advance(&mut self, change: SessionChange) {
        self.epoch = if self.epoch == i32::MAX { 1 } else { self.epoch + 1 };
        self.partitions.extend(change.added);
        for p in &change.forgotten {
            self.partitions.remove(p);
        }
    }

    /// Back to no session: the next request opens a new one. Acknowledgements
    /// queued since stay, to be reported dropped by that request.
    fn reset(&mut self) {
        self.epoch = 0;
        self.partitions.clear();
    }
}

/// Every acknowledged partition's outcome: the broker's answer, or
/// INVALID_RECORD_STATE for one it left out.
fn outcomes(sent: AcksSent, mut answered: BTreeMap<i32, Option<KafkaError>>) -> Vec<AckOutcome> {
    let mut out = sent.dropped;
    for (partition, records) in sent.by_partition {
        let error = answered
            .remove(&partition)
            .unwrap_or_else(|| KafkaError::from_code(INVALID_RECORD_STATE, None));
        out.push(AckOutcome {
            partition,
            records,
            error,
        });
    }
    out
}

/// One member of a share group on its own connection, subscribed to one
/// topic.
#[derive(Debug)]
pub struct ShareConsumer {
    connection: Connection,
    group: String,
    topic: String,
    /// The topic's id, as assignments and ShareFetch name it.
    topic_id: Uuid,
    member_id: String,
    /// The member epoch from the last heartbeat; 0 before joining.
    member_epoch: i32,
    /// Heartbeat interval the broker asked for.
    heartbeat_interval: Duration,
    last_heartbeat: Instant,
    /// Partitions of the topic assigned to this member.
    assigned: BTreeSet<i32>,
    session: ShareSession,
    options: ShareFetchOptions,
}

impl ShareConsumer {
    /// Joins `group` with `member_id` ([`member_id`]) for `topic`: looks the
    /// topic's id up and sends the first heartbeat (member epoch 0).
    pub async fn join(
        mut connection: Connection,
        group: &str,
        topic: &str,
        member_id: String,
        options: ShareFetchOptions,
    ) -> Result<ShareConsumer, ClientError> {
        let topic_id = topic_id(&mut connection, topic).await?;
        let mut consumer = ShareConsumer {
            connection,
            group: group.to_owned(),
            topic: topic.to_owned(),
            topic_id,
            member_id,
            member_epoch: 0,
            heartbeat_interval: Duration::from_secs(1),
            last_heartbeat: Instant::now(),
            assigned: BTreeSet::new(),
            session: ShareSession::default(),
            options,
        };
        consumer.heartbeat().await?;
        Ok(consumer)
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    pub fn member_epoch(&self) -> i32 {
        self.member_epoch
    }

    /// Partitions assigned, as of the last heartbeat.
    pub fn assigned(&self) -> &BTreeSet<i32> {
        &self.assigned
    }

    pub fn session(&self) -> &ShareSession {
        &self.session
    }

    /// Changes the limits of the next fetches.
    pub fn set_options(&mut self, options: ShareFetchOptions) {
        self.options = options;
    }

    /// Heartbeats if the broker's interval has passed.
    pub async fn heartbeat_if_due(&mut self) -> Result<(), ClientError> {
        if self.last_heartbeat.elapsed() >= self.heartbeat_interval {
            self.heartbeat().await?;
        }
        Ok(())
    }

    /// One heartbeat: joins at epoch 0, then keeps the membership; applies
    /// a new assignment when the answer carries one.
    pub async fn heartbeat(&mut self) -> Result<(), ClientError> {
        let request = heartbeat_request(&self.group, &self.member_id, self.member_epoch, &self.topic);
        let version = self.connection.version(ApiKey::ShareGroupHeartbeat)?;
        let response = self.connection.call(&request, version).await?;
        self.last_heartbeat = Instant::now();
        let beat = read_heartbeat(response, self.topic_id, &self.group)?;
        self.member_epoch = beat.member_epoch;
        if let Some(interval) = beat.interval {
            self.heartbeat_interval = interval;
        }
        if let Some(assigned) = beat.assigned {
            self.assigned = assigned;
        }
        Ok(())
    }

    /// Queues an acknowledgement for the next fetch.
    pub fn acknowledge(&mut self, partition: i32, first: i64, last: i64, kind: AckType) -> Result<(), ClientError> {
        self.session.acknowledge(partition, first, last, kind)
    }

    /// One ShareFetch of the assigned partitions, carrying the
    /// acknowledgements waiting; heartbeats first if one is due.
    pub async fn fetch(&mut self) -> Result<ShareFetched, ClientError> {
        self.heartbeat_if_due().await?;
        let (request, change, sent) = self.session.fetch_request(
            &self.group,
            &self.member_id,
            self.topic_id,
            &self.assigned,
            &self.options,
        );
        let version = self.connection.version(ApiKey::ShareFetch)?;
        let timeout = self.connection.config().request_timeout + self.options.max_wait;
        let response = match self.connection.call_within(&request, version, timeout).await {
            Ok(r) => r,
            Err(e) => {
                self.session.reset();
                return Err(e);
            }
        };
        self.session.fetched(self.topic_id, change, sent, response)
    }

    /// Sends the acknowledgements waiting with ShareAcknowledge, without
    /// fetching; nothing when none wait.
    pub async fn flush(&mut self) -> Result<Vec<AckOutcome>, ClientError> {
        self.acknowledge_now(false).await
    }

    /// Sends the acknowledgements waiting and closes the share session
    /// (epoch -1), then leaves the group (member epoch -1).
    pub async fn close(mut self) -> Result<Vec<AckOutcome>, ClientError> {
        let outcomes = self.acknowledge_now(true).await?;
        let request = heartbeat_request(&self.group, &self.member_id, -1, &self.topic);
        let version = self.connection.version(ApiKey::ShareGroupHeartbeat)?;
        let response = self.connection.call(&request, version).await?;
        check(
            response.error_code,
            response.error_message.map(|m| m.to_string()),
            || format!("leaving share group `{}`", self.group),
        )?;
        Ok(outcomes)
    }

    async fn acknowledge_now(&mut self, close: bool) -> Result<Vec<AckOutcome>, ClientError> {
        let Some((request, sent)) =
            self.session
                .acknowledge_request(&self.group, &self.member_id, self.topic_id, close)
        else {
            return Ok(Vec::new());
        };
        let version = self.connection.version(ApiKey::ShareAcknowledge)?;
        let response = match self.connection.call(&request, version).await {
            Ok(r) => r,
            Err(e) => {
                self.session.reset();
                return Err(e);
            }
        };
        self.session.acknowledged(self.topic_id, sent, response)
    }
}

/// The topic's id from Metadata.
async fn topic_id(connection: &mut Connection, topic: &str) -> Result<Uuid, ClientError> {
    use kafka_protocol::messages::MetadataRequest;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let version = connection.version(ApiKey::Metadata)?;
    let request = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(crate::admin::topic_name(topic))),
    ]));
    let response = connection.call(&request, version).await?;
    let t = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))
        .ok_or_else(|| ClientError::UnexpectedResponse(format!("Metadata does not mention topic `{topic}`")))?;
    check(t.error_code, None, || format!("looking up topic `{topic}`"))?;
    if t.topic_id.is_nil() {
        return Err(ClientError::UnexpectedResponse(format!(
            "the broker names no id for topic `{topic}` (Metadata v{version})"
        )));
    }
    Ok(t.topic_id)
}

/// A ShareGroupHeartbeat. The subscription goes in every heartbeat: it is
/// one topic name, and a broker that lost the member sees it again at once.
pub fn heartbeat_request(group: &str, member_id: &str, member_epoch: i32, topic: &str) -> ShareGroupHeartbeatRequest {
    let subscribed = (member_epoch >= 0).then(|| vec![TopicName(StrBytes::from_string(topic.to_owned()))]);
    ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_member_epoch(member_epoch)
        .with_subscribed_topic_names(subscribed)
}

/// What a heartbeat's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub member_epoch: i32,
    /// The interval the broker asks for, if it named one.
    pub interval: Option<Duration>,
    /// The new assignment's partitions of the topic, when the answer
    /// carries an assignment.
    pub assigned: Option<BTreeSet<i32>>,
}

/// Reads a heartbeat's answer; an error code fails it.
pub fn read_heartbeat(
    response: ShareGroupHeartbeatResponse,
    topic_id: Uuid,
    group: &str,
) -> Result<Heartbeat, ClientError> {
    check(
        response.error_code,
        response.error_message.map(|m| m.to_string()),
        || format!("heartbeat of share group `{group}`"),
    )?;
    Ok(Heartbeat {
        member_epoch: response.member_epoch,
        interval: u64::try_from(response.heartbeat_interval_ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis),
        assigned: response.assignment.map(|a| {
            a.topic_partitions
                .iter()
                .filter(|t| t.topic_id == topic_id)
                .flat_map(|t| t.partitions.iter().copied())
                .collect()
        }),
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::share_acknowledge_response::{self, ShareAcknowledgeTopicResponse};
    use kafka_protocol::messages::share_fetch_response::{AcquiredRecords, PartitionData, ShareFetchableTopicResponse};
    use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
    use kafka_protocol::protocol::{Decodable, Encodable};

    use super::*;

    const TOPIC: Uuid = Uuid::from_u128(0x0f1e_2d3c_4b5a_6978_8796_a5b4_c3d2_e1f0);
    const OTHER_TOPIC: Uuid = Uuid::from_u128(42);

    /// `message` encoded at v1 and decoded back by the codec: what the other
    /// side reads.
    fn wire<M: Encodable + Decodable>(message: &M) -> M {
        let mut buf = BytesMut::new();
        message.encode(&mut buf, 1).unwrap();
        M::decode(&mut buf.freeze(), 1).unwrap()
    }

    fn set(partitions: &[i32]) -> BTreeSet<i32> {
        partitions.iter().copied().collect()
    }

    fn request(session: &mut ShareSession, assigned: &[i32]) -> (ShareFetchRequest, SessionChange, AcksSent) {
        let (r, change, sent) = session.fetch_request("g", "m", TOPIC, &set(assigned), &ShareFetchOptions::default());
        (wire(&r), change, sent)
    }

    fn partition(index: i32) -> PartitionData {
        PartitionData::default().with_partition_index(index)
    }

    fn response(partitions: Vec<PartitionData>) -> ShareFetchResponse {
        wire(&ShareFetchResponse::default().with_responses(vec![
                ShareFetchableTopicResponse::default()
                    .with_topic_id(TOPIC)
                    .with_partitions(partitions),
            ]))
    }

    /// Acknowledgements of a request: (partition, first, last, types).
    fn acks_of(r: &ShareFetchRequest) -> Vec<(i32, i64, i64, Vec<i8>)> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| {
                p.acknowledgement_batches.iter().map(|b| {
                    (
                        p.partition_index,
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.clone(),
                    )
                })
            })
            .collect()
    }

    fn named(r: &ShareFetchRequest) -> Vec<i32> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect()
    }

    /// A session opened on `assigned`, now at epoch 1.
    fn opened(assigned: &[i32]) -> ShareSession {
        let mut s = ShareSession::default();
        let (_, change, sent) = request(&mut s, assigned);
        s.fetched(TOPIC, change, sent, response(vec![])).unwrap();
        s
    }

    #[test]
    fn member_ids_are_kafkas_text_form_of_a_uuid() {
        // Checked against Python's base64.urlsafe_b64encode, padding cut.
        assert_eq!(member_id(TOPIC), "Dx4tPEtaaXiHlqW0w9Lh8A");
        let mut bytes = [0u8; 16];
        bytes[..3].copy_from_slice(&[0xfb, 0xff, 0xfe]);
        bytes[15] = 0xff;
        assert_eq!(member_id(Uuid::from_bytes(bytes)), "-__-AAAAAAAAAAAAAAAA_w");
    }

    #[test]
    fn the_first_fetch_opens_a_session_naming_every_assigned_partition() {
        let mut s = ShareSession::default();
        let options = ShareFetchOptions {
            max_wait: Duration::from_millis(250),
            min_bytes: 1,
            bytes_max: 1 << 20,
            records_max: 300,
            batch_size: 100,
        };
        let (r, _, _) = s.fetch_request("workers", "member-1", TOPIC, &set(&[2, 0, 1]), &options);
        let r = wire(&r);
        assert_eq!(r.group_id.as_ref().map(|g| g.0.as_str()), Some("workers"));
        assert_eq!(r.member_id.as_ref().map(|m| m.as_str()), Some("member-1"));
        assert_eq!(r.share_session_epoch, 0);
        assert_eq!((r.max_wait_ms, r.min_bytes, r.max_bytes), (250, 1, 1 << 20));
        assert_eq!((r.max_records, r.batch_size), (300, 100));
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].topic_id, TOPIC);
        assert_eq!(named(&r), vec![0, 1, 2]);
        assert!(acks_of(&r).is_empty());
        assert!(r.forgotten_topics_data.is_empty());
    }

    #[test]
    fn acknowledgements_ride_on_the_next_fetch_merged_into_ranges() {
        let mut s = opened(&[0, 1]);
        assert_eq!(s.epoch(), 1);
        s.acknowledge(0, 0, 9, AckType::Accept).unwrap();
        s.acknowledge(0, 10, 19, AckType::Accept).unwrap();
        s.acknowledge(0, 20, 20, AckType::Release).unwrap();
        s.acknowledge(1, 5, 5, AckType::Reject).unwrap();
        assert_eq!(s.pending(), 22);
        let (r, change, sent) = request(&mut s, &[0, 1]);
        assert_eq!(r.share_session_epoch, 1);
        // Only the partitions with acknowledgements are named again.
        assert_eq!(named(&r), vec![0, 1]);
        assert_eq!(
            acks_of(&r),
            vec![(0, 0, 19, vec![1]), (0, 20, 20, vec![2]), (1, 5, 5, vec![3])]
        );
        assert_eq!(s.pending(), 0);
        let fetched = s
            .fetched(
                TOPIC,
                change,
                sent,
                response(vec![
                    partition(0).with_acquired_records(vec![
                        AcquiredRecords::default()
                            .with_first_offset(21)
                            .with_last_offset(30)
                            .with_delivery_count(1),
                    ]),
                    partition(1),
                ]),
            )
            .unwrap();
        assert_eq!(fetched.acknowledged(), 22);
        assert_eq!(fetched.acquired(), 10);
        assert_eq!(s.epoch(), 2);
        // Nothing to acknowledge: the next request names no partition.
        let (r, _, _) = request(&mut s, &[0, 1]);
        assert_eq!(r.share_session_epoch, 2);
        assert!(r.topics.is_empty());
    }

    #[test]
    fn acknowledgement_errors_and_partitions_left_out_are_reported_as_failed() {
        let mut s = opened(&[0, 1, 2]);
        s.acknowledge(0, 0, 9, AckType::Accept).unwrap();
        s.acknowledge(1, 0, 4, AckType::Accept).unwrap();
        s.acknowledge(2, 0, 1, AckType::Accept).unwrap();
        let (_, change, sent) = request(&mut s, &[0, 1, 2]);
        let fetched = s
            .fetched(
                TOPIC,
                change,
                sent,
                response(vec![
                    partition(0),
                    partition(1).with_acknowledge_error_code(INVALID_RECORD_STATE),
                ]),
            )
            .unwrap();
        let errors: Vec<(i32, u64, Option<String>)> = fetched
            .acks
            .iter()
            .map(|a| (a.partition, a.records, a.error.as_ref().map(KafkaError::name)))
            .collect();
        assert_eq!(
            errors,
            vec![
                (0, 10, None),
                (1, 5, Some("INVALID_RECORD_STATE".into())),
                (2, 2, Some("INVALID_RECORD_STATE".into())),
            ]
        );
        assert_eq!(fetched.acknowledged(), 10);
    }

    #[test]
    fn answers_for_other_topics_are_ignored() {
        let mut s = opened(&[0]);
        s.acknowledge(0, 0, 0, AckType::Accept).unwrap();
        let (_, change, sent) = request(&mut s, &[0]);
        let other = ShareFetchResponse::default().with_responses(vec![
            ShareFetchableTopicResponse::default()
                .with_topic_id(OTHER_TOPIC)
                .with_partitions(vec![partition(0)]),
        ]);
        let fetched = s.fetched(TOPIC, change, sent, wire(&other)).unwrap();
        assert!(fetched.partitions.is_empty());
        assert_eq!(fetched.acknowledged(), 0);
        assert_eq!(
            fetched.acks[0].error.as_ref().map(KafkaError::name),
            Some("INVALID_RECORD_STATE".into())
        );
    }

    #[test]
    fn a_request_level_error_resets_the_session_and_later_acknowledgements_are_dropped() {
        let mut s = opened(&[0]);
        let (_, change, sent) = request(&mut s, &[0]);
        // SHARE_SESSION_NOT_FOUND
        let refused = wire(&ShareFetchResponse::default().with_error_code(122));
        let e = s.fetched(TOPIC, change, sent, refused).unwrap_err();
        assert_eq!(
            e.kafka_error().map(KafkaError::name),
            Some("SHARE_SESSION_NOT_FOUND".into())
        );
        assert_eq!(s.epoch(), 0);
        // A session at epoch 0 has nothing to acknowledge against.
        s.acknowledge(0, 3, 4, AckType::Accept).unwrap();
        let (r, change, sent) = request(&mut s, &[0]);
        assert_eq!(r.share_session_epoch, 0);
        assert_eq!(named(&r), vec![0]);
        assert!(acks_of(&r).is_empty());
        let fetched = s.fetched(TOPIC, change, sent, response(vec![partition(0)])).unwrap();
        assert_eq!(fetched.acks.len(), 1);
        assert_eq!(fetched.acks[0].records, 2);
        assert_eq!(
            fetched.acks[0].error.as_ref().map(KafkaError::name),
            Some("INVALID_SHARE_SESSION_EPOCH".into())
        );
    }

    #[test]
    fn partitions_added_later_are_named_and_dropped_ones_forgotten() {
        let mut s = opened(&[0, 1]);
        let (r, change, sent) = request(&mut s, &[1, 2]);
        assert_eq!(named(&r), vec![2]);
        assert_eq!(r.forgotten_topics_data.len(), 1);
        assert_eq!(r.forgotten_topics_data[0].topic_id, TOPIC);
        assert_eq!(r.forgotten_topics_data[0].partitions, vec![0]);
        s.fetched(TOPIC, change, sent, response(vec![])).unwrap();
        let (r, _, _) = request(&mut s, &[1, 2]);
        assert!(r.topics.is_empty() && r.forgotten_topics_data.is_empty());
    }

    #[test]
    fn the_session_epoch_wraps_from_the_largest_to_one() {
        let mut s = opened(&[0]);
        s.epoch = i32::MAX;
        let (r, change, sent) = request(&mut s, &[0]);
        assert_eq!(r.share_session_epoch, i32::MAX);
        s.fetched(TOPIC, change, sent, response(vec![])).unwrap();
        assert_eq!(s.epoch(), 1);
    }

    #[test]
    fn share_acknowledge_carries_the_epoch_and_closing_sends_minus_one() {
        let mut s = ShareSession::default();
        s.acknowledge(0, 0, 0, AckType::Accept).unwrap();
        assert!(
            s.acknowledge_request("g", "m", TOPIC, false).is_none(),
            "no session yet"
        );
        let mut s = opened(&[0]);
        assert!(
            s.acknowledge_request("g", "m", TOPIC, false).is_none(),
            "nothing to send"
        );
        s.acknowledge(0, 0, 4, AckType::Accept).unwrap();
        let (r, sent) = s.acknowledge_request("g", "m", TOPIC, false).unwrap();
        let r = wire(&r);
        assert_eq!(r.share_session_epoch, 1);
        let batch = &r.topics[0].partitions[0].acknowledgement_batches[0];
        assert_eq!(
            (batch.first_offset, batch.last_offset, batch.acknowledge_types.clone()),
            (0, 4, vec![1])
        );
        let answer = wire(&ShareAcknowledgeResponse::default().with_responses(vec![
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(TOPIC)
                .with_partitions(vec![share_acknowledge_response::PartitionData::default().with_partition_index(0)]),
        ]));
        let outcomes = s.acknowledged(TOPIC, sent, answer).unwrap();
        assert_eq!(acknowledged(&outcomes), 5);
        assert_eq!(s.epoch(), 2);
        let (r, _) = s.acknowledge_request("g", "m", TOPIC, true).unwrap();
        assert_eq!(wire(&r).share_session_epoch, -1);
        assert_eq!(s.epoch(), 0);
    }

    #[test]
    fn acknowledgement_ranges_waiting_are_bounded_and_checked() {
        let mut s = opened(&[0]);
        assert!(s.acknowledge(0, 5, 4, AckType::Accept).is_err());
        assert!(s.acknowledge(0, -1, 4, AckType::Accept).is_err());
        // Alternating types never merge.
        for i in 0..ACK_RANGES_MAX as i64 {
            let kind = if i % 2 == 0 { AckType::Accept } else { AckType::Release };
            s.acknowledge(0, i, i, kind).unwrap();
        }
        // The last range was a release: an acceptance after it is one more.
        let last = ACK_RANGES_MAX as i64;
        assert!(s.acknowledge(0, last, last, AckType::Accept).is_err());
        // A range that merges into the last still fits.
        s.acknowledge(0, last, last, AckType::Release).unwrap();
    }

    #[test]
    fn heartbeats_read_the_epoch_interval_and_this_topics_partitions() {
        let r = heartbeat_request("workers", "m", 0, "jobs");
        let r = wire(&r);
        assert_eq!(r.member_epoch, 0);
        assert_eq!(
            r.subscribed_topic_names
                .map(|t| t.iter().map(|n| n.0.to_string()).collect::<Vec<_>>()),
            Some(vec!["jobs".to_owned()])
        );
        assert_eq!(
            wire(&heartbeat_request("workers", "m", -1, "jobs")).subscribed_topic_names,
            None
        );
        let answer = wire(
            &ShareGroupHeartbeatResponse::default()
                .with_member_epoch(3)
                .with_heartbeat_interval_ms(5_000)
                .with_assignment(Some(Assignment::default().with_topic_partitions(vec![
                    TopicPartitions::default().with_topic_id(TOPIC).with_partitions(vec![4, 1]),
                    TopicPartitions::default().with_topic_id(OTHER_TOPIC).with_partitions(vec![0]),
                ]))),
        );
        let beat = read_heartbeat(answer, TOPIC, "workers").unwrap();
        assert_eq!(beat.member_epoch, 3);
        assert_eq!(beat.interval, Some(Duration::from_secs(5)));
        assert_eq!(beat.assigned, Some(set(&[1, 4])));
        let unchanged = wire(&ShareGroupHeartbeatResponse::default().with_member_epoch(3));
        assert_eq!(read_heartbeat(unchanged, TOPIC, "workers").unwrap().assigned, None);
        // Any error code fails the heartbeat, named.
        let refused = wire(&ShareGroupHeartbeatResponse::default().with_error_code(25));
        let e = read_heartbeat(refused, TOPIC, "workers").unwrap_err();
        assert_eq!(e.kafka_error().map(KafkaError::name), Some("UNKNOWN_MEMBER_ID".into()));
    }
}
