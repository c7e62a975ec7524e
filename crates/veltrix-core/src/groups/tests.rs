//! The coordinator's state machine and offsets store, with simulated storage and
//! time: nothing sleeps, every timeout is a clock advance and a tick.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::oneshot::Receiver;
use tokio::sync::oneshot::error::TryRecvError;
use veltrix_log::Env;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;

struct World {
    storage: SimStorage,
    clock: Arc<SimClock>,
    config: GroupConfig,
}

impl World {
    fn new() -> World {
        World {
            storage: SimStorage::new(),
            clock: Arc::new(SimClock::new(1_700_000_000_000)),
            config: GroupConfig::default(),
        }
    }

    fn open(&self) -> GroupCoordinator {
        let env = Env::new(Arc::new(self.storage.clone()), self.clock.clone(), 16);
        GroupCoordinator::open(env, Path::new("/data/groups"), self.config).unwrap()
    }

    fn advance(&self, c: &GroupCoordinator, ms: u64) {
        self.clock.advance(ms);
        c.tick(&|_| None);
    }
}

pub(super) fn join_request(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| ((*p).to_owned(), Bytes::from(format!("subscription-{p}"))))
            .collect(),
        require_known_member_id: false,
    }
}

/// The answer if it has come, `None` if it is still pending.
fn ready<T>(rx: &mut Receiver<Result<T, GroupError>>) -> Option<Result<T, GroupError>> {
    match rx.try_recv() {
        Ok(v) => Some(v),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Closed) => panic!("answer dropped"),
    }
}

fn committer(member_id: &str, generation: i32) -> Committer {
    Committer {
        member_id: member_id.into(),
        instance_id: None,
        generation,
    }
}

fn commit_one(c: &GroupCoordinator, who: &Committer, offset: i64) -> Result<(), GroupError> {
    let o = OffsetCommit {
        topic: "t".into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    };
    c.commit("g", who, vec![o], |_, _| true).remove(0)
}

/// A heartbeat of `member_id` in group `g` at generation 1.
fn heartbeat(c: &GroupCoordinator, member_id: &str) -> Result<(), GroupError> {
    c.heartbeat("g", &committer(member_id, 1))
}

/// One member joins an empty group, waits out the initial delay, syncs.
fn lone_member(w: &World, c: &GroupCoordinator) -> Joined {
    let mut rx = c.join(join_request("", &["range"]));
    assert!(ready(&mut rx).is_none(), "the first rebalance waits for more members");
    w.advance(c, 3_000);
    let joined = ready(&mut rx).unwrap().unwrap();
    let mut sync = c.sync(
        "g",
        &committer(&joined.member_id, joined.generation),
        vec![(joined.member_id.clone(), Bytes::from_static(b"all"))],
    );
    assert_eq!(ready(&mut sync).unwrap().unwrap(), Bytes::from_static(b"all"));
    joined
}

#[test]
fn a_lone_member_joins_after_the_initial_delay_and_becomes_leader() {
    let w = World::new();
    let c = w.open();
    let joined = lone_member(&w, &c);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.protocol, "range");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
    assert_eq!(heartbeat(&c, &joined.member_id), Ok(()));
}

#[test]
fn followers_wait_for_the_leaders_assignment() {
    let w = World::new();
    let c = w.open();
    let mut a = c.join(join_request("", &["range", "roundrobin"]));
    w.advance(&c, 1_000);
    let mut b = c.join(join_request("", &["roundrobin", "range"]));
    w.advance(&c, 2_000);
    let (a, b) = (ready(&mut a).unwrap().unwrap(), ready(&mut b).unwrap().unwrap());
    assert_eq!((a.generation, b.generation), (1, 1));
    let (leader, follower) = if a.leader == a.member_id { (a, b) } else { (b, a) };
    assert_eq!(leader.members.len(), 2, "the leader sees every member's metadata");
    assert!(follower.members.is_empty());
    // A tie between the two preferences goes to the first member's choice.
    assert_eq!(leader.protocol, "range");

    let mut follower_sync = c.sync("g", &committer(&follower.member_id, 1), vec![]);
    assert!(ready(&mut follower_sync).is_none());
    let assignments = vec![
        (leader.member_id.clone(), Bytes::from_static(b"p0")),
        (follower.member_id.clone(), Bytes::from_static(b"p1")),
    ];
    let mut leader_sync = c.sync("g", &committer(&leader.member_id, 1), assignments);
    assert_eq!(ready(&mut leader_sync).unwrap().unwrap(), Bytes::from_static(b"p0"));
    assert_eq!(ready(&mut follower_sync).unwrap().unwrap(), Bytes::from_static(b"p1"));
    let d = c.describe("g").unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Stable, 2));
}

