//! Consumers in a group: membership through the consumer protocol (KIP-848
//! ConsumerGroupHeartbeat), the broker assigning the partitions.
//!
//! All of a stream's consumers join before the clock starts and the run waits
//! until their assignments are settled (disjoint, covering every partition), so
//! no partition changes hands while records are timed. Positions are not
//! committed: a benchmark reads from where the topic ended when it began.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use veltrix_client::kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use veltrix_client::kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::{Client, ClientError, KafkaError};

/// How long a member may go without a heartbeat before the broker takes its
/// partitions back (asked for on joining).
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// How long the run waits for the group's assignments to settle.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

/// One member of a group, subscribed to one topic.
#[derive(Debug)]
pub struct Member {
    group: String,
    topic: String,
    /// The topic's id as the broker names it in assignments.
    topic_id: uuid::Uuid,
    member_id: String,
    epoch: i32,
    interval: Duration,
    last_beat: Instant,
    assigned: BTreeSet<i32>,
}

impl Member {
    /// Joins `group` (epoch 0) on `client`'s connection.
    pub async fn join(client: &mut Client, group: &str, topic: &str) -> Result<Member, ClientError> {
        let metadata = client.metadata(Some(&[topic])).await?;
        let id = metadata
            .topics
            .first()
            .and_then(|t| t.id.as_deref())
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| ClientError::UnexpectedResponse(format!("no topic id for {topic}")))?;
        let mut member = Member {
            group: group.to_owned(),
            topic: topic.to_owned(),
            topic_id: id,
            member_id: String::new(),
            epoch: 0,
            interval: Duration::from_secs(1),
            last_beat: Instant::now(),
            assigned: BTreeSet::new(),
        };
        member.beat(client).await?;
        Ok(member)
    }

    /// Partitions assigned, as last applied.
    pub fn assigned(&self) -> &BTreeSet<i32> {
        &self.assigned
    }

    /// Heartbeats if the broker's interval has passed; `true` when the
    /// assignment changed.
    pub async fn beat_if_due(&mut self, client: &mut Client) -> Result<bool, ClientError> {
        if self.last_beat.elapsed() < self.interval {
            return Ok(false);
        }
        self.beat(client).await
    }

    /// One heartbeat, reporting the partitions owned (a revocation is
    /// acknowledged by the next one); `true` when the assignment changed.
    pub async fn beat(&mut self, client: &mut Client) -> Result<bool, ClientError> {
        let owned = vec![
            TopicPartitions::default()
                .with_topic_id(self.topic_id)
                .with_partitions(self.assigned.iter().copied().collect()),
        ];
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(self.topic.clone()))]))
            .with_topic_partitions(Some(owned));
        let r = self.call(client, &request).await?;
        self.last_beat = Instant::now();
        if let Some(error) = KafkaError::from_code(r.error_code, r.error_message.map(|m| m.to_string())) {
            return Err(ClientError::Kafka {
                context: format!("heartbeat of group {}", self.group),
                error,
            });
        }
        if let Some(id) = r.member_id.filter(|id| !id.is_empty()) {
            self.member_id = id.to_string();
        }
        self.epoch = r.member_epoch;
        if r.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(r.heartbeat_interval_ms as u64);
        }
        let Some(assignment) = r.assignment else {
            return Ok(false);
        };
        let now: BTreeSet<i32> = assignment
            .topic_partitions
            .iter()
            .filter(|t| t.topic_id == self.topic_id)
            .flat_map(|t| t.partitions.iter().copied())
            .collect();
        let changed = now != self.assigned;
        self.assigned = now;
        Ok(changed)
    }

    /// Leaves the group (epoch -1), so its partitions go to the others at once.
    pub async fn leave(&mut self, client: &mut Client) -> Result<(), ClientError> {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.group.clone())))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_member_epoch(-1);
        self.call(client, &request).await.map(|_| ())
    }

    async fn call(
        &self,
        client: &mut Client,
        request: &ConsumerGroupHeartbeatRequest,
    ) -> Result<ConsumerGroupHeartbeatResponse, ClientError> {
        let connection = client.connection();
        let version = connection.version(ApiKey::ConsumerGroupHeartbeat)?;
        connection.call(request, version).await
    }
}

/// A member that joined, and the connection it heartbeats on.
pub struct Joined {
    pub client: Client,
    pub member: Member,
}

/// Heartbeats every member until their assignments are disjoint and cover
/// `0..partitions`, or fails after [`SETTLE_TIMEOUT`].
pub async fn settle(members: &mut [Joined], partitions: u32) -> Result<(), ClientError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        for j in members.iter_mut() {
            j.member.beat(&mut j.client).await?;
        }
        let mut seen = BTreeSet::new();
        let disjoint = members
            .iter()
            .all(|j| j.member.assigned().iter().all(|p| seen.insert(*p)));
        if disjoint && seen.len() == partitions as usize {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClientError::UnexpectedResponse(format!(
                "the group's assignments did not settle within {} s",
                SETTLE_TIMEOUT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
