//! DeleteTopics: remove topics and their data, by name (v1 to v6) or by topic id
//! (v6).
//!
//! Each topic is deleted on its own and answered on its own, as in Kafka: one
//! unknown name does not stop the others. A topic named twice in one request is
//! refused with INVALID_REQUEST, both times, because answering the second copy
//! with UNKNOWN_TOPIC_OR_PARTITION would look like a failure of the first. The
//! deletions write the catalogue and remove directories, so they run on tokio's
//! blocking pool.
//!
//! Authorization is Kafka's (its controller's `deleteTopics`): DELETE on the
//! cluster, or else on each topic. A topic named without DESCRIBE on it is
//! TOPIC_AUTHORIZATION_FAILED whether it exists or not; one given by id
//! without DELETE is TOPIC_AUTHORIZATION_FAILED, named only if the principal
//! may describe it.

use std::collections::HashMap;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, CLUSTER_NAME, ResourceType};

use super::authz::TOPIC_DENIED;
use super::{Ctx, name};
use crate::errors::{Refusal, ResponseError};

/// What one entry of the request asks to delete.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Target {
    Name(String),
    Id(Uuid),
    /// Refused before the engine is asked: the message says why.
    Invalid(&'static str),
    /// Not authorized: answered with this name (if it may be shown) and id.
    Denied(Option<String>, Uuid),
}

/// `targets` with those the principal may not delete turned [`Target::Denied`].
fn authorize(ctx: &Ctx, targets: Vec<Target>) -> Vec<Target> {
    let who = ctx.who();
    if !ctx.broker.authorizer().enabled()
        || who.allowed_quietly(AclOperation::Delete, ResourceType::Cluster, CLUSTER_NAME)
    {
        return targets;
    }
    let topic = ResourceType::Topic;
    targets
        .into_iter()
        .map(|target| match target {
            Target::Name(n) => {
                let denied = !who.allowed(AclOperation::Describe, topic, &n)
                    || (ctx.broker.topic(&n).is_some() && !who.allowed(AclOperation::Delete, topic, &n));
                if denied {
                    Target::Denied(Some(n), Uuid::nil())
                } else {
                    Target::Name(n)
                }
            }
            Target::Id(id) => match ctx.broker.topic_by_id(id.as_bytes()) {
                Some(t) if !who.allowed(AclOperation::Delete, topic, &t.name) => {
                    let shown = who.allowed_quietly(AclOperation::Describe, topic, &t.name);
                    Target::Denied(shown.then(|| t.name.clone()), id)
                }
                _ => Target::Id(id),
            },
            other => other,
        })
        .collect()
}

/// What each entry of the request asks to delete; a topic named twice is
/// refused, both times.
fn targets(ctx: &Ctx, request: &DeleteTopicsRequest) -> Vec<Target> {
    // Up to v5 the request lists names; v6 lists entries with a name or an id.
    let targets: Vec<Target> = if ctx.version >= 6 {
        request
            .topics
            .iter()
            .map(|t| match (&t.name, t.topic_id.is_nil()) {
                (Some(n), true) => Target::Name(n.0.as_str().to_owned()),
                (None, false) => Target::Id(t.topic_id),
                (Some(_), false) => Target::Invalid("a topic name and a topic id cannot both be given"),
                (None, true) => Target::Invalid("neither a topic name nor a topic id was given"),
            })
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| Target::Name(n.0.as_str().to_owned()))
            .collect()
    };
    let mut counts: HashMap<&Target, usize> = HashMap::new();
    for t in &targets {
        *counts.entry(t).or_default() += 1;
    }
    let targets: Vec<Target> = targets
        .iter()
        .map(|t| match t {
            Target::Name(_) | Target::Id(_) if counts[t] > 1 => {
                Target::Invalid("the topic is named more than once in the request")
            }
            _ => t.clone(),
        })
        .collect();
    authorize(ctx, targets)
}

/// Deletes a topic: from the shared metadata store first when there is one.
fn delete(
    broker: &veltrix_core::Broker,
    shared: Option<&crate::shared::SharedStorage>,
    n: &str,
) -> Result<veltrix_core::TopicId, Refusal> {
    let outcome = match shared {
        Some(shared) => shared.delete_topic_blocking(broker, n).map_err(|e| e.refusal()),
        None => broker.delete_topic(n).map_err(|e| Refusal::core(&e)),
    };
    if let Err(refusal) = &outcome
        && refusal.error != ResponseError::UnknownTopicOrPartition
        && refusal.error != ResponseError::UnknownTopicId
    {
        tracing::warn!(topic = n, error = %refusal.message, "deleting a topic failed");
    }
    outcome
}

pub(super) async fn delete_topics(ctx: Ctx, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let targets = targets(&ctx, &request);
    let broker = ctx.broker.clone();
    let shared = ctx.config.shared.clone();
    let results = tokio::task::spawn_blocking(move || {
        targets
            .into_iter()
            .map(|target| {
                let mut r = DeletableTopicResult::default();
                let outcome = match target {
                    Target::Name(n) => {
                        r.name = Some(name(&n));
                        delete(&broker, shared.as_ref(), &n).map(|id| r.topic_id = Uuid::from_bytes(id))
                    }
                    Target::Id(id) => {
                        r.name = None;
                        r.topic_id = id;
                        match (&shared, broker.topic_by_id(id.as_bytes())) {
                            (Some(shared), Some(t)) => {
                                delete(&broker, Some(shared), &t.name).map(|_| r.name = Some(name(&t.name)))
                            }
                            _ => broker
                                .delete_topic_by_id(id.as_bytes())
                                .map_err(|e| Refusal::core(&e))
                                .map(|n: String| r.name = Some(name(&n))),
                        }
                    }
                    Target::Denied(n, id) => {
                        r.name = n.as_deref().map(name);
                        r.topic_id = id;
                        r.error_code = ResponseError::TopicAuthorizationFailed.code();
                        r.error_message = Some(StrBytes::from_static_str(TOPIC_DENIED));
                        Ok(())
                    }
                    Target::Invalid(message) => {
                        r.error_code = ResponseError::InvalidRequest.code();
                        r.error_message = Some(StrBytes::from_static_str(message));
                        Ok(())
                    }
                };
                if let Err(refusal) = outcome {
                    r.error_code = refusal.error.code();
                    r.error_message = Some(StrBytes::from_string(refusal.message));
                }
                r
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut r = DeleteTopicsResponse::default();
    r.responses = results;
    // Error messages exist from v5 and topic ids from v6; the codec leaves them
    // out of older versions, and they are cleared here too so that what is sent
    // never depends on that.
    if ctx.version < 5 {
        r.responses.iter_mut().for_each(|t| t.error_message = None);
    }
    if ctx.version < 6 {
        r.responses.iter_mut().for_each(|t| t.topic_id = Uuid::nil());
    }
    r
}
