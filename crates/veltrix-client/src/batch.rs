//! Record batches: building a RecordBatch v2 of bounded size for a produce, and
//! decoding fetched batches within bounds.
//!
//! [`BatchBuilder`] keeps an upper bound of the encoded size as records are
//! pushed (see [`BatchBuilder::estimated_bytes`]) and refuses a record that
//! would take the batch past its `bytes_max`, so a built batch never exceeds it. Batches are
//! uncompressed, carry no producer id (not idempotent) and relative offsets
//! 0..n, which the broker replaces with real ones.
//!
//! [`decode_batches`] splits fetched bytes into batches, leaves out a partial
//! batch at the end (a fetch may cut one), and decodes each with
//! kafka-protocol's `RecordBatchDecoder`, which verifies the CRC. Its hook
//! decompresses within [`DecodeLimits::decompressed_bytes_max`] and checks every
//! record and header count against the bytes that must hold them before the
//! codec reserves memory for that many.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::compression::decompress;
use crate::error::ClientError;

/// Bytes of a RecordBatch v2 before its records: base offset (8), length (4),
/// leader epoch (4), magic (1), CRC (4), attributes (2), last offset delta (4),
/// first and max timestamps (16), producer id (8) and epoch (2), base sequence
/// (4), record count (4).
pub const BATCH_OVERHEAD_BYTES: usize = 61;
/// Where the header fields read here sit in a batch.
const OFF_LENGTH: usize = 8;
const OFF_MAGIC: usize = 16;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_RECORD_COUNT: usize = 57;
/// The batch length field counts the bytes after it.
const LENGTH_FIELD_END: usize = 12;
/// The smallest encoded record: length, attributes, timestamp delta, offset
/// delta, key length, value length and header count, one byte each.
const RECORD_BYTES_MIN: usize = 7;
/// The largest zigzag varint of a 64-bit value.
const VARLONG_BYTES_MAX: usize = 10;
/// Attribute bit of a control batch (transaction markers), not user data.
const ATTRIBUTE_CONTROL: i16 = 1 << 5;

/// One record header. Kafka allows repeated keys, but kafka-protocol's record
/// keeps one value per key, so the builder refuses duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Creation time, ms since the Unix epoch; at least 0.
    pub timestamp_ms: i64,
}

/// What [`BatchBuilder::try_push`] did with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The record is in the batch.
    Added,
    /// The batch has no room for it: build this batch, then push it again.
    Full(ProducerRecord),
}

/// Builds one uncompressed RecordBatch v2 of at most `bytes_max` bytes.
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    /// No built batch is larger.
    bytes_max: usize,
    records: Vec<Record>,
    /// Sum over the records of their size without the timestamp delta, each
    /// with a length prefix sized as if the delta took its largest form.
    records_bytes: usize,
    /// The smallest and largest timestamps in the batch: every delta from the
    /// smallest fits in the varint size of their difference.
    timestamp_min: i64,
    timestamp_max: i64,
}

/// Bytes of `v` as a zigzag varint, the encoding of every record field.
fn zigzag_bytes(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// Bytes of a length-prefixed field, null as length -1.
fn field_bytes(len: Option<usize>) -> usize {
    match len {
        None => zigzag_bytes(-1),
        Some(n) => zigzag_bytes(i64::try_from(n).unwrap_or(i64::MAX)) + n,
    }
}

/// Size of a record's body (after its length prefix) without the timestamp delta.
fn body_bytes_without_timestamp(record: &ProducerRecord, index: usize) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| field_bytes(Some(h.key.len())) + field_bytes(h.value.as_ref().map(Bytes::len)))
        .sum();
    1 + zigzag_bytes(i64::try_from(index).unwrap_or(i64::MAX))
        + field_bytes(record.key.as_ref().map(Bytes::len))
        + field_bytes(record.value.as_ref().map(Bytes::len))
        + zigzag_bytes(i64::try_from(record.headers.len()).unwrap_or(i64::MAX))
        + headers
}

