//! The fuzz targets' checks on stable Rust, as part of `cargo test`.
//!
//! `crates/veltrix-log/fuzz` fuzzes every decoder that reads the log's files with
//! libFuzzer, which `cargo test` does not run. These property tests run the same
//! checks (`fuzz/checks.rs`, compiled into both) over random bytes and over valid
//! files with random damage, a few hundred inputs each, so the properties hold on
//! every test run and not only when someone fuzzes. Inputs that once broke the
//! engine are kept below as named regression tests.

#[path = "../../fuzz/checks.rs"]
mod checks;

use proptest::collection::vec;
use proptest::prelude::*;

/// Enough cases to reach every input mode many times, few enough to stay fast in a
/// debug build.
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 500,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// An input that starts with `head` and continues with `tail`.
fn join(head: &[u8], tail: &[u8]) -> Vec<u8> {
    [head, tail].concat()
}

/// A length-prefixed file chunk as `log_open` reads it.
fn chunk(bytes: &[u8]) -> Vec<u8> {
    join(&(bytes.len() as u16).to_be_bytes(), bytes)
}

/// Bytes from hex, with spaces allowed between fields for readability.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes as a segment: the scan and the reads after it keep their promises.
    #[test]
    fn segment_scan_holds_on_random_bytes(data in vec(any::<u8>(), 0..1500)) {
        checks::segment_scan(&data);
    }

    /// Valid segments with flipped, overwritten, cut and inserted bytes (mode 2), and
    /// segments built from random header fields (mode 3), with and without their
    /// checksums repaired: the damage reaches past the CRC into the scan's logic.
    #[test]
    fn segment_scan_holds_on_damaged_valid_segments(
        flags in any::<u8>(),
        structured in any::<bool>(),
        rest in vec(any::<u8>(), 0..400),
    ) {
        let mode = if structured { 3 } else { 2 };
        checks::segment_scan(&join(&[(flags & !3) | mode], &rest));
    }

    /// Any bytes as an index file: reading the footer, the entries and searching the
    /// file neither panics nor disagrees with memory.
    #[test]
    fn index_reader_holds_on_random_bytes(data in vec(any::<u8>(), 0..600)) {
        checks::index_reader(&data);
    }

    /// Valid indexes with edits, and random entries under footers whose checksums
    /// are repaired, so the footer is accepted and the entries are searched.
    #[test]
    fn index_reader_holds_on_damaged_valid_indexes(flags in any::<u8>(), rest in vec(any::<u8>(), 0..400)) {
        checks::index_reader(&join(&[flags], &rest));
        checks::index_reader(&join(&[(flags & !3) | 1], &rest));
        checks::index_reader(&join(&[(flags & !3) | 4 | 8 | 16 | 32], &rest));
    }

    /// Any bytes as a partition directory: opening it never panics, and a log that
    /// opens reads, appends and restarts cleanly.
    #[test]
    fn log_open_holds_on_random_bytes(data in vec(any::<u8>(), 0..1500)) {
        checks::log_open(&data);
    }

    /// Directories built from valid segments and indexes with random damage,
    /// random base offsets, checkpoints and markers.
    #[test]
    fn log_open_holds_on_damaged_valid_directories(
        head in vec(any::<u8>(), 29),
        segment_a in vec(any::<u8>(), 0..120),
        segment_b in vec(any::<u8>(), 0..120),
        index_a in vec(any::<u8>(), 0..40),
        index_b in vec(any::<u8>(), 0..40),
        other in vec(any::<u8>(), 0..16),
    ) {
        let mut input = head;
        for file in [&segment_a, &segment_b, &index_a, &index_b, &other, &other, &other] {
            input.extend(chunk(file));
        }
        checks::log_open(&input);
    }
}

// Regression inputs. Each was found by fuzzing (and reduced by hand to the fields
// that matter); the comment decodes it. `log_open` inputs start with four bytes:
// which files exist, their content modes, base offset choices and knobs; then the
// raw base (8 bytes), a gap (1), the raw checkpoint (8) and a timestamp (8); then
// length-prefixed file chunks. Bytes past the end read as zeros.

/// A segment whose file name says base `i64::MAX` (or `i64::MAX - 3`) and which
/// holds a valid batch at that offset. The scan used to compute the offset after
/// the batch without bounds and panicked with "attempt to add with overflow"
/// (`BatchHeader::next_offset`, reached from `segment::scan`); such offsets are
/// now refused as impossible.
#[test]
fn scan_of_a_segment_at_the_top_of_the_offset_range_does_not_overflow() {
    // Seed segment (mode 1) at base i64::MAX, one batch of one record.
    checks::segment_scan(&hex("31 00 00"));
    // Seed segment at base i64::MAX - 3, five batches of up to three records.
    checks::segment_scan(&hex("29 00 04"));
}

