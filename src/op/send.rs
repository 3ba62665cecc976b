//! `IORING_OP_SEND` with `MSG_NOSIGNAL` (a closed peer is an `EPIPE`, never a SIGPIPE).
//!
//! [`Send::at_once`] makes the send a candidate for a quiet op (`Driver::submit_quiet`):
//! with `MSG_DONTWAIT | MSG_WAITALL` the kernel finishes it during its submission, and
//! anything less than the whole buffer comes back as a failure CQE (`EAGAIN`, or the
//! count it did take) rather than a wait for room.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBuf;
use crate::driver::{ARGS, Attempt, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

/// Sends `buf`'s initialized bytes; the count may be short.
pub(crate) struct Send<B> {
    fd: SharedFd,
    buf: B,
    flags: i32,
}

impl<B: IoBuf> Send<B> {
    /// A send that waits for room in the socket (in the kernel), then sends what fits.
    pub(crate) fn new(fd: SharedFd, buf: B) -> Self {
        Send {
            fd,
            buf,
            flags: libc::MSG_NOSIGNAL,
        }
    }

    /// A send that never waits: it takes the whole buffer now, or fails with `EAGAIN`
    /// (nothing taken) or completes with the short count it took.
    pub(crate) fn at_once(fd: SharedFd, buf: B) -> Self {
        Send {
            fd,
            buf,
            flags: libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT | libc::MSG_WAITALL,
        }
    }
}

impl<B> Orphan for Send<B> {}

// SAFETY: the SQE and the attempt point into `buf`, stable and owned here. An `at_once`
// send (the only one with a quiet result) finishes during its submission and reports
// anything short with a CQE (see `driver::quiet`).
unsafe impl<B: IoBuf> OpKind for Send<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Send::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let ptr = self.buf.stable_ptr() as u64;
        let len = self.buf.bytes_init() as u64;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Write,
            [ptr, len, self.flags as u64, 0],
            run,
        ))
    }

    fn quiet_result(&self) -> Option<i32> {
        let at_once = libc::MSG_DONTWAIT | libc::MSG_WAITALL;
        if self.flags & at_once != at_once {
            return None;
        }
        i32::try_from(self.buf.bytes_init()).ok()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}

/// `send` of `[ptr, len, flags]`.
///
/// # Safety
///
/// `ptr` is valid for `len` bytes of reads.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [ptr, len, flags, _] = *args;
    // SAFETY: forwarded from the caller (the buffer the op owns).
    Outcome::of(unsafe { nb::send(fd, ptr as *const u8, len as usize, flags as i32) })
}
