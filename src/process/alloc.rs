//! The global allocator of the static musl build (the wheel's and the .deb's binary).
//!
//! musl's allocator (mallocng) maps and unmaps a group of pages whenever a size class's groups
//! fill up or empty, which is often for the many short-lived small allocations of one command:
//! `pypm status --json` at 50 apps made ~90 `mmap` and ~90 `munmap` calls, and answered 25–30 %
//! slower than the glibc build. For a long-lived supervisor the same eagerness is a virtue: it
//! gives memory back at once, so the musl supervisor is the smallest (docs/benchmarks.md).
//!
//! So [`Hybrid`] depends on the process's role. A command (the CLI) takes its small blocks
//! (≤ [`SMALL_MAX`]) from dlmalloc, which keeps freed blocks in free lists inside a few mapped
//! segments (no system call per allocation); large blocks always come from the system allocator.
//! A process that becomes a supervisor calls [`supervising`] first, and from then on every new
//! block comes from the system allocator; blocks dlmalloc made before are recognised by address
//! (the segments dlmalloc maps are recorded) and given back to it.
//!
//! The glibc build keeps glibc's allocator (its per-thread caches already avoid the churn).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Largest block served by dlmalloc. At 16 KiB the growing buffers of a control answer stay in
/// dlmalloc too (4 KiB left half the gain; 64 KiB gained nothing more: docs/benchmarks.md).
pub const SMALL_MAX: usize = 16 * 1024;

/// Segments dlmalloc may map; past that it reports no memory and the system allocator serves.
const MAX_SEGMENTS: usize = 64;
/// dlmalloc maps memory in steps of this (pages count only once touched).
const GRANULARITY: usize = 1 << 20;

/// Set once by [`supervising`]: no new block from dlmalloc.
static SUPERVISING: AtomicBool = AtomicBool::new(false);
/// Every segment dlmalloc mapped: base and size (0: a free slot). Written only by [`Segments`]'s
/// methods, which dlmalloc calls with [`DL`] locked; read with it locked, too.
static SEG_BASE: [AtomicUsize; MAX_SEGMENTS] = [const { AtomicUsize::new(0) }; MAX_SEGMENTS];
static SEG_SIZE: [AtomicUsize; MAX_SEGMENTS] = [const { AtomicUsize::new(0) }; MAX_SEGMENTS];
/// Bounds of every address dlmalloc ever mapped: outside them a block is not its (no lock taken).
static LOWEST: AtomicUsize = AtomicUsize::new(usize::MAX);
static HIGHEST: AtomicUsize = AtomicUsize::new(0);

static DL: Mutex<dlmalloc::Dlmalloc<Segments>> = Mutex::new(dl());

const fn dl() -> dlmalloc::Dlmalloc<Segments> {
    let mut d = dlmalloc::Dlmalloc::new_with_allocator(Segments);
    d.set_granularity(GRANULARITY);
    d
}

/// Small blocks from dlmalloc in a command, everything from the system allocator in a supervisor.
pub struct Hybrid;

/// From now on this process allocates from the system allocator only (see the module doc). Call
/// it when the process becomes a supervisor, before it loads its file.
pub fn supervising() {
    SUPERVISING.store(true, Ordering::SeqCst);
}

fn small(layout: &Layout) -> bool {
    layout.size() <= SMALL_MAX && layout.align() <= 16
}

fn in_segment(addr: usize) -> bool {
    (0..MAX_SEGMENTS).any(|i| {
        let size = SEG_SIZE[i].load(Ordering::Relaxed);
        let base = SEG_BASE[i].load(Ordering::Relaxed);
        size != 0 && addr >= base && addr - base < size
    })
}

/// dlmalloc's view of the system: anonymous mappings, each one recorded.
struct Segments;

fn record(base: usize, size: usize) -> bool {
    for i in 0..MAX_SEGMENTS {
        if SEG_SIZE[i].load(Ordering::Relaxed) == 0 {
            SEG_BASE[i].store(base, Ordering::Relaxed);
            SEG_SIZE[i].store(size, Ordering::Relaxed);
            LOWEST.fetch_min(base, Ordering::Relaxed);
            HIGHEST.fetch_max(base + size, Ordering::Relaxed);
            return true;
        }
    }
    false
}

