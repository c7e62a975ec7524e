//! The transaction coordinator with simulated storage and time: the state
//! machine, fencing, timeouts, limits, and crashes (every answer given before
//! a crash is still true after it).

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;

const T: TopicId = [7; 16];
const U: TopicId = [9; 16];

struct World {
    storage: SimStorage,
    clock: Arc<SimClock>,
    config: TxnConfig,
    next_pid: i64,
}

impl World {
    fn new() -> World {
        World {
            storage: SimStorage::new(),
            clock: Arc::new(SimClock::new(1_700_000_000_000)),
            config: TxnConfig::default(),
            next_pid: 1000,
        }
    }

    fn env(&self) -> Arc<Env> {
        Env::new(Arc::new(self.storage.clone()), self.clock.clone(), 16)
    }

    fn open(&self) -> TxnCoordinator {
        let env = self.env();
        let store = LogTxnStore::open(env.clone(), Path::new("/data/transactions")).unwrap();
        TxnCoordinator::open(env, self.config, Box::new(store)).unwrap()
    }

    fn crash(&self, seed: u64) {
        self.storage.crash(true, seed);
    }

    fn init(&mut self, c: &TxnCoordinator, id: &str, expected: Option<(i64, i16)>) -> Result<InitOutcome, TxnError> {
        let next = &mut self.next_pid;
        c.init_producer_id(id, 60_000, expected, &mut || {
            *next += 1;
            Ok(*next)
        })
    }

    fn ready(&mut self, c: &TxnCoordinator, id: &str) -> (i64, i16) {
        match self.init(c, id, None).unwrap() {
            InitOutcome::Ready {
                producer_id,
                producer_epoch,
            } => (producer_id, producer_epoch),
            other => panic!("{other:?}"),
        }
    }
}

fn complete(c: &TxnCoordinator, outcome: EndOutcome) -> Completion {
    let EndOutcome::Complete(completion) = outcome else {
        panic!("{outcome:?}");
    };
    c.completed(&completion).unwrap();
    completion
}

#[test]
fn a_new_transactional_id_gets_a_producer_id_and_each_init_bumps_the_epoch() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    assert_eq!(epoch, 0);
    assert_eq!(w.ready(&c, "tx"), (pid, 1));
    assert_eq!(w.ready(&c, "tx"), (pid, 2));
    let other = w.ready(&c, "other");
    assert_ne!(other.0, pid, "each transactional id has its own producer id");
    assert_eq!(c.describe("tx").unwrap().state, TxnState::Empty);
}

#[test]
fn a_commit_names_its_partitions_and_groups_and_a_retry_after_it_is_done() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    c.add("tx", pid, epoch, &[(T, 0), (T, 1)], &[]).unwrap();
    c.add("tx", pid, epoch, &[(T, 1), (U, 0)], &["g"]).unwrap();
    assert_eq!(c.describe("tx").unwrap().state, TxnState::Ongoing);
    let EndOutcome::Complete(completion) = c.end("tx", pid, epoch, true).unwrap() else {
        panic!()
    };
    assert!(completion.commit);
    assert_eq!(completion.partitions, vec![(T, 0), (T, 1), (U, 0)]);
    assert_eq!(completion.groups, vec!["g".to_owned()]);
    assert_eq!((completion.producer_id, completion.producer_epoch), (pid, epoch));
    // Decided, not yet written: a retry waits, the opposite is refused.
    assert_eq!(c.end("tx", pid, epoch, true), Err(TxnError::ConcurrentTransactions));
    assert!(matches!(
        c.end("tx", pid, epoch, false),
        Err(TxnError::InvalidTxnState(_))
    ));
    assert_eq!(
        c.add("tx", pid, epoch, &[(T, 2)], &[]),
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(c.pending(), vec![completion.clone()]);
    c.completed(&completion).unwrap();
    assert!(c.pending().is_empty());
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(c.end("tx", pid, epoch, true), Ok(EndOutcome::Done), "a retried commit");
    assert!(matches!(
        c.end("tx", pid, epoch, false),
        Err(TxnError::InvalidTxnState(_))
    ));
    // The next transaction starts empty.
    c.add("tx", pid, epoch, &[(U, 3)], &[]).unwrap();
    assert_eq!(c.describe("tx").unwrap().partitions, vec![(U, 3)]);
    let aborted = complete(&c, c.end("tx", pid, epoch, false).unwrap());
    assert!(!aborted.commit);
    assert_eq!(aborted.partitions, vec![(U, 3)]);
}

