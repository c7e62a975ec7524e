//! CreateTopics: new topics with partitions and Kafka-named settings.

use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::Ctx;
use crate::errors::{Refusal, ResponseError};

/// Runs on the blocking pool: creating a topic fsyncs the catalogue and opens
/// logs.
pub(super) async fn create_topics(ctx: Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
    tokio::task::spawn_blocking(move || create_blocking(&ctx, request))
        .await
        .unwrap_or_default()
}

fn create_blocking(ctx: &Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
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
            let outcome = if !matches!(t.replication_factor, -1 | 1) {
                Err(Refusal::new(
                    ResponseError::InvalidReplicationFactor,
                    "a single broker keeps one replica",
                ))
            } else if !t.assignments.is_empty() {
                Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    "manual replica assignment is not supported",
                ))
            } else {
                let partitions = (t.num_partitions != -1).then(|| t.num_partitions.max(0) as u32);
                let partitions = if t.num_partitions < -1 || t.num_partitions == 0 {
                    Some(0)
                } else {
                    partitions
                };
                crate::topic_configs::from_pairs(configs.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
                    .map_err(|m| Refusal::new(ResponseError::InvalidConfig, m))
                    .and_then(|config| {
                        if request.validate_only {
                            return Ok(None);
                        }
                        ctx.broker
                            .create_topic(n, partitions, config)
                            .map(Some)
                            .map_err(|e| Refusal::core(&e))
                    })
            };
            match outcome {
                Ok(Some(topic)) => {
                    res.topic_id = Uuid::from_bytes(topic.id);
                    res.num_partitions = topic.partitions.len() as i32;
                    res.replication_factor = 1;
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
