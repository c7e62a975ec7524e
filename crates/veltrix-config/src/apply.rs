//! Declared topics applied to a running broker at start: created if missing,
//! settings updated, partitions grown.
//!
//! Everything is planned before anything changes, so a refused change leaves
//! the broker as it was. Two kinds of change lose data and are refused unless
//! the caller allows it (`veltrix serve --allow-data-loss`): a shorter
//! retention (by time or size) on a live topic, which deletes records at the
//! next housekeeping, and the deletion of a topic that an earlier start
//! applied from the file and the file no longer declares. Partitions are
//! never removed: that is refused whatever the flag says.
//!
//! Which topics came from the file is recorded in `declared-topics.json` in
//! the data directory (replaced atomically), so topics created through the
//! Kafka admin API or by auto-creation are never deleted for not being
//! declared.

use std::collections::BTreeSet;
use std::path::Path;

use veltrix_core::share::ShareError;
use veltrix_core::{Broker, CoreError, TopicConfig};
use veltrix_log::LogConfig;
use veltrix_log::io::FsStorage;

use crate::model::{DeclaredTopic, VeltrixConfig};

/// The file, in the data directory, naming the topics applied from the
/// configuration at the last start.
pub const DECLARED_TOPICS_FILE: &str = "declared-topics.json";

/// What applying the declared topics changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub created: Vec<String>,
    /// Topics whose partitions grew, with the new count.
    pub grown: Vec<(String, u32)>,
    /// Topics whose settings changed.
    pub altered: Vec<String>,
    /// Topics deleted because the file no longer declares them.
    pub deleted: Vec<String>,
}

