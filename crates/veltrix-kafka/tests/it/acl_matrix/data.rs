//! Cases of the data path: Metadata, Produce, Fetch, ListOffsets and
//! InitProducerId.

use indexmap::IndexMap;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse, ProduceRequest,
    TransactionalId,
};
use kafka_protocol::records::Record;

use super::*;
use crate::fetch_request;

fn all_topics() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false)
}

fn named(names: &[&str], auto: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic(n))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto)
}

/// The topics answered without an error, sorted.
fn shown(r: &MetadataResponse) -> Vec<String> {
    let mut names: Vec<String> = r
        .topics
        .iter()
        .filter(|t| t.error_code == NONE)
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    names.sort();
    names
}

/// Each topic's (name, error) in the answer.
fn codes(r: &MetadataResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.error_code,
            )
        })
        .collect()
}

pub(super) async fn metadata(m: &mut Matrix) {
    for t in ["md-a", "md-b", "mx-other"] {
        m.topic(t, 1).await;
    }
    assert!(shown(&m.alice.call(all_topics(), 12).await).is_empty());
    m.allow_prefixed(Op::Describe, Rt::Topic, "md-");
    assert_eq!(shown(&m.alice.call(all_topics(), 12).await), ["md-a", "md-b"]);
    m.deny(Op::Describe, Rt::Topic, "md-b");
    assert_eq!(shown(&m.alice.call(all_topics(), 12).await), ["md-a"]);
    // By name: without DESCRIBE, TOPIC_AUTHORIZATION_FAILED whether the
    // topic exists or not.
    let r = m
        .alice
        .call(
            named(&["md-a", "md-b", "mx-other", "mx-missing", "md-missing"], false),
            12,
        )
        .await;
    let expected = [
        ("md-a", NONE),
        ("md-b", TOPIC_DENIED),
        ("mx-other", TOPIC_DENIED),
        ("mx-missing", TOPIC_DENIED),
        ("md-missing", UNKNOWN_TOPIC),
    ];
    assert_eq!(codes(&r), expected.map(|(n, c)| (n.to_owned(), c)));
    assert!(r.topics[1].partitions.is_empty() && r.topics[1].topic_id.is_nil());
    metadata_operations(m).await;
    metadata_by_id_and_auto_creation(m).await;
}

async fn metadata_operations(m: &mut Matrix) {
    let asked = named(&["md-a", "mx-other"], false)
        .with_include_topic_authorized_operations(true)
        .with_include_cluster_authorized_operations(true);
    let r = m.alice.call(asked.clone(), 10).await;
    assert_eq!(r.topics[0].topic_authorized_operations, bit(Op::Describe));
    assert_eq!(r.topics[1].topic_authorized_operations, i32::MIN, "denied: none");
    assert_eq!(r.cluster_authorized_operations, 0, "no DESCRIBE on the cluster");
    m.allow(Op::Read, Rt::Topic, "md-a");
    m.allow_cluster(Op::Describe);
    let r = m.alice.call(asked.clone(), 10).await;
    assert_eq!(
        r.topics[0].topic_authorized_operations,
        bit(Op::Read) | bit(Op::Describe)
    );
    assert_eq!(r.cluster_authorized_operations, bit(Op::Describe));
    let r = m.admin.call(asked, 10).await;
    assert_eq!(r.topics[1].topic_authorized_operations, Rt::Topic.operation_bits());
    assert_eq!(r.cluster_authorized_operations, Rt::Cluster.operation_bits());
}

async fn metadata_by_id_and_auto_creation(m: &mut Matrix) {
    let id = m.topic_id("mx-other");
    let by_id = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_topic_id(id).with_name(None),
    ]));
    let r = m.alice.call(by_id, 12).await;
    assert_eq!((r.topics[0].error_code, r.topics[0].topic_id), (TOPIC_DENIED, id));
    assert!(
        r.topics[0].name.is_none(),
        "the name of a topic alice may not describe is not shown"
    );
    // Auto-creation needs CREATE on the cluster or the topic.
    let r = m.alice.call(named(&["md-auto"], true), 12).await;
    assert_eq!(r.topics[0].error_code, TOPIC_DENIED);
    assert!(m.broker.topic("md-auto").is_none());
    m.allow(Op::Create, Rt::Topic, "md-auto");
    let r = m.alice.call(named(&["md-auto"], true), 12).await;
    assert_eq!(r.topics[0].error_code, NONE);
    assert!(m.broker.topic("md-auto").is_some());
}

async fn produce_to(c: &mut Client, name: &str) -> i16 {
    super::produce(c, name, 0, -1, records(&["x"], Compression::None))
        .await
        .0
}

/// A produce of transactional batches, with `transactional_id`.
fn transactional_produce(name: &str, transactional_id: Option<&str>) -> ProduceRequest {
    let record = Record {
        transactional: true,
        producer_id: 7,
        producer_epoch: 0,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: IndexMap::new(),
        ..veltrix_client::plain_record(0, 0, 1_700_000_000_000)
    };
    let batch = veltrix_client::encode_records(&[record], Compression::None).unwrap();
    let pd = PartitionProduceData::default().with_index(0).with_records(Some(batch));
    ProduceRequest::default()
        .with_transactional_id(transactional_id.map(|t| TransactionalId(text(t))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![pd]),
        ])
}

