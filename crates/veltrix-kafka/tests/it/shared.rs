//! The front door on shared storage, in one process: two brokers, each with
//! its own engine directory, on one in-memory catalog and bucket (the same
//! rules as PostgreSQL and S3, `MemCatalog` and `InMemory`). What the
//! three-broker suite (tests/shared) checks with real services and clients,
//! here at the protocol level and fast.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    FindCoordinatorRequest, GroupId, MetadataRequest, OffsetFetchRequest, ShareFetchRequest, ShareGroupHeartbeatRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use object_store::memory::InMemory;
use veltrix_kafka::errors::ResponseError;
use veltrix_kafka::shared::SharedStorage;
use veltrix_shared::{MemCatalog, NodeConfig, ReaderConfig, SharedNode, WriterConfig};

use super::*;

struct Pair {
    a: Server,
    b: Server,
}

async fn node(catalog: &Arc<MemCatalog>, store: &Arc<InMemory>, id: i32, addr: SocketAddr) -> SharedStorage {
    let config = NodeConfig {
        broker_id: id,
        incarnation: i64::from(id) * 7919,
        host: addr.ip().to_string(),
        port: i32::from(addr.port()),
        listeners: Vec::new(),
        lease_ms: 1_000,
        watch_poll_ms: 5,
        writer: WriterConfig {
            flush_interval_ms: 5,
            writer_id: format!("broker-{id}"),
            ..WriterConfig::default()
        },
        reader: ReaderConfig::default(),
    };
    let node = SharedNode::start(config, catalog.clone(), store.clone()).await.unwrap();
    SharedStorage::new(node)
}

async fn pair() -> Pair {
    let catalog = Arc::new(MemCatalog::new());
    let store = Arc::new(InMemory::new());
    let mut servers = Vec::new();
    for id in [1, 2] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut kafka = KafkaConfig::new(addr);
        kafka.shared = Some(node(&catalog, &store, id, addr).await);
        servers.push(serve_in(
            Env::system(),
            tempfile::tempdir().unwrap(),
            listener,
            BrokerConfig::default(),
            kafka,
        ));
    }
    let b = servers.pop().unwrap();
    let a = servers.pop().unwrap();
    Pair { a, b }
}

/// The values of the records in a fetch answer, by offset.
fn fetched(records: &Bytes) -> BTreeMap<i64, String> {
    let mut buf = records.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| (r.offset, String::from_utf8(r.value.unwrap().to_vec()).unwrap()))
        .collect()
}

async fn metadata(c: &mut Client, name: &str) -> kafka_protocol::messages::MetadataResponse {
    let t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(topic(name)));
    c.call(MetadataRequest::default().with_topics(Some(vec![t])), 12).await
}

#[tokio::test]
async fn a_topic_created_on_one_broker_is_served_by_both_and_both_brokers_are_advertised() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 4).await;
    let m = metadata(&mut b, "t").await;
    assert_eq!(m.topics[0].error_code, errors::NONE);
    assert_eq!(m.topics[0].partitions.len(), 4);
    let ids: Vec<i32> = m.brokers.iter().map(|br| br.node_id.0).collect();
    assert_eq!(ids, [1, 2]);
    let leaders: std::collections::BTreeSet<i32> = m.topics[0].partitions.iter().map(|p| p.leader_id.0).collect();
    assert_eq!(leaders.len(), 2, "four partitions spread over two brokers: {leaders:?}");
    // Both brokers agree on who leads each partition.
    let from_a = metadata(&mut a, "t").await;
    let lead = |m: &kafka_protocol::messages::MetadataResponse| {
        m.topics[0].partitions.iter().map(|p| p.leader_id.0).collect::<Vec<_>>()
    };
    assert_eq!(lead(&from_a), lead(&m));
    assert_eq!(from_a.topics[0].topic_id, m.topics[0].topic_id);
    let cluster = a
        .call(kafka_protocol::messages::DescribeClusterRequest::default(), 0)
        .await;
    let ids: Vec<i32> = cluster.brokers.iter().map(|br| br.broker_id.0).collect();
    assert_eq!(ids, [1, 2]);
}

