//! The cluster's rules on [`MemCluster`], the clock moved by hand.

use std::sync::Arc;

use super::MemCluster;
use crate::catalog::{BatchEntry, Catalog, ObjectCommit, ProducerStamp};
use crate::cluster::{BrokerLease, Cluster, OffsetRow, TopicRow};
use crate::error::Error;

fn lease(broker_id: i32, incarnation: i64) -> BrokerLease {
    BrokerLease {
        broker_id,
        incarnation,
        host: format!("broker-{broker_id}"),
        port: 9092,
        listeners: Vec::new(),
    }
}

fn topic(name: &str, id: u8, partitions: i32) -> TopicRow {
    TopicRow {
        name: name.into(),
        id: [id; 16],
        partitions,
        config: "{}".into(),
    }
}

fn offset(topic: &str, partition: i32, offset: i64) -> OffsetRow {
    OffsetRow {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: "m".into(),
    }
}

/// One idempotent batch of `topic`'s partition, in an object of its own.
fn object(key: &str, topic: &str, partition: i32) -> ObjectCommit {
    ObjectCommit {
        key: key.into(),
        size: 10,
        batches: vec![BatchEntry {
            topic: Arc::from(topic),
            partition,
            record_count: 2,
            max_timestamp: 0,
            producer: Some(ProducerStamp {
                producer_id: 7,
                epoch: 0,
                first_seq: 0,
            }),
            byte_start: 0,
            byte_len: 10,
            crc32c: 0,
        }],
    }
}

#[tokio::test]
async fn a_live_lease_refuses_another_incarnation_until_it_expires() {
    let cluster = MemCluster::new();
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    assert_eq!(
        cluster.register(&lease(1, 200), 1_000).await,
        Err(Error::BrokerIdInUse(1))
    );
    // The same incarnation registering again (a retry) is no conflict.
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    cluster.advance(999);
    assert_eq!(cluster.live_brokers().await.unwrap().len(), 1);
    assert!(cluster.register(&lease(1, 200), 1_000).await.is_err(), "live 1 ms more");
    cluster.advance(1);
    assert!(cluster.live_brokers().await.unwrap().is_empty(), "expired at its end");
    cluster.register(&lease(1, 200), 1_000).await.unwrap();
    let live = cluster.live_brokers().await.unwrap();
    assert_eq!((live[0].broker_id, live[0].host.as_str()), (1, "broker-1"));
}

#[tokio::test]
async fn renew_extends_a_live_lease_and_fails_once_lost() {
    let cluster = MemCluster::new();
    cluster.set_now_ms(10_000);
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    cluster.advance(800);
    cluster.renew(1, 100, 1_000).await.unwrap();
    cluster.advance(800);
    assert_eq!(cluster.live_brokers().await.unwrap().len(), 1, "renewed from 10.8 s");
    assert_eq!(cluster.renew(1, 999, 1_000).await, Err(Error::LeaseLost(1)));
    cluster.advance(200);
    assert_eq!(cluster.renew(1, 100, 1_000).await, Err(Error::LeaseLost(1)), "expired");
    // Taken over: the old incarnation stays out, even after the new one's
    // lease expires.
    cluster.register(&lease(1, 200), 1_000).await.unwrap();
    assert_eq!(cluster.renew(1, 100, 1_000).await, Err(Error::LeaseLost(1)));
    cluster.advance(5_000);
    assert_eq!(cluster.renew(1, 200, 1_000).await, Err(Error::LeaseLost(1)));
    assert_eq!(
        cluster.renew(9, 1, 1_000).await,
        Err(Error::LeaseLost(9)),
        "never registered"
    );
    assert!(matches!(
        cluster.renew(1, 200, 10).await,
        Err(Error::InvalidLimit { name: "lease_ms", .. })
    ));
}

#[tokio::test]
async fn resign_ends_only_its_own_lease() {
    let cluster = MemCluster::new();
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    cluster.register(&lease(2, 100), 1_000).await.unwrap();
    cluster.resign(1, 555).await.unwrap();
    assert_eq!(cluster.live_brokers().await.unwrap().len(), 2);
    cluster.resign(1, 100).await.unwrap();
    let live = cluster.live_brokers().await.unwrap();
    assert_eq!(live.iter().map(|b| b.broker_id).collect::<Vec<_>>(), [2]);
    cluster.register(&lease(1, 300), 1_000).await.unwrap();
}

