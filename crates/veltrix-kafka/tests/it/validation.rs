//! Poison batches over the wire: batches whose bytes or records contradict their
//! header are refused with Kafka's error codes, leave the partition's end offset
//! where it was, and do not stop the next valid produce or a fetch.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::records::Compression;
use veltrix_log::batch;

use super::*;

const OFF_LENGTH: usize = 8;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_RECORD_COUNT: usize = 57;

/// The one batch `records` encodes for `values` (one value: it writes a batch
/// per timestamp).
fn one_batch(values: &[&str], compression: Compression) -> BytesMut {
    let bytes = records(values, compression);
    assert_eq!(
        batch::peek_size(&bytes),
        Some(bytes.len()),
        "the encoder wrote one batch"
    );
    BytesMut::from(&bytes[..])
}

/// Recomputes the CRC after an edit, so that only the edit is wrong.
fn sealed(mut b: BytesMut) -> Bytes {
    let crc = batch::compute_crc(&b);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

/// `b`'s header around a new payload, with its length field fixed.
fn with_payload(b: &[u8], payload: &[u8]) -> BytesMut {
    let mut out = BytesMut::from(&b[..batch::HEADER_BYTES]);
    out.extend_from_slice(payload);
    let length = (out.len() - 12) as i32;
    out[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    out
}

async fn produce_v9(c: &mut Client, records: Bytes) -> PartitionProduceResponse {
    let pd = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(records));
    let td = TopicProduceData::default()
        .with_name(topic("t"))
        .with_partition_data(vec![pd]);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![td]);
    let r = c.call(request, 9).await;
    r.responses[0].partition_responses[0].clone()
}

async fn log_end(c: &mut Client) -> i64 {
    let r = c.call(fetch_request("t", 0, 0, 0), 11).await;
    r.responses[0].partitions[0].high_watermark
}

/// A server with topic `t` holding one valid record, and a client.
async fn setup() -> (Server, Client) {
    let s = start(|_| {}).await;
    let mut c = Client::connect(s.addr).await;
    create_topic(&mut c, "t", 1).await;
    assert_eq!(
        produce(&mut c, "t", 0, -1, records(&["first"], Compression::None))
            .await
            .0,
        errors::NONE
    );
    (s, c)
}

/// Sends `poison`, expects `code`, and checks that the end offset did not move
/// and that a valid produce and a fetch of everything still work.
async fn refused(c: &mut Client, poison: Bytes, code: i16) -> PartitionProduceResponse {
    let before = log_end(c).await;
    let r = produce_v9(c, poison).await;
    assert_eq!(r.error_code, code, "{:?}", r.error_message);
    assert!(r.error_message.is_some(), "the reason is given");
    assert_eq!(r.base_offset, -1);
    assert_eq!(log_end(c).await, before, "nothing was appended");
    let ok = produce_v9(c, records(&["after"], Compression::None)).await;
    assert_eq!((ok.error_code, ok.base_offset), (errors::NONE, before));
    let fetched = c.call(fetch_request("t", 0, 0, 0), 11).await;
    let p = &fetched.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (errors::NONE, before + 1));
    let mut got = p.records.clone().unwrap();
    let n: usize = RecordBatchDecoder::decode_all(&mut got)
        .unwrap()
        .iter()
        .map(|set| set.records.len())
        .sum();
    assert_eq!(n as i64, before + 1, "every stored record decodes");
    r
}

#[tokio::test]
async fn an_undefined_compression_codec_is_corrupt() {
    let (_s, mut c) = setup().await;
    let mut b = one_batch(&["x"], Compression::None);
    b[OFF_ATTRIBUTES + 1] |= 5;
    let r = refused(&mut c, sealed(b), errors::ResponseError::CorruptMessage.code()).await;
    assert!(r.error_message.unwrap().contains("codec 5"));
}

#[tokio::test]
async fn garbage_compressed_records_are_corrupt_for_every_codec() {
    let (_s, mut c) = setup().await;
    for compression in [
        Compression::Gzip,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Snappy,
    ] {
        let valid = one_batch(&["some value, long enough to compress"], compression);
        let garbage: Vec<u8> = (0..valid.len() - batch::HEADER_BYTES)
            .map(|i| (i * 151 % 253) as u8)
            .collect();
        let b = with_payload(&valid, &garbage);
        let r = refused(&mut c, sealed(b), errors::ResponseError::CorruptMessage.code()).await;
        assert!(r.error_message.unwrap().contains("decompress"), "{compression:?}");
    }
}

