//! Protocol-level tests of the Kafka front door: a broker in this process on an
//! ephemeral 127.0.0.1 port, driven by a minimal client built on the same codec.
//! Real clients (librdkafka, kafka-python, KafkaJS) are tested in tests/clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
    OffsetCommitRequest, ProduceRequest, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use veltrix_core::{Broker, BrokerConfig};
use veltrix_kafka::{KafkaConfig, errors, serve};
use veltrix_log::Env;

mod acl_matrix;
mod admin;
mod admin_answers;
mod alter_configs;
mod consumer_groups;
mod decode;
mod fetch_memory;
mod groups;
mod idempotence;
mod limits;
mod quotas;
mod security;
mod share_offsets;
mod shared;
mod storms;
mod tiers;
mod transactions;
mod validation;

/// A broker serving on an ephemeral port until dropped.
struct Server {
    addr: SocketAddr,
    /// The engine behind it, to watch what it holds.
    broker: Arc<Broker>,
    stop: watch::Sender<bool>,
    /// The accept loop, awaited by [`Server::restart`].
    serving: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// What the server was started with, to start it again.
    broker_config: BrokerConfig,
    kafka_config: KafkaConfig,
    /// Taken by [`Server::restart`] (the new server owns it).
    dir: Option<tempfile::TempDir>,
    /// The storage and clock the engine runs on.
    env: Arc<Env>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn start(config: impl FnOnce(&mut KafkaConfig)) -> Server {
    start_with_broker(BrokerConfig::default(), config).await
}

/// As [`start`], with engine settings other than the defaults.
async fn start_with_broker(broker_config: BrokerConfig, config: impl FnOnce(&mut KafkaConfig)) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut kafka = KafkaConfig::new(listener.local_addr().unwrap());
    config(&mut kafka);
    serve_in(
        Env::system(),
        tempfile::tempdir().unwrap(),
        listener,
        broker_config,
        kafka,
    )
}

/// As [`start`], the engine on `env` (for instance a simulated disk).
async fn start_on(env: Arc<Env>, config: impl FnOnce(&mut KafkaConfig)) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut kafka = KafkaConfig::new(listener.local_addr().unwrap());
    config(&mut kafka);
    serve_in(
        env,
        tempfile::tempdir().unwrap(),
        listener,
        BrokerConfig::default(),
        kafka,
    )
}

fn serve_in(
    env: Arc<Env>,
    dir: tempfile::TempDir,
    listener: tokio::net::TcpListener,
    broker_config: BrokerConfig,
    kafka: KafkaConfig,
) -> Server {
    // No test here is about the disk filling: the host's free space must not
    // decide whether a bulk topic takes a produce (CI machines run with a
    // few hundred megabytes free at times).
    let broker_config = BrokerConfig {
        disk: veltrix_core::disk::DiskWatermarks {
            bulk_free_percent_min: 0,
            standard_free_percent_min: 0,
            reserve_bytes_min: 0,
        },
        ..broker_config
    };
    let broker = Arc::new(Broker::open(env.clone(), dir.path(), broker_config.clone()).unwrap());
    if let Some(shared) = &kafka.shared {
        shared.attach(&broker);
    }
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let serving = tokio::spawn(serve(listener, broker.clone(), kafka.clone(), stop_rx));
    Server {
        addr,
        broker,
        stop,
        serving: Some(serving),
        broker_config,
        kafka_config: kafka,
        dir: Some(dir),
        env,
    }
}

impl Server {
    /// Stops serving, drops the engine without closing it (what survives is
    /// what was written before each answer) and opens its data directory
    /// again behind a new listener.
    async fn restart(mut self) -> Server {
        let _ = self.stop.send(true);
        if let Some(serving) = self.serving.take() {
            serving.await.unwrap().unwrap();
        }
        let dir = self.dir.take().expect("a data directory");
        let (broker_config, kafka, env) = (self.broker_config.clone(), self.kafka_config.clone(), self.env.clone());
        let broker = Arc::downgrade(&self.broker);
        drop(self);
        // Handlers on the blocking pool may hold the engine a moment longer;
        // its directory lock goes when the last handle does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.strong_count() > 0 {
            assert!(Instant::now() < deadline, "the engine is still held after 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kafka = KafkaConfig {
            advertised: listener.local_addr().unwrap(),
            ..kafka
        };
        serve_in(env, dir, listener, broker_config, kafka)
    }
}

