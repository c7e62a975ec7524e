//! Declared topics applied to a real broker on a temporary data directory:
//! creation, growth and setting changes; refusal of data-losing changes
//! without permission, before anything changes; partitions never removed;
//! deletion only of topics that an earlier start applied from the file; the
//! duplicate window changed like any setting.

use std::path::Path;

use veltrix_config::{Applied, ApplyError, FixedProbe, VeltrixConfig, apply_topics, check_source};
use veltrix_core::{Broker, DedupIdSource, DedupSettings, TopicConfig};
use veltrix_log::Env;

pub(crate) fn config(source: &str) -> VeltrixConfig {
    let probe = FixedProbe::default();
    let report = check_source("veltrix.toml", source, &[], &probe);
    report
        .config
        .clone()
        .unwrap_or_else(|| panic!("{}", report.render(false)))
}

pub(crate) fn open(dir: &Path, c: &VeltrixConfig) -> Broker {
    Broker::open(Env::system(), dir, c.broker_config()).unwrap()
}

const V1: &str =
    "[[topic]]\nname = \"orders\"\npartitions = 2\nretention_ms = 86_400_000\n\n[[topic]]\nname = \"clicks\"\n";

#[test]
fn missing_topics_are_created_as_declared() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    let applied = apply_topics(&broker, &c, false).unwrap();
    assert_eq!(applied.created, vec!["orders".to_owned(), "clicks".to_owned()]);
    let orders = broker.topic("orders").unwrap();
    assert_eq!(orders.partitions.len(), 2);
    assert_eq!(orders.config.retention_ms, Some(86_400_000));
    assert_eq!(broker.topic("clicks").unwrap().partitions.len(), 1);
    // Applying the same file again changes nothing.
    assert_eq!(apply_topics(&broker, &c, false).unwrap(), Applied::default());
    broker.close();
}

#[test]
fn partitions_grow_and_settings_follow_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    let v2 = config(
        "[[topic]]\nname = \"orders\"\npartitions = 4\nretention_ms = 172_800_000\nbatch_bytes_max = 65_536\n\n[[topic]]\nname = \"clicks\"\n",
    );
    let applied = apply_topics(&broker, &v2, false).unwrap();
    assert_eq!(applied.grown, vec![("orders".to_owned(), 4)]);
    assert_eq!(applied.altered, vec!["orders".to_owned()]);
    let orders = broker.topic("orders").unwrap();
    assert_eq!(orders.partitions.len(), 4);
    assert_eq!(
        orders.config,
        TopicConfig {
            retention_ms: Some(172_800_000),
            batch_bytes_max: Some(65_536),
            ..TopicConfig::default()
        }
    );
    broker.close();
}

#[test]
fn a_shorter_retention_needs_permission_and_nothing_changes_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    let shorter = config(
        "[[topic]]\nname = \"orders\"\npartitions = 3\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\n\n[[topic]]\nname = \"clicks\"\n",
    );
    let err = apply_topics(&broker, &shorter, false).unwrap_err();
    assert!(
        matches!(&err, ApplyError::DataLoss { topic, .. } if topic == "orders"),
        "{err}"
    );
    assert!(err.to_string().contains("--allow-data-loss"), "{err}");
    // Planned before applied: the growth to 3 partitions did not happen either.
    assert_eq!(broker.topic("orders").unwrap().partitions.len(), 2);
    assert_eq!(broker.topic("orders").unwrap().config.retention_ms, Some(86_400_000));
    let applied = apply_topics(&broker, &shorter, true).unwrap();
    assert_eq!(applied.altered, vec!["orders".to_owned()]);
    assert_eq!(broker.topic("orders").unwrap().config.retention_ms, Some(3_600_000));
    broker.close();
}

