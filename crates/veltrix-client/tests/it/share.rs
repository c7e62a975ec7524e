//! A share-group member's whole flow against a scripted broker: join with a
//! client-made member id at member epoch 0, open a share session at epoch 0
//! naming the assigned partitions, acknowledge what was acquired in the next
//! ShareFetch at epoch 1, close the session at epoch -1 and leave at member
//! epoch -1. The broker decodes every request with the codec and records it,
//! so the test checks what went on the wire, not what the client believes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::metadata_response::{MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::share_fetch_response::{AcquiredRecords, PartitionData, ShareFetchableTopicResponse};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, RequestHeader, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    ShareFetchRequest, ShareFetchResponse, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use uuid::Uuid;
use veltrix_client::{AckType, ClientConfig, Connection, ShareConsumer, ShareFetchOptions};

use crate::fake::{Answer, api_versions, fake_broker_with_bodies};

const TOPIC_ID: Uuid = Uuid::from_u128(0x0f1e_2d3c_4b5a_6978_8796_a5b4_c3d2_e1f0);

/// What the broker saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Heartbeat {
        member_id: String,
        epoch: i32,
        subscribed: Option<Vec<String>>,
    },
    Fetch {
        epoch: i32,
        partitions: Vec<i32>,
        acks: Vec<(i32, i64, i64, Vec<i8>)>,
        forgotten: Vec<i32>,
    },
    Acknowledge {
        epoch: i32,
        acks: Vec<(i32, i64, i64, Vec<i8>)>,
    },
}

fn answer<R: Encodable + HeaderVersion>(response: R, version: i16) -> Answer {
    let mut body = BytesMut::new();
    response.encode(&mut body, version).unwrap();
    Answer::Body {
        header_version: R::header_version(version),
        body: body.freeze(),
    }
}

fn metadata(version: i16) -> Answer {
    let topic = MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("jobs"))))
        .with_topic_id(TOPIC_ID)
        .with_partitions(
            (0..2)
                .map(|p| MetadataResponsePartition::default().with_partition_index(p))
                .collect(),
        );
    answer(MetadataResponse::default().with_topics(vec![topic]), version)
}

fn heartbeat(body: &mut Bytes, seen: &Mutex<Vec<Seen>>) -> Answer {
    let r = ShareGroupHeartbeatRequest::decode(body, 1).unwrap();
    seen.lock().unwrap().push(Seen::Heartbeat {
        member_id: r.member_id.to_string(),
        epoch: r.member_epoch,
        subscribed: r
            .subscribed_topic_names
            .map(|t| t.iter().map(|n| n.0.to_string()).collect()),
    });
    let mut response = ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(r.member_id.clone()))
        .with_heartbeat_interval_ms(5_000);
    if r.member_epoch == 0 {
        response = response
            .with_member_epoch(1)
            .with_assignment(Some(Assignment::default().with_topic_partitions(vec![
                TopicPartitions::default()
                    .with_topic_id(TOPIC_ID)
                    .with_partitions(vec![0, 1]),
            ])));
    } else {
        response = response.with_member_epoch(r.member_epoch);
    }
    answer(response, 1)
}

fn fetch(body: &mut Bytes, seen: &Mutex<Vec<Seen>>) -> Answer {
    let r = ShareFetchRequest::decode(body, 1).unwrap();
    let acks = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .flat_map(|p| {
            p.acknowledgement_batches.iter().map(|b| {
                (
                    p.partition_index,
                    b.first_offset,
                    b.last_offset,
                    b.acknowledge_types.clone(),
                )
            })
        })
        .collect::<Vec<_>>();
    seen.lock().unwrap().push(Seen::Fetch {
        epoch: r.share_session_epoch,
        partitions: r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
            .collect(),
        acks: acks.clone(),
        forgotten: r
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.clone())
            .collect(),
    });
    let partitions = if r.share_session_epoch == 0 {
        // Ten records of partition 0 acquired for the first time.
        vec![
            PartitionData::default()
                .with_partition_index(0)
                .with_records(Some(Bytes::from_static(b"ten records' batch")))
                .with_acquired_records(vec![
                    AcquiredRecords::default()
                        .with_first_offset(0)
                        .with_last_offset(9)
                        .with_delivery_count(1),
                ]),
        ]
    } else {
        // The acknowledgements recorded, nothing new.
        acks.iter()
            .map(|(p, ..)| PartitionData::default().with_partition_index(*p))
            .collect()
    };
    let response = ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(30_000)
        .with_responses(vec![
            ShareFetchableTopicResponse::default()
                .with_topic_id(TOPIC_ID)
                .with_partitions(partitions),
        ]);
    answer(response, 1)
}

