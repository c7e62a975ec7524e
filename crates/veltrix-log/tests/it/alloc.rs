//! Proves the append path does no per-record heap allocation.
//!
//! The test binary's global allocator counts allocations made by the current
//! thread. Appends with a durable fsync on real files are counted after a warm-up;
//! the only allocations allowed are the amortised growth of the in-memory index,
//! which is per index interval (kilobytes of batches), not per record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use veltrix_log::{Env, Log, LogConfig};

use crate::support::*;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations per thread and otherwise defers to the system allocator.
pub struct CountingAllocator;

#[allow(unsafe_code, reason = "a global allocator can only be written with unsafe")]
// SAFETY: every call is forwarded unchanged to `System`, which upholds the contract.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn durable_appends_allocate_nothing_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        Env::system(),
        dir.path().join("t-0"),
        LogConfig {
            index_interval_bytes: 64 * 1024,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let mut batch = make_batch(16, 16 * 1024, T0, 1);
    for _ in 0..10 {
        log.append_durable(&mut batch).unwrap();
    }
    let appends = 300;
    let before = allocations();
    for _ in 0..appends {
        log.append_durable(&mut batch).unwrap();
    }
    let allocated = allocations() - before;
    // 300 batches of 16 KiB cross 75 index intervals; a doubling Vec reallocates
    // about log2(75) times.
    assert!(allocated <= 10, "{allocated} allocations for {appends} appends");
}
