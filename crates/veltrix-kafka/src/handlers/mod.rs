//! One handler per API: turn a decoded request into engine calls and a response.
//!
//! Engine calls that may wait on the disk run on tokio's blocking pool, so a
//! slow disk never stalls the connections' tasks: fetches' reads, catalogue
//! changes (topics, partitions, configs), delete-records, offset commits,
//! ListOffsets' look into a batch, ShareFetch's and ShareAcknowledge's engine
//! calls (sessions and acknowledgements fsync the share-state store), and
//! share groups' offsets and deletions (the same store), ACL changes and
//! SCRAM credentials (both fsync their files). Produce is the
//! exception: a request of up to `INLINE_APPEND_BYTES_MAX` is appended on the
//! connection's task, where `try_append_batches` gives up rather than
//! wait on a lock held across an fsync (the rest goes to the blocking pool),
//! and the wait for durability is a channel that the partition's flusher, on
//! the blocking pool, signals.
//!
//! Every handler authorizes what it does as Kafka's broker does, through
//! `authz` (the principal's ACLs; nothing is checked when authorization is
//! off).

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, BrokerId, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use veltrix_core::Broker;

use crate::server::KafkaConfig;

mod acls;
mod alter_configs;
mod api_versions;
mod authz;
mod client_quotas;
mod consumer_group;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod fetch_shared;
mod group_admin;
mod group_membership;
mod group_offsets;
mod group_shared;
mod init_producer_id;
pub(crate) mod list_offsets;
mod list_offsets_shared;
mod metadata;
mod operations;
pub(crate) mod produce;
mod produce_shared;
mod scram_credentials;
mod share;
mod share_offsets;
mod share_shared;
mod transactions;

pub(crate) use api_versions::api_versions_unsupported;

/// What every handler gets.
pub(crate) struct Ctx {
    pub broker: Arc<Broker>,
    /// The front door's metrics.
    pub metrics: crate::metrics::KafkaMetrics,
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
    /// This connection's mute for client quotas.
    pub mute: Arc<crate::quota::Mute>,
    /// The critical tier's service, which throttles the other tiers.
    pub guard: Arc<crate::tiers::CriticalGuard>,
    /// The listener the request came through.
    pub listener: Arc<crate::security::ListenerSpec>,
    /// Every listener of the broker, which DescribeConfigs describes.
    pub listeners: Arc<[crate::server::BoundListener]>,
    /// Who sent it: `User:ANONYMOUS` unless authenticated.
    pub principal: Arc<str>,
    /// On shared storage, an OffsetFetch's groups' committed offsets, read
    /// from the metadata store before it is answered.
    pub shared_commits: Option<std::collections::HashMap<String, Vec<veltrix_shared::OffsetRow>>>,
}

/// An API this broker serves, and the versions it serves of it: exactly what
/// is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedApi {
    pub key: ApiKey,
    /// Its name, as metrics label it (`Produce`, `Fetch`, ...).
    pub name: &'static str,
    pub min_version: i16,
    pub max_version: i16,
}

impl ServedApi {
    const fn new(key: ApiKey, name: &'static str, min_version: i16, max_version: i16) -> ServedApi {
        ServedApi {
            key,
            name,
            min_version,
            max_version,
        }
    }

