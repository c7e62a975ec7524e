//! Share groups (KIP-932): ShareGroupHeartbeat, ShareGroupDescribe, ShareFetch
//! (with piggy-backed acknowledgements and long polling) and ShareAcknowledge,
//! all at v1.
//!
//! The engine (`veltrix_core::share`) holds the state; this file turns wire
//! requests into its calls. Calls that wait for the share-state store's fsync
//! run on the blocking pool. A ShareFetch that acquires nothing waits, up to
//! its `max_wait_ms`, for a new record on one of its session's partitions or
//! for records to become available again (released, lock timed out).
//!
//! Authorization is Kafka's: a heartbeat needs READ on the group and
//! DESCRIBE on the topics it subscribes to; a description DESCRIBE on the
//! group (a group whose assignments name a topic the principal may not
//! DESCRIBE is answered TOPIC_AUTHORIZATION_FAILED without its members);
//! ShareFetch and ShareAcknowledge READ on the group (for the request) and
//! on each topic (TOPIC_AUTHORIZATION_FAILED for its partitions, whose
//! acknowledgements are not applied and records not acquired).

use std::collections::HashMap;
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
    GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;
use veltrix_core::acl::{AclOperation, ResourceType};
use veltrix_core::share::{
    AckBatch, AcquiredData, PartitionAcks, SessionRequest, SessionUse, ShareError, ShareHeartbeat,
};
use veltrix_core::{Broker, TopicId};

use super::authz::{GROUP_DENIED, Names, TOPIC_DENIED, Who};
use super::{Ctx, name, operations, share_shared};
use crate::errors::{self, ResponseError, share_error};
use crate::shared::SharedStorage;

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
pub(super) fn is_consumer_group(broker: &Broker, group: &str) -> bool {
    broker.groups().list().iter().any(|g| g.group_id == group)
}

/// Why a share group heartbeat is refused for want of an ACL, if it is:
/// READ on the group, DESCRIBE on every topic subscribed to.
fn heartbeat_refused(ctx: &Ctx, r: &ShareGroupHeartbeatRequest) -> Option<(ResponseError, &'static str)> {
    let who = ctx.who();
    if !who.allowed(AclOperation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return Some((ResponseError::GroupAuthorizationFailed, GROUP_DENIED));
    }
    let subscribed = || r.subscribed_topic_names.iter().flatten().map(|t| t.0.as_str());
    match who.names(AclOperation::Describe, ResourceType::Topic, subscribed()) {
        Names::Only(allowed) if subscribed().any(|t| !allowed.contains(t)) => {
            Some((ResponseError::TopicAuthorizationFailed, TOPIC_DENIED))
        }
        _ => None,
    }
}

pub(super) fn share_group_heartbeat(ctx: &Ctx, r: ShareGroupHeartbeatRequest) -> ShareGroupHeartbeatResponse {
    let mut resp = ShareGroupHeartbeatResponse::default();
    if let Some((error, refusal)) = heartbeat_refused(ctx, &r) {
        resp.error_code = error.code();
        resp.error_message = Some(text(refusal));
        resp.member_epoch = -1;
        errors::count_error(&ctx.metrics, "ShareGroupHeartbeat", resp.error_code);
        return resp;
    }
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
    let groups = r
        .group_ids
        .iter()
        .map(|id| describe_share_group(ctx, id, r.include_authorized_operations))
        .collect();
    ShareGroupDescribeResponse::default().with_groups(groups)
}

fn describe_share_group(ctx: &Ctx, id: &GroupId, include_authorized_operations: bool) -> DescribedGroup {
    let broker = &ctx.broker;
    let mut g = DescribedGroup::default().with_group_id(id.clone());
    g.authorized_operations = operations::NOT_ASKED;
    if !ctx
        .who()
        .allowed(AclOperation::Describe, ResourceType::Group, id.0.as_str())
    {
        g.error_code = ResponseError::GroupAuthorizationFailed.code();
        g.error_message = Some(text(GROUP_DENIED));
        return g;
    }
    if share_shared::coordinated_elsewhere(ctx, id.0.as_str()) {
        g.error_code = ResponseError::NotCoordinator.code();
        g.error_message = Some(text("this broker does not coordinate the group"));
        return g;
    }
    let Some(d) = broker.share().describe(id.0.as_str()) else {
        g.error_code = errors::ResponseError::GroupIdNotFound.code();
        g.error_message = Some(text(&format!("no share group `{}`", id.0.as_str())));
        g.group_state = text("Dead");
        return g;
    };
    g.authorized_operations =
        operations::answered(ctx, include_authorized_operations, ResourceType::Group, id.0.as_str());
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
    hide_undescribable_topics(ctx.who(), g)
}