impl BatchBuilder {
    /// A builder of batches of at most `bytes_max` bytes, which must leave room
    /// for a record after the batch header and fit Kafka's 32-bit sizes.
    pub fn new(bytes_max: usize) -> Result<BatchBuilder, ClientError> {
        if bytes_max < BATCH_OVERHEAD_BYTES + RECORD_BYTES_MIN || bytes_max > i32::MAX as usize {
            return Err(ClientError::InvalidArgument(format!(
                "a batch size limit must be between {} and {} bytes, not {bytes_max}",
                BATCH_OVERHEAD_BYTES + RECORD_BYTES_MIN,
                i32::MAX
            )));
        }
        Ok(BatchBuilder {
            bytes_max,
            records: Vec::new(),
            records_bytes: 0,
            timestamp_min: 0,
            timestamp_max: 0,
        })
    }

    /// The limit this builder keeps to.
    pub fn bytes_max(&self) -> usize {
        self.bytes_max
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// An upper bound of the size of the batch [`BatchBuilder::build`] would
    /// encode now, kept in constant time per push. It counts every record's
    /// timestamp delta at the width of the largest one, and each length prefix
    /// as if that delta took its largest form. For records stamped within 63 ms
    /// of each other it is exact but for one byte per record whose length sits
    /// just below a varint boundary; in general it exceeds the real size by at
    /// most the width of the largest delta per record.
    pub fn estimated_bytes(&self) -> usize {
        self.estimate(
            self.records_bytes,
            self.records.len(),
            self.timestamp_min,
            self.timestamp_max,
        )
    }

    fn estimate(&self, records_bytes: usize, count: usize, timestamp_min: i64, timestamp_max: i64) -> usize {
        // Both timestamps are at least 0, so the difference cannot overflow.
        let delta_bytes = zigzag_bytes(timestamp_max - timestamp_min);
        BATCH_OVERHEAD_BYTES + records_bytes + count * delta_bytes
    }

    /// Adds `record` if the batch stays within its limit; hands it back if the
    /// batch is full. A record too large for even an empty batch, a negative
    /// timestamp or a repeated header key is an error.
    pub fn try_push(&mut self, record: ProducerRecord) -> Result<Pushed, ClientError> {
        if record.timestamp_ms < 0 {
            return Err(ClientError::InvalidArgument(format!(
                "a record timestamp must be at least 0, not {}",
                record.timestamp_ms
            )));
        }
        let mut keys = HashSet::with_capacity(record.headers.len());
        if let Some(h) = record.headers.iter().find(|h| !keys.insert(h.key.as_str())) {
            return Err(ClientError::InvalidArgument(format!(
                "header `{}` is given more than once",
                h.key
            )));
        }
        let index = self.records.len();
        let body = body_bytes_without_timestamp(&record, index);
        let bytes = zigzag_bytes(i64::try_from(body + VARLONG_BYTES_MAX).unwrap_or(i64::MAX)) + body;
        let (timestamp_min, timestamp_max) = if self.records.is_empty() {
            (record.timestamp_ms, record.timestamp_ms)
        } else {
            (
                self.timestamp_min.min(record.timestamp_ms),
                self.timestamp_max.max(record.timestamp_ms),
            )
        };
        let records_bytes = self.records_bytes.saturating_add(bytes);
        let estimate = self.estimate(records_bytes, index + 1, timestamp_min, timestamp_max);
        if estimate > self.bytes_max {
            if self.records.is_empty() {
                return Err(ClientError::RecordTooLarge {
                    size: estimate,
                    max: self.bytes_max,
                });
            }
            return Ok(Pushed::Full(record));
        }
        let offset = i64::try_from(index).unwrap_or(i64::MAX);
        self.records.push(Record {
            key: record.key,
            value: record.value,
            headers: record
                .headers
                .into_iter()
                .map(|h| (StrBytes::from_string(h.key), h.value))
                .collect::<IndexMap<_, _>>(),
            // The codec starts a new batch wherever offset minus sequence
            // changes; sequences counting up from -1 keep one batch whose base
            // sequence is -1, Kafka's "no sequence".
            ..plain_record(offset, (offset as i32).wrapping_sub(1), record.timestamp_ms)
        });
        self.records_bytes = records_bytes;
        self.timestamp_min = timestamp_min;
        self.timestamp_max = timestamp_max;
        Ok(Pushed::Added)
    }

    /// Encodes the records pushed so far into one batch and empties the builder.
    pub fn build(&mut self) -> Result<Bytes, ClientError> {
        if self.records.is_empty() {
            return Err(ClientError::InvalidArgument(
                "a batch needs at least one record".to_owned(),
            ));
        }
        let estimate = self.estimated_bytes();
        let mut buf = BytesMut::with_capacity(estimate);
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &self.records, &options)
            .map_err(|e| ClientError::InvalidArgument(format!("cannot encode a record batch: {e}")))?;
        assert!(
            buf.len() <= estimate && estimate <= self.bytes_max,
            "batch of {} bytes, estimated {estimate}, limit {}",
            buf.len(),
            self.bytes_max
        );
        self.records.clear();
        self.records_bytes = 0;
        Ok(buf.freeze())
    }
}

