//! DescribeConfigs: the effective settings of topics and of the broker, under
//! their Kafka names (v1 to v4).
//!
//! A topic (resource type 2) reports what its partitions' logs actually run
//! with, each setting marked as set on the topic (DYNAMIC_TOPIC_CONFIG), taken
//! from the broker's configuration (STATIC_BROKER_CONFIG) or the built-in default
//! (DEFAULT_CONFIG). The broker (resource type 4, named by its id, 0) reports the
//! topic defaults under Kafka's broker names and a few broker settings; the empty
//! name asks for cluster-wide dynamic defaults, of which there are none. A topic's
//! settable entries (see `topic_configs::SETTABLE`) are not read-only: AlterConfigs
//! and IncrementalAlterConfigs change them; everything else is.
//!
//! Durability is shown in Kafka's own terms. The default policy, an fsync that
//! covers every append before it is acknowledged, is `flush.messages` = 1 and
//! `flush.ms` = 0. Kafka's own defaults (both Long.MAX, i.e. never fsync
//! explicitly) would say the opposite of what the broker does. A topic created
//! with `flush.ms` = N acknowledges before the fsync and flushes at most N ms
//! later; it shows `flush.ms` = N and `flush.messages` = Long.MAX. Creating a
//! topic with `flush.ms` = 0 is refused, so the default cannot be mistaken for an
//! interval. `retention.ms` and `retention.bytes` are -1 when there is no limit.
//!
//! The broker also tells its Kafka listeners, read-only, as Kafka brokers do:
//! `listeners` (bound addresses), `advertised.listeners`,
//! `listener.security.protocol.map`, `sasl.enabled.mechanisms` (every SASL
//! listener's together) and, per listener,
//! `listener.name.<name>.sasl.enabled.mechanisms` and
//! `listener.name.<name>.ssl.client.auth`, so that a client can learn from
//! one listener what the others want.
//!
//! The duplicate window's settings (`veltrix.dedup.*`) follow the log's. They
//! have no broker-wide value: each is set on the topic or is the built-in
//! default (0, the window off; the header `message-id`; the id from a header).
//!
//! Each resource needs DESCRIBE_CONFIGS, as in Kafka: on the topic, the
//! group, or for the broker on the cluster (TOPIC_, GROUP_ or
//! CLUSTER_AUTHORIZATION_FAILED).

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::acl::AclOperation;
use veltrix_core::{BrokerConfig, DEDUP_ID_HEADER_DEFAULT, DedupIdSource, TopicConfig};
use veltrix_log::{FlushPolicy, LogConfig};

use super::Ctx;
use crate::errors::{Refusal, ResponseError};
use crate::security::{ClientAuth, SaslMechanism};
use crate::server::{BoundListener, KafkaConfig};
use crate::topic_configs::{CLEANUP_POLICY, DEDUP_ID_HEADER, DEDUP_ID_SOURCE, DEDUP_WINDOW_MS, TIER};

/// Kafka's resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;

/// Kafka's config types (v3 and later).
const TYPE_BOOLEAN: i8 = 1;
const TYPE_STRING: i8 = 2;
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;
const TYPE_DOUBLE: i8 = 6;
const TYPE_LIST: i8 = 7;

/// The id this broker answers to.
const BROKER_ID: i32 = 0;

/// One per-topic log setting, under its topic name and its broker-wide name.
struct LogSetting {
    topic_name: &'static str,
    broker_name: &'static str,
    config_type: i8,
    doc: &'static str,
    value: fn(&LogConfig) -> String,
    /// Whether the topic overrides the broker's value.
    at_topic_level: fn(&TopicConfig) -> bool,
}

/// An optional limit in Kafka's form: -1 for none.
fn limit(v: Option<u64>) -> String {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX)).to_string()
}

