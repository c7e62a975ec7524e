//! Snapshots of rendered diagnostics, so their wording and layout are
//! reviewed in a diff like code. Plain rendering (no colours).

use veltrix_config::{FixedProbe, check_source, rules};

fn render(source: &str, env: &[(&str, &str)], probe: FixedProbe) -> String {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    check_source("veltrix.toml", source, &env, &probe).render(false)
}

fn disk() -> FixedProbe {
    FixedProbe {
        filesystem_type: Some("ext4".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    }
}

#[test]
fn schema_errors() {
    let src = r#"[broker]
profile = "prod"
data_dir = "/var/lib/veltrix"
colour = "blue"

[listeners]
kafka = "localhost:9092"

[defaults]
retention_ms = "7d"
segment_bytes_max = 100
partitions = 2.0
durability = "interval"

[[topic]]
partitions = 3

[[topic]]
name = "orders!"
"#;
    insta::assert_snapshot!(render(src, &[], disk()));
}

#[test]
fn cross_field_rules() {
    let src = r#"[limits]
request_bytes_max = 200_000_000
in_flight_bytes_max = 100_000_000

[[topic]]
name = "orders"
segment_bytes_max = 1_048_576
batch_bytes_max = 2_097_152
retention_ms = 600_000
segment_age_ms_max = 60_000

[[topic]]
name = "orders"

[[alert]]
group = "billing"
topic = "orders"
lag_ms_max = 600_000
for_ms = 300_000

[[alert]]
group = "billing"
topic = "ordres"
lag_records_max = 100
"#;
    insta::assert_snapshot!(render(src, &[], disk()));
}

#[test]
fn duplicate_window_rules() {
    let src = r#"[defaults]
retention_ms = 3_600_000
segment_age_ms_max = 600_000

[dedup]
ids_max = 100_000

# Rewards: a broker outage must not grant them twice.
[[topic]]
name = "rewards"
dedup_window_ms = 7_200_000
dedup_id_header = " reward-id"

[[topic]]
name = "clicks"
peak_records_per_second = 2_000
dedup_window_ms = 120

[[topic]]
name = "orders"
dedup_id_header = "order-id"
dedup_id_source = "key"

[[topic]]
name = "telemetry"
peak_records_per_second = 5_000
dedup_window_ms = 600_000
dedup_id_header = ""
"#;
    insta::assert_snapshot!(render(src, &[], disk()));
}

#[test]
fn production_lints() {
    let src = r#"[broker]
profile = "production"
data_dir = "data"
auto_create_topics = true

[listeners]
kafka = "0.0.0.0:9092"

[[topic]]
name = "purchases"
critical = true
keyed = true
peak_records_per_second = 20_000
partitions = 1
durability = "interval"
flush_interval_ms = 1_000
"#;
    let tmpfs = FixedProbe {
        filesystem_type: Some("tmpfs".to_owned()),
        memory_bytes_total: Some(64 << 30),
        ..FixedProbe::default()
    };
    insta::assert_snapshot!(render(src, &[], tmpfs));
}

#[test]
fn environment_overrides() {
    let env = [
        ("VELTRIX_BROKER__DATA_DIRECTORY", "/srv/veltrix"),
        ("VELTRIX_LIMITS__IN_FLIGHT_BYTES_MAX", "1GiB"),
        ("VELTRIX_LISTENERS__KAFKA", "127.0.0.1"),
    ];
    insta::assert_snapshot!(render("[broker]\nprofile = \"development\"\n", &env, disk()));
}

#[test]
fn syntax_error() {
    insta::assert_snapshot!(render("[broker]\ndata_dir = /var/lib/veltrix\n", &[], disk()));
}

#[test]
fn explanation_of_a_rule() {
    let r = rules::find("V108").unwrap();
    insta::assert_snapshot!(format!("{} {}: {}\n\n{}", r.id, r.name, r.summary, r.explanation));
}

/// The mistakes of units and paths: each names the value meant and the line
/// to write.
#[test]
fn units_and_paths() {
    let src = r#"[broker]
data_dir = "~/veltrix"

[observability]
lag_evaluation_interval_ms = 10_000

[[topic]]
name = "orders"
retention_ms = 7
segment_age_ms_max = 7

[[alert]]
group = "billing"
topic = "orders"
lag_ms_max = 5_000

[[alert]]
group = "audit"
topic = "orders"
lag_ms_max = 30
"#;
    let probe = FixedProbe {
        variables: vec![("HOME".to_owned(), "/home/ops".to_owned())],
        ..disk()
    };
    insta::assert_snapshot!(render(src, &[], probe));
}

/// Routes: an expression's errors at their place inside the string, the
/// topics a route names against the declared ones, a cycle, a lower tier.
#[test]
fn route_rules() {
    let src = r#"[[topic]]
name = "events"
tier = "critical"

[[topic]]
name = "events.critical"
critical = true

[[topic]]
name = "events.other"
tier = "bulk"

[[route]]
name = "by-type"
source = "events"
default = ["events.other"]

  [[route.rule]]
  when = 'value.type == "reward" || value.type == "purchase"'
  to = ["events.critical"]
  headers = { "x-lane" = "critical" }

  [[route.rule]]
  when = "value.type == \"refund\" && startswith(key, \"eu-\")"
  to = "events.critcal"

  [[route.rule]]
  when = '''
value.amount > 100
  && record.country == "FR"'''
  to = "events.critical"

[[route]]
name = "replay"
source = "events.other"
default = "events"
dead_letter = "events.other"
"#;
    insta::assert_snapshot!(render(src, &[], disk()));
}
