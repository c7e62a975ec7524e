//! The filter against real encoders and decoders: batches kafka-protocol's
//! encoder (the client's) writes, filtered, then read back by kafka-protocol's
//! decoder and by the core's own walker; ids from headers and keys, and the
//! ids a record cannot have.

use std::collections::BTreeSet;

use bytes::Bytes;
use proptest::prelude::*;
use veltrix_client::kafka_protocol::indexmap::IndexMap;
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use veltrix_log::batch::{self, BatchError, HEADER_BYTES};

use super::*;
use crate::validate::tests::{BASE_TS, LIMIT, Rec, batch_with, body, framed, id};
use crate::validate::{InvalidBatch, RecordProblem, validate};

const ID_BYTES_MAX: usize = 64;
/// The compression codec's bits of a batch's attributes.
const CODEC_BITS: i16 = 0x7;
const PRODUCER_ID: i64 = 4242;
const PRODUCER_EPOCH: i16 = 3;
const BASE_SEQUENCE: i32 = 1000;
const COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// Record `i` of an idempotent producer's batch: a key, a value, the id
/// header among others, and a timestamp that does not only rise.
fn record(i: usize, ts: i64, value_len: usize) -> Record {
    let headers = [
        ("trace", Some(Bytes::from(format!("t{i}")))),
        ("message-id", Some(Bytes::from(format!("id-{i}")))),
        ("empty", None),
    ];
    Record {
        producer_id: PRODUCER_ID,
        producer_epoch: PRODUCER_EPOCH,
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(vec![i as u8; value_len])),
        headers: headers
            .into_iter()
            .map(|(k, v)| (StrBytes::from_static_str(k), v))
            .collect::<IndexMap<_, _>>(),
        ..veltrix_client::plain_record(i as i64, BASE_SEQUENCE + i as i32, ts)
    }
}

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| record(i, BASE_TS + (i as i64 * 7919) % 1000, 10 + i))
        .collect()
}

/// One batch of `records`, as the client's encoder writes it.
fn encode(records: &[Record], compression: Compression) -> Vec<u8> {
    let bytes = veltrix_client::encode_records(records, compression).unwrap();
    validate(&bytes, LIMIT).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
    bytes.to_vec()
}

/// Checks that `filtered` is `original` without the records at `dropped`,
/// read by kafka-protocol's decoder and by the core's walker.
fn assert_filtered(original: &[u8], filtered: &[u8], records: &[Record], dropped: &BTreeSet<i32>) {
    let before = batch::verify(original).unwrap();
    let after = batch::verify(filtered).expect("a valid CRC and length");
    let kept: Vec<&Record> = records
        .iter()
        .filter(|r| !dropped.contains(&(r.offset as i32)))
        .collect();
    // The fields the producer state and consumers' offsets depend on; a
    // batch of none is uncompressed, as Kafka's log cleaner writes one.
    let attributes = if kept.is_empty() {
        before.attributes & !CODEC_BITS
    } else {
        before.attributes
    };
    assert_eq!(
        (after.base_offset, after.last_offset_delta, after.attributes),
        (before.base_offset, before.last_offset_delta, attributes)
    );
    if kept.is_empty() {
        assert_eq!(filtered.len(), HEADER_BYTES, "no records, no compressed stream");
    }
    assert_eq!(
        (after.producer_id, after.producer_epoch, after.base_sequence),
        (before.producer_id, before.producer_epoch, before.base_sequence)
    );
    assert_eq!(after.record_count as usize, kept.len());
    match kept.first() {
        Some(first) => {
            assert_eq!(after.base_timestamp, first.timestamp);
            assert_eq!(after.max_timestamp, kept.iter().map(|r| r.timestamp).max().unwrap());
        }
        None => assert_eq!(
            (after.base_timestamp, after.max_timestamp),
            (before.base_timestamp, before.max_timestamp)
        ),
    }
    let decoded = RecordBatchDecoder::decode(&mut Bytes::copy_from_slice(filtered)).expect("kafka-protocol decodes it");
    assert_eq!(decoded.records.len(), kept.len());
    for (d, r) in decoded.records.iter().zip(&kept) {
        assert_eq!((d.offset, d.sequence, d.timestamp), (r.offset, r.sequence, r.timestamp));
        assert_eq!((&d.key, &d.value, &d.headers), (&r.key, &r.value, &r.headers));
        assert_eq!((d.producer_id, d.producer_epoch), (PRODUCER_ID, PRODUCER_EPOCH));
    }
    let core: Vec<RecordId> = ids(filtered, IdSource::Header("message-id"), ID_BYTES_MAX).unwrap();
    let expected: Vec<RecordId> = kept
        .iter()
        .map(|r| RecordId {
            offset_delta: r.offset as i32,
            id: Id::Found(format!("id-{}", r.offset).into_bytes()),
        })
        .collect();
    assert_eq!(core, expected);
}

