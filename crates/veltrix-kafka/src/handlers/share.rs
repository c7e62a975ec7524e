//! Share groups (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch
//! (with piggy-backed acknowledgements and long polling) and ShareAcknowledge,
//! all at v1.
//!
//! The engine (`veltrix_core::share`) holds the state; this file turns wire
//! requests into its calls. Calls that wait for the share-state store's fsync
//! run on the blocking pool. A ShareFetch that acquires nothing waits, up to
//! its `max_wait_ms`, for a new record on one of its session's partitions or
//! for records to become available again (released, lock timed out).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::share_acknowledge_response::{
    LeaderIdAndEpoch as AckLeader, PartitionData as AckPartition, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::share::{
    AckBatch, AcquiredData, PartitionAcks, SessionRequest, SessionUse, ShareError, ShareHeartbeat,
};
use veltrix_core::{Broker, TopicId};

use super::{Ctx, name};
use crate::errors::{self, share_error};
use crate::metrics::KafkaMetrics;

/// Records one ShareFetch acquires when the client asks for no limit.
const SHARE_FETCH_RECORDS_DEFAULT: usize = 500;
/// Records one ShareFetch may acquire, whatever the client asks.
pub const SHARE_FETCH_RECORDS_MAX: usize = 10_000;

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn message(e: &ShareError) -> Option<StrBytes> {
    Some(text(&e.to_string()))
}

/// Whether `group` is a consumer group: a share group cannot take its id.
fn is_consumer_group(broker: &Broker, group: &str) -> bool {
    broker.groups().list().iter().any(|g| g.group_id == group)
}

