//! The consumer protocol (KIP-848) with simulated time: joins, the two-step
//! hand-over of partitions, fencing, sessions, static members, and random
//! churn checked against the one property that matters — no partition is ever
//! owned by two members at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use veltrix_log::Env;
use veltrix_log::sim::{SimClock, SimStorage};

use super::consumer::{assign_range, assign_uniform};
use super::*;

const T1: [u8; 16] = [1; 16];
const T2: [u8; 16] = [2; 16];

struct World {
    storage: SimStorage,
    clock: Arc<SimClock>,
    config: GroupConfig,
    /// Topic name to (id, partitions).
    topics: BTreeMap<String, TopicMeta>,
}

impl World {
    fn new() -> World {
        let mut topics = BTreeMap::new();
        topics.insert("t".to_owned(), TopicMeta { id: T1, partitions: 6 });
        topics.insert("u".to_owned(), TopicMeta { id: T2, partitions: 2 });
        World {
            storage: SimStorage::new(),
            clock: Arc::new(SimClock::new(1_700_000_000_000)),
            config: GroupConfig::default(),
            topics,
        }
    }

    fn open(&self) -> GroupCoordinator {
        let env = Env::new(Arc::new(self.storage.clone()), self.clock.clone(), 16);
        GroupCoordinator::open(env, Path::new("/data/groups"), self.config).unwrap()
    }

    fn lookup(&self) -> impl Fn(&str) -> Option<TopicMeta> + '_ {
        |name| self.topics.get(name).cloned()
    }

    fn advance(&self, c: &GroupCoordinator, ms: u64) {
        self.clock.advance(ms);
        c.tick(&self.lookup());
    }
}

/// A consumer as librdkafka runs one: it owns what the last assignment said,
/// and gives up revoked partitions on its next heartbeat.
#[derive(Debug, Clone)]
struct Client {
    member_id: String,
    instance_id: Option<String>,
    epoch: i32,
    owned: Assignment,
    topics: Vec<String>,
}