#[test]
fn a_subset_is_dropped_for_every_codec_and_both_decoders_read_the_rest() {
    let records = records(40);
    let dropped: BTreeSet<i32> = [0, 3, 4, 5, 17, 38].into();
    let drop: Vec<i32> = dropped.iter().copied().collect();
    for compression in COMPRESSIONS {
        let original = encode(&records, compression);
        let filtered = without(&original, &drop).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
        assert_filtered(&original, &filtered, &records, &dropped);
    }
}

#[test]
fn the_last_record_dropped_leaves_last_offset_delta_and_the_next_sequence_alone() {
    let records = records(5);
    for compression in COMPRESSIONS {
        let original = encode(&records, compression);
        let filtered = without(&original, &[4]).unwrap();
        let h = batch::verify(&filtered).unwrap();
        assert_eq!((h.record_count, h.last_offset_delta), (4, 4), "{compression:?}");
        // The producer's next batch starts at base_sequence + last_offset_delta + 1.
        assert_eq!(i64::from(h.base_sequence) + i64::from(h.last_offset_delta) + 1, 1005);
    }
}

#[test]
fn nothing_to_drop_keeps_the_records_and_the_batch_still_validates() {
    let records = records(12);
    for compression in COMPRESSIONS {
        let original = encode(&records, compression);
        let filtered = without(&original, &[]).unwrap();
        assert_filtered(&original, &filtered, &records, &BTreeSet::new());
        validate(&filtered, LIMIT).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
    }
}

#[test]
fn every_record_dropped_leaves_a_decodable_batch_of_none() {
    let records = records(6);
    let all: Vec<i32> = (0..6).collect();
    for compression in COMPRESSIONS {
        let original = encode(&records, compression);
        let filtered = without(&original, &all).unwrap();
        assert_filtered(&original, &filtered, &records, &all.iter().copied().collect());
        assert_eq!(ids(&filtered, IdSource::Key, ID_BYTES_MAX).unwrap(), vec![]);
        let fetched =
            veltrix_client::decode_batches(&Bytes::from(filtered), &veltrix_client::DecodeLimits::default()).unwrap();
        assert_eq!(
            (fetched.len(), fetched[0].last_offset, fetched[0].records.len()),
            (1, 5, 0)
        );
    }
}

#[test]
fn raw_snappy_stays_raw_and_xerial_stays_xerial() {
    let records = records(20);
    let plain = encode(&records, Compression::None);
    let raw = snap::raw::Encoder::new().compress_vec(&plain[HEADER_BYTES..]).unwrap();
    let raw_batch = batch_with(
        &raw,
        20,
        id(Codec::Snappy),
        batch::verify(&plain).unwrap().max_timestamp,
    );
    let filtered = without(&raw_batch, &[1, 2]).unwrap();
    assert!(!filtered[HEADER_BYTES..].starts_with(b"\x82SNAPPY"));
    assert_eq!(ids(&filtered, IdSource::Key, ID_BYTES_MAX).unwrap().len(), 18);
    let xerial = encode(&records, Compression::Snappy);
    let filtered = without(&xerial, &[1, 2]).unwrap();
    assert_eq!(
        filtered[HEADER_BYTES..HEADER_BYTES + 16],
        xerial[HEADER_BYTES..HEADER_BYTES + 16]
    );
    // Every record dropped: an uncompressed batch of none, never a
    // compressed stream of nothing.
    let none = without(&raw_batch, &(0..20).collect::<Vec<_>>()).unwrap();
    assert_eq!(none.len(), HEADER_BYTES);
    assert_eq!(batch::verify(&none).unwrap().attributes & CODEC_BITS, 0);
    assert_eq!(ids(&none, IdSource::Key, ID_BYTES_MAX).unwrap(), vec![]);
}

