//! The guest's memory allocator: a bump allocator over big anonymous
//! mappings, where `free` is a no-op (and `realloc` of the newest block
//! grows in place).
//!
//! Why: under TCG every guest instruction is emulated, and musl's malloc
//! (the default for `*-linux-musl`) costs several times more per call than
//! glibc's. The probes allocate hundreds of thousands of small strings
//! while parsing symbol tables, and that alone cost about a second per
//! boot. Each probe is a short-lived process, and PID 1 itself allocates
//! only a few kilobytes per probe, so never reusing memory is cheap here.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr::null_mut;

/// Size of one mapping; bigger requests get a mapping of their own.
const CHUNK: usize = 8 << 20;

pub struct Bump {
    state: UnsafeCell<State>,
}

struct State {
    /// Next free byte and end of the current chunk.
    next: usize,
    end: usize,
    /// Start of the most recent allocation, for in-place `realloc`.
    last: usize,
}

// SAFETY: every access goes through `with_lock`, a spin lock (the guest's
// threads are few and hold it for a handful of instructions).
unsafe impl Sync for Bump {}

static LOCK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Bump {
    pub const fn new() -> Self {
        Bump {
            state: UnsafeCell::new(State {
                next: 0,
                end: 0,
                last: 0,
            }),
        }
    }

    fn with_lock<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        use std::sync::atomic::Ordering;
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held, so this is the only reference.
        let r = f(unsafe { &mut *self.state.get() });
        LOCK.store(false, Ordering::Release);
        r
    }
}

fn map(len: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

impl State {
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        let align = layout.align().max(16);
        let start = (self.next + align - 1) & !(align - 1);
        if self.next != 0 && start + layout.size() <= self.end {
            self.next = start + layout.size();
            self.last = start;
            return start as *mut u8;
        }
        if layout.size() + align > CHUNK / 4 {
            // Big blocks (file contents, large vectors) get their own
            // mapping, which mmap aligns to a page.
            if align > 4096 {
                return null_mut();
            }
            return map(layout.size().max(1));
        }
        let chunk = map(CHUNK);
        if chunk.is_null() {
            return null_mut();
        }
        self.next = chunk as usize;
        self.end = self.next + CHUNK;
        self.alloc(layout)
    }
}

// SAFETY: blocks never overlap (bump pointer or fresh mappings) and are
// aligned as asked; freed memory is simply never reused.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with_lock(|s| s.alloc(layout))
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = self.with_lock(|s| {
            // The newest small block can grow (or shrink) in place.
            if ptr as usize == s.last && s.last + new_size <= s.end {
                s.next = s.last + new_size;
                true
            } else {
                false
            }
        });
        if grown {
            return ptr;
        }
        // SAFETY: same alignment as the old block, size checked by caller.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded to our own alloc.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the sizes and
            // do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
