//! Reading segment files: the recovery scan and the positioned reads behind fetches.
//!
//! A segment file is a plain concatenation of RecordBatch v2 batches, named by its
//! base offset. Nothing in it is trusted without a check: the scan verifies every
//! batch's CRC and that offsets follow on; reads verify each batch they return.
//!
//! The recovery scan distinguishes a torn tail from damage in the middle. At the
//! first batch that fails its checks it looks further for a valid batch that
//! continues the offsets. If there is one, the damage is in the middle: the bytes
//! stay where they are, the offsets they held become a corrupt range (reads of them
//! fail loudly), and the scan goes on, so valid data after the damage is never
//! thrown away. If there is none, the rest is a torn tail and is cut off.

use bytes::Bytes;

use crate::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD};
use crate::index::IndexEntry;
use crate::io::StorageFile;

/// Largest batch the engine ever reads back, whatever `batch_bytes_max` says now
/// (it may have been larger when the batch was written). Bounds every buffer the
/// scanner and readers allocate.
pub const STORED_BATCH_BYTES_LIMIT: usize = 256 << 20;
/// Bytes the scanner reads from disk at a time.
const SCAN_CHUNK_BYTES: usize = 4 << 20;
/// Largest buffer one read allocates beyond its first batch, whatever the caller
/// asks for: the engine's own bound on a read, below any bound of the caller's
/// (the Kafka adapter cuts each fetch to its `fetch_bytes_max`).
pub const READ_BYTES_LIMIT: usize = 64 << 20;
/// Checksum work the resync of one segment may do, as a multiple of the segment's
/// size. Damage crafted to look like batch headers cannot make recovery of a
/// segment cost more than this many passes over it.
const RESYNC_WORK_FACTOR: u64 = 4;

/// File name of the segment with base offset `base`.
pub fn log_file_name(base: i64) -> String {
    format!("{base:020}.log")
}

/// File name of the index of the segment with base offset `base`.
pub fn index_file_name(base: i64) -> String {
    format!("{base:020}.index")
}

/// Parses `<20 digits>.<ext>` into the base offset.
pub fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // A base offset past the limit cannot have been written by the log; taking it
    // would let offset arithmetic overflow.
    stem.parse().ok().filter(|base| *base <= batch::BASE_OFFSET_MAX)
}

/// A run of offsets whose batch could not be verified, found by the recovery scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptRange {
    /// Byte range in the segment file.
    pub position: u64,
    pub bytes: u64,
    /// Offsets `first_offset..next_offset` are unreadable.
    pub first_offset: i64,
    pub next_offset: i64,
}

/// What the recovery scan found in a segment.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Position after the last valid batch: the file is truncated here.
    pub valid_end: u64,
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub batches: u64,
    pub entries: Vec<IndexEntry>,
    /// Bytes since the last index entry, to continue indexing after recovery.
    pub bytes_since_index: u32,
    pub corrupt: Vec<CorruptRange>,
}

