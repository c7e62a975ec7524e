//! The typed configuration: defaults equal the engine's own, every key lands
//! in the right field, and environment overrides win over the file and are
//! validated like it.

use veltrix_config::{
    FixedProbe, KafkaLimits, LagThreshold, Location, Profile, Tier, VeltrixConfig, check_source, schema,
};
use veltrix_core::dedup::DedupLimits;
use veltrix_core::share::{AutoOffsetReset, ShareGroupSettings};
use veltrix_core::{BrokerConfig, DedupIdSource, DedupSettings};
use veltrix_log::FlushPolicy;

fn probe() -> FixedProbe {
    FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn an_empty_file_is_the_embedded_default() {
    let report = check_source("veltrix.toml", "", &[], &probe());
    let c = report.config.expect("an empty file is valid");
    let d = BrokerConfig::default();
    assert_eq!(c.broker.log, d.log);
    assert_eq!(c.broker.groups, d.groups);
    assert_eq!(c.broker.share, d.share);
    assert_eq!(c.broker.dedup, d.dedup);
    assert!(c.share_groups.is_empty());
    assert_eq!(
        (
            c.broker.default_partitions,
            c.broker.auto_create_topics,
            c.broker.topics_max
        ),
        (d.default_partitions, d.auto_create_topics, d.topics_max)
    );
    assert_eq!(c.limits, KafkaLimits::default());
    assert_eq!(c.data_dir.to_str(), Some("./veltrix-data"));
    assert_eq!(c.kafka_listener.to_string(), "127.0.0.1:9092");
    assert_eq!(c.http_listener.to_string(), "127.0.0.1:8080");
    assert_eq!(c.profile, Profile::Development);
}

#[test]
fn every_key_reaches_its_field() {
    let src = r#"
[broker]
profile = "production"
data_dir = "/srv/veltrix"
auto_create_topics = false
topics_max = 50
partitions_per_topic_max = 64
partitions_total_max = 500

[listeners]
kafka = "127.0.0.1:19092"
http = "[::1]:18080"

[limits]
request_bytes_max = 1_000_000
in_flight_bytes_max = 8_000_000
connections_max = 10
requests_in_flight_per_connection_max = 4
fetch_wait_ms_max = 500
request_body_ms_max = 700
connection_idle_ms_max = 800
warning_interval_ms = 900
accept_backoff_ms_max = 1_100
http_connections_max = 12
http_idle_ms_max = 1_300
shutdown_drain_ms_max = 1_400

[defaults]
partitions = 4
retention_ms = 86_400_000
retention_bytes = 1_000_000_000
segment_bytes_max = 100_000_000
segment_age_ms_max = 3_600_000
batch_bytes_max = 500_000
index_interval_bytes = 8192
producers_max = 77
producer_id_expiration_ms = 60_000

[groups]
session_timeout_ms_min = 7_000
session_timeout_ms_max = 60_000
initial_rebalance_delay_ms = 10
group_members_max = 9
groups_max = 99
offset_metadata_bytes_max = 100
offsets_retention_ms = 864_000_000

[dedup]
ids_max = 2_000_000
id_bytes_max = 64

[[topic]]
name = "t"
partitions = 8
retention_ms = -1
retention_bytes = 5_000_000_000
segment_bytes_max = 50_000_000
segment_age_ms_max = 600_000
batch_bytes_max = 100_000
durability = "interval"
flush_interval_ms = 250
tier = "bulk"
keyed = true
peak_records_per_second = 10
dedup_window_ms = 120_000
dedup_id_source = "header"
dedup_id_header = "event-id"

[[alert]]
group = "g"
topic = "t"
lag_records_max = 1000
for_ms = 5000
"#;
    let report = check_source("veltrix.toml", src, &[], &probe());
    let c: VeltrixConfig = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{}", report.render(false)));
    assert_eq!(c.profile, Profile::Production);
    assert_eq!(c.data_dir.to_str(), Some("/srv/veltrix"));
    assert_eq!(
        (
            c.broker.topics_max,
            c.broker.partitions_per_topic_max,
            c.broker.partitions_total_max
        ),
        (50, 64, 500)
    );
    assert_eq!(c.kafka_listener.to_string(), "127.0.0.1:19092");
    assert_eq!(c.http_listener.to_string(), "[::1]:18080");
    let l = c.limits;
    assert_eq!(
        (
            l.request_bytes_max,
            l.in_flight_bytes_max,
            l.connections_max,
            l.requests_in_flight_per_connection_max,
            l.fetch_wait_ms_max,
            l.request_body_ms_max
        ),
        (1_000_000, 8_000_000, 10, 4, 500, 700)
    );
    assert_eq!(
        (l.connection_idle_ms_max, l.warning_interval_ms, l.accept_backoff_ms_max),
        (800, 900, 1_100)
    );
    let h = c.http_limits;
    assert_eq!(
        (
            h.connections_max,
            h.idle_ms_max,
            h.warning_interval_ms,
            h.shutdown_drain_ms_max
        ),
        (12, 1_300, 900, 1_400)
    );
    assert_eq!(l.shutdown_drain_ms_max, 1_400);
    let log = c.broker.log;
    assert_eq!(c.broker.default_partitions, 4);
    assert_eq!(
        (log.retention_ms, log.retention_bytes),
        (Some(86_400_000), Some(1_000_000_000))
    );
    assert_eq!(
        (log.segment_bytes_max, log.segment_age_ms_max, log.batch_bytes_max),
        (100_000_000, 3_600_000, 500_000)
    );
    assert_eq!(
        (
            log.index_interval_bytes,
            log.producers_max,
            log.producer_id_expiration_ms
        ),
        (8192, 77, 60_000)
    );
    assert_eq!(log.flush, FlushPolicy::EveryAppend);
    let g = c.broker.groups;
    assert_eq!(
        (
            g.session_timeout_ms_min,
            g.session_timeout_ms_max,
            g.initial_rebalance_delay_ms
        ),
        (7_000, 60_000, 10)
    );
    assert_eq!(
        (
            g.group_members_max,
            g.groups_max,
            g.offset_metadata_bytes_max,
            g.offsets_retention_ms
        ),
        (9, 99, 100, 864_000_000)
    );
    assert_eq!(
        c.broker.dedup,
        DedupLimits {
            ids_max: 2_000_000,
            id_bytes_max: 64,
            ..DedupLimits::default()
        }
    );
    let t = &c.topics[0];
    assert_eq!(
        (t.name.as_str(), t.partitions, t.tier, t.keyed, t.critical),
        ("t", 8, Some(Tier::Bulk), true, false)
    );
    assert_eq!(t.peak_records_per_second, Some(10));
    assert_eq!(t.config.retention_ms, Some(-1));
    assert_eq!(t.config.retention_bytes, Some(5_000_000_000));
    assert_eq!(
        (t.config.segment_bytes_max, t.config.segment_age_ms_max),
        (Some(50_000_000), Some(600_000))
    );
    assert_eq!(
        (t.config.batch_bytes_max, t.config.flush_interval_ms),
        (Some(100_000), Some(250))
    );
    assert_eq!(
        t.config.dedup(),
        Some(DedupSettings {
            window_ms: 120_000,
            id_source: DedupIdSource::Header,
            id_header: "event-id".to_owned(),
        })
    );
    let effective = c.topic_log_config(t);
    assert_eq!(effective.retention_ms, None);
    assert_eq!(effective.flush, FlushPolicy::Interval { flush_interval_ms: 250 });
    effective.validate().unwrap();
    let a = &c.alerts[0];
    assert_eq!(
        (a.group.as_str(), a.topic.as_str(), a.threshold, a.for_ms),
        ("g", "t", LagThreshold::Records(1000), 5000)
    );
}

#[test]
fn share_keys_reach_the_engine_s_settings() {
    let src = r#"
[share]
groups_max = 40
group_members_max = 30
sessions_max = 300
session_timeout_ms = 60_000
heartbeat_interval_ms = 3_000
auto_offset_reset = "earliest"
record_lock_duration_ms = 20_000
deliveries_max = 4
partition_record_locks_max = 500
backoff_initial_ms = 500
backoff_multiplier = 3
backoff_ms_max = 30_000

[[share_group]]
name = "jobs"
auto_offset_reset = "by_duration:P1DT12H"
record_lock_duration_ms = 50_000
deliveries_max = 3
partition_record_locks_max = 1_000
backoff_initial_ms = 0

[[share_group]]
name = "emails"
deliveries_max = 8
"#;
    let report = check_source("veltrix.toml", src, &[], &probe());
    let c = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{}", report.render(false)));
    let s = c.broker.share;
    assert_eq!(
        (
            s.groups_max,
            s.group_members_max,
            s.sessions_max,
            s.session_timeout_ms,
            s.heartbeat_interval_ms
        ),
        (40, 30, 300, 60_000, 3_000)
    );
    assert_eq!(
        s.defaults,
        ShareGroupSettings {
            auto_offset_reset: AutoOffsetReset::Earliest,
            record_lock_duration_ms: 20_000,
            delivery_count_limit: 4,
            partition_max_record_locks: 500,
            backoff_initial_ms: 500,
            backoff_multiplier: 3,
            backoff_max_ms: 30_000,
            dead_letters: false,
            ..ShareGroupSettings::default()
        }
    );
    let jobs = c.share_group("jobs").unwrap();
    let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    // As the file wrote them, by Kafka's names: what the group's own settings become.
    assert_eq!(
        jobs.overrides,
        owned(&[
            ("share.auto.offset.reset", "by_duration:P1DT12H"),
            ("share.record.lock.duration.ms", "50000"),
            ("share.delivery.count.limit", "3"),
            ("share.partition.max.record.locks", "1000"),
            ("veltrix.share.backoff.initial.ms", "0"),
        ])
    );
    assert_eq!(
        jobs.settings,
        ShareGroupSettings {
            auto_offset_reset: AutoOffsetReset::ByDuration { ms: 129_600_000 },
            record_lock_duration_ms: 50_000,
            delivery_count_limit: 3,
            partition_max_record_locks: 1_000,
            backoff_initial_ms: 0,
            ..s.defaults
        }
    );
    // A key left out is `[share]`'s.
    let emails = c.share_group("emails").unwrap();
    assert_eq!(emails.overrides, owned(&[("share.delivery.count.limit", "8")]));
    assert_eq!(
        emails.settings,
        ShareGroupSettings {
            delivery_count_limit: 8,
            ..s.defaults
        }
    );
    assert_eq!(c.share_groups.len(), 2);
}

#[test]
fn share_settings_are_overridden_from_the_environment_and_checked() {
    let vars = env(&[
        ("VELTRIX_SHARE__AUTO_OFFSET_RESET", "by_duration:PT30M"),
        ("VELTRIX_SHARE__SESSIONS_MAX", "5_000"),
    ]);
    let c = check_source(
        "veltrix.toml",
        "[share]
sessions_max = 10
",
        &vars,
        &probe(),
    )
    .config
    .unwrap();
    assert_eq!(
        c.broker.share.defaults.auto_offset_reset,
        AutoOffsetReset::ByDuration { ms: 1_800_000 }
    );
    assert_eq!(c.broker.share.sessions_max, 5_000);
    let vars = env(&[("VELTRIX_SHARE__AUTO_OFFSET_RESET", "by_duration:7d")]);
    let report = check_source("veltrix.toml", "", &vars, &probe());
    let ids: Vec<&str> = report.diagnostics.iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["V013"]);
    assert!(report.config.is_none());
    assert!(
        report.diagnostics[0].help.contains("by_duration:P7D"),
        "{}",
        report.render(false)
    );
}

