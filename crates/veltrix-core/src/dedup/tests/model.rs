//! The index against a model: a `Vec` of ids with their time and state,
//! driven by the same random reservations, commits, aborts, clock moves (back
//! too), expiries, snapshots and crashes.
//!
//! A crash loses the pending reservations and the index; the test keeps each
//! partition's log of durable records (a record is appended when its ticket
//! commits) and rebuilds the index from the last saved snapshot and the log
//! after it, as the broker will. Besides matching the model answer for answer,
//! it checks the promises themselves: an id committed within the window is a
//! duplicate (when nothing was evicted early), across crashes too; an id never
//! durable is never a duplicate; the index holds at most `ids_max` ids, and
//! its memory is what the model's ids cost.

use std::collections::HashMap;

use proptest::prelude::*;

use super::super::*;

const PARTITIONS: usize = 3;
const IDS: u8 = 10;

#[derive(Debug, Clone)]
enum Op {
    Reserve(u8),
    Commit(usize),
    Abort(usize),
    Advance(u16),
    StepBack(u16),
    Expire,
    Snapshot,
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..IDS).prop_map(Op::Reserve),
        4 => any::<usize>().prop_map(Op::Commit),
        1 => any::<usize>().prop_map(Op::Abort),
        3 => (0u16..400).prop_map(Op::Advance),
        1 => (0u16..400).prop_map(Op::StepBack),
        1 => Just(Op::Expire),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Crash),
    ]
}

/// Ids of one to three bytes, so that memory depends on which are held.
fn id(k: u8) -> Vec<u8> {
    vec![b'a' + k; 1 + k as usize % 3]
}

#[derive(Debug, Clone, PartialEq)]
struct Held {
    id: Vec<u8>,
    time: i64,
    /// `None` while pending.
    original: Option<Original>,
}

#[derive(Debug, PartialEq)]
enum Answer {
    Duplicate(Original),
    InFlight,
    New,
    Full,
}

#[derive(Debug)]
struct Model {
    window_ms: i64,
    ids_max: usize,
    now_ms: i64,
    /// Committed ids in commit order (so by time), pending ones anywhere.
    held: Vec<Held>,
    evicted: bool,
}

impl Model {
    fn live(&self, time: i64) -> bool {
        self.now_ms - time < self.window_ms
    }

    fn expire(&mut self, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        let window = self.window_ms;
        self.held.retain(|h| h.original.is_none() || now - h.time < window);
    }

    fn reserve(&mut self, id: &[u8], now_ms: i64) -> Answer {
        self.expire(now_ms);
        if let Some(h) = self.held.iter().find(|h| h.id == id) {
            return h.original.map_or(Answer::InFlight, Answer::Duplicate);
        }
        while self.held.len() >= self.ids_max {
            let Some(oldest) = self.held.iter().position(|h| h.original.is_some()) else {
                return Answer::Full;
            };
            self.held.remove(oldest);
            self.evicted = true;
        }
        self.held.push(Held {
            id: id.to_vec(),
            time: 0,
            original: None,
        });
        Answer::New
    }

    fn commit(&mut self, id: &[u8], original: Original, now_ms: i64) {
        self.now_ms = self.now_ms.max(now_ms);
        let at = self.held.iter().position(|h| h.id == id).expect("pending");
        let mut h = self.held.remove(at);
        h.time = self.now_ms;
        h.original = Some(original);
        self.held.push(h);
    }

    /// What restore makes of a snapshot's ids and the log after it.
    fn restore(&mut self, saved: Option<&(i64, Vec<Held>)>, logged: &[LoggedId], now_ms: i64) {
        let (taken_ms, saved) = saved.map_or((i64::MIN, &[][..]), |(t, held)| (*t, &held[..]));
        let newest = saved.iter().map(|h| h.time).max().unwrap_or(i64::MIN);
        self.now_ms = now_ms.max(taken_ms).max(newest);
        let mut latest: Vec<Held> = saved.to_vec();
        for l in logged {
            latest.retain(|h| h.id != l.id);
            latest.push(Held {
                id: l.id.clone(),
                time: self.now_ms,
                original: Some(Original {
                    partition: l.partition,
                    offset: l.offset,
                }),
            });
        }
        latest.retain(|h| self.live(h.time));
        latest.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
        let excess = latest.len().saturating_sub(self.ids_max);
        self.evicted |= excess > 0;
        self.held = latest.split_off(excess);
    }

    fn memory_bytes(&self) -> usize {
        self.held.iter().map(|h| h.id.len() + DEDUP_ENTRY_OVERHEAD_BYTES).sum()
    }
}

/// Everything the test keeps beside the index: what a crash does not lose.
struct World {
    config: DedupConfig,
    index: DedupIndex,
    model: Model,
    now_ms: i64,
    tickets: Vec<Ticket>,
    /// Each partition's durable records' ids.
    logs: Vec<Vec<Vec<u8>>>,
    store: MemDedupStore,
    /// The model's time and committed ids when the saved snapshot was taken.
    saved: Option<(i64, Vec<Held>)>,
    /// Every id ever durable, with its last commit time (capped by a crash at
    /// the restored clock: a clock stepping back across a crash shortens the
    /// window of ids committed after the snapshot, see `DedupIndex::restore`).
    durable: HashMap<Vec<u8>, i64>,
}

