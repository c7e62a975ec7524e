//! Metadata: the one broker, and topics with their partitions: those the
//! principal may DESCRIBE (Kafka's rules, see `named_topic`).

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};
use veltrix_core::{CoreError, Topic, TopicConfig};

use super::{Ctx, name, operations};
use crate::errors::{ResponseError, core_error};

fn metadata_topic(ctx: &Ctx, topic: &Topic) -> MetadataResponseTopic {
    let shared = ctx.config.shared.as_ref();
    let mut t = MetadataResponseTopic::default();
    t.name = Some(name(&topic.name));
    t.topic_id = Uuid::from_bytes(topic.id);
    t.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index;
            let leader = BrokerId(shared.map_or(0, |s| s.node().leader_of(&topic.name, p.index)));
            m.leader_id = leader;
            m.leader_epoch = veltrix_log::LEADER_EPOCH;
            m.replica_nodes = vec![leader];
            m.isr_nodes = vec![leader];
            m
        })
        .collect();
    t
}

/// A topic answered with an error only.
fn failed_topic(name: Option<&str>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = name.map(super::name);
    t.topic_id = id;
    t.error_code = error.code();
    t
}

/// A topic asked for by name, as Kafka answers it: without DESCRIBE on it,
/// TOPIC_AUTHORIZATION_FAILED whether it exists or not; created if missing
/// and `auto` (with CREATE on the cluster or on the topic, else
/// TOPIC_AUTHORIZATION_FAILED). The bool: whether the topic was authorized
/// (and gets its authorized operations).
fn named_topic(ctx: &Ctx, n: &str, auto: bool) -> (MetadataResponseTopic, bool) {
    let who = ctx.who();
    if !who.allowed(AclOperation::Describe, ResourceType::Topic, n) {
        return (
            failed_topic(Some(n), Uuid::nil(), ResponseError::TopicAuthorizationFailed),
            false,
        );
    }
    let found = match ctx.broker.topic(n) {
        Some(t) => Ok(t),
        None if auto => {
            let may_create = who.allowed_quietly(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME)
                || who.allowed(AclOperation::Create, ResourceType::Topic, n);
            if !may_create {
                return (
                    failed_topic(Some(n), Uuid::nil(), ResponseError::TopicAuthorizationFailed),
                    false,
                );
            }
            ctx.broker.create_topic(n, None, TopicConfig::default())
        }
        None => Err(CoreError::UnknownTopic(n.to_owned())),
    };
    match found {
        Ok(t) => (metadata_topic(ctx, &t), true),
        Err(e) => (failed_topic(Some(n), Uuid::nil(), core_error(&e)), true),
    }
}

/// A topic asked for by id alone (from v10; consumers of the KIP-848
/// protocol resolve their assignment this way). Ids are not secret, as in
/// Kafka: an undescribable topic is TOPIC_AUTHORIZATION_FAILED with its id
/// and no name.
fn topic_by_id(ctx: &Ctx, id: Uuid) -> (MetadataResponseTopic, bool) {
    let Some(t) = ctx.broker.topic_by_id(id.as_bytes()) else {
        return (failed_topic(None, id, ResponseError::UnknownTopicId), false);
    };
    if !ctx.who().allowed(AclOperation::Describe, ResourceType::Topic, &t.name) {
        return (failed_topic(None, id, ResponseError::TopicAuthorizationFailed), false);
    }
    (metadata_topic(ctx, &t), true)
}

/// The brokers clients are told: this one alone, or on shared storage the
/// live brokers by id, each at its address on the listener the request came
/// through (this one's own listener for itself).
pub(super) fn brokers(ctx: &Ctx) -> Vec<MetadataResponseBroker> {
    let own = |id: i32| {
        let mut b = MetadataResponseBroker::default();
        b.node_id = BrokerId(id);
        b.host = StrBytes::from_string(ctx.listener.advertised_host.clone());
        b.port = i32::from(ctx.listener.advertised_port);
        b
    };
    let Some(shared) = &ctx.config.shared else {
        return vec![own(0)];
    };
    let live = shared.node().live_brokers();
    if live.is_empty() {
        return vec![own(shared.broker_id())];
    }
    live.into_iter()
        .map(|l| {
            if l.broker_id == shared.broker_id() {
                return own(l.broker_id);
            }
            let (host, port) = l.address_on(&ctx.listener.name);
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(l.broker_id);
            b.host = StrBytes::from_string(host.to_owned());
            b.port = port;
            b
        })
        .collect()
}

