//! The consumer group protocol of KIP-848 over the wire: ConsumerGroupHeartbeat
//! (v0, v1), ConsumerGroupDescribe (v0, v1), and OffsetCommit / OffsetFetch v9
//! with member epochs.

use std::collections::BTreeMap;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopics};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
    ListGroupsRequest, MetadataRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A member as a client keeps it: id, epoch, owned partitions by topic id.
struct Member {
    id: String,
    epoch: i32,
    owned: BTreeMap<Uuid, Vec<i32>>,
}

impl Member {
    fn new(id: &str) -> Member {
        Member {
            id: id.to_owned(),
            epoch: 0,
            owned: BTreeMap::new(),
        }
    }

    fn request(&self, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(s(&self.id))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(topics.iter().map(|t| topic(t)).collect()))
            .with_topic_partitions(Some(
                self.owned
                    .iter()
                    .map(|(t, ps)| TopicPartitions::default().with_topic_id(*t).with_partitions(ps.clone()))
                    .collect(),
            ))
    }

    async fn beat(&mut self, c: &mut Client, version: i16) -> ConsumerGroupHeartbeatResponse {
        let r = c.call(self.request(&["t"]), version).await;
        if r.error_code == errors::NONE {
            self.id = r.member_id.as_ref().map(|m| m.to_string()).unwrap_or_default();
            self.epoch = r.member_epoch;
            if let Some(a) = &r.assignment {
                self.owned = a
                    .topic_partitions
                    .iter()
                    .map(|tp| (tp.topic_id, tp.partitions.clone()))
                    .collect();
            }
        }
        r
    }

    fn count(&self) -> usize {
        self.owned.values().map(Vec::len).sum()
    }
}

fn commit(member: &Member, epoch: i32) -> OffsetCommitRequest {
    commit_to_t0("g", epoch, &member.id, 7)
}

fn offset_fetch(member: &Member, epoch: i32) -> OffsetFetchRequest {
    OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g")))
            .with_member_id(Some(s(&member.id)))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(topic("t"))
                    .with_partition_indexes(vec![0]),
            ])),
    ])
}

#[tokio::test]
async fn two_members_share_a_topic_through_heartbeats_alone() {
    let srv = start(|_| {}).await;
    let mut c = Client::connect(srv.addr).await;
    create_topic(&mut c, "t", 4).await;
    let meta = c
        .call(
            MetadataRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(topic("t"))),
            ])),
            12,
        )
        .await;
    let topic_id = meta.topics[0].topic_id;

    for version in [0i16, 1] {
        let mut a = Member::new(if version == 0 { "" } else { "a-uuid" });
        let r = a.beat(&mut c, version).await;
        assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
        assert!(
            !a.id.is_empty(),
            "the coordinator names a member that comes without an id"
        );
        assert_eq!(r.heartbeat_interval_ms, 5_000);
        assert_eq!(a.owned.keys().copied().collect::<Vec<_>>(), vec![topic_id]);
        assert_eq!(a.count(), 4);

        let mut b = Member::new("b-uuid");
        assert_eq!(b.beat(&mut c, version).await.error_code, errors::NONE);
        assert_eq!(b.count(), 0, "a still owns every partition");
        a.beat(&mut c, version).await; // told to give two up
        assert_eq!(a.count(), 2);
        a.beat(&mut c, version).await; // reports them gone
        b.beat(&mut c, version).await;
        assert_eq!((a.count(), b.count()), (2, 2));

        // Commits and fetches name the member's current epoch.
        let r = c.call(commit(&a, a.epoch), 9).await;
        assert_eq!(r.topics[0].partitions[0].error_code, errors::NONE);
        let r = c.call(commit(&a, a.epoch - 1), 9).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            errors::ResponseError::StaleMemberEpoch.code()
        );
        let r = c.call(commit(&Member::new("stranger"), 1), 9).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            errors::ResponseError::UnknownMemberId.code()
        );
        let r = c.call(offset_fetch(&a, a.epoch), 9).await;
        assert_eq!(r.groups[0].error_code, errors::NONE);
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 7);
        let r = c.call(offset_fetch(&a, a.epoch + 5), 9).await;
        assert_eq!(r.groups[0].error_code, errors::ResponseError::StaleMemberEpoch.code());

        // A wrong epoch on a heartbeat is fenced.
        let mut wrong = Member::new(&a.id);
        wrong.epoch = a.epoch + 3;
        assert_eq!(
            wrong.beat(&mut c, version).await.error_code,
            errors::ResponseError::FencedMemberEpoch.code()
        );

        for dv in [0i16, 1] {
            let d = c
                .call(
                    ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("g")), GroupId(s("none"))]),
                    dv,
                )
                .await;
            let g = &d.groups[0];
            assert_eq!(
                (
                    g.error_code,
                    g.group_state.as_str(),
                    g.assignor_name.as_str(),
                    g.members.len()
                ),
                (errors::NONE, "Stable", "uniform", 2)
            );
            let m = g.members.iter().find(|m| m.member_id.as_str() == a.id).unwrap();
            assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "t");
            assert_eq!(m.member_type, if dv >= 1 { 1 } else { -1 });
            assert_eq!(d.groups[1].error_code, errors::ResponseError::GroupIdNotFound.code());
        }
        let l = c
            .call(ListGroupsRequest::default().with_types_filter(vec![s("consumer")]), 5)
            .await;
        let listed = l.groups.iter().find(|g| g.group_id.0.as_str() == "g").unwrap();
        assert_eq!(
            (
                listed.group_type.as_str(),
                listed.protocol_type.as_str(),
                listed.group_state.as_str()
            ),
            ("consumer", "consumer", "Stable")
        );
        let l = c
            .call(ListGroupsRequest::default().with_types_filter(vec![s("classic")]), 5)
            .await;
        assert!(l.groups.iter().all(|g| g.group_id.0.as_str() != "g"));

        // Both leave; the group is empty and can be deleted.
        for m in [&mut a, &mut b] {
            m.epoch = -1;
            let r = m.beat(&mut c, version).await;
            assert_eq!((r.error_code, r.member_epoch), (errors::NONE, -1));
        }
        let r = c
            .call(
                kafka_protocol::messages::DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("g"))]),
                2,
            )
            .await;
        assert_eq!(r.results[0].error_code, errors::NONE);
    }
}

#[tokio::test]
async fn bad_heartbeats_get_the_kafka_error_and_a_message() {
    let srv = start(|_| {}).await;
    let mut c = Client::connect(srv.addr).await;
    let m = Member::new("x");
    let r = c
        .call(m.request(&["t"]).with_server_assignor(Some(s("sticky"))), 0)
        .await;
    assert_eq!(r.error_code, errors::ResponseError::UnsupportedAssignor.code());
    assert!(r.error_message.unwrap().contains("uniform"));
    let r = c.call(m.request(&["t"]).with_rebalance_timeout_ms(-1), 0).await;
    assert_eq!(r.error_code, errors::ResponseError::InvalidRequest.code());
    let r = c.call(m.request(&["t"]).with_group_id(GroupId(s(""))), 1).await;
    assert_eq!(r.error_code, errors::ResponseError::InvalidGroupId.code());
    let mut ghost = Member::new("ghost");
    ghost.epoch = 4;
    assert_eq!(
        c.call(ghost.request(&["t"]), 1).await.error_code,
        errors::ResponseError::UnknownMemberId.code()
    );
}
