//! Share groups' administration over the wire: DescribeShareGroupOffsets,
//! AlterShareGroupOffsets and DeleteShareGroupOffsets (v0), share groups in
//! DeleteGroups, DescribeGroups and ListGroups' filters, and the limits on
//! what one request may name. Members join with ShareGroupHeartbeat and
//! read with ShareFetch, as a share consumer does.

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::describe_share_group_offsets_response::DescribeShareGroupOffsetsResponseGroup;
use kafka_protocol::messages::share_fetch_request::{
    FetchPartition as ShareFetchPartition, FetchTopic as ShareFetchTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ConsumerGroupHeartbeatRequest, DeleteGroupsRequest,
    DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse, DescribeGroupsRequest,
    DescribeShareGroupOffsetsRequest, GroupId, ListGroupsRequest, ShareFetchRequest, ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::TOPIC_NAME_BYTES_MAX;
use veltrix_core::share::{GROUP_ID_BYTES_MAX, OFFSETS_PARTITIONS_MAX};

use super::*;

use errors::ResponseError;

fn text(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

/// A topic `t` of `partitions` partitions holding records 0 to `records - 1`
/// in partition 0.
async fn topic_with_records(c: &mut Client, partitions: i32, records: usize) {
    create_topic(c, "t", partitions).await;
    let values: Vec<String> = (0..records).map(|i| format!("v{i}")).collect();
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let (code, _) = produce(c, "t", 0, -1, super::records(&values, Compression::None)).await;
    assert_eq!(code, errors::NONE);
}

/// A member id made by the client, as KIP-848 and KIP-932 members make them:
/// a different one each time.
fn member_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Uuid::from_u128(u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))).to_string()
}

/// A share-group member as a client keeps it.
struct ShareMember {
    group: String,
    id: String,
    epoch: i32,
}

impl ShareMember {
    /// Joins `group` subscribed to `t`.
    async fn join(c: &mut Client, group_id: &str) -> ShareMember {
        let id = member_id();
        let r = c
            .call(
                ShareGroupHeartbeatRequest::default()
                    .with_group_id(group(group_id))
                    .with_member_id(text(&id))
                    .with_member_epoch(0)
                    .with_subscribed_topic_names(Some(vec![topic("t")])),
                1,
            )
            .await;
        assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
        ShareMember {
            group: group_id.to_owned(),
            id,
            epoch: r.member_epoch,
        }
    }

    async fn leave(self, c: &mut Client) {
        let r = c
            .call(
                ShareGroupHeartbeatRequest::default()
                    .with_group_id(group(&self.group))
                    .with_member_id(text(&self.id))
                    .with_member_epoch(-1),
                1,
            )
            .await;
        assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
    }

    /// Opens a share session on partition 0 of `topic_id` and returns the
    /// offset ranges it acquired (first, last, delivery count); answered at
    /// once (records available are acquired before a wait would begin).
    async fn fetch(&self, c: &mut Client, topic_id: Uuid) -> Vec<(i64, i64, i16)> {
        assert!(self.epoch > 0, "a member with an assignment");
        let r = c
            .call(
                ShareFetchRequest::default()
                    .with_group_id(Some(group(&self.group)))
                    .with_member_id(Some(text(&self.id)))
                    .with_share_session_epoch(0)
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_max_bytes(1 << 20)
                    .with_max_records(100)
                    .with_batch_size(100)
                    .with_topics(vec![
                        ShareFetchTopic::default()
                            .with_topic_id(topic_id)
                            .with_partitions(vec![ShareFetchPartition::default().with_partition_index(0)]),
                    ]),
                1,
            )
            .await;
        assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
        r.responses
            .iter()
            .flat_map(|t| &t.partitions)
            .flat_map(|p| {
                assert_eq!(p.error_code, errors::NONE, "{:?}", p.error_message);
                &p.acquired_records
            })
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect()
    }
}

fn topic_id(server: &Server, name: &str) -> Uuid {
    Uuid::from_bytes(server.broker.topic(name).expect("the topic").id)
}

