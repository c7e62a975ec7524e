//! A topic's window on the produce path, through the broker: batches the
//! client's encoder writes, appended, read back and decoded by the client's
//! decoder; restarts from the logs alone and from a snapshot; the window's
//! end; ids it refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use veltrix_client::kafka_protocol::indexmap::IndexMap;
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::kafka_protocol::records::{Compression, Record};
use veltrix_client::{DecodeLimits, decode_batches};
use veltrix_log::Env;
use veltrix_log::sim::{SimClock, SimStorage};

use super::*;
use crate::{Broker, BrokerConfig, TopicConfig};

const T0: i64 = 1_767_225_600_000;
const WINDOW_MS: u64 = 60_000;

struct World {
    storage: SimStorage,
    clock: Arc<SimClock>,
    broker: Arc<Broker>,
}

impl World {
    fn new() -> World {
        let storage = SimStorage::new();
        let clock = Arc::new(SimClock::new(T0));
        let broker = open(&storage, &clock);
        broker
            .create_topic(
                "t",
                Some(2),
                TopicConfig {
                    dedup_window_ms: Some(WINDOW_MS),
                    ..TopicConfig::default()
                },
            )
            .unwrap();
        World { storage, clock, broker }
    }

    /// Appends one request's records for `partition` as a produce does, on
    /// the blocking pool, and waits until every reservation has ended.
    async fn produce(&self, partition: i32, records: Vec<u8>) -> Result<AppendedBatches> {
        let broker = self.broker.clone();
        let out = tokio::task::spawn_blocking(move || {
            let (p, dedup) = broker.partition_and_dedup("t", partition).unwrap();
            let appended = dedup.expect("a dedup topic").append(&p, &records)?;
            // As a produce with acks=all waits, whether or not any id is new.
            p.commit(appended.next_offset)?;
            Ok(appended)
        })
        .await
        .unwrap();
        self.settled().await;
        out
    }

    /// Polls until no id is pending (every append's fsync has ended).
    async fn settled(&self) {
        let dedup = self.broker.topic("t").unwrap().dedup.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while dedup.stats().index.pending > 0 {
            assert!(Instant::now() < deadline, "reservations still pending");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Every stored record of `partition`: (offset, id).
    fn stored(&self, partition: i32) -> Vec<(i64, String)> {
        let p = self.broker.partition("t", partition).unwrap();
        let read = p.log().read(0, 1 << 20).unwrap();
        let batches = decode_batches(&read.records, &DecodeLimits::default()).unwrap();
        batches
            .iter()
            .flat_map(|b| &b.records)
            .map(|r| {
                let id = r
                    .headers
                    .get(&StrBytes::from_static_str("message-id"))
                    .cloned()
                    .flatten()
                    .unwrap_or_default();
                (r.offset, String::from_utf8_lossy(&id).into_owned())
            })
            .collect()
    }

    fn restart(&mut self) {
        self.broker.close();
        let broker = std::mem::replace(&mut self.broker, Arc::new(open_blank()));
        drop(broker);
        self.broker = open(&self.storage, &self.clock);
    }
}

fn open(storage: &SimStorage, clock: &Arc<SimClock>) -> Arc<Broker> {
    let env = Env::new(Arc::new(storage.clone()), clock.clone(), 64);
    Arc::new(Broker::open(env, "/data", BrokerConfig::default()).unwrap())
}

/// A broker on storage of its own, to hold the place of one being reopened.
fn open_blank() -> Broker {
    let env = Env::new(Arc::new(SimStorage::new()), Arc::new(SimClock::new(T0)), 4);
    Broker::open(env, "/blank", BrokerConfig::default()).unwrap()
}

/// A batch from producer `pid` (idempotent when not -1) starting at
/// sequence `seq`, one record per id; `None` is a record without the header.
fn batch(pid: i64, seq: i32, ids: &[Option<&str>], compression: Compression) -> Vec<u8> {
    let records: Vec<Record> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let headers: IndexMap<StrBytes, Option<Bytes>> = id
                .map(|id| {
                    (
                        StrBytes::from_static_str("message-id"),
                        Some(Bytes::from(id.to_owned())),
                    )
                })
                .into_iter()
                .collect();
            Record {
                producer_id: pid,
                producer_epoch: if pid < 0 { -1 } else { 0 },
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; 20 + i])),
                headers,
                ..veltrix_client::plain_record(i as i64, if pid < 0 { -1 } else { seq + i as i32 }, T0 + i as i64)
            }
        })
        .collect();
    veltrix_client::encode_records(&records, compression).unwrap().to_vec()
}

