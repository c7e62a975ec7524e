//! Transactions (KIP-98): AddPartitionsToTxn (v0 to v3), AddOffsetsToTxn (v0
//! to v3), TxnOffsetCommit (v0 to v3), EndTxn (v0 to v3),
//! DescribeTransactions (v0) and ListTransactions (v0, v1). InitProducerId
//! with a transactional id is in `init_producer_id.rs`, the coordinator
//! lookup in `group_admin.rs`.
//!
//! This broker is every transactional id's coordinator. The state machine is
//! the engine's (`veltrix_core::txn`); an EndTxn answers once the markers are
//! durable in every partition of the transaction and the group offsets
//! applied, so a committed transaction is visible to `read_committed`
//! consumers as soon as the producer hears of it.
//!
//! Authorization is Kafka's: WRITE on the transactional id for every request
//! of a producer (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), WRITE on each topic
//! added (TOPIC_AUTHORIZATION_FAILED for it, OPERATION_NOT_ATTEMPTED for the
//! others), READ on the group of AddOffsetsToTxn and TxnOffsetCommit
//! (GROUP_AUTHORIZATION_FAILED), READ on each topic committed; DESCRIBE on the
//! transactional id to describe or list it.

use std::collections::BTreeMap;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::groups::{Committer, OffsetCommit};
use veltrix_core::txn::{TxnError, TxnState};

use super::Ctx;
use crate::errors::{NONE, ResponseError, group_error};

/// Transactional ids one DescribeTransactions may name, and transactions one
/// ListTransactions answers with at most.
pub const TRANSACTIONS_PER_REQUEST_MAX: usize = 10_000;

/// The Kafka error of a coordinator refusal. A fenced producer is
/// PRODUCER_FENCED from `fenced_from` on, INVALID_PRODUCER_EPOCH before, as
/// Kafka answers older clients.
pub(super) fn txn_error(e: &TxnError, version: i16, fenced_from: i16) -> ResponseError {
    match e {
        TxnError::InvalidTimeout(..) => ResponseError::InvalidTransactionTimeout,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced(..) if version >= fenced_from => ResponseError::ProducerFenced,
        TxnError::ProducerFenced(..) => ResponseError::InvalidProducerEpoch,
        TxnError::InvalidProducerIdMapping(_) => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        TxnError::NotFound(_) => ResponseError::TransactionalIdNotFound,
        TxnError::InvalidRequest(_) => ResponseError::InvalidRequest,
        TxnError::LimitReached(_) => ResponseError::PolicyViolation,
        TxnError::Unavailable(_) => ResponseError::CoordinatorNotAvailable,
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// Runs `f` (which blocks on fsyncs) on the blocking pool.
async fn blocking<T: Send + 'static>(
    ctx: &Ctx,
    f: impl FnOnce(&veltrix_core::Broker) -> Result<T, TxnError> + Send + 'static,
) -> Result<T, TxnError> {
    let broker = ctx.broker.clone();
    tokio::task::spawn_blocking(move || f(&broker))
        .await
        .unwrap_or_else(|_| Err(TxnError::Unavailable("the request's task failed".into())))
}

fn may_write_transactional_id(ctx: &Ctx, id: &str) -> bool {
    ctx.who()
        .allowed(AclOperation::Write, ResourceType::TransactionalId, id)
}

pub(super) async fn add_partitions_to_txn(ctx: Ctx, r: AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let id = r.v3_and_below_transactional_id.0.to_string();
    let (pid, epoch) = (r.v3_and_below_producer_id.0, r.v3_and_below_producer_epoch);
    let id_allowed = may_write_transactional_id(&ctx, &id);
    // Each partition's own refusal, if any; the topic ids of the others.
    let mut asked: Vec<(String, i32, Result<[u8; 16], ResponseError>)> = Vec::new();
    for t in &r.v3_and_below_topics {
        let name = t.name.0.as_str();
        let writable = !id_allowed || ctx.who().allowed(AclOperation::Write, ResourceType::Topic, name);
        for &p in &t.partitions {
            let own = if !id_allowed {
                Err(ResponseError::TransactionalIdAuthorizationFailed)
            } else if !writable {
                Err(ResponseError::TopicAuthorizationFailed)
            } else {
                ctx.broker
                    .topic(name)
                    .filter(|topic| topic.partition(p).is_some())
                    .map(|topic| topic.id)
                    .ok_or(ResponseError::UnknownTopicOrPartition)
            };
            asked.push((name.to_owned(), p, own));
        }
    }
    // As in Kafka, nothing is added when any partition is refused: the
    // others are not attempted.
    let outcome = if asked.iter().any(|(_, _, own)| own.is_err()) {
        Err(ResponseError::OperationNotAttempted)
    } else {
        let partitions: Vec<_> = asked
            .iter()
            .filter_map(|(_, p, own)| own.as_ref().ok().map(|topic| (*topic, *p)))
            .collect();
        let version = ctx.version;
        blocking(&ctx, move |b| b.transactions().add(&id, pid, epoch, &partitions, &[]))
            .await
            .map_err(|e| txn_error(&e, version, 2))
    };
    let mut by_topic: BTreeMap<String, Vec<AddPartitionsToTxnPartitionResult>> = BTreeMap::new();
    for (topic, p, own) in asked {
        let code = match (own, outcome) {
            (Err(own), _) => own.code(),
            (Ok(_), Ok(())) => NONE,
            (Ok(_), Err(e)) => e.code(),
        };
        by_topic.entry(topic).or_default().push(
            AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(p)
                .with_partition_error_code(code),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        by_topic
            .into_iter()
            .map(|(name, results)| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(text(&name)))
                    .with_results_by_partition(results)
            })
            .collect(),
    )
}