pub(super) fn share_group_heartbeat(ctx: &Ctx, r: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse {
    let mut resp = ShareGroupHeartbeatResponse::default();
    let group = r.group_id.0.as_str();
    if is_consumer_group(&ctx.broker, group) {
        let e = ShareError::WrongGroupType(group.to_owned());
        resp.error_code = share_error(&e).code();
        resp.error_message = message(&e);
        return resp;
    }
    let hb = ShareHeartbeat {
        group: group.to_owned(),
        member_id: r.member_id.as_str().to_owned(),
        member_epoch: r.member_epoch,
        subscribed: r
            .subscribed_topic_names
            .map(|list| list.iter().map(|t| t.0.as_str().to_owned()).collect()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let broker = &ctx.broker;
    match broker.share().heartbeat(hb, &|name| broker.topic_meta(name)) {
        Ok(reply) => {
            resp.member_id = Some(text(&reply.member_id));
            resp.member_epoch = reply.member_epoch;
            resp.heartbeat_interval_ms = reply.heartbeat_interval_ms;
            resp.assignment = reply.assignment.map(|list| {
                Assignment::default().with_topic_partitions(
                    list.into_iter()
                        .map(|(id, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(Uuid::from_bytes(id))
                                .with_partitions(partitions)
                        })
                        .collect(),
                )
            });
        }
        Err(e) => {
            resp.error_code = share_error(&e).code();
            resp.error_message = message(&e);
            resp.member_epoch = -1;
        }
    }
    errors::count_error(&ctx.metrics, "ShareGroupHeartbeat", resp.error_code);
    resp
}

pub(super) fn share_group_describe(ctx: &Ctx, r: ShareGroupDescribeRequest) -> ShareGroupDescribeResponse {
    let broker = &ctx.broker;
    let groups = r
        .group_ids
        .iter()
        .map(|id| {
            let mut g = DescribedGroup::default().with_group_id(id.clone());
            g.authorized_operations = i32::MIN;
            match broker.share().describe(id.0.as_str()) {
                None => {
                    g.error_code = errors::ResponseError::GroupIdNotFound.code();
                    g.error_message = Some(text(&format!("no share group `{}`", id.0.as_str())));
                    g.group_state = text("Dead");
                }
                Some(d) => {
                    g.group_state = text(d.state);
                    g.group_epoch = d.epoch;
                    g.assignment_epoch = d.epoch;
                    g.assignor_name = text("simple");
                    g.members = d
                        .members
                        .iter()
                        .map(|m| {
                            let assignment = m
                                .assignment
                                .iter()
                                .map(|(tid, parts)| {
                                    let topic = broker.topic_by_id(tid).map(|t| t.name.clone()).unwrap_or_default();
                                    DescribedTopicPartitions::default()
                                        .with_topic_id(Uuid::from_bytes(*tid))
                                        .with_topic_name(name(&topic))
                                        .with_partitions(parts.clone())
                                })
                                .collect();
                            Member::default()
                                .with_member_id(text(&m.member_id))
                                .with_member_epoch(m.member_epoch)
                                .with_client_id(text(&m.client_id))
                                .with_client_host(text(&m.client_host))
                                .with_subscribed_topic_names(m.subscribed.iter().map(|t| name(t)).collect())
                                .with_assignment(DescribedAssignment::default().with_topic_partitions(assignment))
                        })
                        .collect();
                }
            }
            g
        })
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

/// Acknowledgements of a request's partitions, in the engine's terms.
fn acks_of<'a>(partitions: impl Iterator<Item = (Uuid, i32, &'a [AckWire])>) -> Vec<PartitionAcks> {
    partitions
        .filter(|(_, _, batches)| !batches.is_empty())
        .map(|(topic, partition, batches)| PartitionAcks {
            topic: *topic.as_bytes(),
            partition,
            batches: batches
                .iter()
                .map(|b| AckBatch {
                    first: b.first_offset,
                    last: b.last_offset,
                    types: b.acknowledge_types.clone(),
                })
                .collect(),
        })
        .collect()
}

/// ShareFetch and ShareAcknowledge carry the same acknowledgement batches,
/// under two types; this is the one fields are read from.
struct AckWire {
    first_offset: i64,
    last_offset: i64,
    acknowledge_types: Vec<i8>,
}

fn leader() -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default().with_leader_id(0).with_leader_epoch(0)
}

/// The answer of one partition, grouped by topic in the response.
#[derive(Default)]
struct PartitionAnswer {
    error: Option<ShareError>,
    ack_error: Option<ShareError>,
    data: AcquiredData,
}

fn fetch_response(
    answers: Vec<((TopicId, i32), PartitionAnswer)>,
    lock_timeout_ms: i32,
    metrics: &KafkaMetrics,
) -> ShareFetchResponse {
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for ((topic, partition), a) in answers {
        let mut d = PartitionData::default()
            .with_partition_index(partition)
            .with_current_leader(leader());
        if let Some(e) = &a.error {
            d.error_code = share_error(e).code();
            d.error_message = message(e);
        }
        if let Some(e) = &a.ack_error {
            d.acknowledge_error_code = share_error(e).code();
            d.acknowledge_error_message = message(e);
        }
        errors::count_error(metrics, "ShareFetch", d.error_code);
        errors::count_error(metrics, "ShareFetch", d.acknowledge_error_code);
        d.acquired_records = a
            .data
            .acquired
            .iter()
            .map(|r| {
                AcquiredRecords::default()
                    .with_first_offset(r.first)
                    .with_last_offset(r.last)
                    .with_delivery_count(i16::try_from(r.deliveries).unwrap_or(i16::MAX))
            })
            .collect();
        d.records = Some(a.data.records);
        let id = Uuid::from_bytes(topic);
        match topics.iter_mut().find(|t| t.topic_id == id) {
            Some(t) => t.partitions.push(d),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![d]),
            ),
        }
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout_ms)
        .with_responses(topics)
}

fn fetch_error(e: &ShareError) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(share_error(e).code())
        .with_error_message(message(e))
}

