//! The schema of `veltrix.toml`: every table, every key, its type, unit, range
//! and default.
//!
//! The schema is data: the parser walks the file against it, environment
//! overrides are looked up in it, "did you mean" suggestions come from it and
//! the reference in `docs/configuration.md` is generated from it. Defaults are
//! read from the engine's own `Default` implementations, so the file's defaults
//! and the engine's cannot disagree. Ranges come from the engine's limits where
//! it has them (`veltrix_log::config`, `veltrix_log::batch`,
//! `veltrix_log::segment`).

use std::fmt::Write as _;

use veltrix_core::dedup::{DEDUP_ID_BYTES_MAX, DEDUP_IDS_MAX, DEDUP_WINDOW_MS_MAX, DedupLimits};
use veltrix_core::groups::GroupConfig;
use veltrix_core::routes::expr::EXPRESSION_BYTES_MAX;
use veltrix_core::routes::{HEADERS_MAX, RULES_MAX, TARGETS_MAX};
use veltrix_core::share::ShareConfig;
use veltrix_core::share::settings::{
    BACKOFF_INITIAL_MS_RANGE, BACKOFF_MAX_MS_RANGE, BACKOFF_MULTIPLIER_RANGE, DELAY_MAX_MS_RANGE,
    DELIVERY_COUNT_LIMIT_RANGE, PARTITION_MAX_RECORD_LOCKS_RANGE, RECORD_LOCK_DURATION_MS_RANGE,
};
use veltrix_core::{BrokerConfig, DEDUP_ID_HEADER_BYTES_MAX, DEDUP_ID_HEADER_DEFAULT, DedupIdSource};
use veltrix_http::HttpLimits;
use veltrix_log::LogConfig;
use veltrix_log::batch::HEADER_BYTES;
use veltrix_log::config::{SEGMENT_BYTES_LIMIT, SEGMENT_BYTES_MIN};
use veltrix_log::segment::STORED_BATCH_BYTES_LIMIT;

use crate::model::{DEFAULT_DATA_DIR, DEFAULT_HTTP_LISTENER, DEFAULT_KAFKA_LISTENER, KafkaLimits};

/// Largest partition count or index: Kafka partitions are 32-bit signed.
pub const PARTITIONS_LIMIT: i64 = i32::MAX as i64;
/// Largest session timeout: Kafka sends it as a 32-bit signed number of ms.
pub const SESSION_TIMEOUT_MS_LIMIT: i64 = i32::MAX as i64;
/// Largest file handle bound: Linux's default ceiling on a process's open
/// files (`fs.nr_open`).
pub const FILES_LIMIT: i64 = 1 << 20;
/// Largest byte budget a tokio semaphore can hold (`Semaphore::MAX_PERMITS`).
pub const SEMAPHORE_PERMITS_LIMIT: i64 = (usize::MAX >> 3) as i64;

/// What a key's value measures; shown with every range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Milliseconds,
    Partitions,
    Topics,
    Groups,
    Members,
    Connections,
    Requests,
    Producers,
    Records,
    RecordsPerSecond,
    Files,
    Sessions,
    Deliveries,
    Ids,
    /// A factor: `3` is three times.
    Times,
    BytesPerSecond,
    /// Quota entities (users, client ids).
    Entities,
    /// Clients measured against a quota.
    Clients,
    /// Entries of a cache.
    Entries,
    Percent,
    /// A TCP port.
    Port,
    /// A broker's id (Kafka's node id).
    NodeId,
}

impl Unit {
    /// The unit as written after a number.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Milliseconds => "ms",
            Unit::Partitions => "partitions",
            Unit::Topics => "topics",
            Unit::Groups => "groups",
            Unit::Members => "members",
            Unit::Connections => "connections",
            Unit::Requests => "requests",
            Unit::Producers => "producers",
            Unit::Records => "records",
            Unit::Files => "files",
            Unit::Sessions => "sessions",
            Unit::Deliveries => "deliveries",
            Unit::Ids => "ids",
            Unit::Times => "times",
            Unit::RecordsPerSecond => "records per second",
            Unit::BytesPerSecond => "bytes per second",
            Unit::Entities => "entities",
            Unit::Clients => "clients",
            Unit::Entries => "entries",
            Unit::Percent => "percent",
            Unit::Port => "port",
            Unit::NodeId => "node id",
        }
    }
}

/// The type of a key's value and what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An integer in `min..=max` of `unit`; with `unlimited`, -1 is also allowed
    /// and means "no limit".
    Int {
        min: i64,
        max: i64,
        unit: Unit,
        unlimited: bool,
    },
    Bool,
    /// One of these words.
    Word(&'static [&'static str]),
    /// `IP:PORT`, as the listeners bind it.
    Address,
    /// A file system path.
    Path,
    /// A non-empty name.
    Name,
    /// A record header's name: 1 to `DEDUP_ID_HEADER_BYTES_MAX` bytes.
    HeaderName,
    /// An `http://` or `https://` URL.
    Url,
    /// A PostgreSQL connection string, as libpq takes it: a
    /// `postgresql://` (or `postgres://`) URL, or `key=value` pairs.
    PostgresUrl,
    /// A part of the bucket's keys: 1 to 64 ASCII letters, digits, `.`, `_`
    /// and `-`.
    KeyPrefix,
    /// Where a share group starts: `latest`, `earliest` or
    /// `by_duration:<ISO 8601 duration>`.
    OffsetReset,
    /// A topic name, or a list of at most `max` of them.
    Topics {
        max: usize,
    },
    /// A table of at most `max` record headers, names and values strings.
    Headers {
        max: usize,
    },
    /// A CEL expression over a record (`veltrix_core::routes::expr`).
    Expression,
    /// A list of at most `max` non-empty strings (a single string is a list
    /// of one).
    Strings {
        max: usize,
    },
    /// An array of at most `max` tables nested in an entry, each read against
    /// the table of [`NESTED_TABLES`] named `table` (`[[route.rule]]`).
    Tables {
        table: &'static str,
        max: usize,
    },
}

impl Kind {
    /// The type as the reference and the diagnostics name it.
    pub fn describe(&self) -> String {
        match self {
            Kind::Int { unit, .. } => format!("integer ({})", unit.name()),
            Kind::Bool => "boolean".to_owned(),
            Kind::Word(words) => {
                let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
                format!("string: {}", quoted.join(" or "))
            }
            Kind::Address => "string: \"IP:PORT\"".to_owned(),
            Kind::Path => "string: a path".to_owned(),
            Kind::Name => "string".to_owned(),
            Kind::HeaderName => "string: a record header's name".to_owned(),
            Kind::Url => "string: \"http(s)://HOST[:PORT]/PATH\"".to_owned(),
            Kind::PostgresUrl => "string: \"postgresql://USER@HOST[:PORT]/DATABASE\"".to_owned(),
            Kind::KeyPrefix => "string".to_owned(),
            Kind::OffsetReset => "string: \"latest\", \"earliest\" or \"by_duration:DURATION\"".to_owned(),
            Kind::Topics { .. } => "string or list of strings: topic names".to_owned(),
            Kind::Headers { .. } => "table of strings: header names and values".to_owned(),
            Kind::Expression => "string: a CEL expression".to_owned(),
            Kind::Strings { .. } => "list of strings".to_owned(),
            Kind::Tables { table, .. } => format!("array of tables: `[[{table}]]`"),
        }
    }

    /// The allowed values, for the reference and range errors.
    pub fn range(&self) -> String {
        match *self {
            Kind::Int {
                min,
                max,
                unit,
                unlimited,
            } => {
                let mut s = format!("{}..={} {}", group_digits(min), group_digits(max), unit.name());
                if unlimited {
                    s.push_str(", or -1 for no limit");
                }
                s
            }
            Kind::Bool => "true, false".to_owned(),
            Kind::Word(words) => words.join(", "),
            Kind::Address => "an IPv4 or IPv6 address and a port".to_owned(),
            Kind::Path => "non-empty".to_owned(),
            Kind::Name => "non-empty".to_owned(),
            Kind::HeaderName => format!("1..={DEDUP_ID_HEADER_BYTES_MAX} bytes"),
            Kind::Url => "an http:// or https:// URL".to_owned(),
            Kind::PostgresUrl => "a libpq URL (postgresql:// or postgres://) or key=value string".to_owned(),
            Kind::KeyPrefix => format!("1..={KEY_PREFIX_BYTES_MAX} of ASCII letters, digits, `.`, `_`, `-`"),
            Kind::OffsetReset => "latest, earliest, by_duration:<ISO 8601 duration> (`PT1H`, `P1DT12H`)".to_owned(),
            Kind::Topics { max } => format!("1..={max} declared topics"),
            Kind::Headers { max } => format!("0..={max} headers"),
            Kind::Expression => format!(
                "at most {} bytes, giving a bool",
                group_digits(EXPRESSION_BYTES_MAX as i64)
            ),
            Kind::Tables { max, .. } => format!("0..={max} tables"),
            Kind::Strings { max } => format!("0..={max} non-empty strings"),
        }
    }
}

/// One key of a table.
#[derive(Debug)]
pub struct KeyDef {
    pub name: &'static str,
    pub kind: Kind,
    /// Whether an entry of an array of tables must have it.
    pub required: bool,
    /// The default as written in TOML, if the key has one.
    pub default: fn() -> Option<String>,
    /// What it does, one or two sentences.
    pub doc: &'static str,
}

/// One table (`[broker]`) or array of tables (`[[topic]]`).
#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    /// An array of tables: `[[name]]`, repeated.
    pub array: bool,
    /// Whether `VELTRIX_<TABLE>__<KEY>` variables may override its keys.
    pub env: bool,
    pub doc: &'static str,
    pub keys: &'static [KeyDef],
}

impl TableDef {
    /// The key named `name`.
    pub fn key(&self, name: &str) -> Option<&'static KeyDef> {
        self.keys.iter().find(|k| k.name == name)
    }
}

/// The profile words.
pub const PROFILES: &[&str] = &["development", "production"];
/// The durability words.
pub const DURABILITIES: &[&str] = &["fsync", "interval"];
/// The tier words.
pub const TIERS: &[&str] = &["critical", "standard", "bulk"];
/// Where a duplicate window finds a record's message id.
pub const DEDUP_ID_SOURCES: &[&str] = &["header", "key"];

const fn int(min: i64, max: i64, unit: Unit) -> Kind {
    Kind::Int {
        min,
        max,
        unit,
        unlimited: false,
    }
}

const fn limit(min: i64, max: i64, unit: Unit) -> Kind {
    Kind::Int {
        min,
        max,
        unit,
        unlimited: true,
    }
}

fn none() -> Option<String> {
    None
}

/// A TOML rendering of an optional limit: -1 when there is none.
fn opt(v: Option<u64>) -> Option<String> {
    Some(v.map_or("-1".to_owned(), |v| v.to_string()))
}

