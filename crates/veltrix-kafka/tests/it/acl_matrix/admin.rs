//! Cases of topic, configuration, cluster and quota administration.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClientQuotasRequest, DescribeClusterRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};

use super::*;

const INVALID_CONFIG: i16 = 40;

fn create(names: &[&str]) -> CreateTopicsRequest {
    let topics = names
        .iter()
        .map(|n| {
            let mut t = CreatableTopic::default();
            t.name = topic(n);
            t.num_partitions = 2;
            t.replication_factor = 1;
            t
        })
        .collect();
    CreateTopicsRequest::default().with_topics(topics)
}

/// Each topic's (error, partitions answered, configs error).
fn created(r: &CreateTopicsResponse) -> Vec<(i16, i32, i16)> {
    r.topics
        .iter()
        .map(|t| (t.error_code, t.num_partitions, t.topic_config_error_code))
        .collect()
}

pub(super) async fn create_topics(m: &mut Matrix) {
    let r = m.alice.call(create(&["ct-a"]), 7).await;
    assert_eq!(created(&r), vec![(TOPIC_DENIED, -1, NONE)]);
    assert_eq!(r.topics[0].error_message.as_deref(), Some("Authorization failed."));
    assert!(m.broker.topic("ct-a").is_none());
    // CREATE on a prefix; the count answered only with DESCRIBE_CONFIGS.
    m.allow_prefixed(Op::Create, Rt::Topic, "ct-");
    m.allow(Op::DescribeConfigs, Rt::Topic, "ct-b");
    m.deny(Op::Create, Rt::Topic, "ct-c");
    let r = m.alice.call(create(&["ct-a", "ct-b", "ct-c", "other-t"]), 7).await;
    assert_eq!(
        created(&r),
        vec![
            (NONE, -1, TOPIC_DENIED),
            (NONE, 2, NONE),
            (TOPIC_DENIED, -1, NONE),
            (TOPIC_DENIED, -1, NONE)
        ]
    );
    assert!(m.broker.topic("ct-a").is_some() && m.broker.topic("ct-c").is_none());
    // CREATE on the cluster: any topic, as in Kafka.
    m.allow_cluster(Op::Create);
    let r = m.alice.call(create(&["other-t", "ct-c"]), 7).await;
    assert_eq!(created(&r), vec![(NONE, -1, TOPIC_DENIED), (NONE, -1, TOPIC_DENIED)]);
}

fn delete_by_name(name: &str) -> DeleteTopicsRequest {
    DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(topic(name)))])
}

pub(super) async fn delete_topics(m: &mut Matrix) {
    m.topic("dt-a", 1).await;
    m.topic("dt-b", 1).await;
    let code = |r: kafka_protocol::messages::DeleteTopicsResponse| r.responses[0].error_code;
    assert_eq!(code(m.alice.call(delete_by_name("dt-a"), 6).await), TOPIC_DENIED);
    assert_eq!(code(m.alice.call(delete_by_name("dt-missing"), 6).await), TOPIC_DENIED);
    // By id, the name of a topic alice may not describe is not given.
    let id = m.topic_id("dt-b");
    let by_id = DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let r = m.alice.call(by_id.clone(), 6).await;
    assert_eq!((r.responses[0].error_code, r.responses[0].topic_id), (TOPIC_DENIED, id));
    assert!(r.responses[0].name.is_none());
    m.allow(Op::Describe, Rt::Topic, "dt-b");
    let r = m.alice.call(by_id, 6).await;
    assert_eq!(r.responses[0].error_code, TOPIC_DENIED);
    assert_eq!(r.responses[0].name.as_ref().map(|n| n.0.as_str()), Some("dt-b"));
    m.allow_prefixed(Op::Delete, Rt::Topic, "dt-");
    assert_eq!(code(m.alice.call(delete_by_name("dt-missing"), 6).await), UNKNOWN_TOPIC);
    assert_eq!(code(m.alice.call(delete_by_name("dt-a"), 6).await), NONE);
    assert!(m.broker.topic("dt-a").is_none());
}

pub(super) async fn create_partitions(m: &mut Matrix) {
    m.topic("cp-t", 1).await;
    let request = CreatePartitionsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatePartitionsTopic::default().with_name(topic("cp-t")).with_count(2),
        ]);
    let r = m.alice.call(request.clone(), 3).await;
    assert_eq!(r.results[0].error_code, TOPIC_DENIED);
    m.allow(Op::Alter, Rt::Topic, "cp-t");
    let r = m.alice.call(request, 3).await;
    assert_eq!(r.results[0].error_code, NONE, "{:?}", r.results[0].error_message);
    assert_eq!(m.broker.topic("cp-t").unwrap().partitions.len(), 2);
}

pub(super) async fn delete_records(m: &mut Matrix) {
    m.topic("dr-t", 1).await;
    let request = DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
        DeleteRecordsTopic::default()
            .with_name(topic("dr-t"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1),
            ]),
    ]);
    let answer = |r: kafka_protocol::messages::DeleteRecordsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.low_watermark)
    };
    assert_eq!(answer(m.alice.call(request.clone(), 2).await), (TOPIC_DENIED, -1));
    m.allow(Op::Delete, Rt::Topic, "dr-t");
    assert_eq!(answer(m.alice.call(request, 2).await), (NONE, 1));
}