#[test]
fn turning_compaction_on_needs_permission_and_then_compacts_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    let compacted = config(
        "[[topic]]\nname = \"orders\"\npartitions = 2\ncleanup_policy = \"compact,delete\"\nretention_ms = 86_400_000\ncompaction_lag_ms_min = 1_000\ncleanable_dirty_percent_min = 10\n\n[[topic]]\nname = \"clicks\"\n",
    );
    let err = apply_topics(&broker, &compacted, false).unwrap_err();
    assert!(err.to_string().contains("cleanup_policy"), "{err}");
    assert_eq!(broker.topic("orders").unwrap().config.cleanup_policy, None);
    apply_topics(&broker, &compacted, true).unwrap();
    let log = broker.topic("orders").unwrap().partitions[0].log().config();
    let compaction = log.compaction.expect("compacted");
    assert_eq!(
        (compaction.min_compaction_lag_ms, compaction.min_cleanable_dirty_ppm),
        (1_000, 100_000)
    );
    assert_eq!(log.retention_ms, Some(86_400_000), "compact,delete keeps the retention");
    broker.close();
}

#[test]
fn partitions_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    let fewer = config("[[topic]]\nname = \"orders\"\npartitions = 1\nretention_ms = 86_400_000\n");
    let err = apply_topics(&broker, &fewer, true).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::PartitionsDecrease {
                live: 2,
                declared: 1,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(broker.topic("orders").unwrap().partitions.len(), 2);
    broker.close();
}

#[test]
fn only_topics_declared_before_are_deleted_and_only_with_permission() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    // Created through the admin API: never declared, never deleted.
    broker.create_topic("adhoc", Some(1), TopicConfig::default()).unwrap();
    broker.close();
    drop(broker);

    // A restart with `clicks` gone from the file.
    let without_clicks = config("[[topic]]\nname = \"orders\"\npartitions = 2\nretention_ms = 86_400_000\n");
    let broker = open(dir.path(), &without_clicks);
    let err = apply_topics(&broker, &without_clicks, false).unwrap_err();
    assert!(
        matches!(&err, ApplyError::DataLoss { topic, .. } if topic == "clicks"),
        "{err}"
    );
    assert!(broker.topic("clicks").is_some());
    let applied = apply_topics(&broker, &without_clicks, true).unwrap();
    assert_eq!(applied.deleted, vec!["clicks".to_owned()]);
    assert!(broker.topic("clicks").is_none());
    assert!(broker.topic("adhoc").is_some());
    // The record now names `orders` only: a further start deletes nothing.
    assert_eq!(
        apply_topics(&broker, &without_clicks, false).unwrap(),
        Applied::default()
    );
    broker.close();
}

/// The duplicate window is a setting like the others: a live topic gets the
/// declared window, a changed one and none again, without `--allow-data-loss`
/// (a window deletes nothing stored), and applying the same file twice
/// changes nothing.
#[test]
fn a_changed_duplicate_window_is_applied_to_a_live_topic() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    let orders = "[[topic]]\nname = \"orders\"\npartitions = 2\nretention_ms = 86_400_000\n";
    let steps: [(&str, Option<DedupSettings>); 4] = [
        (
            "dedup_window_ms = 120_000\n",
            Some(DedupSettings {
                window_ms: 120_000,
                id_source: DedupIdSource::Header,
                id_header: "message-id".to_owned(),
            }),
        ),
        (
            "dedup_window_ms = 3_600_000\ndedup_id_header = \"event-id\"\n",
            Some(DedupSettings {
                window_ms: 3_600_000,
                id_source: DedupIdSource::Header,
                id_header: "event-id".to_owned(),
            }),
        ),
        (
            "dedup_window_ms = 600_000\ndedup_id_source = \"key\"\n",
            Some(DedupSettings {
                window_ms: 600_000,
                id_source: DedupIdSource::Key,
                id_header: "message-id".to_owned(),
            }),
        ),
        ("", None),
    ];
    for (keys, want) in steps {
        let declared = config(&format!("{orders}{keys}\n[[topic]]\nname = \"clicks\"\n"));
        let applied = apply_topics(&broker, &declared, false).unwrap();
        assert_eq!(applied.altered, vec!["orders".to_owned()], "{keys}");
        assert_eq!(broker.topic("orders").unwrap().config.dedup(), want, "{keys}");
        assert_eq!(
            apply_topics(&broker, &declared, false).unwrap(),
            Applied::default(),
            "{keys}: applied once"
        );
    }
    broker.close();
}