fn log() -> LogConfig {
    LogConfig::default()
}

fn groups() -> GroupConfig {
    GroupConfig::default()
}

fn kafka() -> KafkaLimits {
    KafkaLimits::default()
}

fn quotas() -> veltrix_core::quotas::QuotaConfig {
    veltrix_core::quotas::QuotaConfig::default()
}

const MS: i64 = i64::MAX;

fn disk() -> veltrix_core::disk::DiskWatermarks {
    veltrix_core::disk::DiskWatermarks::default()
}

static BROKER_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "profile",
        kind: Kind::Word(PROFILES),
        required: false,
        default: || Some("\"development\"".to_owned()),
        doc: "Which lints apply: `production` turns on the production lints (V2xx).",
    },
    KeyDef {
        name: "data_dir",
        kind: Kind::Path,
        required: false,
        default: || Some(format!("\"{DEFAULT_DATA_DIR}\"")),
        doc: "Directory holding the topic catalogue and every partition's log. Flag: `--data-dir`.",
    },
    KeyDef {
        name: "auto_create_topics",
        kind: Kind::Bool,
        required: false,
        default: || Some(BrokerConfig::default().auto_create_topics.to_string()),
        doc: "Whether Metadata and Produce requests for an unknown topic create it. Flag: `--auto-create-topics`.",
    },
    KeyDef {
        name: "topics_max",
        kind: int(1, u32::MAX as i64, Unit::Topics),
        required: false,
        default: || Some(BrokerConfig::default().topics_max.to_string()),
        doc: "Topics the broker keeps; creating one more fails.",
    },
    KeyDef {
        name: "partitions_per_topic_max",
        kind: int(1, PARTITIONS_LIMIT, Unit::Partitions),
        required: false,
        default: || Some(BrokerConfig::default().partitions_per_topic_max.to_string()),
        doc: "Partitions one topic may have.",
    },
    KeyDef {
        name: "partitions_total_max",
        kind: int(1, u32::MAX as i64, Unit::Partitions),
        required: false,
        default: || Some(BrokerConfig::default().partitions_total_max.to_string()),
        doc: "Partitions across all topics.",
    },
    KeyDef {
        name: "compaction_key_map_bytes_max",
        kind: int(veltrix_log::compact::KEY_MAP_BYTES_MIN as i64, 16 << 30, Unit::Bytes),
        required: false,
        default: || Some(BrokerConfig::default().compaction.key_map_bytes_max.to_string()),
        doc: "Memory of the log cleaner's key map (a key's digest to its latest offset, 32 bytes a key) in one compaction round of a compacted topic's partition. A dirty part with more keys is compacted up to where the map filled, the rest in the next round (counted in `veltrix_log_cleaner_key_map_full_total`). See docs/compaction.md.",
    },
    KeyDef {
        name: "compaction_io_byte_rate_max",
        kind: limit(1, i64::MAX, Unit::BytesPerSecond),
        required: false,
        default: || Some("-1".to_owned()),
        doc: "Bytes per second a compaction round reads and writes, so that compaction leaves the disk to producers and consumers; -1 for no limit.",
    },
    KeyDef {
        name: "open_files_max",
        kind: int(1, FILES_LIMIT, Unit::Files),
        required: false,
        default: || Some(BrokerConfig::default().open_files_max.to_string()),
        doc: "Handles of sealed segments and indexes kept open for reads, across all partitions (a least-recently-used cache).",
    },
    KeyDef {
        name: "active_files_max",
        kind: int(1, FILES_LIMIT, Unit::Files),
        required: false,
        default: || Some(BrokerConfig::default().active_files_max.to_string()),
        doc: "Handles of active segments kept open for appends, across all partitions; a partition whose handle was evicted reopens its file. With `open_files_max` and `connections_max`, must fit the process's file limit, which `veltrix serve` raises to its hard limit at start.",
    },
    KeyDef {
        name: "disk_bulk_free_percent_min",
        kind: int(0, 100, Unit::Percent),
        required: false,
        default: || Some(disk().bulk_free_percent_min.to_string()),
        doc: "Below this much free space (percent of the data directory's file system), produce to `bulk` topics is refused with a retriable error (KAFKA_STORAGE_ERROR) until space comes back. At least `disk_standard_free_percent_min`.",
    },
    KeyDef {
        name: "disk_standard_free_percent_min",
        kind: int(0, 100, Unit::Percent),
        required: false,
        default: || Some(disk().standard_free_percent_min.to_string()),
        doc: "Below this much free space, produce to `standard` topics is refused too; `critical` ones keep writing until `disk_reserve_bytes_min`.",
    },
    KeyDef {
        name: "disk_reserve_bytes_min",
        kind: int(0, i64::MAX, Unit::Bytes),
        required: false,
        default: || Some(disk().reserve_bytes_min.to_string()),
        doc: "Free bytes kept for the broker's own state (catalogue, offsets, share-group state): below it, produce to every topic is refused, critical ones included.",
    },
];

/// `[storage] mode`'s words.
pub const STORAGE_MODES: &[&str] = &["local", "shared"];
/// Largest broker id of shared storage.
pub const BROKER_ID_MAX: i64 = 1023;
/// Longest `[storage] key_prefix`.
pub const KEY_PREFIX_BYTES_MAX: usize = 64;

fn storage() -> crate::model::SharedStorage {
    crate::model::SharedStorage::new(0, "", "")
}

static STORAGE_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "mode",
        kind: Kind::Word(STORAGE_MODES),
        required: false,
        default: || Some("\"local\"".to_owned()),
        doc: "`local`: every partition on this broker's disk, in `data_dir`. `shared`: record batches in objects of an S3-compatible bucket, their offsets and the cluster's state in PostgreSQL, so brokers keep nothing another could not rebuild (docs/scale-out.md). The other keys of this table apply to `shared` only. Shared mode does not serve compacted topics, duplicate windows, share groups or routes yet.",
    },
    KeyDef {
        name: "broker_id",
        kind: int(0, BROKER_ID_MAX, Unit::NodeId),
        required: false,
        default: none,
        doc: "Required in shared mode: this broker's id (Kafka's node id), unique among the brokers sharing one catalog; a second live broker with the same id is refused at start.",
    },
    KeyDef {
        name: "bucket",
        kind: Kind::Name,
        required: false,
        default: none,
        doc: "Required in shared mode: the bucket holding the record batches. Its credentials come from the environment, never from this file: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`, or the other `AWS_*` variables the S3 client reads).",
    },
    KeyDef {
        name: "endpoint",
        kind: Kind::Url,
        required: false,
        default: none,
        doc: "An S3-compatible server (MinIO, Ceph, R2: `https://minio.internal:9000`); left out for AWS S3 itself. An `http://` endpoint needs `allow_http = true`.",
    },
    KeyDef {
        name: "region",
        kind: Kind::Name,
        required: false,
        default: || Some(format!("\"{}\"", storage().region)),
        doc: "The bucket's region, as its requests are signed for it.",
    },
    KeyDef {
        name: "allow_http",
        kind: Kind::Bool,
        required: false,
        default: || Some(storage().allow_http.to_string()),
        doc: "Plain HTTP to `endpoint`: records and the credentials' signatures in clear. For a test server on loopback only.",
    },
    KeyDef {
        name: "key_prefix",
        kind: Kind::KeyPrefix,
        required: false,
        default: || Some(format!("\"{}\"", storage().key_prefix)),
        doc: "Prefix of every key the brokers write in the bucket (`<key_prefix>/objects/...`): brokers sharing one catalog share it; another catalog in the same bucket needs another.",
    },
    KeyDef {
        name: "postgres_url",
        kind: Kind::PostgresUrl,
        required: false,
        default: none,
        doc: "Required in shared mode: the PostgreSQL database holding offsets and the cluster's state, as libpq takes it (`postgresql://veltrix@db.internal:5432/veltrix`). Give the URL with its password through the environment, `VELTRIX_STORAGE__POSTGRES_URL`, rather than in this file (V152). The broker creates its tables at first start.",
    },
    KeyDef {
        name: "flush_interval_ms",
        kind: int(1, 10_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().flush_interval_ms.to_string()),
        doc: "The least time between the starts of two objects (unless one fills to `flush_bytes_max`): a batch waits at most this long for others, a batch that finds the broker idle is written at once, and a broker makes at most 1,000 / `flush_interval_ms` PUTs and commits per second.",
    },
    KeyDef {
        name: "flush_bytes_max",
        kind: int(64 << 10, 256 << 20, Unit::Bytes),
        required: false,
        default: || Some(storage().flush_bytes_max.to_string()),
        doc: "An object is written as soon as its batches reach this size.",
    },
    KeyDef {
        name: "buffered_bytes_max",
        kind: int(64 << 10, 2 << 30, Unit::Bytes),
        required: false,
        default: || Some(storage().buffered_bytes_max.to_string()),
        doc: "Bytes of produced batches accepted and not yet answered, across the object being written and the next one filling; past it a produce waits, then gets a retriable error. At least `flush_bytes_max`.",
    },
    KeyDef {
        name: "cache_bytes_max",
        kind: int(0, 64 << 30, Unit::Bytes),
        required: false,
        default: || Some(storage().cache_bytes_max.to_string()),
        doc: "Memory of the read cache of batches' bytes (least recently used evicted first); 0: every fetch reads the bucket.",
    },
    KeyDef {
        name: "put_timeout_ms",
        kind: int(100, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().put_timeout_ms.to_string()),
        doc: "An object's PUT, retries included; past it the object's produces get a retriable error and nothing is acknowledged.",
    },
    KeyDef {
        name: "commit_timeout_ms",
        kind: int(100, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().commit_timeout_ms.to_string()),
        doc: "An object's commit transaction in PostgreSQL, retries included; past it the object's produces get a retriable error.",
    },
    KeyDef {
        name: "get_timeout_ms",
        kind: int(100, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().get_timeout_ms.to_string()),
        doc: "A ranged GET of a fetch, retries included. `veltrix check --online` gives the bucket this long to answer.",
    },
    KeyDef {
        name: "postgres_connections_max",
        kind: int(1, 64, Unit::Connections),
        required: false,
        default: || Some(storage().postgres_connections_max.to_string()),
        doc: "PostgreSQL connections this broker keeps at most.",
    },
    KeyDef {
        name: "postgres_statement_timeout_ms",
        kind: int(100, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().postgres_statement_timeout_ms.to_string()),
        doc: "One statement's limit: the server's `statement_timeout` and `lock_timeout`, and the broker's own deadline, so a stalled server costs a bounded wait.",
    },
    KeyDef {
        name: "lease_ms",
        kind: int(1_000, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().lease_ms.to_string()),
        doc: "A broker's lease in the catalog: one that has not renewed it for this long is taken for dead, and its share of the partitions moves to the others.",
    },
    KeyDef {
        name: "orphan_grace_ms",
        kind: int(1_000, 7 * 86_400_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().orphan_grace_ms.to_string()),
        doc: "An object written and never committed (its broker died between the PUT and the commit) is deleted once this old; far above `put_timeout_ms` plus `commit_timeout_ms`, so an object on its way to a commit is never taken. Objects merged into larger ones, or whose batches retention or a deleted topic removed, are deleted this long after too, so reads already under way finish.",
    },
    KeyDef {
        name: "merge_small_bytes_max",
        kind: int(0, 256 << 20, Unit::Bytes),
        required: false,
        default: || Some(storage().merge_small_bytes_max.to_string()),
        doc: "Committed objects smaller than this, `merge_age_ms_min` old or more, are rewritten into larger ones by one broker at a time, so light traffic (an object per flush interval) does not leave the bucket with millions of tiny objects to list and read one GET at a time. 0: never.",
    },
    KeyDef {
        name: "merged_bytes_max",
        kind: int(1 << 20, 1 << 30, Unit::Bytes),
        required: false,
        default: || Some(storage().merged_bytes_max.to_string()),
        doc: "One merged object's size at most: what a merge round reads and holds in memory.",
    },
    KeyDef {
        name: "merge_age_ms_min",
        kind: int(1_000, 86_400_000, Unit::Milliseconds),
        required: false,
        default: || Some(storage().merge_age_ms_min.to_string()),
        doc: "Objects younger than this are not merged (consumers close behind producers read them, most likely from the cache). Merge rounds run every half of this, at most every 30 s.",
    },
];

