//! Declared share groups applied to a real broker on a temporary data
//! directory: the settings reach the engine as IncrementalAlterConfigs would
//! store them (and survive a restart), applying again changes nothing, the
//! file wins over settings set over the protocol, a group no longer declared
//! keeps its state and goes back to `[share]`'s settings, and refusals change
//! nothing.

use veltrix_config::{AppliedShareGroups, ApplyError, apply_share_groups};
use veltrix_core::Broker;
use veltrix_core::groups::{Committer, OffsetCommit};
use veltrix_core::share::{AutoOffsetReset, ShareCoordinator, ShareGroupSettings};

use crate::apply::{config, open};

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// What IncrementalAlterConfigs would store for `group` between two starts.
fn set_deliveries(share: &ShareCoordinator, group: &str, deliveries: &str) {
    share
        .set_settings(group, owned(&[("share.delivery.count.limit", deliveries)]))
        .unwrap();
}

/// A broker on a fresh directory with [`V1`] applied.
fn applied_v1() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = open(dir.path(), &config(V1));
    apply_share_groups(&broker, &config(V1)).unwrap();
    (dir, broker)
}

/// Two declared groups with settings and one that sets none, over `[share]`
/// defaults that are not the built-in ones.
const V1: &str = r#"
[share]
deliveries_max = 4
record_lock_duration_ms = 20_000

[[share_group]]
name = "jobs"
auto_offset_reset = "earliest"
record_lock_duration_ms = 40_000

[[share_group]]
name = "emails"
deliveries_max = 8

[[share_group]]
name = "idle"
"#;

#[test]
fn declared_settings_reach_the_engine_durably_and_applying_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    let applied = apply_share_groups(&broker, &c).unwrap();
    assert_eq!(applied.created, names(&["jobs", "emails"]));
    let defaults = broker.share().config().defaults;
    assert_eq!(
        (defaults.delivery_count_limit, defaults.record_lock_duration_ms),
        (4, 20_000)
    );
    let jobs = ShareGroupSettings {
        auto_offset_reset: AutoOffsetReset::Earliest,
        record_lock_duration_ms: 40_000,
        ..defaults
    };
    let check = |broker: &Broker| {
        let share = broker.share();
        assert_eq!(share.settings("jobs"), jobs);
        assert_eq!(
            share.overrides("jobs"),
            owned(&[
                ("share.auto.offset.reset", "earliest"),
                ("share.record.lock.duration.ms", "40000")
            ])
        );
        assert_eq!(share.settings("emails").delivery_count_limit, 8);
        assert_eq!(share.overrides("emails"), owned(&[("share.delivery.count.limit", "8")]));
        // A group that sets nothing is left for its consumers to create.
        assert!(!share.contains("idle"));
    };
    check(&broker);
    assert_eq!(apply_share_groups(&broker, &c).unwrap(), AppliedShareGroups::default());
    broker.close();
    drop(broker);
    // The settings are the engine's stored state, not the file's: a restart
    // replays them before anything is applied.
    let broker = open(dir.path(), &c);
    check(&broker);
    assert_eq!(apply_share_groups(&broker, &c).unwrap(), AppliedShareGroups::default());
    broker.close();
}

#[test]
fn the_file_wins_over_settings_set_over_the_protocol() {
    let (_dir, broker) = applied_v1();
    let share = broker.share();
    set_deliveries(share, "jobs", "2");
    set_deliveries(share, "idle", "3");
    set_deliveries(share, "other", "3");
    let applied = apply_share_groups(&broker, &config(V1)).unwrap();
    assert_eq!(applied.updated, names(&["jobs", "idle"]));
    assert_eq!(share.settings("jobs").delivery_count_limit, 4);
    assert_eq!(share.settings("jobs").record_lock_duration_ms, 40_000);
    // An entry that sets nothing means `[share]`'s settings.
    assert!(share.overrides("idle").is_empty());
    assert_eq!(share.settings("idle"), share.config().defaults);
    // A group the file never declared is the protocol's alone.
    assert_eq!(share.overrides("other"), owned(&[("share.delivery.count.limit", "3")]));
    broker.close();
}

#[test]
fn a_group_no_longer_declared_keeps_its_state_with_the_share_defaults() {
    let (_dir, broker) = applied_v1();
    let v2 = config(
        "[share]\ndeliveries_max = 4\nrecord_lock_duration_ms = 20_000\n\n[[share_group]]\nname = \"emails\"\ndeliveries_max = 8\n",
    );
    let applied = apply_share_groups(&broker, &v2).unwrap();
    assert_eq!(
        applied,
        AppliedShareGroups {
            reset: names(&["jobs"]),
            ..AppliedShareGroups::default()
        }
    );
    let share = broker.share();
    assert!(share.contains("jobs"), "the group is not deleted");
    assert!(share.overrides("jobs").is_empty());
    assert_eq!(share.settings("jobs"), share.config().defaults);
    // Reset once: from now on the group is the protocol's.
    set_deliveries(share, "jobs", "3");
    assert_eq!(apply_share_groups(&broker, &v2).unwrap(), AppliedShareGroups::default());
    assert_eq!(share.settings("jobs").delivery_count_limit, 3);
    broker.close();
}

#[test]
fn refusals_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(V1);
    let broker = open(dir.path(), &c);
    let simple = Committer {
        generation: -1,
        ..Committer::default()
    };
    let offset = OffsetCommit {
        topic: "t".to_owned(),
        partition: 0,
        offset: 1,
        leader_epoch: -1,
        metadata: String::new(),
    };
    let committed = broker.groups().commit("emails", &simple, vec![offset], |_, _| true);
    assert!(committed.iter().all(Result::is_ok), "{committed:?}");
    let err = apply_share_groups(&broker, &c).unwrap_err();
    assert!(
        matches!(&err, ApplyError::ConsumerGroup { group } if group == "emails"),
        "{err}"
    );
    assert!(err.to_string().contains("a consumer group has this id"), "{err}");
    assert!(!broker.share().contains("jobs"), "nothing applied before the refusal");
    broker.close();
    drop(broker);

    let dir = tempfile::tempdir().unwrap();
    let c = config(
        "[share]\ngroups_max = 2\n\n[[share_group]]\nname = \"jobs\"\ndeliveries_max = 3\n\n[[share_group]]\nname = \"emails\"\ndeliveries_max = 3\n",
    );
    let broker = open(dir.path(), &c);
    set_deliveries(broker.share(), "live", "3");
    let err = apply_share_groups(&broker, &c).unwrap_err();
    assert!(
        matches!(
            err,
            ApplyError::ShareGroupsOverMax {
                groups_max: 2,
                live: 1,
                new: 2
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("raise `[share] groups_max`"), "{err}");
    assert!(!broker.share().contains("jobs"));
    broker.close();
}
