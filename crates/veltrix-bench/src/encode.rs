//! The load generator's own record batch encoding and decoding: RecordBatch v2,
//! uncompressed, with at most one header per record (the message id of
//! `--message-ids`), written straight into one buffer per partition as records
//! are generated, and read back with only what the measurements need (record
//! count, value bytes, the send time a value starts with).
//!
//! The general-purpose `veltrix_client::BatchBuilder` builds a `Record` per
//! record and encodes them through the codec; at a million records a second
//! on a machine the broker shares, that cost would be measured instead of the
//! broker's.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of a RecordBatch v2 header, before the first record.
pub const BATCH_HEADER_BYTES: usize = 61;
/// Offset of the CRC-32C field; the checksum covers everything after it.
const CRC_AT: usize = 17;
/// Offset of the attributes, where the checksummed part begins.
const ATTRIBUTES_AT: usize = 21;
/// The largest encoding of a record's framing (length, attributes, deltas,
/// key and value lengths, header count) beyond its key and value bytes.
pub const RECORD_FRAMING_BYTES_MAX: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// The largest encoding of a header's framing (key and value lengths) beyond
/// its key and value bytes.
pub const HEADER_FRAMING_BYTES_MAX: usize = 5 + 5;

/// One record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl Header<'_> {
    /// The most bytes it takes in a record.
    pub fn bytes_max(&self) -> usize {
        HEADER_FRAMING_BYTES_MAX + self.key.len() + self.value.len()
    }

    fn bytes(&self) -> usize {
        varint_bytes(self.key.len() as i64) + self.key.len() + varint_bytes(self.value.len() as i64) + self.value.len()
    }
}

/// Bytes of `v` as a zigzag varint.
fn varint_bytes(v: i64) -> usize {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut BytesMut, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        buf.put_u8((u as u8) | 0x80);
        u >>= 7;
    }
    buf.put_u8(u as u8);
}

/// A batch being filled for one partition.
#[derive(Debug)]
pub struct BatchWriter {
    buf: BytesMut,
    /// The size of the last batch taken: the next one is likely the same, so
    /// its buffer is allocated at that size at once instead of growing
    /// through reallocations (each a copy of everything so far).
    last_bytes: usize,
    records: i32,
    timestamp_base_ms: i64,
    timestamp_max_ms: i64,
}

impl Default for BatchWriter {
    fn default() -> BatchWriter {
        BatchWriter::new()
    }
}

impl BatchWriter {
    pub fn new() -> BatchWriter {
        BatchWriter {
            buf: empty_batch(BATCH_HEADER_BYTES),
            last_bytes: BATCH_HEADER_BYTES,
            records: 0,
            timestamp_base_ms: 0,
            timestamp_max_ms: 0,
        }
    }

