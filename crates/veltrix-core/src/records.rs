//! Records the broker writes itself (dead letters): one record read out of a
//! stored batch, whatever its codec, and an uncompressed RecordBatch v2
//! built from records.
//!
//! A stored batch is read with the validator's record walker, so a record
//! is found within the same bounds a producer's batch is checked with
//! (decompressed size, record counts, framing). The record format
//! (Kafka's `DefaultRecord`) is described in `validate/records.rs`.

use veltrix_log::batch::{self, HEADER_BYTES, MAGIC_V2};

use crate::validate::{Deltas, Field, InvalidBatch, Reading, RecordProblem, read_records};

/// One record with its own bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OwnedRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// Header keys and values, in order (keys may repeat, as Kafka allows).
    pub headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    pub timestamp_ms: i64,
}

impl OwnedRecord {
    /// Bytes the record takes in a batch, at most.
    pub fn encoded_bytes_max(&self) -> usize {
        let field = |f: &Option<Vec<u8>>| 5 + f.as_ref().map_or(0, Vec::len);
        5 + 1
            + 10
            + 5
            + field(&self.key)
            + field(&self.value)
            + 5
            + self.headers.iter().map(|(k, v)| 5 + k.len() + field(v)).sum::<usize>()
    }
}

/// The record at `offset` of the stored batch `bytes` (which starts at
/// `base_offset` as its header says), if the batch holds one there.
pub fn record_at(bytes: &[u8], offset: i64) -> Result<Option<OwnedRecord>, InvalidBatch> {
    let verified = batch::Verified::filtered(bytes, bytes.len())?;
    let header = *verified.header();
    if header.is_control() {
        return Ok(None);
    }
    let Ok(wanted) = i32::try_from(offset - header.base_offset) else {
        return Ok(None);
    };
    let reading = Reading {
        deltas: Deltas::Rising,
        field: Field::Nothing,
        field_bytes_max: 0,
        body: true,
    };
    let mut found = None;
    read_records(bytes, &header, &reading, &mut |seen| {
        if seen.offset_delta == wanted {
            let record = parse_body(seen.body, seen.timestamp).ok_or(InvalidBatch::Record {
                index: seen.offset_delta,
                problem: RecordProblem::Truncated,
            })?;
            found = Some(record);
        }
        Ok(())
    })?;
    Ok(found)
}

/// The records of the stored batch `bytes` at or after offset `from`, at
/// most `limit` of them, with their offsets, in order (none for a control
/// batch), decoded in one pass. Records outside are walked over, not
/// copied: a batch of millions of tiny records costs at most `limit` of
/// them in memory.
pub fn records_of(bytes: &[u8], from: i64, limit: usize) -> Result<Vec<(i64, OwnedRecord)>, InvalidBatch> {
    let verified = batch::Verified::filtered(bytes, bytes.len())?;
    let header = *verified.header();
    if header.is_control() {
        return Ok(Vec::new());
    }
    let reading = Reading {
        deltas: Deltas::Rising,
        field: Field::Nothing,
        field_bytes_max: 0,
        body: true,
    };
    let mut out = Vec::with_capacity(usize::try_from(header.record_count).unwrap_or(0).min(limit).min(4_096));
    read_records(bytes, &header, &reading, &mut |seen| {
        let offset = header.base_offset + i64::from(seen.offset_delta);
        if offset < from || out.len() >= limit {
            return Ok(());
        }
        let record = parse_body(seen.body, seen.timestamp).ok_or(InvalidBatch::Record {
            index: seen.offset_delta,
            problem: RecordProblem::Truncated,
        })?;
        out.push((offset, record));
        Ok(())
    })?;
    Ok(out)
}

/// What a record says of its own delivery: the headers share groups with
/// delays and priorities read, and its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryHeaders<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    /// `veltrix.deliver.at`: epoch ms or RFC 3339.
    pub deliver_at: Option<&'a [u8]>,
    /// `veltrix.delay.ms`: ms after the record's timestamp.
    pub delay_ms: Option<&'a [u8]>,
    /// `veltrix.priority`: 0 to 9.
    pub priority: Option<&'a [u8]>,
}

