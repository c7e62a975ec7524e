//! The record walker: reads every record of a batch from a byte source, checks
//! its framing, and keeps only two timestamps, unless its caller asks for more
//! ([`Reading`]): one field of each record (the duplicate filter's message id)
//! or each record's bytes (to re-encode a batch without some of its records).
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
    /// Appends the next `n` bytes to `out`; `false` if the data ends first.
    /// `out` grows only by bytes that are there, whatever `n` says.
    fn copy_into(&mut self, n: u64, out: &mut Vec<u8>) -> Result<bool, InvalidBatch>;
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

    fn copy_into(&mut self, n: u64, out: &mut Vec<u8>) -> Result<bool, InvalidBatch> {
        let from = self.at;
        let whole = self.skip(n)?;
        out.extend_from_slice(&self.bytes[from..self.at]);
        Ok(whole)
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
pub(crate) struct Stamps {
    pub(crate) min: i64,
    pub(crate) max: i64,
}

/// How a batch's offset deltas must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deltas {
    /// 0, 1, 2...: a batch as a producer writes it.
    Dense,
    /// Rising, none past `last_offset_delta`: also a batch some of whose
    /// records were dropped, as Kafka's compaction and the duplicate filter
    /// leave it (the kept records keep their offsets).
    Rising,
}

/// The one field of each record the walker hands to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    Nothing,
    Key,
    /// The value of the first header with this key.
    Header(&'a [u8]),
}

/// What the walker does beyond its checks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading<'a> {
    pub(crate) deltas: Deltas,
    pub(crate) field: Field<'a>,
    /// A field value longer than this is reported by its length, unread.
    pub(crate) field_bytes_max: usize,
    /// Whether each record's bytes (after its length) are handed out.
    pub(crate) body: bool,
}

impl Reading<'_> {
    /// A producer's batch, checked and nothing kept: [`super::validate`].
    pub(crate) const CHECK: Reading<'static> = Reading {
        deltas: Deltas::Dense,
        field: Field::Nothing,
        field_bytes_max: 0,
        body: false,
    };
}

/// The wanted field of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValue<'a> {
    /// No such header, a null key or a null header value.
    Absent,
    Bytes(&'a [u8]),
    /// Longer than [`Reading::field_bytes_max`].
    TooLong {
        bytes: usize,
    },
}

/// One record as the walker read it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen<'a> {
    pub(crate) offset_delta: i32,
    pub(crate) timestamp: i64,
    pub(crate) field: FieldValue<'a>,
    /// The record after its length: attributes, timestamp delta, offset
    /// delta and the rest. Empty unless [`Reading::body`].
    pub(crate) body: &'a [u8],
}

/// Where the wanted field of the record being read is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Absent,
    /// In the walker's field buffer.
    Read,
    TooLong {
        bytes: usize,
    },
}

/// What [`record`] learnt of one record.
struct RecordRead {
    offset_delta: i32,
    timestamp: i64,
    found: Found,
}

/// The walker's state across records.
struct Walk<'r> {
    reading: &'r Reading<'r>,
    last_offset_delta: i32,
    base_timestamp: i64,
    /// The previous record's offset delta, -1 before the first.
    previous: i32,
    /// The current record's wanted field, if [`Found::Read`].
    field: Vec<u8>,
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

