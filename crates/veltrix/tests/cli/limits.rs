//! Attacks on the limits of a real `veltrix serve`, on 127.0.0.1 only, each
//! bounded in connections and time: while under attack, a client connected
//! beforehand gets Metadata answered within a second, the broker's resident
//! memory stays under its request budget plus [`RSS_OVERHEAD_BYTES_MAX`], and
//! afterwards new clients are served without a restart.
//!
//! The broker is a child process (its memory, CPU time and log are its own),
//! started through `sh` when a test lowers its file descriptor limit, and
//! killed by its guard's `Drop`. Each test runs alone ([`exclusive`]): what
//! it measures must not include the rest of the suite.

use std::process::Command;
use std::time::{Duration, Instant};

use veltrix_client::{Client, ClientConfig};

use crate::common::{BrokerGuard, Serve, exclusive};

/// The default request memory budget (`in_flight_bytes_max`).
const BUDGET_BYTES: u64 = 512 << 20;
/// What the broker may use beyond its request budget: code, runtime, tables.
const RSS_OVERHEAD_BYTES_MAX: u64 = 64 << 20;

/// `veltrix serve` with the `[limits]` keys of `limits` (TOML lines) and at
/// most `nofile` file descriptors if given.
fn start(nofile: Option<u32>, limits: &str) -> BrokerGuard {
    let serve = Serve::new().config(&format!("[limits]\n{limits}\n"));
    match nofile {
        Some(n) => serve
            .wrapper(&["sh", "-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
            .start(),
        None => serve.start(),
    }
}

/// A runtime as `#[tokio::test(flavor = "multi_thread")]` builds.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// CPU time the broker used so far (user and system), in clock ticks.
fn cpu_ticks(broker: &BrokerGuard) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", broker.pid())).unwrap();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn assert_rss_within_budget(broker: &BrokerGuard) {
    let rss = broker.rss_bytes();
    assert!(
        rss < BUDGET_BYTES + RSS_OVERHEAD_BYTES_MAX,
        "resident memory {rss} bytes is over the budget plus overhead"
    );
}

async fn connect(addr: &str) -> Client {
    let config = ClientConfig {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    Client::connect(addr, config).await.expect("connected")
}

/// Metadata on `c`, answered within a second.
async fn metadata_within_a_second(c: &mut Client) {
    let answer = tokio::time::timeout(Duration::from_secs(1), c.metadata(None)).await;
    assert!(
        matches!(answer, Ok(Ok(_))),
        "Metadata not answered within a second: {answer:?}"
    );
}

/// A new client connected to `addr` gets Metadata answered within 10 s of
/// `what` (the flood, the attack) being gone.
async fn new_clients_served_within_10_s(addr: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = connect(addr).await;
            c.metadata(None).await
        })
        .await;
        if matches!(fresh, Ok(Ok(_))) {
            break;
        }
        assert!(Instant::now() < deadline, "new clients were not served after {what}");
    }
}

/// Out of file descriptors, the accept loop backs off instead of spinning: a
/// broker limited to 64 descriptors, flooded with 100 connections, uses under
/// a quarter of a core and writes a handful of log lines over two seconds,
/// keeps serving the client connected before, and accepts new clients once the
/// flood is gone.
#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off() {
    // The lock is taken outside the runtime, so that no task holds it.
    let _machine = exclusive();
    runtime().block_on(async {
        let broker = start(Some(64), "");
        let mut existing = connect(&broker.addr).await;
        metadata_within_a_second(&mut existing).await;
        let addr: std::net::SocketAddr = broker.addr.parse().unwrap();
        let flood: Vec<std::net::TcpStream> = (0..100)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !broker.logged("accept failed") {
            assert!(Instant::now() < deadline, "the broker never ran out of descriptors");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (ticks, lines) = (cpu_ticks(&broker), broker.lines());
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(2) {
            metadata_within_a_second(&mut existing).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let used = cpu_ticks(&broker) - ticks;
        let written = broker.lines() - lines;
        // Clock ticks are 1/100 s on Linux: 50 ticks is a quarter of two seconds.
        assert!(used < 50, "the broker used {used} ticks of CPU in 2 s");
        assert!(written <= 5, "the broker wrote {written} log lines in 2 s");
        assert_rss_within_budget(&broker);

        drop(flood);
        new_clients_served_within_10_s(&broker.addr, "the flood").await;
        metadata_within_a_second(&mut existing).await;
    });
}

/// Sends one frame the broker refuses (an unknown API key) on a new
/// connection and waits for the broker to close it.
fn send_malformed_frame(addr: &str) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0, 0, 0, 8, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1]).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