/// Polls until the broker holds request bytes in its memory budget (a
/// request read and not yet answered), for at most `limit`.
async fn until_in_flight(s: &Server, limit: Duration) {
    let deadline = Instant::now() + limit;
    while s.broker.metrics().in_flight_bytes.get() == 0 {
        assert!(Instant::now() < deadline, "no request in flight within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A bare Kafka connection: encodes requests, decodes responses.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation_id: 0,
        }
    }

    async fn send_only<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("it")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).unwrap();
        request
            .encode(&mut body, version)
            .unwrap_or_else(|e| panic!("encoding {:?} v{version}: {e}", R::KEY));
        self.write_frame(&body).await;
        self.correlation_id
    }

    async fn write_frame(&mut self, body: &[u8]) {
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(body);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), self.stream.read_exact(&mut len))
            .await
            .expect("response within 10 s")
            .ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    async fn call<R: Request>(&mut self, request: R, version: i16) -> R::Response {
        let id = self.send_only(&request, version).await;
        let mut frame = self.read_frame().await.expect("a response");
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id);
        R::Response::decode(&mut frame, version).unwrap()
    }
}

fn topic(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// An OffsetCommit of `offset` for partition 0 of topic `t`, by `member_id`
/// at `generation` of `group` (a member epoch in a consumer-protocol group;
/// -1 and no member id from outside any group).
fn commit_to_t0(group: &str, generation: i32, member_id: &str, offset: i64) -> OffsetCommitRequest {
    use kafka_protocol::messages::GroupId;
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member_id.to_owned()))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic("t"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ])
}

fn records(values: &[&str], compression: Compression) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::from([(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"x")))]),
            ..veltrix_client::plain_record(i as i64, -1, 1_700_000_000_000 + i as i64)
        })
        .collect();
    veltrix_client::encode_records(&records, compression).unwrap()
}

/// As [`records`], but all in one batch: the encoder starts a new batch
/// wherever offset minus sequence changes, so sequences follow the offsets.
fn one_batch(values: &[&str], compression: Compression) -> Bytes {
    let mut batches = records(values, compression);
    let records: Vec<Record> = RecordBatchDecoder::decode_all(&mut batches)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|r| Record {
            sequence: r.offset as i32,
            ..r
        })
        .collect();
    veltrix_client::encode_records(&records, compression).unwrap()
}

async fn create_topic(c: &mut Client, name: &str, partitions: i32) {
    let mut t = CreatableTopic::default();
    t.name = topic(name);
    t.num_partitions = partitions;
    t.replication_factor = 1;
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 5).await;
    assert_eq!(r.topics[0].error_code, errors::NONE, "{:?}", r.topics[0].error_message);
}

async fn produce(c: &mut Client, name: &str, partition: i32, acks: i16, batch: Bytes) -> (i16, i64) {
    let pd = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(batch));
    let td = TopicProduceData::default()
        .with_name(topic(name))
        .with_partition_data(vec![pd]);
    let r = c
        .call(
            ProduceRequest::default()
                .with_acks(acks)
                .with_timeout_ms(5000)
                .with_topic_data(vec![td]),
            9,
        )
        .await;
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_request(name: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let fp = FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20);
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(4 << 20)
        .with_topics(vec![
            FetchTopic::default().with_topic(topic(name)).with_partitions(vec![fp]),
        ])
}

/// Zeroes the two fields the broker writes in every batch (base offset and leader
/// epoch), so stored bytes can be compared with what was sent.
fn broker_fields_masked(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut at = 0;
    while at + 12 <= out.len() {
        let size = 12 + i32::from_be_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
        out[at..at + 8].fill(0);
        out[at + 12..at + 16].fill(0);
        at += size;
    }
    out
}

