//! ACLs in every API the broker serves: a broker with authorization on and
//! `User:admin` a super user, one PLAINTEXT listener acting as `User:admin`
//! and one as `User:alice` (their `unauthenticated_principal`). For each API
//! of `SERVED_APIS` (the test fails on one it has no case for), alice without
//! the ACL gets Kafka's error, with it succeeds; a DENY overrides an ALLOW,
//! a PREFIXED ACL covers its topics, and listings (Metadata, ListGroups,
//! OffsetFetch of every topic) show only what alice may describe. ACLs are
//! set through the engine's authorizer, except in the ACL APIs' own cases.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use tokio::sync::watch;
use uuid::Uuid;
use veltrix_core::acl::{
    AclBinding, AclBindingFilter, AclConfig, AclOperation as Op, AclPermissionType, PatternType, ResourceType as Rt,
};
use veltrix_core::{Broker, BrokerConfig};
use veltrix_kafka::security::ListenerSpec;
use veltrix_kafka::{KafkaConfig, KafkaListener, SERVED_APIS, serve_listeners};
use veltrix_log::Env;

use super::{Client, create_topic, produce, records, topic};

mod admin;
mod data;
mod groups;
mod security;
mod share;
mod transactions;

const ALICE: &str = "User:alice";
const ADMIN: &str = "User:admin";

const NONE: i16 = 0;
const UNKNOWN_TOPIC: i16 = 3;
const TOPIC_DENIED: i16 = 29;
const GROUP_DENIED: i16 = 30;
const CLUSTER_DENIED: i16 = 31;
const TXN_DENIED: i16 = 53;

/// Kafka's bit of an operation in authorized operations.
fn bit(op: Op) -> i32 {
    1 << op.code()
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

fn group(id: &str) -> kafka_protocol::messages::GroupId {
    kafka_protocol::messages::GroupId(text(id))
}

/// A broker with authorization on (or off), connections as admin and as
/// alice.
struct Matrix {
    broker: Arc<Broker>,
    admin: Client,
    alice: Client,
    alice_addr: SocketAddr,
    stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Drop for Matrix {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn start(enabled: bool) -> Matrix {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig {
        acl: AclConfig {
            enabled,
            super_users: BTreeSet::from([ADMIN.to_owned()]),
            ..AclConfig::default()
        },
        auto_create_topics: true,
        ..BrokerConfig::default()
    };
    let broker = Arc::new(Broker::open(Env::system(), dir.path(), config).unwrap());
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for (name, principal) in [("admin", ADMIN), ("alice", ALICE)] {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut spec = ListenerSpec::plaintext(name, addr);
        spec.unauthenticated_principal = principal.to_owned();
        listeners.push(KafkaListener { tcp, spec });
        addrs.push(addr);
    }
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve_listeners(
        listeners,
        broker.clone(),
        KafkaConfig::new(addrs[0]),
        stop_rx,
    ));
    Matrix {
        broker,
        admin: Client::connect(addrs[0]).await,
        alice: Client::connect(addrs[1]).await,
        alice_addr: addrs[1],
        stop,
        _dir: dir,
    }
}

/// One of alice's ACLs, from any host.
fn binding(permission: AclPermissionType, op: Op, rt: Rt, name: &str, pattern: PatternType) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.to_owned(),
        pattern_type: pattern,
        principal: ALICE.to_owned(),
        host: "*".to_owned(),
        operation: op,
        permission,
    }
}

impl Matrix {
    fn set(&self, b: AclBinding) {
        let created = self.broker.authorizer().create(std::slice::from_ref(&b));
        assert!(created.iter().all(Result::is_ok), "{b}: {created:?}");
    }

    fn allow(&self, op: Op, rt: Rt, name: &str) {
        self.set(binding(AclPermissionType::Allow, op, rt, name, PatternType::Literal));
    }

    fn allow_prefixed(&self, op: Op, rt: Rt, prefix: &str) {
        self.set(binding(AclPermissionType::Allow, op, rt, prefix, PatternType::Prefixed));
    }

    fn deny(&self, op: Op, rt: Rt, name: &str) {
        self.set(binding(AclPermissionType::Deny, op, rt, name, PatternType::Literal));
    }

    fn allow_cluster(&self, op: Op) {
        self.allow(op, Rt::Cluster, veltrix_core::acl::CLUSTER_NAME);
    }

    /// Every ACL removed: each case starts from none.
    fn reset(&self) {
        for r in self.broker.authorizer().delete(&[AclBindingFilter::ANY]) {
            r.unwrap();
        }
    }

    /// A topic made by the admin, with one record in partition 0.
    async fn topic(&mut self, name: &str, partitions: i32) {
        create_topic(&mut self.admin, name, partitions).await;
        let (code, _) = produce(&mut self.admin, name, 0, -1, records(&["r"], Compression::None)).await;
        assert_eq!(code, NONE);
    }

    fn topic_id(&self, name: &str) -> Uuid {
        Uuid::from_bytes(self.broker.topic(name).expect("the topic").id)
    }

    /// A new connection as alice (for requests that may close it).
    async fn alice_again(&self) -> Client {
        Client::connect(self.alice_addr).await
    }

    /// `veltrix_kafka_authorization_denied_total` for one pair of labels.
    fn denied_count(&self, operation: &str, resource_type: &str) -> u64 {
        let families = self.broker.metrics().registry().gather();
        let Some(family) = families
            .iter()
            .find(|f| f.name() == "veltrix_kafka_authorization_denied_total")
        else {
            return 0;
        };
        family
            .get_metric()
            .iter()
            .filter(|m| {
                let label = |n: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == n)
                        .map(|l| l.value().to_owned())
                };
                label("operation").as_deref() == Some(operation)
                    && label("resource_type").as_deref() == Some(resource_type)
            })
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}

