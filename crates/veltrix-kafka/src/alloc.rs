//! A global allocator that keeps untrusted sizes from aborting the process.
//!
//! The Kafka codec sizes some vectors from counts read off the wire before it
//! reads the elements (`Vec::with_capacity(n)` for arrays). A 21-byte request
//! can thus ask for tens of gigabytes; the allocation fails, and Rust aborts the
//! whole broker on a failed allocation. This allocator serves every allocation of
//! [`RESERVE_BYTES_MIN`] or more with an anonymous `mmap(MAP_NORESERVE)`: address
//! space only, with no commit charge, so the request succeeds, the decoder then
//! runs out of bytes and fails cleanly, and only pages actually written are ever
//! backed by memory. Everything smaller goes to the system allocator unchanged.
//!
//! Legitimate allocations never reach the threshold: requests are bounded by
//! `request_bytes_max` and reads by the log's limits, both far below it. Under
//! strict overcommit (`vm.overcommit_memory = 2`) the kernel refuses such a
//! mapping anyway, and the process still aborts; the broker should then run with
//! the default heuristic mode.

#![allow(unsafe_code, reason = "a global allocator can only be written with unsafe")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr;

/// Allocations at least this large are reserved, not committed.
pub const RESERVE_BYTES_MIN: usize = 1 << 30;
/// `mmap` returns page-aligned memory; larger alignments go to the system.
const PAGE_BYTES: usize = 4096;

/// See the module documentation. Install with `#[global_allocator]`.
pub struct ReservingAllocator;

fn reserved(layout: Layout) -> bool {
    layout.size() >= RESERVE_BYTES_MIN && layout.align() <= PAGE_BYTES
}

// SAFETY: small layouts are forwarded unchanged to `System`; large ones get a
// fresh private anonymous mapping of exactly `layout.size()` bytes, page aligned
// (which satisfies `layout.align() <= PAGE_BYTES`), zero-filled by the kernel, and
// are released with `munmap` of the same size, which `dealloc` receives as the
// same layout. A failed mapping returns null, as the contract requires.
unsafe impl GlobalAlloc for ReservingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserved(layout) {
            // SAFETY: forwarded with the caller's layout.
            return unsafe { System.alloc(layout) };
        }
        // SAFETY: a new anonymous mapping touches no existing memory.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                layout.size(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if reserved(layout) {
            // SAFETY: anonymous mappings are zero-filled.
            unsafe { self.alloc(layout) }
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if reserved(layout) {
            // SAFETY: `ptr` came from our `mmap` of exactly this size.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            // SAFETY: `ptr` came from `System` with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }
}