#[test]
fn a_new_member_makes_everyone_rejoin_and_the_phase_ends_when_all_have() {
    let w = World::new();
    let c = w.open();
    let first = lone_member(&w, &c);
    let mut second = c.join(join_request("", &["range"]));
    assert_eq!(heartbeat(&c, &first.member_id), Err(GroupError::RebalanceInProgress));
    assert!(ready(&mut second).is_none());
    // No initial delay for a group with members: done as soon as all rejoined.
    let mut again = c.join(join_request(&first.member_id, &["range"]));
    let (a, b) = (
        ready(&mut again).unwrap().unwrap(),
        ready(&mut second).unwrap().unwrap(),
    );
    assert_eq!((a.generation, b.generation), (2, 2));
    assert_eq!(a.leader, first.member_id, "the leader stays the leader");
}

/// `member_id`'s JoinGroup with a changed subscription: the same protocol, new
/// metadata (what a consumer sends after subscribing to other topics).
fn resubscribe(member_id: &str, subscription: &'static [u8]) -> JoinRequest {
    let mut r = join_request(member_id, &["range"]);
    r.protocols = vec![("range".into(), Bytes::from_static(subscription))];
    r
}

/// Three members join an empty group together and sync: Stable, generation 1.
fn three_members(w: &World, c: &GroupCoordinator) -> Vec<Joined> {
    let mut rxs: Vec<_> = (0..3).map(|_| c.join(join_request("", &["range"]))).collect();
    w.advance(c, 3_000);
    let joined: Vec<Joined> = rxs.iter_mut().map(|rx| ready(rx).unwrap().unwrap()).collect();
    let leader = joined.iter().find(|j| j.leader == j.member_id).unwrap();
    let assignments = joined.iter().map(|j| (j.member_id.clone(), Bytes::new())).collect();
    drop(c.sync("g", &committer(&leader.member_id, 1), assignments));
    let d = c.describe("g").unwrap();
    assert_eq!((d.state, d.generation, d.members.len()), (GroupState::Stable, 1, 3));
    joined
}

/// The metadata the leader was given for `member_id`.
fn metadata_of(leader: &Joined, member_id: &str) -> Bytes {
    let m = leader.members.iter().find(|m| m.member_id == member_id);
    m.unwrap_or_else(|| panic!("{member_id} is not in the leader's answer"))
        .metadata
        .clone()
}

// The clock does not move in the tests below unless they say so: a join phase
// that every member has joined ends then and there, not at the rebalance
// timeout (Kafka's `hasAllMembersJoined`).

#[test]
fn a_lone_member_changing_its_subscription_gets_a_new_generation_at_once() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    let mut rx = c.join(resubscribe(&m.member_id, b"topics a,b"));
    let j = ready(&mut rx)
        .expect("answered at once, not after the rebalance timeout")
        .unwrap();
    assert_eq!((j.generation, j.leader.as_str()), (2, m.member_id.as_str()));
    assert_eq!(metadata_of(&j, &m.member_id), Bytes::from_static(b"topics a,b"));
    let mut sync = c.sync(
        "g",
        &committer(&m.member_id, 2),
        vec![(m.member_id.clone(), Bytes::from_static(b"a+b"))],
    );
    assert_eq!(ready(&mut sync).unwrap().unwrap(), Bytes::from_static(b"a+b"));
    assert_eq!(c.describe("g").unwrap().state, GroupState::Stable);
}

#[test]
fn a_lone_leader_rejoining_a_stable_group_unchanged_gets_a_new_generation_at_once() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    // The leader's rejoin is a rebalance (its topics may have grown), as in Kafka.
    let mut rx = c.join(join_request(&m.member_id, &["range"]));
    assert_eq!(ready(&mut rx).expect("answered at once").unwrap().generation, 2);
}