pub(super) async fn share_fetch(ctx: Ctx, r: ShareFetchRequest) -> ShareFetchResponse {
    let group = r.group_id.as_ref().map(|g| g.0.as_str().to_owned()).unwrap_or_default();
    let member = r.member_id.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let mut add = Vec::new();
    let mut wire_acks: Vec<(Uuid, i32, Vec<AckWire>)> = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            add.push((*t.topic_id.as_bytes(), p.partition_index));
            let batches: Vec<AckWire> = p
                .acknowledgement_batches
                .iter()
                .map(|b| AckWire {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    acknowledge_types: b.acknowledge_types.clone(),
                })
                .collect();
            wire_acks.push((t.topic_id, p.partition_index, batches));
        }
    }
    let acks = acks_of(wire_acks.iter().map(|(t, p, b)| (*t, *p, b.as_slice())));
    let forget: Vec<(TopicId, i32)> = r
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (*t.topic_id.as_bytes(), *p)))
        .collect();
    let session = SessionRequest {
        group: group.clone(),
        member: member.clone(),
        epoch: r.share_session_epoch,
        add,
        forget,
        has_acks: !acks.is_empty(),
        connection: ctx.connection,
    };
    let lock_timeout_ms =
        i32::try_from(ctx.broker.share().settings(&group).record_lock_duration_ms).unwrap_or(i32::MAX);
    // The session and the acknowledgements, durably.
    let broker = ctx.broker.clone();
    let (g, m) = (group.clone(), member.clone());
    let begun = tokio::task::spawn_blocking(move || {
        let share = broker.share();
        let partitions = share.begin_session(&session, SessionUse::Fetch)?;
        let results = share.acknowledge(&g, &m, &acks);
        if session.epoch == -1 {
            share.close_session(&g, &m);
        }
        Ok::<_, ShareError>((partitions, acks, results))
    })
    .await;
    let (partitions, acks, results) = match begun {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return fetch_error(&e),
        Err(_) => return fetch_error(&ShareError::Storage("the share fetch task failed".into())),
    };
    let mut answers: Vec<((TopicId, i32), PartitionAnswer)> = acks
        .iter()
        .zip(results)
        .map(|(a, res)| {
            (
                (a.topic, a.partition),
                PartitionAnswer {
                    ack_error: res.err(),
                    ..PartitionAnswer::default()
                },
            )
        })
        .collect();
    if r.share_session_epoch == -1 {
        return fetch_response(answers, lock_timeout_ms, &ctx.metrics);
    }
    let records_max = match r.max_records {
        n if n <= 0 => SHARE_FETCH_RECORDS_DEFAULT,
        n => (n as usize).min(SHARE_FETCH_RECORDS_MAX),
    };
    let bytes_max = (r.max_bytes.max(0) as usize).min(ctx.config.fetch_bytes_max).max(1);
    let wait_ms = (r.max_wait_ms.max(0) as u64).min(ctx.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let partitions = Arc::new(partitions);
    loop {
        // Subscribed before acquiring, so a record that lands in between wakes us.
        let mut watches = vec![ctx.broker.share().watch_available()];
        for (topic, p) in partitions.iter() {
            if let Some(t) = ctx.broker.topic_by_id(topic)
                && let Some(part) = t.partitions.get(*p as usize)
            {
                watches.push(part.watch_high_watermark());
            }
        }
        let mut reservation = ctx.responses.reserve(bytes_max, &ctx.metrics).await;
        let reserved = reservation.bytes();
        let broker = ctx.broker.clone();
        let (g, m, parts) = (group.clone(), member.clone(), partitions.clone());
        let acquired = tokio::task::spawn_blocking(move || acquire_all(&broker, &g, &m, &parts, records_max, reserved))
            .await
            .unwrap_or_default();
        let total: usize = acquired.iter().map(|(_, a)| a.data.records.len()).sum();
        let any = acquired
            .iter()
            .any(|(_, a)| !a.data.acquired.is_empty() || a.error.is_some());
        if total > reservation.bytes() {
            let more = total - reservation.bytes();
            ctx.responses.grow(&mut reservation, more).await;
        }
        reservation.shrink_to(total);
        let now = tokio::time::Instant::now();
        let done = any || now >= deadline || partitions.is_empty();
        let woken = !done && {
            let changed = super::fetch::futures_any(&mut watches);
            let mut shutdown = ctx.shutdown.clone();
            let stopping = async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            };
            tokio::select! {
                woken = tokio::time::timeout_at(deadline, changed) => woken.is_ok(),
                () = stopping => false,
            }
        };
        if !woken {
            ctx.held.put(reservation);
            for (key, a) in acquired {
                match answers.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, existing)) => {
                        existing.data = a.data;
                        existing.error = a.error;
                    }
                    None if !a.data.acquired.is_empty() || a.error.is_some() => answers.push((key, a)),
                    None => {}
                }
            }
            count_share_fetched(&ctx, &answers);
            return fetch_response(answers, lock_timeout_ms, &ctx.metrics);
        }
        drop(reservation);
    }
}