pub(super) async fn add_offsets_to_txn(ctx: Ctx, r: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = r.transactional_id.0.to_string();
    let group = r.group_id.0.to_string();
    let response = AddOffsetsToTxnResponse::default();
    if !may_write_transactional_id(&ctx, &id) {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !ctx.who().allowed(AclOperation::Read, ResourceType::Group, &group) {
        return response.with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let (pid, epoch, version) = (r.producer_id.0, r.producer_epoch, ctx.version);
    let outcome = blocking(&ctx, move |b| {
        b.transactions().add(&id, pid, epoch, &[], &[group.as_str()])
    })
    .await;
    match outcome {
        Ok(()) => response,
        Err(e) => response.with_error_code(txn_error(&e, version, 2).code()),
    }
}

pub(super) async fn txn_offset_commit(ctx: Ctx, r: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let id = r.transactional_id.0.to_string();
    let group = r.group_id.0.to_string();
    let all = |code: ResponseError| -> Vec<TxnOffsetCommitResponseTopic> {
        r.topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect()
    };
    let response = TxnOffsetCommitResponse::default();
    if !may_write_transactional_id(&ctx, &id) {
        return response.with_topics(all(ResponseError::TransactionalIdAuthorizationFailed));
    }
    if !ctx.who().allowed(AclOperation::Read, ResourceType::Group, &group) {
        return response.with_topics(all(ResponseError::GroupAuthorizationFailed));
    }
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    if let Err(e) = ctx.broker.transactions().verify_group(&id, pid, epoch, &group) {
        return response.with_topics(all(txn_error(&e, ctx.version, 2)));
    }
    let committer = Committer {
        member_id: if ctx.version >= 3 {
            r.member_id.to_string()
        } else {
            String::new()
        },
        instance_id: if ctx.version >= 3 {
            r.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        generation: if ctx.version >= 3 { r.generation_id } else { -1 },
    };
    let mut readable = BTreeMap::new();
    let mut offsets = Vec::new();
    for t in &r.topics {
        let name = t.name.0.to_string();
        let ok = *readable
            .entry(name.clone())
            .or_insert_with(|| ctx.who().allowed(AclOperation::Read, ResourceType::Topic, &name));
        if ok {
            for p in &t.partitions {
                offsets.push(OffsetCommit {
                    topic: name.clone(),
                    partition: p.partition_index,
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                });
            }
        }
    }
    let broker = ctx.broker.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let exists = |t: &str, p: i32| broker.topic(t).is_some_and(|topic| topic.partition(p).is_some());
        broker.groups().txn_commit(&group, pid, &committer, offsets, exists)
    })
    .await
    .unwrap_or_default();
    let topics = answers(&r.topics, &readable, outcomes);
    response.with_topics(topics)
}

/// Each committed partition's answer: TOPIC_AUTHORIZATION_FAILED for a topic
/// the principal may not read, else the group's outcome (in order).
fn answers(
    topics: &[kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic],
    readable: &BTreeMap<String, bool>,
    outcomes: Vec<Result<(), veltrix_core::groups::GroupError>>,
) -> Vec<TxnOffsetCommitResponseTopic> {
    let mut outcomes = outcomes.into_iter();
    topics
        .iter()
        .map(|t| {
            let ok = readable.get(t.name.0.as_str()).copied().unwrap_or(false);
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let code = if !ok {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else {
                                match outcomes.next() {
                                    Some(Ok(())) => NONE,
                                    Some(Err(e)) => group_error(&e).code(),
                                    None => ResponseError::UnknownServerError.code(),
                                }
                            };
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

pub(super) async fn end_txn(ctx: Ctx, r: EndTxnRequest) -> EndTxnResponse {
    let id = r.transactional_id.0.to_string();
    let response = EndTxnResponse::default();
    if !may_write_transactional_id(&ctx, &id) {
        return response.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    let (pid, epoch, commit, version) = (r.producer_id.0, r.producer_epoch, r.committed, ctx.version);
    match blocking(&ctx, move |b| b.end_transaction(&id, pid, epoch, commit)).await {
        Ok(()) => response,
        Err(e) => {
            tracing::debug!(error = %e, "EndTxn refused");
            response.with_error_code(txn_error(&e, version, 2).code())
        }
    }
}

/// A transaction's topics by name, partitions ascending.
fn topics_of(ctx: &Ctx, partitions: &[([u8; 16], i32)]) -> Vec<TopicData> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (id, p) in partitions {
        if let Some(t) = ctx.broker.topic_by_id(id) {
            by_topic.entry(t.name.clone()).or_default().push(*p);
        }
    }
    by_topic
        .into_iter()
        .map(|(name, partitions)| {
            TopicData::default()
                .with_topic(TopicName(text(&name)))
                .with_partitions(partitions)
        })
        .collect()
}

pub(super) fn describe_transactions(ctx: &Ctx, r: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    let states = r
        .transactional_ids
        .iter()
        .take(TRANSACTIONS_PER_REQUEST_MAX)
        .map(|id| {
            let name = id.0.as_str();
            let state = TransactionState::default()
                .with_transactional_id(id.clone())
                .with_transaction_state(text(""))
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if !ctx
                .who()
                .allowed(AclOperation::Describe, ResourceType::TransactionalId, name)
            {
                return state.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
            }
            match ctx.broker.transactions().describe(name) {
                Ok(d) => state
                    .with_transaction_state(text(d.state.name()))
                    .with_transaction_timeout_ms(d.timeout_ms)
                    .with_transaction_start_time_ms(d.started_ms)
                    .with_producer_id(ProducerId(d.producer_id))
                    .with_producer_epoch(d.producer_epoch)
                    .with_topics(topics_of(ctx, &d.partitions)),
                Err(e) => state.with_error_code(txn_error(&e, ctx.version, 0).code()),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub(super) fn list_transactions(ctx: &Ctx, r: ListTransactionsRequest) -> ListTransactionsResponse {
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for s in &r.state_filters {
        match TxnState::parse(s.as_str()) {
            Some(state) => states.push(state),
            None => unknown.push(s.clone()),
        }
    }
    let response = ListTransactionsResponse::default().with_unknown_state_filters(unknown.clone());
    if !unknown.is_empty() && states.is_empty() {
        // Only states this broker never has: nothing can match.
        return response;
    }
    let producers: Vec<i64> = r.producer_id_filters.iter().map(|p| p.0).collect();
    let open_ms_min = if ctx.version >= 1 { r.duration_filter } else { -1 };
    let listed = ctx
        .broker
        .transactions()
        .list(&states, &producers, open_ms_min, TRANSACTIONS_PER_REQUEST_MAX)
        .into_iter()
        .filter(|d| {
            ctx.who().allowed_quietly(
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &d.transactional_id,
            )
        })
        .map(|d| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(text(&d.transactional_id)))
                .with_producer_id(ProducerId(d.producer_id))
                .with_transaction_state(text(d.state.name()))
        })
        .collect();
    response.with_transaction_states(listed)
}