fn ids(stored: &[(i64, String)]) -> Vec<&str> {
    stored.iter().map(|(_, id)| id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_dropped_topic_wide_and_the_rest_of_each_batch_stored_at_its_offsets() {
    let w = World::new();
    let first = w
        .produce(0, batch(1, 0, &[Some("a"), Some("b"), Some("c")], Compression::None))
        .await
        .unwrap();
    assert_eq!((first.base_offset, first.next_offset), (0, 3));
    // Another producer, another partition: the window is the topic's.
    let other = w
        .produce(1, batch(2, 0, &[Some("b"), Some("x")], Compression::Lz4))
        .await
        .unwrap();
    assert_eq!((other.base_offset, other.next_offset), (0, 2));
    assert_eq!(
        w.stored(1),
        vec![(1, "x".to_owned())],
        "b was dropped, x kept its offset"
    );
    // The first producer's next batch, partly duplicates: stored without them,
    // and its sequence numbers still count, so the batch after is in order.
    w.produce(
        0,
        batch(1, 3, &[Some("c"), Some("d"), Some("a"), Some("e")], Compression::Zstd),
    )
    .await
    .unwrap();
    let next = w
        .produce(0, batch(1, 7, &[Some("f")], Compression::Gzip))
        .await
        .unwrap();
    assert_eq!((next.base_offset, next.next_offset), (7, 8));
    assert_eq!(
        w.stored(0),
        [(0, "a"), (1, "b"), (2, "c"), (4, "d"), (6, "e"), (7, "f")]
            .map(|(o, id)| (o, id.to_owned()))
            .to_vec()
    );
    let stats = w.broker.topic("t").unwrap().dedup.clone().unwrap().stats();
    assert_eq!((stats.index.ids, stats.index.duplicates_dropped), (7, 3));
    let metrics = w.broker.metrics();
    metrics.refresh(&w.broker);
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&metrics.registry().gather())
        .unwrap();
    for line in [
        "veltrix_dedup_ids{topic=\"t\"} 7",
        "veltrix_dedup_records_total{outcome=\"dropped\",topic=\"t\"} 3",
        "veltrix_dedup_records_total{outcome=\"without_id\",topic=\"t\"} 0",
        "veltrix_dedup_window_seconds{topic=\"t\"} 60",
        "veltrix_dedup_effective_window_seconds{topic=\"t\"} 60",
        "veltrix_dedup_evicted_early_total{topic=\"t\"} 0",
    ] {
        assert!(text.contains(line), "{line} in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_only_duplicates_is_stored_as_none_and_its_retry_answered_from_the_producer_state() {
    let w = World::new();
    w.produce(0, batch(4, 0, &[Some("a"), Some("b")], Compression::None))
        .await
        .unwrap();
    // A restarted producer (a new producer id) resends both.
    let resent = batch(5, 0, &[Some("a"), Some("b")], Compression::Snappy);
    let first = w.produce(0, resent.clone()).await.unwrap();
    assert_eq!((first.base_offset, first.next_offset), (2, 4));
    let retry = w.produce(0, resent).await.unwrap();
    assert_eq!((retry.base_offset, retry.next_offset), (2, 4), "the original's offsets");
    let read = w.broker.partition("t", 0).unwrap().log().read(0, 1 << 20).unwrap();
    let batches = decode_batches(&read.records, &DecodeLimits::default()).unwrap();
    let shape: Vec<_> = batches
        .iter()
        .map(|b| (b.base_offset, b.last_offset, b.records.len()))
        .collect();
    assert_eq!(shape, vec![(0, 1, 2), (2, 3, 0)]);
    let after = w
        .produce(0, batch(5, 2, &[Some("c")], Compression::None))
        .await
        .unwrap();
    assert_eq!(after.base_offset, 4, "in sequence after the batch of none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_twice_in_one_request_is_stored_once_and_records_without_one_are_stored_and_counted() {
    let w = World::new();
    let mut records = batch(3, 0, &[Some("a"), None, Some("a")], Compression::None);
    records.extend(batch(3, 3, &[Some("a"), None], Compression::Gzip));
    w.produce(0, records).await.unwrap();
    assert_eq!(ids(&w.stored(0)), vec!["a", "", ""]);
    let stats = w.broker.topic("t").unwrap().dedup.clone().unwrap().stats();
    assert_eq!(stats.records_without_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_the_window_cannot_hold_refuse_the_partition_naming_the_record() {
    let w = World::new();
    let long = "x".repeat(crate::dedup::DEDUP_ID_BYTES_MAX_DEFAULT + 1);
    for (bad, index) in [(vec![Some("ok"), Some("")], 1), (vec![Some(long.as_str())], 0)] {
        let e = w.produce(0, batch(9, 0, &bad, Compression::None)).await.unwrap_err();
        match &e {
            CoreError::InvalidBatch {
                batch: 0,
                source:
                    InvalidBatch::Record {
                        index: i,
                        problem: RecordProblem::MessageId(_),
                    },
            } => assert_eq!(*i, index, "{e}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(w.stored(0).is_empty(), "nothing of a refused request is stored");
    assert_eq!(w.broker.topic("t").unwrap().dedup.clone().unwrap().stats().index.ids, 0);
    // Not UTF-8: an id like any other.
    let mut raw = batch(-1, 0, &[Some("placeholder")], Compression::None);
    let at = raw.windows(11).position(|s| s == b"placeholder").unwrap();
    raw[at] = 0xff;
    let crc = veltrix_log::batch::compute_crc(&raw);
    raw[17..21].copy_from_slice(&crc.to_be_bytes());
    w.produce(0, raw.clone()).await.unwrap();
    w.produce(0, raw).await.unwrap();
    assert_eq!(w.stored(0).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_survives_restarts_from_the_logs_and_from_a_snapshot() {
    let mut w = World::new();
    w.produce(0, batch(-1, 0, &[Some("a"), Some("b")], Compression::None))
        .await
        .unwrap();
    w.restart();
    // No snapshot yet: rebuilt from the log.
    w.produce(1, batch(-1, 0, &[Some("a"), Some("c")], Compression::None))
        .await
        .unwrap();
    assert_eq!(ids(&w.stored(1)), vec!["c"]);
    w.broker.tick();
    assert!(
        w.storage
            .files()
            .iter()
            .any(|p| p.ends_with(crate::dedup::DEDUP_SNAPSHOT_FILE))
    );
    w.produce(0, batch(-1, 0, &[Some("d")], Compression::None))
        .await
        .unwrap();
    w.storage.crash(false, 7);
    w.restart();
    // a, b, c from the snapshot; d from the log after it.
    w.produce(
        1,
        batch(
            -1,
            0,
            &[Some("a"), Some("b"), Some("c"), Some("d"), Some("e")],
            Compression::None,
        ),
    )
    .await
    .unwrap();
    assert_eq!(ids(&w.stored(1)), vec!["c", "e"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_resent_after_the_window_is_stored_again() {
    let w = World::new();
    w.produce(0, batch(-1, 0, &[Some("a")], Compression::None))
        .await
        .unwrap();
    w.clock.advance(WINDOW_MS - 1);
    w.produce(0, batch(-1, 0, &[Some("a")], Compression::None))
        .await
        .unwrap();
    assert_eq!(w.stored(0).len(), 1, "still within the window");
    w.clock.advance(1);
    w.produce(0, batch(-1, 0, &[Some("a")], Compression::None))
        .await
        .unwrap();
    assert_eq!(ids(&w.stored(0)), vec!["a", "a"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_longer_than_the_retention_is_refused() {
    let w = World::new();
    let e = w
        .broker
        .alter_topic_config("t", false, |c| {
            c.retention_ms = Some(1000);
            Ok(())
        })
        .unwrap_err();
    assert!(e.to_string().contains("longer than the topic's retention.ms"), "{e}");
}

/// Two producers send the same id to two partitions at once: the second
/// finds it being stored, waits for the first one's fsync instead of storing
/// it again or dropping it before it is durable, and then drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_of_an_id_being_stored_waits_for_it_and_then_drops_its_record() {
    let w = Arc::new(World::new());
    w.storage.set_sync_delay(Some(Duration::from_millis(1000)));
    let dedup = w.broker.topic("t").unwrap().dedup.clone().unwrap();
    let first = {
        let w = w.clone();
        tokio::spawn(async move {
            w.produce(0, batch(1, 0, &[Some("a"), Some("b")], Compression::None))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while dedup.stats().index.pending == 0 {
        assert!(Instant::now() < deadline, "the first produce never reserved its ids");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let second = w
        .produce(1, batch(2, 0, &[Some("b"), Some("c")], Compression::None))
        .await
        .unwrap();
    first.await.unwrap().unwrap();
    w.storage.set_sync_delay(None);
    assert_eq!((second.base_offset, second.next_offset), (0, 2));
    assert_eq!(ids(&w.stored(0)), vec!["a", "b"]);
    assert_eq!(ids(&w.stored(1)), vec!["c"]);
    assert_eq!(dedup.stats().waits, 1);
}

/// A batch of tiny records that would decompress to millions of ids is
/// refused before any id is read: the ids a request holds are bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_more_records_than_the_limit_is_refused_before_its_ids_are_read() {
    let w = World::new();
    let records: Vec<Record> = (0..=DEDUP_REQUEST_RECORDS_MAX)
        .map(|i| Record {
            headers: [(
                StrBytes::from_static_str("message-id"),
                Some(Bytes::from(format!("{i}"))),
            )]
            .into_iter()
            .collect(),
            producer_id: 7,
            producer_epoch: 0,
            ..veltrix_client::plain_record(i as i64, i as i32, T0)
        })
        .collect();
    let tiny = veltrix_client::encode_records(&records, Compression::Zstd)
        .unwrap()
        .to_vec();
    assert!(tiny.len() < 1 << 20, "{} bytes", tiny.len());
    let e = w.produce(0, tiny).await.unwrap_err();
    assert!(e.to_string().contains("at most 100000 records"), "{e}");
    assert_eq!(w.broker.topic("t").unwrap().dedup.clone().unwrap().stats().index.ids, 0);
}
