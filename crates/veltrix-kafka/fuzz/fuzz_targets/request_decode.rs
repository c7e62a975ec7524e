//! Fuzzes the decoding of Kafka request frames: header, version check, body.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::request_decode(data));
