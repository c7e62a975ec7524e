//! Fuzzes the validation of producers' record batches: header, codecs, records.
#![no_main]

#[path = "../checks.rs"]
mod checks;

// As in the broker binary: untrusted sizes must not abort the process.
#[global_allocator]
static ALLOCATOR: veltrix_kafka::alloc::ReservingAllocator = veltrix_kafka::alloc::ReservingAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::batch_validate(data));