fn alter_request(group_id: &str, topics: &[(&str, &[(i32, i64)])]) -> AlterShareGroupOffsetsRequest {
    AlterShareGroupOffsetsRequest::default()
        .with_group_id(group(group_id))
        .with_topics(
            topics
                .iter()
                .map(|(name, starts)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic(name))
                        .with_partitions(
                            starts
                                .iter()
                                .map(|&(p, start)| {
                                    AlterShareGroupOffsetsRequestPartition::default()
                                        .with_partition_index(p)
                                        .with_start_offset(start)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}

pub(crate) async fn alter(
    c: &mut Client,
    group_id: &str,
    topics: &[(&str, &[(i32, i64)])],
) -> AlterShareGroupOffsetsResponse {
    c.call(alter_request(group_id, topics), 0).await
}

/// Each partition's answer of an alteration: (topic, partition, error).
pub(crate) fn altered(r: &AlterShareGroupOffsetsResponse) -> Vec<(String, i32, i16)> {
    r.responses
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.topic_name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// Describes one group: all its topics (`None`) or those named.
pub(crate) async fn describe(
    c: &mut Client,
    group_id: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> DescribeShareGroupOffsetsResponseGroup {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|(name, partitions)| {
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(topic(name))
                    .with_partitions(partitions.to_vec())
            })
            .collect()
    });
    let r = c
        .call(
            DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(group(group_id))
                    .with_topics(topics),
            ]),
            0,
        )
        .await;
    assert_eq!(r.groups.len(), 1);
    r.groups.into_iter().next().unwrap()
}

/// A described group's partitions: (topic, partition, start offset, error).
pub(crate) fn starts(g: &DescribeShareGroupOffsetsResponseGroup) -> Vec<(String, i32, i64, i16)> {
    g.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.topic_name.0.to_string(),
                    p.partition_index,
                    p.start_offset,
                    p.error_code,
                )
            })
        })
        .collect()
}

pub(crate) async fn delete_offsets(c: &mut Client, group_id: &str, topics: &[&str]) -> DeleteShareGroupOffsetsResponse {
    c.call(
        DeleteShareGroupOffsetsRequest::default()
            .with_group_id(group(group_id))
            .with_topics(
                topics
                    .iter()
                    .map(|t| DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic(t)))
                    .collect(),
            ),
        0,
    )
    .await
}

async fn delete_group(c: &mut Client, group_id: &str) -> i16 {
    let r = c
        .call(
            DeleteGroupsRequest::default().with_groups_names(vec![group(group_id)]),
            2,
        )
        .await;
    r.results[0].error_code
}

const UNKNOWN_TOPIC: i16 = 3;

#[tokio::test]
async fn described_start_offsets_follow_what_members_read() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 2, 10).await;

    // A group the broker does not know has no offsets, and no error.
    let g = describe(&mut c, "g", None).await;
    assert_eq!((g.error_code, g.topics.len()), (errors::NONE, 0));
    let g = describe(&mut c, "g", Some(&[("t", &[0])])).await;
    assert_eq!(starts(&g), vec![("t".into(), 0, -1, errors::NONE)]);

    // A member reads from an altered start; the SPSO stays there until
    // the records are acknowledged.
    alter(&mut c, "g", &[("t", &[(0, 3)])]).await;
    let m = ShareMember::join(&mut c, "g").await;
    assert_eq!(m.fetch(&mut c, topic_id(&s, "t")).await, vec![(3, 9, 1)]);
    let g = describe(&mut c, "g", None).await;
    assert_eq!(g.error_code, errors::NONE);
    assert_eq!(starts(&g), vec![("t".into(), 0, 3, errors::NONE)]);
    assert_eq!(g.topics[0].topic_id, topic_id(&s, "t"));
    assert_eq!(g.topics[0].partitions[0].leader_epoch, -1);

    // Named partitions: one with state, one without, one past the topic's
    // end, and a topic that does not exist.
    let g = describe(&mut c, "g", Some(&[("t", &[0, 1, 7]), ("nope", &[0])])).await;
    assert_eq!(
        starts(&g),
        vec![
            ("t".into(), 0, 3, errors::NONE),
            ("t".into(), 1, -1, errors::NONE),
            ("t".into(), 7, -1, UNKNOWN_TOPIC),
            ("nope".into(), 0, -1, UNKNOWN_TOPIC),
        ]
    );
    assert!(g.topics[1].partitions[0].error_message.is_some());
    m.leave(&mut c).await;
}

