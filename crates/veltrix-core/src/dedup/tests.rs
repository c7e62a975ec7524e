//! The duplicate window's rules one by one, its durable store, and a model
//! test with crashes.

use std::sync::Arc;

use proptest::prelude::*;
use veltrix_log::io::Storage;
use veltrix_log::sim::SimStorage;

use super::*;

const WINDOW_MS: u64 = 1_000;

fn config(ids_max: usize) -> DedupConfig {
    DedupConfig {
        ids_max,
        ..DedupConfig::new(WINDOW_MS)
    }
}

fn new(index: &mut DedupIndex, id: &[u8], now_ms: i64) -> Ticket {
    match index.reserve(id, now_ms).expect("valid id, room") {
        Reservation::New(ticket) => ticket,
        other => panic!("{id:?} at {now_ms}: expected New, got {other:?}"),
    }
}

fn in_flight(index: &mut DedupIndex, id: &[u8], now_ms: i64) -> Waiter {
    match index.reserve(id, now_ms).expect("valid id") {
        Reservation::InFlight(waiter) => waiter,
        other => panic!("{id:?} at {now_ms}: expected InFlight, got {other:?}"),
    }
}

fn stored(index: &mut DedupIndex, id: &[u8], at: i64, offset: i64) {
    let ticket = new(index, id, at);
    index.commit(ticket, 0, offset, at).unwrap();
}

fn is_duplicate(index: &mut DedupIndex, id: &[u8], now_ms: i64) -> bool {
    match index.reserve(id, now_ms).unwrap() {
        Reservation::Duplicate(_) => true,
        Reservation::New(ticket) => {
            index.abort(ticket).unwrap();
            false
        }
        Reservation::InFlight(_) => panic!("{id:?} is pending"),
    }
}

#[test]
fn an_id_is_a_duplicate_until_exactly_window_ms_after_its_commit() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"a", 5_000, 7);
    assert!(matches!(
        index.reserve(b"a", 5_999).unwrap(),
        Reservation::Duplicate(Original {
            partition: 0,
            offset: 7
        })
    ));
    assert!(is_duplicate(&mut index, b"a", 5_000 + WINDOW_MS as i64 - 1));
    assert!(!is_duplicate(&mut index, b"a", 5_000 + WINDOW_MS as i64));
    assert_eq!(index.stats(0).duplicates_dropped, 2);
}

#[test]
fn expire_forgets_old_ids_and_keeps_young_ones() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"old", 0, 0);
    stored(&mut index, b"young", 500, 1);
    index.expire(1_000);
    assert_eq!(index.stats(1_000).ids, 1);
    assert!(is_duplicate(&mut index, b"young", 1_000));
}

#[test]
fn a_clock_stepping_back_expires_nothing_early_and_does_not_panic() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"a", 10_000, 0);
    index.expire(i64::MIN);
    stored(&mut index, b"b", 0, 1);
    // `b` took the latest time seen (10 000), so the queue stays in order.
    assert!(is_duplicate(&mut index, b"b", 10_999));
    assert!(is_duplicate(&mut index, b"a", 10_999));
    assert!(!is_duplicate(&mut index, b"a", i64::MAX));
}

#[test]
fn a_full_index_evicts_its_oldest_committed_ids_and_says_so() {
    let mut index = DedupIndex::new(config(3)).unwrap();
    stored(&mut index, b"a", 0, 0);
    stored(&mut index, b"b", 100, 1);
    let pending = new(&mut index, b"p", 150);
    assert_eq!(index.stats(150).effective_window_ms, WINDOW_MS);
    // `c` evicts `a`, `d` evicts `b`; the pending `p` stays.
    stored(&mut index, b"c", 200, 2);
    assert_eq!(index.stats(200).effective_window_ms, 200);
    stored(&mut index, b"d", 300, 3);
    let stats = index.stats(300);
    assert_eq!((stats.ids, stats.pending, stats.evicted_early), (3, 1, 2));
    assert_eq!(
        stats.effective_window_ms, 200,
        "ids committed at 100 and before are forgotten"
    );
    assert!(is_duplicate(&mut index, b"c", 300));
    assert!(is_duplicate(&mut index, b"d", 300));
    index.abort(pending).unwrap();
    assert!(!is_duplicate(&mut index, b"a", 300));
    assert_eq!(
        index.stats(1_100).effective_window_ms,
        WINDOW_MS,
        "b would have expired by now"
    );
}

