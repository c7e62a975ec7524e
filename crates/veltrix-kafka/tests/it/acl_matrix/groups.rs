//! Cases of consumer groups: coordinators, membership (classic and
//! KIP-848), offsets and administration.

use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
};

use super::*;

const MEMBER_ID_REQUIRED: i16 = 79;

/// A commit of `offset` to partition 0 of `topic_name` from outside any
/// group (which makes the group, empty, if need be).
fn commit(group_id: &str, topic_name: &str, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic(topic_name))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

pub(super) async fn find_coordinator(m: &mut Matrix) {
    let keys = |key_type: i8, key: &str| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_coordinator_keys(vec![text(key)])
    };
    let answer = |r: kafka_protocol::messages::FindCoordinatorResponse| {
        let c = &r.coordinators[0];
        (
            c.error_code,
            c.error_message.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        )
    };
    assert_eq!(answer(m.alice.call(keys(0, "fc-g"), 4).await).0, GROUP_DENIED);
    let v3 = FindCoordinatorRequest::default().with_key(text("fc-g"));
    assert_eq!(m.alice.call(v3.clone(), 3).await.error_code, GROUP_DENIED);
    m.allow(Op::Describe, Rt::Group, "fc-g");
    assert_eq!(answer(m.alice.call(keys(0, "fc-g"), 4).await).0, NONE);
    assert_eq!(m.alice.call(v3, 3).await.error_code, NONE);
    // A transaction coordinator needs DESCRIBE on the transactional id.
    let (code, denied) = answer(m.alice.call(keys(1, "fc-tx"), 4).await);
    assert_eq!(
        (code, denied.as_str()),
        (TXN_DENIED, "Transactional Id authorization failed.")
    );
    m.allow(Op::Describe, Rt::TransactionalId, "fc-tx");
    assert_eq!(answer(m.alice.call(keys(1, "fc-tx"), 4).await).0, NONE);
}

pub(super) async fn join_group(m: &mut Matrix) {
    let request = JoinGroupRequest::default()
        .with_group_id(group("jg-g"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(""))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ]);
    assert_eq!(m.alice.call(request.clone(), 9).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "jg-g");
    assert_eq!(m.alice.call(request, 9).await.error_code, MEMBER_ID_REQUIRED);
}

pub(super) async fn sync_group(m: &mut Matrix) {
    let request = SyncGroupRequest::default()
        .with_group_id(group("sg-g"))
        .with_generation_id(1)
        .with_member_id(text("someone"))
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")));
    assert_eq!(m.alice.call(request.clone(), 5).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "sg-g");
    let code = m.alice.call(request, 5).await.error_code;
    assert!(code != GROUP_DENIED && code != NONE, "{code}");
}

pub(super) async fn heartbeat(m: &mut Matrix) {
    let request = HeartbeatRequest::default()
        .with_group_id(group("hb-g"))
        .with_generation_id(1)
        .with_member_id(text("someone"));
    assert_eq!(m.alice.call(request.clone(), 4).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "hb-g");
    let code = m.alice.call(request, 4).await.error_code;
    assert!(code != GROUP_DENIED && code != NONE, "{code}");
}

pub(super) async fn leave_group(m: &mut Matrix) {
    let request = LeaveGroupRequest::default()
        .with_group_id(group("lv-g"))
        .with_member_id(text("someone"));
    assert_eq!(m.alice.call(request.clone(), 2).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "lv-g");
    let code = m.alice.call(request, 2).await.error_code;
    assert!(code != GROUP_DENIED && code != NONE, "{code}");
}

