//! [`AlignedBuf`]: a zeroed heap buffer at a chosen alignment, for `O_DIRECT` files.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::ptr::NonNull;

use super::{IoBuf, IoBufMut};

/// An owned, zero-initialised buffer of `len` bytes whose address is a multiple of
/// `align` (a power of two), as `O_DIRECT` reads and writes need.
///
/// As an [`IoBufMut`] its whole length is the read window; `len()` is its initialised
/// part (all of it, since it is zeroed; a read sets it to the count read).
///
/// # Examples
///
/// ```
/// use ringloop::buf::{AlignedBuf, IoBuf};
/// let buf = AlignedBuf::new(8192, 4096).unwrap();
/// assert_eq!(buf.stable_ptr() as usize % 4096, 0);
/// assert_eq!(buf.len(), 8192);
/// ```
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
    init: usize,
}

impl AlignedBuf {
    /// `len` zero bytes aligned to `align`; `InvalidInput` if `align` is not a power of
    /// two or `len` is 0, `OutOfMemory` if the allocation fails.
    pub fn new(len: usize, align: usize) -> io::Result<AlignedBuf> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "AlignedBuf: zero length",
            ));
        }
        let layout = Layout::from_size_align(len, align).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("AlignedBuf: alignment {align} is not a power of two (or too large)"),
            )
        })?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or_else(|| {
            io::Error::new(io::ErrorKind::OutOfMemory, "AlignedBuf: allocation failed")
        })?;
        Ok(AlignedBuf {
            ptr,
            layout,
            init: len,
        })
    }

    /// The initialised length (a read sets it to the count read).
    pub fn len(&self) -> usize {
        self.init
    }

    /// Whether the initialised length is zero.
    pub fn is_empty(&self) -> bool {
        self.init == 0
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.layout.size()
    }

    /// The initialised bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `init` bytes are initialised (zeroed or written) and owned.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.init) }
    }

    /// The whole buffer, writable; marks it all initialised.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.init = self.layout.size();
        // SAFETY: the whole allocation was zeroed at creation, so it is initialised.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.init)
            .field("capacity", &self.layout.size())
            .field("align", &self.layout.align())
            .finish()
    }
}

// SAFETY: the buffer is a heap allocation owned by the value (moving it moves only the
// pointer); `init <= size` always.
unsafe impl IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.init
    }
    fn bytes_total(&self) -> usize {
        self.layout.size()
    }
}

// SAFETY: as for IoBuf; the whole allocation is writable.
unsafe impl IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        self.init = n.min(self.layout.size());
    }
}