static LOG_SETTINGS: [LogSetting; 9] = [
    LogSetting {
        topic_name: "retention.ms",
        broker_name: "log.retention.ms",
        config_type: TYPE_LONG,
        doc: "Whole segments whose newest record is older than this, both by its timestamp and by when the broker appended it, are deleted; -1 for no time limit.",
        value: |c| limit(c.retention_ms),
        at_topic_level: |t| t.retention_ms.is_some(),
    },
    LogSetting {
        topic_name: "retention.bytes",
        broker_name: "log.retention.bytes",
        config_type: TYPE_LONG,
        doc: "Oldest segments are deleted while a partition is larger than this; -1 for no size limit.",
        value: |c| limit(c.retention_bytes),
        at_topic_level: |t| t.retention_bytes.is_some(),
    },
    LogSetting {
        topic_name: "segment.bytes",
        broker_name: "log.segment.bytes",
        config_type: TYPE_INT,
        doc: "A segment is rolled before an append would make it larger than this.",
        value: |c| c.segment_bytes_max.to_string(),
        at_topic_level: |t| t.segment_bytes_max.is_some(),
    },
    LogSetting {
        topic_name: "segment.ms",
        broker_name: "log.roll.ms",
        config_type: TYPE_LONG,
        doc: "A non-empty active segment is rolled once it has received appends for this long.",
        value: |c| c.segment_age_ms_max.to_string(),
        at_topic_level: |t| t.segment_age_ms_max.is_some(),
    },
    LogSetting {
        topic_name: "max.message.bytes",
        broker_name: "message.max.bytes",
        config_type: TYPE_INT,
        doc: "The largest record batch accepted, header included.",
        value: |c| c.batch_bytes_max.to_string(),
        at_topic_level: |t| t.batch_bytes_max.is_some(),
    },
    LogSetting {
        topic_name: "flush.ms",
        broker_name: "log.flush.interval.ms",
        config_type: TYPE_LONG,
        doc: "0: every append is fsynced before it is acknowledged. N > 0: appends are acknowledged \
              before the fsync and flushed at most N ms later.",
        value: |c| match c.flush {
            FlushPolicy::EveryAppend => "0".to_owned(),
            FlushPolicy::Interval { flush_interval_ms } => flush_interval_ms.to_string(),
        },
        at_topic_level: |t| t.flush_interval_ms.is_some(),
    },
    LogSetting {
        topic_name: "flush.messages",
        broker_name: "log.flush.interval.messages",
        config_type: TYPE_LONG,
        doc: "1: every append is fsynced before it is acknowledged. Long.MAX: flushes follow flush.ms.",
        value: |c| match c.flush {
            FlushPolicy::EveryAppend => "1".to_owned(),
            FlushPolicy::Interval { .. } => i64::MAX.to_string(),
        },
        at_topic_level: |t| t.flush_interval_ms.is_some(),
    },
    LogSetting {
        topic_name: "index.interval.bytes",
        broker_name: "log.index.interval.bytes",
        config_type: TYPE_INT,
        doc: "An offset index entry is added after at least this many bytes of batches.",
        value: |c| c.index_interval_bytes.to_string(),
        at_topic_level: |_| false,
    },
    LogSetting {
        topic_name: "cleanup.policy",
        broker_name: "log.cleanup.policy",
        config_type: TYPE_LIST,
        doc: "delete: old segments are deleted by retention.ms and retention.bytes; compact: the latest record of \
              each key is kept (records need a key); compact,delete: both.",
        value: |_| "delete".to_owned(),
        at_topic_level: |t| t.cleanup_policy.is_some(),
    },
];

/// One topic setting that only topics have: set on the topic, or else the
/// built-in default.
struct TopicSetting {
    name: &'static str,
    config_type: i8,
    doc: &'static str,
    /// The topic's own value, if it sets one.
    value: fn(&TopicConfig) -> Option<String>,
    default: fn() -> String,
}

/// Log compaction's settings, Kafka's names and defaults.
static COMPACTION_SETTINGS: [TopicSetting; 4] = [
    TopicSetting {
        name: "delete.retention.ms",
        config_type: TYPE_LONG,
        doc: "How long a tombstone (a record with a null value) is kept after the compaction round that first \
              reached it, on a compacted topic.",
        value: |t| t.delete_retention_ms.map(|v| v.to_string()),
        default: || veltrix_log::CompactionConfig::default().delete_retention_ms.to_string(),
    },
    TopicSetting {
        name: "min.compaction.lag.ms",
        config_type: TYPE_LONG,
        doc: "A segment whose newest record is younger than this is not compacted.",
        value: |t| t.min_compaction_lag_ms.map(|v| v.to_string()),
        default: || "0".to_owned(),
    },
    TopicSetting {
        name: "max.compaction.lag.ms",
        config_type: TYPE_LONG,
        doc: "Dirty data older than this is compacted whatever the dirty ratio.",
        value: |t| t.max_compaction_lag_ms.map(|v| v.to_string()),
        default: || i64::MAX.to_string(),
    },
    TopicSetting {
        name: "min.cleanable.dirty.ratio",
        config_type: TYPE_DOUBLE,
        doc: "A compaction round runs once this share of the log was written since the last one.",
        value: |t| t.min_cleanable_dirty_ppm.map(ratio),
        default: || "0.5".to_owned(),
    },
];

