//! The checks behind the fuzz targets, shared with the stable-Rust smoke tests.
//!
//! Each public check takes arbitrary bytes, turns them into files the log engine
//! would find on disk, runs the engine's decoders over them, and panics if the
//! engine panics or breaks one of the properties listed on the check. The fuzz
//! targets in `fuzz_targets/` call these functions and so does
//! `tests/it/fuzz_smoke.rs`, so an input found by either replays in the other.
//!
//! Inputs are not only raw file images. CRC32C guards every batch, index and
//! checkpoint, and blind mutation almost never yields a valid checksum, so a
//! fuzzer fed raw images would mostly test the first checksum comparison. The
//! first bytes of an input therefore choose how the rest is used: as raw file
//! contents, as a valid file generated here with the rest applied as edits, or as
//! fields from which valid batches are built; a flag recomputes the checksums
//! afterwards. Valid files come from code, so no corpus on disk is needed to start
//! from valid data.
//!
//! The harness itself uses only wrapping arithmetic and never unwraps anything that
//! depends on the input, so every panic it reports is a broken property of the
//! engine, not of the harness.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use veltrix_log::batch::{self, BatchHeader, build};
use veltrix_log::index::{self, Footer, IndexEntry};
use veltrix_log::io::{OpenMode, Storage, StorageFile};
use veltrix_log::segment::{self, ReadWindow, ScanResult};
use veltrix_log::sim::{SimClock, SimStorage};
use veltrix_log::{Env, Log, LogConfig};

/// Segment base offsets that a 20-digit file name can carry: ordinary ones, one
/// past the 32-bit range, the largest the log accepts, and two near `i64::MAX`,
/// which it must refuse rather than overflow on. The eighth choice takes the base
/// from the input.
const BASES: [i64; 7] = [0, 1, 100, 1 << 32, batch::BASE_OFFSET_MAX, i64::MAX - 3, i64::MAX];

/// Index intervals: an entry for every batch, for about every batch, every few
/// batches, and almost never.
const INTERVALS: [u32; 4] = [1, 61, 256, 4096];

/// Largest file the log target builds, so one input costs microseconds, not
/// milliseconds.
const FILE_BYTES_MAX: usize = 4096;

/// Names the engine gives its checkpoint and clean-shutdown marker (see log.rs);
/// they are crate-private there, so they are repeated here.
const LOG_START_FILE: &str = "log-start-offset";
const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";

/// The index entry a read starts from when no entry helps, as the log uses it.
const SEGMENT_START: IndexEntry = IndexEntry {
    rel_offset: 0,
    position: 0,
    ts_before: i64::MIN,
};

/// Wall time of the simulated clock (2026-01-01), also the timestamp of appends.
const T0: i64 = 1_767_225_600_000;

/// Reads an input front to back; past its end every read yields zeros, so any
/// input, even an empty one, decodes to something.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// A length-prefixed slice, so that one input can describe several files.
    fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u16()) % (FILE_BYTES_MAX + 1);
        self.take(n)
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
}

/// A base offset: one of [`BASES`], or `raw` for choice 7. File names hold only
/// digits, so a base is never negative.
fn base_offset(choice: u8, raw: impl FnOnce() -> u64) -> i64 {
    match BASES.get(usize::from(choice & 7)) {
        Some(&base) => base,
        None => (raw() & i64::MAX as u64) as i64,
    }
}

// ---------------------------------------------------------------------------
// Building files
// ---------------------------------------------------------------------------

/// A valid segment of one to eight batches starting at `base`, with record counts,
/// sizes and timestamps (which go backwards now and then) varying with `variant`.
pub fn seed_segment(base: i64, variant: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = base;
    for i in 0..1 + usize::from(variant % 8) {
        let count = 1 + (i as i32 + i32::from(variant)) % 3;
        let size = 61 + (i * 37 + usize::from(variant)) % 190;
        let ts = 975 + (i as i64 * 7919 + i64::from(variant)) % 50;
        let spec = build::Spec {
            record_count: count,
            base_timestamp: ts,
            max_timestamp: ts,
            ..build::Spec::default()
        };
        let mut b = build::batch(spec, size, i as u8);
        batch::assign(&mut b, offset, 0);
        out.extend_from_slice(&b);
        offset = offset.wrapping_add(i64::from(count));
    }
    out
}

