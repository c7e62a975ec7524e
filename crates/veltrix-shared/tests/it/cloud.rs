//! Shared storage against real services: a PostgreSQL cluster and a moto S3
//! server, started by the tests (tests/it/support.rs). Skipped, loudly, only when
//! the services are not installed (scripts/cloud-services install).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::{self, Moto, Postgres};
use bytes::Bytes;
use object_store::ObjectStore;
use object_store::path::Path;
use veltrix_shared::{
    AppendRequest, Appended, Catalog, CollectorConfig, Error, ObjectCommit, OrphanCollector, PgCatalog, PgConfig,
    ProducerStamp, Reader, ReaderConfig, S3Config, Writer, WriterConfig,
};

const BUCKET: &str = "veltrix-test";
const TOPIC: &str = "events";

struct Env {
    pg: Postgres,
    moto: Moto,
    catalog: Arc<PgCatalog>,
    store: Arc<dyn ObjectStore>,
}

impl Env {
    async fn start() -> Option<Env> {
        let binaries = support::binaries()?;
        let (pg, moto) = tokio::task::spawn_blocking(|| {
            let pg = Postgres::start(binaries);
            let moto = Moto::start(binaries);
            moto.create_bucket(BUCKET);
            (pg, moto)
        })
        .await
        .unwrap();
        let catalog = Arc::new(open_catalog(&pg).await.expect("catalog opens"));
        catalog.create_partitions(TOPIC, 4).await.unwrap();
        let store = S3Config {
            bucket: BUCKET.into(),
            endpoint: Some(moto.endpoint()),
            allow_http: true,
            request_timeout_ms: 1_000,
            connect_timeout_ms: 500,
            retries_max: 1,
            static_credentials: Some(("test".into(), "test".into())),
            ..S3Config::default()
        }
        .build()
        .unwrap();
        Some(Env {
            pg,
            moto,
            catalog,
            store,
        })
    }

    fn writer(&self, id: &str) -> Writer {
        self.writer_on(id, self.catalog.clone())
    }

    fn writer_on(&self, id: &str, catalog: Arc<PgCatalog>) -> Writer {
        let config = WriterConfig {
            flush_interval_ms: 10,
            put_timeout_ms: 3_000,
            commit_timeout_ms: 3_000,
            writer_id: id.into(),
            ..WriterConfig::default()
        };
        Writer::start(config, catalog, self.store.clone()).unwrap()
    }

    fn reader(&self, cache_bytes_max: usize) -> Reader<PgCatalog> {
        let config = ReaderConfig {
            cache_bytes_max,
            get_timeout_ms: 2_000,
            ..ReaderConfig::default()
        };
        Reader::new(config, self.catalog.clone(), self.store.clone()).unwrap()
    }
}

async fn open_catalog(pg: &Postgres) -> veltrix_shared::Result<PgCatalog> {
    PgCatalog::open(&PgConfig {
        url: pg.url(),
        connect_timeout_ms: 1_000,
        statement_timeout_ms: 1_000,
        ..PgConfig::default()
    })
    .await
}

fn batch(partition: i32, records: i32, text: &str) -> AppendRequest {
    AppendRequest {
        topic: Arc::from(TOPIC),
        partition,
        record_count: records,
        max_timestamp: 1_700_000_000_000,
        producer: None,
        bytes: Bytes::from(text.to_owned()),
    }
}

