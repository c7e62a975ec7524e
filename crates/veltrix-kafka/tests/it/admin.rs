//! The admin APIs: DeleteTopics, CreatePartitions, DeleteRecords,
//! DescribeConfigs and DescribeCluster, checked code by code and value by value
//! through the wire protocol.

use kafka_protocol::messages::create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, ListOffsetsRequest, MetadataRequest,
    MetadataResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use uuid::Uuid;
use veltrix_core::BrokerConfig;
use veltrix_kafka::errors;

use super::{Client, Server, create_topic, fetch_request, produce, records, start, topic};

/// Kafka's config sources, as DescribeConfigs reports them.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Like `start`, with broker settings other than the defaults.
pub(super) async fn start_with(config: BrokerConfig) -> Server {
    super::start_with_broker(config, |_| {}).await
}

async fn metadata(c: &mut Client, name: &str) -> MetadataResponse {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic(name)))]));
    c.call(request, 12).await
}

/// ListOffsets for partition 0: -2 asks for the earliest offset, -1 the latest.
async fn list_offset(c: &mut Client, name: &str, timestamp: i64) -> (i16, i64) {
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default().with_name(topic(name)).with_partitions(vec![
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp),
        ]),
    ]);
    let r = c.call(request, 7).await;
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// Creates a topic with Kafka-named settings; returns its id.
pub(super) async fn create_topic_with(c: &mut Client, name: &str, partitions: i32, configs: &[(&str, &str)]) -> Uuid {
    let mut t = CreatableTopic::default();
    t.name = topic(name);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string((*k).to_owned()))
                .with_value(Some(StrBytes::from_string((*v).to_owned())))
        })
        .collect();
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 7).await;
    assert_eq!(r.topics[0].error_code, errors::NONE, "{:?}", r.topics[0].error_message);
    r.topics[0].topic_id
}

/// The five admin APIs are advertised with exactly the version ranges they serve.
#[tokio::test]
async fn api_versions_advertises_the_admin_apis_with_their_ranges() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let r = c.call(ApiVersionsRequest::default(), 3).await;
    for (api, lo, hi) in [
        (ApiKey::DeleteTopics, 1, 6),
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::DescribeConfigs, 1, 4),
        (ApiKey::DescribeCluster, 0, 2),
    ] {
        let k = r
            .api_keys
            .iter()
            .find(|k| k.api_key == api as i16)
            .unwrap_or_else(|| panic!("{api:?} is not advertised"));
        assert_eq!((k.min_version, k.max_version), (lo, hi), "{api:?}");
    }
}

/// DeleteTopics by name, in the oldest, the first flexible and the newest
/// name-only versions: the topic and its data go, an unknown name is
/// UNKNOWN_TOPIC_OR_PARTITION without stopping the others, Metadata then says
/// UNKNOWN_TOPIC_OR_PARTITION, and a topic created again under the same name
/// starts empty with a new id.
#[tokio::test]
async fn delete_topics_by_name_removes_the_data_for_good() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    for version in [1, 4, 5] {
        let old_id = create_topic_with(&mut c, "t", 1, &[]).await;
        let (err, _) = produce(&mut c, "t", 0, -1, records(&["a", "b"], Compression::None)).await;
        assert_eq!(err, errors::NONE);
        assert_eq!(list_offset(&mut c, "t", -1).await, (errors::NONE, 2));

        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic("t"), topic("nope")])
            .with_timeout_ms(5000);
        let r = c.call(request, version).await;
        assert_eq!(r.responses.len(), 2);
        assert_eq!(r.responses[0].name, Some(topic("t")));
        assert_eq!(r.responses[0].error_code, errors::NONE, "v{version}");
        assert_eq!(r.responses[1].name, Some(topic("nope")));
        assert_eq!(
            r.responses[1].error_code,
            errors::ResponseError::UnknownTopicOrPartition.code()
        );
        // Error messages exist from v5 on.
        assert_eq!(r.responses[0].error_message, None);
        assert_eq!(r.responses[1].error_message.is_some(), version >= 5);

        let m = metadata(&mut c, "t").await;
        assert_eq!(
            m.topics[0].error_code,
            errors::ResponseError::UnknownTopicOrPartition.code()
        );
        let fetched = c.call(fetch_request("t", 0, 0, 0), 11).await;
        assert_eq!(
            fetched.responses[0].partitions[0].error_code,
            errors::ResponseError::UnknownTopicOrPartition.code()
        );

        let new_id = create_topic_with(&mut c, "t", 1, &[]).await;
        assert_ne!(new_id, old_id);
        assert_eq!(list_offset(&mut c, "t", -2).await, (errors::NONE, 0));
        assert_eq!(list_offset(&mut c, "t", -1).await, (errors::NONE, 0));
        let r = c
            .call(
                DeleteTopicsRequest::default().with_topic_names(vec![topic("t")]),
                version,
            )
            .await;
        assert_eq!(r.responses[0].error_code, errors::NONE);
    }
}