pub(super) async fn offset_commit(m: &mut Matrix) {
    m.topic("oc-t", 1).await;
    let code = |r: kafka_protocol::messages::OffsetCommitResponse| r.topics[0].partitions[0].error_code;
    assert_eq!(code(m.alice.call(commit("oc-g", "oc-t", 1), 8).await), GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "oc-g");
    assert_eq!(code(m.alice.call(commit("oc-g", "oc-t", 1), 8).await), TOPIC_DENIED);
    m.allow_prefixed(Op::Read, Rt::Topic, "oc-");
    assert_eq!(code(m.alice.call(commit("oc-g", "oc-t", 1), 8).await), NONE);
    m.deny(Op::Read, Rt::Group, "oc-g");
    assert_eq!(code(m.alice.call(commit("oc-g", "oc-t", 2), 8).await), GROUP_DENIED);
    let committed = m.broker.groups().fetch_offsets("oc-g", None);
    assert_eq!(committed[0].committed.as_ref().map(|c| c.offset), Some(1));
}

/// (topic, partition, offset, error) of each partition of a v8+ answer.
fn fetched(r: &OffsetFetchResponse) -> Vec<(String, i32, i64, i16)> {
    r.groups[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )
            })
        })
        .collect()
}

pub(super) async fn offset_fetch(m: &mut Matrix) {
    m.topic("of-t", 1).await;
    assert_eq!(
        m.admin.call(commit("of-g", "of-t", 5), 8).await.topics[0].partitions[0].error_code,
        NONE
    );
    let fetch = |topics: Option<Vec<OffsetFetchRequestTopics>>| {
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(group("of-g"))
                .with_topics(topics),
        ])
    };
    let named = fetch(Some(vec![
        OffsetFetchRequestTopics::default()
            .with_name(topic("of-t"))
            .with_partition_indexes(vec![0]),
    ]));
    let r = m.alice.call(named.clone(), 8).await;
    assert_eq!(r.groups[0].error_code, GROUP_DENIED);
    let v7 = OffsetFetchRequest::default()
        .with_group_id(group("of-g"))
        .with_topics(None);
    assert_eq!(m.alice.call(v7.clone(), 7).await.error_code, GROUP_DENIED);
    m.allow(Op::Describe, Rt::Group, "of-g");
    let r = m.alice.call(named.clone(), 8).await;
    assert_eq!(fetched(&r), vec![("of-t".to_owned(), 0, -1, TOPIC_DENIED)]);
    assert!(
        fetched(&m.alice.call(fetch(None), 8).await).is_empty(),
        "offsets of all topics: none shown"
    );
    assert!(m.alice.call(v7.clone(), 7).await.topics.is_empty());
    m.allow(Op::Describe, Rt::Topic, "of-t");
    let r = m.alice.call(named, 8).await;
    assert_eq!(fetched(&r), vec![("of-t".to_owned(), 0, 5, NONE)]);
    assert_eq!(fetched(&m.alice.call(fetch(None), 8).await).len(), 1);
    assert_eq!(m.alice.call(v7, 7).await.topics.len(), 1);
}

pub(super) async fn offset_delete(m: &mut Matrix) {
    m.topic("od-t", 1).await;
    m.admin.call(commit("od-g", "od-t", 1), 8).await;
    let request = OffsetDeleteRequest::default()
        .with_group_id(group("od-g"))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic("od-t"))
                .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)]),
        ]);
    let r = m.alice.call(request.clone(), 0).await;
    assert_eq!(r.error_code, GROUP_DENIED);
    m.allow(Op::Delete, Rt::Group, "od-g");
    let r = m.alice.call(request.clone(), 0).await;
    assert_eq!(
        (r.error_code, r.topics[0].partitions[0].error_code),
        (NONE, TOPIC_DENIED)
    );
    assert_eq!(m.broker.groups().fetch_offsets("od-g", None).len(), 1, "kept");
    m.allow(Op::Read, Rt::Topic, "od-t");
    let r = m.alice.call(request, 0).await;
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (NONE, NONE));
    assert!(m.broker.groups().fetch_offsets("od-g", None).is_empty());
}

