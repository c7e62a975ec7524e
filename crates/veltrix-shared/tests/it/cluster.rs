//! The cluster's state ([`PgCluster`]) against a real PostgreSQL server that
//! the tests start (tests/it/support.rs): leases timed by the server's
//! clock, producer id blocks from concurrent brokers, topics created and
//! deleted with their rows, offsets fenced by the lease, and the server
//! stopped. Skipped, loudly, when the services are not installed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use veltrix_shared::{
    AppendRequest, BrokerLease, Catalog, Cluster, Error, OffsetRow, PgCluster, PgConfig, S3Config, TopicRow, Writer,
    WriterConfig,
};

use crate::support::{self, Moto, Postgres};

/// A short lease, so expiry is seen within the test.
const SHORT_LEASE_MS: u64 = 300;
/// How long a lease expiry or a refusal may take to be seen: far above
/// `SHORT_LEASE_MS`, so only a broken rule fails it.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(10);

async fn start_postgres() -> Option<Postgres> {
    let binaries = support::binaries()?;
    Some(tokio::task::spawn_blocking(|| Postgres::start(binaries)).await.unwrap())
}

async fn open(pg: &Postgres) -> veltrix_shared::Result<PgCluster> {
    PgCluster::open(&PgConfig {
        url: pg.url(),
        connect_timeout_ms: 1_000,
        statement_timeout_ms: 1_000,
        ..PgConfig::default()
    })
    .await
}

fn lease(broker_id: i32, incarnation: i64) -> BrokerLease {
    BrokerLease {
        broker_id,
        incarnation,
        host: "127.0.0.1".into(),
        port: 9000 + broker_id,
        listeners: Vec::new(),
    }
}

fn offset(topic: &str, partition: i32, offset: i64) -> OffsetRow {
    OffsetRow {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 1,
        metadata: format!("at {offset}"),
    }
}