/// Reads a file through a reusable buffer, so scanning costs one syscall per chunk
/// rather than per batch.
struct ChunkReader<'a> {
    file: &'a dyn StorageFile,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn StorageFile, file_len: u64) -> Self {
        ChunkReader {
            file,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The bytes `pos..pos+len`, or `None` if the file ends before.
    fn get(&mut self, pos: u64, len: usize) -> std::io::Result<Option<&[u8]>> {
        let end = pos + len as u64;
        if end > self.file_len {
            return Ok(None);
        }
        let have = pos >= self.buf_start && end <= self.buf_start + self.buf.len() as u64;
        if !have {
            let want = (len.max(SCAN_CHUNK_BYTES) as u64).min(self.file_len - pos) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let at = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }

    /// The verified batch at `pos`, if there is one.
    fn batch_at(&mut self, pos: u64) -> std::io::Result<Option<BatchHeader>> {
        let Some(head) = self.get(pos, LOG_OVERHEAD)? else {
            return Ok(None);
        };
        let Some(size) = batch::peek_size(head) else {
            return Ok(None);
        };
        if size > STORED_BATCH_BYTES_LIMIT {
            return Ok(None);
        }
        match self.get(pos, size)? {
            Some(bytes) => Ok(batch::verify(bytes).ok()),
            None => Ok(None),
        }
    }

    /// The magic byte at `pos + 16`, used to skip hopeless resync candidates cheaply.
    fn magic_at(&mut self, pos: u64) -> std::io::Result<Option<u8>> {
        Ok(self.get(pos + 16, 1)?.map(|b| b[0]))
    }
}

/// Scans a segment from the start, verifying every batch; see the module docs.
///
/// Damage is resynced past only while the offsets it holds lie below
/// `resync_below`, the point up to which data is known to have been durable; damage
/// above it is taken for a torn tail, since after power loss the disk may have
/// kept later unsynced writes and lost earlier ones.
pub fn scan(
    file: &dyn StorageFile,
    base_offset: i64,
    index_interval_bytes: u32,
    resync_below: i64,
) -> std::io::Result<ScanResult> {
    let file_len = file.len()?;
    let mut reader = ChunkReader::new(file, file_len);
    let mut out = ScanResult {
        next_offset: base_offset,
        max_timestamp: i64::MIN,
        ..ScanResult::default()
    };
    // Offsets relative to the segment base must fit the index's 32 bits.
    let in_range = |h: &BatchHeader| h.next_offset() - base_offset <= i64::from(u32::MAX);
    let mut resync_budget = file_len.saturating_mul(RESYNC_WORK_FACTOR);
    let mut pos = 0u64;
    let mut force_entry = true;
    loop {
        let header = match reader.batch_at(pos)? {
            Some(h) if h.base_offset == out.next_offset && in_range(&h) => h,
            _ if out.next_offset >= resync_below => break,
            _ => match resync(&mut reader, pos + 1, out.next_offset, &mut resync_budget)? {
                Some((q, h)) if in_range(&h) => {
                    out.corrupt.push(CorruptRange {
                        position: pos,
                        bytes: q - pos,
                        first_offset: out.next_offset,
                        next_offset: h.base_offset,
                    });
                    pos = q;
                    force_entry = true;
                    h
                }
                _ => break,
            },
        };
        if force_entry || out.bytes_since_index >= index_interval_bytes {
            out.entries.push(IndexEntry {
                rel_offset: (header.base_offset - base_offset) as u32,
                position: pos as u32,
                ts_before: out.max_timestamp,
            });
            out.bytes_since_index = 0;
            force_entry = false;
        }
        out.bytes_since_index = out.bytes_since_index.saturating_add(header.size as u32);
        out.max_timestamp = out.max_timestamp.max(header.max_timestamp);
        out.next_offset = header.next_offset();
        out.batches += 1;
        pos += header.size as u64;
    }
    out.valid_end = pos;
    Ok(out)
}

/// Looks for the first position at or after `from` holding a valid batch whose base
/// offset is above `after` and whose offsets stay within the 32-bit relative range.
/// Gives up (as if nothing followed) once `budget` bytes have been checksummed.
fn resync(
    reader: &mut ChunkReader<'_>,
    from: u64,
    after: i64,
    budget: &mut u64,
) -> std::io::Result<Option<(u64, BatchHeader)>> {
    let mut q = from;
    while q + HEADER_BYTES as u64 <= reader.file_len {
        if reader.magic_at(q)? == Some(batch::MAGIC_V2 as u8)
            && let Some(size) = reader.get(q, LOG_OVERHEAD)?.and_then(batch::peek_size)
            && size <= STORED_BATCH_BYTES_LIMIT
            && q + size as u64 <= reader.file_len
        {
            if size as u64 > *budget {
                return Ok(None);
            }
            *budget -= size as u64;
            if let Some(h) = reader.batch_at(q)?
                && h.base_offset > after
                && h.base_offset - after < i64::from(u32::MAX)
            {
                return Ok(Some((q, h)));
            }
        }
        q += 1;
    }
    Ok(None)
}

/// Why a positioned read stopped short.
#[derive(Debug)]
pub enum ReadFault {
    Io(std::io::Error),
    /// The bytes at `position` are not the batch that should be there.
    Corrupt {
        position: u64,
        reason: String,
    },
}

impl From<std::io::Error> for ReadFault {
    fn from(e: std::io::Error) -> Self {
        ReadFault::Io(e)
    }
}

/// Where a read of one segment starts and stops.
#[derive(Debug, Clone, Copy)]
pub struct ReadWindow {
    /// Index entry to start walking from (its offset is exact).
    pub start: IndexEntry,
    pub segment_base: i64,
    /// Bytes of the file that hold complete batches.
    pub readable_bytes: u64,
    /// Batches at or above this offset are not returned (the high watermark).
    pub visible_next: i64,
}

fn read_header(file: &dyn StorageFile, pos: u64) -> Result<BatchHeader, ReadFault> {
    let mut head = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut head, pos)?;
    let size = batch::peek_size(&head).ok_or_else(|| ReadFault::Corrupt {
        position: pos,
        reason: "batch length field is invalid".into(),
    })?;
    if size > STORED_BATCH_BYTES_LIMIT {
        return Err(ReadFault::Corrupt {
            position: pos,
            reason: format!("batch length {size} exceeds {STORED_BATCH_BYTES_LIMIT}"),
        });
    }
    // Only the fixed fields are needed for positioning; the CRC is checked when the
    // batch is returned.
    batch::parse_fixed(&head).map_err(|e| ReadFault::Corrupt {
        position: pos,
        reason: e.to_string(),
    })
}

