//! Administering share groups' state (`admin.rs`) with simulated storage:
//! each change is refused whole while the group has members, and once
//! answered it survives a crash.

use super::tests::{World, ack, acquire, join, opened_with_member, produce};
use super::*;

const TOPIC: TopicId = [7; 16];
const OTHER: TopicId = [8; 16];

fn leave(share: &ShareCoordinator, member: &str) {
    share
        .heartbeat(
            ShareHeartbeat {
                group: "g".into(),
                member_id: member.into(),
                member_epoch: -1,
                ..ShareHeartbeat::default()
            },
            &|_| None,
        )
        .unwrap();
}

fn start(topic: TopicId, partition: i32, start: i64) -> PartitionStart {
    PartitionStart {
        topic,
        partition,
        start,
    }
}

#[test]
fn an_altered_start_is_refused_while_members_remain_and_then_starts_the_next_delivery() {
    let (w, o) = opened_with_member(3, 10);
    acquire(&o, "a", 10);
    let before = o.share.start_offsets("g").unwrap();
    assert_eq!(
        o.share.alter_start_offsets("g", &[start(TOPIC, 0, 25)]),
        Err(ShareError::NonEmptyGroup)
    );
    assert_eq!(
        o.share.start_offsets("g").unwrap(),
        before,
        "a refused alteration changes nothing"
    );

    leave(&o.share, "a");
    o.share.alter_start_offsets("g", &[start(TOPIC, 0, 25)]).unwrap();
    assert_eq!(o.share.start_offsets("g").unwrap(), vec![start(TOPIC, 0, 25)]);
    drop(o);
    w.crash(3);

    let o = w.open();
    assert_eq!(
        o.share.start_offsets("g").unwrap(),
        vec![start(TOPIC, 0, 25)],
        "durable once answered"
    );
    join(&o.share, "b");
    let got = acquire(&o, "b", 100);
    assert_eq!(
        got,
        vec![Acquired {
            first: 25,
            last: 29,
            deliveries: 1
        }]
    );
}

#[test]
fn moving_the_start_back_delivers_the_records_again_as_new() {
    let (_w, o) = opened_with_member(1, 10);
    acquire(&o, "a", 10);
    ack(&o, "a", 0, 9, 1).unwrap();
    leave(&o.share, "a");
    o.share.alter_start_offsets("g", &[start(TOPIC, 0, 4)]).unwrap();
    join(&o.share, "b");
    assert_eq!(
        acquire(&o, "b", 100),
        vec![Acquired {
            first: 4,
            last: 9,
            deliveries: 1
        }]
    );
}

#[test]
fn altering_an_unknown_group_creates_it_within_the_group_limit() {
    let mut w = World::new();
    w.config.groups_max = 1;
    let o = w.open();
    o.share.alter_start_offsets("new", &[start(TOPIC, 0, 0)]).unwrap();
    assert!(o.share.contains("new"));
    assert_eq!(o.share.describe("new").map(|d| d.state), Some("Empty"));
    assert_eq!(
        o.share.alter_start_offsets("another", &[start(TOPIC, 0, 0)]),
        Err(ShareError::TooManyGroups(1))
    );
    assert!(!o.share.contains("another"), "a refused alteration creates nothing");
    drop(o);
    w.crash(4);
    let o = w.open();
    assert!(o.share.contains("new"), "the created group survives a crash");
}

#[test]
fn bad_alterations_are_refused_before_anything_is_written() {
    let w = World::new();
    let o = w.open();
    assert_eq!(
        o.share.alter_start_offsets("g", &[start(TOPIC, 0, -1)]),
        Err(ShareError::InvalidRequest("start offset -1 is negative".into()))
    );
    let many: Vec<PartitionStart> = (0..=OFFSETS_PARTITIONS_MAX as i32)
        .map(|p| start(TOPIC, p, 0))
        .collect();
    assert!(matches!(
        o.share.alter_start_offsets("g", &many),
        Err(ShareError::InvalidRequest(_))
    ));
    let long = "x".repeat(GROUP_ID_BYTES_MAX + 1);
    assert_eq!(
        o.share.alter_start_offsets(&long, &[start(TOPIC, 0, 0)]),
        Err(ShareError::GroupIdTooLong(GROUP_ID_BYTES_MAX + 1))
    );
    assert_eq!(
        o.share.alter_start_offsets("", &[start(TOPIC, 0, 0)]),
        Err(ShareError::InvalidGroupId)
    );
    assert!(o.share.list().is_empty());
    assert!(o.share.stats().is_empty());
}