/// The security protocols of `[[listener]]`, as Kafka names them.
pub const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// The SASL mechanisms a listener may offer.
pub const SASL_MECHANISMS: &[&str] = &["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

/// At most this many `[[listener]]`s.
pub const LISTENERS_MAX: usize = 16;

/// At most this many principal mapping rules, super users.
pub const PRINCIPAL_RULES_MAX: usize = 64;
pub const SUPER_USERS_MAX: usize = 256;

fn security() -> crate::model::Security {
    crate::model::Security::default()
}

static LISTENER_ENTRY_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "name",
        kind: Kind::Name,
        required: true,
        default: none,
        doc: "The listener's name, in logs and metrics; unique.",
    },
    KeyDef {
        name: "address",
        kind: Kind::Address,
        required: true,
        default: none,
        doc: "Address the listener binds, `IP:PORT`.",
    },
    KeyDef {
        name: "protocol",
        kind: Kind::Word(SECURITY_PROTOCOLS),
        required: true,
        default: none,
        doc: "Kafka's security protocol: `PLAINTEXT` (neither encryption nor authentication), `SSL` (TLS; client certificates optional), `SASL_PLAINTEXT` (SASL authentication without encryption) or `SASL_SSL` (both). Clients set the same word as `security.protocol`.",
    },
    KeyDef {
        name: "advertised_host",
        kind: Kind::Name,
        required: false,
        default: none,
        doc: "Host name clients of this listener are told to connect to (Metadata, FindCoordinator): a name on the server certificate for TLS listeners. Default: the bound IP address.",
    },
    KeyDef {
        name: "advertised_port",
        kind: int(1, 65_535, Unit::Port),
        required: false,
        default: none,
        doc: "Port clients of this listener are told to connect to. Default: the bound port.",
    },
    KeyDef {
        name: "sasl_mechanisms",
        kind: Kind::Strings { max: 3 },
        required: false,
        default: || Some("[\"SCRAM-SHA-512\", \"SCRAM-SHA-256\"]".to_owned()),
        doc: "SASL mechanisms offered on a `SASL_*` listener, of `SCRAM-SHA-512`, `SCRAM-SHA-256` and `PLAIN`. PLAIN sends the password itself: offer it only over TLS. Users and their SCRAM credentials: `veltrix user add`.",
    },
    KeyDef {
        name: "tls_cert_file",
        kind: Kind::Path,
        required: false,
        default: none,
        doc: "PEM file of the server's certificate chain, leaf first; required for `SSL` and `SASL_SSL`. Read again when it changes (checked every 10 s); a file that does not load leaves the previous certificate in force.",
    },
    KeyDef {
        name: "tls_key_file",
        kind: Kind::Path,
        required: false,
        default: none,
        doc: "PEM file of the certificate's private key (PKCS#8, PKCS#1 or SEC1); required with `tls_cert_file`.",
    },
    KeyDef {
        name: "tls_client_ca_file",
        kind: Kind::Path,
        required: false,
        default: none,
        doc: "PEM file of the CA certificates client certificates must chain to; required when `tls_client_auth` is not `none`.",
    },
    KeyDef {
        name: "tls_client_auth",
        kind: Kind::Word(&["none", "requested", "required"]),
        required: false,
        default: || Some("\"none\"".to_owned()),
        doc: "Client certificates (mutual TLS), as Kafka's `ssl.client.auth`: `none`, `requested` (verified when given) or `required`. A verified certificate's subject is the principal on an `SSL` listener, through `principal_mapping_rules`.",
    },
    KeyDef {
        name: "principal_mapping_rules",
        kind: Kind::Strings {
            max: PRINCIPAL_RULES_MAX,
        },
        required: false,
        default: || Some("[\"DEFAULT\"]".to_owned()),
        doc: "How a client certificate's subject (`CN=alice,OU=payments,O=Example`, as RFC 2253 writes it) becomes the principal's name, as Kafka's `ssl.principal.mapping.rules`: `RULE:pattern/replacement/` with an optional `L` or `U` after it, or `DEFAULT` (the whole subject); the first rule whose pattern matches the whole subject decides, and a subject none matches is refused.",
    },
];

static SECURITY_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "authorization",
        kind: Kind::Bool,
        required: false,
        default: || Some(security().authorization.to_string()),
        doc: "Kafka ACLs enforced on every request: a principal may do only what an ACL allows it (deny by default; a DENY wins over an ALLOW). ACLs: `veltrix acl add`, or any Kafka admin client.",
    },
    KeyDef {
        name: "super_users",
        kind: Kind::Strings { max: SUPER_USERS_MAX },
        required: false,
        default: || Some("[]".to_owned()),
        doc: "Principals allowed everything whatever the ACLs say, such as `\"User:admin\"`.",
    },
    KeyDef {
        name: "authentication_ms_max",
        kind: int(100, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(security().authentication_ms_max.to_string()),
        doc: "Time a connection has, from being accepted, to finish its TLS handshake and SASL authentication; past it the connection is closed.",
    },
    KeyDef {
        name: "unauthenticated_request_bytes_max",
        kind: int(512, 104_857_600, Unit::Bytes),
        required: false,
        default: || Some(security().unauthenticated_request_bytes_max.to_string()),
        doc: "Largest request a connection may send before it has authenticated (Kafka's `sasl.server.max.receive.size`).",
    },
    KeyDef {
        name: "reauthentication_ms_max",
        kind: int(0, 86_400_000, Unit::Milliseconds),
        required: false,
        default: || Some(security().reauthentication_ms_max.to_string()),
        doc: "Lifetime of a SASL session (Kafka's `connections.max.reauth.ms`): clients authenticate again on the same connection before it ends, or the connection is closed. 0: sessions last as long as their connection.",
    },
    KeyDef {
        name: "authentication_failure_delay_ms",
        kind: int(0, 10_000, Unit::Milliseconds),
        required: false,
        default: || Some(security().authentication_failure_delay_ms.to_string()),
        doc: "How long the answer to a failed authentication is held back before the connection closes (Kafka's `connection.failed.authentication.delay.ms`): a password guesser gains little by reconnecting. HTTP requests with bad credentials are answered 401 after it too.",
    },
    KeyDef {
        name: "http_token_ttl_ms_max",
        kind: int(60_000, 31_536_000_000, Unit::Milliseconds),
        required: false,
        default: || Some(veltrix_http::HttpSecurityConfig::default().token_ttl_ms_max.to_string()),
        doc: "Lifetime of the HTTP API's bearer tokens (`POST /api/v1/tokens` with basic credentials; a shorter one on request). A token also ends when its user's password changes or the user is deleted.",
    },
];

static LISTENER_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "kafka",
        kind: Kind::Address,
        required: false,
        default: || Some(format!("\"{DEFAULT_KAFKA_LISTENER}\"")),
        doc: "Address the Kafka protocol listens on. Flag: `--kafka-listener`.",
    },
    KeyDef {
        name: "kafka_principal",
        kind: Kind::Name,
        required: false,
        default: || Some("\"User:ANONYMOUS\"".to_owned()),
        doc: "The principal of every connection to the `kafka` listener, which neither encrypts nor authenticates. With authorization on, name it in `[security] super_users` (say `\"User:local-admin\"`) so that the command-line tools on this host (`veltrix user`, `veltrix acl`, `veltrix topic`) can administer the broker; then keep the listener on loopback (V037).",
    },
    KeyDef {
        name: "http",
        kind: Kind::Address,
        required: false,
        default: || Some(format!("\"{DEFAULT_HTTP_LISTENER}\"")),
        doc: "Address of the HTTP API: `/metrics`, `/health`, `/ready`, `/alerts` and the JSON API under `/api/v1/`. Flag: `--http-listener`.",
    },
    KeyDef {
        name: "http_tls_cert_file",
        kind: Kind::Path,
        required: false,
        default: none,
        doc: "PEM file of the HTTP listener's certificate chain, leaf first: with `http_tls_key_file`, the listener serves HTTPS only. Read again when it changes (checked every 10 s); a file that does not load leaves the previous certificate in force.",
    },
    KeyDef {
        name: "http_tls_key_file",
        kind: Kind::Path,
        required: false,
        default: none,
        doc: "PEM file of the HTTP certificate's private key (PKCS#8, PKCS#1 or SEC1); goes with `http_tls_cert_file`.",
    },
    KeyDef {
        name: "http_authentication",
        kind: Kind::Word(&["none", "required"]),
        required: false,
        default: || Some("\"none\"".to_owned()),
        doc: "Whether the JSON API (`/api/v1/`) and `/alerts` require the broker's users: basic credentials (a user's password, as `veltrix user add` set it) or a bearer token from `POST /api/v1/tokens`. With `none`, requests without credentials act as `http_principal`. Either way, with `[security] authorization` on, each route checks the caller's ACLs (docs/security.md lists them).",
    },
    KeyDef {
        name: "http_metrics_authentication",
        kind: Kind::Word(&["none", "required"]),
        required: false,
        default: none,
        doc: "Whether `/metrics` requires credentials (default: as `http_authentication`); when it does, the user needs DESCRIBE on the cluster (with authorization on). Prometheus sends basic credentials or a bearer token (`basic_auth`, `authorization` in its scrape configuration).",
    },
    KeyDef {
        name: "http_health_authentication",
        kind: Kind::Word(&["none", "required"]),
        required: false,
        default: || Some("\"none\"".to_owned()),
        doc: "Whether `/health` and `/ready` require credentials. They say only whether the broker serves (and which partitions refuse writes), so load balancers and orchestrators usually probe them without.",
    },
    KeyDef {
        name: "http_mutations",
        kind: Kind::Bool,
        required: false,
        default: || Some("false".to_owned()),
        doc: "Whether the HTTP API (and the console) may change what the Kafka APIs change: produce a record (`POST /api/v1/topics/{name}/records`), reset a group's offsets (`POST /api/v1/groups/{id}/offsets/reset` with `\"execute\": true`), redrive dead letters (`POST /api/v1/dlq/{topic}/redrive` without `\"dry_run\": true`; `veltrix dlq redrive` uses it), delete a topic (`DELETE /api/v1/topics/{name}`) or a group (`DELETE /api/v1/groups/{id}`). Off, such requests are refused (403, naming this key) and only plans are answered. Each change still needs its ACLs, and the listener refuses changes another site sends.",
    },
    KeyDef {
        name: "http_principal",
        kind: Kind::Name,
        required: false,
        default: || Some("\"User:ANONYMOUS\"".to_owned()),
        doc: "The principal of HTTP requests without credentials, where no authentication is required; with authorization on, its ACLs decide what they may do.",
    },
];

