//! Validation of a producer's record batches before they are stored.
//!
//! The log keeps a producer's bytes and reads only batch headers, so a batch
//! whose records contradict its header (an unknown codec, garbage compressed
//! bytes, a record count that moves the end offset by two billion) would be
//! acknowledged and then stop every consumer that reaches it. Here every record
//! of a batch is read once, in a streaming pass: compressed records are read
//! through the codec's decoder and a fixed window, skipping keys, values and
//! headers without holding them, so a batch costs a bounded amount of memory
//! whatever it decompresses to, and a decompression bomb is refused after at
//! most [`DECOMPRESSED_BATCH_BYTES_MAX`] bytes of work.
//!
//! The rules are Kafka's (`LogValidator` and `DefaultRecord`), with one
//! difference: where Kafka rewrites a compressed batch whose offset deltas are
//! not 0, 1, 2..., Veltrix stores producers' bytes and refuses it instead. Like
//! Kafka with `CreateTime`, a header whose `max_timestamp` is not the largest
//! record timestamp is corrected ([`Validated::needs_correction`],
//! [`corrected`]): the only change the broker makes to bytes the CRC covers.
//!
//! No wire types: the input is a batch's bytes, the output a [`Validated`] or an
//! [`InvalidBatch`]; the Kafka adapter chooses the error codes.

mod codec;
mod records;

use std::borrow::Cow;

use veltrix_log::batch::{self, BatchError, BatchHeader, HEADER_BYTES, Verified};

pub(crate) use records::{Deltas, Field, FieldValue, Reading, Seen, Stamps};

pub use codec::Codec;
pub(crate) use codec::Compressor;

/// Most bytes a compressed batch's records may decompress to. Memory does not
/// grow with it (records are streamed through a fixed window), so it bounds the
/// time one batch can cost: 64 MiB is about 50 ms of zstd or lz4 and 250 ms of
/// gzip on one core. Producers close batches at about a megabyte (`batch.size`,
/// `message.max.bytes`), so 64 times that leaves room for any real
/// compression ratio; only a batch of near-constant bytes (a bomb) reaches it.
pub const DECOMPRESSED_BATCH_BYTES_MAX: u64 = 64 << 20;

/// The smallest encoding of a record: length, attributes, timestamp delta,
/// offset delta, key length, value length and header count, one byte each. A
/// header claiming more records than its bytes can hold is refused before any
/// is read.
pub const RECORD_BYTES_MIN: u64 = 7;

/// A batch every record of which was read and found well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validated<'a> {
    /// The batch with its checked header and CRC, ready for
    /// [`veltrix_log::Log::append_verified`] unless it needs correction.
    pub verified: Verified<'a>,
    pub header: BatchHeader,
    pub codec: Codec,
    /// The smallest record timestamp, -1 (none) if no record has one.
    pub min_timestamp: i64,
    /// The largest record timestamp, as Kafka computes it: -1 (none) unless a
    /// record's timestamp is larger.
    pub max_timestamp: i64,
    /// The header's `max_timestamp` is not `max_timestamp`, or its attributes
    /// say `LogAppendTime`: the stored batch must say `CreateTime` and the real
    /// maximum, as Kafka writes it ([`corrected`]).
    pub needs_correction: bool,
}

/// Why a producer's batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBatch {
    /// The produce request carried no batch for the partition.
    #[error("no record batch")]
    NoBatches,
    /// The fixed header: size, magic, CRC, count against last offset delta.
    #[error(transparent)]
    Header(#[from] BatchError),
    #[error("unknown compression codec {codec} in the batch attributes (0 to 4 are defined)")]
    UnknownCompression { codec: u8 },
    #[error("control batches (transaction markers) are written by the broker, not by producers")]
    ControlBatch,
    #[error("the {codec} records cannot be decompressed: {reason}")]
    Decompression { codec: Codec, reason: String },
    #[error("the {codec} records decompress to more than {bytes_max} bytes")]
    DecompressedTooLarge { codec: Codec, bytes_max: u64 },
    #[error("record_count {record_count} is impossible: {bytes} bytes of records hold at most {fit}")]
    CountImpossible { record_count: i32, bytes: u64, fit: u64 },
    #[error("record_count is {declared} but the records end after {found}")]
    MissingRecords { declared: i32, found: i32 },
    #[error("record_count is {declared} but bytes remain after record {declared}")]
    TrailingBytes { declared: i32 },
    #[error("record {index}: {problem}")]
    Record { index: i32, problem: RecordProblem },
}

impl InvalidBatch {
    /// The position in its batch of the record at fault, if one is.
    pub fn record_index(&self) -> Option<i32> {
        match self {
            InvalidBatch::Record { index, .. } => Some(*index),
            _ => None,
        }
    }
}