fn slot_of(base: usize) -> Option<usize> {
    (0..MAX_SEGMENTS).find(|&i| {
        SEG_SIZE[i].load(Ordering::Relaxed) != 0 && SEG_BASE[i].load(Ordering::Relaxed) == base
    })
}

// SAFETY: the methods hand dlmalloc fresh, private, zeroed, page-aligned mappings and unmap only
// what dlmalloc gives back; the segment table is only touched with `DL` locked (dlmalloc calls
// these from inside `DL`'s methods).
unsafe impl dlmalloc::Allocator for Segments {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: an anonymous private mapping: no memory of ours is touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return (std::ptr::null_mut(), 0, 0);
        }
        if !record(addr as usize, size) {
            // SAFETY: the mapping made just above, not handed out.
            unsafe { libc::munmap(addr, size) };
            return (std::ptr::null_mut(), 0, 0);
        }
        (addr.cast(), size, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        // Growing a segment in place or by moving it would need the table updated in step;
        // dlmalloc maps a new segment instead.
        std::ptr::null_mut()
    }

    fn free_part(&self, ptr: *mut u8, old: usize, new: usize) -> bool {
        let Some(i) = slot_of(ptr as usize) else {
            return false;
        };
        // SAFETY: the tail of a segment dlmalloc no longer uses.
        if unsafe { libc::munmap(ptr.add(new).cast(), old - new) } != 0 {
            return false;
        }
        SEG_SIZE[i].store(new, Ordering::Relaxed);
        true
    }

    fn free(&self, ptr: *mut u8, size: usize) -> bool {
        let Some(i) = slot_of(ptr as usize) else {
            return false;
        };
        // SAFETY: a whole segment dlmalloc no longer uses.
        if unsafe { libc::munmap(ptr.cast(), size) } != 0 {
            return false;
        }
        SEG_SIZE[i].store(0, Ordering::Relaxed);
        true
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        true
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        4096
    }
}

impl Hybrid {
    /// The block from dlmalloc, or null (supervising, a large block, dlmalloc out of segments).
    fn from_dl(layout: &Layout, zeroed: bool) -> *mut u8 {
        if !small(layout) || SUPERVISING.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let Ok(mut d) = DL.lock() else {
            return std::ptr::null_mut();
        };
        // SAFETY: a valid layout (the caller's); the lock is held.
        unsafe {
            if zeroed {
                d.calloc(layout.size(), layout.align())
            } else {
                d.malloc(layout.size(), layout.align())
            }
        }
    }

    /// Frees `ptr` if dlmalloc made it; false if it did not.
    fn free_dl(ptr: *mut u8, layout: &Layout) -> bool {
        let addr = ptr as usize;
        if !small(layout)
            || addr < LOWEST.load(Ordering::Relaxed)
            || addr >= HIGHEST.load(Ordering::Relaxed)
        {
            return false;
        }
        let Ok(mut d) = DL.lock() else {
            return false;
        };
        if !in_segment(addr) {
            return false;
        }
        // SAFETY: dlmalloc made `ptr` (it lies in one of its segments) with this layout.
        unsafe { d.free(ptr, layout.size(), layout.align()) };
        true
    }
}

