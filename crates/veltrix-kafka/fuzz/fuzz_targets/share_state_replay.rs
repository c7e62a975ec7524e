//! Fuzzes replaying share-group state read back from disk: any well-formed
//! changes, in any order, with any values.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::share_state_replay(data));
