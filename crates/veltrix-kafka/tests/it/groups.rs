//! Consumer group APIs over the wire, every served version of each: a member
//! joins, syncs, heartbeats, commits, fetches, is described and listed, leaves,
//! and the group is deleted.

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::BrokerConfig;
use veltrix_core::groups::GroupConfig;

use super::admin::start_with;
use super::*;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A broker whose groups rebalance at once (no initial delay).
async fn start_groups() -> Server {
    start_with(BrokerConfig {
        groups: GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..GroupConfig::default()
        },
        ..BrokerConfig::default()
    })
    .await
}

/// A JoinGroup at `version` (the rebalance timeout exists from v1).
fn join_request(group: &str, member_id: &str, version: i16) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(if version >= 1 { 10_000 } else { -1 })
        .with_member_id(s(member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

#[tokio::test]
async fn every_version_of_every_group_api_round_trips() {
    let srv = start_groups().await;
    let mut c = Client::connect(srv.addr).await;
    create_topic(&mut c, "t", 2).await;
    for i in 0..=9i16 {
        let group = format!("g{i}");
        let fc = c
            .call(
                FindCoordinatorRequest::default()
                    .with_key(if i >= 4 { s("") } else { s(&group) })
                    .with_coordinator_keys(if i >= 4 { vec![s(&group)] } else { vec![] }),
                i.min(4),
            )
            .await;
        if i >= 4 {
            assert_eq!(
                (fc.coordinators[0].error_code, fc.coordinators[0].port),
                (errors::NONE, i32::from(srv.addr.port()))
            );
        } else {
            assert_eq!((fc.error_code, fc.port), (errors::NONE, i32::from(srv.addr.port())));
        }

        // JoinGroup: v4+ first hands out a member id to come back with.
        let jv = i;
        let mut join = c.call(join_request(&group, "", jv), jv).await;
        if jv >= 4 {
            assert_eq!(join.error_code, errors::ResponseError::MemberIdRequired.code(), "v{jv}");
            let id = join.member_id.as_str().to_owned();
            join = c.call(join_request(&group, &id, jv), jv).await;
        }
        assert_eq!(join.error_code, errors::NONE, "JoinGroup v{jv}");
        assert_eq!((join.generation_id, join.leader.clone()), (1, join.member_id.clone()));
        assert_eq!(join.members.len(), 1);
        let member = join.member_id.as_str().to_owned();

        let sync = c
            .call(
                SyncGroupRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(1)
                    .with_member_id(s(&member))
                    .with_protocol_type(if i >= 5 { Some(s("consumer")) } else { None })
                    .with_protocol_name(if i >= 5 { Some(s("range")) } else { None })
                    .with_assignments(vec![
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(&member))
                            .with_assignment(Bytes::from_static(b"both partitions")),
                    ]),
                i.min(5),
            )
            .await;
        assert_eq!(
            (sync.error_code, sync.assignment.as_ref()),
            (errors::NONE, &b"both partitions"[..]),
            "SyncGroup v{}",
            i.min(5)
        );

        let hb = c
            .call(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(1)
                    .with_member_id(s(&member)),
                i.min(4),
            )
            .await;
        assert_eq!(hb.error_code, errors::NONE);
        let stale = c
            .call(
                HeartbeatRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_generation_id(0)
                    .with_member_id(s(&member)),
                i.min(4),
            )
            .await;
        assert_eq!(stale.error_code, errors::ResponseError::IllegalGeneration.code());

        let cv = (i + 2).min(9);
        let commit = |generation: i32, member: &str| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(member))
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(1)
                                .with_committed_offset(42)
                                .with_committed_metadata(Some(s("meta"))),
                        ]),
                ])
        };
        let r = c.call(commit(1, &member), cv).await;
        assert_eq!(r.topics[0].partitions[0].error_code, errors::NONE, "OffsetCommit v{cv}");
        let r = c.call(commit(0, &member), cv).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            errors::ResponseError::IllegalGeneration.code()
        );
        let r = c.call(commit(1, "stranger"), cv).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            errors::ResponseError::UnknownMemberId.code()
        );

        let fv = (i + 1).min(9);
        let fetch = if fv >= 8 {
            OffsetFetchRequest::default().with_groups(vec![
                OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_topics(Some(vec![
                        OffsetFetchRequestTopics::default()
                            .with_name(topic("t"))
                            .with_partition_indexes(vec![0, 1]),
                    ])),
            ])
        } else {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(topic("t"))
                        .with_partition_indexes(vec![0, 1]),
                ]))
        };
        let r = c.call(fetch, fv).await;
        let got: Vec<(i32, i64)> = if fv >= 8 {
            r.groups[0].topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
                .collect()
        } else {
            r.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
                .collect()
        };
        assert_eq!(got, vec![(0, -1), (1, 42)], "OffsetFetch v{fv}");

        let d = c
            .call(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group))]),
                i.min(5),
            )
            .await;
        let g = &d.groups[0];
        assert_eq!(
            (g.error_code, g.group_state.as_str(), g.protocol_data.as_str()),
            (errors::NONE, "Stable", "range")
        );
        assert_eq!(g.members[0].member_assignment.as_ref(), b"both partitions");

        let l = c.call(ListGroupsRequest::default(), i.min(5)).await;
        assert!(l.groups.iter().any(|g| g.group_id.0.as_str() == group));

        let leave = if i >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![MemberIdentity::default().with_member_id(s(&member))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s(&member))
        };
        let r = c.call(leave, i.min(5)).await;
        assert_eq!(r.error_code, errors::NONE);
        if i >= 3 {
            assert_eq!(r.members[0].error_code, errors::NONE);
        }

        let del = c
            .call(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
                i.min(2),
            )
            .await;
        assert_eq!(del.results[0].error_code, errors::NONE);
        let del = c
            .call(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
                i.min(2),
            )
            .await;
        assert_eq!(del.results[0].error_code, errors::ResponseError::GroupIdNotFound.code());
    }
}

#[tokio::test]
async fn a_transaction_coordinator_lookup_names_this_broker() {
    let srv = start_groups().await;
    let mut c = Client::connect(srv.addr).await;
    let r = c
        .call(FindCoordinatorRequest::default().with_key(s("tx")).with_key_type(1), 3)
        .await;
    assert_eq!((r.error_code, r.node_id.0), (errors::NONE, 0));
    let r = c
        .call(FindCoordinatorRequest::default().with_key(s("")).with_key_type(1), 3)
        .await;
    assert_eq!(
        r.error_code,
        errors::ResponseError::InvalidRequest.code(),
        "an empty id"
    );
    let r = c
        .call(FindCoordinatorRequest::default().with_key(s("x")).with_key_type(7), 3)
        .await;
    assert_eq!(r.error_code, errors::ResponseError::InvalidRequest.code());
}