#[test]
fn a_lone_member_rejoining_before_its_sync_gets_a_new_generation_only_if_changed() {
    let w = World::new();
    let c = w.open();
    let mut rx = c.join(join_request("", &["range"]));
    w.advance(&c, 3_000);
    let m = ready(&mut rx).unwrap().unwrap();
    assert_eq!(c.describe("g").unwrap().state, GroupState::CompletingRebalance);
    // Unchanged: the answer it may have missed, for the current generation.
    let mut rx = c.join(join_request(&m.member_id, &["range"]));
    assert_eq!(ready(&mut rx).unwrap().unwrap().generation, 1);
    // Changed: a new generation, at once.
    let mut rx = c.join(resubscribe(&m.member_id, b"topics a,b"));
    let j = ready(&mut rx).expect("answered at once").unwrap();
    assert_eq!(j.generation, 2);
    assert_eq!(metadata_of(&j, &m.member_id), Bytes::from_static(b"topics a,b"));
}

#[test]
fn a_lone_static_member_changing_its_subscription_gets_a_new_generation_at_once() {
    let w = World::new();
    let c = w.open();
    let mut r = join_request("", &["range"]);
    r.group_instance_id = Some("pod-1".into());
    let mut rx = c.join(r);
    w.advance(&c, 3_000);
    let first = ready(&mut rx).unwrap().unwrap();
    let mut with_instance = committer(&first.member_id, 1);
    with_instance.instance_id = Some("pod-1".into());
    drop(c.sync("g", &with_instance, vec![]));
    // With its member id...
    let mut again = resubscribe(&first.member_id, b"topics a,b");
    again.group_instance_id = Some("pod-1".into());
    let mut rx = c.join(again.clone());
    assert_eq!(ready(&mut rx).expect("answered at once").unwrap().generation, 2);
    drop(c.sync("g", &committer(&first.member_id, 2), vec![]));
    // ...and restarted without one.
    again.member_id = String::new();
    again.protocols = vec![("range".into(), Bytes::from_static(b"topics a,b,c"))];
    let mut rx = c.join(again);
    let j = ready(&mut rx).expect("answered at once").unwrap();
    assert_eq!(j.generation, 3);
    assert_ne!(j.member_id, first.member_id);
}

#[test]
fn one_of_three_changing_its_subscription_rebalances_once_the_others_rejoin() {
    let w = World::new();
    let c = w.open();
    let members = three_members(&w, &c);
    // A follower changes its subscription; the leader is the first to rejoin
    // in the variant after this one.
    let changer = members.iter().find(|j| j.leader != j.member_id).unwrap();
    let mut answers = vec![c.join(resubscribe(&changer.member_id, b"topics a,b"))];
    assert!(ready(&mut answers[0]).is_none(), "the others have not rejoined yet");
    for other in members.iter().filter(|j| j.member_id != changer.member_id) {
        assert_eq!(heartbeat(&c, &other.member_id), Err(GroupError::RebalanceInProgress));
        answers.push(c.join(join_request(&other.member_id, &["range"])));
    }
    let joined: Vec<Joined> = answers
        .iter_mut()
        .map(|rx| ready(rx).expect("answered once all have rejoined").unwrap())
        .collect();
    assert!(joined.iter().all(|j| j.generation == 2));
    let leader = joined.iter().find(|j| j.leader == j.member_id).unwrap();
    assert_eq!(leader.member_id, members[0].leader, "the leader stays the leader");
    assert_eq!(leader.members.len(), 3);
    assert_eq!(
        metadata_of(leader, &changer.member_id),
        Bytes::from_static(b"topics a,b")
    );
}

#[test]
fn one_of_three_leading_the_change_rebalances_once_the_others_rejoin() {
    let w = World::new();
    let c = w.open();
    let members = three_members(&w, &c);
    let leader = members.iter().find(|j| j.leader == j.member_id).unwrap();
    let mut answers = vec![c.join(resubscribe(&leader.member_id, b"topics a,b"))];
    let others: Vec<&Joined> = members.iter().filter(|j| j.member_id != leader.member_id).collect();
    answers.push(c.join(join_request(&others[0].member_id, &["range"])));
    assert!(
        answers.iter_mut().all(|rx| ready(rx).is_none()),
        "one member is still to rejoin"
    );
    answers.push(c.join(join_request(&others[1].member_id, &["range"])));
    assert!(
        answers
            .iter_mut()
            .all(|rx| ready(rx).expect("answered at once").unwrap().generation == 2)
    );
}