/// Acquires from each of the session's partitions in turn, within the
/// records and bytes left.
fn acquire_all(
    broker: &Broker,
    group: &str,
    member: &str,
    partitions: &[(TopicId, i32)],
    records_max: usize,
    bytes_max: usize,
) -> Vec<((TopicId, i32), PartitionAnswer)> {
    let mut records_left = records_max;
    let mut bytes_left = bytes_max;
    let mut out = Vec::new();
    // Start at a different partition each time, so that a busy one does not
    // starve the others of the request's limits.
    let n = partitions.len();
    let first = if n == 0 {
        0
    } else {
        (broker.env().clock.now_ms().unsigned_abs() as usize) % n
    };
    for i in 0..n {
        let (topic, p) = partitions[(first + i) % n];
        if records_left == 0 || bytes_left == 0 {
            break;
        }
        let Some(t) = broker.topic_by_id(&topic) else {
            out.push((
                (topic, p),
                PartitionAnswer {
                    error: Some(ShareError::UnknownTopicOrPartition),
                    ..PartitionAnswer::default()
                },
            ));
            continue;
        };
        let Some(part) = t.partitions.get(usize::try_from(p).unwrap_or(usize::MAX)) else {
            out.push((
                (topic, p),
                PartitionAnswer {
                    error: Some(ShareError::UnknownTopicOrPartition),
                    ..PartitionAnswer::default()
                },
            ));
            continue;
        };
        match broker
            .share()
            .acquire(group, member, topic, p, part.log(), records_left, bytes_left)
        {
            Ok(data) => {
                let taken: i64 = data.acquired.iter().map(|a| a.last - a.first + 1).sum();
                records_left = records_left.saturating_sub(taken as usize);
                bytes_left = bytes_left.saturating_sub(data.records.len());
                out.push((
                    (topic, p),
                    PartitionAnswer {
                        data,
                        ..PartitionAnswer::default()
                    },
                ));
            }
            Err(e) => out.push((
                (topic, p),
                PartitionAnswer {
                    error: Some(e),
                    ..PartitionAnswer::default()
                },
            )),
        }
    }
    out
}

/// Adds what a share fetch hands out to the per-topic fetch counters.
fn count_share_fetched(ctx: &Ctx, answers: &[((TopicId, i32), PartitionAnswer)]) {
    let metrics = &ctx.metrics;
    if !metrics.enabled() {
        return;
    }
    for ((topic, _), a) in answers {
        let bytes = a.data.records.len() as u64;
        if bytes == 0 {
            continue;
        }
        if let Some(t) = ctx.broker.topic_by_id(topic) {
            let records: i64 = a.data.acquired.iter().map(|r| r.last - r.first + 1).sum();
            let name = [t.name.as_str()];
            metrics.fetch_bytes.with_label_values(&name).inc_by(bytes);
            metrics
                .fetch_records
                .with_label_values(&name)
                .inc_by(u64::try_from(records).unwrap_or(0));
        }
    }
}

pub(super) async fn share_acknowledge(ctx: Ctx, r: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse {
    let group = r.group_id.as_ref().map(|g| g.0.as_str().to_owned()).unwrap_or_default();
    let member = r.member_id.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default();
    let mut wire_acks: Vec<(Uuid, i32, Vec<AckWire>)> = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            let batches = p
                .acknowledgement_batches
                .iter()
                .map(|b| AckWire {
                    first_offset: b.first_offset,
                    last_offset: b.last_offset,
                    acknowledge_types: b.acknowledge_types.clone(),
                })
                .collect();
            wire_acks.push((t.topic_id, p.partition_index, batches));
        }
    }
    let acks = acks_of(wire_acks.iter().map(|(t, p, b)| (*t, *p, b.as_slice())));
    let session = SessionRequest {
        group: group.clone(),
        member: member.clone(),
        epoch: r.share_session_epoch,
        add: acks.iter().map(|a| (a.topic, a.partition)).collect(),
        forget: Vec::new(),
        has_acks: !acks.is_empty(),
        connection: ctx.connection,
    };
    let broker = ctx.broker.clone();
    let done = tokio::task::spawn_blocking(move || {
        let share = broker.share();
        share.begin_session(&session, SessionUse::Acknowledge)?;
        let results = share.acknowledge(&group, &member, &acks);
        if session.epoch == -1 {
            share.close_session(&group, &member);
        }
        Ok::<_, ShareError>((acks, results))
    })
    .await;
    let (acks, results) = match done {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            return ShareAcknowledgeResponse::default()
                .with_error_code(share_error(&e).code())
                .with_error_message(message(&e));
        }
        Err(_) => {
            let e = ShareError::Storage("the share acknowledge task failed".into());
            return ShareAcknowledgeResponse::default()
                .with_error_code(share_error(&e).code())
                .with_error_message(message(&e));
        }
    };
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for (a, res) in acks.iter().zip(results) {
        let mut d = AckPartition::default()
            .with_partition_index(a.partition)
            .with_current_leader(AckLeader::default().with_leader_id(0).with_leader_epoch(0));
        if let Err(e) = res {
            d.error_code = share_error(&e).code();
            d.error_message = message(&e);
        }
        errors::count_error(&ctx.metrics, "ShareAcknowledge", d.error_code);
        let id = Uuid::from_bytes(a.topic);
        match topics.iter_mut().find(|t| t.topic_id == id) {
            Some(t) => t.partitions.push(d),
            None => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![d]),
            ),
        }
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}