/// DeleteTopics v6: by id the topic is deleted and its name reported; an id
/// that matches nothing is UNKNOWN_TOPIC_ID with no name; by name the id is
/// reported; an entry with both or neither, or a topic named twice, is
/// INVALID_REQUEST and deletes nothing.
#[tokio::test]
async fn delete_topics_v6_deletes_by_id_and_refuses_ambiguous_entries() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let a = create_topic_with(&mut c, "a", 1, &[]).await;
    let b = create_topic_with(&mut c, "b", 1, &[]).await;

    let by_id = |id: Uuid| DeleteTopicState::default().with_name(None).with_topic_id(id);
    let by_name = |n: &str| DeleteTopicState::default().with_name(Some(topic(n)));

    let both = by_name("a").with_topic_id(a);
    let neither = DeleteTopicState::default().with_name(None);
    let request = DeleteTopicsRequest::default().with_topics(vec![both, neither, by_name("b"), by_name("b")]);
    let r = c.call(request, 6).await;
    let codes: Vec<i16> = r.responses.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, vec![errors::ResponseError::InvalidRequest.code(); 4]);
    assert!(r.responses.iter().all(|t| t.error_message.is_some()));
    assert_eq!(metadata(&mut c, "a").await.topics[0].error_code, errors::NONE);
    assert_eq!(metadata(&mut c, "b").await.topics[0].error_code, errors::NONE);

    let request = DeleteTopicsRequest::default().with_topics(vec![by_id(a), by_name("b")]);
    let r = c.call(request, 6).await;
    assert_eq!(r.responses[0].error_code, errors::NONE);
    assert_eq!(r.responses[0].name, Some(topic("a")));
    assert_eq!(r.responses[0].topic_id, a);
    assert_eq!(r.responses[1].error_code, errors::NONE);
    assert_eq!(r.responses[1].name, Some(topic("b")));
    assert_eq!(r.responses[1].topic_id, b);
    assert_eq!(
        metadata(&mut c, "a").await.topics[0].error_code,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );

    let r = c
        .call(DeleteTopicsRequest::default().with_topics(vec![by_id(a)]), 6)
        .await;
    assert_eq!(r.responses[0].error_code, errors::ResponseError::UnknownTopicId.code());
    assert_eq!(r.responses[0].name, None);
    assert_eq!(r.responses[0].topic_id, a);
}