#[test]
fn ending_without_a_transaction_is_refused() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    let Err(TxnError::InvalidTxnState(why)) = c.end("tx", pid, epoch, true) else {
        panic!()
    };
    assert!(why.contains("Empty"), "{why}");
}

#[test]
fn a_new_producer_fences_the_old_one_and_aborts_its_open_transaction() {
    let mut w = World::new();
    let c = w.open();
    let (pid, old) = w.ready(&c, "tx");
    c.add("tx", pid, old, &[(T, 0)], &["g"]).unwrap();
    let InitOutcome::AbortFirst(abort) = w.init(&c, "tx", None).unwrap() else {
        panic!()
    };
    assert!(!abort.commit);
    assert_eq!(abort.partitions, vec![(T, 0)]);
    assert_eq!(abort.groups, vec!["g".to_owned()]);
    assert_eq!(
        abort.producer_epoch,
        old + 1,
        "the abort markers carry the fencing epoch"
    );
    // The old producer is fenced at once, for every request.
    assert_eq!(c.end("tx", pid, old, true), Err(TxnError::ProducerFenced(old, old + 1)));
    assert_eq!(
        c.add("tx", pid, old, &[(T, 1)], &[]),
        Err(TxnError::ProducerFenced(old, old + 1))
    );
    assert_eq!(
        c.verify_partition(pid, old, T, 0),
        Err(TxnError::ProducerFenced(old, old + 1))
    );
    // Until the abort is written, the new producer waits.
    assert_eq!(w.init(&c, "tx", None), Err(TxnError::ConcurrentTransactions));
    c.completed(&abort).unwrap();
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteAbort);
    assert_eq!(w.ready(&c, "tx"), (pid, old + 2));
}

#[test]
fn produce_and_offset_commits_are_checked_against_the_open_transaction() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    assert!(matches!(
        c.verify_partition(pid, epoch, T, 0),
        Err(TxnError::InvalidTxnState(_))
    ));
    c.add("tx", pid, epoch, &[(T, 0)], &["g"]).unwrap();
    c.verify_partition(pid, epoch, T, 0).unwrap();
    assert!(matches!(
        c.verify_partition(pid, epoch, T, 1),
        Err(TxnError::InvalidTxnState(_))
    ));
    assert_eq!(
        c.verify_partition(pid + 1, 0, T, 0),
        Err(TxnError::InvalidProducerIdMapping(pid + 1))
    );
    assert_eq!(
        c.verify_partition(pid, epoch + 1, T, 0),
        Err(TxnError::ProducerFenced(epoch + 1, epoch))
    );
    c.verify_group("tx", pid, epoch, "g").unwrap();
    assert!(matches!(
        c.verify_group("tx", pid, epoch, "h"),
        Err(TxnError::InvalidTxnState(_))
    ));
    assert_eq!(
        c.add("tx", pid + 5, epoch, &[(T, 0)], &[]),
        Err(TxnError::InvalidProducerIdMapping(pid + 5))
    );
    complete(&c, c.end("tx", pid, epoch, true).unwrap());
    assert!(
        matches!(c.verify_partition(pid, epoch, T, 0), Err(TxnError::InvalidTxnState(_))),
        "a committed transaction takes no more records"
    );
}

