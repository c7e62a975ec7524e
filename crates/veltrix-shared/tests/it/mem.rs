//! The writer, reader and collector on the in-memory catalog and store: the
//! same rules, no services, so they run everywhere.

use std::sync::Arc;

use bytes::Bytes;
use object_store::memory::InMemory;
use veltrix_shared::{
    AppendRequest, Catalog, Error, MemCatalog, ProducerStamp, Reader, ReaderConfig, Writer, WriterConfig,
};

fn request(partition: i32, text: &str, producer: Option<ProducerStamp>) -> AppendRequest {
    AppendRequest {
        topic: Arc::from("t"),
        partition,
        record_count: 2,
        max_timestamp: 0,
        producer,
        bytes: Bytes::from(text.to_owned()),
    }
}

#[tokio::test]
async fn appends_are_answered_after_the_commit_and_read_back() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store = Arc::new(InMemory::new());
    let config = WriterConfig {
        flush_interval_ms: 5,
        ..WriterConfig::default()
    };
    let writer = Writer::start(config, catalog.clone(), store.clone()).unwrap();
    let (a, b) = tokio::join!(
        writer.append(request(0, "a", None)),
        writer.append(request(0, "b", None))
    );
    let mut bases = [a.unwrap().base_offset, b.unwrap().base_offset];
    bases.sort();
    assert_eq!(bases, [0, 2]);
    let stamp = ProducerStamp {
        producer_id: 7,
        epoch: 0,
        first_seq: 0,
    };
    let first = writer.append(request(1, "c", Some(stamp))).await.unwrap();
    let retry = writer.append(request(1, "c", Some(stamp))).await.unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (first.base_offset, true));

    catalog.set_unavailable(true);
    let err = writer.append(request(1, "d", None)).await.unwrap_err();
    assert!(matches!(err, Error::CatalogUnavailable(_)) && err.is_retriable());
    catalog.set_unavailable(false);
    assert_eq!(writer.append(request(1, "e", None)).await.unwrap().base_offset, 2);

    let reader = Reader::new(ReaderConfig::default(), catalog.clone(), store).unwrap();
    let read = reader.read("t", 1, 0, 1 << 20).await.unwrap();
    let texts: Vec<&[u8]> = read.iter().map(|b| &b.bytes[..]).collect();
    assert_eq!(texts, [&b"c"[..], &b"e"[..]]);
    writer.close().await;
}

#[tokio::test]
async fn limits_are_checked() {
    let catalog = Arc::new(MemCatalog::new());
    let store = Arc::new(InMemory::new());
    let bad = WriterConfig {
        flush_interval_ms: 0,
        ..WriterConfig::default()
    };
    assert!(matches!(
        Writer::start(bad, catalog.clone(), store.clone()),
        Err(Error::InvalidLimit {
            name: "flush_interval_ms",
            ..
        })
    ));
    let config = WriterConfig {
        batch_bytes_max: 1 << 10,
        ..WriterConfig::default()
    };
    let writer = Writer::start(config, catalog, store).unwrap();
    let mut big = request(0, "", None);
    big.bytes = Bytes::from(vec![0; 2 << 10]);
    assert!(matches!(writer.append(big).await, Err(Error::BatchTooLarge { .. })));
}

/// Objects holding partitions 0 and 1 (one flush each, `flushes` of them),
/// written through a writer on the in-memory catalog and store.
async fn interleaved(flushes: usize) -> (Arc<MemCatalog>, Arc<InMemory>) {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 2).await.unwrap();
    let store = Arc::new(InMemory::new());
    let writer = Writer::start(
        WriterConfig {
            flush_interval_ms: 1,
            ..WriterConfig::default()
        },
        catalog.clone(),
        store.clone(),
    )
    .unwrap();
    for n in 0..flushes {
        let (a, b) = tokio::join!(
            writer.append(request(0, &format!("p0-{n}"), None)),
            writer.append(request(1, &format!("p1-{n}"), None))
        );
        a.unwrap();
        b.unwrap();
    }
    writer.close().await;
    (catalog, store)
}

#[tokio::test]
async fn a_read_fetches_a_bounded_number_of_objects_and_the_next_read_goes_on() {
    let (catalog, store) = interleaved(20).await;
    let config = ReaderConfig {
        gets_per_read_max: 3,
        ..ReaderConfig::default()
    };
    let reader = Reader::new(config, catalog, store).unwrap();
    let mut offset = 0;
    let mut reads = 0;
    while offset < 40 {
        let got = reader.read("t", 0, offset, 1 << 20).await.unwrap();
        assert!(!got.is_empty() && got.len() <= 3, "{} batches", got.len());
        offset = got.last().unwrap().last_offset + 1;
        reads += 1;
    }
    assert_eq!(reads, 7, "20 objects, 3 a read");
}