/// A flood of malformed frames from one address writes one warning per
/// `warning_interval_ms`, not one per frame, and the next warning after the
/// interval says how many were left out; the client connected before is
/// served throughout.
#[test]
fn a_flood_of_malformed_frames_is_logged_at_the_limiters_pace() {
    // The lock is taken outside the runtime, so that no task holds it.
    let _machine = exclusive();
    runtime().block_on(async {
        let broker = start(None, "warning_interval_ms = 3_000");
        let mut existing = connect(&broker.addr).await;
        let lines = broker.lines();
        let began = Instant::now();
        for round in 0..10 {
            let addr = broker.addr.clone();
            tokio::task::spawn_blocking(move || {
                for _ in 0..100 {
                    send_malformed_frame(&addr);
                }
            })
            .await
            .unwrap();
            metadata_within_a_second(&mut existing).await;
            assert!(
                round < 9 || began.elapsed() < Duration::from_secs(3),
                "the flood was too slow to test"
            );
        }
        assert_rss_within_budget(&broker);
        let written = broker.lines() - lines;
        assert!(written <= 3, "1000 malformed frames wrote {written} log lines");
        let refused = |broker: &BrokerGuard| {
            broker
                .messages()
                .iter()
                .filter(|v| v["fields"]["message"] == "refusing request; closing the connection")
                .map(|v| v["fields"]["suppressed"].as_u64().unwrap())
                .collect::<Vec<u64>>()
        };
        assert_eq!(refused(&broker), vec![0]);
        // Past the interval, the next one is logged with the count left out.
        while began.elapsed() < Duration::from_millis(3_100) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        send_malformed_frame(&broker.addr);
        let deadline = Instant::now() + Duration::from_secs(5);
        while refused(&broker).len() < 2 {
            assert!(
                Instant::now() < deadline,
                "the warning after the interval was not logged"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(refused(&broker), vec![0, 999]);
        metadata_within_a_second(&mut existing).await;
    });
}

/// On SIGTERM the broker stops accepting, answers the requests in flight, and
/// only then closes its logs and exits: a fetch waiting for data (up to 20 s)
/// when the signal comes is answered at once, before "stopped cleanly", and
/// the process exits with success.
#[test]
fn on_sigterm_requests_in_flight_are_answered_before_the_logs_close() {
    // The lock is taken outside the runtime, so that no task holds it.
    let _machine = exclusive();
    runtime().block_on(async {
        let mut broker = start(None, "shutdown_drain_ms_max = 5_000");
        let mut admin = connect(&broker.addr).await;
        admin.create_topic("t", Some(1), &[]).await.unwrap();
        let mut consumer = connect(&broker.addr).await;
        let options = veltrix_client::FetchOptions {
            max_wait: Duration::from_secs(20),
            ..veltrix_client::FetchOptions::default()
        };
        let waiting = tokio::spawn(async move { consumer.fetch("t", &[(0, 0)], &options).await });
        // The fetch is in flight once the broker holds its bytes in the budget.
        let deadline = Instant::now() + Duration::from_secs(5);
        while broker.metric("veltrix_kafka_in_flight_bytes") == 0.0 {
            assert!(Instant::now() < deadline, "the fetch never reached the broker");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let signalled = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &broker.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let answer = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the fetch was answered")
            .unwrap();
        assert!(answer.is_ok(), "the fetch in flight was not answered: {answer:?}");
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "the fetch was answered only after {:?}",
            signalled.elapsed()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(exit) = broker.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "the broker did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(exit.success(), "{exit:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !broker.logged("stopped cleanly") {
            assert!(Instant::now() < deadline, "no clean stop in the log");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Announces a request of `len` bytes on a new connection and sends `sent`
/// of them; the connection is kept open.
fn announce(addr: &str, len: i32, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(&len.to_be_bytes()).unwrap();
    s.write_all(&vec![0u8; sent]).unwrap();
    s
}

/// The report's attacks at once, on the default budget: six connections that
/// announce 100 MiB requests and stall after 8 bytes, three that send whole
/// 100 MiB frames of garbage, and 100 more connections than
/// `connections_max` allows. Metadata on a connection opened before is answered
/// within a second throughout, resident memory stays under the budget plus
/// the overhead, the stalled ones are cut off after `request_body_ms_max`, the
/// extra ones at once, and new clients are served afterwards.
#[test]
fn the_reported_attacks_leave_the_broker_serving_within_its_memory() {
    // The lock is taken outside the runtime, so that no task holds it.
    let _machine = exclusive();
    runtime().block_on(async {
        let broker = start(None, "request_body_ms_max = 2_000\nconnections_max = 50");
        let mut existing = connect(&broker.addr).await;
        metadata_within_a_second(&mut existing).await;
        let addr = broker.addr.clone();
        let attack = tokio::task::spawn_blocking(move || {
            let stalled: Vec<_> = (0..6).map(|_| announce(&addr, 100 << 20, 8)).collect();
            let heavy: Vec<_> = (0..3).map(|_| announce(&addr, 100 << 20, 100 << 20)).collect();
            let crowd: Vec<_> = (0..100)
                .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
                .collect();
            (stalled, heavy, crowd)
        });
        let began = Instant::now();
        let mut rss_max = 0;
        while !attack.is_finished() || began.elapsed() < Duration::from_secs(3) {
            metadata_within_a_second(&mut existing).await;
            rss_max = rss_max.max(broker.rss_bytes());
            assert_rss_within_budget(&broker);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(began.elapsed() < Duration::from_secs(30), "the attack did not finish");
        }
        let (stalled, _heavy, crowd) = attack.await.unwrap();
        assert!(broker.metric("veltrix_kafka_connections_refused_total") > 0.0);
        assert!(broker.metric("veltrix_kafka_connections") <= 50.0);
        // The stalled requests were cut off (2 s, and they had started at once).
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.metric("veltrix_kafka_in_flight_bytes") > 0.0 {
            assert!(Instant::now() < deadline, "stalled requests kept their budget");
            metadata_within_a_second(&mut existing).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop((stalled, crowd));
        new_clients_served_within_10_s(&broker.addr, "the attack").await;
        assert_rss_within_budget(&broker);
        eprintln!("resident memory at most {} MiB during the attack", rss_max >> 20);
    });
}