/// Reads `header.record_count` records, hands each to `visit` as
/// `reading` asks, and checks that nothing follows them.
pub(super) fn walk<S: Source>(
    src: &mut S,
    header: &BatchHeader,
    reading: &Reading<'_>,
    visit: &mut impl FnMut(Seen<'_>) -> Result<(), InvalidBatch>,
) -> Result<Stamps, InvalidBatch> {
    let declared = header.record_count;
    let mut stamps = Stamps {
        min: i64::MAX,
        max: NO_TIMESTAMP,
    };
    let mut walk = Walk {
        reading,
        last_offset_delta: header.last_offset_delta,
        base_timestamp: header.base_timestamp,
        previous: -1,
        field: Vec::new(),
    };
    let mut body = Vec::new();
    for index in 0..declared {
        let length = match varint(src) {
            Ok(length) => length,
            Err(VarintError::End) => return Err(InvalidBatch::MissingRecords { declared, found: index }),
            Err(e) => return Err(record_error(index, e)),
        };
        let read = if reading.body {
            // Copied whole (it is handed out whole), then read in place.
            if length < 0 {
                return Err(InvalidBatch::Record {
                    index,
                    problem: RecordProblem::NegativeLength { length },
                });
            }
            body.clear();
            if !src.copy_into(length as u64, &mut body)? {
                return Err(record_error(index, VarintError::End));
            }
            record(&mut SliceSource::new(&body), index, length, &mut walk)?
        } else {
            record(src, index, length, &mut walk)?
        };
        walk.previous = read.offset_delta;
        stamps.min = stamps.min.min(read.timestamp);
        stamps.max = stamps.max.max(read.timestamp);
        visit(Seen {
            offset_delta: read.offset_delta,
            timestamp: read.timestamp,
            field: match read.found {
                Found::Absent => FieldValue::Absent,
                Found::Read => FieldValue::Bytes(&walk.field),
                Found::TooLong { bytes } => FieldValue::TooLong { bytes },
            },
            body: &body,
        })?;
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

/// A header key as [`utf8`] read it.
struct KeyRead {
    utf8: bool,
    /// The key is the one the caller looks for.
    wanted: bool,
}

/// Reads `len` bytes and says whether they are UTF-8 and equal to `wanted`
/// (`None`: the data ended first), through a 64-byte window: header keys are
/// strings, and a consumer whose decoder insists on it (kafka-protocol's)
/// would be stuck on a record whose key is not.
fn utf8<S: Source>(src: &mut S, len: i32, wanted: Option<&[u8]>) -> Result<Option<KeyRead>, InvalidBatch> {
    let mut window = [0u8; 64];
    // Bytes of a sequence cut by the end of the previous chunk.
    let mut kept = 0;
    let mut left = len.max(0) as usize;
    let mut equal = wanted.filter(|w| w.len() == left);
    while left > 0 {
        let n = (window.len() - kept).min(left);
        for slot in &mut window[kept..kept + n] {
            match src.next_byte()? {
                Some(byte) => *slot = byte,
                None => return Ok(None),
            }
        }
        if let Some(rest) = equal {
            let (head, tail) = rest.split_at(n);
            equal = (head == &window[kept..kept + n]).then_some(tail);
        }
        left -= n;
        let chunk = &window[..kept + n];
        kept = match std::str::from_utf8(chunk) {
            Ok(_) => 0,
            Err(e) if e.error_len().is_some() => {
                return Ok(Some(KeyRead {
                    utf8: false,
                    wanted: false,
                }));
            }
            Err(e) => {
                let valid = e.valid_up_to();
                window.copy_within(valid..kept + n, 0);
                kept + n - valid
            }
        };
    }
    Ok(Some(KeyRead {
        utf8: kept == 0,
        wanted: equal.is_some(),
    }))
}

/// A field length: -1 (null) or a length; any other negative is refused.
fn null_or_length(field: &'static str, length: i32) -> Result<(), RecordProblem> {
    if length < -1 {
        return Err(RecordProblem::NegativeFieldLength { field, length });
    }
    Ok(())
}

/// Checks a record's offset delta against the previous record's.
fn check_delta(walk: &Walk<'_>, index: i32, found: i32) -> Result<(), RecordProblem> {
    match walk.reading.deltas {
        Deltas::Dense if found != index => Err(RecordProblem::OffsetDelta { expected: index, found }),
        Deltas::Rising if found <= walk.previous || found > walk.last_offset_delta => {
            Err(RecordProblem::OffsetDeltaOutOfOrder {
                previous: walk.previous,
                found,
                last: walk.last_offset_delta,
            })
        }
        _ => Ok(()),
    }
}

/// Reads the body of record `index`, `length` bytes: its timestamp, offset
/// delta and, into `walk.field`, the field the walk wants.
///
/// Long: one check per field, in the order of the record's encoding; the
/// closures share the record's bounds.
fn record<S: Source>(src: &mut S, index: i32, length: i32, walk: &mut Walk<'_>) -> Result<RecordRead, InvalidBatch> {
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
    let room = |src: &S, n: u64| {
        if src.position() + n > end {
            return Err(fail(RecordProblem::LengthMismatch {
                declared: length,
                read: src.position() + n - start,
            }));
        }
        Ok(())
    };
    let whole = |there: bool| {
        if there {
            Ok(())
        } else {
            Err(fail(RecordProblem::Truncated))
        }
    };
    let skip = |src: &mut S, n: i32| -> Result<(), InvalidBatch> {
        room(src, n as u64)?;
        whole(src.skip(n as u64)?)
    };
    // Reads a wanted field's value of `len` bytes (-1: null).
    let take = |src: &mut S, len: i32, walk: &mut Walk<'_>| -> Result<Found, InvalidBatch> {
        if len < 0 {
            return Ok(Found::Absent);
        }
        if len as usize > walk.reading.field_bytes_max {
            skip(src, len)?;
            return Ok(Found::TooLong { bytes: len as usize });
        }
        room(src, len as u64)?;
        walk.field.clear();
        whole(src.copy_into(len as u64, &mut walk.field)?)?;
        Ok(Found::Read)
    };
    // Attributes: unused by record format v2.
    src.next_byte()?.ok_or(fail(RecordProblem::Truncated))?;
    let delta = varlong(src).map_err(var)?;
    let timestamp = walk
        .base_timestamp
        .checked_add(delta)
        .ok_or(fail(RecordProblem::TimestampOverflow { delta }))?;
    let offset_delta = varint(src).map_err(var)?;
    check_delta(walk, index, offset_delta).map_err(fail)?;
    within(src)?;
    let mut found = Found::Absent;
    for field in ["key", "value"] {
        let len = varint(src).map_err(var)?;
        null_or_length(field, len).map_err(fail)?;
        within(src)?;
        if field == "key" && walk.reading.field == Field::Key {
            found = take(src, len, walk)?;
        } else if len > 0 {
            skip(src, len)?;
        }
    }
    let count = varint(src).map_err(var)?;
    if count < 0 {
        return Err(fail(RecordProblem::NegativeHeaderCount { count }));
    }
    within(src)?;
    let mut wanted = match walk.reading.field {
        Field::Header(key) => Some(key),
        _ => None,
    };
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
        let is_wanted = match utf8(src, key, wanted)? {
            Some(KeyRead { utf8: true, wanted }) => wanted,
            Some(KeyRead { utf8: false, .. }) => return Err(fail(RecordProblem::HeaderKeyNotUtf8 { header })),
            None => return Err(fail(RecordProblem::Truncated)),
        };
        let value = varint(src).map_err(var)?;
        null_or_length("header value", value).map_err(fail)?;
        within(src)?;
        if is_wanted {
            // The first header with the key is the one: later ones are not looked at.
            wanted = None;
            found = take(src, value, walk)?;
        } else if value > 0 {
            skip(src, value)?;
        }
    }
    let read = src.position() - start;
    if read != length as u64 {
        return Err(fail(RecordProblem::LengthMismatch { declared: length, read }));
    }
    Ok(RecordRead {
        offset_delta,
        timestamp,
        found,
    })
}
