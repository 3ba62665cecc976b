//! `IORING_OP_RECV` into an owned buffer.

use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use super::OpKind;
use crate::buf::IoBufMut;
use crate::driver::{ARGS, Attempt, Completion, Interest, Orphan, Outcome};
use crate::fd::SharedFd;
use crate::sys::nonblocking as nb;

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

// SAFETY: the SQE and the attempt point into `buf`, stable and owned here.
unsafe impl<B: IoBufMut> OpKind for Recv<B> {
    type Output = (io::Result<usize>, B);

    fn sqe(&mut self) -> Entry {
        let len = u32::try_from(self.buf.bytes_total()).unwrap_or(u32::MAX);
        opcode::Recv::new(types::Fd(self.fd.raw()), self.buf.stable_mut_ptr(), len).build()
    }

    fn attempt(&mut self) -> Option<Attempt> {
        let ptr = self.buf.stable_mut_ptr() as u64;
        let len = self.buf.bytes_total() as u64;
        Some(Attempt::new(
            self.fd.raw(),
            Interest::Read,
            [ptr, len, 0, 0],
            run,
        ))
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

/// `recv` into `[ptr, len]`. A short read is [`Outcome::Drained`]: the socket had no
/// more (edge triggering brings a new edge with new data).
///
/// # Safety
///
/// `ptr` is valid for `len` bytes of writes.
unsafe fn run(fd: RawFd, args: &mut [u64; ARGS]) -> Outcome {
    let [ptr, len, _, _] = *args;
    // SAFETY: forwarded from the caller (the buffer the op owns).
    let r = unsafe { nb::recv(fd, ptr as *mut u8, len as usize, 0) };
    if r > 0 && (r as u64) < len {
        return Outcome::Drained(r);
    }
    Outcome::of(r)
}