#[test]
fn a_transaction_open_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    c.add("tx", pid, epoch, &[(T, 0)], &[]).unwrap();
    let mut alloc = || -> crate::Result<i64> { unreachable!() };
    w.clock.advance(59_999);
    assert!(c.expire(&mut alloc).unwrap().is_empty());
    w.clock.advance(1);
    let aborts = c.expire(&mut alloc).unwrap();
    assert_eq!(aborts.len(), 1);
    assert!(!aborts[0].commit);
    assert_eq!(aborts[0].producer_epoch, epoch + 1);
    assert_eq!(
        c.end("tx", pid, epoch, true),
        Err(TxnError::ProducerFenced(epoch, epoch + 1))
    );
    c.completed(&aborts[0]).unwrap();
    // The fenced producer may start again naming its old epoch (KIP-360),
    // and gets the current one without another bump.
    let again = w.init(&c, "tx", Some((pid, epoch))).unwrap();
    assert_eq!(
        again,
        InitOutcome::Ready {
            producer_id: pid,
            producer_epoch: epoch + 1
        }
    );
    // An epoch older than that is a zombie.
    assert_eq!(
        w.init(&c, "tx", Some((pid, epoch.wrapping_sub(1)))),
        Err(TxnError::ProducerFenced(epoch - 1, epoch + 1))
    );
}

#[test]
fn idle_transactional_ids_are_forgotten() {
    let mut w = World::new();
    w.config.transactional_id_expiration_ms = 1_000;
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "idle");
    let busy = w.ready(&c, "busy");
    c.add("busy", busy.0, busy.1, &[(T, 0)], &[]).unwrap();
    w.clock.advance(999);
    c.expire(&mut || unreachable!()).unwrap();
    assert!(c.describe("idle").is_ok());
    w.clock.advance(1);
    c.expire(&mut || unreachable!()).unwrap();
    assert_eq!(c.describe("idle"), Err(TxnError::NotFound("idle".into())));
    assert!(c.describe("busy").is_ok(), "an open transaction keeps its id");
    assert_eq!(
        c.verify_partition(pid, epoch, T, 0),
        Err(TxnError::InvalidProducerIdMapping(pid))
    );
    drop(c);
    let c = w.open();
    assert_eq!(
        c.describe("idle"),
        Err(TxnError::NotFound("idle".into())),
        "forgotten durably"
    );
}

#[test]
fn limits_and_bad_input_are_refused_with_what_is_wrong() {
    let mut w = World::new();
    w.config.transactional_ids_max = 2;
    w.config.transaction_partitions_max = 2;
    w.config.transaction_groups_max = 1;
    let c = w.open();
    let long = "x".repeat(TRANSACTIONAL_ID_BYTES_MAX + 1);
    assert!(matches!(w.init(&c, "", None), Err(TxnError::InvalidRequest(_))));
    assert!(matches!(w.init(&c, &long, None), Err(TxnError::InvalidRequest(_))));
    for bad in [0, -1, 900_001] {
        assert_eq!(
            c.init_producer_id("tx", bad, None, &mut || Ok(1)),
            Err(TxnError::InvalidTimeout(bad, 900_000))
        );
    }
    let (pid, epoch) = w.ready(&c, "a");
    w.ready(&c, "b");
    let Err(TxnError::LimitReached(why)) = w.init(&c, "c", None) else {
        panic!()
    };
    assert!(why.contains("transactional_ids_max"), "{why}");
    w.ready(&c, "a");
    let epoch = epoch + 1;
    c.add("a", pid, epoch, &[(T, 0), (T, 1)], &["g"]).unwrap();
    let Err(TxnError::LimitReached(why)) = c.add("a", pid, epoch, &[(T, 2)], &[]) else {
        panic!()
    };
    assert!(why.contains("transaction_partitions_max"), "{why}");
    let Err(TxnError::LimitReached(why)) = c.add("a", pid, epoch, &[], &["h"]) else {
        panic!()
    };
    assert!(why.contains("transaction_groups_max"), "{why}");
    assert_eq!(
        c.describe("a").unwrap().partitions,
        vec![(T, 0), (T, 1)],
        "a refused add changes nothing"
    );
    // A producer naming an id it never had.
    assert_eq!(w.init(&c, "b", Some((12345, 0))), Err(TxnError::ProducerFenced(0, 0)));
}