#[test]
fn a_member_that_does_not_rejoin_holds_the_join_open_until_the_timeout_removes_it() {
    let w = World::new();
    let c = w.open();
    let members = three_members(&w, &c);
    let (changer, follower, laggard) = (&members[0], &members[1], &members[2]);
    let mut answers = [
        c.join(resubscribe(&changer.member_id, b"topics a,b")),
        c.join(join_request(&follower.member_id, &["range"])),
    ];
    // The laggard keeps its session alive (heartbeats, told to rejoin) but
    // never rejoins: the two others wait for it until the rebalance timeout.
    for _ in 0..((REBALANCE_MS / 2_000) - 1) {
        w.advance(&c, 2_000);
        assert_eq!(heartbeat(&c, &laggard.member_id), Err(GroupError::RebalanceInProgress));
        assert!(answers.iter_mut().all(|rx| ready(rx).is_none()));
    }
    w.advance(&c, 2_000);
    let joined: Vec<Joined> = answers.iter_mut().map(|rx| ready(rx).unwrap().unwrap()).collect();
    assert!(joined.iter().all(|j| j.generation == 2));
    let leader = joined.iter().find(|j| j.leader == j.member_id).unwrap();
    let mut ids: Vec<&str> = leader.members.iter().map(|m| m.member_id.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![changer.member_id.as_str(), follower.member_id.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want, "the laggard is removed");
    assert_eq!(heartbeat(&c, &laggard.member_id), Err(GroupError::UnknownMemberId));
}

#[test]
fn a_member_changing_its_subscription_after_a_newcomer_joined_completes_the_join() {
    let w = World::new();
    let c = w.open();
    let first = lone_member(&w, &c);
    let mut newcomer = c.join(join_request("", &["range"]));
    assert!(ready(&mut newcomer).is_none());
    let mut changed = c.join(resubscribe(&first.member_id, b"topics a,b"));
    let (a, b) = (
        ready(&mut changed).expect("answered at once").unwrap(),
        ready(&mut newcomer).expect("answered at once").unwrap(),
    );
    assert_eq!((a.generation, b.generation), (2, 2));
    assert_eq!(metadata_of(&a, &first.member_id), Bytes::from_static(b"topics a,b"));
}

#[test]
fn only_a_group_that_was_empty_waits_out_the_initial_delay() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    assert_eq!(c.leave("g", &[(m.member_id.clone(), None)]).unwrap(), vec![Ok(())]);
    assert_eq!(c.describe("g").unwrap().state, GroupState::Empty);
    let mut rx = c.join(join_request("", &["range"]));
    w.advance(&c, 2_999);
    assert!(ready(&mut rx).is_none(), "empty again: the initial delay applies");
    w.advance(&c, 1);
    let j = ready(&mut rx).unwrap().unwrap();
    drop(c.sync("g", &committer(&j.member_id, j.generation), vec![]));
    // Not empty: a rejoin goes through at once.
    let mut rx = c.join(resubscribe(&j.member_id, b"topics a,b"));
    assert_eq!(
        ready(&mut rx).expect("answered at once").unwrap().generation,
        j.generation + 1
    );
}

#[test]
fn a_silent_member_is_removed_after_its_session_and_the_rest_rebalance() {
    let w = World::new();
    let c = w.open();
    let mut a = c.join(join_request("", &["range"]));
    let mut b = c.join(join_request("", &["range"]));
    w.advance(&c, 3_000);
    let (a, b) = (ready(&mut a).unwrap().unwrap(), ready(&mut b).unwrap().unwrap());
    let leader = if a.leader == a.member_id { &a } else { &b };
    drop(c.sync("g", &committer(&leader.member_id, 1), vec![]));
    // Only `a` heartbeats; `b` goes silent.
    for _ in 0..4 {
        w.advance(&c, 3_000);
        let hb = heartbeat(&c, &a.member_id);
        if hb.is_err() {
            assert_eq!(hb, Err(GroupError::RebalanceInProgress));
            break;
        }
    }
    assert_eq!(heartbeat(&c, &b.member_id), Err(GroupError::UnknownMemberId));
    let mut rejoin = c.join(join_request(&a.member_id, &["range"]));
    let rejoined = ready(&mut rejoin).unwrap().unwrap();
    assert_eq!(rejoined.generation, 2);
    assert_eq!(rejoined.members.len(), 1);
}

