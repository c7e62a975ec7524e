//! One handler per API: turn a decoded request into engine calls and a response.
//!
//! Engine calls that block (appends waiting for fsync, reads from disk) run on
//! tokio's blocking pool, so a slow disk never stalls the connections' tasks.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::{Broker, CoreError, Partition, Topic, TopicConfig};
use veltrix_log::batch;

use crate::errors::{self, code};
use crate::server::KafkaConfig;

/// What every handler gets.
pub(crate) struct Ctx {
    pub broker: Arc<Broker>,
    pub config: Arc<KafkaConfig>,
    pub version: i16,
}

/// The versions served, per API: exactly what is implemented.
pub(crate) fn supported(api: ApiKey) -> Option<(i16, i16)> {
    match api {
        ApiKey::ApiVersions => Some((0, 3)),
        ApiKey::Metadata => Some((0, 12)),
        ApiKey::Produce => Some((3, 11)),
        ApiKey::Fetch => Some((4, 12)),
        ApiKey::ListOffsets => Some((1, 7)),
        ApiKey::CreateTopics => Some((2, 7)),
        _ => None,
    }
}

const SERVED: [ApiKey; 6] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
];

pub(crate) async fn handle(ctx: Ctx, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(errors::NONE)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata(&ctx, r)),
        RequestKind::Produce(r) => return produce(ctx, r).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets(ctx, r).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics(&ctx, r)),
        _ => return None,
    })
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = SERVED
        .iter()
        .filter_map(|api| {
            let (lo, hi) = supported(*api)?;
            Some(
                ApiVersion::default()
                    .with_api_key(*api as i16)
                    .with_min_version(lo)
                    .with_max_version(hi),
            )
        })
        .collect();
    r
}

pub(crate) fn api_versions_unsupported() -> ResponseKind {
    ResponseKind::ApiVersions(api_versions(errors::UNSUPPORTED_VERSION))
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn metadata_topic(topic: &Topic) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.name = Some(name(&topic.name));
    t.topic_id = Uuid::from_bytes(topic.id);
    t.partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let mut m = MetadataResponsePartition::default();
            m.partition_index = p.index;
            m.leader_id = BrokerId(0);
            m.leader_epoch = veltrix_log::LEADER_EPOCH;
            m.replica_nodes = vec![BrokerId(0)];
            m.isr_nodes = vec![BrokerId(0)];
            m
        })
        .collect();
    t
}

fn metadata(ctx: &Ctx, request: MetadataRequest) -> MetadataResponse {
    let mut r = MetadataResponse::default();
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = BrokerId(0);
    broker.host = StrBytes::from_string(ctx.config.advertised.ip().to_string());
    broker.port = i32::from(ctx.config.advertised.port());
    r.brokers = vec![broker];
    r.cluster_id = Some(StrBytes::from_static_str("veltrix"));
    r.controller_id = BrokerId(0);
    r.topics = match request.topics {
        None => ctx.broker.topics().iter().map(|t| metadata_topic(t)).collect(),
        Some(wanted) => wanted
            .iter()
            .map(|w| {
                let n = w.name.as_ref().map(|n| n.0.as_str().to_owned()).unwrap_or_default();
                let auto = ctx.broker.config().auto_create_topics && request.allow_auto_topic_creation;
                let found = match ctx.broker.topic(&n) {
                    Some(t) => Ok(t),
                    None if auto => ctx.broker.create_topic(&n, None, TopicConfig::default()),
                    None => Err(CoreError::UnknownTopic(n.clone())),
                };
                match found {
                    Ok(t) => metadata_topic(&t),
                    Err(e) => {
                        let mut t = MetadataResponseTopic::default();
                        t.name = Some(name(&n));
                        t.error_code = code(&e);
                        t
                    }
                }
            })
            .collect(),
    };
    r
}

/// Appends every batch of one partition's records; returns the first base offset
/// and the offset after the last batch.
fn append_all(partition: &Partition, records: &Bytes) -> Result<(i64, i64), i16> {
    let mut rest = &records[..];
    let mut first = None;
    let mut next = 0;
    while !rest.is_empty() {
        let size = batch::peek_size(rest)
            .filter(|s| *s <= rest.len())
            .ok_or(errors::CORRUPT_MESSAGE)?;
        let mut one = BytesMut::from(&rest[..size]);
        let appended = partition.append(&mut one).map_err(|e| code(&e))?;
        first.get_or_insert(appended.base_offset);
        next = appended.next_offset;
        rest = &rest[size..];
    }
    first.map(|f| (f, next)).ok_or(errors::CORRUPT_MESSAGE)
}