/// On shared storage, before a Metadata answer: the topics named that this
/// broker does not know are read from the metadata store, and those still
/// missing are created there when auto-creation is on and the principal may.
pub(super) async fn prepare_shared(ctx: &Ctx, request: &MetadataRequest) {
    let Some(shared) = &ctx.config.shared else { return };
    // Every topic: read first too, so a topic just created through another
    // broker is listed (reads are shared and at least 50 ms apart).
    let Some(wanted) = &request.topics else {
        shared.sync_soon(&ctx.broker).await;
        return;
    };
    let unknown: Vec<String> = wanted
        .iter()
        .filter_map(|w| w.name.as_ref().map(|n| n.0.as_str().to_owned()))
        .filter(|n| ctx.broker.topic(n).is_none())
        .collect();
    if unknown.is_empty() {
        return;
    }
    shared.sync_soon(&ctx.broker).await;
    if !(ctx.broker.config().auto_create_topics && request.allow_auto_topic_creation) {
        return;
    }
    let who = ctx.who();
    let creatable: Vec<String> = unknown
        .into_iter()
        .filter(|n| ctx.broker.topic(n).is_none())
        .filter(|n| {
            who.allowed_quietly(AclOperation::Describe, ResourceType::Topic, n)
                && (who.allowed_quietly(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME)
                    || who.allowed_quietly(AclOperation::Create, ResourceType::Topic, n))
        })
        .collect();
    if creatable.is_empty() {
        return;
    }
    let (creator, broker) = (shared.clone(), ctx.broker.clone());
    let _ = tokio::task::spawn_blocking(move || {
        for n in creatable {
            match creator.create_topic_blocking(&broker, &n, None, TopicConfig::default()) {
                Ok(_) => tracing::info!(topic = %n, "created topic on first use"),
                Err(e) => tracing::debug!(topic = %n, error = %e, "creating a topic on first use failed"),
            }
        }
    })
    .await;
    // Another broker may have created one of them meanwhile.
    shared.sync_soon(&ctx.broker).await;
}

pub(super) fn metadata(ctx: &Ctx, request: MetadataRequest) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    r.brokers = brokers(ctx);
    r.cluster_id = Some(StrBytes::from_static_str("veltrix"));
    r.controller_id = r.brokers.first().map_or(BrokerId(0), |b| b.node_id);
    let who = ctx.who();
    let topics: Vec<(MetadataResponseTopic, bool)> = match &request.topics {
        // Every topic the principal may describe; the others are left out
        // without a word, as Kafka does.
        None => ctx
            .broker
            .topics()
            .iter()
            .filter(|t| who.allowed_quietly(AclOperation::Describe, ResourceType::Topic, &t.name))
            .map(|t| (metadata_topic(ctx, t), true))
            .collect(),
        Some(wanted) => {
            // On shared storage, topics are created in the metadata store
            // before this answer is built (`prepare_shared`).
            let auto = ctx.broker.config().auto_create_topics
                && request.allow_auto_topic_creation
                && ctx.config.shared.is_none();
            wanted
                .iter()
                .map(|w| match &w.name {
                    None if !w.topic_id.is_nil() => topic_by_id(ctx, w.topic_id),
                    n => named_topic(ctx, n.as_ref().map_or("", |n| n.0.as_str()), auto),
                })
                .collect()
        }
    };
    // Asked for from v8; the codec reads `false` before. Every authorized
    // topic in the answer gets them, as in Kafka; the cluster's field
    // exists in v8 to v10, and needs DESCRIBE on the cluster (0 without).
    r.topics = topics
        .into_iter()
        .map(|(mut t, authorized)| {
            if authorized && request.include_topic_authorized_operations {
                let n = t.name.as_ref().map_or("", |n| n.0.as_str());
                t.topic_authorized_operations = who.operations(ResourceType::Topic, n);
            }
            t
        })
        .collect();
    if request.include_cluster_authorized_operations {
        r.cluster_authorized_operations = if who.on_cluster(AclOperation::Describe) {
            operations::answered(ctx, true, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        };
    }
    r
}