#[tokio::test]
async fn commit_offsets_is_refused_once_the_lease_is_lost() {
    let cluster = MemCluster::new();
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    let first = [offset("t", 0, 5), offset("t", 1, 8)];
    cluster.commit_offsets("g", 1, 100, &first).await.unwrap();
    cluster.commit_offsets("g", 1, 100, &[offset("t", 0, 6)]).await.unwrap();
    assert_eq!(
        cluster.fetch_offsets("g").await.unwrap(),
        [offset("t", 0, 6), offset("t", 1, 8)]
    );
    assert_eq!(
        cluster.commit_offsets("g", 1, 999, &[offset("t", 0, 7)]).await,
        Err(Error::LeaseLost(1)),
        "another incarnation"
    );
    cluster.advance(1_000);
    assert_eq!(
        cluster.commit_offsets("g", 1, 100, &[offset("t", 0, 7)]).await,
        Err(Error::LeaseLost(1))
    );
    assert_eq!(cluster.fetch_offsets("g").await.unwrap()[0].offset, 6, "nothing stored");
    assert_eq!(cluster.groups().await.unwrap(), ["g"]);
    cluster.delete_offsets("g", Some(&[("t".into(), 0)])).await.unwrap();
    assert_eq!(cluster.fetch_offsets("g").await.unwrap(), [offset("t", 1, 8)]);
    cluster.delete_offsets("g", None).await.unwrap();
    assert!(cluster.groups().await.unwrap().is_empty());
    assert!(cluster.fetch_offsets("g").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_created_topic_is_writable_and_its_deletion_takes_everything() {
    let cluster = MemCluster::new();
    cluster.create_topic(&topic("t", 1, 2)).await.unwrap();
    assert_eq!(
        cluster.create_topic(&topic("t", 2, 1)).await,
        Err(Error::TopicExists("t".into()))
    );
    assert!(matches!(
        cluster.create_topic(&topic("u", 1, 1)).await,
        Err(Error::Other(_))
    ));
    assert!(matches!(
        cluster.create_topic(&topic("u", 3, 0)).await,
        Err(Error::InvalidLimit { name: "partitions", .. })
    ));
    let outcomes = cluster.commit(&object("o1", "t", 1)).await.unwrap();
    assert_eq!(outcomes[0].as_ref().unwrap().base_offset, 0);
    cluster.register(&lease(1, 100), 1_000).await.unwrap();
    cluster.commit_offsets("g", 1, 100, &[offset("t", 1, 2)]).await.unwrap();
    cluster.set_topic_config("t", "{\"retention.ms\":1}").await.unwrap();
    assert_eq!(cluster.topics().await.unwrap()[0].config, "{\"retention.ms\":1}");

    assert!(cluster.delete_topic("t").await.unwrap());
    assert!(!cluster.delete_topic("t").await.unwrap());
    assert!(cluster.topics().await.unwrap().is_empty());
    assert_eq!(cluster.end_offset("t", 1).await.unwrap(), None);
    assert!(cluster.batches("t", 1, 0, 10).await.unwrap().is_empty());
    assert!(
        cluster.groups().await.unwrap().is_empty(),
        "the topic's offsets went too"
    );
    // Created again: empty, and the producer's state was forgotten too (a
    // remembered batch would be answered as a duplicate).
    cluster.create_topic(&topic("t", 4, 2)).await.unwrap();
    let again = cluster.commit(&object("o2", "t", 1)).await.unwrap();
    let again = again[0].as_ref().unwrap();
    assert_eq!((again.base_offset, again.duplicate), (0, false));
}

#[tokio::test]
async fn set_partitions_only_grows() {
    let cluster = MemCluster::new();
    assert_eq!(
        cluster.set_partitions("t", 3).await,
        Err(Error::UnknownTopic("t".into()))
    );
    assert_eq!(
        cluster.set_topic_config("t", "").await,
        Err(Error::UnknownTopic("t".into()))
    );
    cluster.create_topic(&topic("t", 1, 2)).await.unwrap();
    cluster.commit(&object("o1", "t", 1)).await.unwrap();
    cluster.set_partitions("t", 4).await.unwrap();
    cluster.set_partitions("t", 4).await.unwrap();
    assert!(matches!(
        cluster.set_partitions("t", 3).await,
        Err(Error::InvalidLimit { min: 4, .. })
    ));
    assert_eq!(cluster.topics().await.unwrap()[0].partitions, 4);
    assert_eq!(cluster.end_offset("t", 1).await.unwrap(), Some(2), "kept");
    assert_eq!(cluster.end_offset("t", 3).await.unwrap(), Some(0), "new, at 0");
    assert_eq!(cluster.end_offset("t", 4).await.unwrap(), None);
}

#[tokio::test]
async fn producer_id_blocks_are_disjoint() {
    let cluster = MemCluster::new();
    let mut blocks = Vec::new();
    for count in [1, 1000, 7, 1] {
        let first = cluster.allocate_producer_ids(count).await.unwrap();
        blocks.push(first..first + count);
    }
    assert_eq!(blocks, [0..1, 1..1001, 1001..1008, 1008..1009]);
    for bad in [0, -1, 1_000_001] {
        assert!(matches!(
            cluster.allocate_producer_ids(bad).await,
            Err(Error::InvalidLimit { .. })
        ));
    }
    assert_eq!(cluster.allocate_producer_ids(1).await.unwrap(), 1009);
}

#[tokio::test]
async fn every_operation_fails_while_unavailable() {
    let cluster = MemCluster::new();
    cluster.set_unavailable(true);
    assert!(matches!(
        cluster.register(&lease(1, 1), 1_000).await,
        Err(Error::CatalogUnavailable(_))
    ));
    assert!(matches!(cluster.topics().await, Err(Error::CatalogUnavailable(_))));
    assert!(matches!(
        cluster.allocate_producer_ids(1).await,
        Err(Error::CatalogUnavailable(_))
    ));
    cluster.set_unavailable(false);
    cluster.register(&lease(1, 1), 1_000).await.unwrap();
}