pub(super) async fn produce(m: &mut Matrix) {
    m.topic("pr-t", 1).await;
    assert_eq!(produce_to(&mut m.alice, "pr-t").await, TOPIC_DENIED);
    assert_eq!(
        produce_to(&mut m.alice, "pr-missing").await,
        TOPIC_DENIED,
        "before existence"
    );
    m.allow_prefixed(Op::Write, Rt::Topic, "pr-");
    assert_eq!(produce_to(&mut m.alice, "pr-t").await, NONE);
    assert_eq!(produce_to(&mut m.alice, "pr-missing").await, UNKNOWN_TOPIC);
    // Transactional batches need WRITE on the transactional id.
    for id in [None, Some("pr-tx")] {
        let r = m.alice.call(transactional_produce("pr-t", id), 9).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, TXN_DENIED, "{id:?}");
    }
    m.allow(Op::Write, Rt::TransactionalId, "pr-tx");
    let r = m.alice.call(transactional_produce("pr-t", Some("pr-tx")), 9).await;
    let code = r.responses[0].partition_responses[0].error_code;
    assert_eq!(
        code, 49,
        "allowed, and refused as INVALID_PRODUCER_ID_MAPPING: producer 7 has no transaction"
    );
    m.deny(Op::Write, Rt::Topic, "pr-t");
    assert_eq!(
        produce_to(&mut m.alice, "pr-t").await,
        TOPIC_DENIED,
        "a DENY overrides an ALLOW"
    );
}

pub(super) async fn fetch(m: &mut Matrix) {
    m.topic("fe-t", 1).await;
    let code = |r: &kafka_protocol::messages::FetchResponse| r.responses[0].partitions[0].error_code;
    let r = m.alice.call(fetch_request("fe-t", 0, 0, 0), 11).await;
    assert_eq!(code(&r), TOPIC_DENIED);
    assert!(
        r.responses[0].partitions[0]
            .records
            .as_ref()
            .is_none_or(|b| b.is_empty())
    );
    m.allow(Op::Read, Rt::Topic, "fe-t");
    let r = m.alice.call(fetch_request("fe-t", 0, 0, 0), 11).await;
    assert_eq!(code(&r), NONE);
    assert!(
        r.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|b| !b.is_empty())
    );
    // A follower's fetch needs CLUSTER_ACTION, READ or not.
    let follower = fetch_request("fe-t", 0, 0, 0).with_replica_id(BrokerId(1));
    assert_eq!(code(&m.alice.call(follower.clone(), 11).await), TOPIC_DENIED);
    m.allow_cluster(Op::ClusterAction);
    assert_eq!(code(&m.alice.call(follower, 11).await), NONE);
    m.deny(Op::Read, Rt::Topic, "fe-t");
    assert_eq!(
        code(&m.alice.call(fetch_request("fe-t", 0, 0, 0), 11).await),
        TOPIC_DENIED
    );
}

pub(super) async fn list_offsets(m: &mut Matrix) {
    m.topic("lo-t", 1).await;
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic("lo-t"))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    let answer = |r: kafka_protocol::messages::ListOffsetsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset)
    };
    assert_eq!(answer(m.alice.call(request.clone(), 7).await), (TOPIC_DENIED, -1));
    m.allow(Op::Read, Rt::Topic, "lo-t");
    assert_eq!(
        answer(m.alice.call(request.clone(), 7).await),
        (NONE, 1),
        "READ implies DESCRIBE"
    );
    m.deny(Op::Describe, Rt::Topic, "lo-t");
    assert_eq!(answer(m.alice.call(request, 7).await), (TOPIC_DENIED, -1));
}

pub(super) async fn init_producer_id(m: &mut Matrix) {
    let idempotent = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let r = m.alice.call(idempotent.clone(), 4).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    // WRITE on any topic is enough (KIP-679)...
    m.allow(Op::Write, Rt::Topic, "ipi-t");
    let r = m.alice.call(idempotent.clone(), 4).await;
    assert_eq!(r.error_code, NONE);
    assert!(r.producer_id.0 >= 0);
    // ...unless a DENY covers every topic; IDEMPOTENT_WRITE then still is.
    m.deny(Op::Write, Rt::Topic, "*");
    assert_eq!(m.alice.call(idempotent.clone(), 4).await.error_code, CLUSTER_DENIED);
    m.allow_cluster(Op::IdempotentWrite);
    assert_eq!(m.alice.call(idempotent.clone(), 4).await.error_code, NONE);
    // A transactional id needs WRITE on it.
    let transactional = idempotent
        .with_transactional_id(Some(TransactionalId(text("ipi-tx"))))
        .with_transaction_timeout_ms(60_000);
    let before = m.denied_count("WRITE", "TRANSACTIONAL_ID");
    assert_eq!(m.alice.call(transactional.clone(), 4).await.error_code, TXN_DENIED);
    assert_eq!(m.denied_count("WRITE", "TRANSACTIONAL_ID"), before + 1);
    m.allow(Op::Write, Rt::TransactionalId, "ipi-tx");
    assert_eq!(m.alice.call(transactional, 4).await.error_code, NONE);
    assert_eq!(m.denied_count("WRITE", "TRANSACTIONAL_ID"), before + 1);
}
