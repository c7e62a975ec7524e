//! Memory limits of the Kafka front door.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
use kafka_protocol::records::Compression;
use tokio::io::AsyncWriteExt;
use veltrix_kafka::errors;

use super::{Client, create_topic, produce, records, start, until_in_flight};

/// A Metadata request on `c`, which must be answered within a second.
async fn metadata_within_a_second(c: &mut Client) {
    let asked = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(1), c.call(MetadataRequest::default(), 9)).await;
    assert!(answer.is_ok(), "Metadata unanswered after {:?}", asked.elapsed());
}

/// Whether the broker closes `c` within `within`.
async fn closed_within(c: &mut Client, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tokio::io::AsyncReadExt::read(&mut c.stream, &mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// How many of `clients` the broker has closed.
async fn closed(clients: &mut [Client]) -> usize {
    let mut n = 0;
    for c in clients {
        if closed_within(c, Duration::from_millis(1)).await {
            n += 1;
        }
    }
    n
}

/// A fresh connection is served: the broker recovered without a restart.
async fn a_new_connection_is_served(addr: SocketAddr) {
    let mut c = Client::connect(addr).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, errors::NONE);
}

/// A request that does not fit the global in-flight budget waits until another
/// request's bytes are released: here connection A announces a 4000-byte request
/// and stalls mid-body, holding the whole budget; B's small request is answered
/// only after A's connection goes away.
#[tokio::test]
async fn requests_wait_for_the_global_in_flight_budget() {
    let s = start(|k| {
        k.request_bytes_max = 4000;
        k.in_flight_bytes_max = 4000;
    })
    .await;
    let mut a = Client::connect(s.addr).await;
    a.stream.write_all(&4000i32.to_be_bytes()).await.unwrap();
    a.stream.write_all(&[0u8; 100]).await.unwrap();
    until_in_flight(&s, Duration::from_secs(5)).await;

    let mut b = Client::connect(s.addr).await;
    let mut waiting = tokio::spawn(async move { b.call(ApiVersionsRequest::default(), 3).await });
    let early = tokio::time::timeout(Duration::from_millis(300), &mut waiting).await;
    assert!(early.is_err(), "B was served while A held the whole budget");

    drop(a);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting).await;
    assert_eq!(
        answer
            .expect("B served once A's bytes were released")
            .unwrap()
            .error_code,
        errors::NONE
    );
}

/// A small request that stops arriving is cut off after `request_body_ms_max`
/// and its share of the budget released: B, waiting behind A's stalled 4000
/// bytes, is answered, and A's connection is closed.
#[tokio::test]
async fn a_request_that_stops_arriving_is_cut_off_and_its_budget_released() {
    let s = start(|k| {
        k.request_bytes_max = 4000;
        k.in_flight_bytes_max = 4000;
        k.request_body_ms_max = 300;
    })
    .await;
    let mut a = Client::connect(s.addr).await;
    a.stream.write_all(&4000i32.to_be_bytes()).await.unwrap();
    a.stream.write_all(&[0u8; 100]).await.unwrap();

    let mut b = Client::connect(s.addr).await;
    let answer = tokio::time::timeout(Duration::from_secs(5), b.call(ApiVersionsRequest::default(), 3)).await;
    assert_eq!(answer.expect("B served once A was cut off").error_code, errors::NONE);
    assert!(closed_within(&mut a, Duration::from_secs(5)).await, "A was not closed");
}