#[tokio::test]
async fn api_versions_advertises_exactly_what_is_served() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let r = c.call(ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, errors::NONE);
    let mut keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    keys.sort();
    let mut want = vec![
        ApiKey::Produce as i16,
        ApiKey::Fetch as i16,
        ApiKey::ListOffsets as i16,
        ApiKey::Metadata as i16,
        ApiKey::ApiVersions as i16,
        ApiKey::CreateTopics as i16,
        ApiKey::DeleteTopics as i16,
        ApiKey::CreatePartitions as i16,
        ApiKey::DeleteRecords as i16,
        ApiKey::DescribeConfigs as i16,
        ApiKey::DescribeCluster as i16,
        ApiKey::InitProducerId as i16,
        ApiKey::IncrementalAlterConfigs as i16,
        ApiKey::AlterConfigs as i16,
        ApiKey::FindCoordinator as i16,
        ApiKey::JoinGroup as i16,
        ApiKey::SyncGroup as i16,
        ApiKey::Heartbeat as i16,
        ApiKey::LeaveGroup as i16,
        ApiKey::OffsetCommit as i16,
        ApiKey::OffsetFetch as i16,
        ApiKey::OffsetDelete as i16,
        ApiKey::ListGroups as i16,
        ApiKey::DescribeGroups as i16,
        ApiKey::DeleteGroups as i16,
        ApiKey::ConsumerGroupHeartbeat as i16,
        ApiKey::ConsumerGroupDescribe as i16,
        ApiKey::ShareGroupHeartbeat as i16,
        ApiKey::ShareGroupDescribe as i16,
        ApiKey::ShareFetch as i16,
        ApiKey::ShareAcknowledge as i16,
        ApiKey::DescribeShareGroupOffsets as i16,
        ApiKey::AlterShareGroupOffsets as i16,
        ApiKey::DeleteShareGroupOffsets as i16,
        ApiKey::DescribeClientQuotas as i16,
        ApiKey::AlterClientQuotas as i16,
        ApiKey::SaslHandshake as i16,
        ApiKey::SaslAuthenticate as i16,
        ApiKey::DescribeAcls as i16,
        ApiKey::CreateAcls as i16,
        ApiKey::DeleteAcls as i16,
        ApiKey::DescribeUserScramCredentials as i16,
        ApiKey::AlterUserScramCredentials as i16,
        ApiKey::AddPartitionsToTxn as i16,
        ApiKey::AddOffsetsToTxn as i16,
        ApiKey::TxnOffsetCommit as i16,
        ApiKey::EndTxn as i16,
        ApiKey::DescribeTransactions as i16,
        ApiKey::ListTransactions as i16,
    ];
    want.sort();
    assert_eq!(keys, want);
}

#[tokio::test]
async fn a_too_new_api_versions_request_is_told_what_to_use() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let id = c.send_only(&ApiVersionsRequest::default(), 4).await;
    let mut frame = c.read_frame().await.unwrap();
    // The answer uses the v0 layout, whatever version was asked for.
    let header = ResponseHeader::decode(&mut frame, 0).unwrap();
    assert_eq!(header.correlation_id, id);
    let r = kafka_protocol::messages::ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(r.error_code, errors::ResponseError::UnsupportedVersion.code());
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::ApiVersions as i16 && k.max_version == 3)
    );
}

#[tokio::test]
async fn produced_batches_are_fetched_back_unchanged_but_for_the_offset() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 2).await;
    for (i, compression) in [Compression::None, Compression::Lz4, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let batch = records(&["a", "bb", "ccc"], compression);
        let (err, base) = produce(&mut c, "t", 1, -1, batch.clone()).await;
        assert_eq!((err, base), (errors::NONE, 3 * i as i64));
        let r = c.call(fetch_request("t", 1, base, 0), 11).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, errors::NONE);
        assert_eq!(p.high_watermark, 3 * (i as i64 + 1));
        let got = p.records.clone().unwrap();
        assert_eq!(got.len(), batch.len());
        assert_eq!(
            broker_fields_masked(&got),
            broker_fields_masked(&batch),
            "only the base offset and leader epoch, outside the CRC, differ"
        );
        let mut buf = got.clone();
        let decoded: Vec<Record> = RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect();
        let values: Vec<_> = decoded.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, vec![Bytes::from("a"), Bytes::from("bb"), Bytes::from("ccc")]);
        let offsets: Vec<i64> = decoded.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![base, base + 1, base + 2]);
    }
}

