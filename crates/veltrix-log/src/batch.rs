//! Kafka RecordBatch v2 headers: the unit the log stores, indexes and verifies.
//!
//! The log keeps batches exactly as a producer sent them. It reads only the fixed
//! 61-byte header and checks the CRC32C, which covers everything from `attributes`
//! to the end of the batch. The two fields the CRC does not cover, `base_offset`
//! and `partition_leader_epoch`, are the only ones the broker writes, so a batch
//! can later be served to a consumer straight from disk without re-encoding.
//!
//! Layout (big-endian), offsets in bytes:
//!
//! ```text
//!  0 base_offset i64        27 base_timestamp i64
//!  8 batch_length i32       35 max_timestamp i64
//! 12 leader_epoch i32       43 producer_id i64
//! 16 magic i8 (= 2)         51 producer_epoch i16
//! 17 crc u32 (CRC32C)       53 base_sequence i32
//! 21 attributes i16         57 record_count i32
//! 23 last_offset_delta i32  61 records ...
//! ```

/// Size of the fixed RecordBatch v2 header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before `batch_length` counts: `base_offset` and `batch_length` themselves.
pub const LOG_OVERHEAD: usize = 12;
/// The only magic value the log accepts.
pub const MAGIC_V2: i8 = 2;
/// Largest base offset a stored batch may carry. Leaves room for a full batch
/// (`last_offset_delta` is below 2^31) so offset arithmetic can never overflow,
/// whatever a damaged or crafted file says.
pub const BASE_OFFSET_MAX: i64 = i64::MAX - (1 << 32);
/// The attributes bit that says the batch's timestamps are the broker's
/// (`LogAppendTime`) rather than the producer's (`CreateTime`).
pub const LOG_APPEND_TIME_BIT: i16 = 0x8;
/// First byte covered by the CRC (`attributes`).
const CRC_START: usize = 21;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

/// Why a byte range is not a valid batch. Kept small and `Copy` so the recovery
/// scanner can use it without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch is {len} bytes, shorter than the {HEADER_BYTES}-byte RecordBatch v2 header")]
    TooShort { len: usize },
    #[error("batch_length field says {declared} bytes but {available} bytes follow it")]
    LengthMismatch { declared: i64, available: usize },
    #[error("batch is {len} bytes, over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("magic byte is {magic}; only RecordBatch v2 (magic 2) is accepted")]
    BadMagic { magic: i8 },
    #[error("CRC32C mismatch: header says {stored:#010x}, content hashes to {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("base offset {base_offset} is outside 0..={BASE_OFFSET_MAX}")]
    BadOffset { base_offset: i64 },
    #[error("record_count {record_count} and last_offset_delta {last_offset_delta} disagree")]
    BadCount { record_count: i32, last_offset_delta: i32 },
}

/// The decoded fixed header of one batch. Plain data; borrowing nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Total size of the batch in bytes, header included.
    pub size: usize,
    pub leader_epoch: i32,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset following the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id from the attributes (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x7) as u8
    }

    /// Whether the batch is part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// Whether the batch is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }
}

