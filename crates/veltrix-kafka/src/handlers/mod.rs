//! One handler per API: turn a decoded request into engine calls and a response.
//!
//! Engine calls that block (appends waiting for fsync, reads from disk) run on
//! tokio's blocking pool, so a slow disk never stalls the connections' tasks.

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::Broker;

use crate::server::KafkaConfig;

mod alter_configs;
mod api_versions;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod group_admin;
mod group_membership;
mod group_offsets;
mod init_producer_id;
pub(crate) mod list_offsets;
mod metadata;
pub(crate) mod produce;
mod share;

pub(crate) use api_versions::api_versions_unsupported;

/// What every handler gets.
pub(crate) struct Ctx {
    pub broker: Arc<Broker>,
    pub config: Arc<KafkaConfig>,
    pub version: i16,
    /// The client id of the request header (empty if none).
    pub client_id: String,
    pub peer: std::net::SocketAddr,
    /// This connection, among all the broker has had.
    pub connection: u64,
    /// Risky client settings already warned about.
    pub warnings: Arc<crate::warnings::ClientWarnings>,
    /// Memory for responses the client sizes (fetch).
    pub responses: crate::memory::ResponseMemory,
    /// Where a handler leaves its response's reservation for the server to
    /// hold until the response is written.
    pub held: crate::memory::Held,
    /// Rate limits warnings a client can trigger with every request.
    pub limiter: Arc<veltrix_core::warn_limit::WarnLimiter>,
    /// Turns true when the broker shuts down: long polls answer at once.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
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
        ApiKey::DeleteTopics => Some((1, 6)),
        ApiKey::CreatePartitions => Some((0, 3)),
        ApiKey::DeleteRecords => Some((0, 2)),
        ApiKey::DescribeConfigs => Some((1, 4)),
        ApiKey::DescribeCluster => Some((0, 2)),
        ApiKey::InitProducerId => Some((0, 4)),
        ApiKey::IncrementalAlterConfigs => Some((0, 1)),
        ApiKey::AlterConfigs => Some((0, 2)),
        ApiKey::FindCoordinator => Some((0, 4)),
        ApiKey::JoinGroup => Some((0, 9)),
        ApiKey::SyncGroup => Some((0, 5)),
        ApiKey::Heartbeat => Some((0, 4)),
        ApiKey::LeaveGroup => Some((0, 5)),
        ApiKey::OffsetCommit => Some((2, 9)),
        ApiKey::OffsetFetch => Some((1, 9)),
        ApiKey::OffsetDelete => Some((0, 0)),
        ApiKey::ListGroups => Some((0, 5)),
        ApiKey::DescribeGroups => Some((0, 5)),
        ApiKey::DeleteGroups => Some((0, 2)),
        ApiKey::ConsumerGroupHeartbeat => Some((0, 1)),
        ApiKey::ConsumerGroupDescribe => Some((0, 1)),
        ApiKey::ShareGroupHeartbeat => Some((1, 1)),
        ApiKey::ShareGroupDescribe => Some((1, 1)),
        ApiKey::ShareFetch => Some((1, 1)),
        ApiKey::ShareAcknowledge => Some((1, 1)),
        _ => None,
    }
}

pub(super) const SERVED: [ApiKey; 31] = [
    ApiKey::ApiVersions,
    ApiKey::Metadata,
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::CreatePartitions,
    ApiKey::DeleteRecords,
    ApiKey::DescribeConfigs,
    ApiKey::DescribeCluster,
    ApiKey::InitProducerId,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::AlterConfigs,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetDelete,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
    ApiKey::ShareGroupHeartbeat,
    ApiKey::ShareGroupDescribe,
    ApiKey::ShareFetch,
    ApiKey::ShareAcknowledge,
];

pub(crate) async fn handle(ctx: Ctx, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::api_versions(crate::errors::NONE)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(&ctx, r)),
        RequestKind::Produce(r) => return produce::produce(ctx, r).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::list_offsets(ctx, r).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::create_topics(ctx, r).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::delete_topics(ctx, r).await),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::create_partitions(ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::delete_records(ctx, r).await),
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(describe_configs::describe_configs(&ctx, r)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(describe_cluster::describe_cluster(&ctx, r)),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(init_producer_id::init_producer_id(ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(alter_configs::incremental_alter_configs(ctx, r).await)
        }
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(alter_configs::alter_configs(ctx, r).await),
        RequestKind::FindCoordinator(r) => ResponseKind::FindCoordinator(group_admin::find_coordinator(&ctx, r)),
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(group_membership::join_group(ctx, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group_membership::sync_group(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group_membership::heartbeat(&ctx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group_membership::leave_group(&ctx, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(group_offsets::offset_commit(ctx, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(group_offsets::offset_fetch(&ctx, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(group_offsets::offset_delete(ctx, r).await),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group_admin::list_groups(&ctx, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(group_admin::describe_groups(&ctx, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(group_admin::delete_groups(ctx, r).await),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::consumer_group_heartbeat(&ctx, r))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::consumer_group_describe(&ctx, r))
        }
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(share::share_group_heartbeat(&ctx, r)),
        RequestKind::ShareGroupDescribe(r) => ResponseKind::ShareGroupDescribe(share::share_group_describe(&ctx, r)),
        RequestKind::ShareFetch(r) => ResponseKind::ShareFetch(share::share_fetch(ctx, r).await),
        RequestKind::ShareAcknowledge(r) => ResponseKind::ShareAcknowledge(share::share_acknowledge(ctx, r).await),
        _ => return None,
    })
}

pub(super) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}