#[tokio::test]
async fn acks_zero_gets_no_response_and_later_responses_stay_in_order() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let pd = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records(&["x"], Compression::None)));
    let td = TopicProduceData::default()
        .with_name(topic("t"))
        .with_partition_data(vec![pd]);
    c.send_only(&ProduceRequest::default().with_acks(0).with_topic_data(vec![td]), 9)
        .await;
    let r = c.call(ApiVersionsRequest::default(), 3).await;
    assert_eq!(r.error_code, errors::NONE);
    // The acks=0 batch still becomes visible.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = c.call(fetch_request("t", 0, 0, 100), 11).await;
        if r.responses[0].partitions[0].high_watermark == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "acks=0 batch never became visible");
    }
}

/// A fetch's `max_bytes` is exceeded only by the first partition with data, and
/// only by its first batch (KIP-74); later partitions get only what still fits.
#[tokio::test]
async fn fetch_max_bytes_is_exceeded_only_by_the_first_batch() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 3).await;
    let big = "x".repeat(10_000);
    for p in 0..3 {
        assert_eq!(
            produce(&mut c, "t", p, -1, records(&[big.as_str()], Compression::None))
                .await
                .0,
            errors::NONE
        );
    }
    let partitions: Vec<FetchPartition> = (0..3)
        .map(|p| {
            FetchPartition::default()
                .with_partition(p)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)
        })
        .collect();
    for (max_bytes, want) in [
        (15_000, [true, false, false]),
        (1, [true, false, false]),
        (25_000, [true, true, false]),
    ] {
        let request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(partitions.clone()),
            ]);
        let r = c.call(request, 11).await;
        let got: Vec<bool> = r.responses[0]
            .partitions
            .iter()
            .map(|p| {
                assert_eq!((p.error_code, p.high_watermark), (errors::NONE, 1));
                p.records.as_ref().is_some_and(|b| !b.is_empty())
            })
            .collect();
        assert_eq!(got, want, "max_bytes {max_bytes}");
    }
}

/// Pipelined produce requests are appended in request order and answered in
/// request order; a request of another kind waits for them, so it sees their
/// effects. Two topics sharing a partition index keep their own outcomes. Some
/// requests are over `INLINE_APPEND_BYTES_MAX` (appended on the blocking pool,
/// the others on the connection's task): the order holds across both.
#[tokio::test]
async fn pipelined_produces_are_appended_and_answered_in_order() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let mut ids = Vec::new();
    let mut bases = Vec::new();
    let mut next = 0;
    let big = "b".repeat(600_000);
    for i in 0..20 {
        let value = format!("v{i}");
        let batches = if i % 5 == 2 {
            // Two batches of one record each, over 1 MiB in all.
            let one = records(&[big.as_str()], Compression::None);
            let both: Bytes = [one.clone(), one].concat().into();
            assert!(both.len() > veltrix_kafka::INLINE_APPEND_BYTES_MAX);
            bases.push(next);
            next += 2;
            both
        } else {
            bases.push(next);
            next += 1;
            records(&[value.as_str()], Compression::None)
        };
        let pd = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batches));
        let mut topics = vec![
            TopicProduceData::default()
                .with_name(topic("t"))
                .with_partition_data(vec![pd.clone()]),
        ];
        // Partition 0 of a topic that does not exist fails on its own.
        topics.push(
            TopicProduceData::default()
                .with_name(topic("missing"))
                .with_partition_data(vec![pd]),
        );
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(5000)
            .with_topic_data(topics);
        ids.push(c.send_only(&request, 9).await);
    }
    let fetch_id = c.send_only(&fetch_request("t", 0, 0, 0), 11).await;
    for (i, id) in ids.iter().enumerate() {
        let mut frame = c.read_frame().await.expect("a produce response");
        let header =
            ResponseHeader::decode(&mut frame, kafka_protocol::messages::ProduceResponse::header_version(9)).unwrap();
        assert_eq!(header.correlation_id, *id, "responses in request order");
        let r = kafka_protocol::messages::ProduceResponse::decode(&mut frame, 9).unwrap();
        let ok = &r.responses[0].partition_responses[0];
        assert_eq!((ok.error_code, ok.base_offset), (errors::NONE, bases[i]));
        let missing = &r.responses[1].partition_responses[0];
        assert_eq!(
            missing.error_code,
            errors::ResponseError::UnknownTopicOrPartition.code()
        );
    }
    let mut frame = c.read_frame().await.expect("the fetch response");
    let header =
        ResponseHeader::decode(&mut frame, kafka_protocol::messages::FetchResponse::header_version(11)).unwrap();
    assert_eq!(header.correlation_id, fetch_id);
    let r = kafka_protocol::messages::FetchResponse::decode(&mut frame, 11).unwrap();
    assert_eq!(
        r.responses[0].partitions[0].high_watermark, next,
        "the fetch ran after the produces"
    );
}