/// A ratio kept in millionths, as Kafka writes a double.
fn ratio(ppm: u32) -> String {
    let r = f64::from(ppm) / 1_000_000.0;
    if r.fract() == 0.0 {
        format!("{r:.1}")
    } else {
        r.to_string()
    }
}

/// Veltrix's own topic settings: the duplicate window's and the tier.
static VELTRIX_SETTINGS: [TopicSetting; 4] = [
    TopicSetting {
        name: DEDUP_WINDOW_MS,
        config_type: TYPE_LONG,
        doc: "How long a record's message id is remembered: a record whose id the topic stored within this many \
              ms is dropped, and the rest of its batch stored. 0 turns the window off. At most a year, and no \
              longer than retention.ms.",
        value: |t| t.dedup_window_ms.map(|ms| ms.to_string()),
        default: || "0".to_owned(),
    },
    TopicSetting {
        name: DEDUP_ID_HEADER,
        config_type: TYPE_STRING,
        doc: "The record header whose value is the message id, when veltrix.dedup.id.source is header; 1 to 255 \
              bytes, compared byte for byte.",
        value: |t| t.dedup_id_header.clone(),
        default: || DEDUP_ID_HEADER_DEFAULT.to_owned(),
    },
    TopicSetting {
        name: DEDUP_ID_SOURCE,
        config_type: TYPE_STRING,
        doc: "Where a record's message id is: header (the value of the header veltrix.dedup.id.header names) or \
              key (the record's key).",
        value: |t| t.dedup_id_source.map(|s| s.as_str().to_owned()),
        default: || DedupIdSource::default().as_str().to_owned(),
    },
    TopicSetting {
        name: TIER,
        config_type: TYPE_STRING,
        doc: "The topic's priority tier: critical, standard or bulk. As the broker's memory budget fills, produce \
              and fetch of bulk topics are throttled first, then standard ones; critical ones flow until the \
              budget is full.",
        value: |t| t.tier.map(|t| t.name().to_owned()),
        default: || veltrix_core::Tier::default().name().to_owned(),
    },
];

/// What the request asked for besides the values.
struct Options {
    version: i16,
    synonyms: bool,
    documentation: bool,
}

/// Where a setting's value comes from: the name it has there, the value, and
/// the source (`SOURCE_TOPIC`, `SOURCE_STATIC_BROKER`, `SOURCE_DEFAULT`).
struct Layer<'a> {
    name: &'a str,
    value: String,
    source: i8,
}

/// One reported setting: its name, value and source, and the synonyms behind it
/// in Kafka's order, the one in effect first.
fn entry(
    options: &Options,
    name: &str,
    config_type: i8,
    doc: &'static str,
    synonyms: Vec<Layer<'_>>,
) -> DescribeConfigsResourceResult {
    let mut e = DescribeConfigsResourceResult::default();
    let in_effect = &synonyms[0];
    e.name = StrBytes::from_string(name.to_owned());
    e.value = Some(StrBytes::from_string(in_effect.value.clone()));
    e.config_source = in_effect.source;
    e.read_only = !crate::topic_configs::SETTABLE.contains(&name);
    e.is_sensitive = false;
    if options.synonyms {
        e.synonyms = synonyms
            .iter()
            .map(|layer| {
                let mut s = DescribeConfigsSynonym::default();
                s.name = StrBytes::from_string(layer.name.to_owned());
                s.value = Some(StrBytes::from_string(layer.value.clone()));
                s.source = layer.source;
                s
            })
            .collect();
    }
    // The type and the documentation exist from v3 on.
    e.documentation = None;
    if options.version >= 3 {
        e.config_type = config_type;
        if options.documentation {
            e.documentation = Some(StrBytes::from_static_str(doc));
        }
    }
    e
}

