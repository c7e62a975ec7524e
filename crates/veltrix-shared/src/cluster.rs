//! The cluster's shared state beside the log: which brokers are alive (by
//! lease), the topics, producer ids, and consumer groups' committed offsets.
//! What a stateless broker needs from PostgreSQL besides the [`Catalog`]'s
//! batches, and nothing more.
//!
//! [`crate::PgCluster`] is the real one; [`crate::MemCluster`] keeps the same
//! rules in memory for unit tests. Time, for leases, is the database's clock
//! (`now()`), never a broker's, so brokers' clocks may disagree.
//!
//! [`Catalog`]: crate::Catalog

use std::future::Future;

use crate::error::Result;
use crate::limits::check;

/// A broker process, as it registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLease {
    /// The broker's id (Kafka's node id), unique among live brokers.
    pub broker_id: i32,
    /// Random per process start: tells a restarted broker from a second
    /// process claiming the same id.
    pub incarnation: i64,
    /// Host and port its clients are told (Metadata).
    pub host: String,
    pub port: i32,
    /// Every Kafka listener's advertised address, by listener name: a
    /// client is told the other brokers' addresses on the listener it came
    /// through (TLS to TLS, SASL to SASL).
    pub listeners: Vec<ListenerAddr>,
}

/// A listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAddr {
    pub name: String,
    pub host: String,
    pub port: i32,
}

/// Listeners as the metadata store keeps them: `name=host:port`, one a line.
pub(crate) fn encode_listeners(listeners: &[ListenerAddr]) -> String {
    listeners
        .iter()
        .map(|l| format!("{}={}:{}", l.name, l.host, l.port))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The inverse of [`encode_listeners`]; lines that do not parse are left out.
pub(crate) fn decode_listeners(text: &str) -> Vec<ListenerAddr> {
    text.lines()
        .filter_map(|line| {
            let (name, addr) = line.split_once('=')?;
            let (host, port) = addr.rsplit_once(':')?;
            Some(ListenerAddr {
                name: name.to_owned(),
                host: host.to_owned(),
                port: port.parse().ok()?,
            })
        })
        .collect()
}

/// A broker whose lease has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveBroker {
    pub broker_id: i32,
    pub host: String,
    pub port: i32,
    pub listeners: Vec<ListenerAddr>,
}

impl LiveBroker {
    /// Its address on the listener named `name`, else its default one.
    pub fn address_on(&self, name: &str) -> (&str, i32) {
        self.listeners
            .iter()
            .find(|l| l.name == name)
            .map_or((self.host.as_str(), self.port), |l| (l.host.as_str(), l.port))
    }
}

/// A topic as every broker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRow {
    pub name: String,
    /// The topic's id, the same on every broker.
    pub id: [u8; 16],
    pub partitions: i32,
    /// The topic's settings, as the engine serializes them (opaque here).
    pub config: String,
}

/// A group's committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRow {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