fn resource(resource_type: i8, name: &str) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(text(name))
        .with_configuration_keys(None)
}

pub(super) async fn describe_configs(m: &mut Matrix) {
    m.topic("dc-t", 1).await;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        resource(2, "dc-t"),
        resource(4, "0"),
        resource(32, "dc-g"),
    ]);
    let codes = |r: kafka_protocol::messages::DescribeConfigsResponse| -> Vec<i16> {
        r.results.iter().map(|c| c.error_code).collect()
    };
    let r = m.alice.call(request.clone(), 4).await;
    assert!(r.results.iter().all(|c| c.configs.is_empty()));
    assert_eq!(codes(r), vec![TOPIC_DENIED, CLUSTER_DENIED, GROUP_DENIED]);
    // ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    m.allow(Op::AlterConfigs, Rt::Topic, "dc-t");
    m.allow_cluster(Op::DescribeConfigs);
    m.allow(Op::DescribeConfigs, Rt::Group, "dc-g");
    let r = m.alice.call(request, 4).await;
    assert!(r.results.iter().all(|c| !c.configs.is_empty()));
    assert_eq!(codes(r), vec![NONE, NONE, NONE]);
}

pub(super) async fn incremental_alter_configs(m: &mut Matrix) {
    use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    m.topic("iac-t", 1).await;
    let set = |resource_type: i8, name: &str| {
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(text(name))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(text("60000"))),
            ])
    };
    let request =
        IncrementalAlterConfigsRequest::default().with_resources(vec![set(2, "iac-t"), set(4, "0"), set(32, "iac-g")]);
    let codes = |r: kafka_protocol::messages::IncrementalAlterConfigsResponse| -> Vec<i16> {
        r.responses.iter().map(|c| c.error_code).collect()
    };
    assert_eq!(
        codes(m.alice.call(request.clone(), 1).await),
        vec![TOPIC_DENIED, CLUSTER_DENIED, GROUP_DENIED]
    );
    m.allow(Op::AlterConfigs, Rt::Topic, "iac-t");
    m.allow_cluster(Op::AlterConfigs);
    let r = m.alice.call(request, 1).await;
    // Broker settings are static: refused, but no longer for an ACL.
    assert_eq!(codes(r)[..2], [NONE, INVALID_CONFIG]);
    assert_eq!(m.broker.topic("iac-t").unwrap().config.retention_ms, Some(60_000));
}

pub(super) async fn alter_configs(m: &mut Matrix) {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    m.topic("ac-t", 1).await;
    let request = AlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(text("ac-t"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(text("retention.ms"))
                    .with_value(Some(text("120000"))),
            ]),
    ]);
    assert_eq!(
        m.alice.call(request.clone(), 2).await.responses[0].error_code,
        TOPIC_DENIED
    );
    m.allow(Op::AlterConfigs, Rt::Topic, "ac-t");
    assert_eq!(m.alice.call(request, 2).await.responses[0].error_code, NONE);
    assert_eq!(m.broker.topic("ac-t").unwrap().config.retention_ms, Some(120_000));
}

/// As Kafka: no ACL to describe the cluster; its operations need DESCRIBE.
pub(super) async fn describe_cluster(m: &mut Matrix) {
    let request = DescribeClusterRequest::default()
        .with_endpoint_type(1)
        .with_include_cluster_authorized_operations(true);
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!((r.error_code, r.brokers.len()), (NONE, 1));
    assert_eq!(r.cluster_authorized_operations, 0);
    m.allow_cluster(Op::Alter);
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!(r.cluster_authorized_operations, bit(Op::Alter) | bit(Op::Describe));
    let r = m
        .alice
        .call(request.with_include_cluster_authorized_operations(false), 1)
        .await;
    assert_eq!(r.cluster_authorized_operations, i32::MIN);
}

pub(super) async fn describe_client_quotas(m: &mut Matrix) {
    let request = DescribeClientQuotasRequest::default().with_components(vec![
        ComponentData::default()
            .with_entity_type(text("user"))
            .with_match_type(2),
    ]);
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!(r.error_code, CLUSTER_DENIED);
    assert!(r.entries.is_none());
    m.allow_cluster(Op::DescribeConfigs);
    let r = m.alice.call(request, 1).await;
    assert_eq!(r.error_code, NONE);
}

pub(super) async fn alter_client_quotas(m: &mut Matrix) {
    let request = AlterClientQuotasRequest::default().with_entries(vec![
        EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(text("user"))
                    .with_entity_name(Some(text("quota-user"))),
            ])
            .with_ops(vec![
                OpData::default().with_key(text("producer_byte_rate")).with_value(1e6),
            ]),
    ]);
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!(r.entries[0].error_code, CLUSTER_DENIED);
    assert!(m.broker.quotas().entities().is_empty());
    // DESCRIBE_CONFIGS does not imply ALTER_CONFIGS.
    m.allow_cluster(Op::DescribeConfigs);
    assert_eq!(
        m.alice.call(request.clone(), 1).await.entries[0].error_code,
        CLUSTER_DENIED
    );
    m.allow_cluster(Op::AlterConfigs);
    let r = m.alice.call(request, 1).await;
    assert_eq!(r.entries[0].error_code, NONE, "{:?}", r.entries[0].error_message);
    assert_eq!(m.broker.quotas().entities().len(), 1);
}
