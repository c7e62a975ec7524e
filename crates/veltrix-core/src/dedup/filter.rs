//! The duplicate filter's work on one batch: read its records' message ids,
//! and re-encode it without the records that are duplicates.
//!
//! Both are pure functions of a batch's bytes, on the validator's record
//! walker (`validate/records.rs`) and codecs, so a batch is read with the same
//! rules and the same memory bounds as when it was validated: records stream
//! through the codec's decoder, and only the ids (bounded by `id_bytes_max`)
//! or, for [`without`], one record at a time are held.
//!
//! [`without`] keeps what a producer's sequence numbers and a consumer's
//! offsets depend on. The broker's producer-state check (Kafka's, and
//! `veltrix-log`'s `producer.rs`) reads a batch's sequences as `base_sequence`
//! to `base_sequence + last_offset_delta`: both stay, so an idempotent
//! producer whose records were dropped never sees OUT_OF_ORDER_SEQUENCE on its
//! next batch. The kept records keep their offset deltas, leaving gaps exactly
//! as Kafka's log compaction does, which every consumer already reads past; a
//! batch whose records are all dropped stays as a batch of none, as
//! compaction keeps one for the producer state, uncompressed as compaction
//! writes it (librdkafka cannot read a compressed stream of nothing).
//!
//! Ids are compared as bytes: one that is not UTF-8 is an id like any other.
//! An empty one, or one longer than `id_bytes_max`, is a [`BadId`]; the produce
//! path is to refuse the partition's batch with INVALID_RECORD and a message
//! naming the limit ([`BadId`]'s `Display`), rather than store a record whose
//! duplicates it could not catch.

use std::io::{self, Write};

use veltrix_log::batch::{self, HEADER_BYTES, LOG_APPEND_TIME_BIT};

use crate::validate::{self, Codec, Compressor, Deltas, Field, FieldValue, InvalidBatch, Reading, RecordProblem};

/// Most entries [`ids`] reserves before it has read any record: a batch's
/// `record_count` is read off the wire, so it only sizes memory up to this.
const IDS_RESERVED_MAX: usize = 4096;

/// Where a record's message id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource<'a> {
    /// The value of the first header with this key (`message-id` by default).
    Header(&'a str),
    /// The record's key.
    Key,
}

/// One record's id, by its offset delta in its batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordId {
    pub offset_delta: i32,
    pub id: Id,
}

/// What a record carries as its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    /// The id's bytes, copied (the window keeps them).
    Found(Vec<u8>),
    /// No such header, a null header value or a null key: the record is
    /// stored as usual and counted by the caller.
    Missing,
    Bad(BadId),
}

/// An id the window cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadId {
    #[error("the message id is empty")]
    Empty,
    #[error("the message id is {bytes} bytes, over the limit of {bytes_max} (id_bytes_max)")]
    TooLong { bytes: usize, bytes_max: usize },
}

/// The id of each record of `batch`, in order, as `source` says.
///
/// `batch` is a producer's batch [`validate::validate`] accepted, or a stored
/// one (whose offset deltas may have gaps); its CRC is not checked again.
/// Bytes that are neither are an `Err`, never a panic. A control batch holds
/// no application records: no ids.
pub fn ids(batch: &[u8], source: IdSource<'_>, id_bytes_max: usize) -> Result<Vec<RecordId>, InvalidBatch> {
    let header = batch::parse_header(batch)?;
    if header.is_control() {
        return Ok(Vec::new());
    }
    let reading = Reading {
        deltas: Deltas::Rising,
        field: match source {
            IdSource::Header(key) => Field::Header(key.as_bytes()),
            IdSource::Key => Field::Key,
        },
        field_bytes_max: id_bytes_max,
        body: false,
    };
    let mut out = Vec::with_capacity((header.record_count as usize).min(IDS_RESERVED_MAX));
    validate::read_records(batch, &header, &reading, &mut |seen| {
        let id = match seen.field {
            FieldValue::Absent => Id::Missing,
            FieldValue::Bytes([]) => Id::Bad(BadId::Empty),
            FieldValue::Bytes(bytes) => Id::Found(bytes.to_vec()),
            FieldValue::TooLong { bytes } => Id::Bad(BadId::TooLong {
                bytes,
                bytes_max: id_bytes_max,
            }),
        };
        out.push(RecordId {
            offset_delta: seen.offset_delta,
            id,
        });
        Ok(())
    })?;
    Ok(out)
}

/// What [`without`] learnt of the records it kept.
struct Kept {
    count: i32,
    /// The first kept record's timestamp: the new batch's base timestamp.
    first: Option<i64>,
    /// The largest kept timestamp, -1 (none) unless one is larger.
    max: i64,
}

