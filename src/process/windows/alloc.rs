//! The musl build's allocator (`process::alloc` on Unix) has no Windows build: the system heap
//! serves every block, and these names exist so callers need no `cfg`.

use std::alloc::{GlobalAlloc, Layout, System};

/// The system allocator under the Unix module's name.
pub struct Hybrid;

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Hybrid {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Nothing to switch on Windows.
pub fn supervising() {}
