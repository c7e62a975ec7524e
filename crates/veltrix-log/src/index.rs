//! The sparse index of a segment: offsets and timestamps to file positions.
//!
//! One entry is added every `index_interval_bytes` of batches. Each entry serves as
//! both the offset index and the time index:
//!
//! ```text
//! rel_offset u32   base offset of the batch, relative to the segment's base
//! position   u32   byte position of the batch in the segment file
//! ts_before  i64   largest max_timestamp of all batches before this one
//! ```
//!
//! `ts_before` makes timestamp lookups correct even when producers' timestamps go
//! backwards: no batch before an entry has a timestamp above its `ts_before`, so a
//! search for the first batch at or after time `t` may start at the last entry
//! with `ts_before < t`.
//!
//! The active segment keeps its entries in memory only; recovery rebuilds them by
//! scanning. Sealing a segment writes them to `<base>.index` followed by a footer
//! that records the segment's end offset, size and largest timestamp, protected by
//! CRC32C. A valid footer lets a restart trust a sealed segment without reading it.
//! Index entries are hints: every read checks the batch it finds against the entry.

use crate::io::StorageFile;

/// Size of one entry.
pub const ENTRY_BYTES: usize = 16;
/// Size of the footer of a sealed index.
pub const FOOTER_BYTES: usize = 48;
const FOOTER_MAGIC: &[u8; 8] = b"VXIDX002";

/// One sparse index point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    pub rel_offset: u32,
    pub position: u32,
    pub ts_before: i64,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.rel_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
        out[8..16].copy_from_slice(&self.ts_before.to_be_bytes());
    }

    pub fn decode(buf: &[u8]) -> IndexEntry {
        IndexEntry {
            rel_offset: u32::from_be_bytes(buf[0..4].try_into().expect("4 bytes")),
            position: u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes")),
            ts_before: i64::from_be_bytes(buf[8..16].try_into().expect("8 bytes")),
        }
    }
}

/// What a sealed segment's footer records about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub entry_count: u32,
    /// CRC32C of the entries.
    pub entries_crc: u32,
    /// Offset after the last readable batch, relative to the segment base.
    pub next_rel_offset: u32,
    /// Size of the segment file when sealed; a file of another size is not trusted.
    pub file_bytes: u32,
    /// Bytes of the file holding valid batches (less than `file_bytes` only when
    /// recovery found damage at the end of a sealed segment and kept it in place).
    pub readable_bytes: u32,
    /// Largest `max_timestamp` in the segment (`i64::MIN` if empty).
    pub max_timestamp: i64,
    /// Wall-clock time of the last append, for retention of batches that carry no
    /// timestamp.
    pub last_append_ms: i64,
}

impl Footer {
    /// The footer of a segment whose whole file is readable. The entry count and
    /// checksum are filled in by [`encode_sealed`].
    pub fn new(next_rel_offset: u32, file_bytes: u32, max_timestamp: i64, last_append_ms: i64) -> Footer {
        Footer {
            entry_count: 0,
            entries_crc: 0,
            next_rel_offset,
            file_bytes,
            readable_bytes: file_bytes,
            max_timestamp,
            last_append_ms,
        }
    }