#[tokio::test]
async fn an_alteration_waits_for_an_empty_group_and_a_new_member_starts_there() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 10).await;
    let tid = topic_id(&s, "t");
    let m = ShareMember::join(&mut c, "g").await;
    assert_eq!(m.fetch(&mut c, tid).await, vec![], "the group starts at the log's end");

    let r = alter(&mut c, "g", &[("t", &[(0, 2)])]).await;
    assert_eq!(r.error_code, ResponseError::NonEmptyGroup.code());
    assert!(r.error_message.is_some() && r.responses.is_empty());
    let g = describe(&mut c, "g", None).await;
    assert_eq!(starts(&g), vec![("t".into(), 0, 10, errors::NONE)], "unchanged");
    m.leave(&mut c).await;

    // Out of the log's range: refused, and nothing changes.
    for bad in [11, -1] {
        let r = alter(&mut c, "g", &[("t", &[(0, bad)])]).await;
        assert_eq!(r.error_code, errors::NONE);
        assert_eq!(
            altered(&r),
            vec![("t".into(), 0, ResponseError::OffsetOutOfRange.code())]
        );
        assert!(r.responses[0].partitions[0].error_message.is_some());
    }
    assert_eq!(
        starts(&describe(&mut c, "g", None).await),
        vec![("t".into(), 0, 10, errors::NONE)]
    );

    // Each partition is answered on its own: the good one is altered.
    let r = alter(&mut c, "g", &[("t", &[(0, 2), (5, 0)]), ("nope", &[(0, 0)])]).await;
    assert_eq!(r.error_code, errors::NONE);
    assert_eq!(
        altered(&r),
        vec![
            ("t".into(), 0, errors::NONE),
            ("t".into(), 5, UNKNOWN_TOPIC),
            ("nope".into(), 0, UNKNOWN_TOPIC),
        ]
    );
    assert_eq!(r.responses[0].topic_id, tid);
    assert_eq!(r.responses[1].topic_id, Uuid::nil());

    let m = ShareMember::join(&mut c, "g").await;
    assert_eq!(m.fetch(&mut c, tid).await, vec![(2, 9, 1)]);
    m.leave(&mut c).await;
}

#[tokio::test]
async fn altering_creates_the_group_but_never_takes_a_consumer_groups_id() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 5).await;

    let r = alter(&mut c, "fresh", &[("t", &[(0, 0)])]).await;
    assert_eq!(
        (r.error_code, altered(&r)),
        (errors::NONE, vec![("t".into(), 0, errors::NONE)])
    );
    let l = c
        .call(ListGroupsRequest::default().with_types_filter(vec![text("share")]), 5)
        .await;
    let listed: Vec<(&str, &str)> = l
        .groups
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.group_state.as_str()))
        .collect();
    assert_eq!(listed, vec![("fresh", "Empty")]);

    commit_outside_any_group(&mut c, "classic").await;
    let r = alter(&mut c, "classic", &[("t", &[(0, 0)])]).await;
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    let r = delete_offsets(&mut c, "classic", &["t"]).await;
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
    assert!(!s.broker.share().contains("classic"));
}

/// An OffsetCommit from a client outside the group protocol: a classic
/// group with offsets and no members.
async fn commit_outside_any_group(c: &mut Client, group_id: &str) {
    let r = c.call(commit_to_t0(group_id, -1, "", 1), 8).await;
    assert_eq!(r.topics[0].partitions[0].error_code, errors::NONE);
}

#[tokio::test]
async fn deleted_offsets_are_gone_and_only_from_an_empty_group() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 10).await;
    create_topic(&mut c, "u", 1).await;

    let r = delete_offsets(&mut c, "g", &["t"]).await;
    assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());

    let m = ShareMember::join(&mut c, "g").await;
    m.fetch(&mut c, topic_id(&s, "t")).await;
    let r = delete_offsets(&mut c, "g", &["t"]).await;
    assert_eq!(r.error_code, ResponseError::NonEmptyGroup.code());
    assert_eq!(starts(&describe(&mut c, "g", None).await).len(), 1, "unchanged");
    m.leave(&mut c).await;

    let r = delete_offsets(&mut c, "g", &["t", "u", "nope"]).await;
    assert_eq!(r.error_code, errors::NONE);
    let answers: Vec<(&str, i16, Uuid)> = r
        .responses
        .iter()
        .map(|t| (t.topic_name.0.as_str(), t.error_code, t.topic_id))
        .collect();
    assert_eq!(
        answers,
        vec![
            ("t", errors::NONE, topic_id(&s, "t")),
            // No state for this topic: Kafka's "no offset information to delete".
            ("u", UNKNOWN_TOPIC, Uuid::nil()),
            ("nope", UNKNOWN_TOPIC, Uuid::nil()),
        ]
    );
    let g = describe(&mut c, "g", None).await;
    assert_eq!((g.error_code, g.topics.len()), (errors::NONE, 0));
    assert!(s.broker.share().contains("g"), "the group stays");
}