/// CreatePartitions grows a topic, and the new partitions take writes;
/// `validate_only` checks without growing; a count equal to or below the current
/// one is INVALID_PARTITIONS; an unknown topic is UNKNOWN_TOPIC_OR_PARTITION and
/// a topic named twice INVALID_REQUEST; assignments are accepted only as one
/// replica on node 0 per new partition.
#[tokio::test]
async fn create_partitions_grows_validates_and_never_shrinks() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 2).await;
    let grow = |name: &str, count: i32| {
        CreatePartitionsTopic::default()
            .with_name(topic(name))
            .with_count(count)
    };
    let partitions = async |c: &mut Client| metadata(c, "t").await.topics[0].partitions.len();

    for version in [0, 3] {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![grow("t", 4)])
            .with_validate_only(true);
        let r = c.call(request, version).await;
        assert_eq!(
            r.results[0].error_code,
            errors::NONE,
            "{:?}",
            r.results[0].error_message
        );
        assert_eq!(r.results[0].error_message, None);
        assert_eq!(partitions(&mut c).await, 2, "validate_only changed the topic");
    }

    let r = c
        .call(CreatePartitionsRequest::default().with_topics(vec![grow("t", 4)]), 3)
        .await;
    assert_eq!(r.results[0].name, topic("t"));
    assert_eq!(r.results[0].error_code, errors::NONE);
    assert_eq!(partitions(&mut c).await, 4);
    let (err, base) = produce(&mut c, "t", 3, -1, records(&["x"], Compression::None)).await;
    assert_eq!((err, base), (errors::NONE, 0));

    for (count, validate_only) in [(4, false), (3, false), (1, true), (0, false), (-1, false)] {
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![grow("t", count)])
            .with_validate_only(validate_only);
        let r = c.call(request, 2).await;
        assert_eq!(
            r.results[0].error_code,
            errors::ResponseError::InvalidPartitions.code(),
            "count {count}"
        );
        assert!(r.results[0].error_message.is_some());
    }
    let request = CreatePartitionsRequest::default().with_topics(vec![grow("nope", 3), grow("t", 5), grow("t", 6)]);
    let r = c.call(request, 1).await;
    let codes: Vec<i16> = r.results.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            errors::ResponseError::UnknownTopicOrPartition.code(),
            errors::ResponseError::InvalidRequest.code(),
            errors::ResponseError::InvalidRequest.code()
        ]
    );
    assert_eq!(partitions(&mut c).await, 4);

    let on =
        |ids: &[i32]| CreatePartitionsAssignment::default().with_broker_ids(ids.iter().map(|i| BrokerId(*i)).collect());
    for bad in [vec![on(&[1])], vec![on(&[0, 0])], vec![on(&[0]), on(&[0])]] {
        let request = CreatePartitionsRequest::default().with_topics(vec![grow("t", 5).with_assignments(Some(bad))]);
        let r = c.call(request, 3).await;
        assert_eq!(
            r.results[0].error_code,
            errors::ResponseError::InvalidReplicaAssignment.code()
        );
    }
    let request =
        CreatePartitionsRequest::default().with_topics(vec![grow("t", 3).with_assignments(Some(vec![on(&[0])]))]);
    let r = c.call(request, 3).await;
    assert_eq!(
        r.results[0].error_code,
        errors::ResponseError::InvalidPartitions.code(),
        "a count that does not grow the topic is refused as such, whatever the assignments"
    );
    let request =
        CreatePartitionsRequest::default().with_topics(vec![grow("t", 5).with_assignments(Some(vec![on(&[0])]))]);
    let r = c.call(request, 3).await;
    assert_eq!(r.results[0].error_code, errors::NONE);
    assert_eq!(partitions(&mut c).await, 5);
}