impl Client {
    fn new(member_id: &str, topics: &[&str]) -> Client {
        Client {
            member_id: member_id.to_owned(),
            instance_id: None,
            epoch: 0,
            owned: Assignment::new(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    fn request(&self) -> ConsumerHeartbeat {
        ConsumerHeartbeat {
            group_id: "g".into(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance_id.clone(),
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(self.topics.clone()),
            owned: Some(
                self.owned
                    .iter()
                    .map(|(t, ps)| (*t, ps.iter().copied().collect()))
                    .collect(),
            ),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            ..ConsumerHeartbeat::default()
        }
    }

    /// A client that has sent its first heartbeat and applied the answer.
    fn joined(w: &World, c: &GroupCoordinator, member_id: &str, topics: &[&str]) -> Client {
        let mut client = Client::new(member_id, topics);
        client.beat(w, c).unwrap();
        client
    }

    /// One heartbeat; the client applies the answer.
    fn beat(&mut self, w: &World, c: &GroupCoordinator) -> Result<ConsumerHeartbeatReply, GroupError> {
        let reply = c.consumer_heartbeat(self.request(), &w.lookup())?;
        self.member_id = reply.member_id.clone();
        self.epoch = reply.member_epoch;
        if let Some(a) = &reply.assignment {
            self.owned = a.clone();
        }
        Ok(reply)
    }

    fn count(&self) -> usize {
        self.owned.values().map(BTreeSet::len).sum()
    }
}

/// No partition is owned by two clients.
fn assert_exclusive(clients: &[&Client]) {
    let mut seen: BTreeMap<([u8; 16], i32), &str> = BTreeMap::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                if let Some(other) = seen.insert((*t, *p), &c.member_id) {
                    panic!("partition {t:?}/{p} owned by {other} and {}", c.member_id);
                }
            }
        }
    }
}

/// Heartbeats every client `rounds` times, checking exclusivity after each.
fn settle(w: &World, c: &GroupCoordinator, clients: &mut [Client], rounds: usize) {
    for _ in 0..rounds {
        for i in 0..clients.len() {
            clients[i].beat(w, c).unwrap();
            assert_exclusive(&clients.iter().collect::<Vec<_>>());
        }
    }
}

#[test]
fn a_lone_member_gets_every_partition_at_once() {
    let w = World::new();
    let c = w.open();
    let mut a = Client::new("a", &["t"]);
    let reply = a.beat(&w, &c).unwrap();
    assert!(reply.member_epoch > 0);
    assert_eq!(reply.heartbeat_interval_ms, 5_000);
    assert_eq!(a.count(), 6);
    let d = c.describe_consumer("g").unwrap();
    assert_eq!(
        (d.state, d.members.len(), d.assignor.as_str()),
        ("Stable", 1, "uniform")
    );
    // Nothing changed: the next heartbeat carries no assignment.
    assert_eq!(a.beat(&w, &c).unwrap().assignment, None);
}

#[test]
fn a_joining_member_gets_partitions_only_after_their_owner_gives_them_up() {
    let w = World::new();
    let c = w.open();
    let mut a = Client::joined(&w, &c, "a", &["t"]);
    let mut b = Client::joined(&w, &c, "b", &["t"]);
    assert_eq!(b.count(), 0, "every partition is still a's");
    assert_exclusive(&[&a, &b]);

    // a is told to give up three partitions; its epoch stays until it has.
    let epoch = a.epoch;
    a.beat(&w, &c).unwrap();
    assert_eq!((a.count(), a.epoch), (3, epoch));
    assert_eq!(c.describe_consumer("g").unwrap().state, "Reconciling");
    // Its next heartbeat reports them gone: it moves to the new epoch.
    a.beat(&w, &c).unwrap();
    assert!(a.epoch > epoch);
    b.beat(&w, &c).unwrap();
    assert_eq!((a.count(), b.count()), (3, 3));
    assert_exclusive(&[&a, &b]);
    assert_eq!(c.describe_consumer("g").unwrap().state, "Stable");
}

#[test]
fn stale_epochs_are_fenced_but_a_lost_answer_is_forgiven() {
    let w = World::new();
    let c = w.open();
    let mut a = Client::joined(&w, &c, "a", &["t"]);
    let _b = Client::joined(&w, &c, "b", &["t"]);
    a.beat(&w, &c).unwrap(); // revoke three
    let before = a.clone();
    a.beat(&w, &c).unwrap(); // new epoch; suppose this answer was lost
    assert!(a.epoch > before.epoch);
    // The previous epoch with a subset of the assignment is accepted.
    let mut lost = before.clone();
    let reply = lost.beat(&w, &c).unwrap();
    assert_eq!(reply.member_epoch, a.epoch);
    assert!(reply.assignment.is_some(), "the member is told where it stands");
    // A made-up epoch is fenced.
    let mut wrong = a.clone();
    wrong.epoch += 7;
    assert!(matches!(wrong.beat(&w, &c), Err(GroupError::FencedMemberEpoch { .. })));
    // An unknown member is unknown.
    let mut ghost = Client::new("ghost", &["t"]);
    ghost.epoch = 3;
    assert_eq!(ghost.beat(&w, &c).unwrap_err(), GroupError::UnknownMemberId);
}

#[test]
fn commits_need_the_members_current_epoch() {
    let w = World::new();
    let c = w.open();
    let a = Client::joined(&w, &c, "a", &["t"]);
    let commit = |member: &str, epoch: i32| {
        let o = OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
        };
        let who = Committer {
            member_id: member.into(),
            instance_id: None,
            generation: epoch,
        };
        c.commit("g", &who, vec![o], |_, _| true).remove(0)
    };
    assert_eq!(commit("a", a.epoch), Ok(()));
    assert_eq!(
        commit("a", a.epoch - 1),
        Err(GroupError::StaleMemberEpoch {
            got: a.epoch - 1,
            current: a.epoch
        })
    );
    assert_eq!(commit("nobody", a.epoch), Err(GroupError::UnknownMemberId));
    // A consumer with no group membership may not write into a live group.
    assert_eq!(commit("", -1), Err(GroupError::UnknownMemberId));
    assert_eq!(c.check_offset_fetch("g", "a", a.epoch), Ok(()));
    assert!(matches!(
        c.check_offset_fetch("g", "a", a.epoch + 1),
        Err(GroupError::StaleMemberEpoch { .. })
    ));
}

