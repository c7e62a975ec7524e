//! Admin answers as Kafka gives them: CreateTopics with a manual replica
//! assignment, ListOffsets for the largest timestamp (KIP-734), the authorized
//! operations of topics, groups and the cluster, and the documented table of
//! served APIs against what ApiVersions advertises.

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreateTopicsRequest,
    CreateTopicsResponse, DescribeClusterRequest, DescribeGroupsRequest, GroupId, JoinGroupRequest, ListOffsetsRequest,
    MetadataRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use veltrix_core::BrokerConfig;
use veltrix_core::groups::GroupConfig;
use veltrix_kafka::errors::{self, ResponseError};

use super::{Client, create_topic, produce, start, start_with_broker, topic};

/// Kafka's bit fields of every operation: READ, WRITE, CREATE, DELETE, ALTER,
/// DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS for a topic; READ, DESCRIBE and
/// DELETE for a group; ALTER, ALTER_CONFIGS, CLUSTER_ACTION, CREATE, DESCRIBE,
/// DESCRIBE_CONFIGS and IDEMPOTENT_WRITE for the cluster.
const TOPIC_OPERATIONS: i32 = 1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;
const GROUP_OPERATIONS: i32 = 1 << 3 | 1 << 6 | 1 << 8;
const CLUSTER_OPERATIONS: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;
const NOT_ASKED: i32 = i32::MIN;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A topic of `partitions` and `replication_factor` with these replica lists,
/// by partition index.
fn assigned(name: &str, partitions: i32, replication_factor: i16, lists: &[(i32, &[i32])]) -> CreatableTopic {
    let mut t = CreatableTopic::default();
    t.name = topic(name);
    t.num_partitions = partitions;
    t.replication_factor = replication_factor;
    t.assignments = lists
        .iter()
        .map(|(index, ids)| {
            CreatableReplicaAssignment::default()
                .with_partition_index(*index)
                .with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect())
        })
        .collect();
    t
}

async fn create(c: &mut Client, t: CreatableTopic, validate_only: bool) -> CreateTopicsResponse {
    c.call(
        CreateTopicsRequest::default()
            .with_topics(vec![t])
            .with_validate_only(validate_only),
        7,
    )
    .await
}

#[tokio::test]
async fn create_topics_takes_an_assignment_of_one_replica_on_this_broker() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;

    let r = create(&mut c, assigned("dry", -1, -1, &[(1, &[0]), (0, &[0])]), true).await;
    assert_eq!(r.topics[0].error_code, errors::NONE, "{:?}", r.topics[0].error_message);
    assert!(s.broker.topic("dry").is_none(), "validate_only creates nothing");

    let r = create(&mut c, assigned("a", -1, -1, &[(1, &[0]), (0, &[0]), (2, &[0])]), false).await;
    let t = &r.topics[0];
    assert_eq!(t.error_code, errors::NONE, "{:?}", t.error_message);
    assert_eq!((t.num_partitions, t.replication_factor), (3, 1));
    assert_eq!(s.broker.topic("a").unwrap().partitions.len(), 3);

    let invalid_request = ResponseError::InvalidRequest.code();
    let invalid_assignment = ResponseError::InvalidReplicaAssignment.code();
    let cases: [(CreatableTopic, i16, &str); 7] = [
        (
            assigned("b", -1, 1, &[(0, &[0])]),
            invalid_request,
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        ),
        (
            assigned("b", 1, -1, &[(0, &[0])]),
            invalid_request,
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        ),
        (
            assigned("b", -1, -1, &[(0, &[0]), (0, &[0])]),
            invalid_assignment,
            "Found multiple manual partition assignments for partition 0",
        ),
        (
            assigned("b", -1, -1, &[(0, &[])]),
            invalid_assignment,
            "The manual partition assignment includes an empty replica list.",
        ),
        (
            assigned("b", -1, -1, &[(0, &[0]), (2, &[0])]),
            invalid_assignment,
            "partitions should be a consecutive 0-based integer sequence",
        ),
        (
            assigned("b", -1, -1, &[(0, &[1])]),
            invalid_assignment,
            "partition 0 is assigned to brokers [1]: this broker is node 0 and keeps the one replica of every partition",
        ),
        (
            assigned("b", -1, -1, &[(0, &[0, 1])]),
            invalid_assignment,
            "partition 0 is assigned to brokers [0, 1]: this broker is node 0 and keeps the one replica of every partition",
        ),
    ];
    for (t, code, message) in cases {
        for validate_only in [true, false] {
            let r = create(&mut c, t.clone(), validate_only).await;
            let got = &r.topics[0];
            assert_eq!(
                (got.error_code, got.error_message.as_ref().map(|m| m.as_str())),
                (code, Some(message))
            );
        }
    }
    assert!(s.broker.topic("b").is_none());
}