static LIMIT_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "failing_produce_requests_per_second_max",
        kind: int(1, 1_000_000, Unit::Requests),
        required: false,
        default: || Some(kafka().failing_produce_requests_per_second_max.to_string()),
        doc: "Produce requests a second one client id may send that the broker refuses (too large, corrupt, for a missing topic, invalid acks) before it is slowed with `throttle_time_ms` and a muted connection; a warning names it once.",
    },
    KeyDef {
        name: "failing_produce_throttle_ms_max",
        kind: int(1, 60_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().failing_produce_throttle_ms_max.to_string()),
        doc: "The longest wait one response asks of a producer whose requests keep being refused.",
    },
    KeyDef {
        name: "connections_per_ip_max",
        kind: int(1, 1_000_000, Unit::Connections),
        required: false,
        default: || Some(kafka().connections_per_ip_max.to_string()),
        doc: "Kafka connections open at once from one client address (Kafka's `max.connections.per.ip`); one more is closed as soon as it is accepted, and other addresses' clients are not touched.",
    },
    KeyDef {
        name: "connections_per_ip_per_second_max",
        kind: int(1, 1_000_000, Unit::Connections),
        required: false,
        default: || Some(kafka().connections_per_ip_per_second_max.to_string()),
        doc: "New Kafka connections a second from one client address (KIP-612's `connection_creation_rate`), with a second's worth of burst; one over it is closed as soon as it is accepted.",
    },
    KeyDef {
        name: "tier_bulk_throttle_percent",
        kind: int(1, 100, Unit::Percent),
        required: false,
        default: || Some(kafka().tier_bulk_throttle_percent.to_string()),
        doc: "Once the memory budget (`in_flight_bytes_max`) is this full, produce and fetch requests for `bulk` topics are throttled: answered with `throttle_time_ms` and their connection muted, not refused. At most `tier_standard_throttle_percent`.",
    },
    KeyDef {
        name: "tier_standard_throttle_percent",
        kind: int(1, 100, Unit::Percent),
        required: false,
        default: || Some(kafka().tier_standard_throttle_percent.to_string()),
        doc: "Once the memory budget is this full, `standard` topics' requests are throttled too. `critical` ones never are: they flow until the budget is full.",
    },
    KeyDef {
        name: "tier_throttle_ms_max",
        kind: int(1, 60_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().tier_throttle_ms_max.to_string()),
        doc: "The wait asked of a throttled client when the budget is full; from a tenth of it at the tier's threshold, growing with how full the budget is.",
    },
    KeyDef {
        name: "tier_critical_latency_target_ms",
        kind: int(0, 60_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().tier_critical_latency_target_ms.to_string()),
        doc: "The service time (read to answered, fsync included) critical produces should keep. In each 100 ms in which more than one critical produce in fifty takes longer, bulk requests are throttled harder (doubling up to `tier_throttle_ms_max`), then standard ones; on time again, the throttles ease off. Set it a few times above the critical topics' fsync time on an idle broker; 0 turns this off (memory then is the only signal).",
    },
    KeyDef {
        name: "request_bytes_max",
        kind: int(1, i32::MAX as i64, Unit::Bytes),
        required: false,
        default: || Some(kafka().request_bytes_max.to_string()),
        doc: "Largest Kafka request accepted (Kafka's `socket.request.max.bytes`); a larger one closes the connection.",
    },
    KeyDef {
        name: "in_flight_bytes_max",
        kind: int(1, SEMAPHORE_PERMITS_LIMIT, Unit::Bytes),
        required: false,
        default: || Some(kafka().in_flight_bytes_max.to_string()),
        doc: "The memory budget: request bytes, and fetch responses not yet written, held in memory across all connections at once. A request reserves its share as its bytes arrive; one that does not fit waits, unread.",
    },
    KeyDef {
        name: "connections_max",
        kind: int(1, SEMAPHORE_PERMITS_LIMIT, Unit::Connections),
        required: false,
        default: || Some(kafka().connections_max.to_string()),
        doc: "Kafka connections served at once; one more is closed as soon as it is accepted (counted in `veltrix_kafka_connections_refused_total`).",
    },
    KeyDef {
        name: "requests_in_flight_per_connection_max",
        kind: int(1, 65_536, Unit::Requests),
        required: false,
        default: || Some(kafka().requests_in_flight_per_connection_max.to_string()),
        doc: "Requests of one connection read but not yet answered (pipelined produce requests waiting for their fsync).",
    },
    KeyDef {
        name: "fetch_wait_ms_max",
        kind: int(0, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().fetch_wait_ms_max.to_string()),
        doc: "Upper bound on a fetch's `max_wait_ms` (long polling).",
    },
    KeyDef {
        name: "fetch_bytes_max",
        kind: int(1024, i32::MAX as i64, Unit::Bytes),
        required: false,
        default: || Some(kafka().fetch_bytes_max.to_string()),
        doc: "Largest fetch response: a client's `max_bytes` is cut to it (Kafka's `fetch.max.bytes`). Fetch responses count in `in_flight_bytes_max` until written, and all of them together hold at most half of it.",
    },
    KeyDef {
        name: "request_body_ms_max",
        kind: int(1, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().request_body_ms_max.to_string()),
        doc: "Time a Kafka request has, once its length is read, to arrive whole (time waiting for the memory budget not counted); a slower one closes the connection and releases its budget.",
    },
    KeyDef {
        name: "connection_idle_ms_max",
        kind: int(1, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().connection_idle_ms_max.to_string()),
        doc: "A Kafka connection with no request in flight that sends nothing for this long is closed (Kafka's `connections.max.idle.ms`).",
    },
    KeyDef {
        name: "warning_interval_ms",
        kind: int(1, 86_400_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().warning_interval_ms.to_string()),
        doc: "A warning a client can trigger (a malformed request, a refused connection) is logged at most once per this interval per kind and client address; the next line says how many were left out (`suppressed`).",
    },
    KeyDef {
        name: "accept_backoff_ms_max",
        kind: int(1, 60_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().accept_backoff_ms_max.to_string()),
        doc: "Longest pause of the Kafka accept loop after an accept failed for want of file descriptors or memory; pauses start at 10 ms and double up to it (counted in `veltrix_kafka_accept_errors_total`).",
    },
    KeyDef {
        name: "http_connections_max",
        kind: int(1, SEMAPHORE_PERMITS_LIMIT, Unit::Connections),
        required: false,
        default: || Some(HttpLimits::default().connections_max.to_string()),
        doc: "HTTP connections served at once; one more is closed as soon as it is accepted (counted in `veltrix_http_connections_refused_total`).",
    },
    KeyDef {
        name: "http_idle_ms_max",
        kind: int(1, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(HttpLimits::default().idle_ms_max.to_string()),
        doc: "Time an HTTP connection has to send a whole request head, from when it opens or from its previous response; past it the connection is closed (idle keep-alive connections and slow headers alike).",
    },
    KeyDef {
        name: "http_verified_passwords_max",
        kind: int(0, 1_000_000, Unit::Entries),
        required: false,
        default: || {
            Some(
                veltrix_http::HttpSecurityConfig::default()
                    .verified_passwords_max
                    .to_string(),
            )
        },
        doc: "HTTP basic credentials remembered as verified (an HMAC of each, under a key held in memory), so that a client sending them with every request costs one PBKDF2 run; the oldest is forgotten first (counted in `veltrix_http_verified_passwords_evicted_total`). 0: every request runs PBKDF2.",
    },
    KeyDef {
        name: "http_password_checks_in_flight_max",
        kind: int(1, 64, Unit::Requests),
        required: false,
        default: || {
            Some(
                veltrix_http::HttpSecurityConfig::default()
                    .password_checks_in_flight_max
                    .to_string(),
            )
        },
        doc: "HTTP password checks (PBKDF2, a few milliseconds of CPU each) run at once; more wait (counted in `veltrix_http_password_checks_waited_total`), so a password guesser cannot take every core.",
    },
    KeyDef {
        name: "http_produce_bytes_max",
        kind: int(1_024, 16 * 1_048_576, Unit::Bytes),
        required: false,
        default: || {
            Some(
                veltrix_http::HttpSecurityConfig::default()
                    .produce_bytes_max
                    .to_string(),
            )
        },
        doc: "The largest body (JSON: key, value, headers) of a record produced over HTTP (`POST /api/v1/topics/{name}/records`, the console's \"produce a test record\", with `[listeners] http_mutations`). A larger one is refused with 413, unread when its `Content-Length` says so (counted in `veltrix_http_produce_refused_total`). The topic's `batch_bytes_max` applies too.",
    },
    KeyDef {
        name: "shutdown_drain_ms_max",
        kind: int(0, 3_600_000, Unit::Milliseconds),
        required: false,
        default: || Some(kafka().shutdown_drain_ms_max.to_string()),
        doc: "At shutdown (SIGTERM, SIGINT), how long the Kafka and HTTP connections may take to answer the requests they have read, after the listeners stop accepting; past it they are closed. The logs are closed after.",
    },
    KeyDef {
        name: "transaction_timeout_ms_max",
        kind: int(1_000, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(txn().transaction_timeout_ms_max.to_string()),
        doc: "Kafka's `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a transactional producer may ask for; InitProducerId asking more is refused with INVALID_TRANSACTION_TIMEOUT. A transaction open longer than its timeout is aborted and its producer fenced. See docs/transactions.md.",
    },
    KeyDef {
        name: "transactional_ids_max",
        kind: int(1, 100_000_000, Unit::Ids),
        required: false,
        default: || Some(txn().transactional_ids_max.to_string()),
        doc: "Transactional ids the coordinator knows at once (each a few hundred bytes of memory and of its change log); InitProducerId for one more is refused with POLICY_VIOLATION (counted in `veltrix_transaction_refused_total{limit=\"transactional_ids_max\"}`). Ids unused for `transactional_id_expiration_ms` are forgotten.",
    },
    KeyDef {
        name: "transaction_partitions_max",
        kind: int(1, 1_000_000, Unit::Partitions),
        required: false,
        default: || Some(txn().transaction_partitions_max.to_string()),
        doc: "Partitions one transaction may write to; AddPartitionsToTxn past it is refused with POLICY_VIOLATION and adds nothing (counted in `veltrix_transaction_refused_total`).",
    },
    KeyDef {
        name: "transaction_groups_max",
        kind: int(1, 100_000, Unit::Groups),
        required: false,
        default: || Some(txn().transaction_groups_max.to_string()),
        doc: "Consumer groups one transaction may commit offsets of; AddOffsetsToTxn past it is refused with POLICY_VIOLATION (counted in `veltrix_transaction_refused_total`).",
    },
    KeyDef {
        name: "transactional_id_expiration_ms",
        kind: int(60_000, i32::MAX as i64, Unit::Milliseconds),
        required: false,
        default: || Some(txn().transactional_id_expiration_ms.to_string()),
        doc: "Kafka's `transactional.id.expiration.ms`: a transactional id with no transaction open, unused this long, is forgotten (its producer then starts over with InitProducerId, as Kafka's does).",
    },
];

fn txn() -> veltrix_core::txn::TxnConfig {
    veltrix_core::txn::TxnConfig::default()
}

/// Log keys shared by `[defaults]` and `[[topic]]`.
macro_rules! log_keys {
    () => {
        [
            KeyDef {
                name: "retention_ms",
                kind: limit(1, MS, Unit::Milliseconds),
                required: false,
                default: || opt(log().retention_ms),
                doc: "Whole segments whose newest record is older than this, both by its timestamp and by when the broker appended it, are deleted (Kafka's `retention.ms`).",
            },
            KeyDef {
                name: "retention_bytes",
                kind: limit(1, i64::MAX, Unit::Bytes),
                required: false,
                default: || opt(log().retention_bytes),
                doc: "Oldest segments are deleted while a partition is larger than this (Kafka's `retention.bytes`).",
            },
            KeyDef {
                name: "segment_bytes_max",
                kind: int(SEGMENT_BYTES_MIN as i64, SEGMENT_BYTES_LIMIT as i64, Unit::Bytes),
                required: false,
                default: || Some(log().segment_bytes_max.to_string()),
                doc: "A segment is rolled before an append would make it larger than this.",
            },
            KeyDef {
                name: "segment_age_ms_max",
                kind: int(1, MS, Unit::Milliseconds),
                required: false,
                default: || Some(log().segment_age_ms_max.to_string()),
                doc: "A non-empty segment is rolled once it has received appends for this long (Kafka's `segment.ms`).",
            },
            KeyDef {
                name: "batch_bytes_max",
                kind: int(HEADER_BYTES as i64, STORED_BATCH_BYTES_LIMIT as i64, Unit::Bytes),
                required: false,
                default: || Some(log().batch_bytes_max.to_string()),
                doc: "Largest batch accepted, header included: the maximum message size (Kafka's `max.message.bytes`).",
            },
            KeyDef {
                name: "durability",
                kind: Kind::Word(DURABILITIES),
                required: false,
                default: || Some("\"fsync\"".to_owned()),
                doc: "`fsync`: an append is acknowledged only after an fsync covers it. `interval`: acknowledged once written, fsynced every `flush_interval_ms`; acknowledged records can be lost on power loss.",
            },
            KeyDef {
                name: "flush_interval_ms",
                kind: int(1, MS, Unit::Milliseconds),
                required: false,
                default: none,
                doc: "With `durability = \"interval\"` (and only then): how often appends are fsynced.",
            },
        ]
    };
}

static DEFAULT_KEYS: &[KeyDef] = &{
    let [a, b, c, d, e, f, g] = log_keys!();
    [
        KeyDef {
            name: "partitions",
            kind: int(1, PARTITIONS_LIMIT, Unit::Partitions),
            required: false,
            default: || Some(BrokerConfig::default().default_partitions.to_string()),
            doc: "Partitions of a topic created without a count (auto-creation, CreateTopics with -1, `[[topic]]` without `partitions`). Flag: `--default-partitions`.",
        },
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        KeyDef {
            name: "index_interval_bytes",
            kind: int(1, u32::MAX as i64, Unit::Bytes),
            required: false,
            default: || Some(log().index_interval_bytes.to_string()),
            doc: "An index entry is added after at least this many bytes of batches.",
        },
        KeyDef {
            name: "producers_max",
            kind: int(1, u32::MAX as i64, Unit::Producers),
            required: false,
            default: || Some(log().producers_max.to_string()),
            doc: "Idempotent producers remembered per partition; past it the least recently active one is forgotten.",
        },
        KeyDef {
            name: "producer_id_expiration_ms",
            kind: int(1, MS, Unit::Milliseconds),
            required: false,
            default: || Some(log().producer_id_expiration_ms.to_string()),
            doc: "An idempotent producer idle this long is forgotten (Kafka's `producer.id.expiration.ms`).",
        },
    ]
};

/// `cleanup_policy`'s values (Kafka's `cleanup.policy` lists).
const CLEANUP_POLICIES: &[&str] = &["delete", "compact", "compact,delete"];

static TOPIC_KEYS: &[KeyDef] = &{
    let [a, b, c, d, e, f, g] = log_keys!();
    [
        KeyDef {
            name: "name",
            kind: Kind::Name,
            required: true,
            default: none,
            doc: "The topic's name: ASCII letters, digits, `.`, `_` and `-`, at most 249 characters, not `.` or `..`.",
        },
        KeyDef {
            name: "partitions",
            kind: int(1, PARTITIONS_LIMIT, Unit::Partitions),
            required: false,
            default: || Some("[defaults] partitions".to_owned()),
            doc: "Partition count. Applied at start: a missing topic is created, a smaller one grows; partitions are never removed.",
        },
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        KeyDef {
            name: "cleanup_policy",
            kind: Kind::Word(CLEANUP_POLICIES),
            required: false,
            default: || Some("\"delete\"".to_owned()),
            doc: "`delete`: retention deletes old segments. `compact`: the latest record of each key is kept (records must have a key) and retention does not apply. `compact,delete`: both (Kafka's `cleanup.policy`; see docs/compaction.md).",
        },
        KeyDef {
            name: "delete_retention_ms",
            kind: int(0, MS, Unit::Milliseconds),
            required: false,
            default: || Some(veltrix_log::CompactionConfig::default().delete_retention_ms.to_string()),
            doc: "On a compacted topic: how long a tombstone (a null value) stays after the compaction round that first reached it (Kafka's `delete.retention.ms`).",
        },
        KeyDef {
            name: "compaction_lag_ms_min",
            kind: int(0, MS, Unit::Milliseconds),
            required: false,
            default: || Some("0".to_owned()),
            doc: "On a compacted topic: a segment whose newest record is younger than this is not compacted (Kafka's `min.compaction.lag.ms`).",
        },
        KeyDef {
            name: "compaction_lag_ms_max",
            kind: int(1, MS, Unit::Milliseconds),
            required: false,
            default: || Some(i64::MAX.to_string()),
            doc: "On a compacted topic: dirty data older than this is compacted whatever the dirty share, and the active segment rolls at this age (Kafka's `max.compaction.lag.ms`).",
        },
        KeyDef {
            name: "cleanable_dirty_percent_min",
            kind: int(0, 100, Unit::Percent),
            required: false,
            default: || Some("50".to_owned()),
            doc: "On a compacted topic: a compaction round runs once this share of the log was written since the last one (Kafka's `min.cleanable.dirty.ratio`, as a percentage).",
        },
        KeyDef {
            name: "dedup_window_ms",
            kind: int(0, DEDUP_WINDOW_MS_MAX as i64, Unit::Milliseconds),
            required: false,
            default: || Some("0".to_owned()),
            doc: "The duplicate window: how long a record's message id is remembered, from when its record was stored. A record whose id the topic stored within the window is dropped and the rest of its batch stored; the window is topic-wide, across partitions. 0 turns it off. At most the topic's retention (Kafka's `veltrix.dedup.window.ms`).",
        },
        KeyDef {
            name: "dedup_id_header",
            kind: Kind::HeaderName,
            required: false,
            default: || Some(format!("\"{DEDUP_ID_HEADER_DEFAULT}\"")),
            doc: "With `dedup_id_source = \"header\"`: the record header whose value is the message id, compared byte for byte; a record without it is stored as usual (Kafka's `veltrix.dedup.id.header`).",
        },
        KeyDef {
            name: "dedup_id_source",
            kind: Kind::Word(DEDUP_ID_SOURCES),
            required: false,
            default: || Some(format!("\"{}\"", DedupIdSource::default().as_str())),
            doc: "Where a record's message id is: `header` (the value of `dedup_id_header`) or `key` (the record's key, which must then be unique to each message) (Kafka's `veltrix.dedup.id.source`).",
        },
        KeyDef {
            name: "tier",
            kind: Kind::Word(TIERS),
            required: false,
            default: none,
            doc: "Label: the topic's priority tier. Metadata for lints and tools; the broker does not schedule by it yet.",
        },
        KeyDef {
            name: "critical",
            kind: Kind::Bool,
            required: false,
            default: || Some("false".to_owned()),
            doc: "Label: losing or delaying this topic's records is an incident. Turns on the lints for critical topics.",
        },
        KeyDef {
            name: "keyed",
            kind: Kind::Bool,
            required: false,
            default: || Some("false".to_owned()),
            doc: "Label: producers send keyed records whose per-key order matters. Used by lints.",
        },
        KeyDef {
            name: "peak_records_per_second",
            kind: int(0, i64::MAX, Unit::RecordsPerSecond),
            required: false,
            default: none,
            doc: "Label: the expected peak produce rate, for capacity lints.",
        },
    ]
};

static GROUP_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "session_timeout_ms_min",
        kind: int(1, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
        required: false,
        default: || Some(groups().session_timeout_ms_min.to_string()),
        doc: "Shortest session timeout a member may ask for (Kafka's `group.min.session.timeout.ms`).",
    },
    KeyDef {
        name: "session_timeout_ms_max",
        kind: int(1, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
        required: false,
        default: || Some(groups().session_timeout_ms_max.to_string()),
        doc: "Longest session timeout a member may ask for (Kafka's `group.max.session.timeout.ms`).",
    },
    KeyDef {
        name: "initial_rebalance_delay_ms",
        kind: int(0, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
        required: false,
        default: || Some(groups().initial_rebalance_delay_ms.to_string()),
        doc: "How long the first rebalance of an empty group waits for more members.",
    },
    KeyDef {
        name: "group_members_max",
        kind: int(1, u32::MAX as i64, Unit::Members),
        required: false,
        default: || Some(groups().group_members_max.to_string()),
        doc: "Members per group (Kafka's `group.max.size`).",
    },
    KeyDef {
        name: "groups_max",
        kind: int(1, u32::MAX as i64, Unit::Groups),
        required: false,
        default: || Some(groups().groups_max.to_string()),
        doc: "Consumer groups the coordinator keeps.",
    },
    KeyDef {
        name: "offset_metadata_bytes_max",
        kind: int(0, i32::MAX as i64, Unit::Bytes),
        required: false,
        default: || Some(groups().offset_metadata_bytes_max.to_string()),
        doc: "Largest metadata string stored with a committed offset.",
    },
    KeyDef {
        name: "offsets_retention_ms",
        kind: int(1, MS, Unit::Milliseconds),
        required: false,
        default: || Some(groups().offsets_retention_ms.to_string()),
        doc: "Committed offsets of a group that has been empty this long are deleted (Kafka's `offsets.retention.minutes`).",
    },
    KeyDef {
        name: "consumer_session_timeout_ms",
        kind: int(1_000, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
        required: false,
        default: || Some(groups().consumer_session_timeout_ms.to_string()),
        doc: "Consumer protocol (KIP-848): a member that sends no heartbeat for this long is removed and its partitions move (Kafka's `group.consumer.session.timeout.ms`).",
    },
    KeyDef {
        name: "consumer_heartbeat_interval_ms",
        kind: int(100, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
        required: false,
        default: || Some(groups().consumer_heartbeat_interval_ms.to_string()),
        doc: "Consumer protocol: how often members heartbeat. Partitions a member gives up reach their next owner on that owner's next heartbeat (Kafka's `group.consumer.heartbeat.interval.ms`).",
    },
    KeyDef {
        name: "consumer_assignor",
        kind: Kind::Word(&["uniform", "range"]),
        required: false,
        default: || Some(format!("\"{}\"", groups().consumer_assignor.name())),
        doc: "Consumer protocol: the server-side assignor of groups whose members name none (`group.remote.assignor`).",
    },
];

fn share() -> ShareConfig {
    ShareConfig::default()
}

fn dedup() -> DedupLimits {
    DedupLimits::default()
}

static DEDUP_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "ids_max",
        kind: int(1, DEDUP_IDS_MAX as i64, Unit::Ids),
        required: false,
        default: || Some(dedup().ids_max.to_string()),
        doc: "Message ids one topic's duplicate window remembers, across its partitions; each costs its bytes and about 128 more of memory. Past it the oldest ids are forgotten before their time: the window effectively shrinks, and a record resent after its id was forgotten is stored again.",
    },
    KeyDef {
        name: "id_bytes_max",
        kind: int(1, DEDUP_ID_BYTES_MAX as i64, Unit::Bytes),
        required: false,
        default: || Some(dedup().id_bytes_max.to_string()),
        doc: "Longest message id accepted by a topic with a duplicate window: a batch with a longer (or an empty) id is refused with INVALID_RECORD, naming the limit, rather than stored with duplicates it could not catch.",
    },
    KeyDef {
        name: "memory_bytes_max",
        kind: int(1 << 20, i64::MAX, Unit::Bytes),
        required: false,
        default: || Some(dedup().memory_bytes_max.to_string()),
        doc: "Memory all topics' duplicate windows hold together (ids and their entries, estimated). A window that would go over it forgets its own oldest ids early, as at ids_max; one with no stored id to forget refuses the produce with POLICY_VIOLATION until memory frees up.",
    },
];

/// The share-group settings of `[share]` (the defaults) and of
/// `[[share_group]]`, each with the name Kafka gives it: the name
/// IncrementalAlterConfigs sets on a GROUP resource, DescribeConfigs shows
/// and the engine's `ShareGroupSettings::with` takes.
pub const SHARE_GROUP_SETTINGS: [(&str, &str); 12] = [
    ("auto_offset_reset", "share.auto.offset.reset"),
    ("record_lock_duration_ms", "share.record.lock.duration.ms"),
    ("deliveries_max", "share.delivery.count.limit"),
    ("partition_record_locks_max", "share.partition.max.record.locks"),
    ("backoff_initial_ms", "veltrix.share.backoff.initial.ms"),
    ("backoff_multiplier", "veltrix.share.backoff.multiplier"),
    ("backoff_ms_max", "veltrix.share.backoff.max.ms"),
    ("delay_enabled", "veltrix.share.delay.enable"),
    ("delay_ms_max", "veltrix.share.delay.max.ms"),
    ("priority_enabled", "veltrix.share.priority.enable"),
    ("key_order_enabled", "veltrix.share.key.order.enable"),
    // `[[share_group]]` only: no two groups share a dead-letter topic by default.
    (
        "dead_letter_topic",
        veltrix_core::share::settings::DEAD_LETTER_TOPIC_KEY,
    ),
];

const fn ranged((min, max): (i64, i64), unit: Unit) -> Kind {
    int(min, max, unit)
}

/// The share-group settings shared by `[share]` and `[[share_group]]`, in
/// the order of [`SHARE_GROUP_SETTINGS`], with each table's defaults.
macro_rules! share_group_keys {
    ($offset_reset:expr, $lock:expr, $deliveries:expr, $locks:expr, $initial:expr, $multiplier:expr, $max:expr) => {
        [
            KeyDef {
                name: "auto_offset_reset",
                kind: Kind::OffsetReset,
                required: false,
                default: $offset_reset,
                doc: "Where the group starts on a partition it has no state for: `latest` (records produced from then on), `earliest` (every record the partition still has), or `by_duration:` and an ISO 8601 duration (records produced at most that long ago, such as `by_duration:PT1H`) (Kafka's `share.auto.offset.reset`).",
            },
            KeyDef {
                name: "record_lock_duration_ms",
                kind: ranged(RECORD_LOCK_DURATION_MS_RANGE, Unit::Milliseconds),
                required: false,
                default: $lock,
                doc: "How long a record handed to a member stays locked to it; not acknowledged by then, it is available again, and its next delivery counts (Kafka's `share.record.lock.duration.ms`).",
            },
            KeyDef {
                name: "deliveries_max",
                kind: ranged(DELIVERY_COUNT_LIMIT_RANGE, Unit::Deliveries),
                required: false,
                default: $deliveries,
                doc: "Deliveries of a record, after which it is archived if still not accepted, never delivered again: what stops a poison record (Kafka's `share.delivery.count.limit`).",
            },
            KeyDef {
                name: "partition_record_locks_max",
                kind: ranged(PARTITION_MAX_RECORD_LOCKS_RANGE, Unit::Records),
                required: false,
                default: $locks,
                doc: "Records in flight per partition, from the first one not yet done on: a member that never acknowledges pins at most this many, and one record that is never done stops the partition once this many follow it (Kafka's `share.partition.max.record.locks`).",
            },
            KeyDef {
                name: "backoff_initial_ms",
                kind: ranged(BACKOFF_INITIAL_MS_RANGE, Unit::Milliseconds),
                required: false,
                default: $initial,
                doc: "How long a record released, or whose lock ran out, waits after its first delivery before it is delivered again; 0 delivers it again at once. Records behind it are delivered meanwhile (`veltrix.share.backoff.initial.ms`).",
            },
            KeyDef {
                name: "backoff_multiplier",
                kind: ranged(BACKOFF_MULTIPLIER_RANGE, Unit::Times),
                required: false,
                default: $multiplier,
                doc: "How many times longer the wait grows with each further delivery: the wait after delivery n is `backoff_initial_ms` × `backoff_multiplier`^(n-1), less up to a tenth so that records released together come back spread out (`veltrix.share.backoff.multiplier`).",
            },
            KeyDef {
                name: "backoff_ms_max",
                kind: ranged(BACKOFF_MAX_MS_RANGE, Unit::Milliseconds),
                required: false,
                default: $max,
                doc: "The longest wait before a record is delivered again, whatever its delivery count (`veltrix.share.backoff.max.ms`).",
            },
        ]
    };
}

/// Delays, priorities and per-key order, shared by `[share]` and
/// `[[share_group]]`, with each table's defaults.
macro_rules! order_keys {
    ($delays:expr, $delay_max:expr, $priority:expr, $key_order:expr) => {
        [
            KeyDef {
                name: "delay_enabled",
                kind: Kind::Bool,
                required: false,
                default: $delays,
                doc: "Honour delays: a record with a `veltrix.deliver.at` header (epoch ms or RFC 3339) or a `veltrix.delay.ms` header (ms after its timestamp) is not handed to the group's consumers before then; the records behind it are. Plain consumers see it at once. A header that does not parse is ignored and counted (`veltrix.share.delay.enable`).",
            },
            KeyDef {
                name: "delay_ms_max",
                kind: ranged(DELAY_MAX_MS_RANGE, Unit::Milliseconds),
                required: false,
                default: $delay_max,
                doc: "The longest delay honoured, from when the broker first reads the record; a delayed record holds a place in the in-flight window meanwhile (`veltrix.share.delay.max.ms`).",
            },
            KeyDef {
                name: "priority_enabled",
                kind: Kind::Bool,
                required: false,
                default: $priority,
                doc: "Among the records in the in-flight window (`partition_record_locks_max`, as far as one fetch reads), those with a higher `veltrix.priority` header (0 to 9) are handed out first; equal priorities in offset order (`veltrix.share.priority.enable`).",
            },
            KeyDef {
                name: "key_order_enabled",
                kind: Kind::Bool,
                required: false,
                default: $key_order,
                doc: "A record is not handed out while an earlier record with the same key in its partition is in flight or waiting out a backoff or delay, so each key's records are processed in order by any number of consumers (Pulsar's Key_Shared) (`veltrix.share.key.order.enable`).",
            },
        ]
    };
}

static SHARE_KEYS: &[KeyDef] = &{
    let [a, b, c, d, e, f, g] = share_group_keys!(
        || Some(format!("\"{}\"", share().defaults.auto_offset_reset.to_config_string())),
        || Some(share().defaults.record_lock_duration_ms.to_string()),
        || Some(share().defaults.delivery_count_limit.to_string()),
        || Some(share().defaults.partition_max_record_locks.to_string()),
        || Some(share().defaults.backoff_initial_ms.to_string()),
        || Some(share().defaults.backoff_multiplier.to_string()),
        || Some(share().defaults.backoff_max_ms.to_string())
    );
    let [h, i, j, k] = order_keys!(
        || Some(share().defaults.delays.to_string()),
        || Some(share().defaults.delay_max_ms.to_string()),
        || Some(share().defaults.priority.to_string()),
        || Some(share().defaults.key_order.to_string())
    );
    [
        KeyDef {
            name: "groups_max",
            kind: int(1, u32::MAX as i64, Unit::Groups),
            required: false,
            default: || Some(share().groups_max.to_string()),
            doc: "Share groups the broker keeps, declared ones included; one more (by a heartbeat, or settings set over the Kafka protocol) is refused. Groups whose share-partitions this broker serves count separately against the same limit (a ShareFetch may name any group id).",
        },
        KeyDef {
            name: "group_members_max",
            kind: int(1, u32::MAX as i64, Unit::Members),
            required: false,
            default: || Some(share().group_members_max.to_string()),
            doc: "Members per share group (Kafka's `group.share.max.size`); one more is refused with GROUP_MAX_SIZE_REACHED.",
        },
        KeyDef {
            name: "sessions_max",
            kind: int(1, u32::MAX as i64, Unit::Sessions),
            required: false,
            default: || Some(share().sessions_max.to_string()),
            doc: "Share sessions open at once across the broker, one per fetching member; one more is refused with SHARE_SESSION_LIMIT_REACHED (Kafka's `group.share.max.share.sessions`).",
        },
        KeyDef {
            name: "session_timeout_ms",
            kind: int(1_000, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
            required: false,
            default: || Some(share().session_timeout_ms.to_string()),
            doc: "A member that sends no heartbeat for this long is removed, and a share session that no ShareFetch or ShareAcknowledge uses for this long is closed; either way the records it holds are released (Kafka's `group.share.session.timeout.ms`).",
        },
        KeyDef {
            name: "heartbeat_interval_ms",
            kind: int(100, SESSION_TIMEOUT_MS_LIMIT, Unit::Milliseconds),
            required: false,
            default: || Some(share().heartbeat_interval_ms.to_string()),
            doc: "How often members heartbeat; partitions reach a new member on its next heartbeat (Kafka's `group.share.heartbeat.interval.ms`).",
        },
        KeyDef {
            name: "dead_letter_topics_auto_create",
            kind: Kind::Bool,
            required: false,
            default: || Some(share().dead_letter_topics_auto_create.to_string()),
            doc: "Create a share group's dead-letter topic when its first letter is written and the topic does not exist: default partitions, 7 days' retention, and a duplicate window of as long on `veltrix.dlq.id`, so that every archived record gets exactly one letter. Off, a group whose topic does not exist keeps its archived records waiting, and its partitions stop once `partition_record_locks_max` records are behind them (Kafka's `errors.deadletterqueue.auto.create.topics.enable`).",
        },
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i,
        j,
        k,
    ]
};

static SHARE_GROUP_KEYS: &[KeyDef] = &{
    let [a, b, c, d, e, f, g] = share_group_keys!(
        || Some("[share] auto_offset_reset".to_owned()),
        || Some("[share] record_lock_duration_ms".to_owned()),
        || Some("[share] deliveries_max".to_owned()),
        || Some("[share] partition_record_locks_max".to_owned()),
        || Some("[share] backoff_initial_ms".to_owned()),
        || Some("[share] backoff_multiplier".to_owned()),
        || Some("[share] backoff_ms_max".to_owned())
    );
    let [h, i, j, k] = order_keys!(
        || Some("[share] delay_enabled".to_owned()),
        || Some("[share] delay_ms_max".to_owned()),
        || Some("[share] priority_enabled".to_owned()),
        || Some("[share] key_order_enabled".to_owned())
    );
    [
        KeyDef {
            name: "name",
            kind: Kind::Name,
            required: true,
            default: none,
            doc: "The share group's id, as its consumers give it (`group.id`); not the id of a consumer group.",
        },
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i,
        j,
        k,
        KeyDef {
            name: "dead_letter_topic",
            kind: Kind::Name,
            required: false,
            default: none,
            doc: "The topic the group's archived records (rejected by a consumer, or at `deliveries_max`) are copied to, key, value and headers, with headers telling where each came from and why (KIP-1191's `__dlq.errors.*` and `veltrix.dlq.*`). Its name starts with `dlq.`. Each record gets exactly one letter, crashes included, when the topic has a duplicate window on `veltrix.dlq.id` (as a topic the broker creates has). Without it, archived records are dropped silently (Kafka's `errors.deadletterqueue.topic.name`).",
        },
    ]
};

static OBSERVABILITY_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "metrics_enabled",
        kind: Kind::Bool,
        required: false,
        default: || Some("true".to_owned()),
        doc: "Record request, produce and fetch metrics on the hot paths. Off only to measure what they cost; lag, alerts and the gauges of `/metrics` work either way.",
    },
    KeyDef {
        name: "lag_evaluation_interval_ms",
        kind: int(100, 3_600_000, Unit::Milliseconds),
        required: false,
        default: || Some("5000".to_owned()),
        doc: "How often the broker computes every group's lag and evaluates the `[[alert]]`s. An alert fires at most this long after its `for_ms` has passed.",
    },
    KeyDef {
        name: "lag_history_points_max",
        kind: int(1, 100_000, Unit::Entries),
        required: false,
        default: || Some("720".to_owned()),
        doc: "Evaluations of each group's total lag kept for its chart (`/api/v1/groups/{id}/lag-history`, the console): at the default interval, 720 are the last hour. Groups that are gone are forgotten.",
    },
    KeyDef {
        name: "webhook_url",
        kind: Kind::Url,
        required: false,
        default: none,
        doc: "Where alert transitions (firing, resolved) are POSTed as JSON. Without it they go to the log, `/alerts` and the metrics only.",
    },
    KeyDef {
        name: "webhook_timeout_ms",
        kind: int(1, 600_000, Unit::Milliseconds),
        required: false,
        default: || Some("5000".to_owned()),
        doc: "Upper bound on one webhook POST, connecting included.",
    },
    KeyDef {
        name: "webhook_retries_max",
        kind: int(0, 100, Unit::Requests),
        required: false,
        default: || Some("3".to_owned()),
        doc: "Retries of a failed webhook POST; then the notification is given up (and counted).",
    },
    KeyDef {
        name: "webhook_retry_backoff_ms",
        kind: int(0, 600_000, Unit::Milliseconds),
        required: false,
        default: || Some("500".to_owned()),
        doc: "Wait before the first retry; it doubles for each further one.",
    },
    KeyDef {
        name: "webhook_queue_max",
        kind: int(1, 1_000_000, Unit::Requests),
        required: false,
        default: || Some("1000".to_owned()),
        doc: "Notifications waiting to be sent; past it the oldest is dropped (and counted), so a dead webhook never holds the broker up.",
    },
];

static QUOTAS_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "burst_ms",
        kind: int(1, 60_000, Unit::Milliseconds),
        required: false,
        default: || Some(quotas().windows.burst_ms.to_string()),
        doc: "How much of its quota a client may send or be sent at once, in milliseconds of its rate; past it, it waits. Over any longer time a client gets its quota and no more.",
    },
    KeyDef {
        name: "throttle_ms_max",
        kind: int(1, 300_000, Unit::Milliseconds),
        required: false,
        default: || Some(quotas().windows.throttle_ms_max.to_string()),
        doc: "The longest wait one response asks for (`throttle_time_ms`, and the time the connection is muted); a client further behind waits again after its next request.",
    },
    KeyDef {
        name: "entities_max",
        kind: int(1, 1_000_000, Unit::Entities),
        required: false,
        default: || Some(quotas().entities_max.to_string()),
        doc: "Quota entities the broker keeps (declared and set over AlterClientQuotas); setting one more is refused with POLICY_VIOLATION.",
    },
    KeyDef {
        name: "sensors_max",
        kind: int(1, 1_000_000, Unit::Clients),
        required: false,
        default: || Some(quotas().sensors_max.to_string()),
        doc: "Clients measured against their quotas at once; past it the one idle longest is forgotten (and starts afresh), so clients inventing client ids cost bounded memory.",
    },
];