#[test]
fn a_full_index_of_pending_ids_refuses_new_ones() {
    let mut index = DedupIndex::new(config(2)).unwrap();
    let _a = new(&mut index, b"a", 0);
    let _b = new(&mut index, b"b", 0);
    assert_eq!(index.reserve(b"c", 0).unwrap_err(), DedupError::Full { ids_max: 2 });
    assert_eq!(index.stats(0).ids, 2);
}

#[test]
fn empty_and_oversized_ids_are_refused_naming_the_limit_and_other_bytes_are_fine() {
    let mut index = DedupIndex::new(DedupConfig {
        id_bytes_max: 4,
        ..config(10)
    })
    .unwrap();
    assert!(matches!(index.reserve(b"", 0), Err(DedupError::InvalidId(_))));
    let long = index.reserve(b"abcde", 0).unwrap_err().to_string();
    assert!(long.contains("limit of 4 (id_bytes_max)"), "{long}");
    stored(&mut index, &[0xff, 0xfe, 0x00], 0, 0);
    assert!(is_duplicate(&mut index, &[0xff, 0xfe, 0x00], 1));
    assert_eq!(index.stats(1).ids, 1);
}

#[test]
fn configs_out_of_range_are_refused() {
    for bad in [
        DedupConfig::new(0),
        DedupConfig::new(DEDUP_WINDOW_MS_MAX + 1),
        DedupConfig {
            ids_max: 0,
            ..config(1)
        },
        DedupConfig {
            id_bytes_max: DEDUP_ID_BYTES_MAX + 1,
            ..config(1)
        },
    ] {
        assert!(
            matches!(DedupIndex::new(bad), Err(DedupError::InvalidConfig(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn abort_frees_the_id_and_a_settled_ticket_is_unknown() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    let ticket = new(&mut index, b"a", 0);
    index.abort(ticket).unwrap();
    assert_eq!(index.stats(0).ids, 0);
    let again = new(&mut index, b"a", 0);
    let stale = Ticket::forged(&again);
    index.commit(again, 0, 0, 0).unwrap();
    assert_eq!(index.abort(stale), Err(DedupError::UnknownTicket));
    assert!(is_duplicate(&mut index, b"a", 1));
}

#[tokio::test]
async fn a_waiter_learns_the_commit_and_the_id_is_then_a_duplicate() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    let ticket = new(&mut index, b"a", 0);
    let waiter = in_flight(&mut index, b"a", 1);
    assert_eq!(waiter.try_outcome(), None);
    let waiting = tokio::spawn(waiter.outcome());
    index.commit(ticket, 2, 9, 2).unwrap();
    let original = Original {
        partition: 2,
        offset: 9,
    };
    assert_eq!(waiting.await.unwrap(), Outcome::Committed(original));
    assert!(matches!(index.reserve(b"a", 3).unwrap(), Reservation::Duplicate(o) if o == original));
}

#[tokio::test]
async fn a_waiter_learns_the_abort_and_may_then_store_the_id() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    let ticket = new(&mut index, b"a", 0);
    let waiter = in_flight(&mut index, b"a", 1);
    index.abort(ticket).unwrap();
    assert_eq!(waiter.outcome().await, Outcome::Aborted);
    let _ticket = new(&mut index, b"a", 2);
    // And a waiter whose index is dropped hears Aborted rather than hanging.
    let orphan = in_flight(&mut index, b"a", 3);
    drop(index);
    assert_eq!(orphan.outcome().await, Outcome::Aborted);
}

#[test]
fn memory_counts_each_ids_bytes_and_the_overhead() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"abc", 0, 0);
    let _pending = new(&mut index, b"de", 0);
    assert_eq!(index.memory_bytes(), 5 + 2 * DEDUP_ENTRY_OVERHEAD_BYTES);
    index.expire(WINDOW_MS as i64);
    assert_eq!(index.memory_bytes(), 2 + DEDUP_ENTRY_OVERHEAD_BYTES);
}

/// Two topics' windows share one memory limit: the one that would go over
/// it forgets its own oldest ids, one with nothing stored to forget is
/// refused, and a window that goes gives its memory back.
#[test]
fn windows_sharing_a_memory_limit_forget_their_own_oldest_ids_and_give_memory_back() {
    let entry = 1 + DEDUP_ENTRY_OVERHEAD_BYTES;
    let memory = DedupMemory::new(4 * entry);
    let mut a = DedupIndex::new(config(100)).unwrap();
    a.set_memory(memory.clone());
    for (i, id) in [b"1", b"2", b"3"].iter().enumerate() {
        stored(&mut a, *id, 10, i as i64);
    }
    let mut b = DedupIndex::new(config(100)).unwrap();
    b.set_memory(memory.clone());
    let pending = new(&mut b, b"x", 10);
    assert_eq!(memory.used(), 4 * entry);
    // `b` holds only a pending id: nothing of its own to forget.
    assert_eq!(
        b.reserve(b"y", 10).unwrap_err(),
        DedupError::MemoryFull { bytes_max: 4 * entry }
    );
    // `a` forgets its oldest to stay within the limit.
    stored(&mut a, b"4", 11, 3);
    assert_eq!(a.stats(12).evicted_early, 1);
    assert_eq!(memory.used(), 4 * entry);
    assert!([b"2", b"3", b"4"].iter().all(|id| is_duplicate(&mut a, *id, 12)));
    b.abort(pending).unwrap();
    assert_eq!(memory.used(), 3 * entry);
    assert!(!is_duplicate(&mut a, b"1", 12), "forgotten early");
    drop(a);
    assert_eq!(memory.used(), 0, "a window that goes gives its memory back");
    // A window restored over the limit shrinks to it when it joins.
    let mut c = DedupIndex::new(config(100)).unwrap();
    for (i, id) in [b"p", b"q", b"r", b"s", b"t"].iter().enumerate() {
        stored(&mut c, *id, 20 + i as i64, i as i64);
    }
    c.set_memory(memory.clone());
    assert_eq!(memory.used(), 4 * entry);
    assert!(!is_duplicate(&mut c, b"p", 30) && is_duplicate(&mut c, b"t", 30));
}

#[test]
fn no_snapshot_while_a_reservation_older_than_the_mark_is_pending() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"a", 0, 0);
    let old = new(&mut index, b"b", 0);
    let mark = index.mark();
    let young = new(&mut index, b"c", 0);
    assert_eq!(index.snapshot(mark, &[(0, 1)], 0), None);
    index.commit(old, 0, 1, 5).unwrap();
    let snapshot = index.snapshot(mark, &[(0, 2)], 5).expect("only younger ones pending");
    let ids: Vec<_> = snapshot.entries.iter().map(|e| e.id.as_slice()).collect();
    assert_eq!(ids, [b"a", b"b"]);
    assert_eq!(snapshot.covered, [(0, 2)]);
    index.abort(young).unwrap();
}

