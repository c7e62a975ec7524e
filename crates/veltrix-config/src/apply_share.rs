//! Declared share groups applied to a running broker at start: each group's
//! own settings made exactly what its `[[share_group]]` entry says, through
//! the engine (durably, as IncrementalAlterConfigs would), so that the Kafka
//! protocol and DescribeConfigs see them.
//!
//! The file wins at start: settings set over the Kafka protocol for a
//! declared group since the last start are replaced (a key the entry leaves
//! out goes back to `[share]`'s value). A group that an earlier start
//! declared and the file no longer does keeps its state and goes back to
//! `[share]`'s settings; nothing is deleted, since a share group's state
//! (which records are done) is not the file's to drop. Which groups came from
//! the file is recorded in `declared-share-groups.json` in the data
//! directory. Everything is planned before anything changes.

use std::collections::BTreeSet;

use veltrix_core::Broker;

use crate::apply::{ApplyError, read_declared, write_declared};
use crate::model::VeltrixConfig;

/// The file, in the data directory, naming the share groups applied from the
/// configuration at the last start.
pub const DECLARED_SHARE_GROUPS_FILE: &str = "declared-share-groups.json";

/// What applying the declared share groups changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedShareGroups {
    /// Groups created, with the declared settings (a group whose entry sets
    /// nothing is left for its consumers to create).
    pub created: Vec<String>,
    /// Existing groups whose own settings changed to the declared ones.
    pub updated: Vec<String>,
    /// Groups no longer declared, back to `[share]`'s settings.
    pub reset: Vec<String>,
}

/// One planned change: a group and the settings it gets.
struct Change<'a> {
    group: &'a str,
    overrides: Vec<(String, String)>,
}

/// Makes the settings of `broker`'s share groups match `config`'s declared
/// ones. Refused, before anything changes, when a declared id is a consumer
/// group's or the groups to create do not fit in `[share] groups_max`.
pub fn apply_share_groups(broker: &Broker, config: &VeltrixConfig) -> Result<AppliedShareGroups, ApplyError> {
    let dir = broker.data_dir();
    let previously = read_declared(dir, DECLARED_SHARE_GROUPS_FILE)?;
    let share = broker.share();
    let consumer_groups: BTreeSet<String> = broker.groups().list().into_iter().map(|g| g.group_id).collect();
    let mut applied = AppliedShareGroups::default();
    let mut changes = Vec::new();
    for g in &config.share_groups {
        if consumer_groups.contains(&g.name) {
            return Err(ApplyError::ConsumerGroup { group: g.name.clone() });
        }
        match share.contains(&g.name).then(|| share.overrides(&g.name)) {
            // Nothing to set: its consumers create it with `[share]`'s settings.
            None if g.overrides.is_empty() => continue,
            None => applied.created.push(g.name.clone()),
            Some(live) if same(&live, &g.overrides) => continue,
            Some(_) => applied.updated.push(g.name.clone()),
        }
        changes.push(Change {
            group: &g.name,
            overrides: g.overrides.clone(),
        });
    }
    let live = share.list().len();
    let groups_max = share.config().groups_max;
    if live + applied.created.len() > groups_max {
        return Err(ApplyError::ShareGroupsOverMax {
            groups_max,
            live,
            new: applied.created.len(),
        });
    }
    for name in &previously {
        if config.share_group(name).is_none() && share.contains(name) && !share.overrides(name).is_empty() {
            applied.reset.push(name.clone());
            changes.push(Change {
                group: name,
                overrides: Vec::new(),
            });
        }
    }
    for c in changes {
        share
            .set_settings(c.group, c.overrides)
            .map_err(|source| ApplyError::ShareGroup {
                group: c.group.to_owned(),
                source,
            })?;
    }
    let declared: BTreeSet<String> = config.share_groups.iter().map(|g| g.name.clone()).collect();
    if declared != previously {
        write_declared(dir, DECLARED_SHARE_GROUPS_FILE, &declared)?;
    }
    Ok(applied)
}

/// Whether two lists of settings set the same values, whatever their order.
fn same(a: &[(String, String)], b: &[(String, String)]) -> bool {
    let sorted = |l: &[(String, String)]| {
        let mut l = l.to_vec();
        l.sort();
        l
    };
    sorted(a) == sorted(b)
}
