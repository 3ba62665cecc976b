//! `IORING_OP_WRITE` from an owned buffer.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBuf;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

/// A write of `buf`'s initialized bytes at `offset`.
pub(crate) struct Write<B> {
    fd: SharedFd,
    buf: B,
    offset: u64,
    /// A regular file: the epoll engine runs it on a pool thread (`Interest::Blocking`).
    file: bool,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: u64) -> Self {
        Write {
            fd,
            buf,
            offset,
            file: false,
        }
    }
}

impl<B> Write<B> {
    /// Marks the op as one on a regular file, which the epoll engine runs on a pool
    /// thread instead of the loop's (epoll cannot wait on a file; see `docs/files.md`).
    pub(crate) fn on_file(mut self) -> Self {
        self.file = true;
        self
    }
}

impl<B> Orphan for Write<B> {}

// SAFETY: the SQE and the attempt point into `buf`, whose memory is stable (IoBuf) and
// owned here.
unsafe impl<B: IoBuf> OpKind for Write<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Write::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let ptr = self.buf.stable_ptr() as u64;
        let len = self.buf.bytes_init() as u64;
        Some(Attempt::new(
            self.fd.raw(),
            if self.file {
                Interest::Blocking
            } else {
                Interest::Write
            },
            [ptr, len, self.offset, 0],
            run,
        ))
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

/// `write` (or `pwrite` at an offset) of `[ptr, len, offset]`.
///
/// # Safety
///
/// `ptr` is valid for `len` bytes of reads.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [ptr, len, offset, _] = *args;
    // SAFETY: forwarded from the caller (the buffer the op owns).
    Outcome::of(unsafe { nb::write(fd, ptr as *const u8, len as usize, offset) })
}