#[tokio::test]
async fn batches_produced_through_both_brokers_get_contiguous_offsets_and_are_fetched_from_either() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 1).await;
    metadata(&mut b, "t").await;
    assert_eq!(
        produce(&mut a, "t", 0, -1, records(&["a0", "a1"], Compression::None)).await,
        (errors::NONE, 0)
    );
    assert_eq!(
        produce(&mut b, "t", 0, -1, records(&["b0"], Compression::None)).await,
        (errors::NONE, 2)
    );
    assert_eq!(
        produce(&mut a, "t", 0, 1, records(&["a2"], Compression::Snappy)).await,
        (errors::NONE, 3)
    );
    for c in [&mut a, &mut b] {
        let r = c.call(fetch_request("t", 0, 0, 0), 12).await;
        let part = &r.responses[0].partitions[0];
        assert_eq!(part.error_code, errors::NONE);
        assert_eq!(part.high_watermark, 4);
        let values = fetched(part.records.as_ref().unwrap());
        let want: BTreeMap<i64, String> = [(0, "a0"), (1, "a1"), (2, "b0"), (3, "a2")]
            .map(|(o, v)| (o, v.to_owned()))
            .into();
        assert_eq!(values, want);
    }
    // Past the end: out of range; at the end: a long poll woken by the other
    // broker's produce.
    let past = b.call(fetch_request("t", 0, 5, 0), 12).await;
    assert_eq!(
        past.responses[0].partitions[0].error_code,
        ResponseError::OffsetOutOfRange.code()
    );
    let waiting = tokio::spawn(async move { b.call(fetch_request("t", 0, 4, 10_000), 12).await });
    // Most likely waiting by now; if not, it reads the record at once, and
    // the assertions hold either way.
    tokio::task::yield_now().await;
    assert_eq!(
        produce(&mut a, "t", 0, -1, records(&["late"], Compression::None)).await,
        (errors::NONE, 4)
    );
    let woke = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken")
        .unwrap();
    let values = fetched(woke.responses[0].partitions[0].records.as_ref().unwrap());
    assert_eq!(values.get(&4).map(String::as_str), Some("late"));
}

#[tokio::test]
async fn one_broker_coordinates_a_group_and_its_commits_are_read_from_the_other() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 1).await;
    metadata(&mut b, "t").await;
    let find = |c: &'static str| {
        FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str(c))
            .with_key_type(0)
    };
    let on_a = a.call(find("g"), 3).await;
    let on_b = b.call(find("g"), 3).await;
    assert_eq!(on_a.error_code, errors::NONE);
    assert_eq!(on_a.node_id, on_b.node_id);
    let (coordinator, other) = if on_a.node_id.0 == 1 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let refused = other.call(commit_to_t0("g", -1, "", 7), 8).await;
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        ResponseError::NotCoordinator.code()
    );
    let stored = coordinator.call(commit_to_t0("g", -1, "", 7), 8).await;
    assert_eq!(stored.topics[0].partitions[0].error_code, errors::NONE);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(kafka_protocol::messages::GroupId(StrBytes::from_static_str("g")))
        .with_topics(None);
    let r = other.call(fetch, 7).await;
    assert_eq!(r.error_code, errors::NONE);
    assert_eq!(r.topics[0].partitions[0].committed_offset, 7);
}

#[tokio::test]
async fn an_idempotent_retry_through_the_other_broker_gets_the_original_offsets() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 1).await;
    metadata(&mut b, "t").await;
    let init = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let from_a = a.call(init.clone(), 4).await;
    let from_b = b.call(init, 4).await;
    assert_eq!((from_a.error_code, from_b.error_code), (errors::NONE, errors::NONE));
    assert_ne!(from_a.producer_id, from_b.producer_id, "ids are unique across brokers");
    let pid = from_a.producer_id.0;
    let batch = |seq: i32, v: &str| {
        let r = Record {
            producer_id: pid,
            producer_epoch: 0,
            value: Some(Bytes::from(v.to_owned())),
            ..veltrix_client::plain_record(0, seq, 1_700_000_000_000)
        };
        veltrix_client::encode_records(&[r], Compression::None).unwrap()
    };
    assert_eq!(produce(&mut a, "t", 0, -1, batch(0, "x")).await, (errors::NONE, 0));
    assert_eq!(produce(&mut b, "t", 0, -1, batch(0, "x")).await, (errors::NONE, 0));
    assert_eq!(produce(&mut b, "t", 0, -1, batch(1, "y")).await, (errors::NONE, 1));
    let gap = produce(&mut a, "t", 0, -1, batch(5, "z")).await;
    assert_eq!(gap.0, ResponseError::OutOfOrderSequenceNumber.code());
    let r = a.call(fetch_request("t", 0, 0, 0), 12).await;
    assert_eq!(fetched(r.responses[0].partitions[0].records.as_ref().unwrap()).len(), 2);
}

