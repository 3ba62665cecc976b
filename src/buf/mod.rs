//! Owned buffers the kernel may read from or write into while an operation is in flight.
//!
//! An io_uring operation keeps using its buffer after the `Future` that submitted it has
//! been dropped, until the operation's completion arrives. So ops take buffers *by value*
//! and give them back with the result: `read(buf) -> (io::Result<usize>, B)`. The traits
//! here say what such a buffer must promise: a pointer that stays valid and fixed while the
//! value is moved around (every implementation keeps its bytes on the heap or in static
//! memory), and for reads, a way to record how many bytes the kernel wrote.
//!
//! | type | as [`IoBuf`] (written out) | as [`IoBufMut`] (read into) |
//! |---|---|---|
//! | `Vec<u8>` | `[0, len)` | `[0, capacity)`; afterwards `len == n` |
//! | `Box<[u8]>` | the whole slice | the whole slice |
//! | `bytes::Bytes` | the whole slice | — |
//! | `bytes::BytesMut` | `[0, len)` | `[0, capacity)`; afterwards `len == n` |
//! | `&'static [u8]`, `&'static str` | the whole slice | — |
//! | [`Slice<B>`] | a sub-range of `B` | a sub-range of `B` |

mod aligned;
pub(crate) mod ring;
pub(crate) mod rings;

pub use aligned::AlignedBuf;

use std::ops::{Bound, RangeBounds};

/// A buffer an operation may read from while it is in flight.
///
/// # Safety
///
/// `stable_ptr()` must point to `bytes_init()` initialized bytes that stay valid and do not
/// move for as long as the value lives, even when the value itself is moved, and
/// `bytes_init() <= bytes_total()`.
pub unsafe trait IoBuf: Unpin + 'static {
    /// Pointer to the first byte.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialized bytes (what a write sends).
    fn bytes_init(&self) -> usize;
    /// Total capacity in bytes (what a read may fill).
    fn bytes_total(&self) -> usize;

    /// A view of `range` of this buffer; ops on the slice touch only those bytes.
    ///
    /// # Panics
    ///
    /// When the range is out of bounds of `bytes_total()`.
    fn slice(self, range: impl RangeBounds<usize>) -> Slice<Self>
    where
        Self: Sized,
    {
        let begin = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n + 1,
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.bytes_init(),
        };
        assert!(
            begin <= end && end <= self.bytes_total(),
            "slice {begin}..{end} out of bounds of a {}-byte buffer",
            self.bytes_total()
        );
        Slice {
            buf: self,
            begin,
            end,
        }
    }
}

/// A buffer an operation may write into while it is in flight.
///
/// # Safety
///
/// As [`IoBuf`]; in addition `stable_mut_ptr()` must be valid for writes of
/// `bytes_total()` bytes for as long as the value lives.
pub unsafe trait IoBufMut: IoBuf {
    /// Pointer to the first byte, for writing.
    fn stable_mut_ptr(&mut self) -> *mut u8;

    /// Records that the first `n` bytes are now initialized (the kernel wrote them).
    ///
    /// # Safety
    ///
    /// The first `n` bytes must have been initialized, and `n <= bytes_total()`.
    unsafe fn set_init(&mut self, n: usize);
}

/// Copies as much of `src` as fits into the start of `buf` and sets its initialized
/// length to that; returns the count.
pub(crate) fn fill_start<B: IoBufMut>(buf: &mut B, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    // SAFETY: n <= bytes_total, so the copy stays inside the buffer, whose memory is
    // stable and distinct from `src` (we hold `buf` mutably).
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf.stable_mut_ptr(), n) };
    // SAFETY: the first n bytes were just written.
    unsafe { buf.set_init(n) };
    n
}

/// Shrinks `buf`'s initialized length to `n` (a no-op if it is not longer).
pub(crate) fn truncate_init<B: IoBufMut>(buf: &mut B, n: usize) {
    if n < buf.bytes_init() {
        // SAFETY: the first n bytes are within the initialized part.
        unsafe { buf.set_init(n) };
    }
}

// SAFETY: a Vec's bytes live on the heap; moving the Vec moves only its (ptr, len, cap).
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; the whole capacity is writable.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller promises the first n bytes are initialized and n <= capacity.
        unsafe { self.set_len(n) }
    }
}

// SAFETY: a boxed slice's bytes live on the heap and are all initialized.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for IoBuf; every byte is writable.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: Bytes points to immutable, reference-counted (or static) storage that never moves.
unsafe impl IoBuf for bytes::Bytes {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: BytesMut's storage is on the heap; moving the handle does not move it.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: as for IoBuf; the capacity is writable.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller promises the first n bytes are initialized and n <= capacity.
        unsafe { self.set_len(n) }
    }
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

// SAFETY: static memory never moves and is never freed.
unsafe impl IoBuf for &'static str {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}

/// A sub-range of an owned buffer, made by [`IoBuf::slice`].
///
/// A write of a slice sends `[begin, end)`; a read into a slice fills from `begin` up to
/// `end` and records the new initialized length in the underlying buffer.
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
    end: usize,
}

impl<B> Slice<B> {
    /// Offset of the slice's first byte in the underlying buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// Offset one past the slice's last byte.
    pub fn end(&self) -> usize {
        self.end
    }
    /// The underlying buffer.
    pub fn get_ref(&self) -> &B {
        &self.buf
    }
    /// Gives the underlying buffer back.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the range was checked against bytes_total at construction; B's pointer is stable.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // SAFETY: begin <= bytes_total, so the offset stays inside (or one past) the buffer.
        unsafe { self.buf.stable_ptr().add(self.begin) }
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init().clamp(self.begin, self.end) - self.begin
    }
    fn bytes_total(&self) -> usize {
        self.end - self.begin
    }
}

// SAFETY: as for IoBuf; writes stay inside [begin, end) of a writable buffer.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        // SAFETY: begin <= bytes_total, so the offset stays inside (or one past) the buffer.
        unsafe { self.buf.stable_mut_ptr().add(self.begin) }
    }
    unsafe fn set_init(&mut self, n: usize) {
        let upto = self.begin + n;
        if upto > self.buf.bytes_init() {
            // SAFETY: bytes [0, begin) were initialized before (a slice begins inside or at
            // the end of the initialized part for reads) and the kernel wrote [begin, upto).
            unsafe { self.buf.set_init(upto) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_read_window_is_its_capacity() {
        let v: Vec<u8> = Vec::with_capacity(64);
        assert_eq!(v.bytes_init(), 0);
        assert!(v.bytes_total() >= 64);
    }

    #[test]
    fn slices_cover_their_range() {
        let s = b"hello world".to_vec().slice(6..);
        assert_eq!(s.bytes_init(), 5);
        // SAFETY: the pointer covers bytes_init() initialized bytes.
        let bytes = unsafe { std::slice::from_raw_parts(s.stable_ptr(), s.bytes_init()) };
        assert_eq!(bytes, b"world");
        assert_eq!(s.into_inner().len(), 11);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn slice_past_the_end_panics() {
        let _ = Box::<[u8]>::from(&b"abc"[..]).slice(1..9);
    }
}