/// Polls `f` until it returns `Some`, within [`EXPIRY_DEADLINE`].
async fn within_deadline<T, F: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let end = Instant::now() + EXPIRY_DEADLINE;
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < end, "{what} within {EXPIRY_DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_incarnation_waits_for_the_first_ones_lease_to_expire() {
    let Some(pg) = start_postgres().await else { return };
    // Two brokers, each with its own pool.
    let (a, b) = (open(&pg).await.unwrap(), open(&pg).await.unwrap());
    let with_listeners = BrokerLease {
        listeners: vec![veltrix_shared::ListenerAddr {
            name: "secure".into(),
            host: "broker-1.example".into(),
            port: 9093,
        }],
        ..lease(1, 100)
    };
    a.register(&with_listeners, 60_000).await.unwrap();
    let refused = b.register(&lease(1, 200), 60_000).await;
    assert_eq!(refused, Err(Error::BrokerIdInUse(1)), "while the first lease is live");
    let live = b.live_brokers().await.unwrap();
    assert_eq!((live.len(), live[0].port), (1, 9001));
    assert_eq!(live[0].address_on("secure"), ("broker-1.example", 9093));
    // The same incarnation registering again is no conflict: its lease is
    // now the short one.
    a.register(&lease(1, 100), SHORT_LEASE_MS).await.unwrap();
    // The server's clock ends the lease: the second takes over.
    within_deadline("the take-over", || async {
        match b.register(&lease(1, 200), 60_000).await {
            Ok(()) => Some(()),
            Err(Error::BrokerIdInUse(1)) => None,
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    assert_eq!(a.renew(1, 100, SHORT_LEASE_MS).await, Err(Error::LeaseLost(1)));
    assert_eq!(
        a.register(&lease(1, 100), SHORT_LEASE_MS).await,
        Err(Error::BrokerIdInUse(1)),
        "the new holder's lease is live"
    );
    b.renew(1, 200, 60_000).await.unwrap();
    // A clean shutdown frees the id at once, and only its holder's does.
    a.resign(1, 100).await.unwrap();
    assert_eq!(b.live_brokers().await.unwrap().len(), 1);
    b.resign(1, 200).await.unwrap();
    assert!(b.live_brokers().await.unwrap().is_empty());
    a.register(&lease(1, 100), SHORT_LEASE_MS).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_are_stored_while_the_lease_lives_and_refused_after() {
    let Some(pg) = start_postgres().await else { return };
    let cluster = open(&pg).await.unwrap();
    cluster.register(&lease(2, 7), 60_000).await.unwrap();
    let first = [offset("t", 0, 10), offset("t", 1, 20), offset("t", 0, 11)];
    cluster.commit_offsets("g", 2, 7, &first).await.unwrap();
    let stored = [offset("t", 0, 11), offset("t", 1, 20)];
    assert_eq!(
        cluster.fetch_offsets("g").await.unwrap(),
        stored,
        "the last one named wins"
    );
    assert_eq!(
        cluster.commit_offsets("g", 2, 8, &[offset("t", 0, 99)]).await,
        Err(Error::LeaseLost(2)),
        "another incarnation"
    );
    cluster.register(&lease(2, 7), SHORT_LEASE_MS).await.unwrap();
    within_deadline("the lease's expiry", || async {
        match cluster.commit_offsets("g", 2, 7, &[offset("t", 0, 12)]).await {
            Err(Error::LeaseLost(2)) => Some(()),
            Ok(()) => None,
            Err(e) => panic!("{e:?}"),
        }
    })
    .await;
    let before_expiry = cluster.fetch_offsets("g").await.unwrap();
    assert_eq!(before_expiry[1], offset("t", 1, 20));
    assert_eq!(
        cluster.commit_offsets("g", 2, 7, &[offset("t", 0, 13)]).await,
        Err(Error::LeaseLost(2))
    );
    assert_eq!(
        cluster.fetch_offsets("g").await.unwrap(),
        before_expiry,
        "nothing stored"
    );
    assert_eq!(cluster.renew(2, 7, SHORT_LEASE_MS).await, Err(Error::LeaseLost(2)));

    cluster.register(&lease(2, 7), 60_000).await.unwrap();
    cluster.commit_offsets("h", 2, 7, &[offset("u", 3, 1)]).await.unwrap();
    assert_eq!(cluster.groups().await.unwrap(), ["g", "h"]);
    cluster.delete_offsets("g", Some(&[("t".into(), 0)])).await.unwrap();
    assert_eq!(cluster.fetch_offsets("g").await.unwrap(), [offset("t", 1, 20)]);
    cluster.delete_offsets("g", None).await.unwrap();
    assert_eq!(cluster.groups().await.unwrap(), ["h"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_id_blocks_from_concurrent_brokers_are_disjoint() {
    let Some(pg) = start_postgres().await else { return };
    let brokers = [Arc::new(open(&pg).await.unwrap()), Arc::new(open(&pg).await.unwrap())];
    let mut tasks = Vec::new();
    for task in 0..8i64 {
        let cluster = brokers[task as usize % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut blocks = Vec::new();
            for round in 0..25 {
                let count = 1 + (task * 7 + round) % 50;
                let first = cluster.allocate_producer_ids(count).await.unwrap();
                blocks.push((first, count));
            }
            blocks
        }));
    }
    let mut blocks = Vec::new();
    for task in tasks {
        blocks.extend(task.await.unwrap());
    }
    blocks.sort();
    assert_eq!(blocks[0].0, 0, "from 0");
    for pair in blocks.windows(2) {
        let ((first, count), (next, _)) = (pair[0], pair[1]);
        assert_eq!(first + count, next, "no overlap, no hole: {pair:?}");
    }
    let (last, count) = blocks[blocks.len() - 1];
    assert_eq!(brokers[0].allocate_producer_ids(1).await.unwrap(), last + count);
    assert!(matches!(
        brokers[0].allocate_producer_ids(0).await,
        Err(Error::InvalidLimit { .. })
    ));
}

/// The rows a topic has in each table, by raw SQL.
async fn rows_of(pg: &Postgres, topic: &str) -> Vec<i64> {
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let mut counts = Vec::new();
    for table in [
        "veltrix_batches",
        "veltrix_producers",
        "veltrix_partitions",
        "veltrix_group_offsets",
    ] {
        let sql = format!("SELECT count(*) FROM {table} WHERE topic = $1");
        counts.push(client.query_one(sql.as_str(), &[&topic]).await.unwrap().get(0));
    }
    counts
}

fn topic(name: &str, id: u8, partitions: i32) -> TopicRow {
    TopicRow {
        name: name.into(),
        id: [id; 16],
        partitions,
        config: "{\"cleanup.policy\":\"delete\"}".into(),
    }
}

fn append(topic: &str, partition: i32, producer_id: i64) -> AppendRequest {
    AppendRequest {
        topic: Arc::from(topic),
        partition,
        record_count: 1,
        max_timestamp: 0,
        producer: Some(veltrix_shared::ProducerStamp {
            producer_id,
            epoch: 0,
            first_seq: 0,
        }),
        bytes: Bytes::from_static(b"record"),
    }
}

async fn start_writer(pg: &Postgres, moto: &Moto, cluster: Arc<PgCluster>) -> Writer {
    moto.create_bucket("veltrix-cluster");
    let store: Arc<dyn ObjectStore> = S3Config {
        bucket: "veltrix-cluster".into(),
        endpoint: Some(moto.endpoint()),
        allow_http: true,
        static_credentials: Some(("test".into(), "test".into())),
        ..S3Config::default()
    }
    .build()
    .unwrap();
    let config = WriterConfig {
        flush_interval_ms: 5,
        writer_id: format!("w{}", pg.port),
        ..WriterConfig::default()
    };
    Writer::start(config, cluster, store).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_once_written_grown_and_deleted_with_its_rows() {
    let Some(binaries) = support::binaries() else { return };
    let (pg, moto) = tokio::task::spawn_blocking(|| (Postgres::start(binaries), Moto::start(binaries)))
        .await
        .unwrap();
    let cluster = Arc::new(open(&pg).await.unwrap());
    cluster.create_topic(&topic("orders", 1, 2)).await.unwrap();
    let taken = cluster.create_topic(&topic("orders", 2, 5)).await;
    assert_eq!(taken, Err(Error::TopicExists("orders".into())));
    assert_eq!(cluster.topics().await.unwrap(), [topic("orders", 1, 2)]);
    // Writable at once, through the catalog.
    let writer = start_writer(&pg, &moto, cluster.clone()).await;
    assert_eq!(writer.append(append("orders", 1, 5)).await.unwrap().base_offset, 0);
    assert!(matches!(
        writer.append(append("orders", 2, 5)).await,
        Err(Error::UnknownPartition { partition: 2, .. })
    ));
    cluster.set_partitions("orders", 3).await.unwrap();
    assert!(matches!(
        cluster.set_partitions("orders", 2).await,
        Err(Error::InvalidLimit { min: 3, .. })
    ));
    assert_eq!(writer.append(append("orders", 2, 6)).await.unwrap().base_offset, 0);
    cluster.set_topic_config("orders", "{}").await.unwrap();
    assert_eq!(cluster.topics().await.unwrap()[0].partitions, 3);
    cluster.register(&lease(1, 1), 60_000).await.unwrap();
    cluster
        .commit_offsets("g", 1, 1, &[offset("orders", 1, 1)])
        .await
        .unwrap();
    assert_eq!(rows_of(&pg, "orders").await, [2, 2, 3, 1]);

    assert!(cluster.delete_topic("orders").await.unwrap());
    assert!(!cluster.delete_topic("orders").await.unwrap());
    assert_eq!(rows_of(&pg, "orders").await, [0, 0, 0, 0]);
    assert!(cluster.topics().await.unwrap().is_empty());
    assert_eq!(cluster.end_offset("orders", 1).await.unwrap(), None);
    assert!(matches!(
        writer.append(append("orders", 1, 5)).await,
        Err(Error::UnknownPartition { .. })
    ));
    assert_eq!(
        cluster.set_partitions("orders", 9).await,
        Err(Error::UnknownTopic("orders".into()))
    );
    // Created again, from nothing: the old producer's batch is not a duplicate.
    cluster.create_topic(&topic("orders", 3, 2)).await.unwrap();
    let again = writer.append(append("orders", 1, 5)).await.unwrap();
    assert_eq!((again.base_offset, again.duplicate), (0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_every_call_is_unavailable_within_the_timeout() {
    let Some(mut pg) = start_postgres().await else { return };
    let cluster = open(&pg).await.unwrap();
    cluster.register(&lease(3, 1), 60_000).await.unwrap();
    tokio::task::block_in_place(|| pg.stop());
    let unavailable = |what: &str, result: veltrix_shared::Result<()>, started: Instant| {
        assert!(
            matches!(result, Err(Error::CatalogUnavailable(_))),
            "{what}: {result:?}"
        );
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "{what} answered within the timeouts, not {took:?}"
        );
    };
    let started = Instant::now();
    unavailable("renew", cluster.renew(3, 1, 60_000).await, started);
    let started = Instant::now();
    unavailable("register", cluster.register(&lease(4, 1), 60_000).await, started);
    let started = Instant::now();
    unavailable("live brokers", cluster.live_brokers().await.map(drop), started);
    let started = Instant::now();
    unavailable(
        "producer ids",
        cluster.allocate_producer_ids(1).await.map(drop),
        started,
    );
    let started = Instant::now();
    let committed = cluster.commit_offsets("g", 3, 1, &[offset("t", 0, 1)]).await;
    unavailable("commit offsets", committed, started);
    let started = Instant::now();
    unavailable("create topic", cluster.create_topic(&topic("t", 1, 1)).await, started);
    tokio::task::block_in_place(|| pg.restart());
    within_deadline("a renewal after the restart", || async {
        cluster.renew(3, 1, 60_000).await.ok()
    })
    .await;
}

/// A share-partition's state claimed and stored by two brokers in turn, on
/// any cluster: a claim answers what was stored, the last claim alone may
/// store, a lost lease stores nothing, and a deleted topic's state goes.
async fn share_state_follows_the_last_claim<C: Cluster>(cluster: &C) {
    use veltrix_shared::{ShareKey, ShareState};
    cluster.register(&lease(1, 10), 60_000).await.unwrap();
    cluster.register(&lease(2, 20), 60_000).await.unwrap();
    cluster.create_topic(&topic("s", 9, 2)).await.unwrap();
    let key = ShareKey {
        group: "g".into(),
        topic_id: [9; 16],
        partition: 1,
    };
    let state = |start: i64, ranges: &[u8]| ShareState {
        start_offset: start,
        ranges: ranges.to_vec(),
    };
    cluster.set_share_settings("g", "[1]").await.unwrap();
    let claimed = cluster.claim_share_state(&key, 1, 10).await.unwrap();
    let (first, stored) = (claimed.claim, claimed.state);
    assert_eq!(stored, None, "nothing stored yet");
    assert_eq!(
        claimed.settings.as_deref(),
        Some("[1]"),
        "the group's settings come with the claim"
    );
    cluster
        .store_share_state(&key, (1, 10), first, &state(5, b"one"))
        .await
        .unwrap();
    let claimed = cluster.claim_share_state(&key, 2, 20).await.unwrap();
    let (second, stored) = (claimed.claim, claimed.state);
    assert!(second > first);
    assert_eq!(stored, Some(state(5, b"one")));
    assert!(
        matches!(
            cluster
                .store_share_state(&key, (1, 10), first, &state(6, b"stale"))
                .await,
            Err(Error::ShareStateMoved { .. })
        ),
        "the first claim is over"
    );
    cluster
        .store_share_state(&key, (2, 20), second, &state(7, b"two"))
        .await
        .unwrap();
    assert_eq!(
        cluster.store_share_state(&key, (2, 21), second, &state(8, b"x")).await,
        Err(Error::LeaseLost(2)),
        "another incarnation stores nothing"
    );
    assert_eq!(
        cluster.claim_share_state(&key, 1, 11).await.map(|c| c.state),
        Err(Error::LeaseLost(1))
    );
    let stored = cluster.claim_share_state(&key, 1, 10).await.unwrap().state;
    assert_eq!(stored, Some(state(7, b"two")));
    let too_big = state(0, &vec![0; veltrix_shared::SHARE_STATE_BYTES_MAX + 1]);
    assert!(matches!(
        cluster.store_share_state(&key, (1, 10), second + 1, &too_big).await,
        Err(Error::InvalidLimit { .. })
    ));
    assert!(cluster.delete_topic("s").await.unwrap());
    let claimed = cluster.claim_share_state(&key, 1, 10).await.unwrap();
    assert_eq!(claimed.state, None, "the topic's share state went with it");
    cluster
        .store_share_state(&key, (1, 10), claimed.claim, &state(1, b"back"))
        .await
        .unwrap();
    cluster.delete_share_group("g").await.unwrap();
    let claimed = cluster.claim_share_state(&key, 1, 10).await.unwrap();
    assert_eq!(
        (claimed.state, claimed.settings),
        (None, None),
        "a deleted group has neither"
    );
}

#[tokio::test]
async fn share_state_follows_the_last_claim_in_memory() {
    let cluster = veltrix_shared::MemCluster::new();
    share_state_follows_the_last_claim(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_state_follows_the_last_claim_in_postgres() {
    let Some(pg) = start_postgres().await else { return };
    share_state_follows_the_last_claim(&open(&pg).await.unwrap()).await;
}

/// Share-partitions' states set and removed by administration, on any
/// cluster: listed by group, each named one's claim raised (so the broker
/// serving it stores nothing more under its old claim), the last of one
/// named twice kept, a removed one gone, and claims read back as they are.
async fn administered_share_states_raise_their_claims<C: Cluster>(cluster: &C) {
    use veltrix_shared::{ShareKey, ShareState};
    cluster.register(&lease(1, 10), 60_000).await.unwrap();
    cluster.create_topic(&topic("s", 9, 3)).await.unwrap();
    let key = |partition: i32| ShareKey {
        group: "g".into(),
        topic_id: [9; 16],
        partition,
    };
    let state = |start: i64| ShareState {
        start_offset: start,
        ranges: b"[]".to_vec(),
    };
    let held = cluster.claim_share_state(&key(0), 1, 10).await.unwrap().claim;
    cluster
        .store_share_state(&key(0), (1, 10), held, &state(4))
        .await
        .unwrap();
    cluster.claim_share_state(&key(1), 1, 10).await.unwrap();
    assert_eq!(
        cluster.share_starts("g").await.unwrap(),
        [(key(0), 4)],
        "a claim alone stores no start"
    );
    cluster
        .set_share_states(
            "g",
            (1, 10),
            &[
                ([9; 16], 0, Some(state(1))),
                ([9; 16], 0, Some(state(2))),
                ([9; 16], 2, Some(state(3))),
                ([9; 16], 1, None),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        cluster.share_starts("g").await.unwrap(),
        [(key(0), 2), (key(2), 3)],
        "the last of a partition named twice; the removed one gone"
    );
    assert!(cluster.share_starts("other").await.unwrap().is_empty());
    assert!(
        matches!(
            cluster.store_share_state(&key(0), (1, 10), held, &state(9)).await,
            Err(Error::ShareStateMoved { .. })
        ),
        "the serving broker's claim is over"
    );
    let claims = cluster.share_claims(&[key(0), key(1), key(2)]).await.unwrap();
    let claim_of = |k: &ShareKey| claims.iter().find(|(c, _)| c == k).map(|(_, n)| *n);
    assert!(claim_of(&key(0)).is_some_and(|c| c > held));
    assert_eq!(claim_of(&key(1)), None, "removed: no claim");
    assert!(claim_of(&key(2)).is_some());
    assert_eq!(
        cluster.set_share_states("g", (1, 11), &[([9; 16], 0, None)]).await,
        Err(Error::LeaseLost(1)),
        "another incarnation changes nothing"
    );
}

#[tokio::test]
async fn administered_share_states_raise_their_claims_in_memory() {
    let cluster = veltrix_shared::MemCluster::new();
    administered_share_states_raise_their_claims(&cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administered_share_states_raise_their_claims_in_postgres() {
    let Some(pg) = start_postgres().await else { return };
    administered_share_states_raise_their_claims(&open(&pg).await.unwrap()).await;
}