async fn produce(ctx: Ctx, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let broker = ctx.broker.clone();
    let responses = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut to_commit: Vec<(Arc<Partition>, i64)> = Vec::new();
        for topic in &request.topic_data {
            let topic_name = topic.name.0.as_str();
            let mut t = TopicProduceResponse::default();
            t.name = topic.name.clone();
            for pd in &topic.partition_data {
                let mut p = PartitionProduceResponse::default();
                p.index = pd.index;
                p.base_offset = -1;
                p.log_append_time_ms = -1;
                let result = if !matches!(acks, -1..=1) {
                    Err(errors::INVALID_REQUIRED_ACKS)
                } else {
                    broker
                        .partition(topic_name, pd.index)
                        .map_err(|e| code(&e))
                        .and_then(|partition| {
                            let records = pd.records.clone().unwrap_or_default();
                            let (base, next) = append_all(&partition, &records)?;
                            p.log_start_offset = partition.log().log_start();
                            to_commit.push((partition, next));
                            Ok(base)
                        })
                };
                match result {
                    Ok(base) => p.base_offset = base,
                    Err(error_code) => p.error_code = error_code,
                }
                t.partition_responses.push(p);
            }
            out.push(t);
        }
        // acks=all: answer only once every batch is durable. acks=0/1: answer
        // now; the commit still runs so that the high watermark moves.
        let commit = move || -> Vec<(i32, i16)> {
            let mut failures = Vec::new();
            for (partition, next) in to_commit {
                if let Err(e) = partition.commit(next) {
                    failures.push((partition.index, code(&e)));
                }
            }
            failures
        };
        if acks == -1 {
            let failures = commit();
            for t in &mut out {
                for p in &mut t.partition_responses {
                    if let Some((_, c)) = failures.iter().find(|(i, _)| *i == p.index) {
                        p.error_code = *c;
                        p.base_offset = -1;
                    }
                }
            }
        } else {
            std::thread::spawn(commit);
        }
        out
    })
    .await
    .ok()?;
    if acks == 0 {
        return None;
    }
    let mut r = ProduceResponse::default();
    r.responses = responses;
    Some(r)
}

fn fetch_partition(broker: &Broker, topic: &str, p: i32, offset: i64, bytes_max: usize) -> PartitionData {
    let mut d = PartitionData::default();
    d.partition_index = p;
    d.high_watermark = -1;
    d.last_stable_offset = -1;
    d.log_start_offset = -1;
    d.preferred_read_replica = BrokerId(-1);
    match broker.partition(topic, p) {
        Err(e) => d.error_code = code(&e),
        Ok(partition) => {
            let log = partition.log();
            d.high_watermark = log.high_watermark();
            d.last_stable_offset = d.high_watermark;
            d.log_start_offset = log.log_start();
            match log.read(offset, bytes_max) {
                Ok(r) => {
                    d.high_watermark = r.high_watermark;
                    d.last_stable_offset = r.high_watermark;
                    d.log_start_offset = r.log_start;
                    d.records = Some(r.records);
                }
                Err(e) => d.error_code = errors::log_code(&e),
            }
        }
    }
    d
}

async fn fetch(ctx: Ctx, request: FetchRequest) -> FetchResponse {
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(ctx.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(0) as usize;
    let request = Arc::new(request);
    loop {
        // Subscribe before reading, so a record that lands in between wakes us.
        let mut watches = Vec::new();
        for t in &request.topics {
            for p in &t.partitions {
                if let Ok(partition) = ctx.broker.partition(t.topic.0.as_str(), p.partition) {
                    watches.push(partition.watch_high_watermark());
                }
            }
        }
        let broker = ctx.broker.clone();
        let req = request.clone();
        let (responses, total) = tokio::task::spawn_blocking(move || {
            let mut budget = req.max_bytes.max(0) as usize;
            let mut total = 0;
            let responses: Vec<FetchableTopicResponse> = req
                .topics
                .iter()
                .map(|t| {
                    let mut ft = FetchableTopicResponse::default();
                    ft.topic = t.topic.clone();
                    ft.topic_id = t.topic_id;
                    ft.partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let limit = (p.partition_max_bytes.max(0) as usize).min(budget.max(1));
                            let d = fetch_partition(&broker, t.topic.0.as_str(), p.partition, p.fetch_offset, limit);
                            let n = d.records.as_ref().map_or(0, |r| r.len());
                            budget = budget.saturating_sub(n);
                            total += n;
                            d
                        })
                        .collect();
                    ft
                })
                .collect();
            (responses, total)
        })
        .await
        .unwrap_or_default();
        let now = tokio::time::Instant::now();
        if total >= min_bytes.max(1) || now >= deadline || watches.is_empty() {
            let mut r = FetchResponse::default();
            r.responses = responses;
            return r;
        }
        let changed = futures_any(&mut watches);
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let mut r = FetchResponse::default();
            r.responses = responses;
            return r;
        }
    }
}

/// Resolves when any of the high watermarks moves.
async fn futures_any(watches: &mut [tokio::sync::watch::Receiver<i64>]) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let mut tasks = Vec::new();
    for w in watches.iter() {
        let mut w = w.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            if w.changed().await.is_ok() {
                let _ = tx.try_send(());
            }
        }));
    }
    drop(tx);
    let _ = rx.recv().await;
    for t in tasks {
        t.abort();
    }
}