/// Walks from the window's index entry to the batch holding `target`, returning its
/// position and header; `None` if no visible batch holds or follows `target`.
fn seek(
    file: &dyn StorageFile,
    window: &ReadWindow,
    mut stop: impl FnMut(&BatchHeader) -> bool,
) -> Result<Option<(u64, BatchHeader)>, ReadFault> {
    let mut pos = u64::from(window.start.position);
    let mut expected = window.segment_base + i64::from(window.start.rel_offset);
    while pos + HEADER_BYTES as u64 <= window.readable_bytes && expected < window.visible_next {
        let h = read_header(file, pos)?;
        if h.base_offset != expected || pos + h.size as u64 > window.readable_bytes {
            return Err(ReadFault::Corrupt {
                position: pos,
                reason: format!(
                    "expected a batch at offset {expected}, found base offset {}",
                    h.base_offset
                ),
            });
        }
        if stop(&h) {
            return Ok(Some((pos, h)));
        }
        pos += h.size as u64;
        expected = h.next_offset();
    }
    Ok(None)
}

/// Reads whole, verified batches starting with the one that holds `target`, up to
/// `bytes_max` bytes and at most [`READ_BYTES_LIMIT`] (but at least one batch, as
/// Kafka does, so a consumer can always make progress). Returns the bytes and the
/// offset following the last batch.
pub fn read(
    file: &dyn StorageFile,
    window: &ReadWindow,
    target: i64,
    bytes_max: usize,
) -> Result<Option<(Bytes, i64)>, ReadFault> {
    let Some((pos, first)) = seek(file, window, |h| h.next_offset() > target)? else {
        return Ok(None);
    };
    let want = (bytes_max.min(READ_BYTES_LIMIT).max(first.size) as u64).min(window.readable_bytes - pos) as usize;
    let mut buf = Vec::with_capacity(want);
    file.read_exact_at_appending(&mut buf, want, pos)?;
    let mut at = 0usize;
    let mut next = first.base_offset;
    while at + LOG_OVERHEAD <= buf.len() {
        let Some(size) = batch::peek_size(&buf[at..]) else {
            break;
        };
        if at + size > buf.len() {
            break;
        }
        let bytes = &buf[at..at + size];
        let valid = batch::verify(bytes).map_err(|e| e.to_string()).and_then(|h| {
            if h.base_offset == next {
                Ok(h)
            } else {
                Err(format!("expected base offset {next}, found {}", h.base_offset))
            }
        });
        match valid {
            Ok(h) if h.base_offset < window.visible_next => {
                next = h.next_offset();
                at += size;
            }
            Ok(_) => break,
            Err(reason) if at == 0 => {
                return Err(ReadFault::Corrupt { position: pos, reason });
            }
            // A later batch is damaged: return what precedes it; the next read
            // starts there and reports it.
            Err(_) => break,
        }
    }
    buf.truncate(at);
    Ok(Some((Bytes::from(buf), next)))
}