/// The broker-wide layers under a setting: the broker's own value if it differs
/// from the built-in default, then the default.
fn broker_layers(name: &str, broker: String, default: String) -> Vec<Layer<'_>> {
    let mut layers = Vec::new();
    if broker != default {
        layers.push(Layer {
            name,
            value: broker,
            source: SOURCE_STATIC_BROKER,
        });
    }
    layers.push(Layer {
        name,
        value: default,
        source: SOURCE_DEFAULT,
    });
    layers
}

fn topic_configs(ctx: &Ctx, options: &Options, name: &str) -> Result<Vec<DescribeConfigsResourceResult>, Refusal> {
    let Some(topic) = ctx.broker.topic(name) else {
        return Err(Refusal::new(
            ResponseError::UnknownTopicOrPartition,
            format!("topic `{name}` does not exist"),
        ));
    };
    let broker_log = &ctx.broker.config().log;
    // What the partitions run with; every partition of a topic has the same.
    let effective = topic
        .partitions
        .first()
        .map_or_else(|| topic.config.log_config(broker_log), |p| p.log().config());
    let defaults = LogConfig::default();
    let log = LOG_SETTINGS.iter().map(|s| {
        let mut layers = Vec::new();
        if (s.at_topic_level)(&topic.config) {
            // The policy is the topic's alone: the log settings do not say it.
            let value = match (s.topic_name, topic.config.cleanup_policy) {
                (CLEANUP_POLICY, Some(p)) => p.name().to_owned(),
                _ => (s.value)(&effective),
            };
            layers.push(Layer {
                name: s.topic_name,
                value,
                source: SOURCE_TOPIC,
            });
        }
        layers.extend(broker_layers(
            s.broker_name,
            (s.value)(broker_log),
            (s.value)(&defaults),
        ));
        entry(options, s.topic_name, s.config_type, s.doc, layers)
    });
    let dedup = COMPACTION_SETTINGS.iter().chain(&VELTRIX_SETTINGS).map(|s| {
        let mut layers = Vec::new();
        if let Some(value) = (s.value)(&topic.config) {
            layers.push(Layer {
                name: s.name,
                value,
                source: SOURCE_TOPIC,
            });
        }
        layers.push(Layer {
            name: s.name,
            value: (s.default)(),
            source: SOURCE_DEFAULT,
        });
        entry(options, s.name, s.config_type, s.doc, layers)
    });
    Ok(log.chain(dedup).collect())
}