/// The attack of six connections that each announce a 100 MiB request (the
/// default `request_bytes_max`), send 8 bytes and stall: they hold a step of
/// the 512 MiB budget each, not all of it. Metadata on another connection is
/// answered within a second throughout, a producer's 600 kB requests go
/// through, the attackers are cut off after `request_body_ms_max`, and new
/// connections are served.
#[tokio::test]
async fn stalled_large_requests_hold_only_what_arrived_and_are_cut_off() {
    let s = start(|k| k.request_body_ms_max = 1_500).await;
    let mut attackers = Vec::new();
    for _ in 0..6 {
        let mut a = Client::connect(s.addr).await;
        a.stream.write_all(&(100i32 << 20).to_be_bytes()).await.unwrap();
        a.stream.write_all(&[0u8; 8]).await.unwrap();
        attackers.push(a);
    }
    let mut c = Client::connect(s.addr).await;
    metadata_within_a_second(&mut c).await;
    create_topic(&mut c, "t", 1).await;
    let big = "p".repeat(600_000);
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(1) {
        metadata_within_a_second(&mut c).await;
        let produced = tokio::time::timeout(
            Duration::from_secs(1),
            produce(&mut c, "t", 0, -1, records(&[big.as_str()], Compression::None)),
        )
        .await;
        assert_eq!(produced.expect("produce within a second").0, errors::NONE);
    }
    for a in &mut attackers {
        assert!(
            closed_within(a, Duration::from_secs(10)).await,
            "a stalled request outlived its time"
        );
    }
    metadata_within_a_second(&mut c).await;
    a_new_connection_is_served(s.addr).await;
}

/// Connections over `connections_max` are closed at once instead of hanging in
/// the accept queue, and idle ones are closed after `connection_idle_ms_max`,
/// so a crowd of idle sockets cannot lock clients out: a busy client is served
/// within a second throughout, and once the idle ones are gone, new clients are
/// served again.
#[tokio::test]
async fn connections_over_the_limit_are_refused_and_idle_ones_closed() {
    let s = start(|k| {
        k.connections_max = 20;
        k.connection_idle_ms_max = 3_000;
    })
    .await;
    let mut busy = Client::connect(s.addr).await;
    metadata_within_a_second(&mut busy).await;
    let mut crowd = Vec::new();
    for _ in 0..50 {
        crowd.push(Client::connect(s.addr).await);
    }
    // 19 slots were left: every connection after them is closed at once.
    let began = Instant::now();
    while closed(&mut crowd).await < 31 {
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "connections over the limit were not refused"
        );
        metadata_within_a_second(&mut busy).await;
    }
    assert_eq!(
        closed(&mut crowd).await,
        31,
        "only connections over the limit are refused"
    );
    // The idle ones go after 3 s; the busy one, asking every 200 ms, stays.
    while closed(&mut crowd).await < crowd.len() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "idle connections stayed open"
        );
        metadata_within_a_second(&mut busy).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    metadata_within_a_second(&mut busy).await;
    a_new_connection_is_served(s.addr).await;
}

/// At shutdown, `serve` returns once its connections are gone, and no later
/// than `shutdown_drain_ms_max` after the signal even when a client holds a
/// request half sent: no connection task outlives it.
#[tokio::test]
async fn shutdown_returns_within_the_drain_limit_with_no_connection_left() {
    let dir = tempfile::tempdir().unwrap();
    let broker = std::sync::Arc::new(
        veltrix_core::Broker::open(
            veltrix_log::Env::system(),
            dir.path(),
            veltrix_core::BrokerConfig::default(),
        )
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = veltrix_kafka::KafkaConfig::new(addr);
    config.shutdown_drain_ms_max = 300;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let serving = tokio::spawn(veltrix_kafka::serve(listener, broker.clone(), config, stop_rx));
    let mut idle = Client::connect(addr).await;
    let mut stalled = Client::connect(addr).await;
    stalled.stream.write_all(&1000i32.to_be_bytes()).await.unwrap();
    stalled.stream.write_all(&[0u8; 10]).await.unwrap();
    metadata_within_a_second(&mut idle).await;
    let stopping = Instant::now();
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returned")
        .unwrap()
        .unwrap();
    assert!(stopping.elapsed() < Duration::from_secs(2), "{:?}", stopping.elapsed());
    let open = broker
        .metrics()
        .registry()
        .gather()
        .into_iter()
        .find(|f| f.name() == "veltrix_kafka_connections")
        .map(|f| f.get_metric()[0].get_gauge().get_value());
    assert_eq!(open, Some(0.0), "a connection outlived serve");
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(closed_within(&mut stalled, Duration::from_secs(1)).await);
}
