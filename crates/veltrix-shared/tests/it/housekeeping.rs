//! Retention and the collection of objects no batch needs, the same
//! scenario on the in-memory catalog and on PostgreSQL (cloud.rs).

use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use veltrix_shared::{
    BatchEntry, Catalog, CollectorConfig, MemCatalog, MergeConfig, Merger, ObjectCommit, ObjectState, OrphanCollector,
    Trimmed,
};

/// Writes an object holding one batch per `(partition, max timestamp)` of
/// `topic` and commits it, as the writer would.
pub async fn object<C: Catalog>(
    catalog: &C,
    store: &Arc<dyn ObjectStore>,
    key: &str,
    topic: &str,
    batches: &[(i32, i64)],
) {
    let body = Bytes::from(vec![b'x'; 4 * batches.len()]);
    store.put(&Path::from(key), body.clone().into()).await.unwrap();
    let batches = batches
        .iter()
        .enumerate()
        .map(|(i, &(partition, max_timestamp))| BatchEntry {
            topic: Arc::from(topic),
            partition,
            record_count: 1,
            max_timestamp,
            producer: None,
            byte_start: 4 * i as u64,
            byte_len: 4,
            crc32c: crc32c::crc32c(b"xxxx"),
        })
        .collect();
    let commit = ObjectCommit {
        key: key.into(),
        size: body.len() as u64,
        batches,
    };
    for outcome in catalog.commit(&commit).await.unwrap() {
        outcome.unwrap();
    }
}

fn trimmed(batches: u64, start_offset: i64) -> Option<Trimmed> {
    Some(Trimmed { batches, start_offset })
}

/// Partitions 0 and 1 of `topic` must exist and be empty; every time is
/// `base` plus a few ms, and `base` is after the catalog's clock (so the
/// commit times pass retention's cut too). Retention removes
/// a prefix of old batches and never a hole; an object is dropped only once
/// no partition's batch refers to it; the collector deletes dropped objects
/// from the bucket and forgets them.
pub async fn retention_scenario<C: Catalog>(catalog: &Arc<C>, store: &Arc<dyn ObjectStore>, topic: &str, base: i64) {
    let k = |n: u32| format!("veltrix/objects/0000000000000-h-{n:08}-0000000000000000");
    object(&**catalog, store, &k(1), topic, &[(0, base + 100)]).await;
    object(&**catalog, store, &k(2), topic, &[(0, base + 100), (1, base + 500)]).await;
    object(&**catalog, store, &k(3), topic, &[(0, base + 500)]).await;
    // Older than the batch before it: kept while that one is.
    object(&**catalog, store, &k(4), topic, &[(1, base + 100)]).await;

    assert_eq!(catalog.trim(topic, 0, base + 300, 100).await.unwrap(), trimmed(2, 2));
    assert_eq!(
        catalog.trim(topic, 0, base + 300, 100).await.unwrap(),
        trimmed(0, 2),
        "nothing more to remove"
    );
    assert_eq!(
        catalog.trim(topic, 1, base + 300, 100).await.unwrap(),
        trimmed(0, 0),
        "no holes"
    );
    assert_eq!(catalog.trim("no-such-topic", 0, base + 300, 100).await.unwrap(), None);
    assert_eq!(catalog.start_offset(topic, 0).await.unwrap(), Some(2));
    assert_eq!(catalog.start_offset(topic, 1).await.unwrap(), Some(0));
    assert_eq!(
        catalog.end_offset(topic, 0).await.unwrap(),
        Some(3),
        "the end does not move"
    );
    let first = catalog.batches(topic, 0, 0, 10).await.unwrap();
    assert_eq!(first.iter().map(|b| b.base_offset).collect::<Vec<_>>(), [2]);

    // Object 2 still holds partition 1's batch: only object 1 goes.
    assert_eq!(catalog.drop_released(0, 100).await.unwrap(), [k(1)]);
    let states = catalog.object_states(&[k(1), k(2), k(3)]).await.unwrap();
    assert_eq!(states[&k(1)], ObjectState::Dropped);
    assert_eq!(states[&k(2)], ObjectState::Committed);
    assert_eq!(states[&k(3)], ObjectState::Committed);

    // A bounded pass: one batch at a time.
    assert_eq!(catalog.trim(topic, 1, base + 1_000, 1).await.unwrap(), trimmed(1, 1));
    assert_eq!(catalog.trim(topic, 1, base + 1_000, 1).await.unwrap(), trimmed(1, 2));
    let mut dropped = catalog.drop_released(0, 100).await.unwrap();
    dropped.sort();
    assert_eq!(dropped, [k(2), k(4)]);
    assert!(
        catalog.drop_released(0, 100).await.unwrap().is_empty(),
        "each release is taken once"
    );
}