#[test]
fn topics_inherit_interval_durability_from_the_defaults() {
    let src = "[defaults]\ndurability = \"interval\"\nflush_interval_ms = 100\n\n[[topic]]\nname = \"a\"\n";
    let report = check_source("veltrix.toml", src, &[], &probe());
    let c = report.config.unwrap();
    assert_eq!(c.broker.log.flush, FlushPolicy::Interval { flush_interval_ms: 100 });
    assert_eq!(c.topics[0].config.flush_interval_ms, None);
    assert!(c.topic_is_relaxed(&c.topics[0]));
}

#[test]
fn environment_overrides_win_over_the_file() {
    let src = "[broker]\ndata_dir = \"/from/file\"\n\n[limits]\nconnections_max = 5\n";
    let vars = env(&[
        ("VELTRIX_BROKER__DATA_DIR", "/from/env"),
        ("VELTRIX_LIMITS__CONNECTIONS_MAX", "1_000"),
        ("VELTRIX_DEFAULTS__PARTITIONS", "3"),
        ("VELTRIX_BROKER__AUTO_CREATE_TOPICS", "TRUE"),
        // Not an override: no `__`.
        ("VELTRIX_CLIENT_RECORDS", "5"),
    ]);
    let report = check_source("veltrix.toml", src, &vars, &probe());
    let c = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{}", report.render(false)));
    assert_eq!(c.data_dir.to_str(), Some("/from/env"));
    assert_eq!(c.limits.connections_max, 1000);
    assert_eq!(c.broker.default_partitions, 3);
    assert!(c.broker.auto_create_topics);
}

