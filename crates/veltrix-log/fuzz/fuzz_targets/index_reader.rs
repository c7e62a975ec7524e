//! Fuzz target: arbitrary bytes as a sealed index file: its footer, its entries and
//! the binary search over them. The checks live in `checks.rs`, shared with
//! `tests/it/fuzz_smoke.rs`.

#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code, reason = "each target uses one of the shared checks")]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::index_reader(data));
