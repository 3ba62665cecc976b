//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`): a pool of equal buffers the kernel
//! picks from when a multishot receive has data, so an idle connection holds no buffer.
//!
//! The ring is an array of `{addr, len, bid}` entries shared with the kernel; we publish
//! a buffer by writing the entry at our tail and then storing the new tail (release). The
//! kernel consumes from its head. A CQE with `IORING_CQE_F_BUFFER` hands us buffer `bid`;
//! it is ours until we [`BufRing::recycle`] it. An empty ring makes receives fail with
//! `ENOBUFS` — backpressure, never end-of-stream.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

/// A registered ring of `entries` buffers of `buf_size` bytes each.
pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_bytes: usize,
    entries: u16,
    buf_size: usize,
    storage: Box<[u8]>,
    bgid: u16,
    tail: Cell<u16>,
    /// Buffers handed to us by CQEs and not yet recycled (for tests and stats).
    out: Cell<u32>,
}

impl BufRing {
    /// Allocates the ring and its buffers. `entries` must be a power of two ≤ 32768.
    /// The caller registers it with the ring (see `Driver::register_buf_ring`).
    pub(crate) fn new(bgid: u16, entries: u16, buf_size: usize) -> io::Result<BufRing> {
        if !entries.is_power_of_two() || entries > 32768 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("buffer ring entries must be a power of two up to 32768, got {entries}"),
            ));
        }
        let ring_bytes = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        // SAFETY: an anonymous private mapping; no existing memory is touched. The kernel
        // requires page alignment, which mmap provides.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ring = BufRing {
            ring: ptr.cast(),
            ring_bytes,
            entries,
            buf_size,
            storage: vec![0u8; usize::from(entries) * buf_size].into_boxed_slice(),
            bgid,
            tail: Cell::new(0),
            out: Cell::new(0),
        };
        for bid in 0..entries {
            ring.publish(bid);
        }
        ring.commit();
        Ok(ring)
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    /// Number of buffers currently handed out by CQEs.
    pub(crate) fn outstanding(&self) -> u32 {
        self.out.get()
    }

    /// The first `len` bytes of buffer `bid`, which a CQE just handed us.
    pub(crate) fn take(&self, bid: u16, len: usize) -> &[u8] {
        self.out.set(self.out.get() + 1);
        let start = usize::from(bid % self.entries) * self.buf_size;
        &self.storage[start..start + len.min(self.buf_size)]
    }

    /// Gives buffer `bid` back to the kernel.
    pub(crate) fn recycle(&self, bid: u16) {
        self.out.set(self.out.get().saturating_sub(1));
        self.publish(bid % self.entries);
        self.commit();
    }

    fn publish(&self, bid: u16) {
        let mask = self.entries - 1;
        let index = self.tail.get() & mask;
        // SAFETY: index < entries, so the entry lies inside the mapping; the kernel reads
        // entries only between its head and the tail we publish, and this one is past it.
        let entry = unsafe { &mut *self.ring.add(usize::from(index)) };
        let start = usize::from(bid) * self.buf_size;
        entry.set_addr(self.storage[start..].as_ptr() as u64);
        entry.set_len(self.buf_size as u32);
        entry.set_bid(bid);
        self.tail.set(self.tail.get().wrapping_add(1));
    }

    fn commit(&self) {
        // SAFETY: the tail field overlays the first entry's reserved bytes, inside the
        // mapping; the kernel reads it with acquire semantics.
        let tail = unsafe { BufRingEntry::tail(self.ring) } as *const AtomicU16;
        // SAFETY: AtomicU16 has the layout of u16; the pointer is aligned and valid.
        unsafe { &*tail }.store(self.tail.get(), Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly ring_bytes at ring; the kernel no longer uses it (the
        // ring was unregistered or destroyed first — the driver guarantees the order).
        unsafe { libc::munmap(self.ring.cast(), self.ring_bytes) };
    }
}
