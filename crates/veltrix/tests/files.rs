//! The broker under a low open files limit: `veltrix serve` started through
//! `prlimit` with a hard limit of 256 files serves topics with ten times more
//! partitions than that, produced to and read back through the Kafka protocol,
//! and starts again under the same limit with every record still there.
//!
//! It starts its own broker rather than using `common::start_broker`: it needs
//! the `prlimit` prefix, a configuration file, and a data directory that
//! outlives the first process, which it stops with SIGTERM for a clean close.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use veltrix_client::{Acks, BatchBuilder, Client, ClientConfig, DecodeLimits, FetchOptions, ProducerRecord};

const BIN: &str = env!("CARGO_BIN_EXE_veltrix");
/// The soft and hard limit on open files the broker runs under.
const FILES_LIMIT: u32 = 256;
const TOPICS: usize = 10;
/// Partitions per topic: 2,600 in all, over ten times the limit.
const PARTITIONS: i32 = 260;

/// A `veltrix serve` under the low limit; killed when dropped, so a failing
/// test leaves nothing running.
struct Broker {
    child: Child,
    addr: String,
    /// Everything it logged, for failure messages.
    log: Arc<Mutex<String>>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(dir: &Path, config: &Path) -> Broker {
        let mut child = Command::new("prlimit")
            .arg(format!("--nofile={FILES_LIMIT}:{FILES_LIMIT}"))
            .arg("--")
            .arg(BIN)
            .args([
                "serve",
                "--kafka-listener",
                "127.0.0.1:0",
                "--http-listener",
                "127.0.0.1:0",
            ])
            .args(["--log-format", "json", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prlimit (util-linux) runs the broker");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        // Keeps draining the log so that the broker never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["fields"]["message"] == "kafka listener ready"
                    && let Some(addr) = v["fields"]["addr"].as_str()
                {
                    let _ = tx.send(addr.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut broker = Broker {
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(addr) => broker.addr = addr,
            Err(_) => panic!("the broker did not start; its log:\n{}", broker.log()),
        }
        broker
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Stops it with SIGTERM and waits for a clean exit, against a deadline.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "the broker exited with {status}; its log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not stop; its log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
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
    // On tmpfs when there is one: what is tested is descriptors, not the disk,
    // and 2,600 partitions closed cleanly cost over 10,000 fsyncs.
    let shm = Path::new("/dev/shm");
    let data = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let config = data.path().join("veltrix.toml");
    // Room for the connections and the reserve under the limit; the handle
    // caches are shrunk to fit what is left.
    std::fs::write(&config, "[limits]\nconnections_max = 16\n").unwrap();
    let dir = data.path().join("data");

    let broker = Broker::start(&dir, &config);
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
    broker.stop();

    let broker = Broker::start(&dir, &config);
    let log = || broker.log();
    runtime().block_on(async {
        let mut client = connect(&broker.addr).await;
        check_every_record(&mut client, log).await;
    });
    assert!(
        broker.log().contains("open files limit"),
        "the limits are logged at start"
    );
    broker.stop();
}
