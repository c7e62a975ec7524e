//! The request decoder under random and mutated input, on stable Rust: the same
//! check the `request_decode` fuzz target runs.

use proptest::prelude::*;

#[path = "../../fuzz/checks.rs"]
mod checks;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// Any bytes, steered or not, decode to a request or an error, never a panic.
    #[test]
    fn any_frame_decodes_or_is_refused(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        checks::request_decode(&data);
    }
}

/// Regression, found by the `request_decode` fuzz target: a 21-byte Metadata v0
/// request whose topic count makes the codec reserve about 50 GB before reading
/// any topic. Failing that allocation aborted the process; with the reserving
/// allocator it is address space only and decoding fails on the missing bytes.
#[test]
fn a_huge_array_count_is_refused_without_aborting() {
    let input = [
        0x07, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x29, 0xff, 0xee, 0xff, 0xff, 0x18,
        0x5d, 0x27, 0x12,
    ];
    checks::request_decode(&input);
}