/// A record as a producer without idempotence writes it: no producer id or
/// epoch, outside any transaction, stamped at creation, with no key, value or
/// headers until the caller sets them. The offset and sequence are the
/// caller's: the encoder derives each batch's base offset and base sequence
/// from them.
pub fn plain_record(offset: i64, sequence: i32, timestamp_ms: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence,
        timestamp: timestamp_ms,
        key: None,
        value: None,
        headers: IndexMap::new(),
    }
}

/// Encodes `records` as RecordBatch v2 with `compression`, unbounded: one
/// batch, or more wherever offset minus sequence changes between records (the
/// encoder's rule). [`BatchBuilder`] is the bounded way to build a batch.
pub fn encode_records(records: &[Record], compression: Compression) -> Result<Bytes, ClientError> {
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records, &options)
        .map_err(|e| ClientError::InvalidArgument(format!("cannot encode a record batch: {e}")))?;
    Ok(buf.freeze())
}

/// Limits of decoding fetched batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The most bytes one batch's records may decompress to.
    pub decompressed_bytes_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> DecodeLimits {
        DecodeLimits {
            decompressed_bytes_max: 64 << 20,
        }
    }
}

/// One decoded batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBatch {
    pub base_offset: i64,
    /// The batch's last offset: the next fetch starts after it, even if the
    /// records that had the last offsets are gone (compaction).
    pub last_offset: i64,
    /// A control batch (transaction markers) holds no user records.
    pub control: bool,
    pub records: Vec<Record>,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes every whole batch in `bytes`, as a fetch returned them. A partial
/// batch at the end is left out; anything else that does not decode is an error.
pub fn decode_batches(bytes: &Bytes, limits: &DecodeLimits) -> Result<Vec<FetchedBatch>, ClientError> {
    let mut batches = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= LENGTH_FIELD_END {
        let head = &bytes[at..];
        let base_offset = i64::from_be_bytes([head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]]);
        let invalid = |message: String| ClientError::InvalidBatch {
            offset: base_offset,
            message,
        };
        let length = be_i32(head, OFF_LENGTH);
        let size = usize::try_from(length)
            .ok()
            .map(|n| n + LENGTH_FIELD_END)
            .filter(|n| *n >= BATCH_OVERHEAD_BYTES)
            .ok_or_else(|| invalid(format!("length {length} is shorter than a batch header")))?;
        if size > head.len() {
            // A fetch may end in the middle of a batch; the next fetch gets it.
            break;
        }
        let batch = bytes.slice(at..at + size);
        at += size;
        let magic = batch[OFF_MAGIC] as i8;
        if magic != 2 {
            return Err(invalid(format!("message format v{magic} is not supported")));
        }
        let attributes = i16::from_be_bytes([batch[OFF_ATTRIBUTES], batch[OFF_ATTRIBUTES + 1]]);
        let last_offset_delta = be_i32(&batch, OFF_LAST_OFFSET_DELTA);
        let last_offset = base_offset
            .checked_add(i64::from(last_offset_delta))
            .filter(|_| last_offset_delta >= 0)
            .ok_or_else(|| invalid(format!("invalid last offset delta {last_offset_delta}")))?;
        let record_count = usize::try_from(be_i32(&batch, OFF_RECORD_COUNT))
            .map_err(|_| invalid("negative record count".to_owned()))?;
        let bytes_max = limits.decompressed_bytes_max;
        let hook = move |records: &mut Bytes, compression: Compression| -> anyhow::Result<Bytes> {
            let records = match compression {
                Compression::None => records.clone(),
                other => Bytes::from(decompress(records, other, bytes_max).map_err(anyhow::Error::msg)?),
            };
            check_counts(&records, record_count).map_err(anyhow::Error::msg)?;
            Ok(records)
        };
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(hook))
            .map_err(|e| invalid(format!("{e:#}")))?;
        batches.push(FetchedBatch {
            base_offset,
            last_offset,
            control: attributes & ATTRIBUTE_CONTROL != 0,
            records: set.records,
        });
    }
    Ok(batches)
}