    fn encode(&self) -> [u8; FOOTER_BYTES] {
        let mut out = [0u8; FOOTER_BYTES];
        out[0..8].copy_from_slice(FOOTER_MAGIC);
        out[8..12].copy_from_slice(&self.entry_count.to_be_bytes());
        out[12..16].copy_from_slice(&self.entries_crc.to_be_bytes());
        out[16..20].copy_from_slice(&self.next_rel_offset.to_be_bytes());
        out[20..24].copy_from_slice(&self.file_bytes.to_be_bytes());
        out[24..28].copy_from_slice(&self.readable_bytes.to_be_bytes());
        out[28..36].copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[36..44].copy_from_slice(&self.last_append_ms.to_be_bytes());
        let crc = crc32c::crc32c(&out[0..44]);
        out[44..48].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes and checks a footer; `None` if it is not a valid one.
    pub fn decode(buf: &[u8]) -> Option<Footer> {
        if buf.len() != FOOTER_BYTES || &buf[0..8] != FOOTER_MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let i64_at = |at: usize| i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        if crc32c::crc32c(&buf[0..44]) != u32_at(44) {
            return None;
        }
        let footer = Footer {
            entry_count: u32_at(8),
            entries_crc: u32_at(12),
            next_rel_offset: u32_at(16),
            file_bytes: u32_at(20),
            readable_bytes: u32_at(24),
            max_timestamp: i64_at(28),
            last_append_ms: i64_at(36),
        };
        (footer.readable_bytes <= footer.file_bytes).then_some(footer)
    }
}

/// Serialises a sealed index: entries, then `footer` with its entry count and
/// entries checksum filled in.
pub fn encode_sealed(entries: &[IndexEntry], footer: Footer) -> Vec<u8> {
    let mut out = vec![0u8; entries.len() * ENTRY_BYTES + FOOTER_BYTES];
    for (i, e) in entries.iter().enumerate() {
        e.encode(&mut out[i * ENTRY_BYTES..(i + 1) * ENTRY_BYTES]);
    }
    let body = entries.len() * ENTRY_BYTES;
    let footer = Footer {
        entry_count: u32::try_from(entries.len()).expect("index entries fit u32"),
        entries_crc: crc32c::crc32c(&out[..body]),
        ..footer
    };
    out[body..].copy_from_slice(&footer.encode());
    out
}

/// Reads and checks the footer of a sealed index file of `file_len` bytes.
pub fn read_footer(file: &dyn StorageFile, file_len: u64) -> Option<Footer> {
    if file_len < FOOTER_BYTES as u64 {
        return None;
    }
    let mut buf = [0u8; FOOTER_BYTES];
    file.read_exact_at(&mut buf, file_len - FOOTER_BYTES as u64).ok()?;
    let footer = Footer::decode(&buf)?;
    let expected = u64::from(footer.entry_count) * ENTRY_BYTES as u64 + FOOTER_BYTES as u64;
    (expected == file_len).then_some(footer)
}

/// Reads all entries of a sealed index and checks them against the footer's CRC.
pub fn read_sealed_entries(file: &dyn StorageFile, footer: &Footer) -> Option<Vec<IndexEntry>> {
    let mut body = vec![0u8; footer.entry_count as usize * ENTRY_BYTES];
    file.read_exact_at(&mut body, 0).ok()?;
    if crc32c::crc32c(&body) != footer.entries_crc {
        return None;
    }
    Some(body.chunks_exact(ENTRY_BYTES).map(IndexEntry::decode).collect())
}

/// Where to start scanning for `rel_offset`: the last entry at or below it.
pub fn floor_by_offset(entries: &[IndexEntry], rel_offset: u32) -> Option<IndexEntry> {
    let idx = entries.partition_point(|e| e.rel_offset <= rel_offset);
    idx.checked_sub(1).map(|i| entries[i])
}

/// Where to start scanning for the first batch with `max_timestamp >= ts`: the last
/// entry with `ts_before < ts`. Entries' `ts_before` never decreases.
pub fn floor_by_time(entries: &[IndexEntry], ts: i64) -> Option<IndexEntry> {
    let idx = entries.partition_point(|e| e.ts_before < ts);
    idx.checked_sub(1).map(|i| entries[i])
}

/// The same lookups on a sealed index file, by binary search with positional reads,
/// so that sealed indexes cost no memory. A read error or a garbled entry yields
/// `None`, which makes the caller scan from the start of the segment.
pub fn floor_in_file<F: Fn(&IndexEntry) -> bool>(
    file: &dyn StorageFile,
    entry_count: u32,
    below: F,
) -> Option<IndexEntry> {
    let read = |i: u32| -> Option<IndexEntry> {
        let mut buf = [0u8; ENTRY_BYTES];
        file.read_exact_at(&mut buf, u64::from(i) * ENTRY_BYTES as u64).ok()?;
        Some(IndexEntry::decode(&buf))
    };
    // Invariant: entries before `lo` satisfy `below`; entries at or after `hi` do not.
    let (mut lo, mut hi) = (0u32, entry_count);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if below(&read(mid)?) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1).and_then(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{OpenMode, Storage};
    use crate::sim::SimStorage;
    use std::path::Path;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                rel_offset: 0,
                position: 0,
                ts_before: i64::MIN,
            },
            IndexEntry {
                rel_offset: 10,
                position: 4096,
                ts_before: 100,
            },
            IndexEntry {
                rel_offset: 25,
                position: 8200,
                ts_before: 100,
            },
            IndexEntry {
                rel_offset: 40,
                position: 12300,
                ts_before: 250,
            },
        ]
    }

    fn footer_for_test() -> Footer {
        Footer::new(55, 16000, 300, 1)
    }

    #[test]
    fn offset_and_time_floors_pick_the_last_safe_start() {
        let e = entries();
        assert_eq!(floor_by_offset(&e, 0).unwrap().rel_offset, 0);
        assert_eq!(floor_by_offset(&e, 24).unwrap().rel_offset, 10);
        assert_eq!(floor_by_offset(&e, 25).unwrap().rel_offset, 25);
        assert_eq!(floor_by_offset(&e, 1000).unwrap().rel_offset, 40);
        assert_eq!(floor_by_time(&e, 50).unwrap().rel_offset, 0);
        assert_eq!(floor_by_time(&e, 100).unwrap().rel_offset, 0);
        assert_eq!(floor_by_time(&e, 101).unwrap().rel_offset, 25);
        assert_eq!(floor_by_time(&e, 251).unwrap().rel_offset, 40);
        assert_eq!(floor_by_offset(&[], 3), None);
    }

    #[test]
    fn sealed_index_round_trips_and_file_search_agrees_with_memory() {
        let storage = SimStorage::new();
        storage.create_dir_all(Path::new("/d")).unwrap();
        let file = storage.open(Path::new("/d/0.index"), OpenMode::CreateNew).unwrap();
        let e = entries();
        let bytes = encode_sealed(&e, footer_for_test());
        file.write_all_at(&bytes, 0).unwrap();
        let footer = read_footer(&*file, bytes.len() as u64).unwrap();
        assert_eq!(
            (
                footer.entry_count,
                footer.next_rel_offset,
                footer.file_bytes,
                footer.max_timestamp
            ),
            (4, 55, 16000, 300)
        );
        assert_eq!(read_sealed_entries(&*file, &footer).unwrap(), e);
        for target in [0u32, 9, 10, 26, 39, 40, 41, 900] {
            let in_file = floor_in_file(&*file, footer.entry_count, |x| x.rel_offset <= target);
            assert_eq!(in_file, floor_by_offset(&e, target), "target {target}");
        }
        for ts in [i64::MIN, 0, 100, 101, 250, 251] {
            let in_file = floor_in_file(&*file, footer.entry_count, |x| x.ts_before < ts);
            assert_eq!(in_file, floor_by_time(&e, ts), "ts {ts}");
        }
    }

    #[test]
    fn damaged_footer_is_refused() {
        let bytes = encode_sealed(&entries(), footer_for_test());
        let footer = &bytes[bytes.len() - FOOTER_BYTES..];
        assert!(Footer::decode(footer).is_some());
        for i in 0..FOOTER_BYTES {
            let mut bad = footer.to_vec();
            bad[i] ^= 1;
            assert!(Footer::decode(&bad).is_none(), "flip at {i} accepted");
        }
    }
}