#[test]
fn deleting_a_topics_offsets_needs_an_empty_group_and_survives_a_crash() {
    let w = World::new();
    let o = w.open();
    assert_eq!(
        o.share.delete_start_offsets("g", &[TOPIC]),
        Err(ShareError::GroupIdNotFound)
    );
    produce(&o.log, 1, 10);
    join(&o.share, "a");
    acquire(&o, "a", 10);
    assert_eq!(
        o.share.delete_start_offsets("g", &[TOPIC]),
        Err(ShareError::NonEmptyGroup)
    );
    assert_eq!(
        o.share.start_offsets("g").unwrap().len(),
        1,
        "a refused deletion changes nothing"
    );
    leave(&o.share, "a");
    o.share
        .alter_start_offsets("g", &[start(OTHER, 0, 3), start(OTHER, 1, 4)])
        .unwrap();
    assert_eq!(
        o.share.delete_start_offsets("g", &[TOPIC, [9; 16]]).unwrap(),
        [TOPIC].into_iter().collect(),
        "only topics with state are reported deleted"
    );
    assert_eq!(
        o.share.start_offsets("g").unwrap(),
        vec![start(OTHER, 0, 3), start(OTHER, 1, 4)]
    );
    drop(o);
    w.crash(5);
    let o = w.open();
    assert_eq!(
        o.share.start_offsets("g").unwrap(),
        vec![start(OTHER, 0, 3), start(OTHER, 1, 4)]
    );
    assert!(o.share.contains("g"), "the group stays");
}

#[test]
fn a_deleted_group_is_gone_with_its_state_and_sessions_across_a_crash() {
    let (w, o) = opened_with_member(1, 10);
    acquire(&o, "a", 10);
    o.share
        .set_settings("g", vec![("share.record.lock.duration.ms".into(), "20000".into())])
        .unwrap();
    assert_eq!(o.share.delete_group("g"), Err(ShareError::NonEmptyGroup));
    assert!(o.share.contains("g"));
    leave(&o.share, "a");
    // A session outlives its member until it times out.
    let session = SessionRequest {
        group: "g".into(),
        member: "gone".into(),
        epoch: 0,
        add: vec![(TOPIC, 0)],
        forget: Vec::new(),
        has_acks: false,
        connection: 1,
    };
    o.share.begin_session(&session, SessionUse::Fetch).unwrap();
    o.share.delete_group("g").unwrap();
    assert!(!o.share.contains("g"));
    assert!(o.share.start_offsets("g").unwrap().is_empty());
    assert_eq!(o.share.sessions(), 0, "the group's sessions close with it");
    assert_eq!(o.share.delete_group("g"), Err(ShareError::GroupIdNotFound));
    drop(o);
    w.crash(6);
    let o = w.open();
    assert!(!o.share.contains("g"));
    assert!(o.share.stats().is_empty());
    assert!(o.share.overrides("g").is_empty(), "settings went with the group");
}

#[test]
fn a_share_group_id_over_the_limit_cannot_join() {
    let w = World::new();
    let o = w.open();
    let long = "x".repeat(GROUP_ID_BYTES_MAX + 1);
    let joined = o.share.heartbeat(
        ShareHeartbeat {
            group: long,
            member_id: "m".into(),
            member_epoch: 0,
            subscribed: Some(vec!["t".into()]),
            ..ShareHeartbeat::default()
        },
        &|_| None,
    );
    assert_eq!(joined, Err(ShareError::GroupIdTooLong(GROUP_ID_BYTES_MAX + 1)));
    assert!(o.share.list().is_empty());
}

#[test]
fn the_largest_alteration_fits_in_one_stored_change() {
    let change = ShareChange::Starts {
        group: "g".repeat(GROUP_ID_BYTES_MAX),
        starts: (0..OFFSETS_PARTITIONS_MAX as i32)
            .map(|p| (topic_hex(&[0xff; 16]), i32::MAX - p, i64::MAX))
            .collect(),
    };
    let bytes = serde_json::to_vec(&change).unwrap().len();
    assert!(
        bytes * 2 < crate::changelog::RECORD_BYTES_MAX,
        "{bytes} bytes for the largest alteration"
    );
}