pub(super) async fn list_groups(m: &mut Matrix) {
    m.topic("lg-t", 1).await;
    for g in ["lg-a", "lg-b", "lgx-other"] {
        m.admin.call(commit(g, "lg-t", 1), 8).await;
    }
    let listed = |r: kafka_protocol::messages::ListGroupsResponse| -> Vec<String> {
        let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
        ids.sort();
        ids
    };
    assert!(listed(m.alice.call(ListGroupsRequest::default(), 5).await).is_empty());
    m.allow_prefixed(Op::Describe, Rt::Group, "lg-");
    assert_eq!(
        listed(m.alice.call(ListGroupsRequest::default(), 5).await),
        ["lg-a", "lg-b"]
    );
    m.allow_cluster(Op::Describe);
    let all = listed(m.alice.call(ListGroupsRequest::default(), 5).await);
    assert!(all.contains(&"lgx-other".to_owned()) && all.len() >= 3, "{all:?}");
}

pub(super) async fn describe_groups(m: &mut Matrix) {
    let request = DescribeGroupsRequest::default()
        .with_groups(vec![group("dg-g")])
        .with_include_authorized_operations(true);
    let r = m.alice.call(request.clone(), 5).await;
    assert_eq!(
        (r.groups[0].error_code, r.groups[0].authorized_operations),
        (GROUP_DENIED, i32::MIN)
    );
    m.allow(Op::Describe, Rt::Group, "dg-g");
    let r = m.alice.call(request.clone(), 5).await;
    assert_eq!(
        (r.groups[0].error_code, r.groups[0].authorized_operations),
        (NONE, bit(Op::Describe))
    );
    m.allow(Op::Read, Rt::Group, "dg-g");
    let r = m.alice.call(request, 5).await;
    assert_eq!(r.groups[0].authorized_operations, bit(Op::Read) | bit(Op::Describe));
}

pub(super) async fn delete_groups(m: &mut Matrix) {
    m.topic("dlg-t", 1).await;
    m.admin.call(commit("dlg-g", "dlg-t", 1), 8).await;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group("dlg-g")]);
    assert_eq!(
        m.alice.call(request.clone(), 2).await.results[0].error_code,
        GROUP_DENIED
    );
    m.allow(Op::Delete, Rt::Group, "dlg-g");
    assert_eq!(m.alice.call(request, 2).await.results[0].error_code, NONE);
}

fn consumer_heartbeat(group_id: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(&member_id()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

pub(super) async fn consumer_group_heartbeat(m: &mut Matrix) {
    m.topic("cgh-t", 1).await;
    let code = |r: kafka_protocol::messages::ConsumerGroupHeartbeatResponse| r.error_code;
    let join = || consumer_heartbeat("cgh-g", &["cgh-t"]);
    assert_eq!(code(m.alice.call(join(), 0).await), GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "cgh-g");
    assert_eq!(code(m.alice.call(join(), 0).await), TOPIC_DENIED);
    m.allow(Op::Describe, Rt::Topic, "cgh-t");
    let r = m.alice.call(join(), 0).await;
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
}

pub(super) async fn consumer_group_describe(m: &mut Matrix) {
    m.topic("cgd-t", 1).await;
    let r = m.admin.call(consumer_heartbeat("cgd-g", &["cgd-t"]), 0).await;
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    let request = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![group("cgd-g")])
        .with_include_authorized_operations(true);
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!(r.groups[0].error_code, GROUP_DENIED);
    // The group names a topic alice may not describe: hidden.
    m.allow(Op::Describe, Rt::Group, "cgd-g");
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!(r.groups[0].error_code, TOPIC_DENIED);
    assert!(r.groups[0].members.is_empty());
    m.allow(Op::Describe, Rt::Topic, "cgd-t");
    let r = m.alice.call(request, 1).await;
    let g = &r.groups[0];
    assert_eq!(
        (g.error_code, g.members.len(), g.authorized_operations),
        (NONE, 1, bit(Op::Describe))
    );
}