/// DeleteRecords moves the log start: after deleting below 2, the low watermark
/// is 2, a fetch at 1 is OFFSET_OUT_OF_RANGE, a fetch at 2 starts at offset 2 and
/// ListOffsets earliest is 2. Deleting below the log start changes nothing; -1
/// means the high watermark; beyond the high watermark, or below -1, is
/// OFFSET_OUT_OF_RANGE with a low watermark of -1; an unknown partition is
/// UNKNOWN_TOPIC_OR_PARTITION; every partition is answered on its own.
#[tokio::test]
async fn delete_records_moves_the_log_start_forward() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 2).await;
    // This encoder puts each record in a batch of its own: offsets 0 to 3.
    let (err, _) = produce(&mut c, "t", 0, -1, records(&["a", "b", "c", "d"], Compression::None)).await;
    assert_eq!(err, errors::NONE);

    let delete = |partitions: &[(i32, i64)]| {
        DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
            DeleteRecordsTopic::default().with_name(topic("t")).with_partitions(
                partitions
                    .iter()
                    .map(|(p, o)| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o)
                    })
                    .collect(),
            ),
        ])
    };
    let answers = |r: kafka_protocol::messages::DeleteRecordsResponse| -> Vec<(i32, i16, i64)> {
        r.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code, p.low_watermark))
            .collect()
    };

    let r = c.call(delete(&[(0, 2)]), 0).await;
    assert_eq!(r.topics[0].name, topic("t"));
    assert_eq!(answers(r), vec![(0, errors::NONE, 2)]);
    let fetched = c.call(fetch_request("t", 0, 1, 0), 11).await;
    assert_eq!(
        fetched.responses[0].partitions[0].error_code,
        errors::ResponseError::OffsetOutOfRange.code()
    );
    let fetched = c.call(fetch_request("t", 0, 2, 0), 11).await;
    let p = &fetched.responses[0].partitions[0];
    assert_eq!(
        (p.error_code, p.log_start_offset, p.high_watermark),
        (errors::NONE, 2, 4)
    );
    let mut bytes = p.records.clone().unwrap();
    let offsets: Vec<i64> = RecordBatchDecoder::decode_all(&mut bytes)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![2, 3]);
    assert_eq!(list_offset(&mut c, "t", -2).await, (errors::NONE, 2));

    let r = c.call(delete(&[(0, 1), (0, 5), (0, -2), (1, 0), (7, 0)]), 2).await;
    assert_eq!(
        answers(r),
        vec![
            (0, errors::NONE, 2),
            (0, errors::ResponseError::OffsetOutOfRange.code(), -1),
            (0, errors::ResponseError::OffsetOutOfRange.code(), -1),
            (1, errors::NONE, 0),
            (7, errors::ResponseError::UnknownTopicOrPartition.code(), -1),
        ]
    );

    let r = c.call(delete(&[(0, -1)]), 1).await;
    assert_eq!(answers(r), vec![(0, errors::NONE, 4)]);
    assert_eq!(list_offset(&mut c, "t", -2).await, (errors::NONE, 4));
    let (err, base) = produce(&mut c, "t", 0, -1, records(&["e"], Compression::None)).await;
    assert_eq!(
        (err, base),
        (errors::NONE, 4),
        "offsets continue after the deleted ones"
    );
}

/// Finds a setting by name in a DescribeConfigs result.
fn setting<'a>(result: &'a DescribeConfigsResult, name: &str) -> &'a DescribeConfigsResourceResult {
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("`{name}` is not reported"))
}

/// A setting's value and source.
pub(super) fn value_and_source(result: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let s = setting(result, name);
    (s.value.as_ref().unwrap().as_str().to_owned(), s.config_source)
}

pub(super) fn resource(resource_type: i8, name: &str) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_owned()))
        .with_configuration_keys(None)
}

