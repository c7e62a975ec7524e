//! Fuzzes the validation of producers' record batches: header, codecs, records.
//! On the system allocator, as the broker runs: a size taken from the input
//! that sized an allocation would abort the run.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::batch_validate(data));