/// What is wrong with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordProblem {
    #[error("the data ends inside the record")]
    Truncated,
    #[error("a varint runs past {max} bytes")]
    VarintTooLong { max: u8 },
    #[error("the record length {length} is negative")]
    NegativeLength { length: i32 },
    #[error("the record length says {declared} bytes but its fields take {read}")]
    LengthMismatch { declared: i32, read: u64 },
    #[error("offset delta {found} where {expected} was expected (deltas count up from 0)")]
    OffsetDelta { expected: i32, found: i32 },
    /// In a stored batch some of whose records were dropped (compaction, the
    /// duplicate filter), deltas rise with gaps.
    #[error("offset delta {found} after {previous} (deltas rise, up to the last offset delta {last})")]
    OffsetDeltaOutOfOrder { previous: i32, found: i32, last: i32 },
    #[error("negative header count {count}")]
    NegativeHeaderCount { count: i32 },
    #[error("header {header} has a null or negative key length {length}")]
    NegativeHeaderKey { header: i32, length: i32 },
    /// -1 means null; Java's broker reads any negative as null, but other
    /// clients' decoders (kafka-protocol's, for one) refuse the record, and a
    /// consumer that cannot decode a record is stuck on it.
    #[error("header {header}'s key is not UTF-8")]
    HeaderKeyNotUtf8 { header: i32 },
    #[error("the {field} length {length} is negative but not -1 (null)")]
    NegativeFieldLength { field: &'static str, length: i32 },
    #[error("timestamp delta {delta} overflows the base timestamp")]
    TimestampOverflow { delta: i64 },
    /// On a compacted topic (`cleanup.policy` with `compact`): a null key.
    #[error(
        "a compacted topic cannot accept a record without a key (cleanup.policy=compact keeps the latest record per key)"
    )]
    KeyMissing,
    /// On a topic with a duplicate window: an id it cannot hold.
    #[error("{0}")]
    MessageId(crate::dedup::filter::BadId),
}

/// Validates one batch as a producer sent it: the header (see
/// [`batch::verify_producer_batch`]), the codec, and every record.
pub fn validate(bytes: &[u8], batch_bytes_max: usize) -> Result<Validated<'_>, InvalidBatch> {
    let verified = Verified::new(bytes, batch_bytes_max)?;
    let header = *verified.header();
    if header.is_control() {
        return Err(InvalidBatch::ControlBatch);
    }
    let (codec, stamps) = read_records(bytes, &header, &Reading::CHECK, &mut |_| Ok(()))?;
    // Kafka's `setMaxTimestamp(CREATE_TIME, max)`: the attributes' timestamp
    // type is part of what it rewrites.
    let needs_correction = header.max_timestamp != stamps.max || header.attributes & batch::LOG_APPEND_TIME_BIT != 0;
    Ok(Validated {
        verified,
        header,
        codec,
        min_timestamp: stamps.min,
        max_timestamp: stamps.max,
        needs_correction,
    })
}

/// Reads every record of the batch `bytes` whose header is `header`, checked
/// as [`validate`] checks them (the deltas as `reading` says), and hands each
/// to `visit`: what [`validate`] and the duplicate filter share. Returns the
/// batch's codec and its records' timestamps.
pub(crate) fn read_records(
    bytes: &[u8],
    header: &BatchHeader,
    reading: &Reading<'_>,
    visit: &mut impl FnMut(Seen<'_>) -> Result<(), InvalidBatch>,
) -> Result<(Codec, Stamps), InvalidBatch> {
    let codec = Codec::of(header)?;
    let payload = &bytes[HEADER_BYTES..];
    let bytes_max = match codec {
        Codec::None => payload.len() as u64,
        _ => DECOMPRESSED_BATCH_BYTES_MAX,
    };
    // Refused before decompressing anything: 2^31-1 records claimed by a
    // batch of a few bytes.
    let fit = bytes_max / RECORD_BYTES_MIN;
    if header.record_count as u64 > fit {
        return Err(InvalidBatch::CountImpossible {
            record_count: header.record_count,
            bytes: bytes_max,
            fit,
        });
    }
    Ok((codec, codec::walk(codec, payload, header, reading, visit)?))
}

/// Refuses a batch with a record without a key: what a compacted topic
/// takes (Kafka answers INVALID_RECORD). Reads the records once more.
pub fn require_keys(bytes: &[u8], header: &BatchHeader) -> Result<(), InvalidBatch> {
    let reading = Reading {
        deltas: Deltas::Dense,
        field: Field::Key,
        field_bytes_max: 0,
        body: false,
    };
    let mut index = 0;
    read_records(bytes, header, &reading, &mut |seen| {
        if seen.field == FieldValue::Absent {
            return Err(InvalidBatch::Record {
                index,
                problem: RecordProblem::KeyMissing,
            });
        }
        index += 1;
        Ok(())
    })?;
    Ok(())
}

/// The batch to store: `bytes` unchanged in the common case, or a copy with the
/// corrected `max_timestamp`, `CreateTime` and a new CRC.
pub fn corrected<'a>(bytes: &'a [u8], validated: &Validated<'_>) -> Cow<'a, [u8]> {
    if !validated.needs_correction {
        return Cow::Borrowed(bytes);
    }
    let mut copy = bytes.to_vec();
    batch::set_create_time_max_timestamp(&mut copy, validated.max_timestamp);
    Cow::Owned(copy)
}

/// Splits a partition's records (batches back to back) into batches, by their
/// length fields, without checking them.
pub fn split(records: &[u8]) -> impl Iterator<Item = Result<&[u8], InvalidBatch>> {
    let mut rest = records;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        match batch::peek_size(rest).filter(|size| *size <= rest.len()) {
            Some(size) => {
                let (one, after) = rest.split_at(size);
                rest = after;
                Some(Ok(one))
            }
            None => {
                failed = true;
                let declared = rest
                    .get(8..12)
                    .map_or(-1, |l| i64::from(i32::from_be_bytes(l.try_into().expect("4 bytes"))));
                Some(Err(InvalidBatch::Header(BatchError::LengthMismatch {
                    declared,
                    available: rest.len().saturating_sub(batch::LOG_OVERHEAD),
                })))
            }
        }
    })
}

#[cfg(test)]
pub(crate) mod tests;