#[test]
fn a_member_that_does_not_rejoin_in_time_is_dropped_at_the_rebalance_deadline() {
    let w = World::new();
    let c = w.open();
    let first = lone_member(&w, &c);
    let mut second = c.join(join_request("", &["range"]));
    // `first` keeps heartbeating (told to rejoin) but never rejoins.
    for _ in 0..((REBALANCE_MS / 2_000) - 1) {
        w.advance(&c, 2_000);
        let _ = heartbeat(&c, &first.member_id);
        assert!(ready(&mut second).is_none());
    }
    w.advance(&c, 2_000);
    let joined = ready(&mut second).unwrap().unwrap();
    assert_eq!((joined.generation, joined.members.len()), (2, 1));
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(heartbeat(&c, &first.member_id), Err(GroupError::UnknownMemberId));
}

#[test]
fn commits_are_fenced_by_generation_and_membership() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    assert_eq!(commit_one(&c, &committer(&m.member_id, 1), 10), Ok(()));
    assert_eq!(
        commit_one(&c, &committer(&m.member_id, 0), 11),
        Err(GroupError::IllegalGeneration { got: 0, current: 1 })
    );
    assert_eq!(
        commit_one(&c, &committer("ghost", 1), 11),
        Err(GroupError::UnknownMemberId)
    );
    // A consumer without the group protocol may not write a group in use.
    assert!(commit_one(&c, &committer("", -1), 11).is_err());
    let fetched = c.fetch_offsets("g", Some(&[("t".into(), 0)]));
    assert_eq!(fetched[0].committed.as_ref().unwrap().offset, 10);
    // During the sync phase commits wait for the new generation.
    let _second = c.join(join_request("", &["range"]));
    drop(c.join(join_request(&m.member_id, &["range"])));
    assert_eq!(c.describe("g").unwrap().state, GroupState::CompletingRebalance);
    assert_eq!(
        commit_one(&c, &committer(&m.member_id, 2), 12),
        Err(GroupError::RebalanceInProgress)
    );
}

#[test]
fn a_member_may_commit_while_the_group_prepares_a_rebalance() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    let _newcomer = c.join(join_request("", &["range"]));
    assert_eq!(c.describe("g").unwrap().state, GroupState::PreparingRebalance);
    assert_eq!(commit_one(&c, &committer(&m.member_id, 1), 42), Ok(()));
}

#[test]
fn committed_offsets_survive_power_loss_and_never_go_back() {
    let w = World::new();
    let c = w.open();
    let standalone = committer("", -1);
    for offset in [5, 9, 14] {
        assert_eq!(commit_one(&c, &standalone, offset), Ok(()));
    }
    drop(c);
    w.storage.crash(true, 7);
    let c = w.open();
    assert_eq!(c.fetch_offsets("g", None)[0].committed.as_ref().unwrap().offset, 14);
    assert_eq!(
        c.list()[0].group_id,
        "g",
        "a group with offsets is known after a restart"
    );
}

#[test]
fn new_members_must_rejoin_with_their_assigned_id() {
    let w = World::new();
    let c = w.open();
    let mut r = join_request("", &["range"]);
    r.require_known_member_id = true;
    let mut rx = c.join(r.clone());
    let Some(Err(GroupError::MemberIdRequired(id))) = ready(&mut rx) else {
        panic!("expected MEMBER_ID_REQUIRED");
    };
    r.member_id = id.clone();
    let mut rx = c.join(r);
    w.advance(&c, 3_000);
    assert_eq!(ready(&mut rx).unwrap().unwrap().member_id, id);
    // An id handed out but never used is forgotten after the session timeout.
    let mut r = join_request("", &["range"]);
    r.require_known_member_id = true;
    let mut rx = c.join(r.clone());
    let Some(Err(GroupError::MemberIdRequired(late))) = ready(&mut rx) else {
        panic!("expected MEMBER_ID_REQUIRED");
    };
    w.advance(&c, u64::try_from(SESSION_MS).unwrap());
    r.member_id = late;
    assert_eq!(ready(&mut c.join(r)).unwrap(), Err(GroupError::UnknownMemberId));
}