    /// Whether `version` is served.
    pub fn serves(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

/// Every API served: the one table that ApiVersions answers from, request
/// decoding checks against and metrics take their labels from. A new API is
/// one row here and one arm in [`handle`].
pub const SERVED_APIS: &[ServedApi] = &[
    ServedApi::new(ApiKey::ApiVersions, "ApiVersions", 0, 3),
    ServedApi::new(ApiKey::Metadata, "Metadata", 0, 12),
    ServedApi::new(ApiKey::Produce, "Produce", 3, 11),
    ServedApi::new(ApiKey::Fetch, "Fetch", 4, 12),
    ServedApi::new(ApiKey::ListOffsets, "ListOffsets", 1, 7),
    ServedApi::new(ApiKey::CreateTopics, "CreateTopics", 2, 7),
    ServedApi::new(ApiKey::DeleteTopics, "DeleteTopics", 1, 6),
    ServedApi::new(ApiKey::CreatePartitions, "CreatePartitions", 0, 3),
    ServedApi::new(ApiKey::DeleteRecords, "DeleteRecords", 0, 2),
    ServedApi::new(ApiKey::DescribeConfigs, "DescribeConfigs", 1, 4),
    ServedApi::new(ApiKey::DescribeCluster, "DescribeCluster", 0, 2),
    ServedApi::new(ApiKey::InitProducerId, "InitProducerId", 0, 4),
    ServedApi::new(ApiKey::AddPartitionsToTxn, "AddPartitionsToTxn", 0, 3),
    ServedApi::new(ApiKey::AddOffsetsToTxn, "AddOffsetsToTxn", 0, 3),
    ServedApi::new(ApiKey::TxnOffsetCommit, "TxnOffsetCommit", 0, 3),
    ServedApi::new(ApiKey::EndTxn, "EndTxn", 0, 3),
    ServedApi::new(ApiKey::DescribeTransactions, "DescribeTransactions", 0, 0),
    ServedApi::new(ApiKey::ListTransactions, "ListTransactions", 0, 1),
    ServedApi::new(ApiKey::IncrementalAlterConfigs, "IncrementalAlterConfigs", 0, 1),
    ServedApi::new(ApiKey::AlterConfigs, "AlterConfigs", 0, 2),
    ServedApi::new(ApiKey::FindCoordinator, "FindCoordinator", 0, 4),
    ServedApi::new(ApiKey::JoinGroup, "JoinGroup", 0, 9),
    ServedApi::new(ApiKey::SyncGroup, "SyncGroup", 0, 5),
    ServedApi::new(ApiKey::Heartbeat, "Heartbeat", 0, 4),
    ServedApi::new(ApiKey::LeaveGroup, "LeaveGroup", 0, 5),
    ServedApi::new(ApiKey::OffsetCommit, "OffsetCommit", 2, 9),
    ServedApi::new(ApiKey::OffsetFetch, "OffsetFetch", 1, 9),
    ServedApi::new(ApiKey::OffsetDelete, "OffsetDelete", 0, 0),
    ServedApi::new(ApiKey::ListGroups, "ListGroups", 0, 5),
    ServedApi::new(ApiKey::DescribeGroups, "DescribeGroups", 0, 5),
    ServedApi::new(ApiKey::DeleteGroups, "DeleteGroups", 0, 2),
    ServedApi::new(ApiKey::ConsumerGroupHeartbeat, "ConsumerGroupHeartbeat", 0, 1),
    ServedApi::new(ApiKey::ConsumerGroupDescribe, "ConsumerGroupDescribe", 0, 1),
    ServedApi::new(ApiKey::ShareGroupHeartbeat, "ShareGroupHeartbeat", 1, 1),
    ServedApi::new(ApiKey::ShareGroupDescribe, "ShareGroupDescribe", 1, 1),
    ServedApi::new(ApiKey::ShareFetch, "ShareFetch", 1, 1),
    ServedApi::new(ApiKey::ShareAcknowledge, "ShareAcknowledge", 1, 1),
    ServedApi::new(ApiKey::DescribeShareGroupOffsets, "DescribeShareGroupOffsets", 0, 0),
    ServedApi::new(ApiKey::AlterShareGroupOffsets, "AlterShareGroupOffsets", 0, 0),
    ServedApi::new(ApiKey::DeleteShareGroupOffsets, "DeleteShareGroupOffsets", 0, 0),
    ServedApi::new(ApiKey::DescribeClientQuotas, "DescribeClientQuotas", 0, 1),
    ServedApi::new(ApiKey::AlterClientQuotas, "AlterClientQuotas", 0, 1),
    ServedApi::new(ApiKey::DescribeAcls, "DescribeAcls", 1, 3),
    ServedApi::new(ApiKey::CreateAcls, "CreateAcls", 1, 3),
    ServedApi::new(ApiKey::DeleteAcls, "DeleteAcls", 1, 3),
    ServedApi::new(
        ApiKey::DescribeUserScramCredentials,
        "DescribeUserScramCredentials",
        0,
        0,
    ),
    ServedApi::new(ApiKey::AlterUserScramCredentials, "AlterUserScramCredentials", 0, 0),
    // Answered by the connection itself (`security::sasl`), never by a
    // handler: they change who the connection is.
    ServedApi::new(ApiKey::SaslHandshake, "SaslHandshake", 1, 1),
    ServedApi::new(ApiKey::SaslAuthenticate, "SaslAuthenticate", 0, 2),
];

/// The served API of this key, if it is served.
pub fn served_api(api: ApiKey) -> Option<&'static ServedApi> {
    SERVED_APIS.iter().find(|s| s.key == api)
}

pub(crate) async fn handle(ctx: Ctx, request: RequestKind) -> Option<ResponseKind> {
    if ctx.config.shared.is_some() {
        if let Some(redirected) = group_shared::redirect(&ctx, &request) {
            return Some(redirected);
        }
        group_shared::learn_subscribed_topics(&ctx, &request).await;
        match request {
            RequestKind::OffsetCommit(r) => {
                return Some(ResponseKind::OffsetCommit(group_shared::offset_commit(ctx, r).await));
            }
            RequestKind::OffsetFetch(r) => {
                return Some(ResponseKind::OffsetFetch(group_shared::offset_fetch(ctx, r).await));
            }
            RequestKind::InitProducerId(r) => {
                return Some(ResponseKind::InitProducerId(
                    init_producer_id::init_producer_id_shared(ctx, r).await,
                ));
            }
            RequestKind::ListOffsets(r) => {
                return Some(ResponseKind::ListOffsets(
                    list_offsets_shared::list_offsets(ctx, r).await,
                ));
            }
            r if !served_on_shared_storage(&r) => return None,
            r => return handle_local(ctx, r).await,
        }
    }
    handle_local(ctx, request).await
}

/// Whether an API is served on shared storage: not transactions yet
/// (docs/scale-out.md). ApiVersions leaves them out there too.
pub(crate) fn served_on_shared_storage_key(key: ApiKey) -> bool {
    !matches!(
        key,
        ApiKey::AddPartitionsToTxn
            | ApiKey::AddOffsetsToTxn
            | ApiKey::TxnOffsetCommit
            | ApiKey::EndTxn
            | ApiKey::DescribeTransactions
            | ApiKey::ListTransactions
    )
}

fn served_on_shared_storage(request: &RequestKind) -> bool {
    let key = match request {
        RequestKind::AddPartitionsToTxn(_) => ApiKey::AddPartitionsToTxn,
        RequestKind::AddOffsetsToTxn(_) => ApiKey::AddOffsetsToTxn,
        RequestKind::TxnOffsetCommit(_) => ApiKey::TxnOffsetCommit,
        RequestKind::EndTxn(_) => ApiKey::EndTxn,
        RequestKind::DescribeTransactions(_) => ApiKey::DescribeTransactions,
        RequestKind::ListTransactions(_) => ApiKey::ListTransactions,
        RequestKind::ShareGroupHeartbeat(_) => ApiKey::ShareGroupHeartbeat,
        RequestKind::ShareGroupDescribe(_) => ApiKey::ShareGroupDescribe,
        RequestKind::ShareFetch(_) => ApiKey::ShareFetch,
        RequestKind::ShareAcknowledge(_) => ApiKey::ShareAcknowledge,
        RequestKind::DescribeShareGroupOffsets(_) => ApiKey::DescribeShareGroupOffsets,
        RequestKind::AlterShareGroupOffsets(_) => ApiKey::AlterShareGroupOffsets,
        RequestKind::DeleteShareGroupOffsets(_) => ApiKey::DeleteShareGroupOffsets,
        RequestKind::DeleteRecords(_) => ApiKey::DeleteRecords,
        _ => return true,
    };
    served_on_shared_storage_key(key)
}

/// Runs a handler on the blocking pool: those that read share groups wait
/// for locks that an acquisition or a change of a group holds while it reads
/// or stores (on shared storage, through this runtime, so an async thread
/// waiting there could starve it). A handler that panicked answers the
/// default (empty) response.
async fn blocking<T: Default + Send + 'static>(handler: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(handler).await.unwrap_or_default()
}