/// Why the declared topics could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A change that loses data, without permission.
    #[error("topic `{topic}`: {change}; this loses data, so it needs `--allow-data-loss`")]
    DataLoss {
        topic: String,
        change: String,
        /// The key whose new value loses data (`retention_ms`); `None` when
        /// the topic is no longer declared.
        key: Option<&'static str>,
    },
    /// Fewer partitions than the live topic has.
    #[error(
        "topic `{topic}` has {live} partitions and the file declares {declared}; partitions are never removed (that would lose records and reorder keys): declare {live} or more"
    )]
    PartitionsDecrease { topic: String, live: u32, declared: u32 },
    #[error("topic `{topic}`: {source}")]
    Broker {
        topic: String,
        #[source]
        source: CoreError,
    },
    /// A declared share group's id is a consumer group's.
    #[error(
        "share group `{group}`: a consumer group has this id; a share group cannot take it (delete the consumer group, or declare another name)"
    )]
    ConsumerGroup { group: String },
    /// More share groups than `[share] groups_max` would exist.
    #[error(
        "the broker keeps at most {groups_max} share groups, and {live} exist; the {new} declared ones not yet among them do not fit: raise `[share] groups_max`"
    )]
    ShareGroupsOverMax { groups_max: usize, live: usize, new: usize },
    /// The engine refused a declared share group's settings, or could not
    /// store them.
    #[error("share group `{group}`: {source}")]
    ShareGroup {
        group: String,
        #[source]
        source: ShareError,
    },
    /// The engine refused a declared quota, or could not store it.
    #[error("quota for {entity}: {source}")]
    Quota {
        entity: String,
        #[source]
        source: veltrix_core::quotas::QuotaError,
    },
    /// The data directory's topic catalogue could not be read.
    #[error("reading the topic catalogue: {0}")]
    Catalog(#[source] CoreError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One planned change.
enum Change<'a> {
    Create(&'a DeclaredTopic),
    Grow(&'a DeclaredTopic),
    Alter(&'a DeclaredTopic),
    Delete(String),
}

/// Makes `broker`'s topics match `config`'s declared topics. With
/// `allow_data_loss`, shorter retentions and deletions of topics that are no
/// longer declared are applied; without it they are refused before anything
/// changes.
pub fn apply_topics(broker: &Broker, config: &VeltrixConfig, allow_data_loss: bool) -> Result<Applied, ApplyError> {
    let dir = broker.data_dir();
    let previously = read_declared(dir, DECLARED_TOPICS_FILE)?;
    let live = |name: &str| {
        let t = broker.topic(name)?;
        Some((u32::try_from(t.partitions.len()).unwrap_or(u32::MAX), t.config.clone()))
    };
    let changes = plan(&live, &broker.config().log, config, &previously, allow_data_loss)?;
    let mut applied = Applied::default();
    for change in changes {
        match change {
            Change::Create(t) => {
                broker
                    .create_topic(&t.name, Some(t.partitions), t.config.clone())
                    .map_err(|source| broker_error(&t.name, source))?;
                applied.created.push(t.name.clone());
            }
            Change::Grow(t) => {
                broker
                    .create_partitions(&t.name, t.partitions)
                    .map_err(|source| broker_error(&t.name, source))?;
                applied.grown.push((t.name.clone(), t.partitions));
            }
            Change::Alter(t) => {
                let wanted = t.config.clone();
                broker
                    .alter_topic_config(&t.name, false, |c| {
                        *c = wanted;
                        Ok(())
                    })
                    .map_err(|source| broker_error(&t.name, source))?;
                applied.altered.push(t.name.clone());
            }
            Change::Delete(name) => {
                broker
                    .delete_topic(&name)
                    .map_err(|source| broker_error(&name, source))?;
                applied.deleted.push(name);
            }
        }
    }
    let declared: BTreeSet<String> = config.topics.iter().map(|t| t.name.clone()).collect();
    if declared != previously {
        write_declared(dir, DECLARED_TOPICS_FILE, &declared)?;
    }
    Ok(applied)
}

fn broker_error(topic: &str, source: CoreError) -> ApplyError {
    ApplyError::Broker {
        topic: topic.to_owned(),
        source,
    }
}

/// The refusal [`apply_topics`] would make, decided from what the data
/// directory `dir` records before a broker opens it: a start that would be
/// refused opens, locks and creates nothing. A directory that does not exist
/// yet has no topics to lose.
pub fn preflight_topics(dir: &Path, config: &VeltrixConfig, allow_data_loss: bool) -> Result<(), ApplyError> {
    let recorded = Broker::recorded_topics(dir).map_err(ApplyError::Catalog)?;
    let previously = read_declared(dir, DECLARED_TOPICS_FILE)?;
    let live = |name: &str| recorded.get(name).cloned();
    plan(&live, &config.broker_config().log, config, &previously, allow_data_loss).map(drop)
}

/// A live topic's partition count and settings, by name.
type Live<'l> = dyn Fn(&str) -> Option<(u32, TopicConfig)> + 'l;

fn plan<'a>(
    live: &Live<'_>,
    defaults: &LogConfig,
    config: &'a VeltrixConfig,
    previously: &BTreeSet<String>,
    allow_data_loss: bool,
) -> Result<Vec<Change<'a>>, ApplyError> {
    let mut changes = Vec::new();
    for t in &config.topics {
        let Some((live_partitions, live_config)) = live(&t.name) else {
            changes.push(Change::Create(t));
            continue;
        };
        if t.partitions < live_partitions {
            return Err(ApplyError::PartitionsDecrease {
                topic: t.name.clone(),
                live: live_partitions,
                declared: t.partitions,
            });
        }
        if t.partitions > live_partitions {
            changes.push(Change::Grow(t));
        }
        if live_config != t.config {
            if !allow_data_loss && let Some((key, change)) = retention_loss(&live_config, &t.config, defaults) {
                return Err(ApplyError::DataLoss {
                    topic: t.name.clone(),
                    change,
                    key: Some(key),
                });
            }
            changes.push(Change::Alter(t));
        }
    }
    for name in previously {
        if config.topic(name).is_none() && live(name).is_some() {
            if !allow_data_loss {
                return Err(ApplyError::DataLoss {
                    topic: name.clone(),
                    change: "it was declared at the last start and is no longer, which deletes it and its records"
                        .to_owned(),
                    key: None,
                });
            }
            changes.push(Change::Delete(name.clone()));
        }
    }
    Ok(changes)
}

/// How going from `old` to `new` shortens retention, if it does, with the
/// key that does it.
fn retention_loss(old: &TopicConfig, new: &TopicConfig, defaults: &LogConfig) -> Option<(&'static str, String)> {
    let compacts = |c: &TopicConfig| c.cleanup_policy.is_some_and(|p| p.compact);
    if compacts(new) && !compacts(old) {
        return Some((
            "cleanup_policy",
            "`cleanup_policy` turns compaction on, which removes every record but each key's latest".to_owned(),
        ));
    }
    let (old, new) = (old.log_config(defaults), new.log_config(defaults));
    let shorter = |o: Option<u64>, n: Option<u64>| match (o, n) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(o), Some(n)) => n < o,
    };
    let show = |v: Option<u64>| v.map_or("no limit".to_owned(), |v| v.to_string());
    if shorter(old.retention_ms, new.retention_ms) {
        return Some((
            "retention_ms",
            format!(
                "`retention_ms` goes from {} to {}, which deletes older records",
                show(old.retention_ms),
                show(new.retention_ms)
            ),
        ));
    }
    if shorter(old.retention_bytes, new.retention_bytes) {
        return Some((
            "retention_bytes",
            format!(
                "`retention_bytes` goes from {} to {}, which deletes older records",
                show(old.retention_bytes),
                show(new.retention_bytes)
            ),
        ));
    }
    None
}

/// The names recorded in `file` of the data directory; none if it does not
/// exist yet.
pub(crate) fn read_declared(dir: &Path, file: &str) -> Result<BTreeSet<String>, ApplyError> {
    let path = dir.join(file);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => {
            return Err(ApplyError::Io {
                op: "read",
                path: path.display().to_string(),
                source,
            });
        }
    };
    serde_json::from_str(&text).map_err(|e| ApplyError::Io {
        op: "parse",
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })
}

/// Records `names` in `file` of the data directory, replaced durably.
pub(crate) fn write_declared(dir: &Path, file: &str, names: &BTreeSet<String>) -> Result<(), ApplyError> {
    let bytes = serde_json::to_vec_pretty(names).expect("names serialise");
    veltrix_log::checkpoint::replace_file(&FsStorage, dir, file, &bytes).map_err(|source| ApplyError::Io {
        op: "write",
        path: dir.join(file).display().to_string(),
        source,
    })
}