#[test]
fn a_silent_member_is_removed_after_the_session_timeout_and_its_partitions_move() {
    let w = World::new();
    let c = w.open();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    settle(&w, &c, &mut clients, 3);
    assert_eq!((clients[0].count(), clients[1].count()), (3, 3));
    // b falls silent; a keeps beating.
    for _ in 0..9 {
        w.advance(&c, 5_000);
        clients[0].beat(&w, &c).unwrap();
    }
    assert_eq!(
        clients[0].count(),
        6,
        "b's partitions moved to a once b's session expired"
    );
    assert_eq!(clients[1].beat(&w, &c).unwrap_err(), GroupError::UnknownMemberId);
}

#[test]
fn a_member_that_keeps_revoked_partitions_past_its_rebalance_timeout_is_fenced() {
    let w = World::new();
    let c = w.open();
    let mut a = Client::joined(&w, &c, "a", &["t"]);
    let mut b = Client::joined(&w, &c, "b", &["t"]);
    // a is asked to revoke but keeps reporting all six as owned.
    let all = a.owned.clone();
    a.beat(&w, &c).unwrap();
    for _ in 0..5 {
        a.owned = all.clone();
        w.advance(&c, 5_000);
        a.beat(&w, &c).unwrap();
        b.beat(&w, &c).unwrap();
        assert_eq!(b.count(), 0, "nothing moves to b while a holds on");
    }
    w.advance(&c, 5_001); // past the 30 s rebalance timeout
    b.beat(&w, &c).unwrap();
    assert_eq!(b.count(), 6);
    assert_eq!(a.beat(&w, &c).unwrap_err(), GroupError::UnknownMemberId);
}

#[test]
fn leaving_hands_the_partitions_over_and_the_last_one_out_empties_the_group() {
    let w = World::new();
    let c = w.open();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    settle(&w, &c, &mut clients, 3);
    let mut leave = clients[1].request();
    leave.member_epoch = -1;
    let reply = c.consumer_heartbeat(leave, &w.lookup()).unwrap();
    assert_eq!(reply.member_epoch, -1);
    clients[0].beat(&w, &c).unwrap();
    assert_eq!(clients[0].count(), 6);
    let mut leave = clients[0].request();
    leave.member_epoch = -1;
    c.consumer_heartbeat(leave, &w.lookup()).unwrap();
    let d = c.describe_consumer("g").unwrap();
    assert_eq!((d.state, d.members.len()), ("Empty", 0));
    assert_eq!(c.delete_group("g"), Ok(()));
}

#[test]
fn a_static_member_coming_back_gets_its_partitions_without_a_rebalance() {
    let w = World::new();
    let c = w.open();
    let mut a = Client::new("a", &["t"]);
    a.instance_id = Some("host-1".into());
    let mut b = Client::new("b", &["t"]);
    let mut clients = vec![a, b];
    settle(&w, &c, &mut clients, 3);
    [a, b] = [clients[0].clone(), clients[1].clone()];
    let epoch_before = c.describe_consumer("g").unwrap().group_epoch;
    let mut away = a.request();
    away.member_epoch = -2;
    assert_eq!(c.consumer_heartbeat(away, &w.lookup()).unwrap().member_epoch, -2);
    let mut back = Client::new("a2", &["t"]);
    back.instance_id = Some("host-1".into());
    let reply = back.beat(&w, &c).unwrap();
    assert_eq!(reply.member_epoch, a.epoch);
    assert_eq!(back.owned, a.owned, "the same partitions");
    assert!(
        b.beat(&w, &c).unwrap().assignment.is_none(),
        "and nothing moved for the others"
    );
    assert_eq!(
        c.describe_consumer("g").unwrap().group_epoch,
        epoch_before,
        "no rebalance"
    );
    // The old member id is fenced; a newcomer claiming host-1 while a2 holds it
    // is refused.
    assert_eq!(a.beat(&w, &c).unwrap_err(), GroupError::FencedInstanceId);
    let mut dup = Client::new("a3", &["t"]);
    dup.instance_id = Some("host-1".into());
    assert_eq!(dup.beat(&w, &c).unwrap_err(), GroupError::UnreleasedInstanceId);
}