#[tokio::test]
async fn transactions_are_not_offered_on_shared_storage_and_share_fetch_and_offsets_are() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let r = a.call(kafka_protocol::messages::ApiVersionsRequest::default(), 3).await;
    let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    assert!(keys.contains(&(ApiKey::Produce as i16)));
    assert!(!keys.contains(&(ApiKey::EndTxn as i16)), "transactions offered");
    assert!(keys.contains(&(ApiKey::DescribeShareGroupOffsets as i16)));
    assert!(keys.contains(&(ApiKey::ShareFetch as i16)));
    assert!(keys.contains(&(ApiKey::DeleteRecords as i16)));
}

#[tokio::test]
async fn a_topic_setting_altered_on_one_broker_is_the_catalogs_and_compaction_is_refused() {
    use super::alter_configs::{alter, describe, op};
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 1).await;
    let r = alter(&mut a, 2, "t", vec![op("retention.ms", 0, Some("3600000"))], false).await;
    assert_eq!(
        r.responses[0].error_code,
        errors::NONE,
        "{:?}",
        r.responses[0].error_message
    );
    // The other broker copies the catalog's settings within its next read.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        metadata(&mut b, "nothing-yet").await;
        if describe(&mut b, "t", "retention.ms").await.0 == "3600000" {
            break;
        }
        assert!(Instant::now() < deadline, "the setting never reached the other broker");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And on the broker that altered it.
    assert_eq!(describe(&mut a, "t", "retention.ms").await.0, "3600000");
    let compact = alter(&mut a, 2, "t", vec![op("cleanup.policy", 0, Some("compact"))], false).await;
    assert_eq!(compact.responses[0].error_code, ResponseError::InvalidConfig.code());
    let mut t = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    t.name = topic("c");
    t.num_partitions = 1;
    t.replication_factor = 1;
    t.configs = vec![
        kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("cleanup.policy"))
            .with_value(Some(StrBytes::from_static_str("compact"))),
    ];
    let created = a.call(CreateTopicsRequest::default().with_topics(vec![t]), 7).await;
    assert_eq!(created.topics[0].error_code, ResponseError::InvalidConfig.code());
}

/// Records stamped `timestamp`, each in a batch of its own.
fn records_at(values: &[&str], timestamp: i64) -> Bytes {
    let records: Vec<kafka_protocol::records::Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| kafka_protocol::records::Record {
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            ..veltrix_client::plain_record(i as i64, -1, timestamp)
        })
        .collect();
    veltrix_client::encode_records(&records, Compression::None).unwrap()
}