/// DescribeConfigs reports a topic's effective settings under their Kafka names,
/// each marked as set on the topic or defaulted, in every served version; an
/// unknown topic fails only its own resource.
#[tokio::test]
async fn describe_configs_reports_effective_topic_settings_and_where_they_come_from() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(&mut c, "plain", 1, &[]).await;
    create_topic_with(
        &mut c,
        "tuned",
        1,
        &[
            ("retention.ms", "60000"),
            ("retention.bytes", "1048576"),
            ("segment.bytes", "65536"),
            ("segment.ms", "3600000"),
            ("max.message.bytes", "32768"),
            ("flush.ms", "50"),
            ("veltrix.dedup.window.ms", "30000"),
            ("veltrix.dedup.id.header", "event-id"),
            ("veltrix.dedup.id.source", "header"),
        ],
    )
    .await;
    for version in 1..=4 {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            resource(2, "plain"),
            resource(2, "nope"),
            resource(2, "tuned"),
        ]);
        let r = c.call(request, version).await;
        assert_eq!(r.results.len(), 3);

        let plain = &r.results[0];
        assert_eq!(plain.error_code, errors::NONE);
        assert_eq!((plain.resource_type, plain.resource_name.as_str()), (2, "plain"));
        let want = [
            ("retention.ms", "604800000"),
            ("retention.bytes", "-1"),
            ("segment.bytes", "1073741824"),
            ("segment.ms", "604800000"),
            ("max.message.bytes", "1048588"),
            ("flush.ms", "0"),
            ("flush.messages", "1"),
            ("index.interval.bytes", "4096"),
            ("cleanup.policy", "delete"),
            ("delete.retention.ms", "86400000"),
            ("min.compaction.lag.ms", "0"),
            ("max.compaction.lag.ms", "9223372036854775807"),
            ("min.cleanable.dirty.ratio", "0.5"),
            ("veltrix.dedup.window.ms", "0"),
            ("veltrix.dedup.id.header", "message-id"),
            ("veltrix.dedup.id.source", "header"),
            ("veltrix.tier", "standard"),
        ];
        let names: Vec<&str> = plain.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, want.iter().map(|(n, _)| *n).collect::<Vec<_>>());
        for (name, value) in want {
            assert_eq!(
                value_and_source(plain, name),
                (value.to_owned(), SOURCE_DEFAULT),
                "{name}"
            );
            let s = setting(plain, name);
            let settable = !matches!(name, "flush.messages" | "index.interval.bytes");
            assert_eq!(
                s.read_only, !settable,
                "{name}: only what AlterConfigs can change is writable"
            );
            assert!(!s.is_sensitive);
            assert!(s.synonyms.is_empty(), "synonyms were not asked for");
            if version >= 3 {
                assert_eq!(s.documentation, None, "documentation was not asked for");
            }
        }
        for (name, config_type) in [
            ("retention.ms", 5),
            ("veltrix.dedup.window.ms", 5),
            ("veltrix.dedup.id.header", 2),
            ("veltrix.dedup.id.source", 2),
        ] {
            assert_eq!(
                setting(plain, name).config_type,
                if version >= 3 { config_type } else { 0 },
                "{name}: LONG or STRING from v3 on"
            );
        }

        let nope = &r.results[1];
        assert_eq!(nope.error_code, errors::ResponseError::UnknownTopicOrPartition.code());
        assert!(nope.configs.is_empty());

        let tuned = &r.results[2];
        assert_eq!(tuned.error_code, errors::NONE);
        for (name, value, source) in [
            ("retention.ms", "60000", SOURCE_TOPIC),
            ("retention.bytes", "1048576", SOURCE_TOPIC),
            ("segment.bytes", "65536", SOURCE_TOPIC),
            ("segment.ms", "3600000", SOURCE_TOPIC),
            ("max.message.bytes", "32768", SOURCE_TOPIC),
            ("flush.ms", "50", SOURCE_TOPIC),
            ("flush.messages", "9223372036854775807", SOURCE_TOPIC),
            ("index.interval.bytes", "4096", SOURCE_DEFAULT),
            ("cleanup.policy", "delete", SOURCE_DEFAULT),
            ("veltrix.dedup.window.ms", "30000", SOURCE_TOPIC),
            ("veltrix.dedup.id.header", "event-id", SOURCE_TOPIC),
            ("veltrix.dedup.id.source", "header", SOURCE_TOPIC),
        ] {
            assert_eq!(value_and_source(tuned, name), (value.to_owned(), source), "{name}");
        }
    }
}