// SAFETY: a block is freed by the allocator that made it: dlmalloc's lie in its recorded
// segments, which the system allocator never hands out; a resize across the two allocates in
// the other one, copies and frees the old block.
unsafe impl GlobalAlloc for Hybrid {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = Self::from_dl(&layout, false);
        if p.is_null() {
            // SAFETY: the caller's layout.
            unsafe { System.alloc(layout) }
        } else {
            p
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = Self::from_dl(&layout, true);
        if p.is_null() {
            // SAFETY: the caller's layout.
            unsafe { System.alloc_zeroed(layout) }
        } else {
            p
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !Self::free_dl(ptr, &layout) {
            // SAFETY: not dlmalloc's, so the system allocator's, with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` with `layout.align()` is a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let addr = ptr as usize;
        let maybe_dl = small(&layout)
            && addr >= LOWEST.load(Ordering::Relaxed)
            && addr < HIGHEST.load(Ordering::Relaxed);
        if maybe_dl
            && small(&new)
            && !SUPERVISING.load(Ordering::Relaxed)
            && let Ok(mut d) = DL.lock()
            && in_segment(addr)
        {
            // SAFETY: dlmalloc's block with this layout, resized by dlmalloc under its lock.
            let p = unsafe { d.realloc(ptr, layout.size(), layout.align(), new_size) };
            if !p.is_null() {
                return p;
            }
        } else if !maybe_dl {
            // SAFETY: the system allocator's block with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // Across the two allocators (or dlmalloc could not grow it): move it.
        // SAFETY: a fresh block of the new layout; `min(old, new)` bytes copied between two
        // distinct blocks; the old one freed by its own allocator.
        unsafe {
            let fresh = self.alloc(new);
            if !fresh.is_null() {
                std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(p: *mut u8, n: usize) {
        for i in 0..n {
            // SAFETY: callers pass a block of at least `n` bytes.
            unsafe { *p.add(i) = (i % 251) as u8 };
        }
    }

    fn check(p: *mut u8, n: usize, what: &str) {
        for i in 0..n {
            // SAFETY: callers pass a block of at least `n` bytes.
            assert_eq!(unsafe { *p.add(i) }, (i % 251) as u8, "{what}: byte {i}");
        }
    }

    /// One test, in order: the role switch is one-way and process-wide (the test binary's own
    /// allocator is the system's; `Hybrid` is called directly).
    #[test]
    fn blocks_keep_their_bytes_and_go_back_to_their_allocator_across_the_role_switch() {
        let a = Hybrid;
        let sizes = [
            1,
            15,
            16,
            17,
            255,
            SMALL_MAX - 1,
            SMALL_MAX,
            SMALL_MAX + 1,
            3 * SMALL_MAX,
            1 << 20,
        ];
        let mut kept = Vec::new();
        for &from in &sizes {
            for &to in &sizes {
                for align in [1, 8, 16, 64] {
                    let layout = Layout::from_size_align(from, align).expect("layout");
                    // SAFETY: non-zero layouts; writes and reads stay inside each block; every
                    // block is freed once with the layout it has then.
                    unsafe {
                        let p = a.alloc(layout);
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0);
                        fill(p, from);
                        let q = a.realloc(p, layout, to);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0);
                        check(q, from.min(to), &format!("{from} -> {to} @ {align}"));
                        if align == 8 && to <= SMALL_MAX {
                            // Freed after the switch, below.
                            kept.push((q, to));
                        } else {
                            a.dealloc(q, Layout::from_size_align(to, align).expect("layout"));
                        }
                    }
                }
            }
        }
        assert!(
            kept.iter().any(|&(p, _)| in_segment(p as usize)),
            "no block came from dlmalloc"
        );
        let zeroed = Layout::from_size_align(64, 8).expect("layout");
        // SAFETY: reads inside the block; freed once.
        unsafe {
            let z = a.alloc_zeroed(zeroed);
            assert!((0..64).all(|i| *z.add(i) == 0));
            a.dealloc(z, zeroed);
        }

        supervising();
        let layout = Layout::from_size_align(100, 8).expect("layout");
        // SAFETY: as above.
        unsafe {
            let p = a.alloc(layout);
            assert!(
                !in_segment(p as usize),
                "a supervisor's block came from dlmalloc"
            );
            fill(p, 100);
            // A block from before the switch grows out of dlmalloc, keeping its bytes.
            let (old, n) = kept.pop().expect("a kept block");
            let grown = a.realloc(
                old,
                Layout::from_size_align(n, 8).expect("layout"),
                n + 50_000,
            );
            assert!(!in_segment(grown as usize));
            check(grown, n, "grown after the switch");
            a.dealloc(
                grown,
                Layout::from_size_align(n + 50_000, 8).expect("layout"),
            );
            for (q, n) in kept {
                a.dealloc(q, Layout::from_size_align(n, 8).expect("layout"));
            }
            check(p, 100, "a supervisor's block");
            a.dealloc(p, layout);
        }
    }
}