/// Calls `visit` with the delivery headers of every record of the stored
/// batch `bytes`. Nothing is copied but a compressed batch's records.
pub fn delivery_headers(bytes: &[u8], visit: &mut dyn FnMut(DeliveryHeaders<'_>)) -> Result<(), InvalidBatch> {
    // A batch of the partition's own log: its checksum was verified when it
    // was appended (and at recovery), so it is not computed again here.
    let header = batch::parse_header(bytes)?;
    if header.is_control() {
        return Ok(());
    }
    let reading = Reading {
        deltas: Deltas::Rising,
        field: Field::Nothing,
        field_bytes_max: 0,
        body: true,
    };
    read_records(bytes, &header, &reading, &mut |seen| {
        let mut h = DeliveryHeaders {
            offset: header.base_offset + i64::from(seen.offset_delta),
            timestamp_ms: seen.timestamp,
            ..DeliveryHeaders::default()
        };
        scan_body(seen.body, &mut h);
        visit(h);
        Ok(())
    })?;
    Ok(())
}

/// Fills `h` from a record's body; a body that does not parse leaves the
/// rest unset (the walker checked its framing).
fn scan_body<'a>(b: &'a [u8], h: &mut DeliveryHeaders<'a>) -> Option<()> {
    let mut at = 1usize;
    varlong(b, &mut at)?; // timestamp delta
    varint(b, &mut at)?; // offset delta
    h.key = slice(b, &mut at)?;
    slice(b, &mut at)?;
    let count = varint(b, &mut at)?;
    for _ in 0..count.max(0) {
        let k = slice(b, &mut at)??;
        let v = slice(b, &mut at)?;
        match k {
            b"veltrix.deliver.at" => h.deliver_at = h.deliver_at.or(v),
            b"veltrix.delay.ms" => h.delay_ms = h.delay_ms.or(v),
            b"veltrix.priority" => h.priority = h.priority.or(v),
            _ => {}
        }
    }
    Some(())
}

/// A varint length and that many bytes, in place; -1 is null.
fn slice<'a>(b: &'a [u8], at: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = varint(b, at)?;
    if len < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let bytes = b.get(*at..end)?;
    *at = end;
    Some(Some(bytes))
}

/// A record's bytes after its length: attributes, timestamp delta, offset
/// delta, key, value, headers. The walker has checked the framing already;
/// `None` if the bytes still do not parse.
fn parse_body(body: &[u8], timestamp_ms: i64) -> Option<OwnedRecord> {
    let mut at = 1usize; // attributes
    varlong(body, &mut at)?; // timestamp delta
    varint(body, &mut at)?; // offset delta
    let key = field(body, &mut at)?;
    let value = field(body, &mut at)?;
    let count = varint(body, &mut at)?;
    let mut headers = Vec::new();
    for _ in 0..count.max(0) {
        let k = field(body, &mut at)??;
        let v = field(body, &mut at)?;
        headers.push((k, v));
    }
    Some(OwnedRecord {
        key,
        value,
        headers,
        timestamp_ms,
    })
}

/// A zigzag varint as Kafka reads one (an int32: at most 5 bytes, bits past
/// the 32nd dropped), as the validator read it when the batch was accepted.
fn varint(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for i in 0..5 {
        let byte = *b.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let raw = raw as u32;
            return Some(i64::from(((raw >> 1) as i32) ^ -((raw & 1) as i32)));
        }
    }
    None
}

