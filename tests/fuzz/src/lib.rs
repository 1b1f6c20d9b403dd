//! What every fuzz target shares: an allocator that refuses unbounded allocation.
//!
//! libFuzzer's `-malloc_limit_mb` needs a sanitizer's allocator hooks, which a stable toolchain
//! does not give; [`Bounded`] enforces the same rule itself: one allocation above
//! [`MAX_ALLOCATION`] aborts the run (a crash libFuzzer saves), as does more than [`MAX_LIVE`]
//! bytes live at once. `-rss_limit_mb` still bounds the process as a whole.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest single allocation a decoder may make for one input (inputs are at most a few
/// hundred KiB).
pub const MAX_ALLOCATION: usize = 64 << 20;
/// The most bytes live at once.
pub const MAX_LIVE: usize = 1 << 30;

/// The system allocator with [`MAX_ALLOCATION`] and [`MAX_LIVE`] enforced.
pub struct Bounded;

static LIVE: AtomicUsize = AtomicUsize::new(0);

fn refuse(what: &str, size: usize) -> ! {
    // No allocation here: the message is written with a fixed buffer.
    let mut buf = [0u8; 128];
    let mut n = 0;
    for b in what
        .bytes()
        .chain(b" of ".iter().copied())
        .chain(size.to_string_lossless())
    {
        if n < buf.len() {
            buf[n] = b;
            n += 1;
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stderr(), &buf[..n]);
    std::process::abort();
}

/// Decimal digits of a number without allocating.
trait Digits {
    fn to_string_lossless(self) -> DigitIter;
}

/// The digits of a `usize`, most significant first.
struct DigitIter {
    digits: [u8; 20],
    at: usize,
}

impl Digits for usize {
    fn to_string_lossless(self) -> DigitIter {
        let mut digits = [0u8; 20];
        let mut at = 20;
        let mut v = self;
        loop {
            at -= 1;
            digits[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        DigitIter { digits, at }
    }
}

impl Iterator for DigitIter {
    type Item = u8;
    fn next(&mut self) -> Option<u8> {
        let d = self.digits.get(self.at).copied();
        self.at += 1;
        d
    }
}

fn account(size: usize) {
    if size > MAX_ALLOCATION {
        refuse("unbounded allocation: one request", size);
    }
    let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    if live > MAX_LIVE {
        refuse("unbounded allocation: live bytes", live);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        account(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        account(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

/// Declares [`Bounded`] as the global allocator of a fuzz target.
#[macro_export]
macro_rules! bounded_allocator {
    () => {
        #[global_allocator]
        static ALLOC: $crate::Bounded = $crate::Bounded;
    };
}

/// The input as UTF-8 text: the decoders of text take `&str`, and their callers check UTF-8
/// first (a WebSocket text frame, a message or a line that is not UTF-8 is refused before them).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}