fn acknowledge(body: &mut Bytes, seen: &Mutex<Vec<Seen>>) -> Answer {
    let r = ShareAcknowledgeRequest::decode(body, 1).unwrap();
    seen.lock().unwrap().push(Seen::Acknowledge {
        epoch: r.share_session_epoch,
        acks: r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| {
                p.acknowledgement_batches.iter().map(|b| {
                    (
                        p.partition_index,
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.clone(),
                    )
                })
            })
            .collect(),
    });
    answer(ShareAcknowledgeResponse::default(), 1)
}

async fn share_broker(seen: Arc<Mutex<Vec<Seen>>>) -> String {
    fake_broker_with_bodies(move |h: &RequestHeader, mut body| {
        let v = h.request_api_version;
        match ApiKey::try_from(h.request_api_key).unwrap() {
            ApiKey::ApiVersions => api_versions(
                0,
                &[
                    (ApiKey::ApiVersions, 0, 3),
                    (ApiKey::Metadata, 0, 12),
                    (ApiKey::ShareGroupHeartbeat, 1, 1),
                    (ApiKey::ShareFetch, 1, 1),
                    (ApiKey::ShareAcknowledge, 1, 1),
                ],
                v,
            ),
            ApiKey::Metadata => {
                MetadataRequest::decode(&mut body, v).unwrap();
                metadata(v)
            }
            ApiKey::ShareGroupHeartbeat => heartbeat(&mut body, &seen),
            ApiKey::ShareFetch => fetch(&mut body, &seen),
            ApiKey::ShareAcknowledge => acknowledge(&mut body, &seen),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await
}

#[tokio::test]
async fn a_member_joins_opens_a_session_acknowledges_in_the_next_fetch_and_closes() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = share_broker(seen.clone()).await;
    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    let connection = Connection::connect(&addr, config).await.unwrap();
    let member = veltrix_client::member_id(Uuid::from_u128(7));
    let mut consumer = ShareConsumer::join(
        connection,
        "workers",
        "jobs",
        member.clone(),
        ShareFetchOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(consumer.member_epoch(), 1);
    assert_eq!(consumer.assigned().iter().copied().collect::<Vec<_>>(), vec![0, 1]);

    let first = consumer.fetch().await.unwrap();
    assert_eq!(first.acquired(), 10);
    assert_eq!(first.partitions[0].records, Bytes::from_static(b"ten records' batch"));
    assert_eq!(first.acks, vec![]);
    for p in &first.partitions {
        for a in &p.acquired {
            consumer
                .acknowledge(p.partition, a.first_offset, a.last_offset, AckType::Accept)
                .unwrap();
        }
    }
    let second = consumer.fetch().await.unwrap();
    assert_eq!(second.acknowledged(), 10, "{:?}", second.acks);
    assert_eq!(consumer.session().epoch(), 2);
    consumer.close().await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            Seen::Heartbeat {
                member_id: member.clone(),
                epoch: 0,
                subscribed: Some(vec!["jobs".into()])
            },
            Seen::Fetch {
                epoch: 0,
                partitions: vec![0, 1],
                acks: vec![],
                forgotten: vec![]
            },
            Seen::Fetch {
                epoch: 1,
                partitions: vec![0],
                acks: vec![(0, 0, 9, vec![1])],
                forgotten: vec![]
            },
            Seen::Acknowledge {
                epoch: -1,
                acks: vec![]
            },
            Seen::Heartbeat {
                member_id: member,
                epoch: -1,
                subscribed: None
            },
        ]
    );
}