/// The collector's part: dropped objects deleted from the bucket and
/// forgotten, objects still needed kept.
pub async fn collect_dropped<C: Catalog>(
    collector: &OrphanCollector<C>,
    catalog: &Arc<C>,
    store: &Arc<dyn ObjectStore>,
) {
    let report = collector.run_once().await.unwrap();
    assert_eq!(report.dropped, 3, "{report:?}");
    collect_dropped_done(catalog, store).await;
}

/// After the collector: objects 1, 2 and 4 gone from the bucket and the
/// catalog, object 3 (still needed) kept.
pub async fn collect_dropped_done<C: Catalog>(catalog: &Arc<C>, store: &Arc<dyn ObjectStore>) {
    let k = |n: u32| format!("veltrix/objects/0000000000000-h-{n:08}-0000000000000000");
    for gone in [k(1), k(2), k(4)] {
        assert!(
            matches!(
                store.head(&Path::from(gone.as_str())).await,
                Err(object_store::Error::NotFound { .. })
            ),
            "{gone} deleted"
        );
    }
    assert!(
        store.head(&Path::from(k(3).as_str())).await.is_ok(),
        "object 3 is still needed"
    );
    let states = catalog.object_states(&[k(1), k(2), k(3), k(4)]).await.unwrap();
    assert_eq!(states.len(), 1, "the dropped ones are forgotten: {states:?}");
}

#[tokio::test]
async fn retention_and_released_objects_in_memory() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    retention_scenario(&catalog, &store, "t", 0).await;
    // The collector's own path, from the releases to the deletes, on a
    // fresh catalog and bucket.
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let k = |n: u32| format!("veltrix/objects/0000000000000-h-{n:08}-0000000000000000");
    object(&*catalog, &store, &k(1), "t", &[(0, 100)]).await;
    object(&*catalog, &store, &k(2), "t", &[(0, 100), (1, 500)]).await;
    object(&*catalog, &store, &k(3), "t", &[(0, 500)]).await;
    object(&*catalog, &store, &k(4), "t", &[(1, 100)]).await;
    catalog.trim("t", 0, 300, 100).await.unwrap();
    catalog.trim("t", 1, 1_000, 100).await.unwrap();
    let collector = OrphanCollector::new(
        CollectorConfig {
            grace_ms: 1_000,
            ..CollectorConfig::default()
        },
        catalog.clone(),
        store.clone(),
    )
    .unwrap();
    // Within the grace period (the catalog's clock has not moved): kept.
    assert_eq!(collector.run_once().await.unwrap().dropped, 0);
    catalog.set_now_ms(1_000);
    collect_dropped(&collector, &catalog, &store).await;
}