#[tokio::test]
async fn a_deleted_share_group_is_gone_after_a_restart_and_describe_groups_knows_none() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 10).await;
    let tid = topic_id(&s, "t");
    alter(&mut c, "kept", &[("t", &[(0, 6)])]).await;
    let m = ShareMember::join(&mut c, "g").await;
    m.fetch(&mut c, tid).await;

    // DescribeGroups describes classic groups: a share group's id is
    // answered as Kafka 4 answers a group it does not know.
    let d = c
        .call(DescribeGroupsRequest::default().with_groups(vec![group("g")]), 5)
        .await;
    let g = &d.groups[0];
    assert_eq!(
        (g.error_code, g.group_state.as_str(), g.members.len()),
        (errors::NONE, "Dead", 0)
    );

    assert_eq!(delete_group(&mut c, "g").await, ResponseError::NonEmptyGroup.code());
    assert!(s.broker.share().contains("g"));
    m.leave(&mut c).await;
    let r = c
        .call(
            DeleteGroupsRequest::default().with_groups_names(vec![group("g"), group("g")]),
            2,
        )
        .await;
    let results: Vec<(&str, i16)> = r
        .results
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.error_code))
        .collect();
    assert_eq!(
        results,
        vec![("g", errors::NONE)],
        "a group named twice is answered once"
    );
    assert_eq!(delete_group(&mut c, "g").await, ResponseError::GroupIdNotFound.code());

    drop(c);
    let s = s.restart().await;
    let mut c = Client::connect(s.addr).await;
    assert!(!s.broker.share().contains("g"));
    let described = c
        .call(ShareGroupDescribeRequest::default().with_group_ids(vec![group("g")]), 1)
        .await;
    assert_eq!(described.groups[0].error_code, ResponseError::GroupIdNotFound.code());
    let g = describe(&mut c, "g", None).await;
    assert_eq!(g.topics.len(), 0);
    // The group altered beside it kept its start.
    assert_eq!(
        starts(&describe(&mut c, "kept", None).await),
        vec![("t".into(), 0, 6, errors::NONE)]
    );
    let m = ShareMember::join(&mut c, "kept").await;
    assert_eq!(m.fetch(&mut c, tid).await, vec![(6, 9, 1)]);
}

/// ListGroups with these filters: (group id, type), sorted.
async fn list_groups(c: &mut Client, types: &[&str], states: &[&str], version: i16) -> Vec<(String, String)> {
    let r = c
        .call(
            ListGroupsRequest::default()
                .with_types_filter(types.iter().map(|t| text(t)).collect())
                .with_states_filter(states.iter().map(|t| text(t)).collect()),
            version,
        )
        .await;
    assert_eq!(r.error_code, errors::NONE);
    let mut groups: Vec<(String, String)> = r
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.group_type.to_string()))
        .collect();
    groups.sort();
    groups
}

#[tokio::test]
async fn list_groups_filters_by_type_as_kafka_does() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 1).await;
    commit_outside_any_group(&mut c, "classic").await;
    let r = c
        .call(
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("consumer"))
                .with_member_id(text(&member_id()))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic("t")]))
                .with_topic_partitions(Some(Vec::<TopicPartitions>::new())),
            1,
        )
        .await;
    assert_eq!(r.error_code, errors::NONE, "{:?}", r.error_message);
    let _share = ShareMember::join(&mut c, "share").await;

    let g = |id: &str, t: &str| (id.to_owned(), t.to_owned());
    let all = vec![g("classic", "classic"), g("consumer", "consumer"), g("share", "share")];
    assert_eq!(list_groups(&mut c, &[], &[], 5).await, all);
    assert_eq!(list_groups(&mut c, &["share"], &[], 5).await, vec![g("share", "share")]);
    assert_eq!(
        list_groups(&mut c, &["Consumer"], &[], 5).await,
        vec![g("consumer", "consumer")]
    );
    assert_eq!(
        list_groups(&mut c, &["CLASSIC"], &[], 5).await,
        vec![g("classic", "classic")]
    );
    assert_eq!(
        list_groups(&mut c, &["share", "classic"], &[], 5).await,
        vec![g("classic", "classic"), g("share", "share")]
    );
    assert_eq!(
        list_groups(&mut c, &["streams"], &[], 5).await,
        vec![],
        "a type no group has"
    );
    assert_eq!(
        list_groups(&mut c, &["bogus"], &[], 5).await,
        vec![],
        "an unknown type matches nothing"
    );
    assert_eq!(
        list_groups(&mut c, &["share"], &["stable"], 5).await,
        vec![g("share", "share")]
    );
    assert_eq!(list_groups(&mut c, &["share"], &["Empty"], 5).await, vec![]);
    // Before v5 there is no type filter (nor a type).
    let before: Vec<String> = list_groups(&mut c, &[], &[], 4)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(before, vec!["classic", "consumer", "share"]);
}