/// With synonyms, each setting lists the layers behind it, the one in effect
/// first; with documentation (v3 and later), each has its text; a key list
/// narrows the answer to those keys, in the broker's order.
#[tokio::test]
async fn describe_configs_lists_synonyms_documentation_and_only_the_keys_asked_for() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(
        &mut c,
        "t",
        1,
        &[("retention.ms", "60000"), ("veltrix.dedup.window.ms", "30000")],
    )
    .await;
    let keys = [
        "veltrix.dedup.id.header",
        "segment.bytes",
        "no.such.key",
        "retention.ms",
        "veltrix.dedup.window.ms",
    ];
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![resource(2, "t").with_configuration_keys(Some(
            keys.iter().map(|k| StrBytes::from_static_str(k)).collect(),
        ))]);
    let r = c.call(request, 4).await;
    let t = &r.results[0];
    let names: Vec<&str> = t.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "retention.ms",
            "segment.bytes",
            "veltrix.dedup.window.ms",
            "veltrix.dedup.id.header"
        ]
    );
    let layers = |name: &str| -> Vec<(String, String, i8)> {
        setting(t, name)
            .synonyms
            .iter()
            .map(|s| {
                (
                    s.name.as_str().to_owned(),
                    s.value.as_ref().unwrap().as_str().to_owned(),
                    s.source,
                )
            })
            .collect()
    };
    assert_eq!(
        layers("retention.ms"),
        vec![
            ("retention.ms".to_owned(), "60000".to_owned(), SOURCE_TOPIC),
            ("log.retention.ms".to_owned(), "604800000".to_owned(), SOURCE_DEFAULT),
        ]
    );
    assert_eq!(
        layers("segment.bytes"),
        vec![("log.segment.bytes".to_owned(), "1073741824".to_owned(), SOURCE_DEFAULT)]
    );
    // The duplicate window's settings have no broker-wide layer: the topic's
    // own value, then the built-in default, under the topic's name.
    let window = "veltrix.dedup.window.ms".to_owned();
    assert_eq!(
        layers("veltrix.dedup.window.ms"),
        vec![
            (window.clone(), "30000".to_owned(), SOURCE_TOPIC),
            (window, "0".to_owned(), SOURCE_DEFAULT),
        ]
    );
    assert_eq!(
        layers("veltrix.dedup.id.header"),
        vec![(
            "veltrix.dedup.id.header".to_owned(),
            "message-id".to_owned(),
            SOURCE_DEFAULT
        )]
    );
    for name in ["retention.ms", "veltrix.dedup.window.ms", "veltrix.dedup.id.header"] {
        assert!(
            setting(t, name).documentation.as_ref().is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

/// The broker resource: "0" reports the topic defaults under Kafka's broker
/// names, marked STATIC_BROKER_CONFIG where the broker's settings differ from
/// the built-in defaults, and its listener (STATIC_BROKER_CONFIG: from the
/// configuration); a topic without overrides inherits the defaults with
/// their source; "" (cluster-wide dynamic defaults) is empty; another id, or a
/// resource type that is not served, is INVALID_REQUEST.
#[tokio::test]
async fn describe_configs_reports_the_broker_and_its_defaults() {
    let mut config = BrokerConfig::default();
    config.log.retention_ms = None;
    config.log.retention_bytes = Some(1 << 30);
    config.default_partitions = 3;
    let s = start_with(config).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(&mut c, "t", 1, &[]).await;
    let request = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            resource(4, "0"),
            resource(4, ""),
            resource(4, "7"),
            resource(8, "0"),
            resource(2, "t"),
        ]);
    let r = c.call(request, 4).await;
    let codes: Vec<i16> = r.results.iter().map(|t| t.error_code).collect();
    assert_eq!(
        codes,
        vec![
            errors::NONE,
            errors::NONE,
            errors::ResponseError::InvalidRequest.code(),
            errors::ResponseError::InvalidRequest.code(),
            errors::NONE
        ]
    );

    let broker = &r.results[0];
    for (name, value, source) in [
        ("log.retention.ms", "-1", SOURCE_STATIC_BROKER),
        ("log.retention.bytes", "1073741824", SOURCE_STATIC_BROKER),
        ("log.segment.bytes", "1073741824", SOURCE_DEFAULT),
        ("log.roll.ms", "604800000", SOURCE_DEFAULT),
        ("message.max.bytes", "1048588", SOURCE_DEFAULT),
        ("log.flush.interval.ms", "0", SOURCE_DEFAULT),
        ("log.flush.interval.messages", "1", SOURCE_DEFAULT),
        ("log.index.interval.bytes", "4096", SOURCE_DEFAULT),
        ("log.cleanup.policy", "delete", SOURCE_DEFAULT),
        ("broker.id", "0", SOURCE_DEFAULT),
        ("num.partitions", "3", SOURCE_STATIC_BROKER),
        ("auto.create.topics.enable", "false", SOURCE_DEFAULT),
        ("socket.request.max.bytes", "104857600", SOURCE_DEFAULT),
    ] {
        assert_eq!(value_and_source(broker, name), (value.to_owned(), source), "{name}");
    }
    // The one listener, as `serve` names it; no SASL mechanism.
    for (name, value) in [
        ("listeners", format!("kafka://{}", s.addr)),
        ("advertised.listeners", format!("kafka://{}", s.addr)),
        ("listener.security.protocol.map", "kafka:PLAINTEXT".to_owned()),
        ("sasl.enabled.mechanisms", String::new()),
    ] {
        assert_eq!(value_and_source(broker, name), (value, SOURCE_STATIC_BROKER), "{name}");
    }
    assert_eq!(broker.configs.len(), 17);
    assert!(r.results[1].configs.is_empty());

    let topic = &r.results[4];
    assert_eq!(
        value_and_source(topic, "retention.ms"),
        ("-1".to_owned(), SOURCE_STATIC_BROKER)
    );
    let synonyms: Vec<(&str, i8)> = setting(topic, "retention.ms")
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("log.retention.ms", SOURCE_STATIC_BROKER),
            ("log.retention.ms", SOURCE_DEFAULT)
        ]
    );
    assert_eq!(
        value_and_source(topic, "retention.bytes"),
        ("1073741824".to_owned(), SOURCE_STATIC_BROKER)
    );
}

