//! The topic catalogue: which topics exist, their ids, partition counts and
//! settings, kept in `topics.json` in the data directory.
//!
//! The file is replaced atomically (write a temporary file, fsync, rename, fsync
//! the directory) and carries a CRC32C of its contents, so a restart finds either
//! the old catalogue or the new one, never a mix, and refuses to start on a
//! damaged one rather than forget topics.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use veltrix_log::io::{OpenMode, Storage};
use veltrix_log::{FlushPolicy, LogConfig};

use crate::error::{CoreError, Result};

pub(crate) const CATALOG_FILE: &str = "topics.json";
const CATALOG_VERSION: u32 = 1;

/// Per-topic settings that differ from the broker's defaults. Each `None` means
/// "the broker default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// As in Kafka, -1 means no limit (keep by time forever), which is not the
    /// same as `None` (the broker's default, which may well have a limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<i64>,
    /// -1 means no limit, as for `retention_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_bytes_max: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_age_ms_max: Option<u64>,
    /// Kafka's `max.message.bytes`: the largest batch accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_bytes_max: Option<u32>,
    /// When set, appends are acknowledged before fsync and flushed this often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flush_interval_ms: Option<u64>,
    /// `veltrix.dedup.window.ms`: how long a record's message id is
    /// remembered, so that a record with the same id is dropped; 0 or unset
    /// turns the window off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_window_ms: Option<u64>,
    /// `veltrix.dedup.id.header`: the header whose value is the message id
    /// ([`DEDUP_ID_HEADER_DEFAULT`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id_header: Option<String>,
    /// `veltrix.dedup.id.source`: where the id is (a header when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_id_source: Option<DedupIdSource>,
    /// `veltrix.tier`: which traffic is slowed first when the broker's memory
    /// fills ([`Tier::Standard`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// `cleanup.policy`: delete by retention, compact by key, or both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_policy: Option<CleanupPolicy>,
    /// `delete.retention.ms`: how long a tombstone outlives its compaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_retention_ms: Option<u64>,
    /// `min.compaction.lag.ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_compaction_lag_ms: Option<u64>,
    /// `max.compaction.lag.ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_compaction_lag_ms: Option<u64>,
    /// `min.cleanable.dirty.ratio`, in millionths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cleanable_dirty_ppm: Option<u32>,
}

/// Kafka's `cleanup.policy`: a list of `delete` and `compact`, in any order,
/// each at most once, not empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };

    /// Parses the list as Kafka does (spaces around words ignored); an
    /// unknown word, a word given twice or an empty list is refused with a
    /// message saying what is allowed.
    pub fn parse(list: &str) -> Result<CleanupPolicy, String> {
        let mut p = CleanupPolicy::default();
        for word in list.split(',').map(str::trim) {
            let flag = match word {
                "delete" => &mut p.delete,
                "compact" => &mut p.compact,
                "" => {
                    return Err(format!(
                        "`cleanup.policy` = `{list}` has an empty entry; use `delete`, `compact` or `compact,delete`"
                    ));
                }
                other => {
                    return Err(format!(
                        "`cleanup.policy` = `{list}`: unknown policy `{other}`; use `delete`, `compact` or both (`compact,delete`)"
                    ));
                }
            };
            if *flag {
                return Err(format!("`cleanup.policy` = `{list}` names `{word}` twice"));
            }
            *flag = true;
        }
        Ok(p)
    }

    /// Kafka's spelling: `delete`, `compact` or `compact,delete`.
    pub fn name(self) -> &'static str {
        match (self.compact, self.delete) {
            (true, true) => "compact,delete",
            (true, false) => "compact",
            (false, true) => "delete",
            (false, false) => "",
        }
    }
}

/// A topic's priority tier. As the memory budget fills, produce and fetch
/// of `bulk` topics are throttled first, then `standard`; `critical` ones
/// flow until the budget is really full. Ordered by priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Bulk,
    #[default]
    Standard,
    Critical,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Critical, Tier::Standard, Tier::Bulk];

    /// The tier's word (`veltrix.tier`, `tier` in the file, metric labels).
    pub fn name(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::Bulk => "bulk",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.name() == s)
    }
}

/// The header that carries a record's message id unless a topic names another.
pub const DEDUP_ID_HEADER_DEFAULT: &str = "message-id";
/// The longest header name a topic may name as the id's.
pub const DEDUP_ID_HEADER_BYTES_MAX: usize = 255;