/// Finds the first visible batch at or after the window start whose
/// `max_timestamp >= ts` and that ends above `offset_min`. The batch's checksum is
/// verified: its timestamp is about to be trusted as an answer.
pub fn find_by_time(
    file: &dyn StorageFile,
    window: &ReadWindow,
    ts: i64,
    offset_min: i64,
) -> Result<Option<BatchHeader>, ReadFault> {
    let Some((pos, h)) = seek(file, window, |h| h.max_timestamp >= ts && h.next_offset() > offset_min)? else {
        return Ok(None);
    };
    let mut bytes = vec![0u8; h.size];
    file.read_exact_at(&mut bytes, pos)?;
    batch::verify(&bytes).map_err(|e| ReadFault::Corrupt {
        position: pos,
        reason: e.to_string(),
    })?;
    Ok(Some(h))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::build::{Spec, batch};
    use crate::io::{OpenMode, Storage};
    use crate::sim::SimStorage;
    use std::path::Path;
    use std::sync::Arc;

    fn segment_with(batches: &[(i32, usize, i64)]) -> (Arc<dyn StorageFile>, Vec<u64>) {
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/s")).unwrap();
        let file = storage.open(Path::new("/s/x.log"), OpenMode::CreateNew).unwrap();
        let mut pos = 0u64;
        let mut offset = 100i64;
        let mut positions = Vec::new();
        for &(count, size, ts) in batches {
            let mut b = batch(
                Spec {
                    record_count: count,
                    base_timestamp: ts,
                    max_timestamp: ts,
                    ..Spec::default()
                },
                size,
                offset as u8,
            );
            batch::assign(&mut b, offset, 0);
            file.write_all_at(&b, pos).unwrap();
            positions.push(pos);
            pos += size as u64;
            offset += i64::from(count);
        }
        (file, positions)
    }

    #[test]
    fn file_names_round_trip_and_reject_lookalikes() {
        assert_eq!(log_file_name(42), "00000000000000000042.log");
        assert_eq!(parse_file_name(&log_file_name(42), "log"), Some(42));
        assert_eq!(parse_file_name(&index_file_name(7), "index"), Some(7));
        assert_eq!(parse_file_name("42.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log", "log"), None);
        assert_eq!(parse_file_name(&log_file_name(42), "index"), None);
    }

    #[test]
    fn scan_of_a_clean_segment_indexes_every_interval() {
        let (file, positions) = segment_with(&[(2, 100, 5), (1, 100, 3), (3, 100, 9)]);
        let r = scan(&*file, 100, 150, i64::MAX).unwrap();
        assert_eq!(r.valid_end, 300);
        assert_eq!(r.next_offset, 106);
        assert_eq!(r.max_timestamp, 9);
        assert_eq!(r.batches, 3);
        assert!(r.corrupt.is_empty());
        let got: Vec<_> = r
            .entries
            .iter()
            .map(|e| (e.rel_offset, e.position, e.ts_before))
            .collect();
        assert_eq!(
            got,
            vec![(0, positions[0] as u32, i64::MIN), (3, positions[2] as u32, 5)]
        );
    }

    #[test]
    fn scan_cuts_a_torn_tail() {
        let (file, _) = segment_with(&[(1, 100, 1), (1, 100, 2), (1, 100, 3)]);
        file.set_len(250).unwrap();
        let r = scan(&*file, 100, 4096, i64::MAX).unwrap();
        assert_eq!((r.valid_end, r.next_offset, r.batches), (200, 102, 2));
        assert!(r.corrupt.is_empty());
    }

    #[test]
    fn scan_keeps_valid_batches_after_a_flipped_byte() {
        let (file, _) = segment_with(&[(1, 100, 1), (2, 100, 2), (1, 100, 3)]);
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 170).unwrap();
        file.write_all_at(&[byte[0] ^ 0x10], 170).unwrap();
        let r = scan(&*file, 100, 4096, i64::MAX).unwrap();
        assert_eq!((r.valid_end, r.next_offset, r.batches), (300, 104, 2));
        assert_eq!(
            r.corrupt,
            vec![CorruptRange {
                position: 100,
                bytes: 100,
                first_offset: 101,
                next_offset: 103
            }]
        );
        // The batch after the damage is indexed, so reads of it need not cross it.
        assert_eq!(r.entries.last().unwrap().rel_offset, 3);
    }

    #[test]
    fn scan_cuts_damage_past_the_recovery_point() {
        let (file, _) = segment_with(&[(1, 100, 1), (2, 100, 2), (1, 100, 3)]);
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, 170).unwrap();
        file.write_all_at(&[byte[0] ^ 0x10], 170).unwrap();
        let r = scan(&*file, 100, 4096, 101).unwrap();
        assert_eq!((r.valid_end, r.next_offset, r.batches), (100, 101, 1));
        assert!(r.corrupt.is_empty());
    }

    #[test]
    fn read_returns_whole_batches_and_stops_at_the_watermark() {
        let (file, _) = segment_with(&[(1, 100, 1), (2, 100, 2), (1, 100, 3)]);
        let window = ReadWindow {
            start: IndexEntry {
                rel_offset: 0,
                position: 0,
                ts_before: i64::MIN,
            },
            segment_base: 100,
            readable_bytes: 300,
            visible_next: 103,
        };
        let (bytes, next) = read(&*file, &window, 102, 10).unwrap().unwrap();
        assert_eq!((bytes.len(), next), (100, 103), "one whole batch even past bytes_max");
        let (bytes, next) = read(&*file, &window, 100, 1000).unwrap().unwrap();
        assert_eq!((bytes.len(), next), (200, 103), "nothing at or above the watermark");
        assert!(read(&*file, &window, 103, 1000).unwrap().is_none());
        let hit = find_by_time(&*file, &window, 2, 0).unwrap().unwrap();
        assert_eq!(hit.base_offset, 101);
        assert!(
            find_by_time(&*file, &window, 3, 0).unwrap().is_none(),
            "offset 103 is not visible"
        );
    }
}