/// A group whose members' assignments name a topic the principal may not
/// DESCRIBE, answered as Kafka does: without its members,
/// TOPIC_AUTHORIZATION_FAILED.
fn hide_undescribable_topics(who: Who<'_>, g: DescribedGroup) -> DescribedGroup {
    let topics = || {
        g.members
            .iter()
            .flat_map(|m| &m.assignment.topic_partitions)
            .map(|tp| tp.topic_name.0.as_str())
            .filter(|n| !n.is_empty())
    };
    let describable = who.names(AclOperation::Describe, ResourceType::Topic, topics());
    if topics().all(|t| describable.contains(t)) {
        return g;
    }
    DescribedGroup::default()
        .with_group_id(g.group_id)
        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
        .with_error_message(Some(text(
            "The group has described topic(s) that the client is not authorized to describe.",
        )))
        .with_authorized_operations(operations::NOT_ASKED)
}

/// A request's acknowledgements, in the engine's terms: ShareFetch and
/// ShareAcknowledge carry the same batches under two generated types, so one
/// macro reads both. Partitions without a batch are left out.
macro_rules! acknowledgements {
    ($request:expr) => {
        $request
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| PartitionAcks {
                    topic: *t.topic_id.as_bytes(),
                    partition: p.partition_index,
                    batches: p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| AckBatch {
                            first: b.first_offset,
                            last: b.last_offset,
                            types: b.acknowledge_types.clone(),
                        })
                        .collect(),
                })
            })
            .filter(|a| !a.batches.is_empty())
            .collect::<Vec<PartitionAcks>>()
    };
}

/// One topic's partitions of a response, in the order they first appear.
struct TopicParts<P> {
    id: Uuid,
    partitions: Vec<P>,
}

/// Partitions' answers grouped by topic, keeping their order.
fn by_topic<P>(answers: impl IntoIterator<Item = (TopicId, P)>) -> Vec<TopicParts<P>> {
    let mut topics: Vec<TopicParts<P>> = Vec::new();
    for (topic, answer) in answers {
        let id = Uuid::from_bytes(topic);
        match topics.iter_mut().find(|t| t.id == id) {
            Some(t) => t.partitions.push(answer),
            None => topics.push(TopicParts {
                id,
                partitions: vec![answer],
            }),
        }
    }
    topics
}

fn leader(id: i32) -> LeaderIdAndEpoch {
    LeaderIdAndEpoch::default().with_leader_id(id).with_leader_epoch(0)
}

/// The answer of one partition, grouped by topic in the response.
#[derive(Default)]
struct PartitionAnswer {
    error: Option<ShareError>,
    ack_error: Option<ShareError>,
    /// The principal may not read the topic: nothing acquired.
    denied: bool,
    /// The principal may not read the topic: the acknowledgements were not
    /// applied.
    ack_denied: bool,
    data: AcquiredData,
}

impl PartitionAnswer {
    fn failed(e: ShareError) -> PartitionAnswer {
        PartitionAnswer {
            error: Some(e),
            ..PartitionAnswer::default()
        }
    }

    /// Whether the partition is worth answering now: something acquired, or
    /// an error to report.
    fn has_news(&self) -> bool {
        !self.data.acquired.is_empty() || self.error.is_some() || self.denied
    }
}