#[test]
fn restore_keeps_snapshot_times_and_gives_the_log_tail_the_recovery_time() {
    let mut index = DedupIndex::new(config(10)).unwrap();
    stored(&mut index, b"a", 0, 0);
    let snapshot = index.snapshot(index.mark(), &[(0, 1)], 0).unwrap();
    let logged = [
        LoggedId {
            partition: 0,
            offset: 0,
            id: b"a".to_vec(),
        },
        LoggedId {
            partition: 0,
            offset: 1,
            id: b"b".to_vec(),
        },
        LoggedId {
            partition: 1,
            offset: 0,
            id: b"c".to_vec(),
        },
        LoggedId {
            partition: 1,
            offset: 1,
            id: Vec::new(),
        },
    ];
    let mut restored = DedupIndex::restore(config(10), Some(snapshot), logged, 500).unwrap();
    assert_eq!(restored.stats(500).ids, 3, "the empty id is skipped");
    assert!(!is_duplicate(&mut restored, b"a", 1_000), "a kept its commit time");
    assert!(is_duplicate(&mut restored, b"b", 1_499));
    assert!(is_duplicate(&mut restored, b"c", 1_499));
    assert!(!is_duplicate(&mut restored, b"c", 1_500));
}

#[test]
fn restore_past_ids_max_keeps_the_newest() {
    let logged = (0..5).map(|i| LoggedId {
        partition: 0,
        offset: i,
        id: vec![b'a' + i as u8],
    });
    let mut snapshot = Snapshot::default();
    snapshot.entries.push(SnapshotEntry {
        id: b"z".to_vec(),
        committed_ms: 10,
        partition: 0,
        offset: 0,
    });
    let mut index = DedupIndex::restore(config(5), Some(snapshot), logged, 20).unwrap();
    let stats = index.stats(20);
    assert_eq!((stats.ids, stats.evicted_early), (5, 1));
    assert!(!is_duplicate(&mut index, b"z", 20));
}