impl World {
    fn new(config: DedupConfig) -> World {
        World {
            config,
            index: DedupIndex::new(config).unwrap(),
            model: Model {
                window_ms: config.window_ms as i64,
                ids_max: config.ids_max,
                now_ms: i64::MIN,
                held: Vec::new(),
                evicted: false,
            },
            now_ms: 0,
            tickets: Vec::new(),
            logs: vec![Vec::new(); PARTITIONS],
            store: MemDedupStore::default(),
            saved: None,
            durable: HashMap::new(),
        }
    }

    fn reserve(&mut self, k: u8) -> Result<(), TestCaseError> {
        let id = id(k);
        let expected = self.model.reserve(&id, self.now_ms);
        let answer = match self.index.reserve(&id, self.now_ms) {
            Ok(Reservation::Duplicate(original)) => Answer::Duplicate(original),
            Ok(Reservation::InFlight(_)) => Answer::InFlight,
            Ok(Reservation::New(ticket)) => {
                self.tickets.push(ticket);
                Answer::New
            }
            Err(DedupError::Full { .. }) => Answer::Full,
            Err(e) => return Err(TestCaseError::fail(format!("reserve {id:?}: {e}"))),
        };
        let durable_at = self.durable.get(&id).copied();
        if durable_at.is_none() {
            prop_assert!(!matches!(answer, Answer::Duplicate(_)), "{id:?} was never durable");
        }
        let within = durable_at.is_some_and(|t| self.model.now_ms - t < self.model.window_ms);
        if within && !self.model.evicted {
            prop_assert!(
                matches!(answer, Answer::Duplicate(_)),
                "{id:?} is durable within the window"
            );
        }
        prop_assert_eq!(answer, expected, "reserve {:?} at {}", id, self.now_ms);
        Ok(())
    }

    fn settle(&mut self, which: usize, commit: bool) {
        if self.tickets.is_empty() {
            return;
        }
        let ticket = self.tickets.swap_remove(which % self.tickets.len());
        let id = ticket.id().to_vec();
        if !commit {
            self.index.abort(ticket).unwrap();
            self.model.held.retain(|h| h.id != id);
            return;
        }
        let partition = id[0] as usize % PARTITIONS;
        let original = Original {
            partition: partition as i32,
            offset: self.logs[partition].len() as i64,
        };
        self.logs[partition].push(id.clone());
        self.index
            .commit(ticket, original.partition, original.offset, self.now_ms)
            .unwrap();
        self.model.commit(&id, original, self.now_ms);
        self.durable.insert(id, self.model.now_ms);
    }

    fn log_ends(&self) -> Vec<(i32, i64)> {
        (0..PARTITIONS).map(|p| (p as i32, self.logs[p].len() as i64)).collect()
    }

    fn snapshot(&mut self) -> Result<(), TestCaseError> {
        let log_ends = self.log_ends();
        let mark = self.index.mark();
        let snapshot = self.index.snapshot(mark, &log_ends, self.now_ms);
        self.model.expire(self.now_ms);
        prop_assert_eq!(snapshot.is_some(), self.tickets.is_empty());
        if let Some(snapshot) = snapshot {
            self.store.save(&snapshot).unwrap();
            self.saved = Some((self.model.now_ms, self.model.held.clone()));
        }
        Ok(())
    }

    /// The durable records after the snapshot, or each partition's last
    /// `ids_max` without one.
    fn logged(&self, snapshot: Option<&Snapshot>) -> Vec<LoggedId> {
        let mut logged = Vec::new();
        for (p, log) in self.logs.iter().enumerate() {
            let from = match snapshot {
                Some(s) => s.covered.iter().find(|c| c.0 == p as i32).map_or(0, |c| c.1) as usize,
                None => log.len().saturating_sub(self.config.ids_max),
            };
            logged.extend(log.iter().enumerate().skip(from).map(|(offset, id)| LoggedId {
                partition: p as i32,
                offset: offset as i64,
                id: id.clone(),
            }));
        }
        logged
    }

    fn crash(&mut self) {
        self.tickets.clear();
        let snapshot = self.store.load().unwrap();
        let logged = self.logged(snapshot.as_ref());
        self.model.restore(self.saved.as_ref(), &logged, self.now_ms);
        self.index = DedupIndex::restore(self.config, snapshot, logged, self.now_ms).unwrap();
        for time in self.durable.values_mut() {
            *time = (*time).min(self.model.now_ms);
        }
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let stats = self.index.stats(self.now_ms);
        prop_assert!(stats.ids <= self.config.ids_max);
        prop_assert_eq!(stats.ids, self.model.held.len());
        prop_assert_eq!(stats.pending, self.tickets.len());
        prop_assert_eq!(stats.memory_bytes, self.model.memory_bytes());
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_index_matches_its_model_across_crashes(
        window_ms in 1u64..1_000,
        ids_max in 2usize..12,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut world = World::new(DedupConfig { window_ms, ids_max, id_bytes_max: 8 });
        for op in ops {
            match op {
                Op::Reserve(k) => world.reserve(k)?,
                Op::Commit(which) => world.settle(which, true),
                Op::Abort(which) => world.settle(which, false),
                Op::Advance(ms) => world.now_ms += i64::from(ms),
                Op::StepBack(ms) => world.now_ms -= i64::from(ms),
                Op::Expire => {
                    world.index.expire(world.now_ms);
                    world.model.expire(world.now_ms);
                }
                Op::Snapshot => world.snapshot()?,
                Op::Crash => world.crash(),
            }
            world.check()?;
        }
    }
}