#[tokio::test]
async fn an_object_fetched_whole_serves_its_other_partitions_from_the_cache() {
    let (catalog, store) = interleaved(4).await;
    let reader = Reader::new(ReaderConfig::default(), catalog, store.clone()).unwrap();
    assert_eq!(reader.gets(), (0, 0));
    assert_eq!(reader.read("t", 0, 0, 1 << 20).await.unwrap().len(), 4);
    let (gets, bytes) = reader.gets();
    assert_eq!(gets, 4, "one GET per object");
    assert!(bytes >= 4 * 8, "{bytes} bytes: the objects whole");
    // The bucket empties: partition 1's batches were in the same objects.
    let keys: Vec<_> = {
        use futures_util::TryStreamExt;
        object_store::ObjectStore::list(&*store, None)
            .map_ok(|m| m.location)
            .try_collect()
            .await
            .unwrap()
    };
    for k in keys {
        object_store::ObjectStore::delete(&*store, &k).await.unwrap();
    }
    let p1 = reader.read("t", 1, 0, 1 << 20).await.unwrap();
    let texts: Vec<&[u8]> = p1.iter().map(|b| &b.bytes[..]).collect();
    assert_eq!(texts, [&b"p1-0"[..], b"p1-1", b"p1-2", b"p1-3"]);
    assert_eq!(reader.gets(), (gets, bytes), "read from the cache: no GET");
}

#[tokio::test]
async fn a_failed_object_answers_the_batches_before_it() {
    let (catalog, store) = interleaved(3).await;
    let rows = catalog.batches("t", 0, 0, 10).await.unwrap();
    object_store::ObjectStore::delete(&*store, &object_store::path::Path::from(rows[2].object_key.as_str()))
        .await
        .unwrap();
    let reader = Reader::new(ReaderConfig::default(), catalog, store).unwrap();
    let got = reader.read("t", 0, 0, 1 << 20).await.unwrap();
    assert_eq!(got.len(), 2, "the two batches before the missing object");
    let missing = reader.read("t", 0, rows[2].base_offset, 1 << 20).await;
    assert!(matches!(missing, Err(Error::ObjectMissing(_))), "{missing:?}");
}

/// The next object is written while the current one commits: a producer's
/// batches, queued one after another over many objects, still commit in
/// order (an idempotent producer's sequences would refuse anything else).
#[tokio::test]
async fn a_producers_batches_over_many_objects_commit_in_the_order_queued() {
    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 1).await.unwrap();
    let store = Arc::new(InMemory::new());
    let config = WriterConfig {
        flush_interval_ms: 1,
        ..WriterConfig::default()
    };
    let writer = Writer::start(config, catalog.clone(), store).unwrap();
    let mut answers = Vec::new();
    for n in 0..300 {
        let stamp = ProducerStamp {
            producer_id: 9,
            epoch: 0,
            first_seq: n * 2,
        };
        answers.push(writer.submit(request(0, &format!("b{n}"), Some(stamp))).await.unwrap());
        // Spread over several objects (load shaping, not synchronisation).
        if n % 50 == 49 {
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
    }
    let mut last = -1;
    for a in answers {
        let a = a.await.unwrap();
        assert_eq!(a.base_offset, last + 1, "in order, contiguous");
        last = a.last_offset;
    }
    assert!(
        writer
            .stats()
            .objects_written
            .load(std::sync::atomic::Ordering::Relaxed)
            > 1
    );
    writer.close().await;
}

/// The flush schedule: a batch that finds the writer idle is written at
/// once; batches that come within an interval of the last object's start
/// wait for it and share one object; under steady load objects start at
/// most once per interval (the PUT rate the interval promises).
#[tokio::test(start_paused = true)]
async fn an_idle_writer_flushes_at_once_and_objects_start_at_most_once_per_interval() {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::Duration;
    use tokio::time::Instant;

    let catalog = Arc::new(MemCatalog::new());
    catalog.create_partitions("t", 4).await.unwrap();
    let store = Arc::new(InMemory::new());
    let config = WriterConfig {
        flush_interval_ms: 50,
        ..WriterConfig::default()
    };
    let interval = Duration::from_millis(50);
    let writer = Writer::start(config, catalog.clone(), store).unwrap();
    let objects = || writer.stats().objects_written.load(Relaxed);

    // Idle: answered without waiting for the interval.
    let started = Instant::now();
    writer.append(request(0, "alone", None)).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(5),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(objects(), 1);

    // Right after: these wait for the interval since that object began, and
    // go out together.
    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        writer.append(request(1, "a", None)),
        writer.append(request(2, "b", None)),
        writer.append(request(3, "c", None)),
    );
    let waited = started.elapsed();
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert!(
        waited >= Duration::from_millis(45) && waited <= interval,
        "waited {waited:?}"
    );
    assert_eq!(objects(), 2, "the three shared one object");

    // Steady load, a batch every 5 ms for one second: each waits at most an
    // interval, and objects start at most once per interval (one more for
    // the partial interval at the start).
    let before = objects();
    let writer = Arc::new(writer);
    let load_started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..200 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            writer.append(request(n % 4, "x", None)).await.unwrap();
            sent.elapsed()
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for t in tasks {
        let waited = t.await.unwrap();
        assert!(waited <= interval, "a batch waited {waited:?}");
    }
    let took = load_started.elapsed();
    let writer = Arc::into_inner(writer).expect("the tasks are done");
    let written = writer.stats().objects_written.load(Relaxed) - before;
    let allowed = (took.as_millis() / interval.as_millis()) as u64 + 1;
    assert!(written <= allowed, "{written} objects in {took:?}, at most {allowed}");
    assert!(
        written + 2 >= allowed,
        "{written} objects in {took:?}: the interval, not more, spaces them"
    );
    writer.close().await;
}