/// Time retention on shared storage: the partition's leader removes the
/// old batches from the start; both brokers then answer ListOffsets'
/// earliest with the new start and a Fetch below it with
/// OFFSET_OUT_OF_RANGE (so consumers reset as their policy says), and the
/// kept batches read as before.
#[tokio::test]
async fn retention_removes_old_batches_and_a_fetch_below_the_start_is_out_of_range() {
    use super::alter_configs::{alter, op};
    use kafka_protocol::messages::ListOffsetsRequest;
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    const T0: i64 = 1_700_000_000_000;
    const HOUR_MS: i64 = 3_600_000;
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "r", 1).await;
    let r = alter(&mut a, 2, "r", vec![op("retention.ms", 0, Some("3600000"))], false).await;
    assert_eq!(r.responses[0].error_code, errors::NONE);
    assert_eq!(
        produce(&mut a, "r", 0, -1, records_at(&["old0", "old1"], T0)).await,
        (errors::NONE, 0)
    );
    assert_eq!(
        produce(&mut b, "r", 0, -1, records_at(&["new"], T0 + 2 * HOUR_MS)).await,
        (errors::NONE, 2)
    );

    // An hour after the new batch's timestamp less a millisecond: the old
    // ones are past retention, the new one is not.
    let now_ms = T0 + 3 * HOUR_MS - 1;
    let mut removed = 0;
    for s in [&p.a, &p.b] {
        let storage = s.kafka_config.shared.as_ref().unwrap();
        storage.sync(&s.broker).await.unwrap();
        removed += storage.enforce_retention(&s.broker, now_ms).await;
    }
    assert_eq!(removed, 2, "the leader removed both old batches, once");
    for s in [&p.a, &p.b] {
        let storage = s.kafka_config.shared.as_ref().unwrap();
        assert_eq!(storage.enforce_retention(&s.broker, now_ms).await, 0, "nothing more");
    }

    let earliest = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default().with_name(topic("r")).with_partitions(vec![
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2),
        ]),
    ]);
    for c in [&mut a, &mut b] {
        let r = c.call(earliest.clone(), 7).await;
        assert_eq!(r.topics[0].partitions[0].offset, 2);
        let below = c.call(fetch_request("r", 0, 0, 0), 12).await;
        let part = &below.responses[0].partitions[0];
        assert_eq!(part.error_code, ResponseError::OffsetOutOfRange.code());
        assert_eq!(part.log_start_offset, 2);
        let kept = c.call(fetch_request("r", 0, 2, 0), 12).await;
        let part = &kept.responses[0].partitions[0];
        assert_eq!(part.error_code, errors::NONE);
        assert_eq!(
            fetched(part.records.as_ref().unwrap())
                .into_values()
                .collect::<Vec<_>>(),
            ["new"]
        );
    }
}

/// DeleteRecords on shared storage: the start moves (never back, never past
/// the end), both brokers answer ListOffsets' earliest with it and a Fetch
/// below it with OFFSET_OUT_OF_RANGE; -1 means the high watermark.
#[tokio::test]
async fn delete_records_moves_the_start_on_every_broker() {
    use kafka_protocol::messages::DeleteRecordsRequest;
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "d", 1).await;
    for v in ["r0", "r1", "r2"] {
        produce(&mut a, "d", 0, -1, records_at(&[v], 1_700_000_000_000)).await;
    }
    let delete = |offset: i64| {
        DeleteRecordsRequest::default()
            .with_topics(vec![
                DeleteRecordsTopic::default()
                    .with_name(topic("d"))
                    .with_partitions(vec![
                        DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(offset),
                    ]),
            ])
            .with_timeout_ms(5_000)
    };
    let answer = |r: kafka_protocol::messages::DeleteRecordsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(answer(b.call(delete(2), 2).await), (errors::NONE, 2));
    assert_eq!(answer(a.call(delete(1), 2).await), (errors::NONE, 2), "never back");
    assert_eq!(
        answer(a.call(delete(4), 2).await),
        (ResponseError::OffsetOutOfRange.code(), -1),
        "past the end"
    );
    for c in [&mut a, &mut b] {
        let below = c.call(fetch_request("d", 0, 1, 0), 12).await;
        assert_eq!(
            below.responses[0].partitions[0].error_code,
            ResponseError::OffsetOutOfRange.code()
        );
        let kept = c.call(fetch_request("d", 0, 2, 0), 12).await;
        let part = &kept.responses[0].partitions[0];
        assert_eq!(
            fetched(part.records.as_ref().unwrap())
                .into_values()
                .collect::<Vec<_>>(),
            ["r2"]
        );
    }
    assert_eq!(
        answer(b.call(delete(-1), 2).await),
        (errors::NONE, 3),
        "-1: the high watermark"
    );
}

fn share_fetch_request(group: &str, member: &str, topic_id: uuid::Uuid, partition: i32) -> ShareFetchRequest {
    use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
    ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_string(group.to_owned()))))
        .with_member_id(Some(StrBytes::from_string(member.to_owned())))
        .with_share_session_epoch(0)
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![FetchTopic::default().with_topic_id(topic_id).with_partitions(
            vec![FetchPartition::default().with_partition_index(partition)],
        )])
}

