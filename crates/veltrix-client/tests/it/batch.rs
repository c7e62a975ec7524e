//! The batch builder and decoder: round trips, size bounds, and what the decoder
//! refuses.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};
use proptest::prelude::*;
use veltrix_client::{
    BATCH_OVERHEAD_BYTES, BatchBuilder, ClientError, DecodeLimits, Header, ProducerRecord, Pushed, decode_batches,
    encode_records, plain_record,
};

fn record(key: Option<&str>, value: Option<&str>, headers: &[(&str, Option<&str>)], ts: i64) -> ProducerRecord {
    ProducerRecord {
        key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: headers
            .iter()
            .map(|(k, v)| Header {
                key: (*k).to_owned(),
                value: v.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            })
            .collect(),
        timestamp_ms: ts,
    }
}

/// Sets a batch's base offset as the broker does (outside the CRC).
fn with_base_offset(batch: &Bytes, base: i64) -> Bytes {
    let mut b = BytesMut::from(&batch[..]);
    b[..8].copy_from_slice(&base.to_be_bytes());
    b.freeze()
}

/// Overwrites a field covered by the CRC and recomputes the CRC.
fn patched(batch: &Bytes, at: usize, bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::from(&batch[..]);
    b[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b.freeze()
}

fn built(records: Vec<ProducerRecord>) -> Bytes {
    let mut builder = BatchBuilder::new(1 << 20).unwrap();
    for r in records {
        assert_eq!(builder.try_push(r).unwrap(), Pushed::Added);
    }
    builder.build().unwrap()
}

#[test]
fn a_built_batch_decodes_back_to_what_was_pushed() {
    let pushed = vec![
        record(
            Some("k1"),
            Some("hello"),
            &[("h", Some("x")), ("trace", Some("abc"))],
            1_700_000_000_000,
        ),
        record(None, Some("no key"), &[], 1_700_000_000_005),
        record(Some(""), None, &[("null-value", None)], 1_699_999_999_990),
        record(Some("k2"), Some(""), &[], 1_700_000_000_001),
    ];
    let batch = with_base_offset(&built(pushed.clone()), 42);
    let decoded = decode_batches(&batch, &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.len(), 1, "one batch, not one per record");
    let b = &decoded[0];
    assert_eq!((b.base_offset, b.last_offset, b.control), (42, 45, false));
    assert_eq!(b.records.len(), pushed.len());
    for (i, (got, want)) in b.records.iter().zip(&pushed).enumerate() {
        assert_eq!(got.offset, 42 + i as i64);
        assert_eq!(got.timestamp, want.timestamp_ms);
        assert_eq!(got.key, want.key);
        assert_eq!(got.value, want.value);
        let headers: Vec<(String, Option<Bytes>)> = got
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
            .collect();
        let want_headers: Vec<(String, Option<Bytes>)> =
            want.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
        assert_eq!(headers, want_headers);
        assert_eq!(got.producer_id, -1);
        assert!(!got.transactional);
    }
}

#[test]
fn the_broker_accepts_built_batches_as_producer_batches() {
    let mut records: Vec<ProducerRecord> = (0..500)
        .map(|i| {
            record(
                Some(&format!("key-{i}")),
                Some(&"v".repeat(i % 37)),
                &[("n", Some("1"))],
                1_000 + i as i64,
            )
        })
        .collect();
    records.push(record(None, None, &[], 0));
    let batch = built(records);
    let header = veltrix_log::batch::verify_producer_batch(&batch, batch.len()).unwrap();
    assert_eq!(header.record_count, 501);
    assert_eq!(header.base_sequence, -1, "no sequence: not an idempotent producer");
    assert_eq!(header.producer_id, -1);
}

#[test]
fn full_batches_hand_the_record_back_and_never_exceed_the_limit() {
    let limit = 1_000;
    let mut builder = BatchBuilder::new(limit).unwrap();
    let r = record(Some("key"), Some(&"x".repeat(100)), &[], 5);
    let mut pushed = 0;
    let returned = loop {
        match builder.try_push(r.clone()).unwrap() {
            Pushed::Added => pushed += 1,
            Pushed::Full(back) => break back,
        }
    };
    assert_eq!(returned, r);
    assert_eq!(pushed, builder.len());
    let batch = builder.build().unwrap();
    assert!(batch.len() <= limit);
    // Another record of this size would not have fit.
    assert!(batch.len() + 100 > limit, "batch of {} bytes left room", batch.len());
    assert!(builder.is_empty());
    assert!(matches!(builder.build(), Err(ClientError::InvalidArgument(_))));
    // The builder is reusable after build.
    assert_eq!(builder.try_push(r).unwrap(), Pushed::Added);
}

#[test]
fn records_that_cannot_fit_and_bad_input_are_errors() {
    let mut builder = BatchBuilder::new(200).unwrap();
    let big = record(None, Some(&"x".repeat(200)), &[], 0);
    assert!(matches!(
        builder.try_push(big),
        Err(ClientError::RecordTooLarge { max: 200, .. })
    ));
    let negative = record(None, Some("x"), &[], -1);
    assert!(matches!(
        builder.try_push(negative),
        Err(ClientError::InvalidArgument(_))
    ));
    let duplicate = record(None, Some("x"), &[("h", Some("1")), ("h", Some("2"))], 0);
    let e = builder.try_push(duplicate).unwrap_err();
    assert!(e.to_string().contains("header `h`"), "{e}");
    assert!(builder.is_empty());
    assert!(BatchBuilder::new(BATCH_OVERHEAD_BYTES).is_err());
    assert!(BatchBuilder::new(usize::MAX).is_err());
}

fn codec_batch(values: &[&str], compression: Compression, base_offset: i64) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            value: Some(Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::from([(StrBytes::from_static_str("h"), None)]),
            ..plain_record(base_offset + i as i64, i as i32 - 1, 1_700_000_000_000)
        })
        .collect();
    encode_records(&records, compression).unwrap()
}