#[test]
fn a_static_member_restarting_gets_its_assignment_back_without_a_rebalance() {
    let w = World::new();
    let c = w.open();
    let mut r = join_request("", &["range"]);
    r.group_instance_id = Some("pod-1".into());
    let mut rx = c.join(r.clone());
    w.advance(&c, 3_000);
    let first = ready(&mut rx).unwrap().unwrap();
    drop(c.sync(
        "g",
        &committer(&first.member_id, 1),
        vec![(first.member_id.clone(), Bytes::from_static(b"mine"))],
    ));
    // The process restarts: same instance id, no member id.
    let mut rx = c.join(r);
    let again = ready(&mut rx).unwrap().unwrap();
    assert_ne!(again.member_id, first.member_id);
    assert_eq!(again.generation, 1, "no rebalance");
    let mut with_instance = committer(&again.member_id, 1);
    with_instance.instance_id = Some("pod-1".into());
    let mut sync = c.sync("g", &with_instance, vec![]);
    assert_eq!(ready(&mut sync).unwrap().unwrap(), Bytes::from_static(b"mine"));
    // The old incarnation is fenced.
    let mut old = committer(&first.member_id, 1);
    old.instance_id = Some("pod-1".into());
    assert_eq!(c.heartbeat("g", &old), Err(GroupError::FencedInstanceId));
}

#[test]
fn leaving_rebalances_the_rest_and_the_last_one_out_empties_the_group() {
    let w = World::new();
    let c = w.open();
    let m = lone_member(&w, &c);
    assert_eq!(c.leave("g", &[(m.member_id.clone(), None)]).unwrap(), vec![Ok(())]);
    let d = c.describe("g").unwrap();
    assert_eq!((d.state, d.members.len()), (GroupState::Empty, 0));
    assert_eq!(
        c.leave("g", &[(m.member_id.clone(), None)]).unwrap(),
        vec![Err(GroupError::UnknownMemberId)]
    );
    assert_eq!(c.delete_group("g"), Ok(()));
    assert_eq!(c.delete_group("g"), Err(GroupError::GroupIdNotFound));
}

#[test]
fn inconsistent_protocols_and_bad_session_timeouts_are_refused() {
    let w = World::new();
    let c = w.open();
    let _m = lone_member(&w, &c);
    let mut other = join_request("", &["sticky"]);
    assert_eq!(
        ready(&mut c.join(other.clone())).unwrap(),
        Err(GroupError::InconsistentGroupProtocol)
    );
    other.protocols = vec![("range".into(), Bytes::new())];
    other.session_timeout_ms = 1_000;
    assert!(matches!(
        ready(&mut c.join(other)).unwrap(),
        Err(GroupError::InvalidSessionTimeout { got: 1_000, .. })
    ));
    let mut empty = join_request("", &["range"]);
    empty.group_id = String::new();
    assert_eq!(ready(&mut c.join(empty)).unwrap(), Err(GroupError::InvalidGroupId));
}

/// Members join and leave in a random order, then stop churning: the group
/// settles into one stable generation holding exactly the members left (or is
/// empty if none is).
#[test]
fn rapid_joins_and_leaves_converge_to_a_stable_generation() {
    use rand::{Rng, SeedableRng};
    for seed in 0..30u64 {
        let w = World::new();
        let c = w.open();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut members: Vec<String> = Vec::new();
        let mut pending: Vec<Receiver<Result<Joined, GroupError>>> = Vec::new();
        for _ in 0..30 {
            if members.is_empty() || rng.random_bool(0.6) {
                let mut r = join_request("", &["range"]);
                r.require_known_member_id = true;
                let mut rx = c.join(r.clone());
                let Some(Err(GroupError::MemberIdRequired(id))) = ready(&mut rx) else {
                    panic!("expected MEMBER_ID_REQUIRED");
                };
                r.member_id = id.clone();
                pending.push(c.join(r));
                members.push(id);
            } else {
                let gone = members.remove(rng.random_range(0..members.len()));
                let _ = c.leave("g", &[(gone, None)]);
            }
            w.advance(&c, rng.random_range(0..500));
        }
        // Everyone still here keeps (re)joining, and the leader syncing, until
        // the group is stable.
        let mut generation = None;
        for _round in 0..20 {
            w.advance(&c, 1_000);
            let d = c.describe("g").unwrap();
            let settled = if members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            if d.state == settled {
                generation = Some(d.generation);
                let mut ids: Vec<String> = d.members.iter().map(|m| m.member_id.clone()).collect();
                ids.sort();
                let mut want = members.clone();
                want.sort();
                assert_eq!(ids, want, "seed {seed}: the stable group is exactly who is left");
                break;
            }
            let mut answers: Vec<_> = members.iter().map(|id| c.join(join_request(id, &["range"]))).collect();
            w.advance(&c, 3_000);
            let joined: Vec<Joined> = answers.iter_mut().filter_map(ready).filter_map(Result::ok).collect();
            if let Some(j) = joined.iter().find(|j| j.leader == j.member_id) {
                drop(c.sync("g", &committer(&j.leader, j.generation), vec![]));
            }
        }
        let generation = generation.unwrap_or_else(|| panic!("seed {seed}: never became stable"));
        for id in &members {
            assert_eq!(c.heartbeat("g", &committer(id, generation)), Ok(()), "seed {seed}");
        }
        drop(pending);
    }
}