    /// Records so far.
    pub fn len(&self) -> usize {
        self.records as usize
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The batch's size if built now.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The size the batch would have with one more record of this key and
    /// value length and `header_bytes` of headers (`Header::bytes_max`): an
    /// upper bound.
    pub fn bytes_with(&self, key_len: usize, value_len: usize, header_bytes: usize) -> usize {
        self.buf.len() + RECORD_FRAMING_BYTES_MAX + key_len + value_len + header_bytes
    }

    /// Appends a record stamped `timestamp_ms`, with `header` if given.
    pub fn push(&mut self, timestamp_ms: i64, key: Option<&[u8]>, value: &[u8], header: Option<Header<'_>>) {
        if self.records == 0 {
            self.timestamp_base_ms = timestamp_ms;
        }
        self.timestamp_max_ms = self.timestamp_max_ms.max(timestamp_ms);
        let timestamp_delta = timestamp_ms - self.timestamp_base_ms;
        let offset_delta = i64::from(self.records);
        let key_len = key.map_or(-1, |k| k.len() as i64);
        let value_len = value.len() as i64;
        let body = 1
            + varint_bytes(timestamp_delta)
            + varint_bytes(offset_delta)
            + varint_bytes(key_len)
            + key.map_or(0, <[u8]>::len)
            + varint_bytes(value_len)
            + value.len()
            + varint_bytes(i64::from(header.is_some()))
            + header.map_or(0, |h| h.bytes());
        let buf = &mut self.buf;
        buf.reserve(body + 5);
        put_varint(buf, body as i64);
        buf.put_u8(0);
        put_varint(buf, timestamp_delta);
        put_varint(buf, offset_delta);
        put_varint(buf, key_len);
        if let Some(k) = key {
            buf.put_slice(k);
        }
        put_varint(buf, value_len);
        buf.put_slice(value);
        match header {
            Some(h) => {
                put_varint(buf, 1);
                put_varint(buf, h.key.len() as i64);
                buf.put_slice(h.key);
                put_varint(buf, h.value.len() as i64);
                buf.put_slice(h.value);
            }
            None => put_varint(buf, 0),
        }
        self.records += 1;
    }

    /// Finishes the batch (header and checksum) and starts a new one.
    pub fn take(&mut self) -> Bytes {
        self.last_bytes = self.buf.len();
        let mut buf = std::mem::replace(&mut self.buf, empty_batch(self.last_bytes));
        let length = (buf.len() - 12) as i32;
        let mut header = &mut buf[..BATCH_HEADER_BYTES];
        header.put_i64(0); // base offset: assigned by the broker
        header.put_i32(length);
        header.put_i32(-1); // partition leader epoch
        header.put_i8(2); // magic
        header.put_u32(0); // CRC, below
        header.put_i16(0); // attributes: no compression, create time
        header.put_i32(self.records - 1);
        header.put_i64(self.timestamp_base_ms);
        header.put_i64(self.timestamp_max_ms);
        header.put_i64(-1); // producer id: not idempotent
        header.put_i16(-1);
        header.put_i32(-1);
        header.put_i32(self.records);
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        self.records = 0;
        self.timestamp_max_ms = 0;
        buf.freeze()
    }
}

/// A buffer with room for `capacity` bytes, holding a zeroed batch header.
fn empty_batch(capacity: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(capacity.max(BATCH_HEADER_BYTES));
    b.put_bytes(0, BATCH_HEADER_BYTES);
    b
}

/// What a consumer learns from fetched bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Whole records read.
    pub records: u64,
    /// Their value bytes.
    pub value_bytes: u64,
    /// The offset after the last whole batch, if any.
    pub next_offset: Option<i64>,
    /// Bytes of the whole batches read.
    pub batch_bytes: u64,
}

#[inline]
fn read_varint(b: &[u8], at: &mut usize) -> Option<i64> {
    // Most fields of a record fit one byte.
    let first = *b.get(*at)?;
    if first < 0x80 {
        *at += 1;
        let u = u64::from(first);
        return Some(((u >> 1) as i64) ^ -((u & 1) as i64));
    }
    let mut u: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        u |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    None
}

