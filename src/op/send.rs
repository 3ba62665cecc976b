//! `IORING_OP_SEND` with `MSG_NOSIGNAL` (a closed peer is an `EPIPE`, never a SIGPIPE).
//!
//! [`Send::at_once`] makes the send a candidate for a quiet op (`Driver::push_quiet_op`):
//! with `MSG_DONTWAIT | MSG_WAITALL` the kernel finishes it during its submission, and
//! anything less than the whole buffer comes back as a failure CQE (`EAGAIN`, or the
//! count it did take) rather than a wait for room.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBuf;
use crate::driver::Orphan;
use crate::fd::SharedFd;

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

// SAFETY: the SQE points into `buf`, stable and owned here.
unsafe impl<B: IoBuf> OpKind for Send<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Send::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .flags(self.flags)
            .build()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}