#[test]
fn new_partitions_are_assigned_when_a_topic_grows() {
    let mut w = World::new();
    let c = w.open();
    let mut clients = vec![Client::new("a", &["t"]), Client::new("b", &["t"])];
    settle(&w, &c, &mut clients, 3);
    w.topics.get_mut("t").unwrap().partitions = 10;
    settle(&w, &c, &mut clients, 3);
    assert_eq!((clients[0].count(), clients[1].count()), (5, 5));
}

#[test]
fn the_protocols_do_not_share_a_live_group_but_an_empty_one_changes_kind() {
    let w = World::new();
    let c = w.open();
    let a = Client::joined(&w, &c, "a", &["t"]);
    let mut join = super::tests::join_request("", &["range"]);
    join.require_known_member_id = false;
    let mut rx = c.join(join.clone());
    assert_eq!(rx.try_recv().unwrap(), Err(GroupError::InconsistentGroupProtocol));
    assert!(matches!(c.describe("g"), Err(GroupError::WrongGroupType { .. })));
    let mut leave = a.request();
    leave.member_epoch = -1;
    c.consumer_heartbeat(leave, &w.lookup()).unwrap();
    // Empty now: a classic member may take it over, and then the consumer
    // protocol is the one turned away.
    let _pending = c.join(join);
    let mut b = Client::new("b", &["t"]);
    assert!(matches!(b.beat(&w, &c), Err(GroupError::WrongGroupType { .. })));
}

#[test]
fn bad_heartbeats_are_refused_with_a_reason() {
    let w = World::new();
    let c = w.open();
    let mut r = Client::new("a", &["t"]).request();
    r.server_assignor = Some("sticky".into());
    assert_eq!(
        c.consumer_heartbeat(r.clone(), &w.lookup()).unwrap_err(),
        GroupError::UnsupportedAssignor("sticky".into())
    );
    r.server_assignor = None;
    r.subscribed_topic_regex = Some("^t.*".into());
    assert!(matches!(
        c.consumer_heartbeat(r.clone(), &w.lookup()),
        Err(GroupError::InvalidRequest(_))
    ));
    r.subscribed_topic_regex = None;
    r.rebalance_timeout_ms = -1;
    assert!(matches!(
        c.consumer_heartbeat(r, &w.lookup()),
        Err(GroupError::InvalidRequest(_))
    ));
}

#[test]
fn members_may_ask_for_the_range_assignor() {
    let w = World::new();
    let c = w.open();
    let mut clients: Vec<Client> = ["a", "b"].iter().map(|id| Client::new(id, &["t", "u"])).collect();
    for cl in &mut clients {
        cl.beat(&w, &c).unwrap();
    }
    let mut ranged = clients.clone();
    for cl in &mut ranged {
        let mut r = cl.request();
        r.server_assignor = Some("range".into());
        let reply = c.consumer_heartbeat(r, &w.lookup()).unwrap();
        cl.epoch = reply.member_epoch;
        if let Some(a) = reply.assignment {
            cl.owned = a;
        }
    }
    settle(&w, &c, &mut ranged, 4);
    assert_eq!(c.describe_consumer("g").unwrap().assignor, "range");
    let expect_a: Assignment = [(T1, (0..3).collect()), (T2, [0].into())].into();
    assert_eq!(ranged[0].owned, expect_a);
}

#[test]
fn the_uniform_assignor_balances_and_keeps_what_it_can() {
    let subs: BTreeSet<String> = ["t".to_owned()].into();
    let meta: BTreeMap<String, TopicMeta> = [("t".to_owned(), TopicMeta { id: T1, partitions: 7 })].into();
    let three = [("a", &subs, None), ("b", &subs, None), ("c", &subs, None)];
    let first = assign_uniform(&three, &meta, &BTreeMap::new());
    let sizes: Vec<usize> = first.values().map(|a| a.values().map(BTreeSet::len).sum()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 7);
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
    // A fourth member takes partitions; nobody else loses more than needed.
    let four = [
        ("a", &subs, None),
        ("b", &subs, None),
        ("c", &subs, None),
        ("d", &subs, None),
    ];
    let second = assign_uniform(&four, &meta, &first);
    let kept: usize = ["a", "b", "c"]
        .iter()
        .map(|m| second[*m][&T1].intersection(&first[*m][&T1]).count())
        .sum();
    // 3+2+2 becomes 2+2+2+1: one partition moves, from the member with three.
    assert_eq!(kept, 6, "only the partition d needs moved");
    let d: usize = second["d"].values().map(BTreeSet::len).sum();
    assert_eq!(d, 1);
    // Range: consecutive, first members one more.
    let r = assign_range(&three, &meta);
    assert_eq!(r["a"][&T1], (0..3).collect());
    assert_eq!(r["b"][&T1], (3..5).collect());
    assert_eq!(r["c"][&T1], (5..7).collect());
}