#[tokio::test]
async fn a_one_record_batch_claiming_two_billion_records_is_invalid() {
    let (_s, mut c) = setup().await;
    let mut b = one_batch(&["x"], Compression::None);
    b[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
    b[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    refused(&mut c, sealed(b), errors::ResponseError::InvalidRecord.code()).await;
}

#[tokio::test]
async fn a_malformed_record_is_invalid_and_named_in_record_errors() {
    let (_s, mut c) = setup().await;
    let mut b = one_batch(&["x"], Compression::None);
    // The first record: a one-byte length, attributes, timestamp delta 0, then
    // its offset delta, set to 1 where 0 belongs.
    let at = batch::HEADER_BYTES + 3;
    assert_eq!(b[at], 0);
    b[at] = 2;
    let r = refused(&mut c, sealed(b), errors::ResponseError::InvalidRecord.code()).await;
    assert_eq!(r.record_errors.len(), 1);
    assert_eq!(r.record_errors[0].batch_index, 0);
    assert!(r.error_message.unwrap().contains("offset delta"));
}

/// A zstd frame holding the start of a record with a 1 GiB value, the value as
/// RLE blocks of zeros (4 bytes per 128 KiB), and the record's end: a 1 GiB
/// record from 32 KiB of request.
fn zstd_bomb() -> Vec<u8> {
    let zigzag = |out: &mut Vec<u8>, v: i64| {
        let mut u = ((v << 1) ^ (v >> 63)) as u64;
        while u >= 0x80 {
            out.push((u as u8) | 0x80);
            u >>= 7;
        }
        out.push(u as u8);
    };
    let value_len: i64 = 1 << 30;
    let mut fields = vec![0u8, 0, 0];
    zigzag(&mut fields, -1);
    zigzag(&mut fields, value_len);
    let mut prefix = Vec::new();
    zigzag(&mut prefix, fields.len() as i64 + value_len + 1);
    prefix.extend_from_slice(&fields);
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, (17 - 10) << 3];
    let block = |frame: &mut Vec<u8>, size: u64, kind: u64, last: bool| {
        let h = (size << 3) | (kind << 1) | u64::from(last);
        frame.extend_from_slice(&h.to_le_bytes()[..3]);
    };
    block(&mut frame, prefix.len() as u64, 0, false);
    frame.extend_from_slice(&prefix);
    for _ in 0..(value_len >> 17) {
        block(&mut frame, 1 << 17, 1, false);
        frame.push(0);
    }
    block(&mut frame, 1, 0, true);
    frame.push(0);
    frame
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_within_seconds() {
    let (_s, mut c) = setup().await;
    let valid = one_batch(&["x"], Compression::Zstd);
    let bomb = zstd_bomb();
    assert!(bomb.len() < 64 << 10);
    let started = Instant::now();
    let r = refused(
        &mut c,
        sealed(with_payload(&valid, &bomb)),
        errors::ResponseError::MessageTooLarge.code(),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(r.error_message.unwrap().contains("decompress to more than"));
}

#[tokio::test]
async fn a_bad_batch_after_a_good_one_refuses_both() {
    let (_s, mut c) = setup().await;
    let good = records(&["good"], Compression::None);
    let mut bad = one_batch(&["bad"], Compression::None);
    bad[OFF_ATTRIBUTES + 1] |= 6;
    let both: Bytes = [good, sealed(bad)].concat().into();
    refused(&mut c, both, errors::ResponseError::CorruptMessage.code()).await;
}

#[tokio::test]
async fn a_zero_max_timestamp_is_stored_corrected() {
    let (_s, mut c) = setup().await;
    let mut b = one_batch(&["x"], Compression::Lz4);
    let real = i64::from_be_bytes(b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].try_into().unwrap());
    assert_eq!(real, 1_700_000_000_000);
    b[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&0i64.to_be_bytes());
    let r = produce_v9(&mut c, sealed(b)).await;
    assert_eq!((r.error_code, r.base_offset), (errors::NONE, 1));
    let fetched = c.call(fetch_request("t", 0, 1, 0), 11).await;
    let stored = fetched.responses[0].partitions[0].records.clone().unwrap();
    let h = batch::verify(&stored).expect("the stored batch has a valid CRC");
    assert_eq!(h.max_timestamp, real, "stored with the records' real max timestamp");
    let mut buf = stored.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
    assert_eq!(sets[0].records[0].value.as_deref(), Some(&b"x"[..]));
}