#[test]
fn an_invalid_override_names_the_variable() {
    let vars = env(&[("VELTRIX_DEFAULTS__RETENTION_MS", "0")]);
    let report = check_source("veltrix.toml", "", &vars, &probe());
    assert_eq!(report.errors(), 1);
    let d = &report.diagnostics[0];
    assert_eq!(d.id(), "V004");
    assert_eq!(
        d.location,
        Some(Location::Env {
            var: "VELTRIX_DEFAULTS__RETENTION_MS".to_owned(),
            value: "0".to_owned(),
            name: false
        })
    );
    assert!(d.help.contains("1..="), "{}", d.help);
}

#[test]
fn an_override_of_a_table_without_overrides_is_unknown() {
    let vars = env(&[("VELTRIX_TOPIC__NAME", "x"), ("VELTRIX_BROKR__DATA_DIR", "/x")]);
    let report = check_source("veltrix.toml", "", &vars, &probe());
    let helps: Vec<&str> = report.diagnostics.iter().map(|d| d.help.as_str()).collect();
    assert_eq!(
        report.diagnostics.iter().filter(|d| d.id() == "V002").count(),
        2,
        "{helps:?}"
    );
    assert!(
        helps.iter().any(|h| h.contains("VELTRIX_BROKER__DATA_DIR")),
        "{helps:?}"
    );
}

