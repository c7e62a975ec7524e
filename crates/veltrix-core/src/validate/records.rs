//! The record walker: reads every record of a batch from a byte source, checks
//! its framing, and keeps only two timestamps.
//!
//! A record (Kafka's `DefaultRecord`) is a zigzag varint length followed by that
//! many bytes: attributes, a varlong timestamp delta, a varint offset delta, key
//! and value (varint length, -1 for null, then the bytes), a
//! varint header count and each header's key (never null) and value. The walker
//! never holds a key, value or header: it skips them, so that the same code reads
//! a slice of an uncompressed batch at memory speed and a decompressing stream
//! through a fixed window.

use veltrix_log::batch::BatchHeader;

use super::{InvalidBatch, RecordProblem};

/// A sequential source of a batch's record bytes.
pub(super) trait Source {
    /// The next byte, `None` at the end of the data.
    fn next_byte(&mut self) -> Result<Option<u8>, InvalidBatch>;
    /// Skips `n` bytes; `false` if the data ends first.
    fn skip(&mut self, n: u64) -> Result<bool, InvalidBatch>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
    /// Whether every byte has been consumed.
    fn at_end(&mut self) -> Result<bool, InvalidBatch>;
}

/// The records of an uncompressed batch, in place.
pub(super) struct SliceSource<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> SliceSource<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        SliceSource { bytes, at: 0 }
    }
}

impl Source for SliceSource<'_> {
    #[inline]
    fn next_byte(&mut self) -> Result<Option<u8>, InvalidBatch> {
        let byte = self.bytes.get(self.at).copied();
        self.at += usize::from(byte.is_some());
        Ok(byte)
    }

    #[inline]
    fn skip(&mut self, n: u64) -> Result<bool, InvalidBatch> {
        let left = (self.bytes.len() - self.at) as u64;
        if n > left {
            self.at = self.bytes.len();
            return Ok(false);
        }
        self.at += n as usize;
        Ok(true)
    }

    #[inline]
    fn position(&self) -> u64 {
        self.at as u64
    }

    fn at_end(&mut self) -> Result<bool, InvalidBatch> {
        Ok(self.at == self.bytes.len())
    }
}

/// The smallest and largest record timestamps of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamps {
    pub(super) min: i64,
    pub(super) max: i64,
}

/// Kafka's `RecordBatch.NO_TIMESTAMP`.
const NO_TIMESTAMP: i64 = -1;

/// Why a varint could not be read.
enum VarintError {
    /// The data ended inside it (or before it).
    End,
    TooLong {
        max: u8,
    },
    Source(InvalidBatch),
}

/// Reads an unsigned LEB128 value of at most `max` bytes. Like Kafka's
/// `ByteUtils.readVarint`, bits past the value's width in the last byte are
/// dropped rather than refused.
#[inline]
fn read_raw<S: Source>(src: &mut S, max: u8) -> Result<u64, VarintError> {
    let mut value = 0u64;
    for i in 0..max {
        let byte = src.next_byte().map_err(VarintError::Source)?.ok_or(VarintError::End)?;
        value |= u64::from(byte & 0x7f) << (7 * u32::from(i));
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VarintError::TooLong { max })
}

