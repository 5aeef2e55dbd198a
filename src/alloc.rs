//! The global allocator: mimalloc, called through its plain `mi_malloc` family whenever the
//! layout allows it.
//!
//! A request makes many small short-lived allocations (headers, JSON values, span attributes),
//! and glibc malloc spent about 9% of the gateway's CPU on them. The `mimalloc` crate's own
//! `GlobalAlloc` passes every allocation to `mi_malloc_aligned`, whose fast path covers only
//! blocks up to 1 KiB with a free block ready; everything else (a response buffer, a header
//! map, a grown Vec) went through mimalloc's generic aligned path and, unless the rounded size
//! is a power of two, through over-allocation: about 200 instructions where `mi_malloc` takes
//! about 30, 29 times per proxied request (callgrind, scripts/bench/gateway-instructions.sh).
//!
//! `mi_malloc` returns blocks aligned to 16 bytes (`MI_MAX_ALIGN_SIZE`) whenever the size is
//! at least 16, and to 8 otherwise (its size classes are multiples of 16 above 16 bytes and its
//! pages start 16-aligned). A Rust layout's size is a multiple of its alignment, so any layout
//! with `align <= 16` and `align <= size` is served correctly by the plain calls; the rest
//! keep the aligned ones.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every `mi_malloc` block of at least this many bytes has.
const PLAIN_ALIGN: usize = 16;

/// mimalloc as the global allocator; see the module documentation.
#[derive(Debug)]
pub struct MiMalloc;

/// Whether the plain (unaligned) calls satisfy `align` for a block of `size` bytes.
#[inline]
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && align <= size
}

// SAFETY: every method forwards to mimalloc, which returns null on failure as GlobalAlloc
// requires; the plain calls are used only where mimalloc's guaranteed alignment covers the
// layout (see `plain`), and `mi_free`/`mi_realloc` accept blocks from either family.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain(size, align) {
            mi::mi_malloc(size).cast()
        } else {
            mi::mi_malloc_aligned(size, align).cast()
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        if plain(size, align) {
            mi::mi_zalloc(size).cast()
        } else {
            mi::mi_zalloc_aligned(size, align).cast()
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        mi::mi_free(ptr.cast::<c_void>());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if plain(new_size, align) {
            mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
        } else {
            mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size and alignment the plain calls may serve, and some they may not, come back
    /// aligned and usable: written whole, grown and shrunk with their contents kept.
    #[test]
    fn every_layout_is_aligned_and_usable() {
        let a = MiMalloc;
        let sizes = (1..=300).chain([511, 512, 1000, 1024, 1025, 1500, 4095, 4096, 5000, 70_000]);
        for size in sizes {
            for shift in 0..=12 {
                let align = 1usize << shift;
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // A Rust type's size is a multiple of its alignment; Layout allows others.
                let layout = layout.pad_to_align();
                for zeroed in [false, true] {
                    // SAFETY: non-zero sizes; each block is written within its size and freed
                    // once with the layout it was last (re)allocated with.
                    unsafe {
                        let p = if zeroed {
                            a.alloc_zeroed(layout)
                        } else {
                            a.alloc(layout)
                        };
                        assert!(!p.is_null(), "{layout:?}");
                        assert_eq!(p as usize % align, 0, "{layout:?} zeroed={zeroed}");
                        if zeroed {
                            assert!((0..layout.size()).all(|i| *p.add(i) == 0), "{layout:?}");
                        }
                        for i in 0..layout.size() {
                            *p.add(i) = i as u8;
                        }
                        let grown = layout.size() * 3;
                        let q = a.realloc(p, layout, grown);
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "grown {layout:?}");
                        assert!((0..layout.size()).all(|i| *q.add(i) == i as u8));
                        let grown_layout = Layout::from_size_align(grown, align).expect("layout");
                        let shrunk = layout.size().div_ceil(2).next_multiple_of(align);
                        let r = a.realloc(q, grown_layout, shrunk);
                        assert!(!r.is_null());
                        assert_eq!(r as usize % align, 0, "shrunk {layout:?}");
                        assert!((0..shrunk.min(layout.size())).all(|i| *r.add(i) == i as u8));
                        a.dealloc(r, Layout::from_size_align(shrunk, align).expect("layout"));
                    }
                }
            }
        }
    }

    #[test]
    fn plain_calls_only_where_alignment_is_guaranteed() {
        assert!(plain(16, 16));
        assert!(plain(8, 8));
        assert!(plain(1, 1));
        assert!(plain(3000, 8));
        assert!(!plain(8, 16), "an 8-byte block is only 8-aligned");
        assert!(!plain(64, 32));
        assert!(!plain(4096, 4096));
    }
}