fn i16_at(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([buf[at], buf[at + 1]])
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

/// Reads the size of the batch that starts at `buf[0]` from its first 12 bytes.
/// Returns `None` when fewer than 12 bytes are available or the length field is
/// negative or too small to hold a header.
pub fn peek_size(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let declared = i32_at(buf, OFF_LENGTH);
    let size = usize::try_from(declared).ok()?.checked_add(LOG_OVERHEAD)?;
    (size >= HEADER_BYTES).then_some(size)
}

/// Decodes the fixed fields from the first [`HEADER_BYTES`] of `head`, taking the
/// batch size from its length field, without checking the CRC or that the rest of
/// the batch is there. Used to walk a segment by headers alone.
pub fn parse_fixed(head: &[u8]) -> Result<BatchHeader, BatchError> {
    if head.len() < HEADER_BYTES {
        return Err(BatchError::TooShort { len: head.len() });
    }
    let size = peek_size(head).ok_or(BatchError::LengthMismatch {
        declared: i64::from(i32_at(head, OFF_LENGTH)),
        available: head.len() - LOG_OVERHEAD,
    })?;
    let magic = head[OFF_MAGIC] as i8;
    if magic != MAGIC_V2 {
        return Err(BatchError::BadMagic { magic });
    }
    let header = BatchHeader {
        base_offset: i64_at(head, OFF_BASE_OFFSET),
        size,
        leader_epoch: i32_at(head, OFF_LEADER_EPOCH),
        crc: u32_at(head, OFF_CRC),
        attributes: i16_at(head, OFF_ATTRIBUTES),
        last_offset_delta: i32_at(head, OFF_LAST_OFFSET_DELTA),
        base_timestamp: i64_at(head, OFF_BASE_TIMESTAMP),
        max_timestamp: i64_at(head, OFF_MAX_TIMESTAMP),
        producer_id: i64_at(head, OFF_PRODUCER_ID),
        producer_epoch: i16_at(head, OFF_PRODUCER_EPOCH),
        base_sequence: i32_at(head, OFF_BASE_SEQUENCE),
        record_count: i32_at(head, OFF_RECORD_COUNT),
    };
    if header.last_offset_delta < 0 || header.record_count < 0 {
        return Err(BatchError::BadCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if !(0..=BASE_OFFSET_MAX).contains(&header.base_offset) {
        return Err(BatchError::BadOffset {
            base_offset: header.base_offset,
        });
    }
    Ok(header)
}

/// Decodes the header of a batch that occupies exactly `buf`, without checking the
/// CRC.
pub fn parse_header(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < HEADER_BYTES {
        return Err(BatchError::TooShort { len: buf.len() });
    }
    let declared = i64::from(i32_at(buf, OFF_LENGTH));
    if declared + LOG_OVERHEAD as i64 != buf.len() as i64 {
        return Err(BatchError::LengthMismatch {
            declared,
            available: buf.len() - LOG_OVERHEAD,
        });
    }
    parse_fixed(buf)
}

/// CRC32C of the part of a batch the checksum covers.
pub fn compute_crc(buf: &[u8]) -> u32 {
    crc32c::crc32c(&buf[CRC_START..])
}

/// Decodes the header and verifies the CRC of a batch that occupies exactly `buf`.
pub fn verify(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = parse_header(buf)?;
    let computed = compute_crc(buf);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    Ok(header)
}

/// Verifies a batch as a producer sent it: a valid v2 batch whose offsets are dense
/// (`record_count == last_offset_delta + 1`, at least one record) and whose size is
/// within `batch_bytes_max`.
pub fn verify_producer_batch(buf: &[u8], batch_bytes_max: usize) -> Result<BatchHeader, BatchError> {
    if buf.len() > batch_bytes_max {
        return Err(BatchError::TooLarge {
            len: buf.len(),
            max: batch_bytes_max,
        });
    }
    let header = verify(buf)?;
    if header.record_count < 1 || i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::BadCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Verifies a batch the broker re-encoded with fewer records than offsets: a
/// producer's batch, dense when [`verify_producer_batch`] accepted it, from
/// which the duplicate filter dropped some records (or all), keeping
/// `last_offset_delta` and the base sequence so that the batch still covers
/// the producer's sequence numbers, as a compacted batch does. The record
/// count is at most `last_offset_delta + 1` and may be 0.
pub fn verify_filtered_batch(buf: &[u8], batch_bytes_max: usize) -> Result<BatchHeader, BatchError> {
    if buf.len() > batch_bytes_max {
        return Err(BatchError::TooLarge {
            len: buf.len(),
            max: batch_bytes_max,
        });
    }
    let header = verify(buf)?;
    if i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1 {
        return Err(BatchError::BadCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// A producer's batch that [`verify_producer_batch`] accepted, or a filtered
/// one [`verify_filtered_batch`] accepted, with its header: only this module
/// makes one, so holding it proves the CRC was checked, and
/// [`crate::Log::append_verified`] need not hash the batch a second time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> Verified<'a> {
    /// Verifies `bytes` as [`verify_producer_batch`] does.
    pub fn new(bytes: &'a [u8], batch_bytes_max: usize) -> Result<Verified<'a>, BatchError> {
        let header = verify_producer_batch(bytes, batch_bytes_max)?;
        Ok(Verified { bytes, header })
    }

    /// Verifies `bytes` as [`verify_filtered_batch`] does: a producer's batch
    /// the broker re-encoded without some of its records.
    pub fn filtered(bytes: &'a [u8], batch_bytes_max: usize) -> Result<Verified<'a>, BatchError> {
        let header = verify_filtered_batch(bytes, batch_bytes_max)?;
        Ok(Verified { bytes, header })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}

/// Rewrites a batch's `max_timestamp`, marks its timestamps `CreateTime` and
/// recomputes its CRC: what Kafka does to a producer's batch whose header
/// disagrees with its records. The one change to bytes the CRC covers that the
/// broker makes; the caller has read the records to know the value.
pub fn set_create_time_max_timestamp(buf: &mut [u8], max_timestamp: i64) {
    let attributes = i16_at(buf, OFF_ATTRIBUTES) & !LOG_APPEND_TIME_BIT;
    buf[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    buf[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(buf);
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites what changes when some records of a batch are dropped and the
/// rest re-encoded into `buf[HEADER_BYTES..]`: the length, the record count,
/// the first and max timestamps, and the CRC. The rest of the header (base
/// offset, `last_offset_delta`, producer id and epoch, base sequence,
/// attributes) is left as it is: the producer's sequence numbers and the
/// batch's offsets do not change with the records it still holds.
pub fn set_record_fields(buf: &mut [u8], record_count: i32, base_timestamp: i64, max_timestamp: i64) {
    let len = i32::try_from(buf.len() - LOG_OVERHEAD).expect("a batch's length fits an i32");
    buf[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    buf[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&record_count.to_be_bytes());
    buf[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&base_timestamp.to_be_bytes());
    buf[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = compute_crc(buf);
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// The compression codec's bits of a batch's attributes.
const CODEC_BITS: i16 = 0x7;

/// A batch of no records covering the same offsets and producer sequences as
/// the batch in `buf` (its first [`HEADER_BYTES`] are read): what is left of
/// a batch whose records were all dropped. Uncompressed, as Kafka's log
/// cleaner writes an empty batch: a consumer that decompresses a stream
/// holding nothing can fail (librdkafka aborts). Timestamps and the rest of
/// the header stay; the length, count and CRC are the new batch's.
pub fn empty_of(buf: &[u8]) -> Vec<u8> {
    let mut out = buf[..HEADER_BYTES].to_vec();
    let attributes = i16_at(&out, OFF_ATTRIBUTES) & !CODEC_BITS;
    out[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let (base_timestamp, max_timestamp) = (i64_at(&out, OFF_BASE_TIMESTAMP), i64_at(&out, OFF_MAX_TIMESTAMP));
    set_record_fields(&mut out, 0, base_timestamp, max_timestamp);
    out
}

/// Writes the two broker-owned fields. Neither is covered by the CRC.
/// Bytes at the start of a batch that [`assign`] rewrites (base offset, length,
/// leader epoch); the CRC covers none of them.
pub const ASSIGNED_BYTES: usize = OFF_LEADER_EPOCH + 4;

pub fn assign(buf: &mut [u8], base_offset: i64, leader_epoch: i32) {
    buf[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
    buf[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Test and tooling support: builds a valid batch whose records are opaque filler.
///
/// The bytes after the header are not valid Kafka records; the log never decodes
/// records, so this is enough to exercise it. Kafka-level tests use a real codec.
pub mod build {
    use super::*;

    /// Fields of a synthetic batch.
    #[derive(Debug, Clone, Copy)]
    pub struct Spec {
        pub record_count: i32,
        pub base_timestamp: i64,
        pub max_timestamp: i64,
        pub producer_id: i64,
        pub producer_epoch: i16,
        pub base_sequence: i32,
        pub attributes: i16,
    }

    impl Default for Spec {
        fn default() -> Self {
            Spec {
                record_count: 1,
                base_timestamp: 0,
                max_timestamp: 0,
                producer_id: -1,
                producer_epoch: -1,
                base_sequence: -1,
                attributes: 0,
            }
        }
    }

    /// Builds a batch of `total_bytes` bytes (at least [`HEADER_BYTES`]) whose
    /// payload is `fill` repeated, with a correct CRC and `base_offset` 0.
    pub fn batch(spec: Spec, total_bytes: usize, fill: u8) -> Vec<u8> {
        let mut buf = vec![fill; total_bytes.max(HEADER_BYTES)];
        write_into(&mut buf, spec);
        buf
    }

    /// Writes a header for `spec` into `buf` (whose length is the batch size) and
    /// computes the CRC over whatever payload `buf` holds after the header.
    pub fn write_into(buf: &mut [u8], spec: Spec) {
        let len = i32::try_from(buf.len() - LOG_OVERHEAD).expect("batch fits i32");
        buf[0..8].copy_from_slice(&0i64.to_be_bytes());
        buf[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&len.to_be_bytes());
        buf[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&(-1i32).to_be_bytes());
        buf[OFF_MAGIC] = MAGIC_V2 as u8;
        buf[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&spec.attributes.to_be_bytes());
        let delta = spec.record_count - 1;
        buf[OFF_LAST_OFFSET_DELTA..OFF_LAST_OFFSET_DELTA + 4].copy_from_slice(&delta.to_be_bytes());
        buf[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&spec.base_timestamp.to_be_bytes());
        buf[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&spec.max_timestamp.to_be_bytes());
        buf[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&spec.producer_id.to_be_bytes());
        buf[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&spec.producer_epoch.to_be_bytes());
        buf[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&spec.base_sequence.to_be_bytes());
        buf[OFF_RECORD_COUNT..OFF_RECORD_COUNT + 4].copy_from_slice(&spec.record_count.to_be_bytes());
        let crc = compute_crc(buf);
        buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Spec, batch};
    use super::*;

    #[test]
    fn built_batch_verifies_and_reports_its_fields() {
        let spec = Spec {
            record_count: 3,
            base_timestamp: 10,
            max_timestamp: 12,
            ..Spec::default()
        };
        let buf = batch(spec, 200, 7);
        let h = verify_producer_batch(&buf, 1 << 20).unwrap();
        assert_eq!(h.size, 200);
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 12);
        assert_eq!(peek_size(&buf), Some(200));
    }

    #[test]
    fn assigning_offset_and_epoch_keeps_the_crc_valid() {
        let mut buf = batch(Spec::default(), 100, 1);
        assign(&mut buf, 12345, 7);
        let h = verify(&buf).unwrap();
        assert_eq!(h.base_offset, 12345);
        assert_eq!(h.leader_epoch, 7);
    }

    #[test]
    fn every_flipped_covered_byte_is_caught() {
        let good = batch(Spec::default(), 90, 3);
        for i in CRC_START..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(verify(&bad).is_err(), "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn malformed_headers_are_rejected_with_a_reason() {
        let good = batch(Spec::default(), 100, 0);
        assert_eq!(verify(&good[..50]), Err(BatchError::TooShort { len: 50 }));
        assert!(matches!(verify(&good[..99]), Err(BatchError::LengthMismatch { .. })));
        let mut magic = good.clone();
        magic[OFF_MAGIC] = 1;
        assert_eq!(verify(&magic), Err(BatchError::BadMagic { magic: 1 }));
        assert!(matches!(
            verify_producer_batch(&good, 99),
            Err(BatchError::TooLarge { len: 100, max: 99 })
        ));
        let sparse = batch(
            Spec {
                record_count: 0,
                ..Spec::default()
            },
            100,
            0,
        );
        assert!(matches!(
            verify_producer_batch(&sparse, 1000),
            Err(BatchError::BadCount { .. })
        ));
    }

    #[test]
    fn a_corrected_max_timestamp_says_create_time_and_keeps_the_crc_valid() {
        let spec = Spec {
            max_timestamp: 0,
            attributes: LOG_APPEND_TIME_BIT | 3,
            ..Spec::default()
        };
        let mut buf = batch(spec, 100, 5);
        set_create_time_max_timestamp(&mut buf, 1_700_000_000_123);
        let h = verify(&buf).unwrap();
        assert_eq!(h.max_timestamp, 1_700_000_000_123);
        assert_eq!(h.attributes, 3, "the codec is kept, the timestamp type cleared");
        assert_eq!(&buf[HEADER_BYTES..], &[5; 100 - HEADER_BYTES][..]);
    }

    #[test]
    fn peek_size_refuses_impossible_lengths() {
        let mut buf = batch(Spec::default(), 100, 0);
        assert_eq!(peek_size(&buf[..11]), None);
        buf[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(peek_size(&buf), None);
        buf[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
        assert_eq!(peek_size(&buf), None);
    }
}