/// Applies edits of four bytes each: kind, position (two bytes), value. Kinds flip
/// bits, overwrite a byte, truncate, or insert a byte, which between them model
/// bit rot, torn writes and shifted data.
fn apply_edits(file: &mut Vec<u8>, edits: &[u8]) {
    for op in edits.chunks(4) {
        let mut e = Input(op);
        let kind = e.byte();
        let pos = usize::from(e.u16()) % (file.len() + 1);
        let value = e.byte();
        match kind % 4 {
            0 if pos < file.len() => file[pos] ^= value.max(1),
            1 if pos < file.len() => file[pos] = value,
            2 => file.truncate(pos),
            3 => file.insert(pos, value),
            _ => {}
        }
    }
}

/// Writes the CRC of the batch in `buf` into its header (bytes 17..21, see the
/// layout in batch.rs); used after editing fields the CRC covers.
fn seal_batch(buf: &mut [u8]) {
    let crc = batch::compute_crc(buf);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Recomputes the CRC of every batch in the chain of length fields from byte 0, so
/// that edited headers reach the checks behind the checksum.
fn fix_batch_crcs(file: &mut [u8]) {
    let mut pos = 0;
    while let Some(size) = batch::peek_size(&file[pos..]) {
        let Some(b) = file.get_mut(pos..pos + size) else {
            break;
        };
        seal_batch(b);
        pos += size;
    }
}

/// Builds batches from eight bytes of fields each: how the base offset follows the
/// previous batch (in sequence, a gap, backwards, or beyond the 32-bit relative
/// range), the offset delta and record count (small, near `i32::MAX`, or
/// disagreeing), size, timestamp, and damage (a flipped payload byte, a torn end,
/// a wrong magic byte). Each batch has a valid CRC unless damaged.
fn structured_segment(base: i64, fields: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut expected = base;
    for f in fields.chunks(8).take(64) {
        let mut f = Input(f);
        let (order, param, counts, size, ts, damage, fill) = (
            f.byte(),
            f.byte(),
            f.byte(),
            f.byte(),
            f.u16() as i16,
            f.byte(),
            f.byte(),
        );
        let offset = match order % 8 {
            5 => expected.wrapping_add(1 + i64::from(param)),
            6 => expected.wrapping_sub(1 + i64::from(param)),
            7 => expected.wrapping_add(1 << 32),
            _ => expected,
        };
        let small = i32::from(counts >> 2) % 4;
        let (delta, record_count) = match counts % 4 {
            0 | 1 => (small, small + 1),
            2 => (i32::MAX - 1 - small, i32::MAX - small),
            _ => (small, i32::from(param)),
        };
        let max_timestamp = match ts {
            i16::MIN => i64::MIN,
            i16::MAX => i64::MAX,
            ts => i64::from(ts) * 1000,
        };
        let spec = build::Spec {
            record_count: 1,
            base_timestamp: max_timestamp,
            max_timestamp,
            ..build::Spec::default()
        };
        let mut b = build::batch(spec, 61 + usize::from(size), fill);
        b[23..27].copy_from_slice(&delta.to_be_bytes());
        b[57..61].copy_from_slice(&record_count.to_be_bytes());
        seal_batch(&mut b);
        batch::assign(&mut b, offset, 0);
        match damage % 8 {
            0 => {
                let at = 21 + usize::from(fill) % (b.len() - 21);
                b[at] ^= 0x20;
            }
            1 => b.truncate(usize::from(fill) % b.len()),
            2 => b[16] = fill | 1,
            _ => {}
        }
        out.extend_from_slice(&b);
        expected = offset.wrapping_add(i64::from(delta)).wrapping_add(1);
    }
    out
}

/// The contents of a segment based at `base`, decoded from `input` as `mode` says:
/// 0 raw bytes, 1 a valid segment followed by raw bytes, 2 a valid segment with
/// edits, 3 batches built from fields. With `fix_crcs` every batch along the chain
/// of length fields gets a correct CRC afterwards.
fn segment_contents(mode: u8, fix_crcs: bool, base: i64, input: &mut Input<'_>) -> Vec<u8> {
    let mut file = match mode % 4 {
        0 => input.rest().to_vec(),
        1 => {
            let mut file = seed_segment(base, input.byte());
            file.extend_from_slice(input.rest());
            file
        }
        2 => {
            let mut file = seed_segment(base, input.byte());
            apply_edits(&mut file, input.rest());
            file
        }
        _ => structured_segment(base, input.rest()),
    };
    if fix_crcs {
        fix_batch_crcs(&mut file);
    }
    file
}

/// A valid sealed index of up to 23 entries with offsets, positions and
/// `ts_before` increasing as the engine writes them.
pub fn seed_index(variant: u8) -> Vec<u8> {
    let count = u32::from(variant % 24);
    let entries: Vec<IndexEntry> = (0..count)
        .map(|i| IndexEntry {
            rel_offset: i * 3 + u32::from(variant % 3),
            position: i * 200,
            ts_before: if i == 0 { i64::MIN } else { i64::from(i) * 100 - 50 },
        })
        .collect();
    index::encode_sealed(
        &entries,
        index::Footer::new(count * 3 + 5, count * 200 + 100, i64::from(count) * 100, 0),
    )
}

/// Rewrites the last [`index::FOOTER_BYTES`] of `file` into a footer whose checksum
/// (its last four bytes, over the rest of it) is valid; the flags choose which other
/// parts are made consistent: the magic, the entry count (the body is cut to whole
/// entries first), and the CRC of the entries.
fn fix_footer(file: &mut Vec<u8>, flags: u8) {
    if file.len() < index::FOOTER_BYTES {
        file.resize(index::FOOTER_BYTES, 0);
    }
    let mut body = file.len() - index::FOOTER_BYTES;
    if flags & 8 != 0 {
        let whole = body / index::ENTRY_BYTES * index::ENTRY_BYTES;
        file.drain(whole..body);
        body = whole;
        let count = (body / index::ENTRY_BYTES) as u32;
        file[body + 8..body + 12].copy_from_slice(&count.to_be_bytes());
    }
    if flags & 16 != 0 {
        let magic = &index::encode_sealed(&[], index::Footer::new(0, 0, 0, 0))[0..8];
        file[body..body + 8].copy_from_slice(magic);
    }
    if flags & 32 != 0 {
        let crc = crc32c::crc32c(&file[..body]);
        file[body + 12..body + 16].copy_from_slice(&crc.to_be_bytes());
    }
    let end = file.len();
    let crc = crc32c::crc32c(&file[body..end - 4]);
    file[end - 4..].copy_from_slice(&crc.to_be_bytes());
}

/// One file in a fresh simulated storage.
fn file_with(contents: &[u8]) -> Arc<dyn StorageFile> {
    let storage = SimStorage::new();
    let dir = Path::new("/f");
    storage
        .create_dir_all(dir)
        .expect("simulated storage creates directories");
    let file = storage
        .open(&dir.join("file"), OpenMode::CreateNew)
        .expect("simulated storage creates files");
    file.write_all_at(contents, 0)
        .expect("simulated storage has no faults on");
    file
}

// ---------------------------------------------------------------------------
// segment_scan
// ---------------------------------------------------------------------------

/// The offset after a batch, computed without the overflow check of
/// `BatchHeader::next_offset`, so that the harness never panics on its own.
fn next_of(h: &BatchHeader) -> i64 {
    h.base_offset
        .wrapping_add(i64::from(h.last_offset_delta))
        .wrapping_add(1)
}

/// A batch the scan accepted, where it is.
struct Accounted {
    position: u64,
    header: BatchHeader,
}

/// Arbitrary bytes as a segment file, scanned and read back.
///
/// `segment::scan` must not panic and must account for the bytes up to
/// `valid_end` (never past the file's end) exactly: as verified batches whose
/// offsets follow on, and corrupt ranges between them. Its index entries must
/// point at accepted batches and name their offsets and the largest timestamp
/// before them correctly. Reading every accepted batch through the index must
/// return it intact, reads of corrupt offsets must fail or return only verified
/// batches, and a time lookup in a segment without damage must find the first
/// batch whose timestamp reaches the target.
pub fn segment_scan(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let base = base_offset(flags >> 3, || input.u64());
    let interval = INTERVALS[usize::from(flags >> 6)];
    // Where damage stops counting as mid-segment: nowhere (a sealed segment), at
    // the base (an active segment without a recovery point), or a few offsets in.
    let resync_below = match input.byte() {
        0..=127 => i64::MAX,
        128..=191 => base,
        b => base.wrapping_add(i64::from(b & 15)),
    };
    let contents = segment_contents(flags & 3, flags & 4 != 0, base, &mut input);
    let file = file_with(&contents);
    let scan = segment::scan(&*file, base, interval, resync_below).expect("scanning an in-memory file cannot fail");
    for c in &scan.corrupt {
        assert!(
            c.first_offset < resync_below,
            "corrupt range {c:?} kept at or past the resync limit {resync_below}"
        );
    }
    let batches = check_scan(&contents, base, &scan);
    check_reads(&*file, base, &scan, &batches);
    check_time_lookups(&*file, base, &scan, &batches);
}

/// Walks what the scan reports against the bytes; returns the accepted batches.
fn check_scan(contents: &[u8], base: i64, scan: &ScanResult) -> Vec<Accounted> {
    assert!(
        scan.valid_end <= contents.len() as u64,
        "valid_end {} is past the end of a {}-byte file",
        scan.valid_end,
        contents.len()
    );
    let mut batches: Vec<Accounted> = Vec::new();
    let mut corrupt = scan.corrupt.iter().peekable();
    let (mut pos, mut next, mut max_timestamp) = (0u64, base, i64::MIN);
    while pos < scan.valid_end {
        if let Some(c) = corrupt.next_if(|c| c.position == pos) {
            assert_eq!(
                c.first_offset, next,
                "corrupt range at byte {pos} starts at the wrong offset"
            );
            assert!(
                c.bytes > 0 && c.next_offset > c.first_offset,
                "empty corrupt range {c:?}"
            );
            pos += c.bytes;
            next = c.next_offset;
            continue;
        }
        let at = pos as usize;
        let size = batch::peek_size(&contents[at..])
            .unwrap_or_else(|| panic!("the scan accepted byte {pos}, where no batch length is"));
        assert!(
            pos + size as u64 <= scan.valid_end,
            "the batch at byte {pos} ({size} bytes) runs past valid_end {}",
            scan.valid_end
        );
        let header = batch::verify(&contents[at..at + size])
            .unwrap_or_else(|e| panic!("the scan accepted the batch at byte {pos}, which fails verification: {e}"));
        assert_eq!(
            header.base_offset, next,
            "the batch at byte {pos} does not continue the offsets"
        );
        max_timestamp = max_timestamp.max(header.max_timestamp);
        next = next_of(&header);
        batches.push(Accounted { position: pos, header });
        pos += size as u64;
    }
    assert_eq!(pos, scan.valid_end, "a corrupt range runs past valid_end");
    assert!(
        corrupt.next().is_none(),
        "corrupt ranges out of order or past valid_end: {:?}",
        scan.corrupt
    );
    assert_eq!(scan.batches, batches.len() as u64, "batch count");
    assert_eq!(scan.next_offset, next, "next offset");
    // The index stores offsets relative to the base in 32 bits.
    assert!(
        scan.next_offset.wrapping_sub(base) <= i64::from(u32::MAX),
        "the scan accepted offsets up to {}, beyond 32 bits past the base {base}",
        scan.next_offset
    );
    assert_eq!(scan.max_timestamp, max_timestamp, "largest timestamp");
    check_entries(base, scan, &batches);
    batches
}

/// Index entries must point at accepted batches, in order, starting with the first
/// one and again after every corrupt range, and hold the right offset and time.
fn check_entries(base: i64, scan: &ScanResult, batches: &[Accounted]) {
    let mut last = None;
    for e in &scan.entries {
        let i = batches
            .iter()
            .position(|b| b.position == u64::from(e.position))
            .unwrap_or_else(|| panic!("index entry {e:?} points at no accepted batch"));
        assert!(last < Some(i), "index entries out of order: {:?}", scan.entries);
        last = Some(i);
        let rel = batches[i].header.base_offset.wrapping_sub(base);
        assert_eq!(
            i64::from(e.rel_offset),
            rel,
            "index entry at byte {} names relative offset {}, but the batch there is at {rel}",
            e.position,
            e.rel_offset
        );
        let before = batches[..i]
            .iter()
            .map(|b| b.header.max_timestamp)
            .max()
            .unwrap_or(i64::MIN);
        assert_eq!(e.ts_before, before, "ts_before of the entry at byte {}", e.position);
    }
    let indexed = |pos: u64| scan.entries.iter().any(|e| u64::from(e.position) == pos);
    if let Some(first) = batches.first() {
        assert!(indexed(first.position), "the first batch has no index entry");
    }
    for c in &scan.corrupt {
        if let Some(after) = batches.iter().find(|b| b.position == c.position + c.bytes) {
            assert!(
                indexed(after.position),
                "the batch after corrupt range {c:?} has no index entry"
            );
        }
    }
}

/// The window a read of the scanned segment uses, starting at the last index entry
/// at or below `target`, as the log does for its active segment.
fn window_for(base: i64, scan: &ScanResult, start: IndexEntry) -> ReadWindow {
    ReadWindow {
        start,
        segment_base: base,
        readable_bytes: scan.valid_end,
        visible_next: scan.next_offset,
    }
}

fn floor_by_offset(entries: &[IndexEntry], base: i64, target: i64) -> IndexEntry {
    let n = entries.partition_point(|e| i64::from(e.rel_offset) <= target.wrapping_sub(base));
    n.checked_sub(1).map_or(SEGMENT_START, |i| entries[i])
}

/// Checks bytes returned by a read: whole verified batches with offsets following
/// on, the first holding `target`, all below `visible_next`, ending at `next`.
/// With `skips_gaps` (reads through `Log`, which skip offsets missing between
/// segments), the first batch may instead start after `target`.
fn check_returned(bytes: &[u8], target: i64, next: i64, visible_next: i64, skips_gaps: bool) {
    let mut at = 0;
    let mut expected = None;
    while at < bytes.len() {
        let size = batch::peek_size(&bytes[at..]).expect("a read returns whole batches");
        let h = batch::verify(&bytes[at..at + size]).expect("a read returns only verified batches");
        match expected {
            None => assert!(
                (h.base_offset <= target || skips_gaps) && target < next_of(&h),
                "the first batch returned ({}..{}) does not hold offset {target}",
                h.base_offset,
                next_of(&h)
            ),
            Some(e) => assert_eq!(h.base_offset, e, "a read returned batches with a gap"),
        }
        assert!(h.base_offset < visible_next, "a read returned a batch at the watermark");
        expected = Some(next_of(&h));
        at += size;
    }
    assert_eq!(expected, Some(next), "a read reports the wrong next offset");
}

fn check_reads(file: &dyn StorageFile, base: i64, scan: &ScanResult, batches: &[Accounted]) {
    for (i, b) in batches.iter().enumerate().take(64) {
        for target in [b.header.base_offset, next_of(&b.header).wrapping_sub(1)] {
            let window = window_for(base, scan, floor_by_offset(&scan.entries, base, target));
            let bytes_max = if i % 2 == 0 { 1 } else { 1 << 16 };
            match segment::read(file, &window, target, bytes_max) {
                Ok(Some((bytes, next))) => {
                    check_returned(&bytes, target, next, window.visible_next, false);
                    assert_eq!(
                        batch::verify(&bytes[..b.header.size]).ok(),
                        Some(b.header),
                        "reading offset {target} returned a different batch"
                    );
                }
                Ok(None) => panic!("accepted offset {target} reads as nothing"),
                Err(e) => panic!("accepted offset {target} fails to read: {e:?}"),
            }
        }
    }
    for c in scan.corrupt.iter().take(16) {
        for target in [c.first_offset, c.next_offset - 1] {
            let window = window_for(base, scan, floor_by_offset(&scan.entries, base, target));
            if let Ok(Some((bytes, next))) = segment::read(file, &window, target, 1 << 16) {
                check_returned(&bytes, target, next, window.visible_next, false);
            }
        }
    }
}

fn check_time_lookups(file: &dyn StorageFile, base: i64, scan: &ScanResult, batches: &[Accounted]) {
    let mut targets = vec![i64::MIN, i64::MIN + 1, -1, 0, 990, 1000, 1024, i64::MAX];
    for b in batches.iter().take(8) {
        targets.push(b.header.max_timestamp);
        targets.push(b.header.max_timestamp.wrapping_add(1));
    }
    for ts in targets {
        let n = scan.entries.partition_point(|e| e.ts_before < ts);
        let start = n.checked_sub(1).map_or(SEGMENT_START, |i| scan.entries[i]);
        let found = segment::find_by_time(file, &window_for(base, scan, start), ts, base);
        if scan.corrupt.is_empty() {
            let want = batches.iter().find(|b| b.header.max_timestamp >= ts).map(|b| b.header);
            match found {
                Ok(got) => assert_eq!(got, want, "time lookup of {ts}"),
                Err(e) => panic!("time lookup of {ts} in an undamaged segment fails: {e:?}"),
            }
        } else if let Ok(Some(h)) = found {
            assert!(h.max_timestamp >= ts, "time lookup of {ts} found an older batch");
        }
    }
}

// ---------------------------------------------------------------------------
// index_reader
// ---------------------------------------------------------------------------

/// Arbitrary bytes as a sealed index file.
///
/// `read_footer`, `read_sealed_entries` and `floor_in_file` must not panic. A
/// footer that `read_footer` accepts must describe a file of exactly its length,
/// entries it returns must be the ones in the file, and a binary search of the file
/// must agree with one in memory whenever the entries are ordered for the search.
pub fn index_reader(data: &[u8]) {
    let mut input = Input(data);
    let flags = input.byte();
    let mut contents = match flags & 3 {
        0 | 3 => input.rest().to_vec(),
        1 => {
            let mut file = seed_index(input.byte());
            apply_edits(&mut file, input.rest());
            file
        }
        _ => {
            let (next_rel, size, max_ts) = (input.u32(), input.u32(), input.u64() as i64);
            let entries: Vec<IndexEntry> = input
                .rest()
                .chunks_exact(index::ENTRY_BYTES)
                .map(IndexEntry::decode)
                .collect();
            index::encode_sealed(&entries, index::Footer::new(next_rel, size, max_ts, 0))
        }
    };
    if flags & 4 != 0 {
        fix_footer(&mut contents, flags);
    }
    let file = file_with(&contents);
    let len = contents.len() as u64;
    let in_file: Vec<IndexEntry> = contents
        .chunks_exact(index::ENTRY_BYTES)
        .map(IndexEntry::decode)
        .collect();
    let footer = index::read_footer(&*file, len);
    if let Some(f) = footer {
        assert_eq!(
            u64::from(f.entry_count) * index::ENTRY_BYTES as u64 + index::FOOTER_BYTES as u64,
            len,
            "accepted footer {f:?} does not match the file length"
        );
        assert_eq!(
            Footer::decode(&contents[contents.len() - index::FOOTER_BYTES..]),
            Some(f)
        );
        if let Some(entries) = index::read_sealed_entries(&*file, &f) {
            assert_eq!(entries, in_file[..f.entry_count as usize], "entries read back differ");
        }
    }
    let whole = (len / index::ENTRY_BYTES as u64) as u32;
    let counts = [footer.map_or(0, |f| f.entry_count), 0, 1, whole, whole + 1, u32::MAX];
    let mut offsets = vec![0, 1, u32::MAX];
    let mut times = vec![i64::MIN, 0, i64::MAX];
    for e in in_file.iter().take(8) {
        offsets.extend([e.rel_offset.wrapping_sub(1), e.rel_offset, e.rel_offset.wrapping_add(1)]);
        times.extend([e.ts_before, e.ts_before.wrapping_add(1)]);
    }
    for count in counts {
        for &target in &offsets {
            check_floor(&*file, &in_file, count, |e| e.rel_offset <= target);
        }
        for &ts in &times {
            check_floor(&*file, &in_file, count, |e| e.ts_before < ts);
        }
    }
}

/// Runs `floor_in_file` and, when the first `count` entries are in the file and
/// ordered for `below` (all that satisfy it come first), compares with memory.
fn check_floor(file: &dyn StorageFile, in_file: &[IndexEntry], count: u32, below: impl Fn(&IndexEntry) -> bool) {
    let got = index::floor_in_file(file, count, &below);
    let Some(entries) = in_file.get(..count as usize) else {
        return;
    };
    let n = entries.iter().take_while(|e| below(e)).count();
    if entries[n..].iter().all(|e| !below(e)) {
        let want = n.checked_sub(1).map(|i| entries[i]);
        assert_eq!(got, want, "floor_in_file over {count} entries disagrees with memory");
    }
}

// ---------------------------------------------------------------------------
// log_open
// ---------------------------------------------------------------------------

/// Arbitrary bytes as a partition directory, opened with `Log::open`.
///
/// The input describes up to two segments, their indexes, the log start
/// checkpoint, the clean-shutdown marker, a leftover temporary file and an index
/// without its segment. Opening must return `Ok` or `Err`, never panic. If the log
/// opens, reading from the log start to the high watermark and time lookups must
/// not panic, may fail, and when they succeed must return verified batches and
/// offsets inside the log. An append must succeed at the log end or fail cleanly.
/// A clean close must then be followed by a reopen that succeeds with the same log
/// start, log end and readable contents, because a clean restart loses nothing,
/// and the log must not have created a segment file that recovery ignores.
pub fn log_open(data: &[u8]) {
    let dir = PartitionDir::decode(data);
    let strays_before = unrecognised_segments(&dir);
    let env = || Env::new(Arc::new(dir.storage.clone()), Arc::new(SimClock::new(T0)), 4);
    let Ok(log) = Log::open(env(), &dir.path, dir.config) else {
        return;
    };
    exercise(&log, dir.ts_extra, dir.genuine);
    if log.close().is_err() {
        return;
    }
    let (log_start, log_end) = (log.log_start(), log.log_end());
    let contents = read_everything(&log, dir.genuine);
    drop(log);
    let reopened = Log::open(env(), &dir.path, dir.config).expect("a log that closed cleanly reopens");
    assert_eq!(
        reopened.log_start(),
        log_start,
        "log start changed across a clean restart"
    );
    assert_eq!(reopened.log_end(), log_end, "log end changed across a clean restart");
    assert!(
        read_everything(&reopened, dir.genuine) == contents,
        "readable contents changed across a clean restart"
    );
    for name in unrecognised_segments(&dir) {
        assert!(
            strays_before.contains(&name),
            "the log created {name}, a segment file that recovery ignores"
        );
    }
}

/// Names of `.log` files in the directory whose name recovery does not take for a
/// segment (a base offset out of range, for one).
fn unrecognised_segments(dir: &PartitionDir) -> Vec<String> {
    dir.storage
        .files()
        .iter()
        .filter_map(|p| p.file_name()?.to_str())
        .filter(|name| name.ends_with(".log") && segment::parse_file_name(name, "log").is_none())
        .map(str::to_owned)
        .collect()
}

/// A partition directory in simulated storage, as decoded from a `log_open` input,
/// with the config to open it with and a timestamp to look up.
pub struct PartitionDir {
    pub storage: SimStorage,
    pub path: PathBuf,
    pub config: LogConfig,
    pub ts_extra: i64,
    /// Whether every index file is one recovery itself would write. Recovery trusts
    /// an index whose checksums hold without reading the segment, so an index that
    /// passes them yet contradicts its segment (a forged one) can make offsets
    /// unreadable; only the properties that must survive even that are checked then.
    pub genuine: bool,
}

impl PartitionDir {
    /// Builds the directory an input describes; see [`log_open`].
    pub fn decode(data: &[u8]) -> PartitionDir {
        let mut input = Input(data);
        let present = input.byte();
        let modes = input.byte();
        let choices = input.byte();
        let knobs = input.byte();
        let (raw_base, gap, raw_checkpoint, ts_extra) = (input.u64(), input.byte(), input.u64(), input.u64());
        // Files come last and always in this order, present or not, so that every input
        // field stays where it is when a file is switched on or off.
        let [chunk_a, chunk_b, index_a, index_b, checkpoint_bytes, tmp, orphan] = [(); 7].map(|()| input.chunk());

        let storage = SimStorage::new();
        let dir = PathBuf::from("/data/topic-0");
        storage
            .create_dir_all(&dir)
            .expect("simulated storage creates directories");
        let put = |name: &str, contents: &[u8]| {
            let file = storage
                .open(&dir.join(name), OpenMode::CreateOrOpen)
                .expect("simulated storage creates files");
            file.set_len(0).expect("simulated storage truncates");
            file.write_all_at(contents, 0)
                .expect("simulated storage has no faults on");
        };

        let interval = INTERVALS[usize::from(knobs & 3)];
        let fix_crcs = knobs & 4 != 0;
        let base_a = base_offset(choices, || raw_base);
        let segment_a = segment_contents(modes, fix_crcs, base_a, &mut Input(chunk_a));
        let scan_a = segment::scan(&*file_with(&segment_a), base_a, interval, i64::MAX).expect("in-memory scan");
        let base_b = match (choices >> 3) & 7 {
            0 => scan_a.next_offset,
            1 => base_a.wrapping_add(1 + i64::from(gap)) & i64::MAX,
            choice => base_offset(choice - 1, || raw_base),
        };
        let segment_b = segment_contents(modes >> 2, fix_crcs, base_b, &mut Input(chunk_b));

        let mut segments = Vec::new();
        if present & 1 != 0 {
            segments.push((base_a, segment_a, modes >> 4, index_a, present & 4 != 0));
        }
        if present & 2 != 0 && (present & 1 == 0 || base_b != base_a) {
            segments.push((base_b, segment_b, modes >> 6, index_b, present & 8 != 0));
        }
        let mut genuine = true;
        for (base, contents, index_mode, chunk, with_index) in &segments {
            put(&segment::log_file_name(*base), contents);
            if *with_index {
                genuine &= index_mode % 4 == 1;
                let scan = segment::scan(&*file_with(contents), *base, interval, i64::MAX).expect("in-memory scan");
                let index = index_contents(*index_mode, *base, contents, &scan, chunk);
                put(&segment::index_file_name(*base), &index);
            }
        }
        if present & 16 != 0 {
            let value = match choices >> 6 {
                0 => scan_a.next_offset,
                1 => base_a,
                _ => raw_checkpoint as i64,
            };
            let mut checkpoint = [0u8; 12];
            checkpoint[0..8].copy_from_slice(&value.to_be_bytes());
            let crc = crc32c::crc32c(&checkpoint[0..8]);
            checkpoint[8..12].copy_from_slice(&crc.to_be_bytes());
            if choices >> 6 == 3 {
                put(LOG_START_FILE, checkpoint_bytes);
            } else {
                put(LOG_START_FILE, &checkpoint);
            }
        }
        if present & 32 != 0 {
            put(CLEAN_SHUTDOWN_FILE, &[]);
        }
        if present & 64 != 0 {
            put(&format!("{LOG_START_FILE}.tmp"), tmp);
        }
        if present & 128 != 0 {
            let orphan_base = base_a.wrapping_add(12345) & i64::MAX;
            genuine &= segments.iter().all(|s| s.0 != orphan_base);
            put(&segment::index_file_name(orphan_base), orphan);
        }

        let config = LogConfig {
            segment_bytes_max: if knobs & 8 != 0 { 4096 } else { 1 << 20 },
            batch_bytes_max: 2048,
            index_interval_bytes: interval,
            retention_ms: None,
            ..LogConfig::default()
        };
        PartitionDir {
            storage,
            path: dir,
            config,
            ts_extra: ts_extra as i64,
            genuine,
        }
    }
}

/// The index file of a segment: 0 raw bytes, 1 the index recovery writes for the
/// segment, 2 that index with edits, 3 entries and footer fields from the input
/// under valid checksums and the segment's true size, which recovery trusts.
fn index_contents(mode: u8, base: i64, segment: &[u8], scan: &ScanResult, chunk: &[u8]) -> Vec<u8> {
    let sealed = || {
        let rel_next = scan.next_offset.wrapping_sub(base) as u32;
        let footer = index::Footer {
            readable_bytes: scan.valid_end as u32,
            ..index::Footer::new(rel_next, segment.len() as u32, scan.max_timestamp, T0)
        };
        index::encode_sealed(&scan.entries, footer)
    };
    match mode % 4 {
        0 => chunk.to_vec(),
        1 => sealed(),
        2 => {
            let mut file = sealed();
            apply_edits(&mut file, chunk);
            file
        }
        _ => {
            let mut input = Input(chunk);
            let (next_rel, readable, max_ts, last_append) =
                (input.u32(), input.u32(), input.u64() as i64, input.u64() as i64);
            let entries: Vec<IndexEntry> = input
                .rest()
                .chunks_exact(index::ENTRY_BYTES)
                .map(IndexEntry::decode)
                .collect();
            let file_bytes = segment.len() as u32;
            let footer = index::Footer {
                readable_bytes: readable.min(file_bytes),
                ..index::Footer::new(next_rel, file_bytes, max_ts, last_append)
            };
            index::encode_sealed(&entries, footer)
        }
    }
}

/// Reads, lookups and an append on an opened log; see [`log_open`].
fn exercise(log: &Log, ts_extra: i64, genuine: bool) {
    let (log_start, hw, end) = (log.log_start(), log.high_watermark(), log.log_end());
    assert!(
        log_start <= hw && hw <= end,
        "log start {log_start}, watermark {hw}, end {end}"
    );
    read_everything(log, genuine);
    for ts in [i64::MIN, -1, 0, 1000, T0, i64::MAX, ts_extra] {
        if let Ok(Some(hit)) = log.offset_for_timestamp(ts) {
            // Not `< hw`: when segments overlap (which recovery reports as corruption
            // and tolerates) a batch can straddle the watermark, and the answer is then
            // the watermark itself, where a consumer simply finds nothing yet.
            assert!(
                log_start <= hit.offset && hit.offset <= hw,
                "time lookup of {ts} answered offset {} outside {log_start}..={hw}",
                hit.offset
            );
            assert!(hit.max_timestamp >= ts, "time lookup of {ts} found an older batch");
        }
    }
    let spec = build::Spec {
        record_count: 2,
        base_timestamp: T0,
        max_timestamp: T0,
        ..build::Spec::default()
    };
    let mut b = build::batch(spec, 120, 0xA5);
    if let Ok(appended) = log.append(&mut b) {
        assert_eq!(appended.base_offset, end, "an append must land at the log end");
        if log.wait_durable(appended.next_offset).is_ok() {
            assert!(
                log.high_watermark() >= appended.next_offset,
                "a durable append is visible"
            );
            let _ = log.read(appended.base_offset, 4096);
        }
    }
}

/// Outcome of reading at an offset: the bytes returned, or `None` if it failed.
type ReadOutcome = (i64, Option<Vec<u8>>);

/// Reads from the log start until the high watermark, an error, or 256 reads, and
/// checks every answer on the way; with `genuine` (see [`PartitionDir::genuine`])
/// also that the reads do reach the watermark.
fn read_everything(log: &Log, genuine: bool) -> Vec<ReadOutcome> {
    let mut out = Vec::new();
    let mut at = log.log_start();
    for _ in 0..256 {
        match log.read(at, 1 << 12) {
            Ok(r) if r.records.is_empty() => {
                // Reads skip offsets that no segment holds, so nothing to return
                // means the reader is at the watermark; anything else would leave a
                // consumer waiting below the watermark forever.
                assert!(
                    !genuine || r.next_offset == r.high_watermark,
                    "an empty read at offset {at} stops below the watermark {}",
                    r.high_watermark
                );
                break;
            }
            Ok(r) => {
                check_returned(&r.records, at, r.next_offset, r.high_watermark, true);
                out.push((at, Some(r.records.to_vec())));
                at = r.next_offset;
            }
            Err(_) => {
                out.push((at, None));
                break;
            }
        }
    }
    out
}