static QUOTA_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "user",
        kind: Kind::Name,
        required: false,
        default: none,
        doc: "The user (principal) the quota is for. Until the broker has authentication every connection is `ANONYMOUS`.",
    },
    KeyDef {
        name: "user_default",
        kind: Kind::Bool,
        required: false,
        default: none,
        doc: "`true`: the quota is the default of every user without one of their own (Kafka's `--entity-default` for users).",
    },
    KeyDef {
        name: "client_id",
        kind: Kind::Name,
        required: false,
        default: none,
        doc: "The client id (`client.id`) the quota is for; with `user`, that user's clients with this id.",
    },
    KeyDef {
        name: "client_id_default",
        kind: Kind::Bool,
        required: false,
        default: none,
        doc: "`true`: the quota is the default of every client id without one of its own; each client id gets the whole quota for itself.",
    },
    KeyDef {
        name: "producer_byte_rate",
        kind: int(1, 1 << 40, Unit::BytesPerSecond),
        required: false,
        default: none,
        doc: "Record bytes per second the clients may produce; over it, responses carry `throttle_time_ms` and the connection waits (nothing is refused).",
    },
    KeyDef {
        name: "consumer_byte_rate",
        kind: int(1, 1 << 40, Unit::BytesPerSecond),
        required: false,
        default: none,
        doc: "Record bytes per second the clients may fetch; over it, responses carry `throttle_time_ms`, and a fetch while a wait is owed comes back without records.",
    },
];