#[tokio::test]
async fn errors_are_per_partition_and_named() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let batch = records(&["x"], Compression::None);
    assert_eq!(
        produce(&mut c, "nope", 0, -1, batch.clone()).await.0,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut c, "t", 7, -1, batch.clone()).await.0,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        produce(&mut c, "t", 0, 2, batch.clone()).await.0,
        errors::ResponseError::InvalidRequiredAcks.code()
    );
    let mut bad_crc = BytesMut::from(&batch[..]);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    assert_eq!(
        produce(&mut c, "t", 0, -1, bad_crc.freeze()).await.0,
        errors::ResponseError::CorruptMessage.code()
    );
    let r = c.call(fetch_request("t", 0, 5, 0), 11).await;
    assert_eq!(
        r.responses[0].partitions[0].error_code,
        errors::ResponseError::OffsetOutOfRange.code()
    );
    let m = c
        .call(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("nope"))),
            ])),
            9,
        )
        .await;
    assert_eq!(
        m.topics[0].error_code,
        errors::ResponseError::UnknownTopicOrPartition.code()
    );
    let mut t = CreatableTopic::default();
    t.name = topic("t");
    t.num_partitions = 1;
    t.replication_factor = 3;
    let r = c.call(CreateTopicsRequest::default().with_topics(vec![t]), 5).await;
    assert_eq!(
        r.topics[0].error_code,
        errors::ResponseError::InvalidReplicationFactor.code()
    );
}

#[tokio::test]
async fn list_offsets_answers_earliest_latest_and_by_time() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    produce(&mut c, "t", 0, -1, records(&["a", "b"], Compression::None)).await;
    produce(&mut c, "t", 0, -1, records(&["c"], Compression::None)).await;
    for version in [1, 7] {
        let ask = |ts| {
            ListOffsetsRequest::default().with_topics(vec![
                ListOffsetsTopic::default().with_name(topic("t")).with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(ts),
                ]),
            ])
        };
        let offset = |r: kafka_protocol::messages::ListOffsetsResponse| r.topics[0].partitions[0].offset;
        assert_eq!(offset(c.call(ask(-2), version).await), 0);
        assert_eq!(offset(c.call(ask(-1), version).await), 3);
        // Records are stamped 1_700_000_000_000 + their index in the request, and
        // this encoder puts each record in a batch of its own.
        assert_eq!(offset(c.call(ask(1_700_000_000_001), version).await), 1);
        assert_eq!(offset(c.call(ask(9_000_000_000_000), version).await), -1);
    }
}