/// Where a dedup topic finds a record's message id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupIdSource {
    /// The value of the header `veltrix.dedup.id.header`.
    #[default]
    Header,
    /// The record's key.
    Key,
}

impl DedupIdSource {
    pub fn as_str(self) -> &'static str {
        match self {
            DedupIdSource::Header => "header",
            DedupIdSource::Key => "key",
        }
    }

    pub fn parse(s: &str) -> Option<DedupIdSource> {
        match s {
            "header" => Some(DedupIdSource::Header),
            "key" => Some(DedupIdSource::Key),
            _ => None,
        }
    }
}

/// A topic's duplicate window, as its settings resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupSettings {
    pub window_ms: u64,
    pub id_source: DedupIdSource,
    /// The header's name; meaningful when `id_source` is `Header`.
    pub id_header: String,
}

impl TopicConfig {
    /// The log settings for this topic over the broker's defaults.
    pub fn log_config(&self, defaults: &LogConfig) -> LogConfig {
        LogConfig {
            retention_ms: limit(self.retention_ms, defaults.retention_ms),
            retention_bytes: limit(self.retention_bytes, defaults.retention_bytes),
            segment_bytes_max: self.segment_bytes_max.unwrap_or(defaults.segment_bytes_max),
            segment_age_ms_max: self.segment_age_ms_max.unwrap_or(defaults.segment_age_ms_max),
            batch_bytes_max: self.batch_bytes_max.unwrap_or(defaults.batch_bytes_max),
            flush: match self.flush_interval_ms {
                Some(flush_interval_ms) => FlushPolicy::Interval { flush_interval_ms },
                None => defaults.flush,
            },
            ..*defaults
        }
        .with_cleanup(self)
    }
}

/// What `cleanup.policy` and the compaction settings do to a log's settings.
trait WithCleanup {
    fn with_cleanup(self, c: &TopicConfig) -> Self;
}

impl WithCleanup for LogConfig {
    /// Retention applies only with `delete`; compaction only with `compact`.
    fn with_cleanup(mut self, c: &TopicConfig) -> LogConfig {
        let policy = c.cleanup_policy.unwrap_or(CleanupPolicy::DELETE);
        if !policy.delete {
            self.retention_ms = None;
            self.retention_bytes = None;
        }
        self.compaction = policy.compact.then(|| {
            let d = veltrix_log::CompactionConfig::default();
            veltrix_log::CompactionConfig {
                delete_retention_ms: c.delete_retention_ms.unwrap_or(d.delete_retention_ms),
                min_compaction_lag_ms: c.min_compaction_lag_ms.unwrap_or(d.min_compaction_lag_ms),
                max_compaction_lag_ms: c.max_compaction_lag_ms.unwrap_or(d.max_compaction_lag_ms),
                min_cleanable_dirty_ppm: c.min_cleanable_dirty_ppm.unwrap_or(d.min_cleanable_dirty_ppm),
            }
        });
        self
    }
}

impl TopicConfig {
    /// The topic's duplicate window, `None` when it has none.
    pub fn dedup(&self) -> Option<DedupSettings> {
        let window_ms = self.dedup_window_ms.filter(|&w| w > 0)?;
        Some(DedupSettings {
            window_ms,
            id_source: self.dedup_id_source.unwrap_or_default(),
            id_header: self
                .dedup_id_header
                .clone()
                .unwrap_or_else(|| DEDUP_ID_HEADER_DEFAULT.to_owned()),
        })
    }

    /// The duplicate-window settings on their own and against the topic's
    /// log: a window longer than the retention would drop a record whose
    /// original retention has already deleted, losing it.
    pub fn validate_dedup(&self, log: &LogConfig) -> std::result::Result<(), String> {
        if let Some(w) = self.dedup_window_ms
            && w > crate::dedup::DEDUP_WINDOW_MS_MAX
        {
            return Err(format!(
                "veltrix.dedup.window.ms = {w} is longer than a year ({} ms); is it in the wrong unit?",
                crate::dedup::DEDUP_WINDOW_MS_MAX
            ));
        }
        if let Some(h) = &self.dedup_id_header
            && (h.is_empty() || h.len() > DEDUP_ID_HEADER_BYTES_MAX)
        {
            return Err(format!(
                "veltrix.dedup.id.header must be 1 to {DEDUP_ID_HEADER_BYTES_MAX} bytes, not {}",
                h.len()
            ));
        }
        if let Some(d) = self.dedup()
            && let Some(retention_ms) = log.retention_ms
            && d.window_ms > retention_ms
        {
            return Err(format!(
                "veltrix.dedup.window.ms = {} is longer than the topic's retention.ms = {retention_ms}: a record \
                 resent after retention deleted its original would be dropped and lost; shorten the window or \
                 lengthen the retention",
                d.window_ms
            ));
        }
        Ok(())
    }
}

