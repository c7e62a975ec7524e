//! Every rejection class of the validator, the streaming limits, the max
//! timestamp correction, and a property test over batches real encoders build.

use std::io::Write;

use bytes::Bytes;
use proptest::prelude::*;
use veltrix_client::kafka_protocol::indexmap::IndexMap;
use veltrix_client::kafka_protocol::protocol::StrBytes;
use veltrix_client::kafka_protocol::records::{Compression, Record};
use veltrix_log::batch::build::{self, Spec};
use veltrix_log::batch::{self, BatchError, HEADER_BYTES};

use super::*;

pub(crate) const LIMIT: usize = 1 << 20;
pub(crate) const BASE_TS: i64 = 1_700_000_000_000;

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// One record's fields, encoded without its length prefix.
pub(crate) struct Rec<'a> {
    pub(crate) ts_delta: i64,
    pub(crate) offset_delta: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: &'a [(&'a [u8], Option<&'a [u8]>)],
}

pub(crate) fn body(r: &Rec) -> Vec<u8> {
    let mut b = vec![0u8];
    zigzag(&mut b, r.ts_delta);
    zigzag(&mut b, r.offset_delta);
    for field in [r.key, r.value] {
        match field {
            None => zigzag(&mut b, -1),
            Some(f) => {
                zigzag(&mut b, f.len() as i64);
                b.extend_from_slice(f);
            }
        }
    }
    zigzag(&mut b, r.headers.len() as i64);
    for (k, v) in r.headers {
        zigzag(&mut b, k.len() as i64);
        b.extend_from_slice(k);
        match v {
            None => zigzag(&mut b, -1),
            Some(v) => {
                zigzag(&mut b, v.len() as i64);
                b.extend_from_slice(v);
            }
        }
    }
    b
}

/// A record with its length prefix.
pub(crate) fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zigzag(&mut out, body.len() as i64);
    out.extend_from_slice(body);
    out
}

/// A simple record `i` of a batch: timestamp delta `i`, a key and a value.
fn simple(i: i64) -> Vec<u8> {
    framed(&body(&Rec {
        ts_delta: i,
        offset_delta: i,
        key: Some(b"key"),
        value: Some(b"value"),
        headers: &[(b"h", Some(b"x"))],
    }))
}

/// A batch around `payload` (records, compressed or not) claiming `count`
/// records, with a valid CRC.
pub(crate) fn batch_with(payload: &[u8], count: i32, attributes: i16, max_timestamp: i64) -> Vec<u8> {
    let mut buf = vec![0u8; HEADER_BYTES + payload.len()];
    buf[HEADER_BYTES..].copy_from_slice(payload);
    build::write_into(
        &mut buf,
        Spec {
            record_count: count,
            base_timestamp: BASE_TS,
            max_timestamp,
            attributes,
            ..Spec::default()
        },
    );
    buf
}

/// `n` simple records, uncompressed, with the right max timestamp.
fn records(n: i64) -> Vec<u8> {
    (0..n).flat_map(simple).collect()
}

/// A valid batch of `n` simple records, uncompressed.
pub(crate) fn uncompressed(n: i64) -> Vec<u8> {
    batch_with(&records(n), n as i32, 0, BASE_TS + n - 1)
}

pub(crate) fn compress(codec: Codec, data: &[u8]) -> Vec<u8> {
    match codec {
        Codec::None => data.to_vec(),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        Codec::Zstd => zstd::bulk::compress(data, 1).unwrap(),
        Codec::Lz4 => {
            let mut e = lz4::EncoderBuilder::new().build(Vec::new()).unwrap();
            e.write_all(data).unwrap();
            let (out, result) = e.finish();
            result.unwrap();
            out
        }
        Codec::Snappy => xerial(&[&snap::raw::Encoder::new().compress_vec(data).unwrap()]),
    }
}

