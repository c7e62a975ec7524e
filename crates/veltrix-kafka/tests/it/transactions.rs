//! Transactions over the wire beside the broker's housekeeping: a decided
//! transaction's markers are written once, by whoever decided it, never
//! again by housekeeping running at the same time. A marker written twice
//! takes an offset, and one written late, after the producer's next
//! transaction began in the partition, would end that transaction too.

use std::sync::atomic::{AtomicBool, Ordering};

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::ListOffsetsPartition;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, EndTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId,
};
use veltrix_client::{encode_records, plain_record};
use veltrix_core::txn::EndOutcome;

use super::*;

const TX: &str = "tx";

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str(TX))
}

async fn init(c: &mut Client) -> (i64, i16) {
    let r = c
        .call(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id()))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            4,
        )
        .await;
    assert_eq!(r.error_code, errors::NONE);
    (r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn of partition 0 of `name`, then one transactional
/// record there with sequence `seq`; its offset.
async fn write_in_txn(c: &mut Client, name: &str, (pid, epoch): (i64, i16), seq: i32) -> i64 {
    let add = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id())
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![0]),
        ]);
    let r = c.call(add, 3).await;
    let code = r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code;
    assert_eq!(code, errors::NONE, "AddPartitionsToTxn of transaction {seq}");
    let record = Record {
        transactional: true,
        producer_id: pid,
        producer_epoch: epoch,
        value: Some(Bytes::from(format!("v{seq}"))),
        ..plain_record(0, seq, 1_700_000_000_000)
    };
    let batch = encode_records(&[record], Compression::None).unwrap();
    let pd = PartitionProduceData::default().with_index(0).with_records(Some(batch));
    let request = ProduceRequest::default()
        .with_transactional_id(Some(txn_id()))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![pd]),
        ]);
    let r = c.call(request, 9).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, errors::NONE, "the record of transaction {seq}");
    p.base_offset
}

async fn end_txn(c: &mut Client, (pid, epoch): (i64, i16), commit: bool) {
    let r = c
        .call(
            EndTxnRequest::default()
                .with_transactional_id(txn_id())
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
            3,
        )
        .await;
    assert_eq!(r.error_code, errors::NONE);
}

/// A batch as [`batches`] lists it: its offset, and for a marker whether it
/// commits.
type Batch = (i64, Option<bool>);

/// Every batch of partition 0 of `name` from offset 0, read uncommitted.
async fn batches(c: &mut Client, name: &str) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let r = c.call(fetch_request(name, 0, next, 0), 11).await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, errors::NONE);
        let mut buf = p.records.clone().unwrap_or_default();
        if buf.is_empty() {
            return out;
        }
        for set in RecordBatchDecoder::decode_all(&mut buf).unwrap() {
            for r in set.records {
                let control = r.control.then(|| r.key.as_deref() == Some(&[0, 0, 0, 1][..]));
                out.push((r.offset, control));
                next = r.offset + 1;
            }
        }
    }
}

/// The end of partition 0 of `name` for a `read_committed` reader (the last
/// stable offset) and the high watermark.
async fn ends(c: &mut Client, name: &str) -> (i64, i64) {
    let mut answer = [0; 2];
    for (isolation, end) in [1i8, 0].into_iter().zip(answer.iter_mut()) {
        let r = c
            .call(
                ListOffsetsRequest::default()
                    .with_replica_id(kafka_protocol::messages::BrokerId(-1))
                    .with_isolation_level(isolation)
                    .with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(topic(name))
                            .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
                    ]),
                5,
            )
            .await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, errors::NONE);
        *end = p.offset;
    }
    (answer[0], answer[1])
}

/// The first entry where `got` and `want` differ: (index, got, wanted).
fn first_difference(got: &[Batch], want: &[Batch]) -> Option<(usize, Batch, Batch)> {
    got.iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .map(|i| (i, got[i], want[i]))
}