/// One record per batch, stamped `ts`.
fn stamped(ts: i64) -> Bytes {
    let record = Record {
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: IndexMap::new(),
        ..veltrix_client::plain_record(0, -1, ts)
    };
    veltrix_client::encode_records(&[record], Compression::None).unwrap()
}

/// Records stamped `ts`, in one batch.
fn batch_of(ts: &[i64]) -> Bytes {
    let records: Vec<Record> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| Record {
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: IndexMap::new(),
            sequence: i as i32,
            ..veltrix_client::plain_record(i as i64, -1, *t)
        })
        .collect();
    veltrix_client::encode_records(&records, Compression::Lz4).unwrap()
}

async fn max_timestamp(c: &mut Client, name: &str, version: i16) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default().with_name(topic(name)).with_partitions(vec![
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-3),
        ]),
    ]);
    let r = c.call(request, version).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

#[tokio::test]
async fn list_offsets_finds_the_first_record_with_the_largest_timestamp() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    assert_eq!(max_timestamp(&mut c, "t", 7).await, (errors::NONE, -1, -1), "empty");

    // Offsets 0..=4 in batches of their own, out of time order; the largest,
    // 5_000, at offset 2 and again at offset 4.
    for ts in [1_000, 3_000, 5_000, 2_000, 5_000] {
        assert_eq!(produce(&mut c, "t", 0, -1, stamped(ts)).await.0, errors::NONE);
    }
    assert_eq!(max_timestamp(&mut c, "t", 7).await, (errors::NONE, 2, 5_000));
    // A compressed batch at offsets 5..=8 whose third record is the largest.
    let batch = batch_of(&[6_000, 4_000, 9_000, 9_000]);
    assert_eq!(produce(&mut c, "t", 0, -1, batch).await.0, errors::NONE);
    assert_eq!(max_timestamp(&mut c, "t", 7).await, (errors::NONE, 7, 9_000));
    // Later, smaller records change nothing.
    assert_eq!(produce(&mut c, "t", 0, -1, stamped(100)).await.0, errors::NONE);
    assert_eq!(max_timestamp(&mut c, "t", 7).await, (errors::NONE, 7, 9_000));
    // Kafka serves -3 from v7, the version that introduced it.
    assert_eq!(
        max_timestamp(&mut c, "t", 6).await.0,
        ResponseError::UnsupportedVersion.code()
    );
}

#[tokio::test]
async fn list_offsets_max_timestamp_spans_segments() {
    let s = start_with_broker(
        BrokerConfig {
            log: veltrix_log::LogConfig {
                segment_bytes_max: veltrix_log::config::SEGMENT_BYTES_MIN,
                batch_bytes_max: 1024,
                ..BrokerConfig::default().log
            },
            ..BrokerConfig::default()
        },
        |_| {},
    )
    .await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    for i in 0..200i64 {
        // The largest, at offset 17, in a segment sealed long before the end.
        let ts = if i == 17 { 1_000_000 } else { 1_000 + i };
        assert_eq!(produce(&mut c, "t", 0, -1, stamped(ts)).await.0, errors::NONE);
    }
    assert!(s.broker.partition("t", 0).unwrap().log().segment_count() > 3);
    assert_eq!(max_timestamp(&mut c, "t", 7).await, (errors::NONE, 17, 1_000_000));
}

