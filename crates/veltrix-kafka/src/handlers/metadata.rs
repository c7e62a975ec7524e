//! Metadata: the one broker, and topics with their partitions.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::{CoreError, Topic, TopicConfig};

use super::{Ctx, name, operations};
use crate::errors::{ResponseError, core_error};

fn metadata_topic(topic: &Topic) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(name(&topic.name));
    t.topic_id = Uuid::from_bytes(topic.id);
    t.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index;
            m.leader_id = BrokerId(0);
            m.leader_epoch = veltrix_log::LEADER_EPOCH;
            m.replica_nodes = vec![BrokerId(0)];
            m.isr_nodes = vec![BrokerId(0)];
            m
        })
        .collect();
    t
}

pub(super) fn metadata(ctx: &Ctx, request: MetadataRequest) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(0);
    broker.host = StrBytes::from_string(ctx.config.advertised.ip().to_string());
    broker.port = i32::from(ctx.config.advertised.port());
    r.brokers = vec![broker];
    r.cluster_id = Some(StrBytes::from_static_str("veltrix"));
    r.controller_id = BrokerId(0);
    r.topics = match request.topics {
        None => ctx.broker.topics().iter().map(|t| metadata_topic(t)).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| {
                // From v10 a topic may be asked for by id alone (consumers of
                // the KIP-848 protocol resolve their assignment this way).
                if w.name.is_none() && !w.topic_id.is_nil() {
                    let id = *w.topic_id.as_bytes();
                    return match ctx.broker.topics().into_iter().find(|t| t.id == id) {
                        Some(t) => metadata_topic(&t),
                        None => {
                            let mut t = MetadataResponseTopic::default();
                            t.topic_id = w.topic_id;
                            t.error_code = ResponseError::UnknownTopicId.code();
                            t
                        }
                    };
                }
                let n = w.name.as_ref().map(|n| n.0.as_str().to_owned()).unwrap_or_default();
                let auto = ctx.broker.config().auto_create_topics && request.allow_auto_topic_creation;
                let found = match ctx.broker.topic(&n) {
                    Some(t) => Ok(t),
                    None if auto => ctx.broker.create_topic(&n, None, TopicConfig::default()),
                    None => Err(CoreError::UnknownTopic(n.clone())),
                };
                match found {
                    Ok(t) => metadata_topic(&t),
                    Err(e) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = Some(name(&n));
                        t.error_code = core_error(&e).code();
                        t
                    }
                }
            })
            .collect(),
    };
    // Asked for from v8; the codec reads `false` before. Every topic in the
    // answer gets them, as in Kafka; the cluster's field exists in v8 to v10.
    let topic_operations = operations::answered(
        request.include_topic_authorized_operations,
        operations::TOPIC_OPERATIONS,
    );
    for t in &mut r.topics {
        t.topic_authorized_operations = topic_operations;
    }
    r.cluster_authorized_operations = operations::answered(
        request.include_cluster_authorized_operations,
        operations::CLUSTER_OPERATIONS,
    );
    r
}
