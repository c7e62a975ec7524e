//! Integration tests of the log engine, one binary: behaviour through the public
//! API, fault injection, model-based property tests and kill -9 crash tests.

mod alloc;
mod basics;
mod compaction;
mod crash;
mod faults;
mod fuzz_smoke;
mod handles;
mod kv;
mod model;
mod producers;
mod review;
mod support;
mod transactions;

#[global_allocator]
static ALLOCATOR: alloc::CountingAllocator = alloc::CountingAllocator;