#[tokio::test]
async fn metadata_answers_every_topic_operation_when_asked() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    for version in [8, 10, 12] {
        for asked in [false, true] {
            let request = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("t")))]))
                .with_include_topic_authorized_operations(asked)
                .with_include_cluster_authorized_operations(asked && version <= 10);
            let r = c.call(request, version).await;
            let want = if asked { TOPIC_OPERATIONS } else { NOT_ASKED };
            assert_eq!(r.topics[0].topic_authorized_operations, want, "v{version}");
            if version <= 10 {
                let want = if asked { CLUSTER_OPERATIONS } else { NOT_ASKED };
                assert_eq!(r.cluster_authorized_operations, want, "v{version}");
            }
        }
    }
    for asked in [false, true] {
        let r = c
            .call(
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(asked),
                2,
            )
            .await;
        let want = if asked { CLUSTER_OPERATIONS } else { NOT_ASKED };
        assert_eq!(r.cluster_authorized_operations, want);
    }
}

#[tokio::test]
async fn groups_are_described_with_every_group_operation_when_asked() {
    let server = start_with_broker(
        BrokerConfig {
            groups: GroupConfig {
                initial_rebalance_delay_ms: 0,
                ..GroupConfig::default()
            },
            ..BrokerConfig::default()
        },
        |_| {},
    )
    .await;
    let mut c = Client::connect(server.addr).await;
    create_topic(&mut c, "t", 1).await;
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(s("classic")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ]);
    assert_eq!(c.call(join, 3).await.error_code, errors::NONE);
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s("kip848")))
        .with_member_id(s(""))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![topic("t")]))
        .with_topic_partitions(Some(vec![]));
    assert_eq!(c.call(heartbeat, 0).await.error_code, errors::NONE);

    for asked in [false, true] {
        let want = if asked { GROUP_OPERATIONS } else { NOT_ASKED };
        for version in [3, 5] {
            let r = c
                .call(
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(s("classic"))])
                        .with_include_authorized_operations(asked),
                    version,
                )
                .await;
            assert_eq!(r.groups[0].error_code, errors::NONE);
            assert_eq!(r.groups[0].authorized_operations, want, "v{version}");
        }
        for version in [0, 1] {
            let r = c
                .call(
                    ConsumerGroupDescribeRequest::default()
                        .with_group_ids(vec![GroupId(s("kip848")), GroupId(s("none"))])
                        .with_include_authorized_operations(asked),
                    version,
                )
                .await;
            assert_eq!(r.groups[0].error_code, errors::NONE);
            assert_eq!(r.groups[0].authorized_operations, want, "v{version}");
            // A group answered with an error gets none, as in Kafka.
            assert_ne!(r.groups[1].error_code, errors::NONE);
            assert_eq!(r.groups[1].authorized_operations, NOT_ASKED);
        }
    }
}

/// The rows of docs/kafka-apis.md's table: name, key, first and last version.
fn documented_apis() -> Vec<(String, i16, i16, i16)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/kafka-apis.md");
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let (min, max) = cells[3].split_once('–').unwrap_or_else(|| panic!("versions of {l}"));
            (
                cells[1].to_owned(),
                cells[2].parse().unwrap(),
                min.parse().unwrap(),
                max.parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn docs_table_lists_every_served_api() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let r = c.call(ApiVersionsRequest::default(), 3).await;
    let mut advertised: Vec<(String, i16, i16, i16)> = r
        .api_keys
        .iter()
        .map(|k| {
            let key = kafka_protocol::messages::ApiKey::try_from(k.api_key).unwrap();
            let served = veltrix_kafka::served_api(key).unwrap();
            (served.name.to_owned(), k.api_key, k.min_version, k.max_version)
        })
        .collect();
    let mut documented = documented_apis();
    advertised.sort();
    documented.sort();
    assert_eq!(documented, advertised, "docs/kafka-apis.md and ApiVersions disagree");
}