#[test]
fn log_append_time_batches_keep_their_max_timestamp() {
    let records = records(4);
    let mut original = encode(&records, Compression::None);
    batch::set_create_time_max_timestamp(&mut original, 1);
    // Set the LogAppendTime bit back, with the broker's time as max timestamp.
    original[22] |= batch::LOG_APPEND_TIME_BIT as u8;
    batch::set_record_fields(&mut original, 4, BASE_TS, 1_800_000_000_000);
    let filtered = without(&original, &[0]).unwrap();
    let h = batch::verify(&filtered).unwrap();
    assert_eq!(h.max_timestamp, 1_800_000_000_000);
    assert_ne!(h.attributes & batch::LOG_APPEND_TIME_BIT, 0);
}

#[test]
fn ids_come_from_the_key_or_the_named_header() {
    let records = records(3);
    for compression in COMPRESSIONS {
        let bytes = encode(&records, compression);
        let by_key = ids(&bytes, IdSource::Key, ID_BYTES_MAX).unwrap();
        let by_header = ids(&bytes, IdSource::Header("message-id"), ID_BYTES_MAX).unwrap();
        for i in 0..3 {
            assert_eq!(by_key[i].id, Id::Found(format!("key-{i}").into_bytes()));
            assert_eq!(by_header[i].id, Id::Found(format!("id-{i}").into_bytes()));
            assert_eq!(by_header[i].offset_delta, i as i32);
        }
        let trace = ids(&bytes, IdSource::Header("trace"), ID_BYTES_MAX).unwrap();
        assert_eq!(trace[2].id, Id::Found(b"t2".to_vec()));
    }
}

/// A record's headers: key and value (`None`: null).
type Headers<'a> = &'a [(&'a [u8], Option<&'a [u8]>)];

/// A batch of hand-made records, one per entry: (key, headers).
fn crafted(records: &[(Option<&[u8]>, Headers<'_>)]) -> Vec<u8> {
    let data: Vec<u8> = records
        .iter()
        .enumerate()
        .flat_map(|(i, (key, headers))| {
            framed(&body(&Rec {
                ts_delta: i as i64,
                offset_delta: i as i64,
                key: *key,
                value: Some(b"v"),
                headers,
            }))
        })
        .collect();
    batch_with(&data, records.len() as i32, 0, BASE_TS + records.len() as i64 - 1)
}

#[test]
fn missing_null_empty_and_oversized_ids_are_classified_not_refused() {
    let long = [b'x'; ID_BYTES_MAX + 1];
    let at_limit = [b'y'; ID_BYTES_MAX];
    let not_utf8: &[u8] = &[0xff, 0xfe];
    let bytes = crafted(&[
        (None, &[(b"other", Some(b"a"))]),
        (Some(b"k"), &[(b"message-id", None)]),
        (Some(b""), &[(b"message-id", Some(b""))]),
        (Some(&long), &[(b"message-id", Some(&long))]),
        (Some(b"k"), &[(b"message-id", Some(&at_limit))]),
        (Some(b"k"), &[(b"message-id", Some(not_utf8))]),
        (
            Some(b"k"),
            &[(b"message-id", Some(b"first")), (b"message-id", Some(b"second"))],
        ),
        (Some(b"k"), &[(b"message-i", Some(b"a")), (b"message-idx", Some(b"b"))]),
    ]);
    validate(&bytes, LIMIT).unwrap();
    let too_long = Id::Bad(BadId::TooLong {
        bytes: ID_BYTES_MAX + 1,
        bytes_max: ID_BYTES_MAX,
    });
    let by_header: Vec<Id> = ids(&bytes, IdSource::Header("message-id"), ID_BYTES_MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        by_header,
        vec![
            Id::Missing,
            Id::Missing,
            Id::Bad(BadId::Empty),
            too_long.clone(),
            Id::Found(at_limit.to_vec()),
            Id::Found(not_utf8.to_vec()),
            Id::Found(b"first".to_vec()),
            Id::Missing,
        ]
    );
    let by_key: Vec<Id> = ids(&bytes, IdSource::Key, ID_BYTES_MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        by_key[..4],
        [Id::Missing, Id::Found(b"k".to_vec()), Id::Bad(BadId::Empty), too_long]
    );
    assert_eq!(
        BadId::TooLong {
            bytes: 65,
            bytes_max: 64
        }
        .to_string(),
        "the message id is 65 bytes, over the limit of 64 (id_bytes_max)"
    );
}

#[test]
fn a_filtered_batch_is_refused_by_the_producer_batch_checks() {
    // What the produce path must know: the validator and the log's append
    // want dense offsets, so a filtered batch is appended as what it is (a
    // stored batch), not validated again as a producer's.
    let records = records(4);
    let original = encode(&records, Compression::None);
    let gapped = without(&original, &[1]).unwrap();
    assert_eq!(
        validate(&gapped, LIMIT),
        Err(InvalidBatch::Header(BatchError::BadCount {
            record_count: 3,
            last_offset_delta: 3
        }))
    );
    let empty = without(&original, &[0, 1, 2, 3]).unwrap();
    assert!(matches!(
        batch::Verified::new(&empty, LIMIT),
        Err(BatchError::BadCount { record_count: 0, .. })
    ));
}

#[test]
fn ids_refuse_deltas_that_do_not_rise() {
    let data: Vec<u8> = [1, 1]
        .iter()
        .flat_map(|d| {
            framed(&body(&Rec {
                ts_delta: 0,
                offset_delta: *d,
                key: Some(b"k"),
                value: None,
                headers: &[],
            }))
        })
        .collect();
    let mut bytes = batch_with(&data, 2, 0, BASE_TS);
    assert_eq!(
        ids(&bytes, IdSource::Key, ID_BYTES_MAX),
        Err(InvalidBatch::Record {
            index: 1,
            problem: RecordProblem::OffsetDeltaOutOfOrder {
                previous: 1,
                found: 1,
                last: 1
            }
        })
    );
    // A delta past last_offset_delta.
    bytes.truncate(HEADER_BYTES + data.len() / 2);
    batch::set_record_fields(&mut bytes, 1, BASE_TS, BASE_TS);
    bytes[23..27].copy_from_slice(&0i32.to_be_bytes());
    let crc = batch::compute_crc(&bytes);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        ids(&bytes, IdSource::Key, ID_BYTES_MAX),
        Err(InvalidBatch::Record {
            problem: RecordProblem::OffsetDeltaOutOfOrder { found: 1, last: 0, .. },
            ..
        })
    ));
}

