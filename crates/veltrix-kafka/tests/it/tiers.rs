//! Admission by tier as the memory budget fills: bulk throttled first, then
//! standard; critical never; nobody refused.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::records::Compression;
use tokio::io::AsyncWriteExt;
use veltrix_core::{Tier, TopicConfig};

use super::{Client, records, start, start_on, topic};

/// Produces a small batch to `name` on a fresh connection; the response's
/// error and `throttle_time_ms`.
async fn produce_throttle(addr: std::net::SocketAddr, name: &str) -> (i16, i32) {
    let mut c = Client::connect(addr).await;
    let pd = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records(&["r"], Compression::None)));
    let td = TopicProduceData::default()
        .with_name(topic(name))
        .with_partition_data(vec![pd]);
    let r = c
        .call(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![td]),
            9,
        )
        .await;
    (r.responses[0].partition_responses[0].error_code, r.throttle_time_ms)
}

/// Opens `n` connections that each announce a 64 KiB request and send 10
/// bytes of it: each holds 64 KiB of the budget until it is closed.
async fn hold(addr: std::net::SocketAddr, n: usize) -> Vec<Client> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut c = Client::connect(addr).await;
        c.stream.write_all(&(64i32 << 10).to_be_bytes()).await.unwrap();
        c.stream.write_all(&[0u8; 10]).await.unwrap();
        held.push(c);
    }
    held
}

async fn until_held(s: &super::Server, bytes: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.broker.metrics().in_flight_bytes.get() < bytes {
        assert!(
            Instant::now() < deadline,
            "{} bytes held",
            s.broker.metrics().in_flight_bytes.get()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn bulk_is_throttled_first_then_standard_and_critical_flows() {
    let s = start(|k| {
        k.in_flight_bytes_max = 1 << 20;
        k.request_bytes_max = 64 << 10;
    })
    .await;
    for (name, tier) in [("b", Tier::Bulk), ("s", Tier::Standard), ("c", Tier::Critical)] {
        let config = TopicConfig {
            tier: Some(tier),
            ..TopicConfig::default()
        };
        s.broker.create_topic(name, Some(1), config).unwrap();
    }
    // Idle: nobody throttled.
    for name in ["b", "s", "c"] {
        assert_eq!(produce_throttle(s.addr, name).await, (0, 0), "{name}");
    }
    // 75% of the budget held: bulk throttled, the others not, nobody refused.
    let mut held = hold(s.addr, 12).await;
    until_held(&s, 12 << 16).await;
    let (code, bulk) = produce_throttle(s.addr, "b").await;
    assert_eq!(code, 0);
    assert!((100..=1_000).contains(&bulk), "{bulk}");
    assert_eq!(produce_throttle(s.addr, "s").await, (0, 0));
    assert_eq!(produce_throttle(s.addr, "c").await, (0, 0));
    // 87.5%: standard too, bulk harder; critical still flows.
    held.extend(hold(s.addr, 2).await);
    until_held(&s, 14 << 16).await;
    let (_, bulk_harder) = produce_throttle(s.addr, "b").await;
    let (code, standard) = produce_throttle(s.addr, "s").await;
    assert_eq!(code, 0);
    assert!(bulk_harder > bulk && standard > 0, "{bulk_harder} {standard}");
    assert_eq!(produce_throttle(s.addr, "c").await, (0, 0));
    // Counted by tier.
    let throttled = |tier: &str| {
        s.broker
            .metrics()
            .registry()
            .gather()
            .iter()
            .filter(|f| f.name() == "veltrix_tier_throttled_total")
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == tier))
            .map(|m| m.get_counter().get_value())
            .sum::<f64>()
    };
    assert_eq!(
        (throttled("bulk"), throttled("standard"), throttled("critical")),
        (2.0, 1.0, 0.0)
    );
    // What each tier would be told now, and no produce bytes left held.
    let gauge = |name: &str, tier: &str| {
        s.broker
            .metrics()
            .registry()
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == tier))
            .map(|m| m.get_gauge().get_value())
            .sum::<f64>()
    };
    let would = |tier| gauge("veltrix_tier_admission_throttle_seconds", tier);
    assert!(would("bulk") > would("standard") && would("standard") > 0.0);
    assert_eq!(would("critical"), 0.0);
    for tier in ["bulk", "standard", "critical"] {
        assert_eq!(gauge("veltrix_tier_in_flight_bytes", tier), 0.0, "{tier}");
    }
    drop(held);
}

/// Critical produces answered late (a disk whose fsyncs take 20 ms, against a
/// 5 ms target) throttle bulk produces, though the memory budget is empty;
/// standard and critical ones flow; nobody is refused. Once the critical
/// tier is served in time again, the throttle lets go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_critical_produces_throttle_bulk_until_they_are_on_time_again() {
    let storage = std::sync::Arc::new(veltrix_log::sim::SimStorage::new());
    let env = veltrix_log::Env::new(
        storage.clone(),
        std::sync::Arc::new(veltrix_log::io::SystemClock::default()),
        64,
    );
    let s = start_on(env, |k| {
        k.tiers.critical_latency_target_ms = 5;
        k.tiers.throttle_ms_max = 200;
    })
    .await;
    for (name, tier) in [("b", Tier::Bulk), ("s", Tier::Standard), ("c", Tier::Critical)] {
        let config = TopicConfig {
            tier: Some(tier),
            ..TopicConfig::default()
        };
        s.broker.create_topic(name, Some(1), config).unwrap();
    }
    assert_eq!(produce_throttle(s.addr, "b").await, (0, 0), "idle: bulk flows");

    storage.set_sync_delay(Some(Duration::from_millis(20)));
    let deadline = Instant::now() + Duration::from_secs(10);
    let throttled = loop {
        assert_eq!(
            produce_throttle(s.addr, "c").await,
            (0, 0),
            "critical is never throttled"
        );
        let (error, ms) = produce_throttle(s.addr, "b").await;
        assert_eq!(error, 0);
        if ms > 0 {
            break ms;
        }
        assert!(
            Instant::now() < deadline,
            "bulk never throttled while critical produces were late"
        );
    };
    assert!(throttled <= 200, "{throttled}");
    assert_eq!(
        produce_throttle(s.addr, "s").await,
        (0, 0),
        "standard only once bulk is at its largest"
    );

    storage.set_sync_delay(None);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert_eq!(produce_throttle(s.addr, "c").await, (0, 0));
        if produce_throttle(s.addr, "b").await == (0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the throttle never let go once critical was on time"
        );
    }
}