/// DescribeCluster names one broker, node 0 at the advertised address, in the
/// cluster "veltrix" with controller 0, in every served version; authorised
/// operations are sent only when asked for; asking this broker endpoint for
/// controllers is MISMATCHED_ENDPOINT_TYPE and an unknown endpoint type
/// UNSUPPORTED_ENDPOINT_TYPE.
#[tokio::test]
async fn describe_cluster_names_the_one_broker() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    for version in 0..=2 {
        let r = c.call(DescribeClusterRequest::default(), version).await;
        assert_eq!(r.error_code, errors::NONE);
        assert_eq!(r.cluster_id.as_str(), "veltrix");
        assert_eq!(r.controller_id, BrokerId(0));
        assert_eq!(r.endpoint_type, 1);
        assert_eq!(r.cluster_authorized_operations, i32::MIN, "not asked for");
        assert_eq!(r.brokers.len(), 1);
        let b = &r.brokers[0];
        assert_eq!(b.broker_id, BrokerId(0));
        assert_eq!(b.host.as_str(), s.addr.ip().to_string());
        assert_eq!(b.port, i32::from(s.addr.port()));
        assert_eq!(b.rack, None);
        assert!(!b.is_fenced);
    }
    let r = c
        .call(
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            0,
        )
        .await;
    // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS
    // and IDEMPOTENT_WRITE: everything, as there is no authorisation.
    assert_eq!(r.cluster_authorized_operations, 0b1_1111_1010_0000);

    for (endpoint_type, code) in [
        (2, errors::ResponseError::MismatchedEndpointType.code()),
        (0, errors::ResponseError::UnsupportedEndpointType.code()),
        (9, errors::ResponseError::UnsupportedEndpointType.code()),
    ] {
        let r = c
            .call(DescribeClusterRequest::default().with_endpoint_type(endpoint_type), 1)
            .await;
        assert_eq!(r.error_code, code, "endpoint type {endpoint_type}");
        assert!(r.error_message.is_some());
        assert!(r.brokers.is_empty());
    }
}

/// Regression: `retention.ms=-1` (keep forever) used to fall back to the broker's
/// 7-day default and delete what the user meant to keep. It now means no limit,
/// and a value below -1 is refused rather than guessed at.
#[tokio::test]
async fn retention_minus_one_means_keep_forever() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic_with(
        &mut c,
        "forever",
        1,
        &[("retention.ms", "-1"), ("retention.bytes", "-1")],
    )
    .await;
    let request = DescribeConfigsRequest::default().with_resources(vec![resource(2, "forever")]);
    let r = c.call(request, 4).await;
    assert_eq!(value_and_source(&r.results[0], "retention.ms").0, "-1");
    assert_eq!(value_and_source(&r.results[0], "retention.bytes").0, "-1");

    let mut t = CreatableTopic::default();
    t.name = topic("bad");
    t.num_partitions = 1;
    t.replication_factor = 1;
    t.configs = vec![
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("retention.ms"))
            .with_value(Some(StrBytes::from_static_str("-2"))),
    ];
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 5).await;
    assert_eq!(r.topics[0].error_code, errors::ResponseError::InvalidConfig.code());
}