fn fetch_response(
    ctx: &Ctx,
    answers: Vec<((TopicId, i32), PartitionAnswer)>,
    lock_timeout_ms: i32,
) -> ShareFetchResponse {
    let metrics = &ctx.metrics;
    let partitions = answers.into_iter().map(|((topic, partition), a)| {
        let mut d = PartitionData::default()
            .with_partition_index(partition)
            .with_current_leader(leader(share_shared::leader_id(ctx, &topic, partition)));
        if let Some(e) = &a.error {
            d.error_code = share_error(e).code();
            d.error_message = message(e);
        }
        if let Some(e) = &a.ack_error {
            d.acknowledge_error_code = share_error(e).code();
            d.acknowledge_error_message = message(e);
        }
        if a.denied {
            d.error_code = ResponseError::TopicAuthorizationFailed.code();
            d.error_message = Some(text(TOPIC_DENIED));
        }
        if a.ack_denied {
            d.acknowledge_error_code = ResponseError::TopicAuthorizationFailed.code();
            d.acknowledge_error_message = Some(text(TOPIC_DENIED));
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
        (topic, d)
    });
    let topics = by_topic(partitions)
        .into_iter()
        .map(|t| {
            ShareFetchableTopicResponse::default()
                .with_topic_id(t.id)
                .with_partitions(t.partitions)
        })
        .collect();
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(lock_timeout_ms)
        .with_responses(topics)
}

fn fetch_error(e: &ShareError) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(share_error(e).code())
        .with_error_message(message(e))
}

/// What opening (or continuing) a session and applying its
/// acknowledgements gave: the session's partitions, and each partition's
/// acknowledgement result.
struct Begun {
    partitions: Vec<(TopicId, i32)>,
    acks: Vec<PartitionAcks>,
    results: Vec<Result<(), ShareError>>,
}

/// Opens or continues the member's session and applies its
/// acknowledgements, on the blocking pool (both wait for the share-state
/// store's fsync); a request with epoch -1 closes the session after.
async fn begin(
    ctx: &Ctx,
    session: SessionRequest,
    using: SessionUse,
    acks: Vec<PartitionAcks>,
) -> Result<Begun, ShareError> {
    let broker = ctx.broker.clone();
    // On shared storage, partitions another broker leads are not applied here.
    let (acks, elsewhere) = share_shared::served_acks(ctx, acks);
    let begun = tokio::task::spawn_blocking(move || {
        let share = broker.share();
        let partitions = share.begin_session(&session, using)?;
        let mut results = share.acknowledge(&session.group, &session.member, &acks);
        let mut acks = acks;
        for (a, e) in elsewhere {
            acks.push(a);
            results.push(Err(e));
        }
        if session.epoch == -1 {
            share.close_session(&session.group, &session.member);
        }
        Ok(Begun {
            partitions,
            acks,
            results,
        })
    })
    .await;
    begun.unwrap_or_else(|_| Err(ShareError::Storage("the share session task failed".into())))
}

/// Which topics, by id, the principal may READ: each asked once (and a
/// denial audited once) per request. A topic id no topic has is left to
/// the engine, which answers it.
struct ReadableTopics<'a> {
    ctx: &'a Ctx,
    /// Authorization is off, or a super user asks.
    all: bool,
    known: HashMap<TopicId, bool>,
}