/// What the metrics read: each decision counted once, by its cause, and each
/// refusal by its limit.
#[test]
fn decisions_and_refusals_are_counted_by_cause() {
    let mut w = World::new();
    w.config.transactional_ids_max = 3;
    w.config.transaction_partitions_max = 1;
    w.config.transaction_groups_max = 1;
    let c = w.open();
    let totals = |c: &TxnCoordinator| {
        let t = c.totals();
        [
            &t.committed,
            &t.aborted_by_producer,
            &t.aborted_by_timeout,
            &t.aborted_by_new_producer,
            &t.refused_ids,
            &t.refused_partitions,
            &t.refused_groups,
        ]
        .map(|a| a.load(Ordering::Relaxed))
    };
    let (pid, epoch) = w.ready(&c, "a");
    c.add("a", pid, epoch, &[(T, 0)], &["g"]).unwrap();
    complete(&c, c.end("a", pid, epoch, true).unwrap());
    // A retried EndTxn, already done, is no second decision.
    assert_eq!(c.end("a", pid, epoch, true), Ok(EndOutcome::Done));
    c.add("a", pid, epoch, &[(T, 0)], &[]).unwrap();
    complete(&c, c.end("a", pid, epoch, false).unwrap());
    assert_eq!(totals(&c), [1, 1, 0, 0, 0, 0, 0]);

    c.add("a", pid, epoch, &[(T, 0)], &[]).unwrap();
    assert!(c.add("a", pid, epoch, &[(U, 0)], &[]).is_err());
    assert!(c.add("a", pid, epoch, &[], &["g", "h"]).is_err());
    let InitOutcome::AbortFirst(abort) = w.init(&c, "a", None).unwrap() else {
        panic!()
    };
    c.completed(&abort).unwrap();
    assert_eq!(totals(&c), [1, 1, 0, 1, 0, 1, 1]);

    let (pid, epoch) = w.ready(&c, "b");
    c.add("b", pid, epoch, &[(T, 1)], &[]).unwrap();
    w.clock.advance(60_000);
    let aborts = c.expire(&mut || Ok(5000)).unwrap();
    assert_eq!(aborts.len(), 1);
    w.ready(&c, "c");
    assert!(matches!(w.init(&c, "d", None), Err(TxnError::LimitReached(_))));
    assert_eq!(totals(&c), [1, 1, 1, 1, 1, 1, 1]);
    assert_eq!(c.counts(), (3, 1), "b's abort is decided, not yet complete");
    assert_eq!(c.pending().len(), 1);
}

#[test]
fn an_exhausted_epoch_moves_to_a_new_producer_id() {
    let w = World::new();
    {
        let store = LogTxnStore::open(w.env(), Path::new("/data/transactions")).unwrap();
        let r = TxnRecord {
            transactional_id: "tx".into(),
            producer_id: 7,
            producer_epoch: i16::MAX - 1,
            last_producer_id: -1,
            last_producer_epoch: -1,
            timeout_ms: 1000,
            state: TxnState::CompleteCommit,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            started_ms: -1,
            updated_ms: 0,
        };
        let t = store.append(&TxnChange::Put(r), 0).unwrap();
        store.wait_durable(t).unwrap();
        store.close();
    }
    let c = w.open();
    let outcome = c.init_producer_id("tx", 1000, None, &mut || Ok(8)).unwrap();
    assert_eq!(
        outcome,
        InitOutcome::Ready {
            producer_id: 8,
            producer_epoch: 0
        }
    );
    c.verify_partition(8, 0, T, 0).unwrap_err();
    assert_eq!(
        c.verify_partition(7, i16::MAX - 1, T, 0),
        Err(TxnError::InvalidProducerIdMapping(7))
    );
}

#[test]
fn a_transaction_decided_before_a_crash_is_completed_after_it() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    c.add("tx", pid, epoch, &[(T, 0)], &["g"]).unwrap();
    let EndOutcome::Complete(decided) = c.end("tx", pid, epoch, true).unwrap() else {
        panic!()
    };
    drop(c);
    w.crash(1);
    let c = w.open();
    assert_eq!(
        c.pending(),
        vec![decided.clone()],
        "the decision survived, to be written again"
    );
    assert_eq!(c.end("tx", pid, epoch, true), Err(TxnError::ConcurrentTransactions));
    c.completed(&decided).unwrap();
    drop(c);
    w.crash(2);
    let c = w.open();
    assert!(c.pending().is_empty());
    assert_eq!(c.end("tx", pid, epoch, true), Ok(EndOutcome::Done));
}

