//! A small async Kafka client on the `kafka-protocol` codec: what the `veltrix`
//! command-line tools need, and no more.
//!
//! [`Client`] holds one connection ([`Connection`]) to the bootstrap broker and
//! offers typed helpers for Metadata, CreateTopics, DeleteTopics,
//! DescribeConfigs, Produce, Fetch, ListOffsets and the administration of
//! consumer groups (ListGroups, DescribeGroups, OffsetFetch, OffsetCommit,
//! DeleteGroups), and [`ShareConsumer`], a member of a share group (KIP-932:
//! ShareGroupHeartbeat, ShareFetch, ShareAcknowledge); each picks the highest API version both sides speak and
//! fills only the fields that exist in it. [`BatchBuilder`] packs records into
//! a RecordBatch v2 of bounded size, and [`decode_batches`] reads fetched
//! batches back, decompressing within a bound. [`decode_subscription`] and
//! [`decode_assignment`] read the consumer protocol's member bytes that
//! DescribeGroups returns. [`partitioner`] chooses partitions as the Java
//! client does.
//!
//! Every request goes to the bootstrap broker. A Veltrix cluster is one broker,
//! which leads every partition; against a multi-broker Kafka cluster, requests
//! for partitions led elsewhere fail with NOT_LEADER_OR_FOLLOWER, reported as
//! such rather than followed.
//!
//! Bounds: responses are at most [`ClientConfig::response_bytes_max`], built
//! batches at most the builder's `batch_bytes_max`, and a decompressed batch at
//! most [`DecodeLimits::decompressed_bytes_max`]. Record counts inside a fetched
//! batch are checked against the bytes that hold them before the codec sizes
//! anything from them. The codec (patched, see `vendor/kafka-protocol/PATCHES.md`)
//! refuses a count on the wire larger than the bytes that follow it before it
//! sizes anything from it.
//!
//! Connections speak Kafka's four security protocols ([`Security`]): TLS
//! with rustls ([`TlsSettings`]: the CAs of a PEM file or the built-in roots,
//! an optional client certificate) and SASL ([`SaslSettings`]: PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512, the server's SCRAM signature checked).
//!
//! Errors are [`ClientError`]; a Kafka error code is reported under its Java
//! name ([`KafkaError`]). Nothing read from the network is unwrapped.

mod admin;
mod batch;
mod compression;
mod connection;
mod consumer_protocol;
mod error;
mod fetch;
mod group;
pub mod partitioner;
mod produce;
mod sasl;
mod security;
mod share;
mod stream;
mod tls;

pub use admin::{
    BrokerMetadata, ClusterMetadata, ConfigEntry, CreatedTopic, PartitionMetadata, TopicMetadata, config_source_name,
};
pub use batch::{
    BATCH_OVERHEAD_BYTES, BatchBuilder, DecodeLimits, FetchedBatch, Header, ProducerRecord, Pushed, decode_batches,
    encode_records, plain_record,
};
pub use connection::{
    CLIENT_VERSIONS, ClientConfig, Connection, ConnectionReader, ConnectionWriter, Security,
    UNAUTHENTICATED_RESPONSE_BYTES_MAX, client_versions, pick_version,
};
pub use consumer_protocol::{
    CONSUMER_PROTOCOL_TYPE, ConsumerAssignment, ConsumerSubscription, TopicPartitions, decode_assignment,
    decode_subscription,
};
pub use error::{ClientError, KafkaError, error_name};
pub use fetch::{FetchOptions, FetchedPartition, ListedOffset, OffsetSpec};
pub use group::{
    CommittedOffset, GroupDescription, GroupMember, ListedGroup, OffsetToCommit, SHARE_PROTOCOL_TYPE, ShareStartOffset,
    is_active_group_error,
};
/// The codec, for requests without a typed helper sent through
/// [`Connection::call`].
pub use kafka_protocol;
pub use kafka_protocol::records::Record;
pub use produce::{Acks, PartitionAck};
pub use sasl::{
    CLIENT_NONCE_RANDOM_BYTES, Password, SCRAM_ITERATIONS_MAX, SCRAM_ITERATIONS_MIN, SCRAM_MESSAGE_BYTES_MAX,
    SaslMechanism, SaslSettings, ScramClient, ScramError, ScramHash, client_nonce,
};
pub use security::{Acl, AclFilter, ScramUpsert, UserCredentials};
pub use share::{
    ACK_RANGES_MAX, AckOutcome, AckType, AcksSent, Acquired, Heartbeat, SessionChange, ShareConsumer,
    ShareFetchOptions, ShareFetched, SharePartition, ShareSession, acknowledged, heartbeat_request, member_id,
    read_heartbeat,
};
pub use tls::{ClientCertificate, PEM_CERTIFICATES_MAX, TlsFailure, TlsSettings};

/// A client of one broker: a negotiated connection and typed helpers on it.
#[derive(Debug)]
pub struct Client {
    connection: Connection,
}

impl Client {
    /// Connects to `bootstrap` (`HOST:PORT`) and negotiates API versions.
    pub async fn connect(bootstrap: &str, config: ClientConfig) -> Result<Client, ClientError> {
        Ok(Client {
            connection: Connection::connect(bootstrap, config).await?,
        })
    }

    /// The connection, for requests without a typed helper.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }

    /// The connection, to split it for pipelining
    /// ([`Connection::into_split`]).
    pub fn into_connection(self) -> Connection {
        self.connection
    }
}