async fn list_offsets(ctx: Ctx, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = ctx.broker.clone();
    // Only v4 and later carry the leader epoch; the codec refuses it before.
    let with_epoch = ctx.version >= 4;
    let topics = tokio::task::spawn_blocking(move || {
        request
            .topics
            .iter()
            .map(|t| {
                let mut rt = ListOffsetsTopicResponse::default();
                rt.name = t.name.clone();
                rt.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut rp = ListOffsetsPartitionResponse::default();
                        rp.partition_index = p.partition_index;
                        rp.timestamp = -1;
                        rp.offset = -1;
                        let answer = broker
                            .partition(t.name.0.as_str(), p.partition_index)
                            .map_err(|e| code(&e));
                        let answer = answer.and_then(|partition| {
                            let log = partition.log();
                            match p.timestamp {
                                -1 => Ok((-1, log.high_watermark())),
                                -2 => Ok((-1, log.log_start())),
                                ts if ts >= 0 => log
                                    .offset_for_timestamp(ts)
                                    .map(|hit| hit.map_or((-1, -1), |h| (h.max_timestamp, h.offset)))
                                    .map_err(|e| errors::log_code(&e)),
                                _ => Err(errors::INVALID_REQUEST),
                            }
                        });
                        match answer {
                            Ok((timestamp, offset)) => {
                                rp.timestamp = timestamp;
                                rp.offset = offset;
                                if with_epoch {
                                    rp.leader_epoch = veltrix_log::LEADER_EPOCH;
                                }
                            }
                            Err(c) => rp.error_code = c,
                        }
                        rp
                    })
                    .collect();
                rt
            })
            .collect()
    })
    .await
    .unwrap_or_default();
    let mut r = ListOffsetsResponse::default();
    r.topics = topics;
    r
}

/// Maps Kafka topic config names to the engine's settings.
fn topic_config(configs: &[(String, Option<String>)]) -> Result<TopicConfig, String> {
    let mut c = TopicConfig::default();
    for (key, value) in configs {
        let value = value.as_deref().ok_or_else(|| format!("`{key}` has no value"))?;
        let num = || {
            value
                .parse::<i64>()
                .map_err(|_| format!("`{key}` = `{value}` is not a number"))
        };
        let non_negative = |n: i64| u64::try_from(n).ok();
        match key.as_str() {
            "retention.ms" => c.retention_ms = non_negative(num()?),
            "retention.bytes" => c.retention_bytes = non_negative(num()?),
            "segment.bytes" => c.segment_bytes_max = Some(non_negative(num()?).ok_or("segment.bytes < 0")?),
            "segment.ms" => c.segment_age_ms_max = Some(non_negative(num()?).ok_or("segment.ms < 0")?),
            "max.message.bytes" => {
                c.batch_bytes_max = Some(u32::try_from(num()?).map_err(|_| "max.message.bytes out of range")?)
            }
            "flush.ms" => c.flush_interval_ms = Some(non_negative(num()?).ok_or("flush.ms < 0")?),
            other => return Err(format!("unknown or unsupported topic config `{other}`")),
        }
    }
    Ok(c)
}

fn create_topics(ctx: &Ctx, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut r = CreateTopicsResponse::default();
    r.topics = request
        .topics
        .iter()
        .map(|t| {
            let mut res = CreatableTopicResult::default();
            res.name = t.name.clone();
            res.num_partitions = -1;
            res.replication_factor = -1;
            let n = t.name.0.as_str();
            let configs: Vec<(String, Option<String>)> = t
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str().to_owned(),
                        c.value.as_ref().map(|v| v.as_str().to_owned()),
                    )
                })
                .collect();
            let outcome = if !matches!(t.replication_factor, -1 | 1) {
                Err((
                    errors::INVALID_REPLICATION_FACTOR,
                    "a single broker keeps one replica".to_owned(),
                ))
            } else if !t.assignments.is_empty() {
                Err((
                    errors::INVALID_REQUEST,
                    "manual replica assignment is not supported".to_owned(),
                ))
            } else {
                let partitions = (t.num_partitions != -1).then(|| t.num_partitions.max(0) as u32);
                let partitions = if t.num_partitions < -1 || t.num_partitions == 0 {
                    Some(0)
                } else {
                    partitions
                };
                topic_config(&configs)
                    .map_err(|m| (errors::INVALID_CONFIG, m))
                    .and_then(|config| {
                        if request.validate_only {
                            return Ok(None);
                        }
                        ctx.broker
                            .create_topic(n, partitions, config)
                            .map(Some)
                            .map_err(|e| (code(&e), e.to_string()))
                    })
            };
            match outcome {
                Ok(Some(topic)) => {
                    res.topic_id = Uuid::from_bytes(topic.id);
                    res.num_partitions = topic.partitions.len() as i32;
                    res.replication_factor = 1;
                }
                Ok(None) => {}
                Err((c, message)) => {
                    res.error_code = c;
                    res.error_message = Some(StrBytes::from_string(message));
                }
            }
            res
        })
        .collect();
    r
}
