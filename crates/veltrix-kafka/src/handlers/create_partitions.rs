//! CreatePartitions: grow topics to a new partition count (v0 to v3).
//!
//! A topic only grows: a count equal to or below the current one is
//! INVALID_PARTITIONS, as in Kafka. `validate_only` runs the engine's checks and
//! changes nothing. Manual replica assignments are accepted only when they say
//! what the broker would do anyway, one replica on node 0 per new partition;
//! anything else is INVALID_REPLICA_ASSIGNMENT. Growing a topic writes the
//! catalogue and creates partition directories, so it runs on tokio's blocking
//! pool. Each topic needs ALTER, as in Kafka (TOPIC_AUTHORIZATION_FAILED).

use std::collections::HashMap;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{BrokerId, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::Broker;
use veltrix_core::acl::{AclOperation, ResourceType};

use super::Ctx;
use super::authz::TOPIC_DENIED;
use crate::errors::{Refusal, ResponseError};

/// Checks one topic's request and grows it unless `validate_only`.
fn grow(
    broker: &Broker,
    topic: &str,
    count: i32,
    assignments: Option<&[Vec<BrokerId>]>,
    validate_only: bool,
    shared: Option<&crate::shared::SharedStorage>,
) -> Result<(), Refusal> {
    let total = u32::try_from(count).map_err(|_| {
        Refusal::new(
            ResponseError::InvalidPartitions,
            format!("partition count {count} is negative"),
        )
    })?;
    // A count that does not grow the topic is left to the engine, so that it is
    // INVALID_PARTITIONS whatever assignments come with it, as in Kafka.
    let added = broker
        .topic(topic)
        .map_or(0, |current| i64::from(count) - current.partitions.len() as i64);
    if let Some(assignments) = assignments.filter(|_| added > 0) {
        if assignments.len() as i64 != added {
            return Err(Refusal::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "{} assignments were given for {added} new partitions",
                    assignments.len()
                ),
            ));
        }
        if assignments.iter().any(|a| a.as_slice() != [BrokerId(0)]) {
            return Err(Refusal::new(
                ResponseError::InvalidReplicaAssignment,
                "a single broker (node 0) keeps the only replica of every partition".to_owned(),
            ));
        }
    }
    match shared {
        Some(shared) if !validate_only => shared
            .create_partitions_blocking(broker, topic, total)
            .map_err(|e| e.refusal()),
        _ if validate_only => broker
            .validate_create_partitions(topic, total)
            .map_err(|e| Refusal::core(&e)),
        _ => broker
            .create_partitions(topic, total)
            .map(|_| ())
            .map_err(|e| Refusal::core(&e)),
    }
}

pub(super) async fn create_partitions(ctx: Ctx, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let alterable = ctx.who().names(
        AclOperation::Alter,
        ResourceType::Topic,
        request.topics.iter().map(|t| t.name.0.as_str()),
    );
    let broker = ctx.broker.clone();
    let shared = ctx.config.shared.clone();
    let results = tokio::task::spawn_blocking(move || {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for t in &request.topics {
            *counts.entry(t.name.0.as_str()).or_default() += 1;
        }
        request
            .topics
            .iter()
            .map(|t| {
                let topic = t.name.0.as_str();
                // An empty list assigns nothing, like a null one: the codec's
                // default is an empty list, so clients built on it send that.
                let assignments: Option<Vec<Vec<BrokerId>>> = t
                    .assignments
                    .as_ref()
                    .filter(|list| !list.is_empty())
                    .map(|list| list.iter().map(|a| a.broker_ids.clone()).collect());
                // Kafka refuses every copy of a topic named twice, since the
                // copies could ask for different counts.
                let outcome = if counts[topic] > 1 {
                    Err(Refusal::new(
                        ResponseError::InvalidRequest,
                        "the topic is named more than once in the request".to_owned(),
                    ))
                } else if !alterable.contains(topic) {
                    Err(Refusal::new(ResponseError::TopicAuthorizationFailed, TOPIC_DENIED))
                } else {
                    grow(
                        &broker,
                        topic,
                        t.count,
                        assignments.as_deref(),
                        request.validate_only,
                        shared.as_ref(),
                    )
                };
                let mut r = CreatePartitionsTopicResult::default();
                r.name = t.name.clone();
                r.error_message = None;
                if let Err(Refusal { error, message }) = outcome {
                    r.error_code = error.code();
                    r.error_message = Some(StrBytes::from_string(message));
                }
                r
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut r = CreatePartitionsResponse::default();
    r.results = results;
    r
}