/// The cluster's shared state.
pub trait Cluster: Send + Sync + 'static {
    /// Registers a broker with a lease of `lease_ms` from now. Refused with
    /// [`crate::Error::BrokerIdInUse`] while another incarnation holds a live
    /// lease on the same id; an expired lease (a dead process) is taken over.
    fn register(&self, lease: &BrokerLease, lease_ms: u64) -> impl Future<Output = Result<()>> + Send;

    /// Extends the lease to `lease_ms` from now. [`crate::Error::LeaseLost`]
    /// when it expired meanwhile or another incarnation holds the id: the
    /// broker must stop acknowledging what depends on it and register anew.
    fn renew(&self, broker_id: i32, incarnation: i64, lease_ms: u64) -> impl Future<Output = Result<()>> + Send;

    /// Ends the lease at once (a clean shutdown), if this incarnation holds it.
    fn resign(&self, broker_id: i32, incarnation: i64) -> impl Future<Output = Result<()>> + Send;

    /// The brokers whose leases have not expired, by id.
    fn live_brokers(&self) -> impl Future<Output = Result<Vec<LiveBroker>>> + Send;

    /// Creates a topic and its partitions (each at offset 0) in one
    /// transaction; [`crate::Error::TopicExists`] if the name is taken.
    fn create_topic(&self, topic: &TopicRow) -> impl Future<Output = Result<()>> + Send;

    /// Every topic, by name.
    fn topics(&self) -> impl Future<Output = Result<Vec<TopicRow>>> + Send;

    /// Deletes a topic with its partitions, batches, producers' state and
    /// groups' offsets in one transaction; the objects stay for the
    /// collector. False if there was no such topic.
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Grows a topic to `total` partitions (never shrinks; the new ones start
    /// at offset 0). [`crate::Error::UnknownTopic`] if there is no such topic.
    fn set_partitions(&self, name: &str, total: i32) -> impl Future<Output = Result<()>> + Send;

    /// Replaces a topic's settings. [`crate::Error::UnknownTopic`] if there
    /// is no such topic.
    fn set_topic_config(&self, name: &str, config: &str) -> impl Future<Output = Result<()>> + Send;

    /// Reserves `count` producer ids, never handed out before by any broker:
    /// answers the first (ids are `first..first + count`, all >= 0).
    fn allocate_producer_ids(&self, count: i64) -> impl Future<Output = Result<i64>> + Send;

    /// Stores a group's offsets in one transaction, only while the broker's
    /// lease (`broker_id`, `incarnation`) is live, checked in the same
    /// transaction: [`crate::Error::LeaseLost`] otherwise, and nothing stored.
    fn commit_offsets(
        &self,
        group: &str,
        broker_id: i32,
        incarnation: i64,
        offsets: &[OffsetRow],
    ) -> impl Future<Output = Result<()>> + Send;

    /// A group's committed offsets, by topic and partition.
    fn fetch_offsets(&self, group: &str) -> impl Future<Output = Result<Vec<OffsetRow>>> + Send;

    /// Deletes a group's offsets: of the partitions named, or all of them.
    fn delete_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The groups with committed offsets, by name.
    fn groups(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Takes a share-partition's state over for the broker (`broker_id`,
    /// `incarnation`), only while its lease is live ([`crate::Error::LeaseLost`]
    /// otherwise): its claim goes up by one, so whatever an earlier claim
    /// stores after is refused. Answers the new claim, the state stored (if
    /// any) and the group's settings as of the claim.
    fn claim_share_state(
        &self,
        key: &ShareKey,
        broker_id: i32,
        incarnation: i64,
    ) -> impl Future<Output = Result<ShareClaim>> + Send;

    /// Replaces a share-partition's state, only under `claim` (the last one
    /// taken: [`crate::Error::ShareStateMoved`] otherwise) and while the
    /// broker's lease is live. At most [`SHARE_STATE_BYTES_MAX`].
    fn store_share_state(
        &self,
        key: &ShareKey,
        broker: (i32, i64),
        claim: i64,
        state: &ShareState,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Replaces a share group's own settings (as the engine writes them,
    /// opaque here; empty removes them).
    fn set_share_settings(&self, group: &str, settings: &str) -> impl Future<Output = Result<()>> + Send;

    /// Every share group's own settings, by group.
    fn share_settings(&self) -> impl Future<Output = Result<Vec<(String, String)>>> + Send;

    /// Deletes a share group's state (every share-partition's, so whatever
    /// a broker still holds of it is refused when stored) and settings.
    fn delete_share_group(&self, group: &str) -> impl Future<Output = Result<()>> + Send;

    /// The current claim on each of these share-partitions that has a row
    /// (a broker compares them with those it holds, to drop copies another
    /// broker or an administrator has taken over since).
    fn share_claims(&self, keys: &[ShareKey]) -> impl Future<Output = Result<Vec<(ShareKey, i64)>>> + Send;

    /// The start offset of each of a group's share-partitions with a stored
    /// state, by topic id and partition, at most [`SHARE_STARTS_LISTED_MAX`].
    fn share_starts(&self, group: &str) -> impl Future<Output = Result<Vec<(ShareKey, i64)>>> + Send;

    /// One transaction, only while the broker's lease is live: each of the
    /// group's share-partitions named gets the state given (its claim
    /// raised, so the broker serving it has its next store refused and
    /// loads it again) or, for `None`, loses its state. A share-partition
    /// named twice gets the last.
    fn set_share_states(
        &self,
        group: &str,
        broker: (i32, i64),
        states: &[([u8; 16], i32, Option<ShareState>)],
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Share-partitions [`Cluster::share_starts`] lists at most: what one
/// AlterShareGroupOffsets may name, ten times over.
pub const SHARE_STARTS_LISTED_MAX: usize = 100_000;

/// A share-partition (a share group's view of one partition): the topic by
/// its id, so a topic deleted and created again starts afresh.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShareKey {
    pub group: String,
    pub topic_id: [u8; 16],
    pub partition: i32,
}

/// A share-partition's state as stored: its start offset and the engine's
/// ranges, which the catalog does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareState {
    pub start_offset: i64,
    pub ranges: Vec<u8>,
}

/// What [`Cluster::claim_share_state`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareClaim {
    /// The claim this broker holds now: it alone may store.
    pub claim: i64,
    pub state: Option<ShareState>,
    /// The group's own settings (as [`Cluster::set_share_settings`] stored
    /// them), `None` when it sets none.
    pub settings: Option<String>,
}

/// Bytes of one share-partition's stored ranges, at most.
pub const SHARE_STATE_BYTES_MAX: usize = 4 << 20;

pub(crate) fn check_share_state(state: &ShareState) -> Result<()> {
    if state.ranges.len() > SHARE_STATE_BYTES_MAX {
        return Err(crate::Error::InvalidLimit {
            name: "share state bytes",
            value: state.ranges.len() as u64,
            min: 0,
            max: SHARE_STATE_BYTES_MAX as u64,
        });
    }
    Ok(())
}

/// The shortest lease `register` and `renew` accept (ms).
pub const LEASE_MS_MIN: u64 = 100;
/// The longest lease `register` and `renew` accept (ms): a dead broker's
/// share waits at most this long.
pub const LEASE_MS_MAX: u64 = 600_000;
/// Partitions of one topic, at most.
pub const TOPIC_PARTITIONS_MAX: i32 = 100_000;
/// Producer ids reserved by one `allocate_producer_ids`, at most.
pub const PRODUCER_IDS_MAX: i64 = 1_000_000;

pub(crate) fn check_lease_ms(lease_ms: u64) -> Result<()> {
    check("lease_ms", lease_ms, LEASE_MS_MIN, LEASE_MS_MAX)
}

/// A topic's partition count, at least `min` (1 for a new topic, its
/// current count when it grows).
pub(crate) fn check_partitions(partitions: i32, min: i32) -> Result<()> {
    let value = u64::try_from(partitions).unwrap_or(0);
    check("partitions", value, min.max(1) as u64, TOPIC_PARTITIONS_MAX as u64)
}

pub(crate) fn check_producer_ids(count: i64) -> Result<()> {
    let value = u64::try_from(count).unwrap_or(0);
    check("producer ids", value, 1, PRODUCER_IDS_MAX as u64)
}

#[cfg(test)]
mod listener_tests {
    use super::*;

    #[test]
    fn listeners_round_trip_and_a_broker_is_told_on_the_listener_asked_through() {
        let listeners = vec![
            ListenerAddr {
                name: "kafka".into(),
                host: "10.0.0.1".into(),
                port: 9092,
            },
            ListenerAddr {
                name: "secure".into(),
                host: "::1".into(),
                port: 9093,
            },
        ];
        let text = encode_listeners(&listeners);
        assert_eq!(decode_listeners(&text), listeners);
        assert_eq!(decode_listeners("nonsense\nx=y\n"), Vec::new());
        let b = LiveBroker {
            broker_id: 1,
            host: "10.0.0.1".into(),
            port: 9092,
            listeners,
        };
        assert_eq!(b.address_on("secure"), ("::1", 9093));
        assert_eq!(b.address_on("unknown"), ("10.0.0.1", 9092));
    }
}