static ALERT_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "name",
        kind: Kind::Name,
        required: false,
        default: none,
        doc: "Names the alert in logs, metrics and notifications; by default `GROUP/TOPIC/lag_records` or `GROUP/TOPIC/lag_seconds`.",
    },
    KeyDef {
        name: "group",
        kind: Kind::Name,
        required: true,
        default: none,
        doc: "The consumer group whose lag is watched.",
    },
    KeyDef {
        name: "topic",
        kind: Kind::Name,
        required: true,
        default: none,
        doc: "The topic it consumes; must be a declared `[[topic]]`.",
    },
    KeyDef {
        name: "lag_records_max",
        kind: int(1, i64::MAX, Unit::Records),
        required: false,
        default: none,
        doc: "Fire when the group is more than this many records behind. Exactly one of `lag_records_max`, `lag_ms_max` and `dead_letters_per_minute_max`.",
    },
    KeyDef {
        name: "lag_ms_max",
        kind: int(1, MS, Unit::Milliseconds),
        required: false,
        default: none,
        doc: "Fire when the oldest unconsumed record is older than this. Exactly one of `lag_records_max`, `lag_ms_max` and `dead_letters_per_minute_max`.",
    },
    KeyDef {
        name: "dead_letters_per_minute_max",
        kind: int(0, i64::MAX, Unit::Records),
        required: false,
        default: none,
        doc: "Share groups with a dead-letter topic: fire when more than this many of the group's records of the topic were dead-lettered in the last minute (measured from the evaluation at least a minute back). 0 fires on the first one. Exactly one of `lag_records_max`, `lag_ms_max` and `dead_letters_per_minute_max`.",
    },
    KeyDef {
        name: "for_ms",
        kind: int(0, MS, Unit::Milliseconds),
        required: false,
        default: || Some("0".to_owned()),
        doc: "How long the lag must stay over the threshold before the alert fires.",
    },
];

