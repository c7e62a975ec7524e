//! Fuzzes reading batches back from shared storage's objects and the
//! catalog's remembered producer batches.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::shared_object_read(data));