fn sample_snapshot() -> Snapshot {
    Snapshot {
        taken_ms: 42,
        covered: vec![(0, 10), (3, -1)],
        entries: vec![
            SnapshotEntry {
                id: b"a".to_vec(),
                committed_ms: 1,
                partition: 0,
                offset: 9,
            },
            SnapshotEntry {
                id: vec![0xff; DEDUP_ID_BYTES_MAX],
                committed_ms: 2,
                partition: 3,
                offset: 0,
            },
        ],
    }
}

#[test]
fn a_snapshot_decodes_to_itself_and_any_damage_is_refused() {
    let bytes = encode_snapshot(&sample_snapshot());
    assert_eq!(decode_snapshot(&bytes), Ok(sample_snapshot()));
    for cut in 0..bytes.len() {
        assert!(decode_snapshot(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    for at in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x10;
        assert!(decode_snapshot(&flipped).is_err(), "flip at {at}");
    }
}

#[test]
fn the_file_store_keeps_the_last_durable_snapshot_and_ignores_a_damaged_one() {
    let sim = Arc::new(SimStorage::new());
    let dir = std::path::Path::new("/data/dedup/topic");
    let open = || LogDedupStore::open(sim.clone(), dir, &config(10)).unwrap();
    assert_eq!(open().load().unwrap(), None);
    open().save(&sample_snapshot()).unwrap();
    sim.crash(true, 1);
    assert_eq!(open().load().unwrap(), Some(sample_snapshot()));
    let path = dir.join(DEDUP_SNAPSHOT_FILE);
    sim.corrupt(&path, 30, 0x01).unwrap();
    assert_eq!(open().load().unwrap(), None, "a damaged snapshot is ignored");
    let mut newer = sample_snapshot();
    newer.taken_ms = 43;
    open().save(&newer).unwrap();
    assert_eq!(open().load().unwrap(), Some(newer));
    assert!(!sim.exists(&dir.join(format!("{DEDUP_SNAPSHOT_FILE}.tmp"))));
}

#[test]
fn a_save_whose_fsync_fails_leaves_the_old_snapshot_whole_across_a_crash() {
    for seed in 0..32 {
        let sim = Arc::new(SimStorage::new());
        let dir = std::path::Path::new("/d");
        let store = LogDedupStore::open(sim.clone(), dir, &config(10)).unwrap();
        store.save(&sample_snapshot()).unwrap();
        let mut newer = sample_snapshot();
        newer.entries.pop();
        sim.fail_syncs(true);
        assert!(store.save(&newer).is_err());
        sim.crash_reordered(seed);
        let loaded = LogDedupStore::open(sim.clone(), dir, &config(10))
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(loaded, Some(sample_snapshot()), "seed {seed}");
    }
}

#[test]
fn the_memory_store_keeps_bytes_and_ignores_damaged_ones() {
    let store = MemDedupStore::default();
    store.save(&sample_snapshot()).unwrap();
    assert_eq!(store.load().unwrap(), Some(sample_snapshot()));
    store.set_bytes(Some(b"VXDD garbage".to_vec()));
    assert_eq!(store.load().unwrap(), None);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
        ..ProptestConfig::default()
    })]

    /// The snapshot decoder takes any bytes without panicking, and whatever
    /// it accepts encodes back to the same bytes.
    #[test]
    fn the_snapshot_decoder_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(snapshot) = decode_snapshot(&bytes) {
            prop_assert_eq!(encode_snapshot(&snapshot), bytes);
        }
    }

    /// The same on a valid snapshot with a few bytes changed and its length
    /// cut, its checksum made right again, so that the parser gets the damage.
    #[test]
    fn the_snapshot_decoder_survives_damaged_snapshots(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let encoded = encode_snapshot(&sample_snapshot());
        let mut bytes = encoded[..encoded.len() - 4].to_vec();
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        if let Ok(snapshot) = decode_snapshot(&bytes) {
            prop_assert_eq!(encode_snapshot(&snapshot), bytes);
        }
    }
}

mod model;