/// The longest route name, in characters.
pub const ROUTE_NAME_CHARS_MAX: usize = 100;

static ROUTE_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "name",
        kind: Kind::Name,
        required: true,
        default: none,
        doc: "The route's name, unique: ASCII letters, digits, `.`, `_` and `-`, at most 100 characters. It names the route in logs, metrics and the headers of its dead letters, and its default dead-letter topic.",
    },
    KeyDef {
        name: "source",
        kind: Kind::Name,
        required: true,
        default: none,
        doc: "The declared `[[topic]]` whose records the route sorts; each record is routed once, crashes included, in order per key.",
    },
    KeyDef {
        name: "rule",
        kind: Kind::Tables {
            table: "route.rule",
            max: RULES_MAX,
        },
        required: false,
        default: none,
        doc: "The route's rules, in order, each a `[[route.rule]]` table: a record goes where the first rule that holds for it says.",
    },
    KeyDef {
        name: "default",
        kind: Kind::Topics { max: TARGETS_MAX },
        required: false,
        default: none,
        doc: "Where records no rule holds for go: a declared topic or a list of them. Without it such records are dropped (and counted).",
    },
    KeyDef {
        name: "dead_letter",
        kind: Kind::Name,
        required: false,
        default: || Some("\"<name>.dead-letters\"".to_owned()),
        doc: "The declared topic a record goes to when a rule's expression fails on it (a field it lacks, a result that is not a bool), with the reason in its `veltrix.route.error` header; the route goes on.",
    },
];

