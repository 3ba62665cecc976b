//! `IORING_OP_RECV` into an owned buffer.

use std::io;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBufMut;
use crate::driver::{Completion, Orphan};
use crate::fd::SharedFd;

/// Receives up to `buf.bytes_total()` bytes. `Ok(0)` is end of stream.
pub(crate) struct Recv<B> {
    fd: SharedFd,
    buf: B,
    /// A stream socket: bytes received after the future was dropped go to the next read.
    stream: bool,
}

impl<B: IoBufMut> Recv<B> {
    /// A recv on a datagram socket (a datagram taken by a cancelled recv is dropped, as
    /// the network may drop it).
    pub(crate) fn new(fd: SharedFd, buf: B) -> Self {
        Recv {
            fd,
            buf,
            stream: false,
        }
    }

    /// A recv on a stream socket, whose bytes must never be lost.
    pub(crate) fn stream(fd: SharedFd, buf: B) -> Self {
        Recv {
            fd,
            buf,
            stream: true,
        }
    }
}

impl<B: IoBufMut> Orphan for Recv<B> {
    fn completed(&mut self, c: &Completion) {
        if self.stream && c.result > 0 {
            self.fd
                .salvage(&super::salvage::written(&mut self.buf, c.result as usize));
        }
    }
}

// SAFETY: the SQE points into `buf`, stable and owned here.
unsafe impl<B: IoBufMut> OpKind for Recv<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Recv::new(types::Fd(self.fd.raw()), self.buf.stable_mut_ptr(), len).build()
    }

    fn complete(mut self, result: io::Result<u32>) -> Self::Output {
        let result = result.map(|n| {
            // SAFETY: the kernel wrote n bytes at the start of the buffer.
            unsafe { self.buf.set_init(n as usize) };
            n as usize
        });
        (result, self.buf)
    }
}