/// A topic-level limit over the broker default: `None` inherits it, a negative
/// value removes the limit.
fn limit(topic: Option<i64>, default: Option<u64>) -> Option<u64> {
    match topic {
        None => default,
        Some(n) => u64::try_from(n).ok(),
    }
}

/// One topic as recorded in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicEntry {
    /// 32 hex digits.
    pub id: String,
    pub partitions: u32,
    #[serde(default)]
    pub config: TopicConfig,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    version: u32,
    topics: BTreeMap<String, TopicEntry>,
    /// CRC32C of the canonical JSON of `topics`.
    crc32c: u32,
}

fn topics_crc(topics: &BTreeMap<String, TopicEntry>) -> u32 {
    crc32c::crc32c(&serde_json::to_vec(topics).expect("catalogue serialises"))
}

pub(crate) fn load(storage: &dyn Storage, dir: &Path) -> Result<BTreeMap<String, TopicEntry>> {
    let path = dir.join(CATALOG_FILE);
    if !storage.exists(&path) {
        return Ok(BTreeMap::new());
    }
    let io = |op, e| CoreError::Io {
        op,
        path: path.clone(),
        source: e,
    };
    let file = storage.open(&path, OpenMode::Existing).map_err(|e| io("open", e))?;
    let len = file.len().map_err(|e| io("stat", e))?;
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX).min(64 << 20)];
    file.read_exact_at(&mut bytes, 0).map_err(|e| io("read", e))?;
    parse(&path, &bytes)
}

/// The catalogue in `dir`, read with a plain read of the file: nothing is
/// opened for writing, nothing is created. Empty when there is none yet.
pub(crate) fn read_only(dir: &Path) -> Result<BTreeMap<String, TopicEntry>> {
    let path = dir.join(CATALOG_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => parse(&path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(CoreError::Io {
            op: "read",
            path,
            source: e,
        }),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, TopicEntry>> {
    let bad = |reason: String| CoreError::Catalog {
        path: path.to_path_buf(),
        reason,
    };
    let parsed: CatalogFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if parsed.version != CATALOG_VERSION {
        return Err(bad(format!("version {} is not {CATALOG_VERSION}", parsed.version)));
    }
    if topics_crc(&parsed.topics) != parsed.crc32c {
        return Err(bad("checksum mismatch".into()));
    }
    Ok(parsed.topics)
}

pub(crate) fn store(storage: &dyn Storage, dir: &Path, topics: &BTreeMap<String, TopicEntry>) -> Result<()> {
    let path = dir.join(CATALOG_FILE);
    let file = CatalogFile {
        version: CATALOG_VERSION,
        topics: topics.clone(),
        crc32c: topics_crc(topics),
    };
    let bytes = serde_json::to_vec_pretty(&file).expect("catalogue serialises");
    veltrix_log::checkpoint::replace_file(storage, dir, CATALOG_FILE, &bytes).map_err(|e| CoreError::Io {
        op: "write",
        path,
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_one_means_no_limit_and_none_means_the_broker_default() {
        // Regression: retention.ms=-1 (keep forever) was taken for "the broker
        // default", a 7-day limit, which deletes data the user meant to keep.
        let defaults = LogConfig::default();
        let forever = TopicConfig {
            retention_ms: Some(-1),
            retention_bytes: Some(-1),
            ..TopicConfig::default()
        };
        let c = forever.log_config(&defaults);
        assert_eq!((c.retention_ms, c.retention_bytes), (None, None));
        let inherited = TopicConfig::default().log_config(&defaults);
        assert_eq!(inherited.retention_ms, defaults.retention_ms);
        let set = TopicConfig {
            retention_ms: Some(60_000),
            ..TopicConfig::default()
        };
        assert_eq!(set.log_config(&defaults).retention_ms, Some(60_000));
    }
}