/// (first, last, delivery count) of each range acquired.
type Ranges = Vec<(i64, i64, i16)>;

fn acquired(r: &kafka_protocol::messages::ShareFetchResponse) -> Ranges {
    r.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| &p.acquired_records)
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

/// Acquires through the engine of `server` as if it led the partition now
/// (a take-over), on the blocking pool as the front door does.
async fn acquire_on(server: &Server, group: &str, member: &str, topic: &str, partition: i32) -> Ranges {
    let shared = server.kafka_config.shared.clone().unwrap();
    let broker = server.broker.clone();
    let (group, member, topic) = (group.to_owned(), member.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || {
        let id = broker.topic(&topic).unwrap().id;
        let handle = tokio::runtime::Handle::current();
        let source_of = |_: &veltrix_core::TopicId, p: i32| {
            veltrix_kafka::shared_share::SharedSource::open(shared.node().clone(), handle.clone(), &topic, p)
                .map(|s| Arc::new(s) as Arc<dyn veltrix_core::share::ShareSource>)
        };
        let answers = broker
            .share()
            .acquire_all(&group, &member, &[(id, partition)], &source_of, 100, 1 << 20);
        answers
            .into_iter()
            .flat_map(|(_, r)| r.unwrap().acquired)
            .map(|a| (a.first, a.last, i16::try_from(a.deliveries).unwrap()))
            .collect()
    })
    .await
    .unwrap()
}

