//! Idempotent producers over the wire: InitProducerId, retries answered with the
//! original offsets, sequence gaps and fenced epochs with Kafka's error codes.

use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use veltrix_client::{encode_records, plain_record};

use super::*;

/// A batch of `n` records from `(pid, epoch)` starting at `seq`.
fn idem_batch(pid: i64, epoch: i16, seq: i32, n: i32) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            producer_id: pid,
            producer_epoch: epoch,
            value: Some(Bytes::from(format!("v{}", seq + i))),
            ..plain_record(i64::from(i), seq + i, 1_700_000_000_000)
        })
        .collect();
    encode_records(&records, Compression::None).unwrap()
}

async fn init(c: &mut Client, version: i16) -> (i16, i64, i16) {
    let r = c
        .call(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(kafka_protocol::messages::ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        )
        .await;
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

#[tokio::test]
async fn init_producer_id_hands_out_distinct_ids_and_bumps_a_transactional_ids_epoch() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    let mut ids = Vec::new();
    for version in 0..=4 {
        let (err, id, epoch) = init(&mut c, version).await;
        assert_eq!((err, epoch), (errors::NONE, 0), "v{version}");
        ids.push(id);
    }
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(unique, ids);
    let transactional = |timeout_ms: i32| {
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("tx"))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(kafka_protocol::messages::ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let first = c.call(transactional(60_000), 4).await;
    assert_eq!((first.error_code, first.producer_epoch), (errors::NONE, 0));
    assert!(!ids.contains(&first.producer_id.0));
    let again = c.call(transactional(60_000), 4).await;
    assert_eq!(
        (again.error_code, again.producer_id, again.producer_epoch),
        (errors::NONE, first.producer_id, 1),
        "the same id, the epoch bumped: the first producer is fenced"
    );
    let too_long = c.call(transactional(900_001), 4).await;
    assert_eq!(
        (too_long.error_code, too_long.producer_id.0),
        (errors::ResponseError::InvalidTransactionTimeout.code(), -1)
    );
}

#[tokio::test]
async fn retries_get_the_original_offset_and_gaps_and_old_epochs_are_refused() {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    let (err, pid, epoch) = init(&mut c, 4).await;
    assert_eq!(err, errors::NONE);
    assert_eq!(
        produce(&mut c, "t", 0, -1, idem_batch(pid, epoch, 0, 3)).await,
        (errors::NONE, 0)
    );
    assert_eq!(
        produce(&mut c, "t", 0, -1, idem_batch(pid, epoch, 3, 2)).await,
        (errors::NONE, 3)
    );
    // The retry of the first batch: same answer, nothing written.
    assert_eq!(
        produce(&mut c, "t", 0, -1, idem_batch(pid, epoch, 0, 3)).await,
        (errors::NONE, 0)
    );
    let (err, _) = produce(&mut c, "t", 0, -1, idem_batch(pid, epoch, 9, 1)).await;
    assert_eq!(err, errors::ResponseError::OutOfOrderSequenceNumber.code());
    let (err, _) = produce(&mut c, "t", 0, -1, idem_batch(pid, epoch + 1, 0, 1)).await;
    assert_eq!(err, errors::NONE);
    let (err, _) = produce(&mut c, "t", 0, -1, idem_batch(pid, epoch, 5, 1)).await;
    assert_eq!(err, errors::ResponseError::InvalidProducerEpoch.code());
    let r = c.call(fetch_request("t", 0, 0, 0), 11).await;
    assert_eq!(
        r.responses[0].partitions[0].high_watermark, 6,
        "3 + 2 + 1 records, no duplicate"
    );
}