/// The regression: housekeeping ran while an EndTxn was between deciding
/// its transaction and writing the markers, found it decided and not yet
/// complete, and wrote the markers too: two markers (seen with librdkafka
/// as one offset more per such transaction than records and markers).
#[tokio::test]
async fn housekeeping_does_not_write_the_markers_of_a_transaction_its_end_txn_is_writing() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let producer = init(&mut c).await;
    assert_eq!(write_in_txn(&mut c, "t", producer, 0).await, 0);

    // EndTxn, with housekeeping run between its two halves: the coordinator
    // decides, housekeeping runs, then the EndTxn writes the markers.
    let decided = s.broker.transactions().end(TX, producer.0, producer.1, true).unwrap();
    let EndOutcome::Complete(decided) = decided else {
        panic!("{decided:?}")
    };
    let b = s.broker.clone();
    tokio::task::spawn_blocking(move || b.tick()).await.unwrap();
    s.broker.complete_transaction(&decided).unwrap();

    assert_eq!(
        batches(&mut c, "t").await,
        vec![(0, None), (1, Some(true))],
        "one marker"
    );
    assert_eq!(
        write_in_txn(&mut c, "t", producer, 1).await,
        2,
        "the next transaction's record"
    );
    end_txn(&mut c, producer, false).await;
    assert_eq!(
        batches(&mut c, "t").await,
        vec![(0, None), (1, Some(true)), (2, None), (3, Some(false))]
    );
    assert_eq!(ends(&mut c, "t").await, (4, 4), "nothing left open");
}

/// The same race left to chance: transactions one after another, committed
/// and aborted in turn, while housekeeping runs without pause. The log must
/// be exactly record, marker, record, marker..., each marker of its own
/// transaction's kind.
#[tokio::test]
async fn end_txn_beside_running_housekeeping_writes_each_marker_once() {
    const TRANSACTIONS: i32 = 150;
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let producer = init(&mut c).await;
    let stop = Arc::new(AtomicBool::new(false));
    let housekeeping = {
        let (b, stop) = (s.broker.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut ticks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                b.tick();
                ticks += 1;
            }
            ticks
        })
    };
    let mut want = Vec::new();
    for n in 0..TRANSACTIONS {
        let commit = n % 2 == 0;
        let offset = write_in_txn(&mut c, "t", producer, n).await;
        end_txn(&mut c, producer, commit).await;
        want.push((offset, None));
        want.push((offset + 1, Some(commit)));
    }
    stop.store(true, Ordering::Relaxed);
    let ticks = housekeeping.join().unwrap();
    assert!(ticks > 0);
    let expected: Vec<Batch> = (0..TRANSACTIONS)
        .flat_map(|n| {
            let base = 2 * i64::from(n);
            [(base, None), (base + 1, Some(n % 2 == 0))]
        })
        .collect();
    assert_eq!(
        first_difference(&want, &expected),
        None,
        "each record right after the previous marker"
    );
    let got = batches(&mut c, "t").await;
    assert_eq!(first_difference(&got, &expected), None, "the partition's batches");
    assert_eq!(got.len(), expected.len());
    let end = 2 * i64::from(TRANSACTIONS);
    assert_eq!(ends(&mut c, "t").await, (end, end));
}

/// A transaction open in a partition that no coordinator knows (a batch
/// that landed after its transaction ended, here one written straight into
/// the log) holds read_committed readers back until housekeeping aborts it
/// there; the abort is written once, and only while that transaction is the
/// one open (a conditional append in the log).
#[tokio::test]
async fn housekeeping_aborts_a_transaction_no_coordinator_knows() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let record = Record {
        transactional: true,
        producer_id: 999,
        producer_epoch: 0,
        value: Some(Bytes::from_static(b"stray")),
        ..plain_record(0, 0, 1_700_000_000_000)
    };
    let mut stray = encode_records(&[record], Compression::None).unwrap().to_vec();
    let topic = s.broker.topic("t").unwrap();
    let log = topic.partitions[0].log();
    log.append_durable(&mut stray).unwrap();
    assert_eq!(ends(&mut c, "t").await, (0, 1), "held back by the stray transaction");
    let b = s.broker.clone();
    tokio::task::spawn_blocking(move || {
        b.tick();
        b.tick();
    })
    .await
    .unwrap();
    assert_eq!(batches(&mut c, "t").await, vec![(0, None), (1, Some(false))]);
    assert_eq!(ends(&mut c, "t").await, (2, 2));
}