/// A producer may store a small compressed batch that expands past what the
/// broker will decompress to look inside it. ListOffsets then answers with the
/// batch (its first offset, its largest timestamp) instead of the record, and
/// never inflates more than `LIST_OFFSETS_DECOMPRESSED_BYTES_MAX`; a compressed
/// batch within the bound is still answered by record.
#[tokio::test]
async fn list_offsets_decompresses_a_stored_batch_only_within_its_bound() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    // Zeros compress about a thousandfold: the batch is small on the wire and
    // on disk, and only its decompression would be large.
    let past = "\0".repeat(veltrix_kafka::LIST_OFFSETS_DECOMPRESSED_BYTES_MAX);
    for (name, first) in [("past", past.as_str()), ("within", "a")] {
        create_topic(&mut c, name, 1).await;
        let (error, _) = produce(&mut c, name, 0, -1, one_batch(&[first, "b"], Compression::Gzip)).await;
        assert_eq!(error, errors::NONE);
    }
    let ask = |name: &str, ts| {
        ListOffsetsRequest::default().with_topics(vec![
            ListOffsetsTopic::default().with_name(topic(name)).with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts),
            ]),
        ])
    };
    let answer = |r: kafka_protocol::messages::ListOffsetsResponse| {
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.timestamp, p.offset)
    };
    // Records are stamped 1_700_000_000_000 + their index in the batch: the
    // second record (offset 1) is the first one at or after +1.
    let ts = 1_700_000_000_001;
    assert_eq!(
        answer(c.call(ask("within", ts), 7).await),
        (errors::NONE, ts, 1),
        "by record"
    );
    assert_eq!(
        answer(c.call(ask("past", ts), 7).await),
        (errors::NONE, ts, 0),
        "by batch"
    );
}

#[tokio::test]
async fn a_waiting_fetch_returns_as_soon_as_data_arrives() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let started = Instant::now();
    let mut fetch = tokio::spawn(async move { c.call(fetch_request("t", 0, 0, 10_000), 11).await });
    // Produced once the fetch waits in the broker, and not before.
    until_in_flight(&s, Duration::from_secs(5)).await;
    let early = tokio::time::timeout(Duration::from_millis(250), &mut fetch).await;
    assert!(early.is_err(), "returned before the data existed");
    let mut p = Client::connect(s.addr).await;
    assert_eq!(
        produce(&mut p, "t", 0, -1, records(&["late"], Compression::None))
            .await
            .0,
        errors::NONE
    );
    let r = fetch.await.unwrap();
    let waited = started.elapsed();
    assert!(
        r.responses[0].partitions[0]
            .records
            .as_ref()
            .is_some_and(|b| !b.is_empty())
    );
    assert!(waited < Duration::from_secs(5), "long poll did not wake up: {waited:?}");
}

#[tokio::test]
async fn oversized_and_negative_frames_close_the_connection() {
    let s = start(|k| k.request_bytes_max = 1024).await;
    for len in [2048i32, -1, 0] {
        let mut c = Client::connect(s.addr).await;
        c.stream.write_all(&len.to_be_bytes()).await.unwrap();
        assert!(c.read_frame().await.is_none(), "length {len} was not refused");
    }
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, errors::NONE);
}

#[tokio::test]
async fn random_bytes_never_take_the_broker_down() {
    let s = start(|k| k.request_bytes_max = 1 << 16).await;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..300 {
        let mut c = Client::connect(s.addr).await;
        let len = (next() % 200) as usize;
        let mut body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        // Half the rounds look like a real request header, so decoding goes deeper.
        if round % 2 == 0 && body.len() >= 4 {
            let key = (next() % 70) as i16;
            let version = (next() % 14) as i16;
            body[0..2].copy_from_slice(&key.to_be_bytes());
            body[2..4].copy_from_slice(&version.to_be_bytes());
        }
        c.write_frame(&body).await;
        // Either an answer or a closed connection; never a hang.
        let _ = c.read_frame().await;
    }
    let mut c = Client::connect(s.addr).await;
    assert_eq!(c.call(ApiVersionsRequest::default(), 3).await.error_code, errors::NONE);
}