static RULE_KEYS: &[KeyDef] = &[
    KeyDef {
        name: "when",
        kind: Kind::Expression,
        required: true,
        default: none,
        doc: "A CEL expression that gives a bool, over the record's `key`, `value` (parsed as JSON when it is JSON), `headers`, `timestamp`, `partition` and `offset`: `value.type == \"reward\"`.",
    },
    KeyDef {
        name: "to",
        kind: Kind::Topics { max: TARGETS_MAX },
        required: true,
        default: none,
        doc: "Where the records the rule holds for go: a declared topic or a list of them; each gets the record, key, value and headers.",
    },
    KeyDef {
        name: "headers",
        kind: Kind::Headers { max: HEADERS_MAX },
        required: false,
        default: none,
        doc: "Headers added to each record the rule sends, names and values: `headers = { \"x-lane\" = \"critical\" }`.",
    },
];

/// Every table of the file, in the order the reference lists them.
pub static TABLES: &[TableDef] = &[
    TableDef {
        name: "broker",
        array: false,
        env: true,
        doc: "The broker process: profile, data directory, topic and partition limits.",
        keys: BROKER_KEYS,
    },
    TableDef {
        name: "listeners",
        array: false,
        env: true,
        doc: "Where the broker listens. `kafka` is a PLAINTEXT listener (neither TLS nor authentication): keep it on loopback and declare the network's listeners with `[[listener]]`.",
        keys: LISTENER_KEYS,
    },
    TableDef {
        name: "listener",
        array: true,
        env: false,
        doc: "A Kafka listener beside `[listeners] kafka`, with its security protocol: TLS (rustls) from PEM files, client certificates, SASL (SCRAM-SHA-256/512, PLAIN). See docs/security.md.",
        keys: LISTENER_ENTRY_KEYS,
    },
    TableDef {
        name: "security",
        array: false,
        env: true,
        doc: "Authorization (Kafka ACLs, super users) and authentication's limits, for every listener. See docs/security.md.",
        keys: SECURITY_KEYS,
    },
    TableDef {
        name: "limits",
        array: false,
        env: true,
        doc: "Limits of the Kafka and HTTP listeners, and the memory budget for Kafka requests.",
        keys: LIMIT_KEYS,
    },
    TableDef {
        name: "defaults",
        array: false,
        env: true,
        doc: "Defaults for every topic: declared ones that do not set a key, auto-created ones and ones created through the Kafka admin API.",
        keys: DEFAULT_KEYS,
    },
    TableDef {
        name: "groups",
        array: false,
        env: true,
        doc: "Consumer groups: session limits, sizes, offsets retention, the consumer protocol's timings and assignor.",
        keys: GROUP_KEYS,
    },
    TableDef {
        name: "share",
        array: false,
        env: true,
        doc: "Share groups (KIP-932), queues on topics: limits and timings, and the settings of every share group that does not set its own.",
        keys: SHARE_KEYS,
    },
    TableDef {
        name: "dedup",
        array: false,
        env: true,
        doc: "The bounds of every topic's duplicate window (a `[[topic]]`'s `dedup_window_ms`, or Kafka's `veltrix.dedup.window.ms`): ids remembered per topic, bytes per id.",
        keys: DEDUP_KEYS,
    },
    TableDef {
        name: "observability",
        array: false,
        env: true,
        doc: "Metrics, the lag evaluation behind `[[alert]]`s, and the webhook that hears alert transitions.",
        keys: OBSERVABILITY_KEYS,
    },
    TableDef {
        name: "quotas",
        array: false,
        env: true,
        doc: "Client quotas (`[[quota]]`, and AlterClientQuotas over the Kafka protocol): how a client's rate is measured, and how many quotas and measured clients the broker keeps.",
        keys: QUOTAS_KEYS,
    },
    TableDef {
        name: "storage",
        array: false,
        env: true,
        doc: "Where partitions are kept: on this broker's disk (`local`, the default) or shared by stateless brokers, batches in an S3-compatible bucket and offsets in PostgreSQL (`shared`; docs/scale-out.md). The bucket's credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), never from this file.",
        keys: STORAGE_KEYS,
    },
    TableDef {
        name: "topic",
        array: true,
        env: false,
        doc: "A declared topic, applied at start: created if missing, its settings updated to match, its partitions grown. Shortening the retention of a live topic and deleting a declared topic need `--allow-data-loss`.",
        keys: TOPIC_KEYS,
    },
    TableDef {
        name: "share_group",
        array: true,
        env: false,
        doc: "A declared share group, set at start: its own settings become exactly the entry's (a key left out means the `[share]` value), replacing any set over the Kafka protocol since the last start. See \"Declared share groups\" above.",
        keys: SHARE_GROUP_KEYS,
    },
    TableDef {
        name: "quota",
        array: true,
        env: false,
        doc: "A declared client quota, as Kafka's: for a user, a client id, or a user's client id, each named or the default; the most specific one that sets a rate applies. Set at start; one no longer declared is removed at the next start; quotas set over AlterClientQuotas for other entities stay.",
        keys: QUOTA_KEYS,
    },
    TableDef {
        name: "route",
        array: true,
        env: false,
        doc: "A route: the records of its `source` topic sorted into other topics by its rules, inside the broker. Applied at start; a route no longer declared stops and its progress is forgotten. See \"Routes\" above.",
        keys: ROUTE_KEYS,
    },
    TableDef {
        name: "alert",
        array: true,
        env: false,
        doc: "A consumer lag alert, evaluated by the broker every `[observability] lag_evaluation_interval_ms`: pending once over its threshold, firing once over it for `for_ms`, resolved once back under. Transitions go to the log, `/alerts`, the `veltrix_alert_firing` metric and the webhook.",
        keys: ALERT_KEYS,
    },
];

/// The arrays of tables that live inside an entry of another
/// (`[[route.rule]]`), named `PARENT.KEY`; listed in the reference after
/// their parent.
pub static NESTED_TABLES: &[TableDef] = &[TableDef {
    name: "route.rule",
    array: true,
    env: false,
    doc: "A rule of the `[[route]]` above it, in order: the first rule whose `when` holds for a record sends it to the rule's `to` topics.",
    keys: RULE_KEYS,
}];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

/// The nested table named `name` (`route.rule`).
pub fn nested_table(name: &str) -> Option<&'static TableDef> {
    NESTED_TABLES.iter().find(|t| t.name == name)
}

/// `1234567` as `1_234_567`, as TOML allows and as the reference prints ranges.
pub fn group_digits(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// The key reference in Markdown: one section per table, one row per key.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    for t in TABLES {
        table_markdown(&mut out, t);
        let prefix = format!("{}.", t.name);
        for nested in NESTED_TABLES.iter().filter(|n| n.name.starts_with(&prefix)) {
            table_markdown(&mut out, nested);
        }
    }
    out
}

fn table_markdown(out: &mut String, t: &TableDef) {
    let header = if t.array {
        format!("[[{}]]", t.name)
    } else {
        format!("[{}]", t.name)
    };
    let _ = writeln!(out, "### `{header}`\n\n{}\n", t.doc);
    if t.env {
        let _ = writeln!(
            out,
            "Environment: `VELTRIX_{}__<KEY>` overrides any key of this table.\n",
            t.name.to_uppercase()
        );
    }
    out.push_str("| key | type | range | default | description |\n|---|---|---|---|---|\n");
    for k in t.keys {
        let default = match ((k.default)(), k.required) {
            (Some(d), _) => format!("`{d}`"),
            (None, true) => "required".to_owned(),
            (None, false) => "none".to_owned(),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} |",
            k.name,
            k.kind.describe(),
            k.kind.range(),
            default,
            k.doc
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped_by_three() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1_000");
        assert_eq!(group_digits(-1_234_567), "-1_234_567");
    }

    #[test]
    fn keys_are_unique_and_limits_are_named_units_last() {
        for t in TABLES.iter().chain(NESTED_TABLES) {
            for (i, k) in t.keys.iter().enumerate() {
                assert!(
                    t.keys[..i].iter().all(|o| o.name != k.name),
                    "{}.{} twice",
                    t.name,
                    k.name
                );
                if k.name.contains("max") || k.name.contains("min") {
                    assert!(
                        k.name.ends_with("_max") || k.name.ends_with("_min"),
                        "{}.{}: limits end in _max or _min",
                        t.name,
                        k.name
                    );
                }
                if let Kind::Int { min, max, .. } = k.kind {
                    assert!(min <= max, "{}.{}", t.name, k.name);
                }
            }
        }
    }
}