fn arb_compression() -> impl Strategy<Value = Compression> {
    prop::sample::select(COMPRESSIONS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random records, drop sets and codecs: exactly the kept records come
    /// back, with their offsets, sequences and fields, from both decoders.
    #[test]
    fn random_batches_and_drop_sets_round_trip(
        stamps in prop::collection::vec((0i64..1_000_000, 0usize..200), 1..40),
        drop_bits in any::<u64>(),
        compression in arb_compression(),
    ) {
        let records: Vec<Record> = stamps
            .iter()
            .enumerate()
            .map(|(i, (ts, len))| record(i, BASE_TS + ts, *len))
            .collect();
        let original = encode(&records, compression);
        let dropped: BTreeSet<i32> = (0..records.len() as i32).filter(|i| drop_bits >> (i % 64) & 1 == 1).collect();
        let drop: Vec<i32> = dropped.iter().copied().collect();
        let filtered = without(&original, &drop).unwrap();
        assert_filtered(&original, &filtered, &records, &dropped);
        // Filtering a filtered batch again (the index rebuilt from the log reads them).
        let again = without(&filtered, &[]).unwrap();
        assert_filtered(&original, &again, &records, &dropped);
    }

    /// Arbitrary bytes, and arbitrary changes to a valid batch (the CRC
    /// fixed so they reach the records): an answer, never a panic.
    #[test]
    fn ids_and_without_never_panic(
        noise in prop::collection::vec(any::<u8>(), 0..300),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        compression in arb_compression(),
    ) {
        let _ = ids(&noise, IdSource::Key, ID_BYTES_MAX);
        let _ = without(&noise, &[0]);
        let mut bytes = encode(&records(5), compression);
        for (at, byte) in flips {
            let i = HEADER_BYTES - 4 + at.index(bytes.len() - HEADER_BYTES + 4);
            bytes[i] ^= byte;
        }
        let crc = batch::compute_crc(&bytes);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        let _ = ids(&bytes, IdSource::Header("message-id"), 4);
        let _ = without(&bytes, &[1, 2]);
    }
}
