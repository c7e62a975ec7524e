//! Fuzzes reading the client quotas file back from disk.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::quota_file_decode(data));