/// Raw snappy blocks in xerial's framing.
fn xerial(blocks: &[&[u8]]) -> Vec<u8> {
    let mut out = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01".to_vec();
    for b in blocks {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    out
}

const CODECS: [Codec; 4] = [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

pub(crate) fn id(codec: Codec) -> i16 {
    (0..=4).find(|i| Codec::from_id(*i as u8) == Some(codec)).unwrap()
}

fn compressed(codec: Codec, n: i64) -> Vec<u8> {
    batch_with(&compress(codec, &records(n)), n as i32, id(codec), BASE_TS + n - 1)
}

fn record_problem(bytes: &[u8]) -> (i32, RecordProblem) {
    match validate(bytes, LIMIT) {
        Err(InvalidBatch::Record { index, problem }) => (index, problem),
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn well_formed_batches_of_every_codec_validate_with_their_timestamps() {
    for codec in [Codec::None].into_iter().chain(CODECS) {
        let bytes = compressed(codec, 5);
        let v = validate(&bytes, LIMIT).unwrap_or_else(|e| panic!("{codec}: {e}"));
        assert_eq!(v.codec, codec);
        assert_eq!((v.min_timestamp, v.max_timestamp), (BASE_TS, BASE_TS + 4));
        assert!(!v.needs_correction);
        assert!(
            matches!(corrected(&bytes, &v), std::borrow::Cow::Borrowed(_)),
            "no copy"
        );
    }
}

#[test]
fn raw_snappy_and_many_xerial_blocks_are_read() {
    let data = records(300);
    let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
    let bytes = batch_with(&raw, 300, id(Codec::Snappy), BASE_TS + 299);
    validate(&bytes, LIMIT).unwrap();
    let blocks: Vec<Vec<u8>> = data
        .chunks(1000)
        .map(|c| snap::raw::Encoder::new().compress_vec(c).unwrap())
        .collect();
    let refs: Vec<&[u8]> = blocks.iter().map(Vec::as_slice).collect();
    let bytes = batch_with(&xerial(&refs), 300, id(Codec::Snappy), BASE_TS + 299);
    validate(&bytes, LIMIT).unwrap();
}

#[test]
fn header_errors_come_from_the_log_checks() {
    let good = uncompressed(2);
    let mut crc = good.clone();
    *crc.last_mut().unwrap() ^= 1;
    assert!(matches!(
        validate(&crc, LIMIT),
        Err(InvalidBatch::Header(BatchError::BadCrc { .. }))
    ));
    assert!(matches!(
        validate(&good[..good.len() - 1], LIMIT),
        Err(InvalidBatch::Header(BatchError::LengthMismatch { .. }))
    ));
    assert!(matches!(
        validate(&good, 70),
        Err(InvalidBatch::Header(BatchError::TooLarge { .. }))
    ));
    let empty = batch_with(&[], 0, 0, -1);
    assert!(matches!(
        validate(&empty, LIMIT),
        Err(InvalidBatch::Header(BatchError::BadCount { .. }))
    ));
}

#[test]
fn undefined_codecs_are_refused() {
    for codec in 5..=7u8 {
        let bytes = batch_with(&records(1), 1, i16::from(codec), BASE_TS);
        assert_eq!(validate(&bytes, LIMIT), Err(InvalidBatch::UnknownCompression { codec }));
    }
}

#[test]
fn control_batches_from_producers_are_refused() {
    let bytes = batch_with(&records(1), 1, 0x20, BASE_TS);
    assert_eq!(validate(&bytes, LIMIT), Err(InvalidBatch::ControlBatch));
}

#[test]
fn garbage_compressed_bytes_are_a_decompression_error() {
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    for codec in CODECS {
        let bytes = batch_with(&garbage, 1, id(codec), BASE_TS);
        assert!(
            matches!(validate(&bytes, LIMIT), Err(InvalidBatch::Decompression { codec: c, .. }) if c == codec),
            "{codec}: {:?}",
            validate(&bytes, LIMIT)
        );
    }
}

#[test]
fn cut_compressed_streams_are_errors_not_fewer_records() {
    for codec in CODECS {
        let whole = compress(codec, &records(50));
        let cut = &whole[..whole.len() - 3];
        let bytes = batch_with(cut, 50, id(codec), BASE_TS + 49);
        let e = validate(&bytes, LIMIT).unwrap_err();
        assert!(
            matches!(
                e,
                InvalidBatch::Decompression { .. } | InvalidBatch::MissingRecords { .. } | InvalidBatch::Record { .. }
            ),
            "{codec}: {e}"
        );
    }
}

#[test]
fn a_count_the_bytes_cannot_hold_is_refused_before_reading() {
    // One record, a header claiming 2^31-1: the end offset would move by two billion.
    let bytes = batch_with(&records(1), i32::MAX, 0, BASE_TS);
    assert!(matches!(
        validate(&bytes, LIMIT),
        Err(InvalidBatch::CountImpossible {
            record_count: i32::MAX,
            ..
        })
    ));
    let bytes = batch_with(&compress(Codec::Zstd, &records(1)), i32::MAX, id(Codec::Zstd), BASE_TS);
    assert!(matches!(
        validate(&bytes, LIMIT),
        Err(InvalidBatch::CountImpossible { .. })
    ));
}

#[test]
fn fewer_records_than_declared_are_refused() {
    for codec in [Codec::None].into_iter().chain(CODECS) {
        let bytes = batch_with(&compress(codec, &records(2)), 3, id(codec), BASE_TS + 1);
        assert_eq!(
            validate(&bytes, LIMIT),
            Err(InvalidBatch::MissingRecords { declared: 3, found: 2 }),
            "{codec}"
        );
    }
}

#[test]
fn bytes_after_the_last_record_are_refused() {
    for codec in [Codec::None].into_iter().chain(CODECS) {
        let mut data = records(2);
        data.push(0);
        let bytes = batch_with(&compress(codec, &data), 2, id(codec), BASE_TS + 1);
        assert_eq!(
            validate(&bytes, LIMIT),
            Err(InvalidBatch::TrailingBytes { declared: 2 }),
            "{codec}"
        );
    }
}

#[test]
fn offset_deltas_must_count_up_from_zero() {
    let second = framed(&body(&Rec {
        ts_delta: 1,
        offset_delta: 2,
        key: None,
        value: Some(b"v"),
        headers: &[],
    }));
    let data = [simple(0), second].concat();
    let bytes = batch_with(&data, 2, 0, BASE_TS + 1);
    assert_eq!(
        record_problem(&bytes),
        (1, RecordProblem::OffsetDelta { expected: 1, found: 2 })
    );
}

#[test]
fn a_record_length_that_disagrees_with_its_fields_is_refused() {
    let b = body(&Rec {
        ts_delta: 0,
        offset_delta: 0,
        key: Some(b"k"),
        value: Some(b"value"),
        headers: &[],
    });
    // Declared one byte longer than the fields, with a spare byte to read.
    let mut long = Vec::new();
    zigzag(&mut long, b.len() as i64 + 1);
    long.extend_from_slice(&b);
    long.push(0);
    let (_, p) = record_problem(&batch_with(&long, 1, 0, BASE_TS));
    assert!(matches!(p, RecordProblem::LengthMismatch { .. }), "{p}");
    // Declared shorter: the value runs past the record's end.
    let mut short = Vec::new();
    zigzag(&mut short, b.len() as i64 - 2);
    short.extend_from_slice(&b);
    let (_, p) = record_problem(&batch_with(&short, 1, 0, BASE_TS));
    assert!(matches!(p, RecordProblem::LengthMismatch { .. }), "{p}");
    // A value length far past the record's end is caught before skipping.
    let mut huge = vec![0u8];
    zigzag(&mut huge, 0);
    zigzag(&mut huge, 0);
    zigzag(&mut huge, -1);
    zigzag(&mut huge, 1 << 30);
    let (_, p) = record_problem(&batch_with(&framed(&huge), 1, 0, BASE_TS));
    assert!(matches!(p, RecordProblem::LengthMismatch { .. }), "{p}");
}

#[test]
fn malformed_record_fields_are_named() {
    // A negative record length.
    let mut neg = Vec::new();
    zigzag(&mut neg, -5);
    neg.extend_from_slice(&[0; 10]);
    assert_eq!(
        record_problem(&batch_with(&neg, 1, 0, BASE_TS)).1,
        RecordProblem::NegativeLength { length: -5 }
    );
    // A varint of six continuation bytes.
    let mut long_varint = framed(&[0; 6]);
    long_varint.splice(0..1, [0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_eq!(
        record_problem(&batch_with(&long_varint, 1, 0, BASE_TS)).1,
        RecordProblem::VarintTooLong { max: 5 }
    );
    // A negative header count.
    let mut b = vec![0u8, 0, 0, 1, 1];
    zigzag(&mut b, -3);
    assert_eq!(
        record_problem(&batch_with(&framed(&b), 1, 0, BASE_TS)).1,
        RecordProblem::NegativeHeaderCount { count: -3 }
    );
    // A null header key.
    let mut b = vec![0u8, 0, 0, 1, 1, 2];
    zigzag(&mut b, -1);
    zigzag(&mut b, -1);
    assert_eq!(
        record_problem(&batch_with(&framed(&b), 1, 0, BASE_TS)).1,
        RecordProblem::NegativeHeaderKey { header: 0, length: -1 }
    );
    // A timestamp delta that overflows the base timestamp.
    let b = body(&Rec {
        ts_delta: i64::MAX,
        offset_delta: 0,
        key: None,
        value: None,
        headers: &[],
    });
    assert_eq!(
        record_problem(&batch_with(&framed(&b), 1, 0, BASE_TS)).1,
        RecordProblem::TimestampOverflow { delta: i64::MAX }
    );
    // The data ends inside a record.
    let whole = simple(0);
    assert_eq!(
        record_problem(&batch_with(&whole[..whole.len() - 2], 1, 0, BASE_TS)).1,
        RecordProblem::Truncated
    );
}

#[test]
fn a_wrong_max_timestamp_is_corrected_with_a_new_crc() {
    for (max, attributes) in [(0, 0), (BASE_TS + 100, 0), (BASE_TS + 2, batch::LOG_APPEND_TIME_BIT)] {
        let bytes = batch_with(&records(3), 3, attributes, max);
        let v = validate(&bytes, LIMIT).unwrap();
        assert!(v.needs_correction);
        assert_eq!((v.min_timestamp, v.max_timestamp), (BASE_TS, BASE_TS + 2));
        let fixed = corrected(&bytes, &v).into_owned();
        let h = batch::verify(&fixed).unwrap();
        assert_eq!(h.max_timestamp, BASE_TS + 2);
        assert_eq!(h.attributes & batch::LOG_APPEND_TIME_BIT, 0);
        assert_eq!(fixed[HEADER_BYTES..], bytes[HEADER_BYTES..], "records untouched");
        assert!(!validate(&fixed, LIMIT).unwrap().needs_correction);
    }
}

/// A zstd frame of `prefix`, then `zeros` zero bytes as RLE blocks of 128 KiB
/// (4 bytes each), then `suffix`: gigabytes of output from kilobytes of input,
/// built without compressing anything.
fn zstd_bomb(prefix: &[u8], zeros: u64, suffix: &[u8]) -> Vec<u8> {
    const BLOCK: u64 = 128 << 10;
    let mut out = vec![0x28, 0xB5, 0x2F, 0xFD, 0x00, (17 - 10) << 3];
    let block_header = |out: &mut Vec<u8>, size: u64, kind: u64, last: bool| {
        let h = (size << 3) | (kind << 1) | u64::from(last);
        out.extend_from_slice(&h.to_le_bytes()[..3]);
    };
    block_header(&mut out, prefix.len() as u64, 0, false);
    out.extend_from_slice(prefix);
    let mut left = zeros;
    while left > 0 {
        let n = left.min(BLOCK);
        block_header(&mut out, n, 1, false);
        out.push(0);
        left -= n;
    }
    block_header(&mut out, suffix.len() as u64, 0, true);
    out.extend_from_slice(suffix);
    out
}

/// The start of a record whose value is `value_len` zero bytes, and its end.
fn big_record(value_len: u64) -> (Vec<u8>, Vec<u8>) {
    let mut fields = vec![0u8];
    zigzag(&mut fields, 0);
    zigzag(&mut fields, 0);
    zigzag(&mut fields, -1);
    zigzag(&mut fields, value_len as i64);
    let body_len = fields.len() as u64 + value_len + 1;
    let mut prefix = Vec::new();
    zigzag(&mut prefix, body_len as i64);
    prefix.extend_from_slice(&fields);
    (prefix, vec![0])
}

#[test]
fn a_zstd_bomb_is_refused_at_the_limit_in_bounded_time() {
    let (prefix, suffix) = big_record(1 << 30);
    let frame = zstd_bomb(&prefix, 1 << 30, &suffix);
    assert!(frame.len() < 64 << 10);
    let bytes = batch_with(&frame, 1, id(Codec::Zstd), BASE_TS);
    let started = std::time::Instant::now();
    assert_eq!(
        validate(&bytes, LIMIT),
        Err(InvalidBatch::DecompressedTooLarge {
            codec: Codec::Zstd,
            bytes_max: DECOMPRESSED_BATCH_BYTES_MAX
        })
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // The same shape under the limit is a valid batch: the limit, not the
    // shape, refused it.
    let (prefix, suffix) = big_record(1 << 20);
    let bytes = batch_with(&zstd_bomb(&prefix, 1 << 20, &suffix), 1, id(Codec::Zstd), BASE_TS);
    validate(&bytes, LIMIT).unwrap();
}

#[test]
fn a_snappy_bomb_of_repeated_blocks_is_refused_at_the_limit() {
    let (prefix, _) = big_record(1 << 30);
    let zeros = snap::raw::Encoder::new().compress_vec(&[0u8; 64 << 10]).unwrap();
    let head = snap::raw::Encoder::new().compress_vec(&prefix).unwrap();
    // 80 MiB of zeros in about 4 MiB: past the limit long before the value ends.
    let mut blocks: Vec<&[u8]> = vec![&head];
    blocks.extend(std::iter::repeat_n(zeros.as_slice(), 1280));
    let bytes = batch_with(&xerial(&blocks), 1, id(Codec::Snappy), BASE_TS);
    assert!(matches!(
        validate(&bytes, 64 << 20),
        Err(InvalidBatch::DecompressedTooLarge { .. })
    ));
}

#[test]
fn snappy_blocks_claiming_more_than_they_can_hold_are_refused_unallocated() {
    // A raw block whose length preamble says 1 GiB, followed by two bytes.
    let mut block = Vec::new();
    let mut n: u32 = 1 << 30;
    while n >= 0x80 {
        block.push((n as u8) | 0x80);
        n >>= 7;
    }
    block.push(n as u8);
    block.extend_from_slice(&[0, 0]);
    let bytes = batch_with(&xerial(&[&block]), 1, id(Codec::Snappy), BASE_TS);
    let e = validate(&bytes, LIMIT).unwrap_err();
    assert!(
        matches!(&e, InvalidBatch::Decompression { reason, .. } if reason.contains("claims")),
        "{e}"
    );
}

#[test]
fn a_zstd_frame_asking_for_a_huge_window_is_refused() {
    // Window log 30 (1 GiB), then an empty last raw block.
    let frame = [0x28, 0xB5, 0x2F, 0xFD, 0x00, (30 - 10) << 3, 0x01, 0x00, 0x00];
    let bytes = batch_with(&frame, 1, id(Codec::Zstd), BASE_TS);
    assert!(matches!(
        validate(&bytes, LIMIT),
        Err(InvalidBatch::Decompression { codec: Codec::Zstd, .. })
    ));
}

#[test]
fn split_finds_batches_and_names_a_truncated_one() {
    let one = uncompressed(1);
    let two = [one.clone(), uncompressed(2)].concat();
    let parts: Vec<_> = split(&two).collect::<Result<_, _>>().unwrap();
    assert_eq!(parts.len(), 2);
    let cut = &two[..two.len() - 1];
    let parts: Vec<_> = split(cut).collect();
    assert_eq!(parts.len(), 2);
    assert!(matches!(
        parts[1],
        Err(InvalidBatch::Header(BatchError::LengthMismatch { .. }))
    ));
    assert_eq!(split(&[]).count(), 0);
}

type Fields = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<(String, Option<Vec<u8>>)>, i64);

fn arb_record() -> impl Strategy<Value = Fields> {
    (
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(
            (
                "[a-z]{1,6}",
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            ),
            0..3,
        ),
        0i64..(1 << 42),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the codec, the batches kafka-protocol's encoder (the client's)
    /// writes validate, with the records' real timestamps, and decode back to
    /// the same records.
    #[test]
    fn encoded_batches_of_every_codec_validate_and_round_trip(fields in proptest::collection::vec(arb_record(), 1..30)) {
        let records: Vec<Record> = fields
            .iter()
            .enumerate()
            .map(|(i, (key, value, headers, ts))| Record {
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone().map(Bytes::from)))
                    .collect::<IndexMap<_, _>>(),
                ..veltrix_client::plain_record(i as i64, -1, *ts)
            })
            .collect();
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let bytes = veltrix_client::encode_records(&records, compression).unwrap();
            let (mut min, mut max) = (i64::MAX, -1);
            for one in split(&bytes) {
                let one = one.unwrap();
                let v = validate(one, LIMIT).unwrap_or_else(|e| panic!("{compression:?}: {e}"));
                prop_assert!(!v.needs_correction, "{:?}: the encoder's max timestamp is right", compression);
                min = min.min(v.min_timestamp);
                max = max.max(v.max_timestamp);
            }
            prop_assert_eq!(min, records.iter().map(|r| r.timestamp).min().unwrap());
            prop_assert_eq!(max, records.iter().map(|r| r.timestamp).max().unwrap());
            let decoded: Vec<Record> = veltrix_client::decode_batches(&bytes, &veltrix_client::DecodeLimits::default())
                .unwrap()
                .into_iter()
                .flat_map(|b| b.records)
                .collect();
            prop_assert_eq!(decoded.len(), records.len());
            for (d, r) in decoded.iter().zip(&records) {
                prop_assert_eq!((&d.key, &d.value, &d.headers, d.timestamp), (&r.key, &r.value, &r.headers, r.timestamp));
            }
        }
    }

    /// The client's `BatchBuilder` batches validate as they are.
    #[test]
    fn batch_builder_batches_validate(fields in proptest::collection::vec(arb_record(), 1..30)) {
        let mut builder = veltrix_client::BatchBuilder::new(LIMIT).unwrap();
        for (key, value, headers, ts) in &fields {
            let mut seen = std::collections::HashSet::new();
            let record = veltrix_client::ProducerRecord {
                key: key.clone().map(Bytes::from),
                value: value.clone().map(Bytes::from),
                headers: headers
                    .iter()
                    .filter(|(k, _)| seen.insert(k.clone()))
                    .map(|(k, v)| veltrix_client::Header { key: k.clone(), value: v.clone().map(Bytes::from) })
                    .collect(),
                timestamp_ms: *ts,
            };
            prop_assert_eq!(builder.try_push(record).unwrap(), veltrix_client::Pushed::Added);
        }
        let bytes = builder.build().unwrap();
        let v = validate(&bytes, LIMIT).unwrap();
        prop_assert_eq!(v.header.record_count as usize, fields.len());
        prop_assert_eq!(v.max_timestamp, fields.iter().map(|f| f.3).max().unwrap());
    }
}

/// Found by the `batch_validate` fuzz target: a value length of -21 was read
/// as null and the batch accepted, but a consumer whose decoder refuses
/// negative lengths other than -1 (kafka-protocol's) could never read past it.
#[test]
fn a_key_value_or_header_value_length_below_minus_one_is_refused() {
    for (field, at) in [("key", 0), ("value", 1), ("header value", 2)] {
        let mut b = vec![0u8];
        zigzag(&mut b, 0);
        zigzag(&mut b, 0);
        for i in 0..2 {
            zigzag(&mut b, if i == at { -21 } else { -1 });
        }
        zigzag(&mut b, 1);
        zigzag(&mut b, 1);
        b.push(b'h');
        zigzag(&mut b, if at == 2 { -21 } else { -1 });
        let bytes = batch_with(&framed(&b), 1, 0, BASE_TS);
        let problem = match validate(&bytes, LIMIT) {
            Err(InvalidBatch::Record { index: 0, problem }) => problem,
            other => panic!("{field}: {other:?}"),
        };
        assert_eq!(
            problem,
            RecordProblem::NegativeFieldLength { field, length: -21 },
            "{field}"
        );
    }
}

/// Found by the `batch_validate` fuzz target: a header key of bytes that are
/// not UTF-8 was accepted, and a consumer whose decoder reads keys as strings
/// could not read the record. Keys that are UTF-8 across the validator's
/// window boundary (a 3-byte character at byte 63) stay accepted.
#[test]
fn a_header_key_that_is_not_utf8_is_refused() {
    let with_key = |key: &[u8]| {
        let record = framed(&body(&Rec {
            ts_delta: 0,
            offset_delta: 0,
            key: None,
            value: Some(b"v"),
            headers: &[(key, None)],
        }));
        batch_with(&record, 1, 0, BASE_TS)
    };
    let bad = with_key(&[0xec, 0x00]);
    let refused = validate(&bad, LIMIT);
    assert!(
        matches!(
            refused,
            Err(InvalidBatch::Record {
                index: 0,
                problem: RecordProblem::HeaderKeyNotUtf8 { header: 0 }
            })
        ),
        "{refused:?}"
    );
    let mut across = vec![b'a'; 63];
    across.extend_from_slice("€".as_bytes());
    across.extend_from_slice(&[b'b'; 100]);
    assert!(validate(&with_key(&across), LIMIT).is_ok());
    let mut cut = vec![b'a'; 63];
    cut.extend_from_slice(&"€".as_bytes()[..2]);
    assert!(validate(&with_key(&cut), LIMIT).is_err(), "a key ending mid-character");
}

/// Found by the `batch_validate` property test: bytes after a gzip stream were
/// ignored and the batch accepted, but decoders that insist on the stream's
/// end refuse it, and a consumer would be stuck on the batch.
#[test]
fn bytes_after_the_gzip_stream_are_refused() {
    let mut payload = compress(Codec::Gzip, &records(2));
    assert!(validate(&batch_with(&payload, 2, id(Codec::Gzip), BASE_TS + 1), LIMIT).is_ok());
    payload.extend_from_slice(&[0, 2]);
    let bad = batch_with(&payload, 2, id(Codec::Gzip), BASE_TS + 1);
    let refused = validate(&bad, LIMIT);
    assert!(
        matches!(refused, Err(InvalidBatch::Decompression { .. })),
        "{refused:?}"
    );
}