/// `batch` re-encoded without the records whose offset deltas are in `drop`
/// (ascending), as the module docs say: the same codec, base offset,
/// attributes, `last_offset_delta`, producer id and epoch and base sequence;
/// the kept records with their offset deltas, keys, values and headers; a new
/// record count, base timestamp (the first kept record's, as Kafka's
/// compaction writes it; unchanged if none is kept), max timestamp (the kept
/// records' largest, unless the batch says `LogAppendTime`, whose max
/// timestamp is the broker's), length and CRC.
///
/// `batch` is one [`ids`] read; an `Err` is a batch it would refuse, or the
/// kept timestamps too far apart for one batch (timestamps over 2^63 ms
/// apart, only from a crafted batch).
pub fn without(batch: &[u8], drop: &[i32]) -> Result<Vec<u8>, InvalidBatch> {
    debug_assert!(drop.is_sorted(), "offset deltas to drop are ascending");
    let header = batch::parse_header(batch)?;
    let codec = Codec::of(&header)?;
    if i64::try_from(drop.len()).is_ok_and(|n| n >= i64::from(header.record_count)) {
        // Every record dropped (deltas are distinct, so as many as records
        // is all of them, once the batch reads as valid): a batch of none,
        // uncompressed. librdkafka aborts on a compressed batch whose
        // stream holds nothing, and Kafka's log cleaner writes empty
        // batches uncompressed too.
        let skim = Reading {
            deltas: Deltas::Rising,
            field: Field::Nothing,
            field_bytes_max: 0,
            body: false,
        };
        validate::read_records(batch, &header, &skim, &mut |_| Ok(()))?;
        return Ok(batch::empty_of(batch));
    }
    let broken = |e: io::Error| InvalidBatch::Decompression {
        codec,
        reason: format!("re-encoding: {e}"),
    };
    let mut out = Vec::with_capacity(batch.len());
    out.extend_from_slice(&batch[..HEADER_BYTES]);
    let mut sink = Compressor::new(codec, &batch[HEADER_BYTES..], out).map_err(broken)?;
    let reading = Reading {
        deltas: Deltas::Rising,
        field: Field::Nothing,
        field_bytes_max: 0,
        body: true,
    };
    let mut kept = Kept {
        count: 0,
        first: None,
        max: -1,
    };
    validate::read_records(batch, &header, &reading, &mut |seen| {
        if drop.binary_search(&seen.offset_delta).is_ok() {
            return Ok(());
        }
        let base = *kept.first.get_or_insert(seen.timestamp);
        let delta = seen.timestamp.checked_sub(base).ok_or(InvalidBatch::Record {
            index: kept.count,
            problem: RecordProblem::TimestampOverflow { delta: seen.timestamp },
        })?;
        kept.count += 1;
        kept.max = kept.max.max(seen.timestamp);
        write_record(&mut sink, seen.body, delta).map_err(broken)
    })?;
    let mut out = sink.finish().map_err(broken)?;
    let (base_timestamp, max_timestamp) = match kept.first {
        None => (header.base_timestamp, header.max_timestamp),
        Some(_) if header.attributes & LOG_APPEND_TIME_BIT != 0 => (header.base_timestamp, header.max_timestamp),
        Some(first) => (first, kept.max),
    };
    batch::set_record_fields(&mut out, kept.count, base_timestamp, max_timestamp);
    Ok(out)
}

/// Writes a record whose `body` (attributes, timestamp delta, the rest) was
/// read from a batch, with the timestamp delta `delta`: only its length and
/// timestamp delta change.
fn write_record(out: &mut impl Write, body: &[u8], delta: i64) -> io::Result<()> {
    // The walker read the body: an attributes byte, then a varlong of at
    // most 10 bytes.
    let old_delta_bytes = body[1..].iter().position(|b| b & 0x80 == 0).expect("a read varlong") + 1;
    let rest = &body[1 + old_delta_bytes..];
    let mut delta_buf = [0u8; 10];
    let delta = zigzag(delta, &mut delta_buf);
    let mut length_buf = [0u8; 10];
    let length = i64::try_from(1 + delta.len() + rest.len()).expect("a record's length fits");
    out.write_all(zigzag(length, &mut length_buf))?;
    out.write_all(&body[..1])?;
    out.write_all(delta)?;
    out.write_all(rest)
}

/// `value` as a zigzag varlong, in `buf`.
fn zigzag(value: i64, buf: &mut [u8; 10]) -> &[u8] {
    let mut u = ((value << 1) ^ (value >> 63)) as u64;
    let mut n = 0;
    while u >= 0x80 {
        buf[n] = (u as u8) | 0x80;
        u >>= 7;
        n += 1;
    }
    buf[n] = u as u8;
    &buf[..=n]
}

#[cfg(test)]
mod tests;