#[test]
fn a_decided_transaction_has_one_writer_at_a_time() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    c.add("tx", pid, epoch, &[(T, 0)], &[]).unwrap();
    let EndOutcome::Complete(decided) = c.end("tx", pid, epoch, true).unwrap() else {
        panic!()
    };
    // The EndTxn that decided it is writing it: housekeeping is not handed
    // it (its late markers could end the producer's next transaction).
    assert_eq!(c.pending(), vec![decided.clone()]);
    assert!(c.claim_pending().is_empty());
    // The write failed: housekeeping is handed it, once.
    c.release(&decided);
    assert_eq!(c.claim_pending(), vec![decided.clone()]);
    assert!(c.claim_pending().is_empty());
    c.completed(&decided).unwrap();
    assert!(c.pending().is_empty() && c.claim_pending().is_empty());

    // A release of a completion no longer decided frees no one else's claim.
    c.add("tx", pid, epoch, &[(T, 0)], &[]).unwrap();
    let EndOutcome::Complete(next) = c.end("tx", pid, epoch, false).unwrap() else {
        panic!()
    };
    c.release(&decided);
    assert!(c.claim_pending().is_empty());
    c.completed(&next).unwrap();

    // The abort an InitProducerId decides, and a timeout's, are their callers' to write.
    c.add("tx", pid, epoch, &[(T, 0)], &[]).unwrap();
    let InitOutcome::AbortFirst(fenced) = w.init(&c, "tx", None).unwrap() else {
        panic!()
    };
    assert!(c.claim_pending().is_empty());
    c.completed(&fenced).unwrap();
    let (pid, epoch) = w.ready(&c, "tx");
    c.add("tx", pid, epoch, &[(T, 0)], &[]).unwrap();
    w.clock.advance(60_000);
    let aborts = c.expire(&mut || unreachable!("epochs stay small")).unwrap();
    assert_eq!(aborts.len(), 1);
    assert!(c.claim_pending().is_empty());

    // After a restart no one is writing anything: the abort is handed out.
    drop(c);
    w.crash(3);
    let c = w.open();
    assert_eq!(c.claim_pending(), aborts);
    assert!(c.claim_pending().is_empty());
}

#[test]
fn a_failed_store_refuses_everything_after() {
    let mut w = World::new();
    let c = w.open();
    let (pid, epoch) = w.ready(&c, "tx");
    w.storage.fail_syncs(true);
    assert!(matches!(
        c.add("tx", pid, epoch, &[(T, 0)], &[]),
        Err(TxnError::Unavailable(_))
    ));
    w.storage.fail_syncs(false);
    assert!(matches!(
        c.add("tx", pid, epoch, &[(T, 0)], &[]),
        Err(TxnError::Unavailable(_))
    ));
    assert!(matches!(
        c.verify_partition(pid, epoch, T, 0),
        Err(TxnError::Unavailable(_))
    ));
}

