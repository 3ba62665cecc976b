//! `IORING_OP_SEND` with `MSG_NOSIGNAL` (a closed peer is an `EPIPE`, never a SIGPIPE).

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
}

impl<B: IoBuf> Send<B> {
    pub(crate) fn new(fd: SharedFd, buf: B) -> Self {
        Send { fd, buf }
    }
}

impl<B> Orphan for Send<B> {}

// SAFETY: the SQE points into `buf`, stable and owned here.
unsafe impl<B: IoBuf> OpKind for Send<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Send::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}
