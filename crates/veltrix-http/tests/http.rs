//! The HTTP adapter against an in-process broker on a temporary directory, on
//! 127.0.0.1 with ephemeral ports: the routes, the metrics, and a lag alert
//! that fires and resolves with a webhook receiving both notifications.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use bytes::Bytes;
use serde_json::Value;
use tokio::sync::watch;
use veltrix_client::{BatchBuilder, ProducerRecord};
use veltrix_core::alerts::{AlertRule, Threshold};
use veltrix_core::groups::{Committer, OffsetCommit};
use veltrix_core::{Broker, BrokerConfig, TopicConfig};
use veltrix_http::{HttpLimits, HttpState, Monitor, MonitorConfig, WebhookConfig};
use veltrix_log::Env;

struct Running {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
}

async fn start(monitor: MonitorConfig) -> Running {
    start_with(monitor, HttpLimits::default()).await
}

async fn start_with(monitor: MonitorConfig, limits: HttpLimits) -> Running {
    start_secured(monitor, limits, veltrix_http::HttpSecurityConfig::default()).await
}

async fn start_secured(
    monitor: MonitorConfig,
    limits: HttpLimits,
    security: veltrix_http::HttpSecurityConfig,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::open(Env::system(), dir.path(), BrokerConfig::default()).unwrap());
    let monitor = Monitor::new(broker.clone(), monitor);
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(monitor.clone().run(stop_rx.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = HttpState {
        broker: broker.clone(),
        monitor,
        started: Instant::now(),
        info: serde_json::json!({ "kafka_listener": "127.0.0.1:9092" }),
        ready: Arc::new(AtomicBool::new(true)),
        security: Arc::new(veltrix_http::HttpSecurity::new(security, None, broker.metrics())),
        config_check: Some(Arc::new(serde_json::json!({
            "file": "veltrix.toml", "errors": 0, "warnings": 1,
            "diagnostics": [{ "rule": "V202", "severity": "warning", "message": "auto-create is on" }],
        }))),
    };
    tokio::spawn(veltrix_http::serve(listener, state, limits, stop_rx));
    Running {
        _dir: dir,
        broker,
        addr,
        stop,
    }
}

fn produce(broker: &Broker, topic: &str, count: usize) {
    let p = broker.partition(topic, 0).unwrap();
    let mut b = BatchBuilder::new(1 << 20).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..count {
        let record = ProducerRecord {
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Vec::new(),
            timestamp_ms: now,
        };
        b.try_push(record).unwrap();
    }
    let batch = bytes::BytesMut::from(&b.build().unwrap()[..]);
    let appended = p.append(&batch).unwrap();
    p.commit(appended.next_offset).unwrap();
}

fn commit(broker: &Broker, group: &str, topic: &str, offset: i64) {
    let who = Committer {
        member_id: String::new(),
        instance_id: None,
        generation: -1,
    };
    let o = OffsetCommit {
        topic: topic.into(),
        partition: 0,
        offset,
        leader_epoch: -1,
        metadata: String::new(),
    };
    let outcome = broker.groups().commit(group, &who, vec![o], |_, _| true);
    assert_eq!(outcome, vec![Ok(())]);
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_and_metrics_name_topics_groups_and_lag() {
    let config = MonitorConfig {
        evaluation_interval_ms: 100,
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    r.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    produce(&r.broker, "orders", 10);
    commit(&r.broker, "billing", "orders", 4);
    // The monitor evaluates lag every 100 ms: poll until it has.
    let lag = "veltrix_group_lag_records{group=\"billing\",topic=\"orders\"} 6";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(r.addr, "/metrics").await.1.contains(lag) {
        assert!(Instant::now() < deadline, "no lag evaluation within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, body) = get(r.addr, "/health").await;
    assert_eq!((status, body.contains("ok")), (200, true));
    let (status, body) = get(r.addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = get(r.addr, "/metrics").await;
    for needle in [
        "veltrix_topic_partitions{topic=\"orders\"} 1",
        "veltrix_group_partition_lag_records{group=\"billing\",partition=\"0\",topic=\"orders\"} 6",
        "veltrix_group_lag_records{group=\"billing\",topic=\"orders\"} 6",
        "veltrix_log_fsync_duration_seconds_count",
        "veltrix_build_info",
    ] {
        assert!(body.contains(needle), "/metrics lacks {needle}:\n{body}");
    }
    let (_, body) = get(r.addr, "/api/v1/topics").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["topics"][0]["name"], "orders");
    assert_eq!(v["topics"][0]["partitions"][0]["end"], 10);
    let (_, body) = get(r.addr, "/api/v1/groups/billing").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["offsets"][0]["committed"], 4);
    assert_eq!(v["offsets"][0]["lag_records"], 6);
    assert!(v["offsets"][0]["lag_seconds"].as_f64().unwrap() >= 0.0);
    let (_, body) = get(r.addr, "/api/v1/broker").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((v["topics"].as_u64(), v["groups"].as_u64()), (Some(1), Some(1)));
    assert_eq!(v["settings"]["kafka_listener"], "127.0.0.1:9092");
    let (status, _) = get(r.addr, "/api/v1/topics/nope").await;
    assert_eq!(status, 404);
    let (status, _) = get(r.addr, "/nowhere").await;
    assert_eq!(status, 404);
    let _ = r.stop.send(true);
}

/// A group stops consuming while records keep arriving: its lag_seconds alert
/// (over 1 s for 1 s) fires within the `for` duration plus one evaluation
/// interval of the lag crossing the threshold; the group catches up and it
/// resolves. The webhook receives both, in order, as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_alert_fires_and_resolves_and_the_webhook_hears_both() {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let hook = {
        let received = received.clone();
        axum::Router::new().route(
            "/hook",
            post(move |axum::Json(v): axum::Json<Value>| {
                let received = received.clone();
                async move {
                    received.lock().unwrap().push(v);
                    "ok"
                }
            }),
        )
    };
    let hook_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = hook_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(hook_listener, hook).await });

    let interval_ms = 200;
    let threshold = Threshold::LagMs(1_000);
    let config = MonitorConfig {
        evaluation_interval_ms: interval_ms,
        alerts: vec![AlertRule {
            name: AlertRule::default_name("slow", "events", threshold),
            group: "slow".into(),
            topic: "events".into(),
            threshold,
            for_ms: 1_000,
        }],
        webhook: Some(WebhookConfig::new(format!("http://{hook_addr}/hook"))),
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    r.broker
        .create_topic("events", Some(1), TopicConfig::default())
        .unwrap();
    produce(&r.broker, "events", 1);
    commit(&r.broker, "slow", "events", 1);
    // The group stops at offset 1; the producer carries on.
    let stopped = Instant::now();
    let mut fired_after = None;
    while stopped.elapsed() < Duration::from_secs(10) {
        produce(&r.broker, "events", 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, body) = get(r.addr, "/alerts").await;
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["alerts"][0]["state"] == "firing" {
            fired_after = Some(stopped.elapsed());
            break;
        }
    }
    let fired_after = fired_after.expect("the alert fired");
    // The oldest unconsumed record is 1 s old 1 s after the stop; then 1 s over
    // the threshold; then at most one interval until the evaluation sees it
    // (and scheduling slack).
    let bound = Duration::from_millis(1_000 + 1_000 + interval_ms + 600);
    assert!(fired_after <= bound, "fired after {fired_after:?}, bound {bound:?}");
    assert!(
        fired_after >= Duration::from_millis(2_000),
        "fired too early: {fired_after:?}"
    );

    // Consumption resumes: the group commits to the end.
    let end = r.broker.partition("events", 0).unwrap().log().high_watermark();
    commit(&r.broker, "slow", "events", end);
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "webhook got {:?}", received.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = received.lock().unwrap().clone();
    assert_eq!(got[0]["status"], "firing");
    assert_eq!(got[0]["alert"], "slow/events/lag_seconds");
    assert!(got[0]["value"].as_i64().unwrap() > 1_000);
    assert_eq!(got[1]["status"], "resolved");
    let (_, metrics) = get(r.addr, "/metrics").await;
    assert!(
        metrics.contains("veltrix_alert_firing{alert=\"slow/events/lag_seconds\",group=\"slow\",topic=\"events\"} 0")
    );
    assert!(
        metrics.contains("veltrix_alert_webhook_notifications_total{outcome=\"sent\"} 2"),
        "{metrics}"
    );
    let _ = r.stop.send(true);
}

/// A webhook that never answers delays nothing: evaluations go on, and the
/// notification is given up after its retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_never_blocks_the_monitor() {
    // A listener that accepts and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let threshold = Threshold::LagRecords(0);
    let config = MonitorConfig {
        evaluation_interval_ms: 50,
        alerts: vec![AlertRule {
            name: "any-lag".into(),
            group: "g".into(),
            topic: "t".into(),
            threshold,
            for_ms: 0,
        }],
        webhook: Some(WebhookConfig {
            timeout_ms: 200,
            retries_max: 1,
            retry_backoff_ms: 50,
            ..WebhookConfig::new(format!("http://{silent_addr}/"))
        }),
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    r.broker.create_topic("t", Some(1), TopicConfig::default()).unwrap();
    produce(&r.broker, "t", 3);
    commit(&r.broker, "g", "t", 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, metrics) = get(r.addr, "/metrics").await;
        let evaluations = metrics
            .lines()
            .find_map(|l| l.strip_prefix("veltrix_group_lag_evaluations_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        if metrics.contains("veltrix_alert_webhook_notifications_total{outcome=\"failed\"} 1") && evaluations > 10 {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(silent);
    let _ = r.stop.send(true);
}

/// Asks for `/health` on a kept-alive connection; whether it was answered 200.
async fn health_on(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: veltrix\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    // The head, then a body of Content-Length bytes.
    loop {
        let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            continue;
        };
        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while got.len() < end + 4 + len {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        return head.starts_with("http/1.1 200");
    }
}

/// Whether the server closes `stream` within `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tokio::io::AsyncReadExt::read(stream, &mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Connections over `http_connections_max` are closed at once, and idle ones
/// (no whole request head within `http_idle_ms_max`) after that time, so a
/// crowd of idle sockets cannot lock out the scraper: a kept-alive client is
/// answered within a second throughout, and new clients are served once the
/// idle ones are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_over_the_limit_are_refused_and_idle_ones_closed() {
    let limits = HttpLimits {
        connections_max: 8,
        idle_ms_max: 2_000,
        ..HttpLimits::default()
    };
    let r = start_with(MonitorConfig::default(), limits).await;
    let mut busy = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    assert!(health_on(&mut busy).await);
    let mut crowd = Vec::new();
    for _ in 0..20 {
        crowd.push(tokio::net::TcpStream::connect(r.addr).await.unwrap());
    }
    async fn closed(crowd: &mut [tokio::net::TcpStream]) -> usize {
        let mut n = 0;
        for c in crowd {
            if closed_within(c, Duration::from_millis(1)).await {
                n += 1;
            }
        }
        n
    }
    let began = Instant::now();
    let within_a_second = |ok: Result<bool, tokio::time::error::Elapsed>| matches!(ok, Ok(true));
    while closed(&mut crowd).await < 13 {
        assert!(
            began.elapsed() < Duration::from_secs(1),
            "connections over the limit were not refused"
        );
        assert!(within_a_second(
            tokio::time::timeout(Duration::from_secs(1), health_on(&mut busy)).await
        ));
    }
    assert_eq!(
        closed(&mut crowd).await,
        13,
        "only connections over the limit are refused"
    );
    while closed(&mut crowd).await < crowd.len() {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "idle connections stayed open"
        );
        assert!(within_a_second(
            tokio::time::timeout(Duration::from_secs(1), health_on(&mut busy)).await
        ));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = get(r.addr, "/health").await;
    assert_eq!(status, 200, "a new client is served");
    let (_, metrics) = get(r.addr, "/metrics").await;
    assert!(
        metrics.contains("veltrix_http_connections_refused_total 13"),
        "{metrics}"
    );
    assert!(
        metrics.contains("veltrix_http_connections_closed_total{reason=\"idle\"} 7"),
        "{metrics}"
    );
}

/// A share group with records in flight: its lag, its window and what
/// happened to its records, in /metrics and /api/v1/groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_groups_show_their_window_outcomes_and_lag() {
    let config = MonitorConfig {
        evaluation_interval_ms: 100,
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    ten_acquired_four_accepted(&r.broker);

    let lag = "veltrix_group_lag_records{group=\"workers\",topic=\"jobs\"} 6";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(r.addr, "/metrics").await.1.contains(lag) {
        assert!(Instant::now() < deadline, "no share-group lag within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = get(r.addr, "/metrics").await;
    for needle in [
        "veltrix_share_records_total{group=\"workers\",outcome=\"acquired\",topic=\"jobs\"} 10",
        "veltrix_share_records_total{group=\"workers\",outcome=\"accepted\",topic=\"jobs\"} 4",
        "veltrix_share_records_total{group=\"workers\",outcome=\"released\",topic=\"jobs\"} 0",
        "veltrix_share_records_in_flight{group=\"workers\",topic=\"jobs\"} 6",
        "veltrix_share_group_members{group=\"workers\"} 1",
        "veltrix_share_groups{state=\"Stable\"} 1",
    ] {
        assert!(body.contains(needle), "/metrics lacks {needle}:\n{body}");
    }
    let (_, body) = get(r.addr, "/api/v1/groups").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let listed = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group_id"] == "workers")
        .unwrap();
    assert_eq!(
        (listed["type"].as_str(), listed["members"].as_u64()),
        (Some("share"), Some(1))
    );
    let (status, body) = get(r.addr, "/api/v1/groups/workers").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["members"][0]["member_id"], "m1");
    assert_eq!(v["members"][0]["assignment"][0]["topic"], "jobs");
    assert_eq!(v["settings"]["share.auto.offset.reset"], "earliest");
    let p0 = &v["partitions"][0];
    assert_eq!(
        (p0["start_offset"].as_i64(), p0["end_offset"].as_i64()),
        (Some(4), Some(10))
    );
    assert_eq!(
        (p0["in_flight"].as_u64(), p0["lag_records"].as_i64()),
        (Some(6), Some(6))
    );
    assert_eq!(p0["delivery_counts"]["1"], 6);
    assert_eq!(p0["records"]["accepted"], 4);
}

/// Share group `workers` (from the earliest offset) with member `m1`, which
/// acquired records 0-9 of `jobs` (one partition) and accepted 0-3: six in
/// flight.
fn ten_acquired_four_accepted(broker: &Arc<Broker>) {
    use veltrix_core::share::ShareHeartbeat;
    broker.create_topic("jobs", Some(1), TopicConfig::default()).unwrap();
    produce(broker, "jobs", 10);
    let share = broker.share();
    share
        .set_settings("workers", vec![("share.auto.offset.reset".into(), "earliest".into())])
        .unwrap();
    share
        .heartbeat(
            ShareHeartbeat {
                group: "workers".into(),
                member_id: "m1".into(),
                member_epoch: 0,
                subscribed: Some(vec!["jobs".into()]),
                ..ShareHeartbeat::default()
            },
            &|name| broker.topic_meta(name),
        )
        .unwrap();
    let topic = broker.topic("jobs").unwrap();
    let p = broker.partition("jobs", 0).unwrap();
    let got = share
        .acquire("workers", "m1", topic.id, 0, p.log(), 100, 1 << 20)
        .unwrap();
    assert_eq!(got.acquired.iter().map(|a| a.last - a.first + 1).sum::<i64>(), 10);
    accept("workers", broker, 0, 3);
}

/// Member `m1` of `group` accepts records `first..=last` of `jobs`/0.
fn accept(group: &str, broker: &Broker, first: i64, last: i64) {
    use veltrix_core::share::{AckBatch, PartitionAcks};
    let acks = [PartitionAcks {
        topic: broker.topic("jobs").unwrap().id,
        partition: 0,
        batches: vec![AckBatch {
            first,
            last,
            types: vec![1],
        }],
    }];
    assert!(broker.share().acknowledge(group, "m1", &acks)[0].is_ok());
}

/// A lag alert on a share group: records acquired and not yet accepted are
/// its lag, so the alert fires while they are in flight and resolves once
/// they are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_alert_on_a_share_group_fires_and_resolves() {
    let threshold = Threshold::LagRecords(5);
    let config = MonitorConfig {
        evaluation_interval_ms: 50,
        alerts: vec![AlertRule {
            name: "workers-behind".into(),
            group: "workers".into(),
            topic: "jobs".into(),
            threshold,
            for_ms: 0,
        }],
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    ten_acquired_four_accepted(&r.broker);
    let state = |body: String| serde_json::from_str::<Value>(&body).unwrap()["alerts"][0]["state"].clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(get(r.addr, "/alerts").await.1) != "firing" {
        assert!(
            Instant::now() < deadline,
            "six records in flight, and no alert within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    accept("workers", &r.broker, 4, 9);
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(get(r.addr, "/alerts").await.1) == "firing" {
        assert!(
            Instant::now() < deadline,
            "every record accepted, and the alert still firing after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, metrics) = get(r.addr, "/metrics").await;
    assert!(
        metrics.contains("veltrix_alert_firing{alert=\"workers-behind\",group=\"workers\",topic=\"jobs\"} 0"),
        "{metrics}"
    );
    let _ = r.stop.send(true);
}

/// Records with keys `k0..`, a `kind` header (`ten` on every tenth) and JSON
/// values, in batches of 10, in `topic`'s partition 0.
fn produce_keyed(broker: &Broker, topic: &str, count: usize) {
    let p = broker.partition(topic, 0).unwrap();
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let records: Vec<veltrix_core::records::OwnedRecord> = chunk
            .iter()
            .map(|i| veltrix_core::records::OwnedRecord {
                key: Some(format!("k{i}").into_bytes()),
                value: Some(format!("{{\"n\":{i}}}").into_bytes()),
                headers: vec![(
                    b"kind".to_vec(),
                    Some(if i % 10 == 0 { &b"ten"[..] } else { b"one" }.to_vec()),
                )],
                timestamp_ms: 1_000 + *i as i64,
            })
            .collect();
        let appended = p.append(&veltrix_core::records::encode_batch(&records)).unwrap();
        p.commit(appended.next_offset).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_found_by_key_header_text_offset_and_time() {
    let r = start(MonitorConfig::default()).await;
    r.broker
        .create_topic("events", Some(1), TopicConfig::default())
        .unwrap();
    produce_keyed(&r.broker, "events", 100);
    let json = |body: String| -> Value { serde_json::from_str(&body).unwrap() };
    let offsets = |v: &Value| -> Vec<i64> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["offset"].as_i64().unwrap())
            .collect()
    };
    let (status, body) = get(r.addr, "/api/v1/topics/events/records?offset=0&key=k42").await;
    assert_eq!(status, 200, "{body}");
    let v = json(body);
    assert_eq!(offsets(&v), [42]);
    assert_eq!(v["records"][0]["value"]["text"], "{\"n\":42}");
    assert_eq!(v["records"][0]["headers"][0]["key"], "kind");
    assert_eq!(v["scanned"], 100);
    let (_, body) = get(
        r.addr,
        "/api/v1/topics/events/records?offset=0&header=kind&header_value=ten&limit=3",
    )
    .await;
    let v = json(body);
    assert_eq!(offsets(&v), [0, 10, 20]);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["next_offsets"]["0"], 21);
    let (_, body) = get(r.addr, "/api/v1/topics/events/records?offset=0&text=%22n%22%3A7%7D").await;
    assert_eq!(offsets(&json(body)), [7]);
    let (_, body) = get(r.addr, "/api/v1/topics/events/records?time_ms=1097").await;
    assert_eq!(offsets(&json(body)), [97, 98, 99]);
    let (_, body) = get(r.addr, "/api/v1/topics/events/records?limit=2").await;
    assert_eq!(offsets(&json(body)), [98, 99]);
    assert_eq!(get(r.addr, "/api/v1/topics/nope/records").await.0, 404);
    assert_eq!(
        get(r.addr, "/api/v1/topics/events/records?offset=1&time_ms=2").await.0,
        400
    );
    assert_eq!(get(r.addr, "/api/v1/topics/events/records?bogus=1").await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_paged_and_searched() {
    let r = start(MonitorConfig::default()).await;
    for i in 0..30 {
        r.broker
            .create_topic(&format!("t-{i:02}"), Some(1), TopicConfig::default())
            .unwrap();
    }
    r.broker.create_topic("other", Some(1), TopicConfig::default()).unwrap();
    let (_, body) = get(r.addr, "/api/v1/topics?q=t-&offset=10&limit=5").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["total"], 30);
    let names: Vec<&str> = v["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t-10", "t-11", "t-12", "t-13", "t-14"]);
    let (_, body) = get(r.addr, "/api/v1/topics").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["total"].as_u64(), v["topics"].as_array().unwrap().len()),
        (Some(31), 31)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_lag_is_kept_over_time() {
    let config = MonitorConfig {
        evaluation_interval_ms: 50,
        lag_history_points_max: 5,
        ..MonitorConfig::default()
    };
    let r = start(config).await;
    r.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    produce(&r.broker, "orders", 10);
    commit(&r.broker, "billing", "orders", 4);
    let deadline = Instant::now() + Duration::from_secs(10);
    let points = loop {
        let (status, body) = get(r.addr, "/api/v1/groups/billing/lag-history").await;
        if status == 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            let points = v["points"].as_array().unwrap().clone();
            if points.len() == 5 {
                break points;
            }
        }
        assert!(Instant::now() < deadline, "no lag history within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(points.iter().all(|p| p["lag_records"] == 6), "{points:?}");
    assert_eq!(get(r.addr, "/api/v1/groups/nobody/lag-history").await.0, 404);
}

async fn post_json(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_reset_after_a_plan_and_only_when_changes_are_on() {
    let security = veltrix_http::HttpSecurityConfig {
        mutations: true,
        ..veltrix_http::HttpSecurityConfig::default()
    };
    let r = start_secured(MonitorConfig::default(), HttpLimits::default(), security).await;
    r.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    produce(&r.broker, "orders", 10);
    commit(&r.broker, "billing", "orders", 4);
    let path = "/api/v1/groups/billing/offsets/reset";
    let (status, plan) = post_json(
        r.addr,
        path,
        serde_json::json!({ "topic": "orders", "to": "offset", "offset": 50 }),
    )
    .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["executed"], false);
    assert_eq!(plan["plan"][0]["current"], 4);
    assert_eq!(
        (plan["plan"][0]["new"].as_i64(), plan["plan"][0]["clamped"].as_bool()),
        (Some(10), Some(true))
    );
    let committed = |b: &Broker| {
        b.groups().fetch_offsets("billing", None)[0]
            .committed
            .as_ref()
            .map(|c| c.offset)
    };
    assert_eq!(committed(&r.broker), Some(4), "a plan changes nothing");
    let (status, done) = post_json(
        r.addr,
        path,
        serde_json::json!({ "topic": "orders", "to": "earliest", "execute": true }),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["executed"], true);
    assert_eq!(committed(&r.broker), Some(0));
    let (status, _) = post_json(r.addr, path, serde_json::json!({ "topic": "orders", "to": "time" })).await;
    assert_eq!(status, 400);
    let (status, _) = post_json(r.addr, path, serde_json::json!({ "topic": "nope", "to": "latest" })).await;
    assert_eq!(status, 404);

    let off = start(MonitorConfig::default()).await;
    off.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    let (status, body) = post_json(
        off.addr,
        path,
        serde_json::json!({ "topic": "orders", "to": "latest", "execute": true }),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("http_mutations"), "{body}");
}

async fn post_raw(addr: std::net::SocketAddr, path: &str, body: Vec<u8>) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_produced_durably_only_when_changes_are_on_and_within_the_limit() {
    let security = veltrix_http::HttpSecurityConfig {
        mutations: true,
        produce_bytes_max: 4096,
        ..veltrix_http::HttpSecurityConfig::default()
    };
    let r = start_secured(MonitorConfig::default(), HttpLimits::default(), security).await;
    r.broker
        .create_topic("orders", Some(3), TopicConfig::default())
        .unwrap();
    let path = "/api/v1/topics/orders/records";
    let record = serde_json::json!({
        "key": "k1", "value": "{\"n\":1}", "headers": [{ "key": "trace", "value": "t-1" }, { "key": "empty" }],
    });
    let (status, done) = post_json(r.addr, path, record).await;
    assert_eq!(status, 201, "{done}");
    let partition = done["partition"].as_i64().unwrap() as i32;
    assert_eq!(done["offset"], 0);
    // Durable before the answer: the high watermark is past it already.
    assert_eq!(
        r.broker.partition("orders", partition).unwrap().log().high_watermark(),
        1
    );
    let (_, found) = get(
        r.addr,
        &format!("/api/v1/topics/orders/records?partition={partition}&offset=0"),
    )
    .await;
    let found: Value = serde_json::from_str(&found).unwrap();
    let rec = &found["records"][0];
    assert_eq!(
        (rec["key"]["text"].as_str(), rec["value"]["text"].as_str()),
        (Some("k1"), Some("{\"n\":1}"))
    );
    assert_eq!(rec["headers"][0]["value"]["text"], "t-1");
    assert_eq!(rec["headers"][1]["value"], Value::Null);
    // The same key goes to the same partition; a chosen one is taken.
    let (_, again) = post_json(r.addr, path, serde_json::json!({ "key": "k1", "value": "2" })).await;
    assert_eq!(again["partition"].as_i64(), Some(i64::from(partition)));
    let (status, chosen) = post_json(r.addr, path, serde_json::json!({ "value": "x", "partition": 2 })).await;
    assert_eq!((status, chosen["partition"].as_i64()), (201, Some(2)));
    let (_, broker) = get(r.addr, "/api/v1/broker").await;
    let broker: Value = serde_json::from_str(&broker).unwrap();
    assert_eq!(broker["traffic"]["produce_records"], 3, "{broker}");
    assert!(broker["traffic"]["produce_bytes"].as_u64().unwrap() > 0);
    assert!(broker["storage"]["log_bytes"].as_u64().unwrap() > 0);
    assert_eq!(broker["connections"]["kafka"], 0);

    for (body, want) in [
        (serde_json::json!({ "value": "x", "partition": 3 }), 404),
        (serde_json::json!({ "value": 5 }), 400),
        (serde_json::json!({ "value": "x", "other": 1 }), 400),
    ] {
        assert_eq!(post_json(r.addr, path, body.clone()).await.0, want, "{body}");
    }
    assert_eq!(
        post_json(r.addr, "/api/v1/topics/nope/records", serde_json::json!({}))
            .await
            .0,
        404
    );
    let headers: Vec<Value> = (0..65).map(|i| serde_json::json!({ "key": format!("h{i}") })).collect();
    assert_eq!(
        post_json(r.addr, path, serde_json::json!({ "headers": headers }))
            .await
            .0,
        400
    );
    // Too large: announced, and sent without a length (chunked).
    let before = r.broker.partition("orders", 2).unwrap().log().high_watermark();
    let big = serde_json::to_vec(&serde_json::json!({ "value": "x".repeat(5000) })).unwrap();
    let (status, body) = post_raw(r.addr, path, big.clone()).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("http_produce_bytes_max"),
        "{body}"
    );
    assert_eq!(chunked(r.addr, path, &big).await, 413);
    assert_eq!(r.broker.partition("orders", 2).unwrap().log().high_watermark(), before);

    let off = start(MonitorConfig::default()).await;
    off.broker
        .create_topic("orders", Some(1), TopicConfig::default())
        .unwrap();
    let (status, body) = post_json(off.addr, path, serde_json::json!({ "value": "x" })).await;
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("http_mutations"), "{body}");
}

/// `body` posted in 1 KiB chunks, with no `Content-Length`: the status.
async fn chunked(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(1024) {
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
        // The broker may answer and close before the whole body is sent.
        if s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let mut answer = vec![0; 12];
    s.read_exact(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_check_is_answered_as_the_host_gave_it() {
    let r = start(MonitorConfig::default()).await;
    let (status, body) = get(r.addr, "/api/v1/config/check").await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["diagnostics"][0]["rule"], "V202");
}

async fn delete(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .delete(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A broker with `[listeners] http_mutations` on or off.
async fn start_changes(on: bool) -> Running {
    let security = veltrix_http::HttpSecurityConfig {
        mutations: on,
        ..veltrix_http::HttpSecurityConfig::default()
    };
    start_secured(MonitorConfig::default(), HttpLimits::default(), security).await
}

/// Dead-letter topic `dlq` holding one letter of a record of `orders`
/// (partition 0), which exists and is empty.
fn one_letter(broker: &Broker) {
    broker.create_topic("orders", Some(1), TopicConfig::default()).unwrap();
    broker.create_topic("dlq", Some(1), TopicConfig::default()).unwrap();
    let mut b = BatchBuilder::new(1 << 20).unwrap();
    let header = |k: &str, v: &str| veltrix_client::Header {
        key: k.to_owned(),
        value: Some(Bytes::from(v.to_owned())),
    };
    let record = ProducerRecord {
        key: Some(Bytes::from_static(b"k")),
        value: Some(Bytes::from_static(b"poison")),
        headers: vec![
            header("__dlq.errors.topic", "orders"),
            header("__dlq.errors.partition", "0"),
        ],
        timestamp_ms: 1_700_000_000_000,
    };
    b.try_push(record).unwrap();
    let batch = bytes::BytesMut::from(&b.build().unwrap()[..]);
    let p = broker.partition("dlq", 0).unwrap();
    let appended = p.append(&batch).unwrap();
    p.commit(appended.next_offset).unwrap();
}

/// A redrive's plan is answered whatever the setting; the redrive itself
/// (which writes records) only with `http_mutations`, and it then moves
/// the letter back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_moves_letters_only_when_changes_are_on() {
    let path = "/api/v1/dlq/dlq/redrive";
    let off = start_changes(false).await;
    one_letter(&off.broker);
    let (status, plan) = post_json(off.addr, path, serde_json::json!({ "dry_run": true })).await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["plan"]["selected"], 1);
    let (status, body) = post_json(off.addr, path, serde_json::json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["setting"], "[listeners] http_mutations");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("set `[listeners] http_mutations = true`"),
        "{body}"
    );
    assert!(off.broker.redriver().jobs().is_empty());

    let on = start_changes(true).await;
    one_letter(&on.broker);
    let (status, job) = post_json(on.addr, path, serde_json::json!({ "records_per_second": 100 })).await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let broker = on.broker.clone();
        tokio::task::spawn_blocking(move || broker.tick()).await.unwrap();
        let (_, job) = get(on.addr, &format!("/api/v1/redrives/{id}")).await;
        let job: Value = serde_json::from_str(&job).unwrap();
        if job["state"]["state"] != "running" {
            assert_eq!(
                (job["state"]["state"].as_str(), job["moved"].as_u64()),
                (Some("done"), Some(1)),
                "{job}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the redrive did not end: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(on.broker.partition("orders", 0).unwrap().log().high_watermark(), 1);
}

/// Deleting a topic or a group: offered (`deletion`) and done only with
/// `http_mutations`; a group only while it has no members; gone from the
/// listings after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_groups_are_deleted_only_when_changes_are_on() {
    let off = start_changes(false).await;
    off.broker
        .create_topic("doomed", Some(2), TopicConfig::default())
        .unwrap();
    let (_, topic) = get(off.addr, "/api/v1/topics/doomed").await;
    let topic: Value = serde_json::from_str(&topic).unwrap();
    assert_eq!(topic["deletion"]["allowed"], false);
    assert!(
        topic["deletion"]["why_not"]
            .as_str()
            .unwrap()
            .contains("http_mutations"),
        "{topic}"
    );
    let (status, body) = delete(off.addr, "/api/v1/topics/doomed").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["setting"], "[listeners] http_mutations");
    assert!(
        body["error"].as_str().unwrap().contains("veltrix topic delete"),
        "{body}"
    );
    assert!(off.broker.topic("doomed").is_some());
    commit(&off.broker, "idle", "doomed", 1);
    let (status, body) = delete(off.addr, "/api/v1/groups/idle").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["setting"], "[listeners] http_mutations");

    let on = start_changes(true).await;
    for t in ["doomed", "kept"] {
        on.broker.create_topic(t, Some(2), TopicConfig::default()).unwrap();
    }
    produce(&on.broker, "doomed", 5);
    commit(&on.broker, "idle", "kept", 0);
    let (_, topic) = get(on.addr, "/api/v1/topics/doomed").await;
    let topic: Value = serde_json::from_str(&topic).unwrap();
    assert_eq!(
        topic["deletion"],
        serde_json::json!({ "allowed": true, "why_not": null })
    );
    let (status, body) = delete(on.addr, "/api/v1/topics/doomed").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["deleted"].as_str(), body["id"].as_str()),
        (Some("doomed"), topic["id"].as_str())
    );
    assert_eq!(get(on.addr, "/api/v1/topics/doomed").await.0, 404);
    let (_, listed) = get(on.addr, "/api/v1/topics").await;
    let listed: Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(delete(on.addr, "/api/v1/topics/doomed").await.0, 404);

    let (_, group) = get(on.addr, "/api/v1/groups/idle").await;
    let group: Value = serde_json::from_str(&group).unwrap();
    assert_eq!(group["deletion"]["allowed"], true, "{group}");
    let (status, body) = delete(on.addr, "/api/v1/groups/idle").await;
    assert_eq!((status, body["deleted"].as_str()), (200, Some("idle")), "{body}");
    assert_eq!(get(on.addr, "/api/v1/groups/idle").await.0, 404);
    assert_eq!(delete(on.addr, "/api/v1/groups/idle").await.0, 404);

    // A share group with a member is refused until the member leaves.
    ten_acquired_four_accepted(&on.broker);
    let (status, body) = delete(on.addr, "/api/v1/groups/workers").await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("members"), "{body}");
    let leave = veltrix_core::share::ShareHeartbeat {
        group: "workers".into(),
        member_id: "m1".into(),
        member_epoch: -1,
        ..veltrix_core::share::ShareHeartbeat::default()
    };
    on.broker
        .share()
        .heartbeat(leave, &|name| on.broker.topic_meta(name))
        .unwrap();
    let (status, body) = delete(on.addr, "/api/v1/groups/workers").await;
    assert_eq!(status, 200, "{body}");
    assert!(!on.broker.share().contains("workers"));
}
