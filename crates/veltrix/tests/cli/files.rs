//! The broker under a low open files limit: `veltrix serve` started through
//! `prlimit` with a hard limit of 256 files serves topics with ten times more
//! partitions than that, produced to and read back through the Kafka protocol,
//! and starts again under the same limit with every record still there.
//!
//! The data directory outlives the first process, which is stopped with
//! SIGTERM for a clean close. The test runs alone ([`exclusive`]): it holds
//! thousands of files and fsyncs as many at each close.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use veltrix_client::{Acks, BatchBuilder, Client, ClientConfig, DecodeLimits, FetchOptions, ProducerRecord};

use crate::common::{BrokerGuard, Serve, exclusive};

/// The soft and hard limit on open files the broker runs under.
const FILES_LIMIT: u32 = 256;
const TOPICS: usize = 10;
/// Partitions per topic: 2,600 in all, over ten times the limit.
const PARTITIONS: i32 = 260;
/// How long a clean stop of 2,600 partitions may take.
const STOP_MS_MAX: u64 = 300_000;

/// A `veltrix serve` under the low limit, on `dir`.
fn start(dir: &Path) -> BrokerGuard {
    Serve::new()
        .wrapper(&["prlimit", &format!("--nofile={FILES_LIMIT}:{FILES_LIMIT}"), "--"])
        // Room for the connections and the reserve under the limit; the
        // handle caches are shrunk to fit what is left.
        .config("[limits]\nconnections_max = 16\n")
        .data_dir(dir)
        .start()
}

fn topic(t: usize) -> String {
    format!("many-{t}")
}

fn value(t: usize, p: i32) -> Bytes {
    Bytes::from(format!("record of {} partition {p}", topic(t)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(addr: &str) -> Client {
    let config = ClientConfig {
        request_timeout: Duration::from_secs(120),
        ..ClientConfig::default()
    };
    Client::connect(addr, config).await.expect("connect")
}

/// Every partition holds exactly the one record produced to it.
async fn check_every_record(client: &mut Client, log: impl Fn() -> String) {
    let options = FetchOptions {
        max_wait: Duration::ZERO,
        bytes_max: 8 << 20,
        partition_bytes_max: 4096,
    };
    for t in 0..TOPICS {
        let wanted: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
        let fetched = client.fetch(&topic(t), &wanted, &options).await.expect("fetch");
        assert_eq!(fetched.len(), PARTITIONS as usize);
        for f in fetched {
            assert!(
                f.error.is_none(),
                "{} partition {}: {:?}; log:\n{}",
                topic(t),
                f.partition,
                f.error,
                log()
            );
            let batches = veltrix_client::decode_batches(&f.records, &DecodeLimits::default()).unwrap();
            let values: Vec<Option<Bytes>> = batches
                .iter()
                .flat_map(|b| b.records.iter().map(|r| r.value.clone()))
                .collect();
            assert_eq!(
                values,
                vec![Some(value(t, f.partition))],
                "{} partition {}",
                topic(t),
                f.partition
            );
        }
    }
}

#[test]
fn a_broker_with_a_low_file_limit_serves_and_restarts_with_ten_times_more_partitions() {
    let _machine = exclusive();
    // On tmpfs when there is one: what is tested is descriptors, not the disk,
    // and 2,600 partitions closed cleanly cost over 10,000 fsyncs.
    let shm = Path::new("/dev/shm");
    let data = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let dir = data.path().join("data");

    let mut broker = start(&dir);
    let log = || broker.log();
    runtime().block_on(async {
        let mut client = connect(&broker.addr).await;
        for t in 0..TOPICS {
            if let Err(e) = client.create_topic(&topic(t), Some(PARTITIONS), &[]).await {
                panic!("creating {}: {e}; log:\n{}", topic(t), log());
            }
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        for t in 0..TOPICS {
            let mut batches = Vec::new();
            for p in 0..PARTITIONS {
                let mut builder = BatchBuilder::new(1024).unwrap();
                let record = ProducerRecord {
                    key: None,
                    value: Some(value(t, p)),
                    headers: Vec::new(),
                    // Now: an older record could be past the default retention.
                    timestamp_ms: now_ms,
                };
                builder.try_push(record).unwrap();
                batches.push((p, builder.build().unwrap()));
            }
            let acks = client
                .produce(&topic(t), Acks::All, batches)
                .await
                .expect("produce")
                .unwrap();
            for ack in acks {
                assert_eq!(
                    ack.result,
                    Ok(0),
                    "{} partition {}; log:\n{}",
                    topic(t),
                    ack.partition,
                    log()
                );
            }
        }
        check_every_record(&mut client, log).await;
    });
    broker.stop_and_restart(Duration::from_millis(STOP_MS_MAX));
    let log = || broker.log();
    runtime().block_on(async {
        let mut client = connect(&broker.addr).await;
        check_every_record(&mut client, log).await;
    });
    assert!(
        broker.log().contains("open files limit"),
        "the limits are logged at start"
    );
    broker.stop(Duration::from_millis(STOP_MS_MAX));
}