impl<'a> ReadableTopics<'a> {
    fn new(ctx: &'a Ctx) -> ReadableTopics<'a> {
        ReadableTopics {
            ctx,
            all: ctx.who().unchecked(),
            known: HashMap::new(),
        }
    }

    fn may_read(&mut self, topic: &TopicId) -> bool {
        if self.all {
            return true;
        }
        let ctx = self.ctx;
        *self.known.entry(*topic).or_insert_with(|| {
            ctx.broker
                .topic_by_id(topic)
                .is_none_or(|t| ctx.who().allowed(AclOperation::Read, ResourceType::Topic, &t.name))
        })
    }
}

/// A ShareFetch or ShareAcknowledge refused whole: the group may not be read.
fn group_denied() -> (i16, Option<StrBytes>) {
    (ResponseError::GroupAuthorizationFailed.code(), Some(text(GROUP_DENIED)))
}

/// The answers of a request's acknowledgements: those applied, with their
/// results, then those of topics the principal may not read.
fn ack_answers(
    applied: &[PartitionAcks],
    results: Vec<Result<(), ShareError>>,
    denied: &[PartitionAcks],
) -> Vec<((TopicId, i32), PartitionAnswer)> {
    let applied = applied.iter().zip(results).map(|(a, res)| {
        let answer = PartitionAnswer {
            ack_error: res.err(),
            ..PartitionAnswer::default()
        };
        ((a.topic, a.partition), answer)
    });
    let denied = denied.iter().map(|a| {
        let answer = PartitionAnswer {
            ack_denied: true,
            ..PartitionAnswer::default()
        };
        ((a.topic, a.partition), answer)
    });
    applied.chain(denied).collect()
}

pub(super) async fn share_fetch(ctx: Ctx, r: ShareFetchRequest) -> ShareFetchResponse {
    let group = r.group_id.as_ref().map(|g| g.0.as_str().to_owned()).unwrap_or_default();
    let member = r.member_id.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default();
    if !super::authz::allowed(&ctx, AclOperation::Read, ResourceType::Group, &group) {
        let (code, message) = group_denied();
        return ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(message);
    }
    let mut readable = ReadableTopics::new(&ctx);
    let acks = acknowledgements!(r);
    let has_acks = !acks.is_empty();
    let (acks, denied_acks): (Vec<_>, Vec<_>) = acks.into_iter().partition(|a| readable.may_read(&a.topic));
    let session = SessionRequest {
        group: group.clone(),
        member: member.clone(),
        epoch: r.share_session_epoch,
        add: r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (*t.topic_id.as_bytes(), p.partition_index)))
            .collect(),
        forget: r
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (*t.topic_id.as_bytes(), *p)))
            .collect(),
        has_acks,
        connection: ctx.connection,
    };
    let lock_timeout_ms =
        i32::try_from(ctx.broker.share().settings(&group).record_lock_duration_ms).unwrap_or(i32::MAX);
    let begun = match begin(&ctx, session, SessionUse::Fetch, acks).await {
        Ok(begun) => begun,
        Err(e) => return fetch_error(&e),
    };
    let mut answers = ack_answers(&begun.acks, begun.results, &denied_acks);
    if r.share_session_epoch != -1 {
        // The session's partitions of topics the principal may not read are
        // answered TOPIC_AUTHORIZATION_FAILED, and nothing is acquired there.
        let (partitions, denied): (Vec<_>, Vec<_>) = begun
            .partitions
            .into_iter()
            .partition(|(topic, _)| readable.may_read(topic));
        let poll = LongPoll {
            group,
            member,
            partitions: Arc::new(partitions),
            records_max: match r.max_records {
                n if n <= 0 => SHARE_FETCH_RECORDS_DEFAULT,
                n => (n as usize).min(SHARE_FETCH_RECORDS_MAX),
            },
            bytes_max: (r.max_bytes.max(0) as usize).min(ctx.config.fetch_bytes_max).max(1),
            deadline: tokio::time::Instant::now()
                + Duration::from_millis((r.max_wait_ms.max(0) as u64).min(ctx.config.fetch_wait_ms_max)),
        };
        let denied = denied.into_iter().map(|key| {
            let answer = PartitionAnswer {
                denied: true,
                ..PartitionAnswer::default()
            };
            (key, answer)
        });
        for (key, a) in long_poll(&ctx, poll).await.into_iter().chain(denied) {
            match answers.iter_mut().find(|(k, _)| *k == key) {
                Some((_, existing)) => {
                    existing.data = a.data;
                    existing.error = a.error;
                    existing.denied = a.denied;
                }
                None if a.has_news() => answers.push((key, a)),
                None => {}
            }
        }
        count_share_fetched(&ctx, &answers);
    }
    fetch_response(&ctx, answers, lock_timeout_ms)
}

/// What a ShareFetch acquires from, and within which limits.
struct LongPoll {
    group: String,
    member: String,
    /// The session's partitions.
    partitions: Arc<Vec<(TopicId, i32)>>,
    records_max: usize,
    bytes_max: usize,
    deadline: tokio::time::Instant,
}

/// Acquires records for the member; when there are none, waits (until the
/// deadline) for a new record on one of the session's partitions or for
/// records to become available again (released, lock timed out), and tries
/// again. The response's memory stays reserved until it is written.
async fn long_poll(ctx: &Ctx, poll: LongPoll) -> Vec<((TopicId, i32), PartitionAnswer)> {
    let poll = Arc::new(poll);
    loop {
        // Subscribed before acquiring, so a record that lands in between wakes us.
        let mut watches = vec![ctx.broker.share().watch_available()];
        for (topic, p) in poll.partitions.iter() {
            watches.extend(share_shared::watch_end(ctx, topic, *p));
        }
        let mut reservation = ctx.responses.reserve(poll.bytes_max, &ctx.metrics).await;
        let reserved = reservation.bytes();
        let (broker, shared, p) = (ctx.broker.clone(), ctx.config.shared.clone(), poll.clone());
        let acquired = tokio::task::spawn_blocking(move || {
            acquire_all(
                (&broker, shared.as_ref()),
                &p.group,
                &p.member,
                &p.partitions,
                p.records_max,
                reserved,
            )
        })
        .await
        .unwrap_or_default();
        let total: usize = acquired.iter().map(|(_, a)| a.data.records.len()).sum();
        ctx.responses.fit(&mut reservation, total).await;
        let done = acquired.iter().any(|(_, a)| a.has_news())
            || tokio::time::Instant::now() >= poll.deadline
            || poll.partitions.is_empty();
        if done || !super::fetch::woken(&mut watches, poll.deadline, &ctx.shutdown).await {
            ctx.held.put(reservation);
            return acquired;
        }
    }
}

