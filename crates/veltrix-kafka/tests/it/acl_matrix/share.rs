//! Cases of share groups (KIP-932): membership, description, fetching,
//! acknowledging and start offsets.

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch,
};
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest,
    ShareAcknowledgeRequest, ShareFetchRequest, ShareFetchResponse, ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest,
};

use super::*;

fn share_heartbeat(group_id: &str, member: &str, topic_name: &str) -> ShareGroupHeartbeatRequest {
    ShareGroupHeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![topic(topic_name)]))
}

/// Joins `member` to `group_id` through `c`, subscribed to `topic_name`.
async fn join(c: &mut Client, group_id: &str, member: &str, topic_name: &str) {
    let r = c.call(share_heartbeat(group_id, member, topic_name), 1).await;
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
}

pub(super) async fn share_group_heartbeat(m: &mut Matrix) {
    m.topic("sgh-t", 1).await;
    let beat = || share_heartbeat("sgh-g", &member_id(), "sgh-t");
    assert_eq!(m.alice.call(beat(), 1).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "sgh-g");
    assert_eq!(m.alice.call(beat(), 1).await.error_code, TOPIC_DENIED);
    m.allow(Op::Describe, Rt::Topic, "sgh-t");
    let r = m.alice.call(beat(), 1).await;
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
}

pub(super) async fn share_group_describe(m: &mut Matrix) {
    m.topic("sgd-t", 1).await;
    join(&mut m.admin, "sgd-g", &member_id(), "sgd-t").await;
    let request = ShareGroupDescribeRequest::default()
        .with_group_ids(vec![group("sgd-g")])
        .with_include_authorized_operations(true);
    assert_eq!(
        m.alice.call(request.clone(), 1).await.groups[0].error_code,
        GROUP_DENIED
    );
    m.allow(Op::Describe, Rt::Group, "sgd-g");
    let r = m.alice.call(request.clone(), 1).await;
    assert_eq!((r.groups[0].error_code, r.groups[0].members.len()), (TOPIC_DENIED, 0));
    m.allow(Op::Describe, Rt::Topic, "sgd-t");
    let r = m.alice.call(request, 1).await;
    let g = &r.groups[0];
    assert_eq!(
        (g.error_code, g.members.len(), g.authorized_operations),
        (NONE, 1, bit(Op::Describe))
    );
}

fn share_fetch_request(group_id: &str, member: &str, topic_id: Uuid) -> ShareFetchRequest {
    ShareFetchRequest::default()
        .with_group_id(Some(group(group_id)))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(0)
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_max_records(100)
        .with_batch_size(100)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![FetchPartition::default().with_partition_index(0)]),
        ])
}

/// The error of the fetch's one partition and the records it acquired.
fn acquired(r: &ShareFetchResponse) -> (i16, usize) {
    assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.acquired_records.len())
}

pub(super) async fn share_fetch(m: &mut Matrix) {
    m.topic("sf-t", 1).await;
    // The group reads from the start, where the topic's record is.
    assert_eq!(m.admin.call(alter_request("sf-g", "sf-t"), 0).await.error_code, NONE);
    let (id, member) = (m.topic_id("sf-t"), member_id());
    let request = share_fetch_request("sf-g", &member, id);
    assert_eq!(m.alice.call(request.clone(), 1).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "sf-g");
    m.allow(Op::Describe, Rt::Topic, "sf-t");
    join(&mut m.alice, "sf-g", &member, "sf-t").await;
    assert_eq!(acquired(&m.alice.call(request.clone(), 1).await), (TOPIC_DENIED, 0));
    m.allow(Op::Read, Rt::Topic, "sf-t");
    assert_eq!(acquired(&m.alice.call(request.clone(), 1).await), (NONE, 1));
    m.deny(Op::Read, Rt::Topic, "sf-t");
    assert_eq!(acquired(&m.alice.call(request, 1).await), (TOPIC_DENIED, 0));
}