/// Long: one arm per API, each a call of its handler, and nothing else.
async fn handle_local(ctx: Ctx, request: RequestKind) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::api_versions_for(
            crate::errors::NONE,
            ctx.config.shared.is_some(),
        )),
        RequestKind::Metadata(r) => {
            metadata::prepare_shared(&ctx, &r).await;
            ResponseKind::Metadata(metadata::metadata(&ctx, r))
        }
        RequestKind::Produce(r) => return produce::produce(ctx, r).await.map(ResponseKind::Produce),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::fetch(ctx, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::list_offsets(ctx, r).await),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(create_topics::create_topics(ctx, r).await),
        RequestKind::DeleteTopics(r) => ResponseKind::DeleteTopics(delete_topics::delete_topics(ctx, r).await),
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(create_partitions::create_partitions(ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(delete_records::delete_records(ctx, r).await),
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(blocking(move || describe_configs::describe_configs(&ctx, r)).await)
        }
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
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(blocking(move || group_admin::list_groups(&ctx, r)).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(blocking(move || group_admin::describe_groups(&ctx, r)).await)
        }
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(group_admin::delete_groups(ctx, r).await),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::consumer_group_heartbeat(&ctx, r))
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::consumer_group_describe(&ctx, r))
        }
        RequestKind::ShareGroupHeartbeat(r) => ResponseKind::ShareGroupHeartbeat(
            blocking(move || Some(share::share_group_heartbeat(&ctx, r)))
                .await
                .unwrap_or_else(|| {
                    kafka_protocol::messages::ShareGroupHeartbeatResponse::default()
                        .with_error_code(crate::errors::ResponseError::UnknownServerError.code())
                }),
        ),
        RequestKind::ShareGroupDescribe(r) => {
            ResponseKind::ShareGroupDescribe(blocking(move || share::share_group_describe(&ctx, r)).await)
        }
        RequestKind::ShareFetch(r) => ResponseKind::ShareFetch(share::share_fetch(ctx, r).await),
        RequestKind::ShareAcknowledge(r) => ResponseKind::ShareAcknowledge(share::share_acknowledge(ctx, r).await),
        RequestKind::DescribeShareGroupOffsets(r) => {
            ResponseKind::DescribeShareGroupOffsets(share_offsets::describe_share_group_offsets(ctx, r).await)
        }
        RequestKind::AlterShareGroupOffsets(r) => {
            ResponseKind::AlterShareGroupOffsets(share_offsets::alter_share_group_offsets(ctx, r).await)
        }
        RequestKind::DeleteShareGroupOffsets(r) => {
            ResponseKind::DeleteShareGroupOffsets(share_offsets::delete_share_group_offsets(ctx, r).await)
        }
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe_client_quotas(&ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter_client_quotas(ctx, r).await)
        }
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe_acls(&ctx, r)),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create_acls(ctx, r).await),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete_acls(ctx, r).await),
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram_credentials::describe_user_scram_credentials(ctx, r).await)
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram_credentials::alter_user_scram_credentials(ctx, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(transactions::add_partitions_to_txn(ctx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets_to_txn(ctx, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => ResponseKind::TxnOffsetCommit(transactions::txn_offset_commit(ctx, r).await),
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(transactions::end_txn(ctx, r).await),
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(transactions::describe_transactions(&ctx, r))
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(transactions::list_transactions(&ctx, r)),
        _ => return None,
    })
}

/// This broker's node id: the only broker, leader and replica of every
/// partition.
pub(super) const NODE_ID: BrokerId = BrokerId(0);

pub(super) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_served_api_is_named_as_its_key_once_with_versions_in_order() {
        for (i, s) in SERVED_APIS.iter().enumerate() {
            assert_eq!(s.name, format!("{:?}", s.key));
            assert!(0 <= s.min_version && s.min_version <= s.max_version, "{s:?}");
            assert!(SERVED_APIS[..i].iter().all(|o| o.key != s.key), "{s:?} twice");
        }
    }
}