/// The merger, on any catalog whose clock has passed `age_min_ms` since the
/// objects were committed: partitions 0 and 1 of `topic` empty before. Five
/// small objects become one; every batch reads back the same, at the same
/// offsets, from the merged object; the old ones are released, and dropped
/// once no batch needs them; a second round has nothing left to merge.
pub async fn merge_scenario<C: Catalog>(
    catalog: &Arc<C>,
    store: &Arc<dyn ObjectStore>,
    topic: &str,
    ripen: impl AsyncFn(),
) {
    let k = |n: u32| format!("veltrix/objects/0000000000000-m-{n:08}-0000000000000000");
    object(&**catalog, store, &k(1), topic, &[(0, 1), (1, 1)]).await;
    object(&**catalog, store, &k(2), topic, &[(1, 2)]).await;
    object(&**catalog, store, &k(3), topic, &[(0, 3), (0, 3), (1, 3)]).await;
    object(&**catalog, store, &k(4), topic, &[(0, 4)]).await;
    object(&**catalog, store, &k(5), topic, &[(1, 5)]).await;
    let before: Vec<_> = [0, 1]
        .iter()
        .map(|&p| async move { catalog.batches(topic, p, 0, 100).await.unwrap() })
        .collect();
    let mut rows_before = Vec::new();
    for f in before {
        rows_before.push(f.await);
    }
    ripen().await;
    let merger = Merger::new(
        MergeConfig {
            age_min_ms: 1_000,
            ..MergeConfig::default()
        },
        catalog.clone(),
        store.clone(),
    )
    .unwrap();
    let report = merger.run_once().await.unwrap();
    assert_eq!(
        (report.objects_merged, report.batches_moved, report.batches_damaged),
        (5, 8, 0),
        "{report:?}"
    );
    assert_eq!(report.bytes, 8 * 4);
    let reader =
        veltrix_shared::Reader::new(veltrix_shared::ReaderConfig::default(), catalog.clone(), store.clone()).unwrap();
    for (p, before) in [0, 1].into_iter().zip(rows_before) {
        let after = catalog.batches(topic, p, 0, 100).await.unwrap();
        let offsets = |rows: &[veltrix_shared::BatchRow]| {
            rows.iter()
                .map(|r| (r.base_offset, r.last_offset, r.max_timestamp))
                .collect::<Vec<_>>()
        };
        assert_eq!(offsets(&after), offsets(&before), "partition {p}: the same batches");
        let merged: std::collections::BTreeSet<&str> = after.iter().map(|r| r.object_key.as_str()).collect();
        assert_eq!(merged.len(), 1, "partition {p} now reads from one object");
        let read = reader.read(topic, p, 0, 1 << 20).await.unwrap();
        assert_eq!(read.len(), before.len());
        assert!(read.iter().all(|b| &b.bytes[..] == b"xxxx"));
    }
    let mut dropped = catalog.drop_released(0, 100).await.unwrap();
    dropped.sort();
    assert_eq!(dropped, (1..=5).map(k).collect::<Vec<_>>());
    ripen().await;
    let again = merger.run_once().await.unwrap();
    assert_eq!(again.objects_merged, 0, "one object left: nothing to merge: {again:?}");
}

#[tokio::test]
async fn small_objects_are_merged_in_memory() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = catalog.clone();
    merge_scenario(&catalog, &store, "t", async || {
        clock.advance(1_000);
    })
    .await;
}

/// DeleteRecords on any catalog (partition 0 of `topic` empty before): the
/// start moves up to the offset asked, clamped to the end, never back; the
/// batches wholly below it go, the one holding it stays; their objects are
/// released once no batch needs them.
pub async fn delete_records_scenario<C: Catalog>(catalog: &Arc<C>, store: &Arc<dyn ObjectStore>, topic: &str) {
    let k = |n: u32| format!("veltrix/objects/0000000000000-d-{n:08}-0000000000000000");
    object(&**catalog, store, &k(1), topic, &[(0, 1), (0, 1)]).await;
    object(&**catalog, store, &k(2), topic, &[(0, 1)]).await;
    assert_eq!(catalog.delete_before(topic, 0, 1, 100).await.unwrap(), trimmed(1, 1));
    assert_eq!(
        catalog.delete_before(topic, 0, 0, 100).await.unwrap(),
        trimmed(0, 1),
        "never back"
    );
    assert_eq!(catalog.start_offset(topic, 0).await.unwrap(), Some(1));
    assert!(
        catalog.drop_released(0, 100).await.unwrap().is_empty(),
        "object 1 still holds offset 1"
    );
    assert_eq!(
        catalog.delete_before(topic, 0, 99, 100).await.unwrap(),
        trimmed(2, 3),
        "clamped to the end"
    );
    let mut dropped = catalog.drop_released(0, 100).await.unwrap();
    dropped.sort();
    assert_eq!(dropped, [k(1), k(2)]);
    assert!(catalog.batches(topic, 0, 0, 10).await.unwrap().is_empty());
    assert_eq!(catalog.end_offset(topic, 0).await.unwrap(), Some(3));
    assert_eq!(catalog.delete_before("no-such-topic", 0, 1, 100).await.unwrap(), None);
}

#[tokio::test]
async fn delete_records_in_memory() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 1).await.unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    delete_records_scenario(&catalog, &store, "t").await;
}

/// One idempotent batch of `producer` (epoch 0) at `first_seq` in
/// `partition` of `topic`, in an object of its own.
async fn idempotent<C: Catalog>(
    catalog: &C,
    key: &str,
    topic: &str,
    (producer, partition, first_seq): (i64, i32, i32),
) -> veltrix_shared::Appended {
    let commit = ObjectCommit {
        key: key.into(),
        size: 4,
        batches: vec![BatchEntry {
            topic: Arc::from(topic),
            partition,
            record_count: 1,
            max_timestamp: 0,
            producer: Some(veltrix_shared::ProducerStamp {
                producer_id: producer,
                epoch: 0,
                first_seq,
            }),
            byte_start: 0,
            byte_len: 4,
            crc32c: 0,
        }],
    };
    catalog.commit(&commit).await.unwrap().remove(0).unwrap()
}

