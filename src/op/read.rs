//! `IORING_OP_READ` into an owned buffer.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBufMut;
use crate::driver::{ARGS, Attempt, Completion, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

/// A read of up to `buf.bytes_total()` bytes at `offset`.
pub(crate) struct Read<B> {
    fd: SharedFd,
    buf: B,
    offset: u64,
    /// A regular file: the epoll engine runs it on a pool thread (`Interest::Blocking`).
    file: bool,
}

impl<B: IoBufMut> Read<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: u64) -> Self {
        Read {
            fd,
            buf,
            offset,
            file: false,
        }
    }
}

impl<B> Read<B> {
    /// Marks the op as one on a regular file, which the epoll engine runs on a pool
    /// thread instead of the loop's (epoll cannot wait on a file; see `docs/files.md`).
    pub(crate) fn on_file(mut self) -> Self {
        self.file = true;
        self
    }
}

impl<B: IoBufMut> Orphan for Read<B> {
    fn completed(&mut self, c: &Completion) {
        // A read at the current position consumed these bytes from a stream (a pipe, a
        // socket) or moved the file position: hand them to the next read.
        if self.offset == super::CURRENT_POSITION && c.result > 0 {
            self.fd
                .salvage(&super::salvage::written(&mut self.buf, c.result as usize));
        }
    }
}

// SAFETY: the SQE and the attempt point into `buf`, whose memory is stable (IoBufMut)
// and owned here.
unsafe impl<B: IoBufMut> OpKind for Read<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Read::new(types::Fd(self.fd.raw()), self.buf.stable_mut_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let ptr = self.buf.stable_mut_ptr() as u64;
        let len = self.buf.bytes_total() as u64;
        Some(Attempt::new(
            self.fd.raw(),
            if self.file {
                Interest::Blocking
            } else {
                Interest::Read
            },
            [ptr, len, self.offset, 0],
            run,
        ))
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
        let result = result.map(|n| {
            // SAFETY: the kernel wrote n bytes into the buffer's first n bytes.
            unsafe { self.buf.set_init(n as usize) };
            n as usize
        });
        (result, self.buf)
    }
}

/// `read` (or `pread` at an offset) into `[ptr, len, offset]`.
///
/// # Safety
///
/// `ptr` is valid for `len` bytes of writes.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [ptr, len, offset, _] = *args;
    // SAFETY: forwarded from the caller (the buffer the op owns).
    Outcome::of(unsafe { nb::read(fd, ptr as *mut u8, len as usize, offset) })
}