/// V301 and V302: the refusals are decided from the data directory's records
/// before a broker opens it, and told at the line of the file that asks for
/// them (a removed topic has no line: it is named).
#[test]
fn refusals_are_planned_before_opening_and_told_at_their_line() {
    use veltrix_config::preflight_topics;
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    // A directory that does not exist yet has nothing to lose.
    preflight_topics(&dir.path().join("not-yet"), &c, false).unwrap();
    assert!(!dir.path().join("not-yet").exists());
    let broker = open(dir.path(), &c);
    apply_topics(&broker, &c, false).unwrap();
    broker.close();
    let at = |source: &str, allow: bool| {
        let report = check_source("veltrix.toml", source, &[], &FixedProbe::default());
        let c = report
            .config
            .clone()
            .unwrap_or_else(|| panic!("{}", report.render(false)));
        let e = preflight_topics(dir.path(), &c, allow).unwrap_err();
        let d = report.refusal(&e).expect("a refusal with a place");
        (d.id().to_owned(), d.line(), d.help.clone())
    };
    let fewer =
        "[[topic]]\nname = \"orders\"\npartitions = 1\nretention_ms = 86_400_000\n\n[[topic]]\nname = \"clicks\"\n";
    assert_eq!(
        at(fewer, true),
        (
            "V301".to_owned(),
            Some(3),
            "declare `partitions = 2` or more".to_owned()
        )
    );
    let shorter = "[defaults]\nretention_ms = 3_600_000\nsegment_age_ms_max = 600_000\n\n[[topic]]\nname = \"orders\"\npartitions = 2\n\n[[topic]]\nname = \"clicks\"\n";
    // `orders` inherits the shorter retention from `[defaults]`: told there.
    let (id, line, _) = at(shorter, false);
    assert_eq!((id.as_str(), line), ("V302", Some(2)));
    let removed = "[[topic]]\nname = \"orders\"\npartitions = 2\nretention_ms = 86_400_000\n";
    let (id, line, help) = at(removed, false);
    assert_eq!((id.as_str(), line), ("V302", None));
    assert!(help.contains("`clicks`"), "{help}");
    preflight_topics(dir.path(), &config(removed), true).unwrap();
}

/// Declared quotas become the entities' quotas exactly; an entity no longer
/// declared loses them; quotas set over the protocol for others stay.
#[test]
fn declared_quotas_are_set_exactly_and_removed_when_no_longer_declared() {
    use veltrix_core::quotas::{EntityName, QuotaEntity, QuotaKind, QuotaOp};
    let dir = tempfile::tempdir().unwrap();
    let c = config(
        "[[quota]]\nclient_id = \"etl\"\nproducer_byte_rate = 1_048_576\n\n[[quota]]\nuser_default = true\nconsumer_byte_rate = 2_000_000\n",
    );
    let broker = open(dir.path(), &c);
    let other = QuotaEntity {
        user: None,
        client_id: Some(EntityName::Named("api".into())),
    };
    broker.quotas().alter(
        &[(
            other.clone(),
            vec![QuotaOp {
                kind: QuotaKind::ProducerByteRate,
                value: Some(10.0),
            }],
        )],
        false,
    );
    let applied = veltrix_config::apply_quotas(&broker, &c).unwrap();
    assert_eq!(applied.set.len(), 2);
    let etl = broker
        .quotas()
        .applied(QuotaKind::ProducerByteRate, "ANONYMOUS", "etl")
        .unwrap();
    assert_eq!(etl.quota, 1_048_576.0);
    assert_eq!(
        broker
            .quotas()
            .applied(QuotaKind::ConsumerByteRate, "bob", "x")
            .map(|a| a.quota),
        Some(2_000_000.0)
    );
    // Again: nothing to do.
    assert_eq!(veltrix_config::apply_quotas(&broker, &c).unwrap(), Default::default());
    // The etl entry changes and the default one goes.
    let c2 = config("[[quota]]\nclient_id = \"etl\"\nconsumer_byte_rate = 500_000\n");
    let applied = veltrix_config::apply_quotas(&broker, &c2).unwrap();
    assert_eq!((applied.set.len(), applied.removed.len()), (1, 1));
    let all = broker.quotas().entities();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains_key(&other), "set over the protocol: stays");
    assert_eq!(
        broker.quotas().applied(QuotaKind::ProducerByteRate, "ANONYMOUS", "etl"),
        None
    );
    broker.close();
}