/// A zigzag varint (at most 5 bytes, an i32).
#[inline]
fn varint<S: Source>(src: &mut S) -> Result<i32, VarintError> {
    let raw = read_raw(src, 5)? as u32;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong (at most 10 bytes, an i64).
#[inline]
fn varlong<S: Source>(src: &mut S) -> Result<i64, VarintError> {
    let raw = read_raw(src, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

/// Reads `header.record_count` records and checks that nothing follows them.
pub(super) fn walk<S: Source>(src: &mut S, header: &BatchHeader) -> Result<Stamps, InvalidBatch> {
    let declared = header.record_count;
    let mut stamps = Stamps {
        min: i64::MAX,
        max: NO_TIMESTAMP,
    };
    for index in 0..declared {
        let length = match varint(src) {
            Ok(length) => length,
            Err(VarintError::End) => return Err(InvalidBatch::MissingRecords { declared, found: index }),
            Err(e) => return Err(record_error(index, e)),
        };
        let timestamp = record(src, index, length, header.base_timestamp)?;
        stamps.min = stamps.min.min(timestamp);
        stamps.max = stamps.max.max(timestamp);
    }
    if !src.at_end()? {
        return Err(InvalidBatch::TrailingBytes { declared });
    }
    if declared == 0 {
        stamps.min = NO_TIMESTAMP;
    }
    Ok(stamps)
}

fn record_error(index: i32, e: VarintError) -> InvalidBatch {
    let problem = match e {
        VarintError::End => RecordProblem::Truncated,
        VarintError::TooLong { max } => RecordProblem::VarintTooLong { max },
        VarintError::Source(e) => return e,
    };
    InvalidBatch::Record { index, problem }
}

/// Reads `len` bytes and says whether they are UTF-8 (`None`: the data ended
/// first), through a 64-byte window: header keys are strings, and a consumer
/// whose decoder insists on it (kafka-protocol's) would be stuck on a record
/// whose key is not.
fn utf8<S: Source>(src: &mut S, len: i32) -> Result<Option<bool>, InvalidBatch> {
    let mut window = [0u8; 64];
    // Bytes of a sequence cut by the end of the previous chunk.
    let mut kept = 0;
    let mut left = len.max(0) as usize;
    while left > 0 {
        let n = (window.len() - kept).min(left);
        for slot in &mut window[kept..kept + n] {
            match src.next_byte()? {
                Some(byte) => *slot = byte,
                None => return Ok(None),
            }
        }
        left -= n;
        let chunk = &window[..kept + n];
        kept = match std::str::from_utf8(chunk) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_some() => return Ok(Some(false)),
            Err(e) => {
                let valid = e.valid_up_to();
                window.copy_within(valid..kept + n, 0);
                kept + n - valid
            }
        };
    }
    Ok(Some(kept == 0))
}

/// A field length: -1 (null) or a length; any other negative is refused.
fn null_or_length(field: &'static str, length: i32) -> Result<(), RecordProblem> {
    if length < -1 {
        return Err(RecordProblem::NegativeFieldLength { field, length });
    }
    Ok(())
}

/// Reads the body of record `index`, `length` bytes, and returns its timestamp.
fn record<S: Source>(src: &mut S, index: i32, length: i32, base_timestamp: i64) -> Result<i64, InvalidBatch> {
    let fail = |problem| InvalidBatch::Record { index, problem };
    let var = |e| record_error(index, e);
    if length < 0 {
        return Err(fail(RecordProblem::NegativeLength { length }));
    }
    let start = src.position();
    let end = start + length as u64;
    // Every field is checked against the record's end before the next is read,
    // so a length inside the record can never make the walk run past it.
    let within = |src: &S| {
        if src.position() > end {
            Err(fail(RecordProblem::LengthMismatch {
                declared: length,
                read: src.position() - start,
            }))
        } else {
            Ok(())
        }
    };
    let skip = |src: &mut S, n: i32| -> Result<(), InvalidBatch> {
        let n = n as u64;
        if src.position() + n > end {
            return Err(fail(RecordProblem::LengthMismatch {
                declared: length,
                read: src.position() + n - start,
            }));
        }
        if src.skip(n)? {
            Ok(())
        } else {
            Err(fail(RecordProblem::Truncated))
        }
    };
    // Attributes: unused by record format v2.
    src.next_byte()?.ok_or(fail(RecordProblem::Truncated))?;
    let delta = varlong(src).map_err(var)?;
    let timestamp = base_timestamp
        .checked_add(delta)
        .ok_or(fail(RecordProblem::TimestampOverflow { delta }))?;
    let offset_delta = varint(src).map_err(var)?;
    if offset_delta != index {
        return Err(fail(RecordProblem::OffsetDelta {
            expected: index,
            found: offset_delta,
        }));
    }
    within(src)?;
    for field in ["key", "value"] {
        let len = varint(src).map_err(var)?;
        null_or_length(field, len).map_err(fail)?;
        within(src)?;
        if len > 0 {
            skip(src, len)?;
        }
    }
    let count = varint(src).map_err(var)?;
    if count < 0 {
        return Err(fail(RecordProblem::NegativeHeaderCount { count }));
    }
    within(src)?;
    // Each header takes at least two bytes, so the loop ends at the record's end
    // whatever the count says.
    for header in 0..count {
        let key = varint(src).map_err(var)?;
        if key < 0 {
            return Err(fail(RecordProblem::NegativeHeaderKey { header, length: key }));
        }
        within(src)?;
        if src.position() + key as u64 > end {
            // As `skip` would say: the key runs past the record.
            skip(src, key)?;
        }
        match utf8(src, key)? {
            Some(true) => {}
            Some(false) => return Err(fail(RecordProblem::HeaderKeyNotUtf8 { header })),
            None => return Err(fail(RecordProblem::Truncated)),
        }
        let value = varint(src).map_err(var)?;
        null_or_length("header value", value).map_err(fail)?;
        within(src)?;
        if value > 0 {
            skip(src, value)?;
        }
    }
    let read = src.position() - start;
    if read != length as u64 {
        return Err(fail(RecordProblem::LengthMismatch { declared: length, read }));
    }
    Ok(timestamp)
}