/// Walks the whole batches in `bytes` (a fetch answer may end with a partial
/// one), calling `value(v)` with the value of every record of an uncompressed
/// batch. Compressed batches count their records and batch bytes only.
/// Returns `None` on bytes that are not record batches.
pub fn walk(bytes: &[u8], mut value: impl FnMut(&[u8])) -> Option<Walked> {
    let mut out = Walked::default();
    let mut at = 0usize;
    while bytes.len() - at >= BATCH_HEADER_BYTES {
        let b = &bytes[at..];
        let base_offset = i64::from_be_bytes(b[0..8].try_into().ok()?);
        let length = usize::try_from(i32::from_be_bytes(b[8..12].try_into().ok()?)).ok()?;
        let end = length.checked_add(12)?;
        if end < BATCH_HEADER_BYTES {
            return None;
        }
        if end > b.len() {
            break;
        }
        let attributes = i16::from_be_bytes(b[21..23].try_into().ok()?);
        let last_offset_delta = i64::from(i32::from_be_bytes(b[23..27].try_into().ok()?));
        let count = i32::from_be_bytes(b[57..61].try_into().ok()?);
        let count = u64::try_from(count).ok()?;
        if attributes & 0x07 == 0 {
            let records = &b[BATCH_HEADER_BYTES..end];
            let mut r = 0usize;
            for _ in 0..count {
                let len = usize::try_from(read_varint(records, &mut r)?).ok()?;
                let record_end = r.checked_add(len)?;
                let record = records.get(r..record_end)?;
                let mut p = 1; // attributes
                read_varint(record, &mut p)?; // timestamp delta
                read_varint(record, &mut p)?; // offset delta
                let key_len = read_varint(record, &mut p)?;
                if key_len > 0 {
                    p = p.checked_add(usize::try_from(key_len).ok()?)?;
                }
                let value_len = read_varint(record, &mut p)?;
                if value_len > 0 {
                    let v = record.get(p..p.checked_add(usize::try_from(value_len).ok()?)?)?;
                    out.value_bytes += v.len() as u64;
                    value(v);
                }
                r = record_end;
            }
        }
        out.records += count;
        out.next_offset = Some(base_offset + last_offset_delta + 1);
        at += end;
    }
    out.batch_bytes = at as u64;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use veltrix_client::{DecodeLimits, decode_batches};

    proptest! {
        /// What the writer builds, the client's general decoder reads back
        /// (CRC checked), headers included, and the walker agrees with it;
        /// the size bound holds for every record.
        #[test]
        fn batches_round_trip_through_the_client_decoder(
            records in proptest::collection::vec(
                (proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
                 proptest::collection::vec(any::<u8>(), 0..300),
                 0i64..5_000,
                 proptest::option::of(("[a-z-]{0,20}", proptest::collection::vec(any::<u8>(), 0..200)))),
                1..50),
        ) {
            let mut w = BatchWriter::new();
            for (key, value, ts, header) in &records {
                let header = header.as_ref().map(|(k, v)| Header { key: k.as_bytes(), value: v });
                let bound = w.bytes_with(key.as_ref().map_or(0, Vec::len), value.len(), header.map_or(0, |h| h.bytes_max()));
                w.push(1_700_000_000_000 + ts, key.as_deref(), value, header);
                prop_assert!(w.bytes() <= bound);
            }
            let batch = w.take();
            prop_assert!(w.is_empty());
            let decoded = decode_batches(&batch, &DecodeLimits::default()).unwrap();
            prop_assert_eq!(decoded.len(), 1);
            let got = &decoded[0].records;
            prop_assert_eq!(got.len(), records.len());
            for (r, (key, value, ts, header)) in got.iter().zip(&records) {
                prop_assert_eq!(r.key.as_deref(), key.as_deref());
                prop_assert_eq!(r.value.as_deref().unwrap_or(&[]), &value[..]);
                prop_assert_eq!(r.timestamp, 1_700_000_000_000 + ts);
                let headers: Vec<(String, Vec<u8>)> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_deref().unwrap_or(&[]).to_vec()))
                    .collect();
                prop_assert_eq!(headers, header.iter().cloned().collect::<Vec<_>>());
            }
            let mut seen = Vec::new();
            let walked = walk(&batch, |v| seen.push(v.to_vec())).unwrap();
            prop_assert_eq!(walked.records, records.len() as u64);
            prop_assert_eq!(walked.next_offset, Some(records.len() as i64));
            let nonempty: Vec<Vec<u8>> = records.iter().map(|r| r.1.clone()).filter(|v| !v.is_empty()).collect();
            prop_assert_eq!(seen, nonempty);
        }

        /// Random bytes never panic the walker.
        #[test]
        fn walking_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = walk(&bytes, |_| {});
        }
    }

    #[test]
    fn a_partial_trailing_batch_is_left_for_the_next_fetch() {
        let mut w = BatchWriter::new();
        w.push(1, None, b"hello", None);
        let one = w.take();
        w.push(
            2,
            None,
            b"world",
            Some(Header {
                key: b"message-id",
                value: b"2",
            }),
        );
        let two = w.take();
        let mut both = one.to_vec();
        both.extend_from_slice(&two[..two.len() - 3]);
        let walked = walk(&both, |_| {}).unwrap();
        assert_eq!(walked.records, 1);
        assert_eq!(walked.value_bytes, 5);
        assert_eq!(walked.next_offset, Some(1));
    }

    #[test]
    fn the_size_bound_holds() {
        let mut w = BatchWriter::new();
        let before = w.bytes_with(10, 1000, 0);
        w.push(i64::MAX / 2, Some(&[1; 10]), &[7; 1000], None);
        assert!(w.bytes() <= before);
        let header = Header {
            key: &[b'h'; 200],
            value: &[b'v'; 300],
        };
        let before = w.bytes_with(10, 1000, header.bytes_max());
        w.push(i64::MAX / 2, Some(&[1; 10]), &[7; 1000], Some(header));
        assert!(w.bytes() <= before);
    }
}