fn broker_configs(ctx: &Ctx, options: &Options, name: &str) -> Result<Vec<DescribeConfigsResourceResult>, Refusal> {
    if name.is_empty() {
        // Cluster-wide dynamic defaults: none exist.
        return Ok(Vec::new());
    }
    // This broker's id: 0, or on shared storage its `broker_id`.
    let broker_id = ctx.config.shared.as_ref().map_or(BROKER_ID, |s| s.broker_id());
    if name.parse::<i32>() != Ok(broker_id) {
        return Err(Refusal::new(
            ResponseError::InvalidRequest,
            format!("unexpected broker id `{name}`: expected {broker_id} or the empty string"),
        ));
    }
    let config = ctx.broker.config();
    let defaults = BrokerConfig::default();
    let kafka_defaults = KafkaConfig::new(ctx.config.advertised);
    let mut out: Vec<DescribeConfigsResourceResult> = LOG_SETTINGS
        .iter()
        .map(|s| {
            let layers = broker_layers(s.broker_name, (s.value)(&config.log), (s.value)(&defaults.log));
            entry(options, s.broker_name, s.config_type, s.doc, layers)
        })
        .collect();
    let broker_only: [(&str, i8, &'static str, String, String); 4] = [
        (
            "broker.id",
            TYPE_INT,
            "The id of this broker: the only node of its cluster, or on shared storage its `broker_id`.",
            broker_id.to_string(),
            BROKER_ID.to_string(),
        ),
        (
            "num.partitions",
            TYPE_INT,
            "Partitions of a topic created without a count.",
            config.default_partitions.to_string(),
            defaults.default_partitions.to_string(),
        ),
        (
            "auto.create.topics.enable",
            TYPE_BOOLEAN,
            "Whether Metadata and Produce for an unknown topic create it.",
            config.auto_create_topics.to_string(),
            defaults.auto_create_topics.to_string(),
        ),
        (
            "socket.request.max.bytes",
            TYPE_INT,
            "The largest request accepted.",
            ctx.config.request_bytes_max.to_string(),
            kafka_defaults.request_bytes_max.to_string(),
        ),
    ];
    out.extend(broker_only.into_iter().map(|(name, config_type, doc, value, default)| {
        entry(options, name, config_type, doc, broker_layers(name, value, default))
    }));
    out.extend(listener_configs(options, &ctx.listeners));
    Ok(out)
}

/// One setting of the broker's configuration file, without a default.
fn configured(
    options: &Options,
    name: &str,
    config_type: i8,
    doc: &'static str,
    value: String,
) -> DescribeConfigsResourceResult {
    let layer = Layer {
        name,
        value,
        source: SOURCE_STATIC_BROKER,
    };
    entry(options, name, config_type, doc, vec![layer])
}

/// `host:port`, an IPv6 host in brackets.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The listeners, as Kafka brokers tell them: where each is bound and
/// advertised, its security protocol, and the SASL mechanisms offered (all
/// listeners' together, then each SASL listener's own); each TLS listener's
/// client certificate policy. Clients of one listener, and `veltrix doctor`,
/// learn from them what the others want.
fn listener_configs(options: &Options, listeners: &[BoundListener]) -> Vec<DescribeConfigsResourceResult> {
    let joined = |f: &dyn Fn(&BoundListener) -> String| listeners.iter().map(f).collect::<Vec<_>>().join(",");
    let mut mechanisms: Vec<SaslMechanism> = Vec::new();
    for m in listeners.iter().flat_map(|l| &l.spec.sasl_mechanisms) {
        if !mechanisms.contains(m) {
            mechanisms.push(*m);
        }
    }
    let mut out = vec![
        configured(
            options,
            "listeners",
            TYPE_LIST,
            "Each Kafka listener's name and the address it is bound to.",
            joined(&|l| format!("{}://{}", l.spec.name, l.bound)),
        ),
        configured(
            options,
            "advertised.listeners",
            TYPE_LIST,
            "Each Kafka listener's name and the address its clients are told to connect to.",
            joined(&|l| {
                format!(
                    "{}://{}",
                    l.spec.name,
                    host_port(&l.spec.advertised_host, l.spec.advertised_port)
                )
            }),
        ),
        configured(
            options,
            "listener.security.protocol.map",
            TYPE_STRING,
            "Each Kafka listener's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
            joined(&|l| format!("{}:{}", l.spec.name, l.spec.protocol.name())),
        ),
        configured(
            options,
            "sasl.enabled.mechanisms",
            TYPE_LIST,
            "The SASL mechanisms some listener offers; each SASL listener's own are under listener.name.<name>.sasl.enabled.mechanisms.",
            names(&mechanisms),
        ),
    ];
    for l in listeners {
        out.extend(own_listener_configs(options, l));
    }
    out
}

/// A listener's own settings: its mechanisms (SASL listeners) and its client
/// certificate policy (TLS listeners), under Kafka's per-listener names.
fn own_listener_configs(options: &Options, l: &BoundListener) -> Vec<DescribeConfigsResourceResult> {
    let prefix = format!("listener.name.{}.", l.spec.name.to_ascii_lowercase());
    let mut out = Vec::new();
    if l.spec.protocol.sasl() {
        let name = format!("{prefix}sasl.enabled.mechanisms");
        let doc = "The SASL mechanisms this listener offers, in the order offered.";
        out.push(configured(
            options,
            &name,
            TYPE_LIST,
            doc,
            names(&l.spec.sasl_mechanisms),
        ));
    }
    if let Some(tls) = &l.spec.tls {
        let auth = match tls.files().client_auth {
            ClientAuth::None => "none",
            ClientAuth::Requested => "requested",
            ClientAuth::Required => "required",
        };
        let name = format!("{prefix}ssl.client.auth");
        let doc = "Whether this listener's clients present certificates: none, requested or required.";
        out.push(configured(options, &name, TYPE_STRING, doc, auth.to_owned()));
    }
    out
}

fn names(mechanisms: &[SaslMechanism]) -> String {
    mechanisms.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
}

/// A share group's settings: its own, over the broker's defaults.
fn group_configs(ctx: &Ctx, options: &Options, name: &str) -> Vec<DescribeConfigsResourceResult> {
    const SOURCE_GROUP: i8 = 8;
    let share = ctx.broker.share();
    let own = share.overrides(name);
    let effective = share.settings(name).entries();
    let defaults = share.config().defaults.entries();
    let built_in = veltrix_core::share::ShareGroupSettings::default().entries();
    veltrix_core::share::settings::SETTINGS
        .iter()
        .zip(effective.into_iter().zip(defaults.into_iter().zip(built_in)))
        .map(|(spec, ((key, value), ((_, default), (_, built_in))))| {
            let mut layers = Vec::new();
            if own.iter().any(|(k, _)| k == key) {
                layers.push(Layer {
                    name: key,
                    value,
                    source: SOURCE_GROUP,
                });
            }
            layers.extend(broker_layers(key, default, built_in));
            let config_type = if spec.range.is_some() {
                TYPE_INT
            } else if key.ends_with(".enable") {
                TYPE_BOOLEAN
            } else {
                TYPE_STRING
            };
            let mut e = entry(options, key, config_type, spec.doc, layers);
            e.read_only = false;
            e
        })
        .chain(std::iter::once(dead_letter_entry(ctx, options, name)))
        .collect()
}

/// KIP-1191's dead-letter topic of a share group: its own setting or none.
fn dead_letter_entry(ctx: &Ctx, options: &Options, group: &str) -> DescribeConfigsResourceResult {
    use veltrix_core::share::settings::{DEAD_LETTER_TOPIC_DOC, DEAD_LETTER_TOPIC_KEY};
    const SOURCE_GROUP: i8 = 8;
    let mut layers = Vec::new();
    if let Some(topic) = ctx.broker.share().dead_letter_topic(group) {
        layers.push(Layer {
            name: DEAD_LETTER_TOPIC_KEY,
            value: topic.to_string(),
            source: SOURCE_GROUP,
        });
    }
    layers.push(Layer {
        name: DEAD_LETTER_TOPIC_KEY,
        value: String::new(),
        source: SOURCE_DEFAULT,
    });
    let mut e = entry(
        options,
        DEAD_LETTER_TOPIC_KEY,
        TYPE_STRING,
        DEAD_LETTER_TOPIC_DOC,
        layers,
    );
    e.read_only = false;
    e
}

pub(super) fn describe_configs(ctx: &Ctx, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let options = Options {
        version: ctx.version,
        synonyms: request.include_synonyms,
        documentation: request.include_documentation,
    };
    let mut r = DescribeConfigsResponse::default();
    r.results = request
        .resources
        .iter()
        .map(|res| {
            let name = res.resource_name.as_str();
            let access =
                super::alter_configs::config_access(ctx, AclOperation::DescribeConfigs, res.resource_type, name);
            let configs = access.and_then(|()| match res.resource_type {
                RESOURCE_TOPIC => topic_configs(ctx, &options, name),
                RESOURCE_BROKER => broker_configs(ctx, &options, name),
                super::alter_configs::RESOURCE_GROUP | super::alter_configs::RESOURCE_GROUP_RDKAFKA => {
                    Ok(group_configs(ctx, &options, name))
                }
                other => Err(Refusal::new(
                    ResponseError::InvalidRequest,
                    format!("unsupported resource type {other}"),
                )),
            });
            let mut out = DescribeConfigsResult::default();
            out.resource_type = res.resource_type;
            out.resource_name = res.resource_name.clone();
            out.error_message = None;
            match configs {
                Ok(mut configs) => {
                    // No keys (null or an empty list) means every setting.
                    if let Some(keys) = res.configuration_keys.as_ref().filter(|k| !k.is_empty()) {
                        configs.retain(|c| keys.contains(&c.name));
                    }
                    out.configs = configs;
                }
                Err(Refusal { error, message }) => {
                    out.error_code = error.code();
                    out.error_message = Some(StrBytes::from_string(message));
                }
            }
            out
        })
        .collect();
    r
}