#[test]
fn listing_filters_by_state_producer_and_age() {
    let mut w = World::new();
    let c = w.open();
    let a = w.ready(&c, "a");
    let b = w.ready(&c, "b");
    c.add("a", a.0, a.1, &[(T, 0)], &[]).unwrap();
    w.clock.advance(5_000);
    c.add("b", b.0, b.1, &[(T, 1)], &[]).unwrap();
    let ids = |l: Vec<TxnDescription>| l.into_iter().map(|d| d.transactional_id).collect::<Vec<_>>();
    assert_eq!(ids(c.list(&[], &[], -1, 10)), ["a", "b"]);
    assert_eq!(ids(c.list(&[TxnState::Ongoing], &[b.0], -1, 10)), ["b"]);
    assert_eq!(ids(c.list(&[], &[], 5_000, 10)), ["a"]);
    assert_eq!(ids(c.list(&[TxnState::Empty], &[], -1, 10)), Vec::<String>::new());
    assert_eq!(ids(c.list(&[], &[], -1, 1)), ["a"]);
    assert_eq!(TxnState::parse("PrepareCommit"), Some(TxnState::PrepareCommit));
    assert_eq!(TxnState::parse("Dead"), None);
    assert_eq!(c.counts(), (2, 2));
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Init(usize),
    Add(usize, i32),
    End(usize, bool),
    Complete,
    Advance(u64),
    Expire,
    Compact,
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..3usize).prop_map(Op::Init),
        4 => (0..3usize, 0..4i32).prop_map(|(i, p)| Op::Add(i, p)),
        3 => (0..3usize, any::<bool>()).prop_map(|(i, c)| Op::End(i, c)),
        2 => Just(Op::Complete),
        1 => (0..40_000u64).prop_map(Op::Advance),
        1 => Just(Op::Expire),
        1 => Just(Op::Compact),
        1 => any::<u64>().prop_map(Op::Crash),
    ]
}

/// Every id's description, the state a crash must not change.
fn snapshot(c: &TxnCoordinator) -> Vec<TxnDescription> {
    c.list(&[], &[], -1, usize::MAX)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the coordinator answered before a crash holds after it: the
    /// state after reopening is the state after the last answer; producers
    /// only ever see their epoch go up; a decided transaction stays decided.
    #[test]
    fn answers_survive_crashes(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = World::new();
        w.config.transaction_timeout_ms_max = 30_000;
        let mut c = w.open();
        let ids = ["a", "b", "c"];
        let mut producers: [Option<(i64, i16)>; 3] = [None; 3];
        let mut owed: Vec<Completion> = Vec::new();
        for op in ops {
            match op {
                Op::Init(i) => {
                    let next = &mut w.next_pid;
                    match c.init_producer_id(ids[i], 30_000, None, &mut || { *next += 1; Ok(*next) }) {
                        Ok(InitOutcome::Ready { producer_id, producer_epoch }) => {
                            if let Some((pid, epoch)) = producers[i] {
                                prop_assert!(producer_id != pid || producer_epoch > epoch);
                            }
                            producers[i] = Some((producer_id, producer_epoch));
                        }
                        Ok(InitOutcome::AbortFirst(c)) => owed.push(c),
                        Err(e) => prop_assert_eq!(e, TxnError::ConcurrentTransactions),
                    }
                }
                Op::Add(i, p) => {
                    if let Some((pid, epoch)) = producers[i] {
                        let _ = c.add(ids[i], pid, epoch, &[(T, p)], &[]);
                    }
                }
                Op::End(i, commit) => {
                    if let Some((pid, epoch)) = producers[i]
                        && let Ok(EndOutcome::Complete(done)) = c.end(ids[i], pid, epoch, commit)
                    {
                        prop_assert_eq!(done.commit, commit);
                        owed.push(done);
                    }
                }
                Op::Complete => {
                    for done in owed.drain(..) {
                        c.completed(&done).unwrap();
                    }
                }
                Op::Advance(ms) => w.clock.advance(ms),
                Op::Expire => owed.extend(c.expire(&mut || unreachable!("epochs stay small")).unwrap()),
                Op::Compact => c.compact().unwrap(),
                Op::Crash(seed) => {
                    let before = snapshot(&c);
                    let mut pending_before = c.pending();
                    drop(c);
                    w.crash(seed);
                    c = w.open();
                    prop_assert_eq!(snapshot(&c), before);
                    let mut pending_after = c.pending();
                    pending_before.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
                    pending_after.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
                    prop_assert_eq!(&pending_after, &pending_before);
                    owed = pending_after;
                }
            }
            // Whatever is decided is owed, and nothing else.
            let mut pending = c.pending();
            pending.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            let mut owed_sorted = owed.clone();
            owed_sorted.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
            owed_sorted.dedup_by(|a, b| a.transactional_id == b.transactional_id);
            prop_assert_eq!(pending, owed_sorted);
        }
    }
}
