//! Connection storms from one address: closed at once past the per-address
//! limits, while clients from other addresses keep being served promptly.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataRequest;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

use super::{Client, start};

/// A connection to `addr` from the loopback address `from` (all of 127/8 is
/// the loopback interface on Linux).
async fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    socket.connect(addr).await
}

/// Whether the broker closed `s` within `within`.
async fn closed(s: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, s.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn an_address_past_its_limits_is_closed_at_once_and_others_are_served() {
    let s = start(|k| {
        k.connections_per_ip_max = 5;
        k.connections_per_ip_per_second_max = 1_000;
    })
    .await;
    let mut five = Vec::new();
    for _ in 0..5 {
        five.push(connect_from("127.0.0.2", s.addr).await.unwrap());
    }
    let mut sixth = connect_from("127.0.0.2", s.addr).await.unwrap();
    assert!(closed(&mut sixth, Duration::from_secs(5)).await, "the sixth is closed");
    for c in &mut five {
        assert!(!closed(c, Duration::from_millis(10)).await, "the first five stay");
    }
    // Another address is not touched.
    let mut other = Client::connect(s.addr).await;
    other.call(MetadataRequest::default(), 9).await;
    // One gone: room again.
    drop(five.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from("127.0.0.2", s.addr).await.unwrap();
        if !closed(&mut again, Duration::from_millis(50)).await {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a connection closed");
    }
}

/// 5,000 connections opened from one address as fast as the test can: the
/// broker keeps at most the address's limit open, and a client elsewhere
/// keeps its latency.
#[tokio::test]
async fn a_storm_of_five_thousand_connections_leaves_other_clients_their_latency() {
    let s = start(|k| {
        k.connections_per_ip_max = 100;
        k.connections_per_ip_per_second_max = 200;
    })
    .await;
    let mut client = Client::connect(s.addr).await;
    let mut idle = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        client.call(MetadataRequest::default(), 9).await;
        idle.push(t.elapsed());
    }
    let addr = s.addr;
    let storm = tokio::spawn(async move {
        let mut open = Vec::new();
        for i in 0..5_000 {
            if let Ok(c) = connect_from("127.0.0.3", addr).await {
                open.push(c);
            }
            // Let go of the oldest ones: the test's own descriptors stay bounded.
            if open.len() > 1_000 {
                open.drain(..500);
            }
            if i % 100 == 0 {
                tokio::task::yield_now().await;
            }
        }
        open.len()
    });
    let mut during = Vec::new();
    let mut most_open = 0;
    while !storm.is_finished() {
        let t = Instant::now();
        client.call(MetadataRequest::default(), 9).await;
        during.push(t.elapsed());
        most_open = most_open.max(
            s.broker
                .metrics()
                .registry()
                .gather()
                .iter()
                .find(|f| f.name() == "veltrix_kafka_connections")
                .map_or(0.0, |f| f.get_metric()[0].get_gauge().get_value()) as i64,
        );
    }
    storm.await.unwrap();
    let p99 = |v: &mut Vec<Duration>| {
        v.sort();
        v[(v.len() * 99 / 100).min(v.len() - 1)]
    };
    let (idle_p99, storm_p99) = (p99(&mut idle), p99(&mut during));
    println!(
        "Metadata p99 idle {idle_p99:?}, during the storm {storm_p99:?} ({} calls); connections at most {most_open}",
        during.len()
    );
    assert!(
        storm_p99 < idle_p99 * 20 + Duration::from_millis(50),
        "{idle_p99:?} -> {storm_p99:?}"
    );
    // The storm's address held at most its limit (plus the measuring client).
    assert!(most_open <= 101, "{most_open}");
    let refused: f64 = s
        .broker
        .metrics()
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == "veltrix_kafka_connections_refused_per_ip_total")
        .flat_map(|f| f.get_metric().to_vec())
        .map(|m| m.get_counter().get_value())
        .sum();
    assert!(refused >= 4_000.0, "{refused}");
}

/// A producer whose requests keep being refused (here: acks=5) is slowed
/// once past its rate of failures; what succeeds is not.
#[tokio::test]
async fn a_producer_that_keeps_failing_is_slowed_and_others_are_not() {
    use kafka_protocol::messages::ProduceRequest;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::records::Compression;

    let s = start(|k| {
        k.breaker.failing_requests_per_second_max = 5;
    })
    .await;
    let mut c = Client::connect(s.addr).await;
    super::create_topic(&mut c, "t", 1).await;
    let bad = |acks: i16| {
        let pd = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(super::records(&["x"], Compression::None)));
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(super::topic("t"))
                    .with_partition_data(vec![pd]),
            ])
    };
    let mut throttles = Vec::new();
    for _ in 0..8 {
        let r = c.call(bad(5), 9).await;
        assert_eq!(
            r.responses[0].partition_responses[0].error_code, 21,
            "INVALID_REQUIRED_ACKS"
        );
        throttles.push(r.throttle_time_ms);
    }
    assert_eq!(
        &throttles[..5],
        &[0; 5],
        "a second's worth of failures is free: {throttles:?}"
    );
    assert!(throttles[5..].iter().all(|t| *t > 0), "{throttles:?}");
    // A request that succeeds, on another connection, is not slowed.
    let mut other = Client::connect(s.addr).await;
    let (code, _) = super::produce(&mut other, "t", 0, -1, super::records(&["ok"], Compression::None)).await;
    assert_eq!(code, 0);
}
