//! `IORING_OP_WRITE` from an owned buffer.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBuf;
use crate::driver::Orphan;
use crate::fd::SharedFd;

/// A write of `buf`'s initialized bytes at `offset`.
pub(crate) struct Write<B> {
    fd: SharedFd,
    buf: B,
    offset: u64,
}

impl<B: IoBuf> Write<B> {
    pub(crate) fn new(fd: SharedFd, buf: B, offset: u64) -> Self {
        Write { fd, buf, offset }
    }
}

impl<B> Orphan for Write<B> {}

// SAFETY: the SQE points into `buf`, whose memory is stable (IoBuf) and owned here.
unsafe impl<B: IoBuf> OpKind for Write<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::Write::new(types::Fd(self.fd.raw()), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }

    fn complete(self, result: io::Result<u32>) -> Self::Output {
        (result.map(|n| n as usize), self.buf)
    }
}