/// A zigzag varint of at most `bytes_max` bytes from the front of `data`.
fn read_zigzag(data: &mut &[u8], bytes_max: usize) -> Result<i64, String> {
    let mut u: u64 = 0;
    for i in 0..bytes_max {
        let (&b, rest) = data.split_first().ok_or("a varint overruns the records")?;
        *data = rest;
        u |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((u >> 1) as i64 ^ -((u & 1) as i64));
        }
    }
    Err("a varint is too long".to_owned())
}

fn read_varint(data: &mut &[u8]) -> Result<i64, String> {
    read_zigzag(data, 5)
}

fn skip(data: &mut &[u8], n: usize) -> Result<(), String> {
    *data = data.get(n..).ok_or("a field overruns its record")?;
    Ok(())
}

/// Checks the counts the codec allocates by (records in the batch, headers in
/// each record) against the bytes that must hold them. The codec reports every
/// other inconsistency itself.
fn check_counts(mut data: &[u8], record_count: usize) -> Result<(), String> {
    if record_count > data.len() / RECORD_BYTES_MIN {
        return Err(format!("{record_count} records cannot fit in {} bytes", data.len()));
    }
    for i in 0..record_count {
        let size = read_varint(&mut data)?;
        let size = usize::try_from(size).map_err(|_| format!("record {i} has a negative size"))?;
        let mut record = data
            .get(..size)
            .ok_or_else(|| format!("record {i} overruns the batch"))?;
        data = &data[size..];
        skip(&mut record, 1)?; // attributes
        read_zigzag(&mut record, VARLONG_BYTES_MAX)?; // timestamp delta
        read_varint(&mut record)?; // offset delta
        for _key_then_value in 0..2 {
            let len = read_varint(&mut record)?;
            if let Ok(len) = usize::try_from(len) {
                skip(&mut record, len)?;
            }
        }
        // Each header takes at least two bytes: its key and value lengths.
        let headers = read_varint(&mut record)?;
        if usize::try_from(headers).is_ok_and(|h| h > record.len() / 2) {
            return Err(format!("record {i} claims {headers} headers in {} bytes", record.len()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_sizes_match_the_encoding() {
        assert_eq!(zigzag_bytes(0), 1);
        assert_eq!(zigzag_bytes(-1), 1);
        assert_eq!(zigzag_bytes(63), 1);
        assert_eq!(zigzag_bytes(64), 2);
        assert_eq!(zigzag_bytes(-64), 1);
        assert_eq!(zigzag_bytes(-65), 2);
        assert_eq!(zigzag_bytes(i64::MAX), 10);
        assert_eq!(zigzag_bytes(i64::MIN), 10);
        for v in [0i64, 1, -1, 300, -300, 1 << 40, i64::MIN, i64::MAX] {
            let mut buf = Vec::new();
            let mut u = ((v << 1) ^ (v >> 63)) as u64;
            loop {
                let b = (u & 0x7f) as u8;
                u >>= 7;
                if u == 0 {
                    buf.push(b);
                    break;
                }
                buf.push(b | 0x80);
            }
            assert_eq!(buf.len(), zigzag_bytes(v), "{v}");
            let mut read = &buf[..];
            assert_eq!(read_zigzag(&mut read, VARLONG_BYTES_MAX).unwrap(), v);
            assert!(read.is_empty());
        }
    }

    #[test]
    fn counts_larger_than_their_bytes_are_refused() {
        assert!(check_counts(&[0; 13], 2).is_err());
        // One record: size 8, attributes, ts 0, offset 0, null key, null value,
        // then a header count of 1000 with 1 byte left.
        let record = [16u8, 0, 0, 0, 1, 1, 0xd0, 0x0f, 0];
        let e = check_counts(&record, 1).unwrap_err();
        assert!(e.contains("1000 headers"), "{e}");
    }
}