#[test]
fn documented_defaults_are_the_resolved_ones() {
    // The reference prints each key's default from the engine's `Default`s;
    // setting every key to that printed default must change nothing.
    let mut src = String::new();
    for t in schema::TABLES.iter().filter(|t| !t.array) {
        src.push_str(&format!("[{}]\n", t.name));
        for k in t.keys {
            if let Some(d) = (k.default)() {
                src.push_str(&format!("{} = {d}\n", k.name));
            }
        }
    }
    let report = check_source("veltrix.toml", &src, &[], &probe());
    let c = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{src}\n{}", report.render(false)));
    let d = VeltrixConfig::default();
    assert_eq!(c.broker.log, d.broker.log);
    assert_eq!(c.broker.groups, d.broker.groups);
    assert_eq!(c.broker.share, d.broker.share);
    assert_eq!(c.broker.dedup, d.broker.dedup);
    assert_eq!(c.limits, d.limits);
    assert_eq!(
        (c.data_dir, c.kafka_listener, c.http_listener),
        (d.data_dir, d.kafka_listener, d.http_listener)
    );
    assert_eq!(c.broker.default_partitions, d.broker.default_partitions);
}

#[test]
fn documented_duplicate_window_defaults_are_the_engine_s() {
    // A topic that writes out the printed defaults of the id's header and
    // source has the same window as one that leaves them out.
    let topic = schema::table("topic").unwrap();
    let printed = |key: &str| (topic.key(key).unwrap().default)().unwrap();
    assert_eq!(printed("dedup_window_ms"), "0", "off unless set");
    let src = format!(
        "[[topic]]\nname = \"spelt-out\"\ndedup_window_ms = 60_000\ndedup_id_header = {}\ndedup_id_source = {}\n\n\
         [[topic]]\nname = \"left-out\"\ndedup_window_ms = 60_000\n",
        printed("dedup_id_header"),
        printed("dedup_id_source")
    );
    let report = check_source("veltrix.toml", &src, &[], &probe());
    let c = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{src}\n{}", report.render(false)));
    let window = c.topics[0].config.dedup().unwrap();
    assert_eq!(Some(window.clone()), c.topics[1].config.dedup());
    assert_eq!(
        (window.id_source, window.id_header.as_str()),
        (DedupIdSource::default(), veltrix_core::DEDUP_ID_HEADER_DEFAULT)
    );
}