pub(super) async fn share_acknowledge(m: &mut Matrix) {
    m.topic("sa-t", 1).await;
    assert_eq!(m.admin.call(alter_request("sa-g", "sa-t"), 0).await.error_code, NONE);
    let (id, member) = (m.topic_id("sa-t"), member_id());
    let acknowledge = |epoch: i32| {
        ShareAcknowledgeRequest::default()
            .with_group_id(Some(group("sa-g")))
            .with_member_id(Some(text(&member)))
            .with_share_session_epoch(epoch)
            .with_topics(vec![AcknowledgeTopic::default().with_topic_id(id).with_partitions(
                vec![
                AcknowledgePartition::default().with_partition_index(0).with_acknowledgement_batches(vec![
                    AcknowledgementBatch::default()
                        .with_first_offset(0)
                        .with_last_offset(0)
                        .with_acknowledge_types(vec![1]),
                ]),
            ],
            )])
    };
    assert_eq!(m.alice.call(acknowledge(1), 1).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "sa-g");
    m.allow(Op::Read, Rt::Topic, "sa-t");
    join(&mut m.alice, "sa-g", &member, "sa-t").await;
    let fetched = m.alice.call(share_fetch_request("sa-g", &member, id), 1).await;
    assert_eq!(acquired(&fetched), (NONE, 1));
    // READ on the topic taken away: the acknowledgement is not applied.
    m.deny(Op::Read, Rt::Topic, "sa-t");
    let code = |r: kafka_protocol::messages::ShareAcknowledgeResponse| {
        assert_eq!(r.error_code, NONE, "{:?}", r.error_message);
        r.responses[0].partitions[0].error_code
    };
    assert_eq!(code(m.alice.call(acknowledge(1), 1).await), TOPIC_DENIED);
    m.reset();
    m.allow(Op::Read, Rt::Group, "sa-g");
    m.allow(Op::Read, Rt::Topic, "sa-t");
    assert_eq!(code(m.alice.call(acknowledge(2), 1).await), NONE);
}

/// Start offset 0 for partition 0 of `topic_name` in `group_id`.
fn alter_request(group_id: &str, topic_name: &str) -> AlterShareGroupOffsetsRequest {
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(group(group_id))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(topic(topic_name))
                .with_partitions(vec![
                    AlterShareGroupOffsetsRequestPartition::default()
                        .with_partition_index(0)
                        .with_start_offset(0),
                ]),
        ])
}

pub(super) async fn describe_share_group_offsets(m: &mut Matrix) {
    m.topic("dso-t", 1).await;
    assert_eq!(m.admin.call(alter_request("dso-g", "dso-t"), 0).await.error_code, NONE);
    let describe = |topics: Option<Vec<DescribeShareGroupOffsetsRequestTopic>>| {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(group("dso-g"))
                .with_topics(topics),
        ])
    };
    let named = || {
        describe(Some(vec![
            DescribeShareGroupOffsetsRequestTopic::default()
                .with_topic_name(topic("dso-t"))
                .with_partitions(vec![0]),
        ]))
    };
    let starts = |r: kafka_protocol::messages::DescribeShareGroupOffsetsResponse| -> Vec<(i64, i16)> {
        let g = &r.groups[0];
        assert_eq!(g.error_code, NONE, "{:?}", g.error_message);
        g.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (p.start_offset, p.error_code)))
            .collect()
    };
    assert_eq!(m.alice.call(named(), 0).await.groups[0].error_code, GROUP_DENIED);
    m.allow(Op::Describe, Rt::Group, "dso-g");
    assert_eq!(starts(m.alice.call(named(), 0).await), vec![(-1, TOPIC_DENIED)]);
    assert!(
        starts(m.alice.call(describe(None), 0).await).is_empty(),
        "every topic: none shown"
    );
    m.allow(Op::Describe, Rt::Topic, "dso-t");
    assert_eq!(starts(m.alice.call(named(), 0).await), vec![(0, NONE)]);
    assert_eq!(starts(m.alice.call(describe(None), 0).await), vec![(0, NONE)]);
}

pub(super) async fn alter_share_group_offsets(m: &mut Matrix) {
    m.topic("aso-t", 1).await;
    let request = alter_request("aso-g", "aso-t");
    assert_eq!(m.alice.call(request.clone(), 0).await.error_code, GROUP_DENIED);
    m.allow(Op::Read, Rt::Group, "aso-g");
    let r = m.alice.call(request.clone(), 0).await;
    assert_eq!(
        (r.error_code, r.responses[0].partitions[0].error_code),
        (NONE, TOPIC_DENIED)
    );
    m.allow(Op::Read, Rt::Topic, "aso-t");
    let r = m.alice.call(request, 0).await;
    assert_eq!((r.error_code, r.responses[0].partitions[0].error_code), (NONE, NONE));
}

pub(super) async fn delete_share_group_offsets(m: &mut Matrix) {
    m.topic("dsg-t", 1).await;
    assert_eq!(m.admin.call(alter_request("dsg-g", "dsg-t"), 0).await.error_code, NONE);
    let request = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group("dsg-g"))
        .with_topics(vec![
            DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic("dsg-t")),
        ]);
    assert_eq!(m.alice.call(request.clone(), 0).await.error_code, GROUP_DENIED);
    m.allow(Op::Delete, Rt::Group, "dsg-g");
    let r = m.alice.call(request.clone(), 0).await;
    assert_eq!((r.error_code, r.responses[0].error_code), (NONE, TOPIC_DENIED));
    m.allow(Op::Read, Rt::Topic, "dsg-t");
    let r = m.alice.call(request, 0).await;
    assert_eq!((r.error_code, r.responses[0].error_code), (NONE, NONE));
}
