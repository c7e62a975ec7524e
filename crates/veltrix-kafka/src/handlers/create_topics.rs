//! CreateTopics: new topics with partitions and Kafka-named settings.
//!
//! A manual replica assignment is accepted when it says what the broker would
//! do anyway: one replica, on this broker, for each of partitions `0..n`. The
//! checks, their order, codes and messages are Kafka's: the replication factor
//! and the partition count must be -1 (INVALID_REQUEST), then no partition may
//! be assigned twice, no replica list may be empty and the partitions must be
//! `0..n` (INVALID_REPLICA_ASSIGNMENT). A list naming another broker or more
//! than one replica is INVALID_REPLICA_ASSIGNMENT, saying why.
//!
//! Authorization is Kafka's: CREATE on the cluster, or else on each topic
//! (TOPIC_AUTHORIZATION_FAILED, "Authorization failed."); the partition
//! count and replication factor of a created topic are answered only with
//! DESCRIBE_CONFIGS on it (else `topic_config_error_code` is
//! TOPIC_AUTHORIZATION_FAILED, v5 and later).

use std::collections::BTreeSet;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};

use super::authz::Names;
use super::{Ctx, NODE_ID};
use crate::errors::{Refusal, ResponseError};

/// Runs on the blocking pool: creating a topic fsyncs the catalogue and opens
/// logs.
pub(super) async fn create_topics(ctx: Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
    tokio::task::spawn_blocking(move || create_blocking(&ctx, request))
        .await
        .unwrap_or_default()
}

/// Which topics of the request may be created, and which have their
/// settings answered.
fn authorized(ctx: &Ctx, request: &CreateTopicsRequest) -> (Names, Names) {
    let who = ctx.who();
    let names = || request.topics.iter().map(|t| t.name.0.as_str());
    let creatable = if who.allowed_quietly(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME) {
        Names::All
    } else {
        who.names(AclOperation::Create, ResourceType::Topic, names())
    };
    let describable = who.names_quietly(AclOperation::DescribeConfigs, ResourceType::Topic, names());
    (creatable, describable)
}

fn create_blocking(ctx: &Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let (creatable, describable) = authorized(ctx, &request);
    let mut r = CreateTopicsResponse::default();
    r.topics = request
        .topics
        .iter()
        .map(|t| {
            let mut res = CreatableTopicResult::default();
            res.name = t.name.clone();
            res.num_partitions = -1;
            res.replication_factor = -1;
            let n = t.name.0.as_str();
            if !creatable.contains(n) {
                res.error_code = ResponseError::TopicAuthorizationFailed.code();
                res.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                return res;
            }
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str().to_owned(),
                        c.value.as_ref().map(|v| v.as_str().to_owned()),
                    )
                })
                .collect();
            let partitions = if t.assignments.is_empty() {
                counted_partitions(t)
            } else {
                assigned_partitions(t).map(Some)
            };
            let outcome = partitions.and_then(|partitions| {
                crate::topic_configs::from_pairs(configs.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
                    .map_err(|m| Refusal::new(ResponseError::InvalidConfig, m))
                    .and_then(|config| {
                        if request.validate_only {
                            return Ok(None);
                        }
                        match &ctx.config.shared {
                            Some(shared) => shared
                                .create_topic_blocking(&ctx.broker, n, partitions, config)
                                .map(Some)
                                .map_err(|e| e.refusal()),
                            None => ctx
                                .broker
                                .create_topic(n, partitions, config)
                                .map(Some)
                                .map_err(|e| Refusal::core(&e)),
                        }
                    })
            });
            match outcome {
                Ok(Some(topic)) => {
                    res.topic_id = Uuid::from_bytes(topic.id);
                    if describable.contains(n) {
                        res.num_partitions = topic.partitions.len() as i32;
                        res.replication_factor = 1;
                    } else {
                        res.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                    }
                }
                Ok(None) => {}
                Err(Refusal { error, message }) => {
                    res.error_code = error.code();
                    res.error_message = Some(StrBytes::from_string(message));
                }
            }
            res
        })
        .collect();
    r
}

/// The partition count asked for without an assignment (`None`: the broker's
/// default).
fn counted_partitions(t: &CreatableTopic) -> Result<Option<u32>, Refusal> {
    if !matches!(t.replication_factor, -1 | 1) {
        return Err(Refusal::new(
            ResponseError::InvalidReplicationFactor,
            "a single broker keeps one replica",
        ));
    }
    Ok(match t.num_partitions {
        -1 => None,
        n if n <= 0 => Some(0),
        n => Some(n as u32),
    })
}

/// The partition count of a manual replica assignment, checked as described
/// at the top of this file.
fn assigned_partitions(t: &CreatableTopic) -> Result<u32, Refusal> {
    let invalid = |message: String| Refusal::new(ResponseError::InvalidReplicaAssignment, message);
    if t.replication_factor != -1 {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but replication factor was not set to -1.",
        ));
    }
    if t.num_partitions != -1 {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            "A manual partition assignment was specified, but numPartitions was not set to -1.",
        ));
    }
    let mut indexes = BTreeSet::new();
    for a in &t.assignments {
        if !indexes.insert(a.partition_index) {
            return Err(invalid(format!(
                "Found multiple manual partition assignments for partition {}",
                a.partition_index
            )));
        }
        if a.broker_ids.is_empty() {
            return Err(invalid(
                "The manual partition assignment includes an empty replica list.".to_owned(),
            ));
        }
        if a.broker_ids.as_slice() != [NODE_ID] {
            let ids: Vec<String> = a.broker_ids.iter().map(|b| b.0.to_string()).collect();
            return Err(invalid(format!(
                "partition {} is assigned to brokers [{}]: this broker is node {} and keeps the one replica of every partition",
                a.partition_index,
                ids.join(", "),
                NODE_ID.0
            )));
        }
    }
    if !indexes.iter().copied().eq(0..indexes.len() as i32) {
        return Err(invalid(
            "partitions should be a consecutive 0-based integer sequence".to_owned(),
        ));
    }
    Ok(indexes.len() as u32)
}