const HOUR_MS: i64 = 3_600_000;

/// Partitions 0 and 1 of `topic` must exist. `age` makes every producer
/// state and orphan claim there two hours old. A producer idle for the
/// expiry is forgotten in that partition only, and its next batch is taken
/// as a new producer's; one that committed since is kept, with its
/// duplicates still recognised; a round takes at most `rows_max`. Old
/// orphan claims are pruned, recent ones kept.
pub async fn expiry_scenario<C: Catalog, F: Future<Output = ()>>(catalog: &C, topic: &str, age: impl Fn() -> F) {
    let key = |n: u32| format!("{topic}/{n}");
    idempotent(catalog, &key(1), topic, (1, 0, 0)).await;
    idempotent(catalog, &key(2), topic, (2, 0, 0)).await;
    idempotent(catalog, &key(3), topic, (2, 1, 0)).await;
    assert_eq!(catalog.claim_orphans(&[(key(100), 1)]).await.unwrap(), [key(100)]);
    assert_eq!(
        catalog.expire_producers(HOUR_MS, 100).await.unwrap(),
        0,
        "none idle yet"
    );
    assert_eq!(
        catalog.prune_orphan_claims(HOUR_MS, 100).await.unwrap(),
        0,
        "a recent claim"
    );

    age().await;
    // Producer 2 goes on in partition 0 (a retry of its last batch too).
    let next = idempotent(catalog, &key(4), topic, (2, 0, 1)).await;
    assert!(!next.duplicate);
    assert_eq!(catalog.claim_orphans(&[(key(101), 1)]).await.unwrap(), [key(101)]);
    assert_eq!(catalog.expire_producers(HOUR_MS, 1).await.unwrap(), 1, "one per round");
    assert_eq!(catalog.expire_producers(HOUR_MS, 100).await.unwrap(), 1);
    assert_eq!(catalog.expire_producers(HOUR_MS, 100).await.unwrap(), 0);
    let retry = idempotent(catalog, &key(5), topic, (2, 0, 1)).await;
    assert!(retry.duplicate, "producer 2 is remembered in partition 0");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (next.base_offset, next.last_offset)
    );
    // Forgotten: producer 1 may go on at any sequence, and producer 2 in
    // partition 1 too (a retry of its old batch would be stored again).
    let forgotten = idempotent(catalog, &key(6), topic, (1, 0, 7)).await;
    assert!(!forgotten.duplicate);
    let again = idempotent(catalog, &key(7), topic, (2, 1, 0)).await;
    assert!(!again.duplicate, "producer 2's old batch in partition 1 is new again");

    assert_eq!(catalog.prune_orphan_claims(HOUR_MS, 100).await.unwrap(), 1);
    let states = catalog.object_states(&[key(100), key(101)]).await.unwrap();
    assert_eq!(
        states.into_keys().collect::<Vec<_>>(),
        [key(101)],
        "the old claim pruned, the recent one kept"
    );
    assert_eq!(
        catalog.claim_orphans(&[(key(100), 1)]).await.unwrap(),
        [key(100)],
        "a pruned key found again is claimed again"
    );
}

#[tokio::test]
async fn idle_producers_and_old_orphan_claims_are_forgotten_in_memory() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    expiry_scenario(&*catalog, "t", async || catalog.advance(2 * HOUR_MS as u64)).await;
    // The collector's round does both, within its limits.
    catalog.claim_orphans(&[("t/200".into(), 1)]).await.unwrap();
    catalog.advance(2 * HOUR_MS as u64);
    let collector = OrphanCollector::new(
        CollectorConfig {
            producer_idle_ms: HOUR_MS as u64,
            orphan_claims_kept_ms: HOUR_MS as u64,
            rows_per_round_max: 2,
            ..CollectorConfig::default()
        },
        catalog.clone(),
        Arc::new(InMemory::new()),
    )
    .unwrap();
    let report = collector.run_once().await.unwrap();
    assert_eq!((report.producers_expired, report.claims_pruned), (2, 2), "{report:?}");
    let report = collector.run_once().await.unwrap();
    assert_eq!((report.producers_expired, report.claims_pruned), (1, 1), "{report:?}");
}