#[test]
fn the_offsets_log_is_compacted_and_replays_to_the_same_state() {
    let w = World::new();
    let c = w.open();
    let standalone = committer("", -1);
    for round in 0..200 {
        let offsets = (0..50)
            .map(|p| OffsetCommit {
                topic: format!("topic-{}", p % 5),
                partition: p,
                offset: i64::from(round * 1000 + p),
                leader_epoch: -1,
                metadata: "m".repeat(100),
            })
            .collect();
        assert!(
            c.commit("g", &standalone, offsets, |_, _| true)
                .iter()
                .all(Result::is_ok)
        );
    }
    let before = c.fetch_offsets("g", None);
    c.offsets.compact(c.now_ms()).unwrap();
    assert!(c.offsets.log().log_start() > 0);
    assert_eq!(c.fetch_offsets("g", None), before);
    // Commits after the snapshot still win over it after a replay.
    assert_eq!(commit_one(&c, &standalone, 7), Ok(()));
    drop(c);
    w.storage.crash(false, 1);
    let c = w.open();
    let after = c.fetch_offsets("g", None);
    assert_eq!(after.len(), before.len() + 1, "the 50 partitions and t-0");
    let t0 = after.iter().find(|c| c.topic == "t" && c.partition == 0);
    assert_eq!(t0.unwrap().committed.as_ref().unwrap().offset, 7);
}

#[test]
fn offsets_of_a_group_empty_past_retention_are_deleted() {
    let mut w = World::new();
    w.config.offsets_retention_ms = 60_000;
    let c = w.open();
    assert_eq!(commit_one(&c, &committer("", -1), 3), Ok(()));
    w.advance(&c, 59_000);
    assert_eq!(c.fetch_offsets("g", None).len(), 1);
    w.advance(&c, 1_000);
    assert!(c.fetch_offsets("g", None).is_empty());
    assert!(c.list().is_empty());
}

#[test]
fn a_restart_does_not_renew_the_offsets_retention_of_an_abandoned_group() {
    let mut w = World::new();
    w.config.offsets_retention_ms = 60_000;
    let c = w.open();
    assert_eq!(commit_one(&c, &committer("", -1), 3), Ok(()));
    w.clock.advance(50_000);
    drop(c);
    w.storage.crash(false, 2);
    let c = w.open();
    w.advance(&c, 9_000);
    assert_eq!(c.fetch_offsets("g", None).len(), 1);
    w.advance(&c, 1_000);
    assert!(
        c.fetch_offsets("g", None).is_empty(),
        "60 s after the last commit, restart or not"
    );
}

#[test]
fn a_deleted_topics_offsets_go_and_stay_gone_after_a_restart() {
    let w = World::new();
    let c = w.open();
    let standalone = committer("", -1);
    let offsets = ["t", "u"]
        .iter()
        .map(|topic| OffsetCommit {
            topic: (*topic).into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
        })
        .collect();
    assert!(
        c.commit("g", &standalone, offsets, |_, _| true)
            .iter()
            .all(Result::is_ok)
    );
    c.delete_topic_offsets("t").unwrap();
    let left: Vec<String> = c.fetch_offsets("g", None).into_iter().map(|c| c.topic).collect();
    assert_eq!(left, vec!["u".to_owned()]);
    drop(c);
    w.storage.crash(true, 4);
    let c = w.open();
    assert_eq!(c.topics_with_offsets(), vec!["u".to_owned()]);
}

#[test]
fn a_group_being_deleted_turns_joins_away_until_it_is_gone() {
    let w = World::new();
    let c = w.open();
    assert_eq!(commit_one(&c, &committer("", -1), 3), Ok(()));
    assert_eq!(c.delete_group("g"), Ok(()));
    assert!(c.fetch_offsets("g", None).is_empty());
    // Gone entirely: a new join starts a fresh group.
    let mut rx = c.join(join_request("", &["range"]));
    w.advance(&c, 3_000);
    assert_eq!(ready(&mut rx).unwrap().unwrap().generation, 1);
}