/// Members join, leave, fall silent, hold on to revoked partitions and come
/// back in a random order. At every step no partition is owned by two live
/// clients; once the churn stops, the group settles with every partition
/// assigned, evenly, and reports Stable.
#[test]
fn random_churn_never_shares_a_partition_and_settles_balanced() {
    use rand::{Rng, SeedableRng};
    let seeds: u64 = std::env::var("VELTRIX_CHURN_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    for seed in 0..seeds {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let w = World::new();
        let c = w.open();
        let mut live: Vec<Client> = Vec::new();
        let mut next = 0;
        for _ in 0..150 {
            match rng.random_range(0..10) {
                0..=2 => {
                    next += 1;
                    let topics: &[&str] = if rng.random_bool(0.7) { &["t", "u"] } else { &["t"] };
                    let mut cl = Client::new(&format!("m{next}"), topics);
                    if cl.beat(&w, &c).is_ok() {
                        live.push(cl);
                    }
                }
                3 if !live.is_empty() => {
                    let cl = live.remove(rng.random_range(0..live.len()));
                    let mut leave = cl.request();
                    leave.member_epoch = -1;
                    let _ = c.consumer_heartbeat(leave, &w.lookup());
                }
                4 => w.advance(&c, rng.random_range(0..20_000)),
                _ if !live.is_empty() => {
                    let i = rng.random_range(0..live.len());
                    // Sometimes a member is slow to give partitions up.
                    let stubborn = rng.random_bool(0.2);
                    let held = live[i].owned.clone();
                    match live[i].beat(&w, &c) {
                        Ok(_) if stubborn => {
                            // It still holds what it was asked to revoke.
                            for (t, ps) in held {
                                live[i].owned.entry(t).or_default().extend(ps);
                            }
                        }
                        Ok(_) => {}
                        Err(GroupError::UnknownMemberId | GroupError::FencedMemberEpoch { .. }) => {
                            // Fenced or expired: it has lost everything and
                            // starts over.
                            live[i].owned.clear();
                            live[i].epoch = 0;
                            let _ = live[i].beat(&w, &c);
                        }
                        Err(e) => panic!("seed {seed}: {e}"),
                    }
                }
                _ => {}
            }
            // Only members the coordinator still knows own anything: a client
            // that was removed has lost its partitions (its next heartbeat
            // tells it), so it is checked by what the group says.
            let known: BTreeSet<String> = c
                .describe_consumer("g")
                .map(|d| d.members.into_iter().map(|m| m.member_id).collect())
                .unwrap_or_default();
            let owners: Vec<&Client> = live.iter().filter(|cl| known.contains(&cl.member_id)).collect();
            assert_exclusive(&owners);
        }
        // Calm: every live member heartbeats until the group settles.
        for cl in &mut live {
            if cl.beat(&w, &c).is_err() {
                cl.owned.clear();
                cl.epoch = 0;
                cl.beat(&w, &c).unwrap();
            }
        }
        settle(&w, &c, &mut live, 4);
        let d = c.describe_consumer("g").unwrap();
        assert_eq!(d.members.len(), live.len(), "seed {seed}");
        if live.is_empty() {
            continue;
        }
        assert_eq!(d.state, "Stable", "seed {seed}");
        let total: usize = live.iter().map(Client::count).sum();
        let u_wanted = live.iter().any(|cl| cl.topics.len() == 2);
        assert_eq!(
            total,
            6 + if u_wanted { 2 } else { 0 },
            "seed {seed}: every subscribed partition is owned"
        );
        let homogeneous = live.iter().all(|cl| cl.topics == live[0].topics);
        if homogeneous {
            let counts: Vec<usize> = live.iter().map(Client::count).collect();
            assert!(
                counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
                "seed {seed}: unbalanced {counts:?}"
            );
        }
    }
}