/// Acknowledges `first..=last` of `member` on `server`'s engine with one
/// type (1 accept, 2 release, 3 reject).
async fn acknowledge_on(
    server: &Server,
    (group, member): (&str, &str),
    (topic, partition): (&str, i32),
    (first, last, kind): (i64, i64, i8),
) -> Result<(), veltrix_core::share::ShareError> {
    use veltrix_core::share::{AckBatch, PartitionAcks};
    let broker = server.broker.clone();
    let (group, member) = (group.to_owned(), member.to_owned());
    let id = broker.topic(topic).unwrap().id;
    tokio::task::spawn_blocking(move || {
        let acks = [PartitionAcks {
            topic: id,
            partition,
            batches: vec![AckBatch {
                first,
                last,
                types: vec![kind],
            }],
        }];
        broker.share().acknowledge(&group, &member, &acks).remove(0)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_groups_are_served_by_partition_leaders_and_their_state_follows_a_take_over() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "q", 2).await;
    metadata(&mut b, "q").await;
    let m = metadata(&mut a, "q").await;
    let topic_id = m.topics[0].topic_id;
    let leader_of_0 = m.topics[0]
        .partitions
        .iter()
        .find(|p| p.partition_index == 0)
        .unwrap()
        .leader_id
        .0;
    let (leader, other, leader_client, other_client) = if leader_of_0 == 1 {
        (&p.a, &p.b, &mut a, &mut b)
    } else {
        (&p.b, &p.a, &mut b, &mut a)
    };

    // Membership is the coordinator's: the other broker sends the member there.
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("g"))
        .with_key_type(0);
    let coordinator = leader_client.call(find, 3).await.node_id.0;
    let heartbeat = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str("m1-0000000000000000000"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![topic("q")]));
    let (on_coordinator, elsewhere) = if coordinator == leader_of_0 {
        (&mut *leader_client, &mut *other_client)
    } else {
        (&mut *other_client, &mut *leader_client)
    };
    let refused = elsewhere.call(heartbeat.clone(), 1).await;
    assert_eq!(refused.error_code, ResponseError::NotCoordinator.code());
    let joined = on_coordinator.call(heartbeat, 1).await;
    assert_eq!(joined.error_code, errors::NONE, "{:?}", joined.error_message);
    assert!(joined.member_epoch > 0);

    // Records are handed out by the partition's leader only.
    let m1 = "m1-0000000000000000000";
    let not_here = other_client.call(share_fetch_request("g", m1, topic_id, 0), 1).await;
    let part = &not_here.responses[0].partitions[0];
    assert_eq!(part.error_code, ResponseError::NotLeaderOrFollower.code());
    assert_eq!(part.current_leader.leader_id, leader_of_0);
    assert!(part.acquired_records.is_empty());
    // The share-partition starts at the end (share.auto.offset.reset), then
    // records come.
    let empty = leader_client.call(share_fetch_request("g", m1, topic_id, 0), 1).await;
    assert_eq!(acquired(&empty), []);
    let produced = produce(
        leader_client,
        "q",
        0,
        -1,
        records(&["r0", "r1", "r2"], Compression::None),
    )
    .await;
    assert_eq!(produced, (errors::NONE, 0));
    let fetched = leader_client.call(share_fetch_request("g", m1, topic_id, 0), 1).await;
    assert_eq!(fetched.responses[0].partitions[0].error_code, errors::NONE);
    assert_eq!(acquired(&fetched), [(0, 2, 1)]);
    acknowledge_on(leader, ("g", m1), ("q", 0), (0, 0, 1)).await.unwrap();

    // Another broker takes the share-partition over: what was accepted stays
    // done, what was acquired is delivered again, counted.
    assert_eq!(acquire_on(other, "g", "m2", "q", 0).await, [(1, 2, 2)]);
    // The first broker's copy is stale: its change is refused, and dropped.
    let stale = acknowledge_on(leader, ("g", m1), ("q", 0), (1, 1, 1)).await;
    assert!(
        matches!(stale, Err(veltrix_core::share::ShareError::NotLeader(_))),
        "{stale:?}"
    );
    assert!(leader.broker.share().stats().is_empty(), "the stale copy left memory");
    // Taking it back loads what the other broker stored.
    acknowledge_on(other, ("g", "m2"), ("q", 0), (1, 1, 1)).await.unwrap();
    assert_eq!(acquire_on(leader, "g", "m3", "q", 0).await, [(2, 2, 3)]);

    // Deleted (on its coordinator, once empty), the group's state is gone
    // for every broker: a copy still held is refused at its next change.
    let coordinator_server = if coordinator == 1 { &p.a } else { &p.b };
    let leave = ShareGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str(m1))
        .with_member_epoch(-1);
    let mut to_coordinator = Client::connect(coordinator_server.addr).await;
    assert_eq!(to_coordinator.call(leave, 1).await.error_code, errors::NONE);
    let broker = coordinator_server.broker.clone();
    tokio::task::spawn_blocking(move || broker.share().delete_group("g"))
        .await
        .unwrap()
        .unwrap();
    let stale = acknowledge_on(leader, ("g", "m3"), ("q", 0), (2, 2, 2)).await;
    if coordinator == leader_of_0 {
        // Deleted here: the copy left with the group.
        assert!(
            matches!(stale, Err(veltrix_core::share::ShareError::InvalidRecordState(_))),
            "{stale:?}"
        );
    } else {
        assert!(
            matches!(stale, Err(veltrix_core::share::ShareError::NotLeader(_))),
            "{stale:?}"
        );
    }
    assert_eq!(
        acquire_on(leader, "g", "m4", "q", 0).await,
        [],
        "a new group starts at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_groups_settings_set_on_one_broker_are_adopted_by_the_other() {
    use veltrix_core::share::AutoOffsetReset;
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    create_topic(&mut a, "q", 1).await;
    metadata(&mut Client::connect(p.b.addr).await, "q").await;
    let produced = produce(&mut a, "q", 0, -1, records(&["r0", "r1"], Compression::None)).await;
    assert_eq!(produced, (errors::NONE, 0));
    let earliest = vec![("share.auto.offset.reset".to_owned(), "earliest".to_owned())];
    let a_broker = p.a.broker.clone();
    tokio::task::spawn_blocking(move || a_broker.share().set_settings("g", earliest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        p.a.broker.share().settings("g").auto_offset_reset,
        AutoOffsetReset::Earliest
    );
    assert_eq!(
        p.b.broker.share().settings("g").auto_offset_reset,
        AutoOffsetReset::Latest
    );
    // A new share-partition on the other broker starts where they say, before
    // its next sync: the claim brings the group's settings along.
    assert_eq!(acquire_on(&p.b, "g", "m", "q", 0).await, [(0, 1, 1)]);
    assert_eq!(
        p.b.broker.share().settings("g").auto_offset_reset,
        AutoOffsetReset::Earliest
    );
    assert_eq!(p.b.broker.share().overrides("g").len(), 1);
    let b_shared = p.b.kafka_config.shared.clone().unwrap();
    b_shared.sync(&p.b.broker).await.unwrap();
    assert_eq!(
        p.b.broker.share().settings("g").auto_offset_reset,
        AutoOffsetReset::Earliest
    );
    // Removed on one broker, gone from the other at its next sync.
    let a_broker = p.a.broker.clone();
    tokio::task::spawn_blocking(move || a_broker.share().set_settings("g", Vec::new()))
        .await
        .unwrap()
        .unwrap();
    b_shared.sync(&p.b.broker).await.unwrap();
    assert_eq!(
        p.b.broker.share().settings("g").auto_offset_reset,
        AutoOffsetReset::Latest
    );
}

/// Lag on shared storage: measured by the group's coordinator from the
/// catalog (the engine's logs hold no records), and only there, so an
/// alert fires once; the age is the first record's behind the position.
#[tokio::test]
async fn a_groups_lag_is_measured_from_the_catalog_by_its_coordinator_alone() {
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "t", 1).await;
    metadata(&mut b, "t").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let produced = produce(
        &mut a,
        "t",
        0,
        -1,
        records_at(&["r0", "r1", "r2", "r3", "r4"], now - 60_000),
    )
    .await;
    assert_eq!(produced, (errors::NONE, 0));
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("g"))
        .with_key_type(0);
    let on = a.call(find, 3).await.node_id.0;
    let (coordinator, other, client) = if on == 1 {
        (&p.a, &p.b, &mut a)
    } else {
        (&p.b, &p.a, &mut b)
    };
    let committed = client.call(commit_to_t0("g", -1, "", 2), 8).await;
    assert_eq!(committed.topics[0].partitions[0].error_code, errors::NONE);
    let measure = async |s: &Server| {
        let storage = s.kafka_config.shared.as_ref().unwrap();
        storage.measure_lag(&s.broker).await.unwrap();
        s.broker.lag(&mut veltrix_core::lag::LagCache::default())
    };
    let lag = measure(coordinator).await;
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!(
        (lag[0].group.as_str(), lag[0].topic.as_str(), lag[0].partition),
        ("g", "t", 0)
    );
    assert_eq!((lag[0].committed, lag[0].end, lag[0].lag_records), (2, 5, 3));
    assert!(
        (60_000..120_000).contains(&lag[0].lag_ms),
        "the age of the record at offset 2: {} ms",
        lag[0].lag_ms
    );
    assert!(measure(other).await.is_empty(), "measured by the coordinator alone");
    let caught_up = client.call(commit_to_t0("g", -1, "", 5), 8).await;
    assert_eq!(caught_up.topics[0].partitions[0].error_code, errors::NONE);
    let lag = measure(coordinator).await;
    assert_eq!((lag[0].end, lag[0].lag_records, lag[0].lag_ms), (5, 0, 0));

    // A share-partition is measured where it is served, from its start.
    assert!(
        acquire_on(other, "sg", "m1", "t", 0).await.is_empty(),
        "starts at the end"
    );
    let more = produce(&mut a, "t", 0, -1, records_at(&["r5", "r6"], now - 30_000)).await;
    assert_eq!(more, (errors::NONE, 5));
    let lag = measure(other).await;
    assert_eq!(lag.len(), 1, "{lag:?}");
    assert_eq!(lag[0].group, "sg");
    assert_eq!((lag[0].committed, lag[0].end, lag[0].lag_records), (5, 7, 2));
    assert!((30_000..90_000).contains(&lag[0].lag_ms), "{} ms", lag[0].lag_ms);
}