#[tokio::test]
async fn requests_naming_too_much_or_names_over_limits_are_refused_and_change_nothing() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    topic_with_records(&mut c, 1, 10).await;
    let too_many: Vec<(i32, i64)> = (0..=OFFSETS_PARTITIONS_MAX as i32).map(|p| (p, 0)).collect();

    let r = alter(&mut c, "g", &[("t", &too_many)]).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    assert!(
        r.error_message.as_ref().is_some_and(|m| m.contains("10000")),
        "{:?}",
        r.error_message
    );
    assert!(!s.broker.share().contains("g"), "nothing created");

    let partitions: Vec<i32> = too_many.iter().map(|(p, _)| *p).collect();
    let g = describe(&mut c, "g", Some(&[("t", &partitions)])).await;
    assert_eq!(g.error_code, ResponseError::InvalidRequest.code());
    assert!(g.topics.is_empty());

    let names: Vec<String> = (0..=OFFSETS_PARTITIONS_MAX).map(|i| format!("t{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    alter(&mut c, "g", &[("t", &[(0, 0)])]).await;
    let r = delete_offsets(&mut c, "g", &names).await;
    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(starts(&describe(&mut c, "g", None).await).len(), 1, "unchanged");

    // Names past their limits: a group id, a topic name.
    let long_group = "g".repeat(GROUP_ID_BYTES_MAX + 1);
    let r = alter(&mut c, &long_group, &[("t", &[(0, 0)])]).await;
    assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());
    assert!(r.error_message.is_some());
    let r = delete_offsets(&mut c, &long_group, &["t"]).await;
    assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());
    let g = describe(&mut c, &long_group, None).await;
    assert_eq!(g.error_code, ResponseError::InvalidGroupId.code());
    assert_eq!(
        delete_group(&mut c, &long_group).await,
        ResponseError::GroupIdNotFound.code()
    );
    let r = alter(&mut c, "", &[("t", &[(0, 0)])]).await;
    assert_eq!(r.error_code, ResponseError::InvalidGroupId.code());

    let long_topic = "t".repeat(TOPIC_NAME_BYTES_MAX + 1);
    let r = alter(&mut c, "g", &[(&long_topic, &[(0, 0)])]).await;
    assert_eq!(altered(&r), vec![(long_topic.clone(), 0, UNKNOWN_TOPIC)]);
    let message = r.responses[0].partitions[0].error_message.as_ref().unwrap();
    assert!(message.contains("249"), "{message}");

    assert_eq!(
        starts(&describe(&mut c, "g", None).await),
        vec![("t".into(), 0, 0, errors::NONE)]
    );
    assert_eq!(s.broker.share().list().len(), 1);
}

#[tokio::test]
async fn a_describe_naming_more_groups_than_the_broker_keeps_is_refused() {
    let config = BrokerConfig {
        share: veltrix_core::share::ShareConfig {
            groups_max: 3,
            ..Default::default()
        },
        ..BrokerConfig::default()
    };
    let s = start_with_broker(config, |_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let groups: Vec<DescribeShareGroupOffsetsRequestGroup> = (0..10)
        .map(|i| DescribeShareGroupOffsetsRequestGroup::default().with_group_id(group(&format!("g{i}"))))
        .collect();
    let r = c
        .call(DescribeShareGroupOffsetsRequest::default().with_groups(groups), 0)
        .await;
    assert_eq!(r.groups.len(), 3, "answered no larger than the broker's list of groups");
    assert!(
        r.groups
            .iter()
            .all(|g| g.error_code == ResponseError::InvalidRequest.code())
    );
}