#[test]
fn dedup_limits_are_overridden_from_the_environment_and_checked() {
    let vars = env(&[("VELTRIX_DEDUP__IDS_MAX", "5_000_000")]);
    let c = check_source(
        "veltrix.toml",
        "[dedup]\nids_max = 10\nid_bytes_max = 36\n",
        &vars,
        &probe(),
    )
    .config
    .unwrap();
    assert_eq!(
        c.broker.dedup,
        DedupLimits {
            ids_max: 5_000_000,
            id_bytes_max: 36,
            ..DedupLimits::default()
        }
    );
    let vars = env(&[("VELTRIX_DEDUP__ID_BYTES_MAX", "2048")]);
    let report = check_source("veltrix.toml", "", &vars, &probe());
    let ids: Vec<&str> = report.diagnostics.iter().map(|d| d.id()).collect();
    assert_eq!(ids, ["V004"]);
    assert!(
        report.diagnostics[0].help.contains("1..=1_024 bytes"),
        "{}",
        report.render(false)
    );
    assert!(report.config.is_none());
}

#[test]
fn dead_letter_settings_and_alerts_reach_the_engine() {
    let src = r#"
[share]
dead_letter_topics_auto_create = false
priority_enabled = true

[[topic]]
name = "jobs"

[[topic]]
name = "dlq.jobs"
retention_ms = 86_400_000
segment_age_ms_max = 3_600_000
dedup_window_ms = 86_400_000
dedup_id_header = "veltrix.dlq.id"

[[share_group]]
name = "workers"
dead_letter_topic = "dlq.jobs"
key_order_enabled = true
delay_enabled = true
delay_ms_max = 60_000

[[alert]]
group = "workers"
topic = "jobs"
dead_letters_per_minute_max = 10
"#;
    let report = check_source("veltrix.toml", src, &[], &probe());
    let c = report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{}", report.render(false)));
    assert!(report.diagnostics.is_empty(), "{}", report.render(false));
    assert!(!c.broker.share.dead_letter_topics_auto_create);
    assert!(c.broker.share.defaults.priority);
    let g = c.share_group("workers").unwrap();
    assert!(g.settings.dead_letters && g.settings.key_order && g.settings.delays && g.settings.priority);
    assert_eq!(g.settings.delay_max_ms, 60_000);
    assert_eq!(c.alerts[0].threshold, LagThreshold::DeadLettersPerMinute(10));
}

#[test]
fn transaction_limits_land_in_the_coordinators_config() {
    let src = "[limits]\ntransaction_timeout_ms_max = 60000\ntransactional_ids_max = 500\n\
               transaction_partitions_max = 20\ntransaction_groups_max = 2\n\
               transactional_id_expiration_ms = 3600000\n";
    let report = check_source("veltrix.toml", src, &[], &probe());
    let c = report.config.expect("valid");
    let t = c.broker.transactions;
    assert_eq!(
        (
            t.transaction_timeout_ms_max,
            t.transactional_ids_max,
            t.transaction_partitions_max,
            t.transaction_groups_max,
            t.transactional_id_expiration_ms
        ),
        (60_000, 500, 20, 2, 3_600_000)
    );
    let empty = check_source("veltrix.toml", "", &[], &probe()).config.unwrap();
    assert_eq!(empty.broker.transactions, veltrix_core::txn::TxnConfig::default());
    // Out of range: refused, not clamped.
    let report = check_source("veltrix.toml", "[limits]\ntransaction_groups_max = 0\n", &[], &probe());
    assert!(report.config.is_none(), "{:?}", report.diagnostics);
}