fn offset(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    }
}

fn committed_at(c: &GroupCoordinator, topic: &str, partition: i32) -> Option<i64> {
    c.fetch_offsets("g", Some(&[(topic.to_owned(), partition)]))[0]
        .committed
        .as_ref()
        .map(|c| c.offset)
}

#[test]
fn transactional_offsets_wait_for_the_transaction_and_an_abort_drops_them() {
    let w = World::new();
    let c = w.open();
    let anyone = committer("", -1);
    assert_eq!(commit_one(&c, &anyone, 5), Ok(()));
    let outcomes = c.txn_commit("g", 42, &anyone, vec![offset("t", 0, 9), offset("t", 1, 3)], |_, _| {
        true
    });
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(committed_at(&c, "t", 0), Some(5), "pending: not visible yet");
    assert_eq!(committed_at(&c, "t", 1), None);
    let unstable: Vec<_> = c.unstable_partitions("g").into_iter().collect();
    assert_eq!(unstable, [("t".to_owned(), 0), ("t".to_owned(), 1)]);
    // Another producer's transaction is apart.
    c.txn_commit("g", 43, &anyone, vec![offset("t", 0, 100)], |_, _| true);
    c.end_transaction("g", 43, false).unwrap();
    assert_eq!(committed_at(&c, "t", 0), Some(5), "an abort drops its offsets");
    c.end_transaction("g", 42, true).unwrap();
    assert_eq!(committed_at(&c, "t", 0), Some(9));
    assert_eq!(committed_at(&c, "t", 1), Some(3));
    assert!(c.unstable_partitions("g").is_empty());
    // Ending again (a completion written twice) changes nothing.
    c.end_transaction("g", 42, true).unwrap();
    assert_eq!(committed_at(&c, "t", 0), Some(9));
}

#[test]
fn transactional_offsets_are_checked_like_commits() {
    let w = World::new();
    let c = w.open();
    let outcomes = c.txn_commit(
        "g",
        42,
        &committer("", -1),
        vec![offset("t", 0, 1), offset("gone", 0, 1)],
        |t, _| t == "t",
    );
    assert_eq!(outcomes[0], Ok(()));
    assert!(matches!(outcomes[1], Err(GroupError::UnknownTopicOrPartition { .. })));
    // A member of a group with members must be one of them.
    let joined = lone_member(&w, &c);
    let stranger = c.txn_commit(
        "g",
        42,
        &committer("nobody", joined.generation),
        vec![offset("t", 0, 2)],
        |_, _| true,
    );
    assert!(stranger[0].is_err(), "{stranger:?}");
    let member = c.txn_commit(
        "g",
        42,
        &committer(&joined.member_id, joined.generation),
        vec![offset("t", 0, 2)],
        |_, _| true,
    );
    assert_eq!(member[0], Ok(()));
    // Without member and generation (a producer outside the group) it is
    // not checked, as Kafka does.
    assert_eq!(
        c.txn_commit("g", 42, &committer("", -1), vec![offset("t", 0, 4)], |_, _| true)[0],
        Ok(())
    );
    c.end_transaction("g", 42, true).unwrap();
    assert_eq!(committed_at(&c, "t", 0), Some(4));
}

#[test]
fn pending_transactional_offsets_survive_a_crash_and_a_compaction() {
    let w = World::new();
    let c = w.open();
    let anyone = committer("", -1);
    c.txn_commit("g", 42, &anyone, vec![offset("t", 0, 9)], |_, _| true);
    c.txn_commit("g", 44, &anyone, vec![offset("t", 2, 1)], |_, _| true);
    drop(c);
    w.storage.crash(true, 3);
    let c = w.open();
    assert_eq!(c.unstable_partitions("g").len(), 2, "pending offsets are durable");
    c.offsets.compact(c.now_ms()).unwrap();
    drop(c);
    w.storage.crash(true, 4);
    let c = w.open();
    assert_eq!(c.unstable_partitions("g").len(), 2, "and in the snapshot");
    c.end_transaction("g", 42, true).unwrap();
    c.end_transaction("g", 44, false).unwrap();
    drop(c);
    w.storage.crash(true, 5);
    let c = w.open();
    assert_eq!(committed_at(&c, "t", 0), Some(9));
    assert_eq!(committed_at(&c, "t", 2), None);
    assert!(c.unstable_partitions("g").is_empty());
}