/// Four valid, contiguous batches of 2^31 - 1 records each: the offsets of the
/// fourth lie more than 2^32 past the segment base. The scan used to index it
/// with a relative offset truncated to 32 bits, so the entry pointed at the wrong
/// offset and reads through it failed; offsets past the 32-bit range now end the
/// segment's readable part.
#[test]
fn scan_never_indexes_an_offset_beyond_the_32_bit_relative_range() {
    // Structured batches (mode 3), base 0, an index entry per batch; each batch:
    // in sequence, delta i32::MAX - 1, 61 bytes, timestamp 0, undamaged.
    checks::segment_scan(&hex(
        "03 00 0000020000000300 0000020000000300 0000020000000300 0000020000000300",
    ));
}

/// A sealed segment whose offsets span more than 2^32: recovery rebuilt its index
/// with the end offset truncated to 32 bits, so after a clean restart the segment
/// ended somewhere else and reads returned different batches.
#[test]
fn a_sealed_segment_keeps_its_end_across_a_clean_restart() {
    // Segments A (structured: three batches of delta i32::MAX - 1) and B (empty,
    // based where A's scan ends), no index files.
    let mut input = hex("03 03 00 00");
    input.extend([0u8; 25]);
    input.extend(chunk(&hex("0000020000000300 0000020000000300 0000020000000300")));
    checks::log_open(&input);
}

/// Segment files named with base offsets near `i64::MAX`, and a log start
/// checkpoint of `i64::MAX` in an empty directory. Opening used to accept them,
/// and then the first append panicked with "attempt to add with overflow"
/// (`Log::append`, computing the next offset); with a forged but checksummed
/// index, opening itself panicked the same way in `load_sealed` and `load_active`
/// (base plus the footer's relative end offset). Such names and checkpoints are
/// now refused as impossible.
#[test]
fn files_at_the_top_of_the_offset_range_are_refused_not_overflowed() {
    // One empty segment named i64::MAX.
    checks::log_open(&hex("01 00 06"));
    // No segment; checkpoint i64::MAX with a valid checksum.
    checks::log_open(&hex("10 00 80 00  0000000000000000 00 7fffffffffffffff"));
    let forged_index = |present: &str, choices: &str| {
        let mut input = hex(&format!("{present} 30 {choices} 00"));
        input.extend([0u8; 25]);
        input.extend(chunk(&[]));
        input.extend(chunk(&[]));
        // Footer fields under valid checksums: relative end offset 8.
        input.extend(chunk(&hex("00000008")));
        input
    };
    // Sealed segment at i64::MAX - 3 with a trusted index, active one at i64::MAX.
    checks::log_open(&forged_index("07", "3d"));
    // Active segment at i64::MAX - 3, clean shutdown, trusted index.
    checks::log_open(&forged_index("25", "05"));
}

/// A log start checkpoint (5) past the recovered end (1, one batch). Opening used
/// to lower the log start to the end in memory only, so appends reused offsets 1
/// and 2 below the checkpoint, and after a clean restart the log start jumped back
/// to the checkpoint: the acknowledged records vanished from reads.
#[test]
fn a_checkpoint_past_the_end_does_not_hide_later_appends_after_a_restart() {
    // Segment A: one seed batch at 0; checkpoint 5 with a valid checksum.
    checks::log_open(&hex(
        "11 01 80 00  0000000000000000 00 0000000000000005 0000000000000000  0001 00",
    ));
}

/// An empty active segment whose clean-shutdown index (checksums valid) claims
/// that its offsets end 2^32 - 1 past the base. Opening used to trust it; an append
/// then did not roll the empty segment, so its batch got relative offsets past 32
/// bits, sealing truncated them, and after a clean restart the log end fell from
/// 2^32 + 1 back to 1, handing out offsets a second time. Such a footer is now
/// distrusted and the segment scanned.
#[test]
fn an_append_to_an_empty_segment_never_exceeds_the_32_bit_relative_range() {
    // Segment A: empty; its index forged (mode 3); clean-shutdown marker.
    let mut input = hex("25 30 00 00");
    input.extend([0u8; 25]);
    input.extend(chunk(&[]));
    input.extend(chunk(&[]));
    // Footer fields: relative end u32::MAX, readable bytes 0, max timestamp 0,
    // last append 0; no entries.
    input.extend(chunk(&hex("ffffffff 00000000 0000000000000000 0000000000000000")));
    checks::log_open(&input);
}

/// A segment based 12 offsets below the largest base offset the log accepts,
/// holding 13 valid batches (the last with 2^31 - 1 records) and larger than
/// `segment_bytes_max`. The next append must roll, but the log's offsets are used
/// up. The append failed, yet it used to roll first and create an empty segment
/// named past the limit, which recovery ignores, so the file stayed behind and a
/// clean restart changed the log; it now fails before touching anything.
#[test]
fn an_append_that_finds_the_offsets_exhausted_changes_nothing_on_disk() {
    // Segment A only, structured (mode 3), base from the input, 4096-byte segments.
    let mut input = hex("01 03 07 08  7ffffffefffffff3");
    input.extend([0u8; 17]);
    // Twelve in-sequence single-record batches of 316 bytes, then one of
    // 2^31 - 1 records.
    let mut batches = hex("000000ff00000300").repeat(12);
    batches.extend(hex("000002ff00000300"));
    input.extend(chunk(&batches));
    checks::log_open(&input);
}