/// Acquires from the session's partitions, within the records and bytes
/// left (the engine decides the order and what goes together).
fn acquire_all(
    (broker, shared): (&Broker, Option<&SharedStorage>),
    group: &str,
    member: &str,
    partitions: &[(TopicId, i32)],
    records_max: usize,
    bytes_max: usize,
) -> Vec<((TopicId, i32), PartitionAnswer)> {
    let source_of = |topic: &TopicId, p: i32| share_shared::source(broker, shared, topic, p);
    broker
        .share()
        .acquire_all(group, member, partitions, &source_of, records_max, bytes_max)
        .into_iter()
        .map(|(key, result)| {
            let answer = match result {
                Ok(data) => PartitionAnswer {
                    data,
                    ..PartitionAnswer::default()
                },
                Err(e) => PartitionAnswer::failed(e),
            };
            (key, answer)
        })
        .collect()
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
            let records = u64::try_from(records).unwrap_or(0);
            metrics.fetch_records.with_label_values(&name).inc_by(records);
            metrics.traffic.fetched(bytes, records);
        }
    }
}

pub(super) async fn share_acknowledge(ctx: Ctx, r: ShareAcknowledgeRequest) -> ShareAcknowledgeResponse {
    let group = r.group_id.as_ref().map(|g| g.0.as_str().to_owned()).unwrap_or_default();
    if !super::authz::allowed(&ctx, AclOperation::Read, ResourceType::Group, &group) {
        let (code, message) = group_denied();
        return ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(message);
    }
    let mut readable = ReadableTopics::new(&ctx);
    let acks = acknowledgements!(r);
    let has_acks = !acks.is_empty();
    let (acks, denied): (Vec<_>, Vec<_>) = acks.into_iter().partition(|a| readable.may_read(&a.topic));
    let session = SessionRequest {
        group,
        member: r.member_id.as_ref().map(|m| m.as_str().to_owned()).unwrap_or_default(),
        epoch: r.share_session_epoch,
        add: acks.iter().map(|a| (a.topic, a.partition)).collect(),
        forget: Vec::new(),
        has_acks,
        connection: ctx.connection,
    };
    let begun = match begin(&ctx, session, SessionUse::Acknowledge, acks).await {
        Ok(begun) => begun,
        Err(e) => {
            return ShareAcknowledgeResponse::default()
                .with_error_code(share_error(&e).code())
                .with_error_message(message(&e));
        }
    };
    let partitions = ack_answers(&begun.acks, begun.results, &denied)
        .into_iter()
        .map(|((topic, partition), a)| {
            let mut d = AckPartition::default()
                .with_partition_index(partition)
                .with_current_leader(
                    AckLeader::default()
                        .with_leader_id(share_shared::leader_id(&ctx, &topic, partition))
                        .with_leader_epoch(0),
                );
            if let Some(e) = &a.ack_error {
                d.error_code = share_error(e).code();
                d.error_message = message(e);
            }
            if a.ack_denied {
                d.error_code = ResponseError::TopicAuthorizationFailed.code();
                d.error_message = Some(text(TOPIC_DENIED));
            }
            errors::count_error(&ctx.metrics, "ShareAcknowledge", d.error_code);
            (topic, d)
        });
    let topics = by_topic(partitions)
        .into_iter()
        .map(|t| {
            ShareAcknowledgeTopicResponse::default()
                .with_topic_id(t.id)
                .with_partitions(t.partitions)
        })
        .collect();
    ShareAcknowledgeResponse::default().with_responses(topics)
}