/// A zigzag varlong (up to 10 bytes) at `at`: a record's timestamp delta.
fn varlong(b: &[u8], at: &mut usize) -> Option<i64> {
    let mut raw = 0u64;
    for i in 0..10 {
        let byte = *b.get(*at)?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// A varint length and that many bytes; -1 is null.
fn field(b: &[u8], at: &mut usize) -> Option<Option<Vec<u8>>> {
    let len = varint(b, at)?;
    if len < 0 {
        return Some(None);
    }
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let bytes = b.get(*at..end)?.to_vec();
    *at = end;
    Some(Some(bytes))
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut raw = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_field(out: &mut Vec<u8>, f: Option<&[u8]>) {
    match f {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// An idempotent producer's stamp on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub epoch: i16,
    /// The sequence number of the batch's first record.
    pub base_sequence: i32,
}

/// An uncompressed RecordBatch v2 of `records` (at least one), CreateTime,
/// no producer id, relative offsets 0..n, as a producer would send it.
pub fn encode_batch(records: &[OwnedRecord]) -> Vec<u8> {
    encode_batch_as(records, None)
}

/// [`encode_batch`], stamped by an idempotent producer when `producer` is set.
pub fn encode_batch_as(records: &[OwnedRecord], producer: Option<ProducerStamp>) -> Vec<u8> {
    encode_batch_with(records, producer, 0)
}

/// [`encode_batch_as`] with the batch's `attributes` (no codec bits: the
/// records are not compressed).
pub(crate) fn encode_batch_with(records: &[OwnedRecord], producer: Option<ProducerStamp>, attributes: i16) -> Vec<u8> {
    assert!(attributes & 0x7 == 0, "encode_batch_with does not compress");
    assert!(!records.is_empty(), "a batch holds at least one record");
    let base_ts = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max_ts = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let mut buf = vec![0u8; HEADER_BYTES];
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        body.clear();
        body.push(0); // attributes
        put_varint(&mut body, r.timestamp_ms - base_ts);
        put_varint(&mut body, i as i64);
        put_field(&mut body, r.key.as_deref());
        put_field(&mut body, r.value.as_deref());
        put_varint(&mut body, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_field(&mut body, Some(k));
            put_field(&mut body, v.as_deref());
        }
        put_varint(&mut buf, body.len() as i64);
        buf.extend_from_slice(&body);
    }
    let len = i32::try_from(buf.len() - batch::LOG_OVERHEAD).unwrap_or(i32::MAX);
    buf[8..12].copy_from_slice(&len.to_be_bytes());
    buf[12..16].copy_from_slice(&(-1i32).to_be_bytes()); // leader epoch
    buf[16] = MAGIC_V2 as u8;
    buf[21..23].copy_from_slice(&attributes.to_be_bytes());
    buf[23..27].copy_from_slice(&((records.len() - 1) as i32).to_be_bytes());
    buf[27..35].copy_from_slice(&base_ts.to_be_bytes());
    buf[35..43].copy_from_slice(&max_ts.to_be_bytes());
    let (id, epoch, sequence) = producer.map_or((-1, -1, -1), |p| (p.producer_id, p.epoch, p.base_sequence));
    buf[43..51].copy_from_slice(&id.to_be_bytes());
    buf[51..53].copy_from_slice(&epoch.to_be_bytes());
    buf[53..57].copy_from_slice(&sequence.to_be_bytes());
    buf[57..61].copy_from_slice(&(records.len() as i32).to_be_bytes());
    let crc = batch::compute_crc(&buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by the batch_validate fuzz target): a header count
    /// written as a 5-byte varint with bits past the 32nd, which Kafka and
    /// the validator read as 0 (an int32), was read as billions of headers
    /// here, and the accepted record as truncated.
    #[test]
    fn lengths_and_counts_are_read_as_kafka_reads_an_int32_varint() {
        // attributes, timestamp delta 0 written in 2 bytes, offset delta 0,
        // null key, null value, header count 0x60 << 28.
        let body = [0x3a, 0x80, 0x00, 0x00, 0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x60];
        let r = parse_body(&body, 7).expect("the record the validator accepted");
        assert_eq!((r.key, r.value, r.headers.len(), r.timestamp_ms), (None, None, 0, 7));
    }

    fn sample(n: u8) -> OwnedRecord {
        OwnedRecord {
            key: Some(vec![b'k', n]),
            value: if n.is_multiple_of(2) { Some(vec![n; 300]) } else { None },
            headers: vec![(b"h".to_vec(), Some(vec![n])), (b"h".to_vec(), None)],
            timestamp_ms: 1_700_000_000_000 + i64::from(n),
        }
    }

    #[test]
    fn an_encoded_batch_validates_and_reads_back_record_by_record() {
        let records: Vec<OwnedRecord> = (0..5).map(sample).collect();
        let mut bytes = encode_batch(&records);
        crate::validate::validate(&bytes, 1 << 20).expect("a valid producer batch");
        batch::assign(&mut bytes, 40, 0);
        for (i, r) in records.iter().enumerate() {
            assert_eq!(record_at(&bytes, 40 + i as i64).unwrap().as_ref(), Some(r));
            assert!(bytes.len() >= r.encoded_bytes_max() / 8);
        }
        assert_eq!(record_at(&bytes, 39).unwrap(), None);
        assert_eq!(record_at(&bytes, 45).unwrap(), None);
    }

    #[test]
    fn records_of_batches_of_every_codec_are_found() {
        use bytes::Bytes;
        use veltrix_client::kafka_protocol::indexmap::IndexMap;
        use veltrix_client::kafka_protocol::protocol::StrBytes;
        use veltrix_client::kafka_protocol::records::{Compression, Record};
        let records: Vec<Record> = (0..3u8)
            .map(|i| Record {
                key: Some(Bytes::from(vec![i])),
                value: Some(Bytes::from(vec![i; 100])),
                headers: [(StrBytes::from_static_str("x"), Some(Bytes::from(vec![i])))]
                    .into_iter()
                    .collect::<IndexMap<_, _>>(),
                ..veltrix_client::plain_record(i64::from(i), -1, 5)
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = veltrix_client::encode_records(&records, compression).unwrap();
            let r = crate::validate::split(&bytes)
                .find_map(|one| record_at(one.unwrap(), 2).unwrap())
                .unwrap();
            assert_eq!(r.key, Some(vec![2]), "{compression:?}");
            assert_eq!(r.value, Some(vec![2; 100]));
            assert_eq!(r.headers, vec![(b"x".to_vec(), Some(vec![2]))]);
            assert_eq!(r.timestamp_ms, 5);
        }
    }
}