/// Share groups' offsets on shared storage: altered and deleted through the
/// group's coordinator (NOT_COORDINATOR elsewhere), checked against the
/// catalog's offsets, stored in the catalog and described from either
/// broker; the partition's leader, which held a copy from before, drops it
/// at its next sync and serves the new start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_group_offsets_are_administered_by_the_coordinator_and_the_leader_follows() {
    use crate::share_offsets::{alter, altered, delete_offsets, describe, starts};
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let mut b = Client::connect(p.b.addr).await;
    create_topic(&mut a, "q", 1).await;
    metadata(&mut b, "q").await;
    let produced = produce(
        &mut a,
        "q",
        0,
        -1,
        records(&["r0", "r1", "r2", "r3", "r4"], Compression::None),
    )
    .await;
    assert_eq!(produced, (errors::NONE, 0));
    let m = metadata(&mut a, "q").await;
    let leader = if m.topics[0].partitions[0].leader_id.0 == 1 {
        &p.a
    } else {
        &p.b
    };
    assert!(
        acquire_on(leader, "g", "m1", "q", 0).await.is_empty(),
        "a new share group starts at the end"
    );
    let find = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("g"))
        .with_key_type(0);
    let (coordinator, other) = if a.call(find, 3).await.node_id.0 == 1 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let refused = alter(other, "g", &[("q", &[(0, 2)])]).await;
    assert_eq!(refused.error_code, ResponseError::NotCoordinator.code());
    let far = alter(coordinator, "g", &[("q", &[(0, 6)])]).await;
    assert_eq!(
        altered(&far),
        [("q".to_owned(), 0, ResponseError::OffsetOutOfRange.code())],
        "past the catalog's end"
    );
    let moved = alter(coordinator, "g", &[("q", &[(0, 2)])]).await;
    assert_eq!(moved.error_code, errors::NONE);
    assert_eq!(altered(&moved), [("q".to_owned(), 0, errors::NONE)]);
    for c in [&mut *coordinator, &mut *other] {
        assert_eq!(
            starts(&describe(c, "g", None).await),
            [("q".to_owned(), 0, 2, errors::NONE)]
        );
    }
    // The leader's copy (from the end) leaves memory at its next sync.
    let leader_storage = leader.kafka_config.shared.as_ref().unwrap();
    leader_storage.sync(&leader.broker).await.unwrap();
    assert_eq!(acquire_on(leader, "g", "m1", "q", 0).await, vec![(2, 4, 1)]);

    let refused = delete_offsets(other, "g", &["q"]).await;
    assert_eq!(refused.error_code, ResponseError::NotCoordinator.code());
    let deleted = delete_offsets(coordinator, "g", &["q"]).await;
    assert_eq!(deleted.error_code, errors::NONE);
    assert_eq!(deleted.responses[0].error_code, errors::NONE);
    assert!(starts(&describe(other, "g", None).await).is_empty());
    leader_storage.sync(&leader.broker).await.unwrap();
    assert!(
        acquire_on(leader, "g", "m1", "q", 0).await.is_empty(),
        "without state the group starts at the end again"
    );
}

/// A DescribeShareGroupOffsets naming more groups than shared storage
/// describes in one request (each is a query of the catalog) is refused
/// for each group (the first 100 answered), looking nothing up.
#[tokio::test]
async fn describing_too_many_share_groups_at_once_is_refused_on_shared_storage() {
    use kafka_protocol::messages::DescribeShareGroupOffsetsRequest;
    use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    let p = pair().await;
    let mut a = Client::connect(p.a.addr).await;
    let request = |n: usize| {
        DescribeShareGroupOffsetsRequest::default().with_groups(
            (0..n)
                .map(|i| {
                    DescribeShareGroupOffsetsRequestGroup::default()
                        .with_group_id(GroupId(StrBytes::from_string(format!("g{i}"))))
                })
                .collect(),
        )
    };
    let r = a.call(request(101), 0).await;
    assert_eq!(r.groups.len(), 100, "answered for at most as many groups");
    assert!(
        r.groups
            .iter()
            .all(|g| g.error_code == ResponseError::InvalidRequest.code())
    );
    let r = a.call(request(100), 0).await;
    assert!(
        r.groups
            .iter()
            .all(|g| g.error_code == errors::NONE && g.topics.is_empty())
    );
}