/// Every batch of a partition from offset 0, as (base offset, bytes).
async fn read_all(reader: &Reader<PgCatalog>, partition: i32) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let batches = reader.read(TOPIC, partition, offset, 1 << 20).await.unwrap();
        let Some(last) = batches.last() else { return out };
        offset = last.last_offset + 1;
        for b in batches {
            out.push((b.base_offset, String::from_utf8(b.bytes.to_vec()).unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_then_fetch_round_trip() {
    let Some(env) = Env::start().await else { return };
    let writer = Arc::new(env.writer("a"));
    let mut sends = Vec::new();
    for i in 0..40 {
        let writer = writer.clone();
        sends.push(tokio::spawn(async move {
            let partition = i % 4;
            let answer = writer.append(batch(partition, 3, &format!("batch {i}"))).await;
            (partition, i, answer.unwrap())
        }));
    }
    let mut expected: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for send in sends {
        let (partition, i, appended) = send.await.unwrap();
        assert_eq!(appended.last_offset, appended.base_offset + 2);
        expected
            .entry(partition)
            .or_default()
            .push((appended.base_offset, format!("batch {i}")));
    }
    let objects = writer
        .stats()
        .objects_written
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(objects < 40, "batches share objects: {objects} objects for 40 batches");
    let reader = env.reader(1 << 20);
    for (partition, mut batches) in expected {
        batches.sort();
        let bases: Vec<i64> = batches.iter().map(|(b, _)| *b).collect();
        assert_eq!(bases, (0..10).map(|i| i * 3).collect::<Vec<_>>(), "contiguous offsets");
        assert_eq!(read_all(&reader, partition).await, batches);
        assert_eq!(reader.end_offset(TOPIC, partition).await.unwrap(), Some(30));
        // From an offset inside a batch: that batch first.
        let middle = reader.read(TOPIC, partition, 4, 1).await.unwrap();
        assert_eq!(
            (middle.len(), middle[0].base_offset),
            (1, 3),
            "one batch at least, the one holding 4"
        );
    }
    assert!(reader.cache_bytes() > 0);
    // Cached batches are served with the bucket unreachable.
    env.moto.pause();
    assert_eq!(read_all(&reader, 0).await.len(), 10);
    env.moto.resume();
    assert_eq!(
        reader.read(TOPIC, 0, 30, 1 << 20).await.unwrap(),
        vec![],
        "nothing past the end"
    );
    assert_eq!(reader.end_offset(TOPIC, 9).await.unwrap(), None);
    let unknown = writer.append(batch(9, 1, "nowhere")).await;
    assert!(matches!(unknown, Err(Error::UnknownPartition { partition: 9, .. })));
    // The schema is migrated once; a database from a newer build is refused.
    assert!(open_catalog(&env.pg).await.is_ok());
    let raw = veltrix_shared_test_sql(&env, "INSERT INTO veltrix_schema VALUES (99)").await;
    assert!(raw.is_ok());
    assert!(matches!(
        open_catalog(&env.pg).await,
        Err(Error::SchemaTooNew { found: 99, .. })
    ));
}

async fn veltrix_shared_test_sql(env: &Env, sql: &str) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(&env.pg.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute(sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_get_contiguous_offsets() {
    let Some(env) = Env::start().await else { return };
    // Two brokers: their own writers and their own connections.
    let other = Arc::new(open_catalog(&env.pg).await.unwrap());
    let writers = [Arc::new(env.writer("a")), Arc::new(env.writer_on("b", other))];
    let mut sends = Vec::new();
    for i in 0..400 {
        let writer = writers[i % 2].clone();
        sends.push(tokio::spawn(async move {
            let partition = (i / 2 % 4) as i32;
            let records = (i % 3 + 1) as i32;
            let text = format!("w{} #{i}", i % 2);
            let appended = writer.append(batch(partition, records, &text)).await.unwrap();
            (partition, records, text, appended)
        }));
    }
    let mut by_partition: BTreeMap<i32, Vec<(i64, i64, String)>> = BTreeMap::new();
    for send in sends {
        let (partition, records, text, a) = send.await.unwrap();
        assert_eq!(a.last_offset - a.base_offset + 1, i64::from(records));
        by_partition
            .entry(partition)
            .or_default()
            .push((a.base_offset, a.last_offset, text));
    }
    let reader = env.reader(0);
    for (partition, mut batches) in by_partition {
        batches.sort();
        let mut next = 0;
        for (base, last, _) in &batches {
            assert_eq!(*base, next, "partition {partition}: no gap, no overlap");
            next = last + 1;
        }
        assert_eq!(reader.end_offset(TOPIC, partition).await.unwrap(), Some(next));
        let stored = read_all(&reader, partition).await;
        let acked: Vec<(i64, String)> = batches.into_iter().map(|(b, _, t)| (b, t)).collect();
        assert_eq!(stored, acked, "everything acknowledged is there, once");
    }
}

fn stamped(partition: i32, records: i32, producer_id: i64, first_seq: i32) -> AppendRequest {
    AppendRequest {
        producer: Some(ProducerStamp {
            producer_id,
            epoch: 0,
            first_seq,
        }),
        ..batch(partition, records, &format!("p{producer_id} s{first_seq}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_gets_the_original_offsets() {
    let Some(env) = Env::start().await else { return };
    let writer = env.writer("a");
    writer.append(batch(1, 2, "before")).await.unwrap();
    let first = writer.append(stamped(1, 5, 42, 0)).await.unwrap();
    assert_eq!((first.base_offset, first.duplicate), (2, false));
    let second = writer.append(stamped(1, 5, 42, 5)).await.unwrap();
    assert_eq!(second.base_offset, 7);
    // The retry, through another broker: the original's offsets, nothing added.
    let other = env.writer_on("b", Arc::new(open_catalog(&env.pg).await.unwrap()));
    let retry = other.append(stamped(1, 5, 42, 0)).await.unwrap();
    assert_eq!(
        retry,
        Appended {
            base_offset: 2,
            last_offset: 6,
            duplicate: true
        }
    );
    let gap = other.append(stamped(1, 1, 42, 20)).await;
    assert!(
        matches!(
            gap,
            Err(Error::OutOfOrderSequence {
                expected: 10,
                got: 20,
                ..
            })
        ),
        "{gap:?}"
    );
    assert_eq!(env.catalog.end_offset(TOPIC, 1).await.unwrap(), Some(12));
    let stored = read_all(&env.reader(0), 1).await;
    assert_eq!(stored.len(), 3, "the retry was not stored again: {stored:?}");
}

/// Polls `f` until it returns `Some`, within a deadline.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < end, "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_write_nothing_acknowledged_then_recovers() {
    let Some(mut env) = Env::start().await else { return };
    let writer = env.writer("a");
    writer.append(batch(0, 1, "one")).await.unwrap();
    tokio::task::block_in_place(|| env.pg.stop());
    let started = Instant::now();
    let refused = writer.append(batch(0, 1, "lost")).await;
    let err = refused.expect_err("nothing acknowledged without PostgreSQL");
    assert!(err.is_retriable(), "{err:?}");
    assert!(matches!(err, Error::CatalogUnavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within the timeouts"
    );
    tokio::task::block_in_place(|| env.pg.restart());
    // The writer reconnects by itself.
    let appended = eventually("a commit after the restart", || async {
        writer.append(batch(0, 1, "two")).await.ok()
    })
    .await;
    assert_eq!(appended.base_offset, 1, "the refused batch took no offset");
    let stored = read_all(&env.reader(0), 0).await;
    assert_eq!(stored, vec![(0, "one".into()), (1, "two".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_unreachable_nothing_acknowledged_then_recovers() {
    let Some(env) = Env::start().await else { return };
    let writer = env.writer("a");
    writer.append(batch(2, 1, "one")).await.unwrap();
    env.moto.pause();
    let started = Instant::now();
    let err = writer
        .append(batch(2, 1, "lost"))
        .await
        .expect_err("no ack without the bucket");
    assert!(matches!(err, Error::StoreUnavailable(_)), "{err:?}");
    assert!(err.is_retriable());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered within put_timeout_ms"
    );
    assert_eq!(env.catalog.end_offset(TOPIC, 2).await.unwrap(), Some(1));
    env.moto.resume();
    let appended = eventually("a write after the bucket is back", || async {
        writer.append(batch(2, 1, "two")).await.ok()
    })
    .await;
    assert_eq!(appended.base_offset, 1);
    let stored = read_all(&env.reader(0), 2).await;
    assert_eq!(stored, vec![(0, "one".into()), (1, "two".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_object_is_collected_and_never_committed_after() {
    let Some(env) = Env::start().await else { return };
    let writer = env.writer("a");
    writer.append(batch(3, 1, "kept")).await.unwrap();
    // A writer that died between its PUT and its commit.
    let orphan = "veltrix/objects/0000000000000-dead-00000001-0000000000000000";
    env.store
        .put(&Path::from(orphan), Bytes::from_static(b"never committed").into())
        .await
        .unwrap();
    let collector = OrphanCollector::new(
        CollectorConfig {
            grace_ms: 1_000,
            ..CollectorConfig::default()
        },
        env.catalog.clone(),
        env.store.clone(),
    )
    .unwrap();
    let young = collector.run_once().await.unwrap();
    assert_eq!((young.listed, young.orphans), (2, 0), "nothing within its grace period");
    let report = eventually("the grace period to pass", || async {
        let r = collector.run_once().await.unwrap();
        (r.deleted > 0).then_some(r)
    })
    .await;
    assert_eq!((report.orphans, report.deleted), (1, 1));
    assert!(matches!(
        env.store.head(&Path::from(orphan)).await,
        Err(object_store::Error::NotFound { .. })
    ));
    // Its late commit is refused: the collector claimed the key first.
    let late = ObjectCommit {
        key: orphan.into(),
        size: 15,
        batches: vec![veltrix_shared::BatchEntry {
            topic: Arc::from(TOPIC),
            partition: 3,
            record_count: 1,
            max_timestamp: 0,
            producer: None,
            byte_start: 0,
            byte_len: 15,
            crc32c: 0,
        }],
    };
    assert!(matches!(
        env.catalog.commit(&late).await,
        Err(Error::ObjectCollected(_))
    ));
    assert_eq!(read_all(&env.reader(0), 3).await, vec![(0, "kept".into())]);
    let again = collector.run_once().await.unwrap();
    assert_eq!((again.listed, again.orphans), (1, 0), "the committed object stays");
}

/// Retention on PostgreSQL: the in-memory catalog's scenario
/// (housekeeping.rs), then the collector finds the dropped objects by its
/// listing (their releases were taken above) and deletes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_a_prefix_and_objects_no_batch_needs_are_deleted() {
    let Some(env) = Env::start().await else { return };
    env.catalog.create_partitions("retained", 2).await.unwrap();
    // An hour ahead of the server's clock: the objects' commit times pass.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 3_600_000;
    crate::housekeeping::retention_scenario(&env.catalog, &env.store, "retained", base).await;
    let collector = OrphanCollector::new(
        CollectorConfig {
            grace_ms: 1_000,
            ..CollectorConfig::default()
        },
        env.catalog.clone(),
        env.store.clone(),
    )
    .unwrap();
    eventually("the dropped objects to pass the grace period", || async {
        let r = collector.run_once().await.unwrap();
        (r.dropped > 0).then_some(())
    })
    .await;
    crate::housekeeping::collect_dropped_done(&env.catalog, &env.store).await;
}

/// Idle producers and old orphan claims on PostgreSQL: the in-memory
/// scenario (housekeeping.rs), aged by moving the rows' times back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producers_and_old_orphan_claims_are_forgotten() {
    let Some(env) = Env::start().await else { return };
    env.catalog.create_partitions("expiring", 2).await.unwrap();
    crate::housekeeping::expiry_scenario(&*env.catalog, "expiring", async || {
        veltrix_shared_test_sql(
            &env,
            "UPDATE veltrix_producers SET updated_at = now() - interval '2 hours' WHERE topic = 'expiring'; \
             UPDATE veltrix_objects SET recorded_at = now() - interval '2 hours' \
             WHERE state = 'orphan' AND key LIKE 'expiring/%'",
        )
        .await
        .unwrap();
    })
    .await;
}

/// DeleteRecords on PostgreSQL: the in-memory scenario (housekeeping.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_start_and_releases_the_objects_below() {
    let Some(env) = Env::start().await else { return };
    env.catalog.create_partitions("deleted", 1).await.unwrap();
    crate::housekeeping::delete_records_scenario(&env.catalog, &env.store, "deleted").await;
}

/// The merger on PostgreSQL and moto: the in-memory scenario
/// (housekeeping.rs), the objects' ages by the server's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_objects_are_merged_and_read_back_the_same() {
    let Some(env) = Env::start().await else { return };
    env.catalog.create_partitions("merged", 2).await.unwrap();
    // The merger leaves objects younger than a second alone: waiting for
    // the server's clock to pass that is the rule under test.
    crate::housekeeping::merge_scenario(&env.catalog, &env.store, "merged", async || {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_or_missing_object_fails_that_read_only() {
    let Some(env) = Env::start().await else { return };
    let writer = env.writer("a");
    writer.append(batch(0, 1, "first object")).await.unwrap();
    writer.append(batch(1, 1, "second object")).await.unwrap();
    let reader = env.reader(0);
    let key_of = |rows: Vec<veltrix_shared::BatchRow>| rows[0].object_key.clone();
    let first = key_of(env.catalog.batches(TOPIC, 0, 0, 1).await.unwrap());
    let second = key_of(env.catalog.batches(TOPIC, 1, 0, 1).await.unwrap());
    assert_ne!(first, second);
    // Same length, other bytes.
    env.store
        .put(&Path::from(first.as_str()), Bytes::from_static(b"FIRST OBJECT").into())
        .await
        .unwrap();
    let damaged = reader.read(TOPIC, 0, 0, 1 << 20).await;
    assert!(matches!(damaged, Err(Error::ObjectCorrupt { .. })), "{damaged:?}");
    // Shorter than committed.
    env.store
        .put(&Path::from(first.as_str()), Bytes::from_static(b"short").into())
        .await
        .unwrap();
    let short = reader.read(TOPIC, 0, 0, 1 << 20).await;
    assert!(matches!(short, Err(Error::ObjectCorrupt { .. })), "{short:?}");
    env.store.delete(&Path::from(first.as_str())).await.unwrap();
    let missing = reader.read(TOPIC, 0, 0, 1 << 20).await;
    assert!(matches!(missing, Err(Error::ObjectMissing(_))), "{missing:?}");
    assert!(!missing.unwrap_err().is_retriable());
    // Other partitions are served as before.
    assert_eq!(read_all(&reader, 1).await, vec![(0, "second object".into())]);
}

fn percentiles(mut micros: Vec<u128>) -> String {
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n = {})",
        at(0.5),
        at(0.99),
        at(1.0),
        micros.len()
    )
}

/// Latencies against the local services, printed; run by hand:
/// `cargo test -p veltrix-shared --test cloud -- --ignored --nocapture measure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn measure_flush_latency() {
    let Some(env) = Env::start().await else { return };
    let flushes = 300;
    let batch_bytes = 16 << 10;
    let (mut puts, mut commits) = (Vec::new(), Vec::new());
    for n in 0..flushes {
        let body = Bytes::from(vec![b'x'; batch_bytes * 16]);
        let key = format!("veltrix/objects/measure-{n:06}");
        let started = Instant::now();
        env.store.put(&Path::from(key.as_str()), body.into()).await.unwrap();
        puts.push(started.elapsed().as_micros());
        let batches = (0..16)
            .map(|i| veltrix_shared::BatchEntry {
                topic: Arc::from(TOPIC),
                partition: i % 4,
                record_count: 10,
                max_timestamp: 0,
                producer: Some(ProducerStamp {
                    producer_id: i64::from(i),
                    epoch: 0,
                    first_seq: n * 10,
                }),
                byte_start: (i as usize * batch_bytes) as u64,
                byte_len: batch_bytes as u32,
                crc32c: 0,
            })
            .collect();
        let object = ObjectCommit {
            key,
            size: (batch_bytes * 16) as u64,
            batches,
        };
        let started = Instant::now();
        let outcomes = env.catalog.commit(&object).await.unwrap();
        commits.push(started.elapsed().as_micros());
        assert!(outcomes.iter().all(|o| o.is_ok()));
    }
    println!("PUT of a 256 KiB object: {}", percentiles(puts));
    println!(
        "commit of 16 idempotent batches over 4 partitions: {}",
        percentiles(commits)
    );
    // Acknowledgement latency through the writer, 50 ms flush interval,
    // 8 producers each sending one batch after the other.
    let writer = Arc::new(
        Writer::start(
            WriterConfig {
                flush_interval_ms: 50,
                writer_id: "measure".into(),
                ..WriterConfig::default()
            },
            env.catalog.clone(),
            env.store.clone(),
        )
        .unwrap(),
    );
    let mut tasks = Vec::new();
    for p in 0..8 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for _ in 0..60 {
                let mut request = batch(p % 4, 10, "");
                request.bytes = Bytes::from(vec![b'y'; batch_bytes]);
                let started = Instant::now();
                writer.append(request).await.unwrap();
                acks.push(started.elapsed().as_micros());
            }
            acks
        }));
    }
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.unwrap());
    }
    let objects = writer
        .stats()
        .objects_written
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "append acknowledged, 50 ms flush interval, 8 producers, 16 KiB batches: {} over {objects} objects",
        percentiles(acks)
    );
}
