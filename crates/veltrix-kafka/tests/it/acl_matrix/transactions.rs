//! Cases of transactions: WRITE on the transactional id for a producer's
//! requests, WRITE on the topics added, READ on the group whose offsets go
//! in the transaction, DESCRIBE on the transactional id to describe or list.

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    InitProducerIdRequest, ListTransactionsRequest, ProducerId, TransactionalId, TxnOffsetCommitRequest,
};

use super::*;

/// A producer id and epoch for transactional id `id`, made by the admin.
async fn init(m: &mut Matrix, id: &str) -> (i64, i16) {
    let r = m
        .admin
        .call(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(text(id))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert_eq!(r.error_code, NONE);
    (r.producer_id.0, r.producer_epoch)
}

fn add_partitions(id: &str, (pid, epoch): (i64, i16), topic_name: &str) -> AddPartitionsToTxnRequest {
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(text(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic(topic_name))
                .with_partitions(vec![0]),
        ])
}

fn add_offsets(id: &str, (pid, epoch): (i64, i16), group_id: &str) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(text(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(group(group_id))
}

fn add_partitions_code(r: &kafka_protocol::messages::AddPartitionsToTxnResponse) -> i16 {
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

pub(super) async fn add_partitions_to_txn(m: &mut Matrix) {
    m.topic("ap-t", 1).await;
    let producer = init(m, "ap-tx").await;
    let r = m.alice.call(add_partitions("ap-tx", producer, "ap-t"), 3).await;
    assert_eq!(add_partitions_code(&r), TXN_DENIED);
    m.allow(Op::Write, Rt::TransactionalId, "ap-tx");
    let r = m.alice.call(add_partitions("ap-tx", producer, "ap-t"), 3).await;
    assert_eq!(add_partitions_code(&r), TOPIC_DENIED);
    m.allow(Op::Write, Rt::Topic, "ap-t");
    let r = m.alice.call(add_partitions("ap-tx", producer, "ap-t"), 3).await;
    assert_eq!(add_partitions_code(&r), NONE);
    m.deny(Op::Write, Rt::TransactionalId, "ap-tx");
    let r = m.alice.call(add_partitions("ap-tx", producer, "ap-t"), 3).await;
    assert_eq!(add_partitions_code(&r), TXN_DENIED, "a DENY overrides an ALLOW");
}

pub(super) async fn add_offsets_to_txn(m: &mut Matrix) {
    let producer = init(m, "ao-tx").await;
    assert_eq!(
        m.alice.call(add_offsets("ao-tx", producer, "ao-g"), 3).await.error_code,
        TXN_DENIED
    );
    m.allow(Op::Write, Rt::TransactionalId, "ao-tx");
    assert_eq!(
        m.alice.call(add_offsets("ao-tx", producer, "ao-g"), 3).await.error_code,
        GROUP_DENIED
    );
    m.allow(Op::Read, Rt::Group, "ao-g");
    assert_eq!(
        m.alice.call(add_offsets("ao-tx", producer, "ao-g"), 3).await.error_code,
        NONE
    );
}

pub(super) async fn txn_offset_commit(m: &mut Matrix) {
    m.topic("to-t", 1).await;
    let producer = init(m, "to-tx").await;
    let r = m.admin.call(add_offsets("to-tx", producer, "to-g"), 3).await;
    assert_eq!(r.error_code, NONE);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(text("to-tx")))
        .with_group_id(group("to-g"))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(-1)
        .with_member_id(text(""))
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(topic("to-t"))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_leader_epoch(-1),
                ]),
        ]);
    let code = |r: kafka_protocol::messages::TxnOffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(code(m.alice.call(commit.clone(), 3).await), TXN_DENIED);
    m.allow(Op::Write, Rt::TransactionalId, "to-tx");
    assert_eq!(code(m.alice.call(commit.clone(), 3).await), GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "to-g");
    assert_eq!(code(m.alice.call(commit.clone(), 3).await), TOPIC_DENIED);
    m.allow(Op::Read, Rt::Topic, "to-t");
    assert_eq!(code(m.alice.call(commit, 3).await), NONE);
}

pub(super) async fn end_txn(m: &mut Matrix) {
    m.topic("et-t", 1).await;
    let producer = init(m, "et-tx").await;
    let r = m.admin.call(add_partitions("et-tx", producer, "et-t"), 3).await;
    assert_eq!(add_partitions_code(&r), NONE);
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(text("et-tx")))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_committed(false);
    assert_eq!(m.alice.call(end.clone(), 3).await.error_code, TXN_DENIED);
    m.allow_prefixed(Op::Write, Rt::TransactionalId, "et-");
    assert_eq!(m.alice.call(end, 3).await.error_code, NONE, "a PREFIXED ACL covers it");
}

pub(super) async fn describe_transactions(m: &mut Matrix) {
    init(m, "dt-tx").await;
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(text("dt-tx"))]);
    let r = m.alice.call(request.clone(), 0).await;
    assert_eq!(r.transaction_states[0].error_code, TXN_DENIED);
    m.allow(Op::Describe, Rt::TransactionalId, "dt-tx");
    let r = m.alice.call(request, 0).await;
    assert_eq!(r.transaction_states[0].error_code, NONE);
    assert_eq!(r.transaction_states[0].transaction_state.as_str(), "Empty");
}

pub(super) async fn list_transactions(m: &mut Matrix) {
    init(m, "lt-a").await;
    init(m, "lt-b").await;
    let listed = |r: kafka_protocol::messages::ListTransactionsResponse| {
        r.transaction_states
            .iter()
            .map(|t| t.transactional_id.0.to_string())
            .filter(|id| id.starts_with("lt-"))
            .collect::<Vec<_>>()
    };
    assert!(listed(m.alice.call(ListTransactionsRequest::default(), 1).await).is_empty());
    m.allow(Op::Describe, Rt::TransactionalId, "lt-b");
    assert_eq!(
        listed(m.alice.call(ListTransactionsRequest::default(), 1).await),
        ["lt-b"]
    );
    assert_eq!(
        listed(m.admin.call(ListTransactionsRequest::default(), 1).await),
        ["lt-a", "lt-b"]
    );
}