/// Runs the case of `api`; false when there is none.
async fn case(m: &mut Matrix, api: ApiKey) -> bool {
    m.reset();
    match api {
        ApiKey::ApiVersions => security::api_versions(m).await,
        ApiKey::SaslHandshake => security::sasl_handshake(m).await,
        ApiKey::SaslAuthenticate => security::sasl_authenticate(m).await,
        ApiKey::DescribeAcls => security::describe_acls(m).await,
        ApiKey::CreateAcls => security::create_acls(m).await,
        ApiKey::DeleteAcls => security::delete_acls(m).await,
        ApiKey::DescribeUserScramCredentials => security::describe_scram(m).await,
        ApiKey::AlterUserScramCredentials => security::alter_scram(m).await,
        ApiKey::Metadata => data::metadata(m).await,
        ApiKey::Produce => data::produce(m).await,
        ApiKey::Fetch => data::fetch(m).await,
        ApiKey::ListOffsets => data::list_offsets(m).await,
        ApiKey::InitProducerId => data::init_producer_id(m).await,
        ApiKey::CreateTopics => admin::create_topics(m).await,
        ApiKey::DeleteTopics => admin::delete_topics(m).await,
        ApiKey::CreatePartitions => admin::create_partitions(m).await,
        ApiKey::DeleteRecords => admin::delete_records(m).await,
        ApiKey::DescribeConfigs => admin::describe_configs(m).await,
        ApiKey::IncrementalAlterConfigs => admin::incremental_alter_configs(m).await,
        ApiKey::AlterConfigs => admin::alter_configs(m).await,
        ApiKey::DescribeCluster => admin::describe_cluster(m).await,
        ApiKey::DescribeClientQuotas => admin::describe_client_quotas(m).await,
        ApiKey::AlterClientQuotas => admin::alter_client_quotas(m).await,
        ApiKey::FindCoordinator => groups::find_coordinator(m).await,
        ApiKey::JoinGroup => groups::join_group(m).await,
        ApiKey::SyncGroup => groups::sync_group(m).await,
        ApiKey::Heartbeat => groups::heartbeat(m).await,
        ApiKey::LeaveGroup => groups::leave_group(m).await,
        ApiKey::OffsetCommit => groups::offset_commit(m).await,
        ApiKey::OffsetFetch => groups::offset_fetch(m).await,
        ApiKey::OffsetDelete => groups::offset_delete(m).await,
        ApiKey::ListGroups => groups::list_groups(m).await,
        ApiKey::DescribeGroups => groups::describe_groups(m).await,
        ApiKey::DeleteGroups => groups::delete_groups(m).await,
        ApiKey::ConsumerGroupHeartbeat => groups::consumer_group_heartbeat(m).await,
        ApiKey::ConsumerGroupDescribe => groups::consumer_group_describe(m).await,
        ApiKey::ShareGroupHeartbeat => share::share_group_heartbeat(m).await,
        ApiKey::ShareGroupDescribe => share::share_group_describe(m).await,
        ApiKey::ShareFetch => share::share_fetch(m).await,
        ApiKey::ShareAcknowledge => share::share_acknowledge(m).await,
        ApiKey::DescribeShareGroupOffsets => share::describe_share_group_offsets(m).await,
        ApiKey::AlterShareGroupOffsets => share::alter_share_group_offsets(m).await,
        ApiKey::DeleteShareGroupOffsets => share::delete_share_group_offsets(m).await,
        ApiKey::AddPartitionsToTxn => transactions::add_partitions_to_txn(m).await,
        ApiKey::AddOffsetsToTxn => transactions::add_offsets_to_txn(m).await,
        ApiKey::TxnOffsetCommit => transactions::txn_offset_commit(m).await,
        ApiKey::EndTxn => transactions::end_txn(m).await,
        ApiKey::DescribeTransactions => transactions::describe_transactions(m).await,
        ApiKey::ListTransactions => transactions::list_transactions(m).await,
        _ => return false,
    }
    true
}

#[tokio::test]
async fn every_served_api_enforces_kafkas_acls() {
    let mut m = start(true).await;
    let mut missing = Vec::new();
    for api in SERVED_APIS {
        eprintln!("ACL case: {}", api.name);
        if !case(&mut m, api.key).await {
            missing.push(api.name);
        }
    }
    assert!(
        missing.is_empty(),
        "no ACL case for {missing:?}: add one to acl_matrix.rs"
    );
}

#[tokio::test]
async fn without_authorization_the_acl_apis_answer_security_disabled() {
    let mut m = start(false).await;
    security::security_disabled(&mut m).await;
}

#[tokio::test]
async fn denials_are_counted_by_operation_and_resource_type() {
    let mut m = start(true).await;
    m.topic("count-t", 1).await;
    let before = m.denied_count("WRITE", "TOPIC");
    let batch = records(&["x"], Compression::None);
    assert_eq!(
        produce(&mut m.alice, "count-t", 0, -1, batch.clone()).await.0,
        TOPIC_DENIED
    );
    assert_eq!(m.denied_count("WRITE", "TOPIC"), before + 1);
    m.allow(Op::Write, Rt::Topic, "count-t");
    assert_eq!(produce(&mut m.alice, "count-t", 0, -1, batch).await.0, NONE);
    assert_eq!(
        m.denied_count("WRITE", "TOPIC"),
        before + 1,
        "an allowed produce is not counted"
    );
}

/// A member id made by the client, a different one each time.
fn member_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    Uuid::from_u128(u128::from(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))).to_string()
}

/// Bytes of `n` zeros.
fn zeros(n: usize) -> Bytes {
    Bytes::from(vec![0u8; n])
}