#[test]
fn compressed_batches_from_other_producers_decode() {
    let mut all = BytesMut::new();
    let compressions = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for (i, c) in compressions.into_iter().enumerate() {
        all.extend_from_slice(&codec_batch(&["a", "bb", "ccc"], c, 3 * i as i64));
    }
    let decoded = decode_batches(&all.freeze(), &DecodeLimits::default()).unwrap();
    assert_eq!(decoded.len(), 5);
    let offsets: Vec<i64> = decoded
        .iter()
        .flat_map(|b| b.records.iter().map(|r| r.offset))
        .collect();
    assert_eq!(offsets, (0..15).collect::<Vec<_>>());
    for b in &decoded {
        let values: Vec<_> = b.records.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, vec![Bytes::from("a"), Bytes::from("bb"), Bytes::from("ccc")]);
    }
}

#[test]
fn a_partial_batch_at_the_end_is_left_for_the_next_fetch() {
    let first = codec_batch(&["one"], Compression::None, 0);
    let second = codec_batch(&["two"], Compression::None, 1);
    for cut in [1, 11, 12, 30, second.len() - 1] {
        let mut bytes = BytesMut::from(&first[..]);
        bytes.extend_from_slice(&second[..cut]);
        let decoded = decode_batches(&bytes.freeze(), &DecodeLimits::default()).unwrap();
        assert_eq!(decoded.len(), 1, "cut at {cut}");
        assert_eq!(decoded[0].last_offset, 0);
    }
    assert!(
        decode_batches(&Bytes::new(), &DecodeLimits::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_batch_that_decompresses_past_the_limit_is_refused() {
    let big = "z".repeat(1 << 20);
    let batch = codec_batch(&[&big], Compression::Zstd, 0);
    assert!(batch.len() < 1 << 12, "compresses well: {} bytes", batch.len());
    let limits = DecodeLimits {
        decompressed_bytes_max: 1 << 19,
    };
    let e = decode_batches(&batch, &limits).unwrap_err();
    assert!(matches!(e, ClientError::InvalidBatch { offset: 0, .. }), "{e}");
    assert!(e.to_string().contains("more than"), "{e}");
    assert_eq!(
        decode_batches(&batch, &DecodeLimits::default()).unwrap()[0]
            .records
            .len(),
        1
    );
}

#[test]
fn damaged_batches_are_errors_not_panics() {
    let batch = codec_batch(&["a", "b"], Compression::None, 7);
    // A flipped bit in the records: the CRC catches it.
    let mut flipped = BytesMut::from(&batch[..]);
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let e = decode_batches(&flipped.freeze(), &DecodeLimits::default()).unwrap_err();
    assert!(matches!(e, ClientError::InvalidBatch { offset: 7, .. }), "{e}");
    // A record count far beyond the bytes, with a valid CRC: refused before the
    // codec reserves memory for it.
    let e = decode_batches(&patched(&batch, 57, &i32::MAX.to_be_bytes()), &DecodeLimits::default()).unwrap_err();
    assert!(e.to_string().contains("cannot fit"), "{e}");
    assert!(decode_batches(&patched(&batch, 57, &(-1i32).to_be_bytes()), &DecodeLimits::default()).is_err());
    // An old message format.
    let mut v1 = BytesMut::from(&batch[..]);
    v1[16] = 1;
    let e = decode_batches(&v1.freeze(), &DecodeLimits::default()).unwrap_err();
    assert!(e.to_string().contains("format v1"), "{e}");
    // A length shorter than a header.
    let mut short = BytesMut::from(&batch[..]);
    short[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(decode_batches(&short.freeze(), &DecodeLimits::default()).is_err());
}

/// Bytes of a non-negative value as a zigzag varint.
fn zigzag_width(v: i64) -> usize {
    let bits = 64 - ((v as u64) << 1).leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

fn arb_record() -> impl Strategy<Value = ProducerRecord> {
    let bytes = |max| proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from));
    let header = ("[a-z]{0,12}", bytes(40)).prop_map(|(key, value)| Header { key, value });
    (
        bytes(300),
        bytes(3000),
        proptest::collection::vec(header, 0..4),
        0i64..4_000_000_000_000,
    )
        .prop_map(|(key, value, mut headers, timestamp_ms)| {
            let mut seen = std::collections::HashSet::new();
            headers.retain(|h| seen.insert(h.key.clone()));
            ProducerRecord {
                key,
                value,
                headers,
                timestamp_ms,
            }
        })
}

proptest! {
    /// The size estimate is an upper bound, off by at most a byte per record;
    /// no batch exceeds its limit; every record comes back as pushed.
    #[test]
    fn batches_respect_their_limit_and_round_trip(
        records in proptest::collection::vec(arb_record(), 1..60),
        limit in 100usize..20_000,
    ) {
        let mut builder = BatchBuilder::new(limit).unwrap();
        let mut in_batch: Vec<ProducerRecord> = Vec::new();
        let check = |builder: &mut BatchBuilder, in_batch: &mut Vec<ProducerRecord>| {
            let estimate = builder.estimated_bytes();
            let batch = builder.build().unwrap();
            prop_assert!(batch.len() <= limit);
            // Every delta is counted at the widest one's width, and each length
            // prefix may take one byte more than needed.
            let span = in_batch.iter().map(|r| r.timestamp_ms).max().unwrap()
                - in_batch.iter().map(|r| r.timestamp_ms).min().unwrap();
            let widest = zigzag_width(span);
            prop_assert!(batch.len() <= estimate && estimate - batch.len() <= in_batch.len() * widest,
                "estimate {} for {} bytes and {} records", estimate, batch.len(), in_batch.len());
            let mut raw = batch.clone();
            let sets = RecordBatchDecoder::decode_all(&mut raw).unwrap();
            prop_assert_eq!(sets.len(), 1);
            let decoded = decode_batches(&batch, &DecodeLimits::default()).unwrap();
            let got = &decoded[0].records;
            prop_assert_eq!(got.len(), in_batch.len());
            for (g, w) in got.iter().zip(in_batch.iter()) {
                prop_assert_eq!(&g.key, &w.key);
                prop_assert_eq!(&g.value, &w.value);
                prop_assert_eq!(g.timestamp, w.timestamp_ms);
                prop_assert_eq!(g.headers.len(), w.headers.len());
            }
            in_batch.clear();
            Ok(())
        };
        for r in records {
            match builder.try_push(r.clone()) {
                Ok(Pushed::Added) => in_batch.push(r),
                Ok(Pushed::Full(back)) => {
                    check(&mut builder, &mut in_batch)?;
                    match builder.try_push(back.clone()) {
                        Ok(Pushed::Added) => in_batch.push(back),
                        Err(ClientError::RecordTooLarge { .. }) => {}
                        other => prop_assert!(false, "an empty batch answered {:?}", other),
                    }
                }
                Err(ClientError::RecordTooLarge { max, .. }) => prop_assert!(builder.is_empty() && max == limit),
                Err(e) => prop_assert!(false, "{}", e),
            }
        }
        if !builder.is_empty() {
            check(&mut builder, &mut in_batch)?;
        }
    }
}
